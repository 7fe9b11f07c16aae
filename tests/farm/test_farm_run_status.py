"""`pithead farm run` does not claim a sweep of "0 devices" before its first scan has discovered anything.

Polling deliberately does not wait for discovery (a /16 scan takes minutes to hours and must never delay
the readings of devices already in the inventory), so the service's first sweep of a fresh inventory
reads nobody. The status line says that, and says what the scan found when it finishes.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pithead.cli.farm import app, sweep_line
from pithead.farm.poller import SweepReport

runner = CliRunner()
#: Two loopback hosts nothing listens on (no other test serves devices there): the scan finds nobody.
EMPTY_NETWORK = "127.16.3.0/30"


def test_the_first_sweep_before_discovery_is_not_reported_as_zero_devices(tmp_path: Path) -> None:
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["run", "--scan", EMPTY_NETWORK, "--db", db, "--duration", "1.5"])
    assert r.exit_code == 0, r.output
    assert "0 devices in" not in r.output
    assert "waiting for the first scan" in r.output
    assert "scan of 2 hosts: 0 devices" in r.output


def test_without_a_scan_an_empty_inventory_says_so(tmp_path: Path) -> None:
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["run", "--db", db, "--duration", "0.5"])
    assert r.exit_code == 0, r.output
    assert "0 devices in" not in r.output and "the inventory is empty" in r.output


def test_a_real_sweep_still_reports_its_counts() -> None:
    rep = SweepReport(started=0.0, finished=0.5, devices=3, ok=2, timeouts=1, unreachable=0, errors=0,
                      max_in_flight=3, cpu_s=0.01)
    line = sweep_line(rep, open_alerts=1, waiting_for_scan=True)
    assert line.startswith("3 devices in 0.5 s: 2 ok, 1 timeout, 0 unreachable, 0 error; 1 open alerts")

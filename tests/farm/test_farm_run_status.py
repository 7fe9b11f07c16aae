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


def test_flags_are_the_config_keys_and_are_checked_like_it(tmp_path: Path) -> None:
    """`farm run` / `farm collect` flags are the [farm] keys with dashes; a bad one names its key (exit 2),
    and the old spellings still work."""
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["run", "--db", db, "--max-concurrent-polls", "0"])
    assert r.exit_code == 2 and "farm.max_concurrent_polls" in r.output, r.output
    r = runner.invoke(app, ["collect", "--db", db, "--forward-url", "http://127.0.0.1:9", "--spool-max-items", "0"])
    assert r.exit_code == 2 and "farm.spool_max_items" in r.output, r.output
    r = runner.invoke(app, ["collect", "--db", db, "--forward", "http://127.0.0.1:9", "--spool-max", "0"])
    assert r.exit_code == 2 and "farm.spool_max_items" in r.output, r.output  # the old spellings
    # a flag overrides the file
    conf = tmp_path / "farm.toml"
    conf.write_text("[farm]\npoll_interval = 3600.0\n")
    r = runner.invoke(app, ["run", "--db", db, "--config", str(conf), "--poll-interval", "0.2", "--duration", "1.5",
                            "--webhook", "http://127.0.0.1:9/hook"])
    assert r.exit_code == 0, r.output
    assert r.output.count("the inventory is empty") >= 2  # swept every 0.2 s, not every hour


def test_farm_run_stops_cleanly_on_a_signal(tmp_path: Path) -> None:
    """`farm run` has the app lifecycle: SIGINT or SIGTERM stops it cleanly with status 0 (the polls in
    flight are written), and a web port that cannot be had is one line with status 1, not a traceback."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    db = str(tmp_path / "farm.sqlite3")
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen([sys.executable, "-m", "pithead.cli", "farm", "run", "--db", db, "--poll-interval",
                                 "0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 60
            line = ""
            while "the inventory is empty" not in line:  # running: it has swept once
                line = proc.stdout.readline()
                assert line or proc.poll() is None, "farm run exited early"
                assert time.monotonic() < deadline, "farm run never swept"
            proc.send_signal(sig)
            out = proc.stdout.read()
            assert proc.wait(30) == 0, out
            assert "Traceback" not in out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "pithead.cli", "farm", "run", "--db", db, "--web",
                            f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "pithead farm run: farm web:" in r.stderr and str(port) in r.stderr, r
    assert "Traceback" not in r.stderr + r.stdout

"""`pithead farm` commands end to end on a temporary database and loopback devices."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from farm_devices import Antminer, Servers
from typer.testing import CliRunner

from pithead.cli.farm import app
from pithead.farm.store import FarmStore

runner = CliRunner()


@pytest.fixture
def device_port(request: pytest.FixtureRequest) -> Iterator[tuple[int, Antminer]]:
    """A loopback Antminer served from a background loop (the CLI runs its own asyncio.run); indirect
    parametrisation sets its reported power (None: stock firmware, no power reading)."""
    loop = asyncio.new_event_loop()
    dev = Antminer(power_w=getattr(request, "param", 3000.0))
    servers = Servers()
    port_box: list[int] = []
    ready = threading.Event()

    async def start() -> None:
        port_box.append(await servers.antminer(dev))
        ready.set()

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    try:
        yield port_box[0], dev
    finally:
        asyncio.run_coroutine_threadsafe(servers.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_scan_poll_status_alerts_actions(tmp_path: Path, device_port: tuple[int, Antminer]) -> None:
    port, dev = device_port
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1", "--probe-timeout", "5",
                            "--site", "lab"])
    assert r.exit_code == 0, r.output
    assert "1 devices (1 new)" in r.output
    r = runner.invoke(app, ["poll", "--once", "--db", db])
    assert r.exit_code == 0, r.output
    assert "1 ok" in r.output
    with FarmStore(db) as s:
        st = s.statuses()[0]
        assert st.reading is not None and st.reading.power_w == 3000.0 and st.device.labels.site == "lab"
        device_id = st.device.id
    r = runner.invoke(app, ["status", "--db", db])
    assert r.exit_code == 0 and "ok" in r.output
    r = runner.invoke(app, ["reboot", device_id, "--db", db, "--actor", "ops"])
    assert r.exit_code == 0 and dev.restarts == 1
    r = runner.invoke(app, ["switch-pool", device_id, "--db", db, "--", "-1"])
    assert r.exit_code == 1  # refused before sending, and audited
    r = runner.invoke(app, ["audit", "--db", db])
    assert "reboot" in r.output and "invalid" in r.output
    with FarmStore(db) as s:  # CLI actions say what let them through: access to the database
        assert [(a.actor, a.params.get("auth")) for a in reversed(s.audit_log())] == [("ops", "cli"), ("cli", "cli")]
    r = runner.invoke(app, ["alerts", "--db", db])
    assert r.exit_code == 0
    r = runner.invoke(app, ["curtail", "--db", db, "--strike", "80", "--price", "200"])
    assert r.exit_code == 0 and "power down 1" in r.output and not dev.sleeping  # dry run
    r = runner.invoke(app, ["energy", "--db", db, "--price", "50"])
    assert r.exit_code == 0 and "fleet" in r.output
    r = runner.invoke(app, ["forget", device_id, "--db", db])
    assert r.exit_code == 0
    with FarmStore(db) as s:
        assert s.devices() == []
    assert runner.invoke(app, ["forget", device_id, "--db", db]).exit_code == 2


def test_run_service_from_a_config_file(tmp_path: Path, device_port: tuple[int, Antminer]) -> None:
    port, _dev = device_port
    labels = tmp_path / "racks.csv"
    labels.write_text("cidr,site,rack\n127.0.0.0/24,lab,R1\n")
    prices = tmp_path / "prices.csv"
    prices.write_text("start,price_per_mwh\n0,40\n")
    conf = tmp_path / "pithead.toml"
    conf.write_text(f'[farm]\npoll_interval = 0.2\nlabels = "{labels}"\n'
                    f'price_schedule = "{prices}"\nstrike_price = 80.0\n')
    db = str(tmp_path / "farm.sqlite3")
    # the fixture's device listens on an ephemeral port, which the config cannot name: scan it first
    r = runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1", "--probe-timeout", "5",
                            "--labels", str(labels)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["run", "--config", str(conf), "--db", db, "--duration", "1.5"])
    assert r.exit_code == 0, r.output
    assert "1 ok" in r.output
    with FarmStore(db) as s:
        st = s.statuses()[0]
        assert st.state.value == "ok" and st.device.labels.rack == "R1"
        assert len(s.history(st.device.id, 0.0)) >= 2  # polled every 0.2 s for 1.5 s
    bad = tmp_path / "bad.toml"
    bad.write_text("[farm]\nno_such_setting = 1\n")
    assert runner.invoke(app, ["run", "--config", str(bad), "--db", db]).exit_code == 2


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "f.sqlite3")
    assert runner.invoke(app, ["poll", "--once", "--db", db, "--shard", "x/y"]).exit_code == 2
    assert runner.invoke(app, ["poll", "--once", "--db", db, "--shard", "4/4"]).exit_code == 2
    assert runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", "40x"]).exit_code == 2
    assert runner.invoke(app, ["scan", "10.0.0.0/8", "--db", db]).exit_code == 2  # too many hosts


def test_hashprice_command() -> None:
    r = runner.invoke(app, ["hashprice", "--difficulty", "1e14", "--btc-price", "100000", "--height", "840000"])
    assert r.exit_code == 0 and "62.86 per PH/s" in r.output


def test_farm_cli_against_the_simulator_cli(tmp_path: Path) -> None:
    """`pithead farm sim run` in its own process, then scan + poll it with `pithead farm` commands."""
    pytest.importorskip("pithead.cli.fleetsim")
    import socket
    import subprocess
    import sys
    import time as _time

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    api, web = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pithead.cli", "farm", "sim", "run", "-n", "12", "--network", "127.81.0.0/24",
         "--api-port", str(api), "--web-port", str(web)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = _time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.81.0.1", web), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or _time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"simulator did not start: {out[-2000:]}")
                _time.sleep(0.1)
        db = str(tmp_path / "farm.sqlite3")
        r = runner.invoke(app, ["scan", "127.81.0.0/28", "--db", db, "--cgminer-port", str(api),
                                "--axeos-port", str(web), "--probe-timeout", "5"])  # a busy machine accepts late
        assert r.exit_code == 0 and "12 devices (12 new)" in r.output, r.output
        r = runner.invoke(app, ["poll", "--once", "--db", db])
        assert r.exit_code == 0 and "12 ok" in r.output, r.output
        with FarmStore(db) as s:
            models = sorted({st.device.identity.model for st in s.statuses()})
            assert all(st.reading is not None and st.reading.hashrate_ths > 0 for st in s.statuses())
        assert models == ["Antminer S19", "Antminer S19 XP", "Antminer S21", "BM1370"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_run_help_names_the_farm_section() -> None:
    """Rich markup once swallowed "[farm]" from the --config help, leaving "TOML config ( section)"."""
    r = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "[farm] section" in r.output and "( section)" not in r.output


@pytest.mark.parametrize("device_port", [None], indirect=True)
def test_energy_says_when_devices_report_no_power(tmp_path: Path, device_port: tuple[int, Antminer]) -> None:
    """A stock Antminer reports no power: the energy table must not present its 0 kW as the fleet's power."""
    port, _dev = device_port
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1", "--probe-timeout", "5"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["poll", "--once", "--db", db]).exit_code == 0
    r = runner.invoke(app, ["energy", "--db", db, "--price", "50"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "metered" in r.output
    assert "only 0 of 1 hashing devices report power" in r.output


def test_energy_is_quiet_when_every_device_reports_power(tmp_path: Path,
                                                         device_port: tuple[int, Antminer]) -> None:
    port, _dev = device_port
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1", "--probe-timeout", "5"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["poll", "--once", "--db", db]).exit_code == 0
    r = runner.invoke(app, ["energy", "--db", db, "--price", "50"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "3.00" in r.output  # 3000 W reported
    assert "report power" not in r.output


def test_status_sorts_naturally_and_actions_take_an_ip(tmp_path: Path, device_port: tuple[int, Antminer]) -> None:
    """Issue 15: `farm status` listed 1, 10, 100, 2 and labels as `//1`; `farm reboot 127.0.88.5` said
    "unknown device" (it wanted the full id). An IP or IP:port that names one device is that device; one
    that names several is refused with the ids to choose from."""
    from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels

    port, dev = device_port
    db = str(tmp_path / "farm.sqlite3")
    r = runner.invoke(app, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1", "--probe-timeout", "5"])
    assert r.exit_code == 0, r.output
    with FarmStore(db) as s:
        s.upsert_devices([Device(DeviceAddress(f"127.0.88.{n}", 4028, DriverKind.CGMINER), Identity("Antminer", "S19"),
                                 Labels("", "", str(n))) for n in (100, 10, 2, 1)])
    r = runner.invoke(app, ["status", "--db", db], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    order = [n for n in ("127.0.88.1:", "127.0.88.2:", "127.0.88.10:", "127.0.88.100:") if n in r.output]
    assert sorted(order, key=r.output.index) == ["127.0.88.1:", "127.0.88.2:", "127.0.88.10:", "127.0.88.100:"]
    assert "//" not in r.output.replace("://", "")

    # an IP naming one device is that device
    r = runner.invoke(app, ["label", "127.0.88.2", "--site", "north", "--rack", "R1", "--position", "2", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reboot", "127.0.0.1", "--db", db])
    assert r.exit_code == 0, r.output
    assert dev.restarts == 1 and f"cgminer://127.0.0.1:{port}" in r.output
    with FarmStore(db) as s:
        assert s.device("cgminer://127.0.88.2:4028").labels == Labels("north", "R1", "2")
        s.upsert_devices([Device(DeviceAddress("127.0.0.1", 1, DriverKind.AXEOS), Identity("Bitaxe", "BM1370"))])
    # ... an IP naming two is refused, naming both; IP:port picks one
    r = runner.invoke(app, ["reboot", "127.0.0.1", "--db", db], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "names 2 devices" in r.output and "axeos://127.0.0.1:1" in r.output, r.output
    r = runner.invoke(app, ["reboot", f"127.0.0.1:{port}", "--db", db])
    assert r.exit_code == 0 and dev.restarts == 2, r.output
    r = runner.invoke(app, ["reboot", "127.0.88.5", "--db", db], env={"COLUMNS": "250"})
    assert r.exit_code == 2 and "unknown device '127.0.88.5'" in r.output and "IP" in r.output, r.output
    r = runner.invoke(app, ["audit", "--db", db, "--device", f"127.0.0.1:{port}"])
    assert r.exit_code == 0 and r.output.count("reboot") == 2, r.output

"""`pithead farm power ...` end to end: a temporary database and simulated LuxOS units on loopback, served
from a background loop (the CLI runs its own asyncio.run). The simulator's clock runs 50x real time so a
profile ramp (up to 80 s of firmware time) settles within the command's re-reads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pithead.cli.farm import app
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import SimClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer

pytestmark = pytest.mark.timeout(180)
runner = CliRunner()


def text(r: object) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(r.output.split())  # type: ignore[attr-defined]


@pytest.fixture
def lux_site(tmp_path: Path) -> Iterator[tuple[str, Fleet, list[str]]]:
    loop = asyncio.new_event_loop()
    fleet = Fleet.build(3, mix="s19jpro-lux:1", seed=4, clock=SimClock(speed=50.0))
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(srv.start(), loop).result(10)
    api, _ = srv.bound_ports()
    db = str(tmp_path / "farm.sqlite3")
    devices = [Device(DeviceAddress(d.ip, api, DriverKind.CGMINER), Identity("Antminer", "Antminer S19j Pro"),
                      Labels(site="north")) for d in fleet]
    with FarmStore(db) as s:
        s.upsert_devices(devices)
    try:
        yield db, fleet, [d.id for d in devices]
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_power_set_show_and_site(lux_site: tuple[str, Fleet, list[str]]) -> None:
    db, fleet, ids = lux_site
    r = runner.invoke(app, ["power", "set", ids[0], "2600", "--db", db, "--actor", "alice"])
    assert r.exit_code == 0, r.output
    assert "-> 470MHz (2529 W)" in text(r)
    r = runner.invoke(app, ["power", "set", ids[0], "100", "--db", db])
    assert r.exit_code == 1 and "no LuxOS profile at or below 100 W" in text(r)
    r = runner.invoke(app, ["poll", "--once", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "show", "--db", db])
    assert r.exit_code == 0 and r.output.count("profile") == 3 and "633-3068" in text(r), r.output
    r = runner.invoke(app, ["power", "site", "--kw", "5", "--site", "north", "--dry-run", "--db", db])
    assert r.exit_code == 0 and "over the budget 5.0 kW" in text(r) and "set" in text(r), r.output
    assert fleet.totals()["power_kw"] > 7  # a dry run changes nothing
    r = runner.invoke(app, ["power", "site", "--kw", "5", "--within", "120", "--site", "north", "--db", db])
    assert r.exit_code == 0 and "reached 5 kW" in text(r), r.output
    assert fleet.totals()["power_kw"] <= 5.0
    r = runner.invoke(app, ["power", "site", "--kw", "5", "--full", "--db", db])
    assert r.exit_code == 2 and "exactly one of" in text(r)
    r = runner.invoke(app, ["power", "site", "--kw", "5", "--site", "nowhere", "--db", db])
    assert r.exit_code == 2 and "no device is labelled" in text(r)
    with FarmStore(db) as s:
        log = s.audit_log()
    assert {a.params.get("auth") for a in log} == {"cli"} and any(a.actor == "alice" for a in log)


def test_power_follows_a_price_schedule(lux_site: tuple[str, Fleet, list[str]], tmp_path: Path) -> None:
    db, fleet, _ = lux_site
    prices = tmp_path / "prices.csv"
    prices.write_text("start,price_per_mwh\n0,40\n1000000000,180\n4000000000,20\n")  # 180/MWh now
    r = runner.invoke(app, ["poll", "--once", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "site", "--prices", str(prices), "--tier", "80:8", "--tier", "150:4",
                            "--dry-run", "--db", db])
    assert r.exit_code == 0 and "price now 180.00/MWh: budget 4 kW" in text(r), r.output
    r = runner.invoke(app, ["power", "follow", "--prices", str(prices), "--tier", "80:8", "--tier", "150:4",
                            "--every", "120", "--rounds", "1", "--db", db, "--actor", "market"])
    assert r.exit_code == 0 and "price 180.00/MWh -> 4 kW: reached" in text(r), r.output
    assert fleet.totals()["power_kw"] <= 4.0
    r = runner.invoke(app, ["power", "follow", "--prices", str(prices), "--tier", "80", "--db", db])
    assert r.exit_code == 2 and "bad tier" in text(r)

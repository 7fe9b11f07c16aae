"""The pyasic adapter reading simulated devices: pyasic identifies them by their own probes (web root on
:80, `version` on :4028) and the adapter maps `MinerData` onto the canonical reading.

pyasic hard-codes ports 80 and 4028, so the fleet is bound per device on its own loopback addresses; if
another process holds those ports on the wildcard address, the test is skipped (it says so).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("pithead.fleetsim.server")
pytest.importorskip("pyasic")

from pithead.farm.drivers.pyasic_driver import PyasicDriver
from pithead.farm.model import DeviceAddress, DriverKind
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer, SimServerError


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    clock = ManualClock()
    f = Fleet.build(2, "s19xp:1,bitaxe-gamma:1", seed=3, network="127.78.0.0/29", clock=clock)
    clock.advance(600.0)
    server = FleetServer(f, bind="per-device")
    try:
        await server.start()
    except SimServerError as exc:
        pytest.skip(f"ports 80/4028 unavailable for per-device binding: {exc}")
    try:
        yield f
    finally:
        await server.close()


async def test_pyasic_reads_simulated_antminer_and_bitaxe(fleet: Fleet) -> None:
    drv = PyasicDriver()
    for dev in fleet:
        addr = DeviceAddress(dev.ip, 4028, DriverKind.PYASIC)
        ident = await drv.identify(addr)
        r = await drv.read(addr.device_id, addr, fleet.now())
        snap = fleet.snapshot(dev.ip)
        assert r.hashrate_ths == pytest.approx(snap.rate_5s_ghs / 1000.0, rel=0.01)
        assert len(r.boards) == dev.spec.boards
        assert [b.chips for b in r.boards] == [b.chips for b in snap.boards]
        assert r.worker == next(p.user for p in snap.pools if p.active)
        if dev.spec.family.value == "antminer":
            assert "S19 XP" in ident.model.upper()
            assert r.power_w is None  # stock S19 XP reports no power, through pyasic too
        else:
            assert r.power_w == pytest.approx(snap.power_w, abs=1.0)  # pyasic keeps whole watts


async def test_pyasic_fallback_does_not_list_a_device_twice() -> None:
    """Operator QA: `farm scan --pyasic` over the simulator listed each Bitaxe twice (axeos://ip:80 and
    pyasic://ip:4028): its 4028 accepted the connection, our cgminer driver could not identify it, and the
    pyasic fallback (which reads the host's AxeOS) found the same Bitaxe again."""
    import asyncio

    from pithead.farm.drivers import default_drivers
    from pithead.farm.inventory import Scanner

    clock = ManualClock()
    f = Fleet.build(2, "s19xp:1,bitaxe-gamma:1", seed=3, network="127.79.0.0/29", clock=clock)
    clock.advance(600.0)
    bitaxe = next(dev for dev in f if dev.spec.family.value != "antminer")

    async def accept_and_close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = FleetServer(f, bind="per-device")
    try:
        await server.start()
        # what the shared-bind simulator (and any box with something on 4028) does at a Bitaxe's address
        extra = await asyncio.start_server(accept_and_close, bitaxe.ip, 4028)
    except (SimServerError, OSError) as exc:
        await server.close()
        pytest.skip(f"ports 80/4028 unavailable for per-device binding: {exc}")
    try:
        report = await Scanner(default_drivers(), use_pyasic=True).scan([f"{dev.ip}/32" for dev in f])
    finally:
        extra.close()
        await extra.wait_closed()
        await server.close()
    hosts = [d.address.host for d in report.found]
    assert sorted(hosts) == sorted(dev.ip for dev in f)  # every device once, none twice
    assert all(d.address.driver is not DriverKind.PYASIC for d in report.found)  # pithead's drivers found both

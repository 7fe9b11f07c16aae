"""The simulator read back by the fleet manager: scan, identify, poll and act on `pithead.fleetsim`.

The fleet runs on a manual clock, so every reading can be compared with the simulator's own snapshot of
the same instant; it is served in shared-bind mode on ephemeral ports, so nothing else on 4028/80 is
disturbed. Devices live on their own loopback addresses (127.16.0.0/12), as on a farm LAN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

pytest.importorskip("pithead.fleetsim.server")

from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.alerts import AlertManager, MappingShareActivity
from pithead.farm.curtailment import CurtailmentPolicy, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import PoolSpec
from pithead.farm.drivers.normalise import looks_degraded
from pithead.farm.inventory import IDENTIFY_TIMEOUT_S, Scanner
from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.poller import Poller
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family
from pithead.fleetsim.server import FleetServer

COUNT = 30
NETWORK = "127.16.0.0/26"  # 62 host addresses: 30 devices, the rest empty


@dataclass
class Sim:
    fleet: Fleet
    clock: ManualClock
    api_port: int
    web_port: int


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = ManualClock()
    fleet = Fleet.build(COUNT, "s19xp:4,s19:3,s21:2,bitaxe-gamma:1", seed=7, clock=clock)
    clock.advance(600.0)
    server = FleetServer(fleet, api_port=0, web_port=0)
    await server.start()
    api, web = server.bound_ports()
    try:
        yield Sim(fleet, clock, api, web)
    finally:
        await server.close()


async def scan(sim: Sim) -> list:  # type: ignore[type-arg]
    # The simulator answers from this test's own event loop: on a loaded machine its connects can take
    # longer than a real LAN's 0.5 s probe budget, so the probe waits as long as the identify step does.
    scanner = Scanner(default_drivers(), {DriverKind.CGMINER: (sim.api_port,), DriverKind.AXEOS: (sim.web_port,)},
                      clock=sim.clock.now, probe_timeout_s=IDENTIFY_TIMEOUT_S)
    rep = await scanner.scan([NETWORK])
    assert rep.hosts == 62
    return list(rep.found)


async def test_scan_identifies_every_simulated_device(sim: Sim) -> None:
    found = await scan(sim)
    assert len(found) == COUNT
    by_ip = {d.address.host: d for d in found}
    for dev in sim.fleet:
        d = by_ip[dev.ip]
        if dev.spec.family is Family.ANTMINER:
            assert (d.address.driver, d.address.port) == (DriverKind.CGMINER, sim.api_port)
            assert d.identity.model == dev.spec.type_string and d.identity.make == "Antminer"
            assert d.identity.expected_boards == dev.spec.boards and d.identity.expected_fans == dev.spec.fans
        else:
            assert (d.address.driver, d.address.port) == (DriverKind.AXEOS, sim.web_port)
            assert d.identity.model == dev.spec.type_string and d.identity.make == "Bitaxe"
        assert d.labels.position == dev.ip.rsplit(".", 1)[1]


async def test_readings_match_the_simulator(sim: Sim) -> None:
    found = await scan(sim)
    report, results = await Poller(default_drivers(), max_concurrency=8, deadline_s=5.0).sweep(found)
    assert report.ok == COUNT
    ip_of = {d.id: d.address.host for d in found}
    powered = 0
    for res in results:
        r = res.reading
        assert r is not None
        snap = sim.fleet.snapshot(ip_of[res.device_id], sim.clock.now())
        spec = sim.fleet.device(ip_of[res.device_id]).spec
        assert r.hashrate_ths == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-4)
        assert r.expected_ths == pytest.approx(snap.ideal_ghs / 1000.0, rel=1e-3)
        assert len(r.boards) == len(snap.boards)
        for b, sb in zip(r.boards, snap.boards, strict=True):
            assert b.chips == sb.chips
            assert b.hashrate_ths == pytest.approx(sb.rate_ghs / 1000.0, abs=1e-3)
        assert [f.rpm for f in r.fans] == list(snap.fans_rpm)[: len(r.fans)] and len(r.fans) == spec.fans
        assert r.worker == next(p.user for p in snap.pools if p.active)
        if spec.reports_power:
            powered += 1
            assert r.power_w == pytest.approx(snap.power_w, rel=0.01)
            assert r.efficiency_j_per_th == pytest.approx(snap.power_w / (snap.rate_5s_ghs / 1000.0), rel=0.01)
        else:
            assert r.power_w is None and r.efficiency_j_per_th is None  # stock firmware: no power, no guess
        if spec.family is Family.ANTMINER:  # bmminer reports the hottest sensor per board as an integer
            assert r.max_chip_temp_c == max(max(b.temp_chip) for b in snap.boards)
        else:
            assert r.max_chip_temp_c == pytest.approx(snap.chip_temp_c, abs=0.01)
    assert powered > 0  # the mix has S21s and Bitaxes, which report power


async def test_faults_actions_and_curtailment_against_the_simulator(sim: Sim) -> None:
    found = await scan(sim)
    store = FarmStore(":memory:")
    store.upsert_devices(found)
    drivers = default_drivers(antminer_web_port=sim.web_port)
    poller = Poller(drivers, deadline_s=5.0, clock=sim.clock.now)
    await poller.sweep(found, store.write_results)
    antminers = [d for d in found if d.address.driver is DriverKind.CGMINER]
    a0, a1 = antminers[0], antminers[1]

    # a rebooting device stops answering (reset) -> an error state, never a zero reading
    sim.fleet.restart(a0.address.host)
    _, results = await poller.sweep([a0])
    assert results[0].state is DeviceState.UNREACHABLE and results[0].reading is None

    # the pool's ledger has not heard from a1's worker for 20 minutes -> NO_SHARES, from a live reading
    store.write_results(results)
    workers = {s.device.id: s.reading.worker for s in store.statuses() if s.reading}
    now = sim.clock.now()
    ledger = MappingShareActivity({w: now - 60 for w in workers.values() if w} | {workers[a1.id]: now - 1200})
    events = AlertManager(shares=ledger).run_once(store, now)
    assert (a1.id, "no_shares") in {(e.device_id, e.kind) for e in events}

    # audited actions through the device's own API change the simulated device
    svc = ActionService(AsyncFarmStore(store), drivers, clock=sim.clock.now)
    res = await svc.set_pools(a1.id, [PoolSpec("stratum+tcp://10.9.8.7:3333", "ops.a1")], "ops")
    assert res.ok, res.error
    assert [p.user for p in sim.fleet.device(a1.address.host).configured_pools(sim.fleet.ctx)] == ["ops.a1"]

    # curtailment: at a price above the strike, the least efficient machines go to sleep on the device
    statuses = store.statuses()
    machines = machines_from_statuses(statuses, store.curtailment())
    d = decide(machines, 500.0, sim.clock.now() + 10_000, CurtailmentPolicy(80.0, max_switches_per_step=3))
    assert len(d.power_down) == 3
    results2 = await apply_decision(d, svc)
    slept = [r.device_id for r in results2 if r.ok]
    assert slept, [r.error for r in results2]
    ip_of = {x.id: x.address.host for x in found}
    assert all(sim.fleet.device(ip_of[i]).sleeping for i in slept)
    assert all(s.state is DeviceState.CURTAILED for s in store.statuses() if s.device.id in slept)
    store.close()


async def test_degraded_device_reading_carries_the_firmware_diagnosis(sim: Sim) -> None:
    found = await scan(sim)
    target = next(d for d in found if d.address.driver is DriverKind.CGMINER)
    dev = sim.fleet.device(target.address.host)
    dev.advance(sim.fleet.ctx, sim.clock.now())
    dev.failed_fans = 1  # fan 0 dies (the simulator's own fault state; its hazard process sets the same)
    sim.clock.advance(30.0)
    snap = sim.fleet.snapshot(target.address.host)
    assert "F:1" in snap.errors
    store = FarmStore(":memory:")
    store.upsert_devices(found)
    await Poller(default_drivers(antminer_web_port=sim.web_port), clock=sim.clock.now).sweep(found, store.write_results)
    st = next(s for s in store.statuses() if s.device.id == target.id)
    assert st.reading is not None and "fans: Fan lost" in st.reading.errors
    # only degraded readings pay for the web lookup, so errors appear on nothing else
    for s in store.statuses():
        if s.reading is not None and s.reading.errors:
            assert looks_degraded(s.reading)
    events = AlertManager().run_once(store, sim.clock.now())
    assert (target.id, "fan_failure") in {(e.device_id, e.kind) for e in events}
    store.close()

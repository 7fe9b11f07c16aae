"""FarmService reads a device as soon as a scan discovers it, against the simulated fleet (pithead.fleetsim).

The periodic poll interval here is an hour, and the service's first sweep runs before the first scan has
found anything: a status known in these tests can only come from the read that follows discovery. The
fleet is served in shared-bind mode on ephemeral ports, on its own loopback addresses, as in
test_farm_sim_readback.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

pytest.importorskip("pithead.fleetsim.server")

from pithead.farm.inventory import IDENTIFY_TIMEOUT_S
from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer

COUNT = 12
NETWORK = "127.16.1.0/28"  # 14 host addresses: 12 devices, the rest empty
#: The periodic poller would next sweep an hour from now: never within a test.
HOUR = 3600.0
#: Bounded waits only, so a broken build fails instead of hanging (nothing here measures time).
WAIT = 20.0
#: A small cap, so the first read of 12 devices really has to share it.
CONCURRENCY = 4
#: Re-scan often in the rescan test (a scan of 14 loopback hosts takes milliseconds).
RESCAN = 0.2


@dataclass
class Sim:
    fleet: Fleet
    api_port: int
    web_port: int

    @property
    def ports(self) -> dict[DriverKind, tuple[int, ...]]:
        return {DriverKind.CGMINER: (self.api_port,), DriverKind.AXEOS: (self.web_port,)}


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = ManualClock()
    fleet = Fleet.build(COUNT, "s19xp:4,s19:3,s21:2,bitaxe-gamma:3", seed=11, network=NETWORK, clock=clock)
    clock.advance(600.0)  # past warm-up: every device is hashing
    server = FleetServer(fleet, api_port=0, web_port=0)
    await server.start()
    api, web = server.bound_ports()
    try:
        yield Sim(fleet, api, web)
    finally:
        await server.close()


def _service(store: FarmStore, sim: Sim) -> FarmService:
    cfg = FarmServiceConfig(scan_cidrs=(NETWORK,), scan_ports=sim.ports, rescan_interval_s=HOUR,
                            poll_interval_s=HOUR, max_concurrency=CONCURRENCY, deadline_s=5.0,
                            probe_timeout_s=IDENTIFY_TIMEOUT_S)  # the simulator shares this (loaded) loop
    return FarmService(store, cfg)


async def _until_known(store: FarmStore, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            st = store.statuses()
            if len(st) == count and all(s.state is not DeviceState.UNKNOWN for s in st):
                return
            await asyncio.sleep(0.02)


async def test_devices_found_by_a_scan_are_read_at_once(sim: Sim, store: FarmStore) -> None:
    svc = _service(store, sim)
    task = asyncio.create_task(svc.run())
    try:
        await _until_known(store, COUNT)
        # The statuses are written as each read ends; the read's summary once all have: wait for it too.
        await asyncio.wait_for(svc.first_polled.wait(), WAIT)
    finally:
        svc.stop()
        await asyncio.wait_for(task, WAIT)
    # The periodic poller swept once, at start, before anything was discovered: it read nobody.
    assert svc.last_sweep is not None and svc.last_sweep.devices == 0
    first = svc.last_first_poll
    assert first is not None and first.devices == COUNT and first.ok == COUNT
    assert 1 <= first.max_in_flight <= CONCURRENCY
    by_ip = {d.ip: d for d in sim.fleet}
    statuses = store.statuses()
    assert {s.device.address.host for s in statuses} == set(by_ip)
    for s in statuses:
        assert s.state is DeviceState.OK and s.reading is not None
        assert s.reading.hashrate_ths > 0  # a real reading of a hashing simulated device
        assert s.device.identity.model == by_ip[s.device.address.host].spec.type_string


async def test_rescans_read_only_devices_new_to_the_inventory(sim: Sim, store: FarmStore) -> None:
    cfg = FarmServiceConfig(scan_cidrs=(NETWORK,), scan_ports=sim.ports, rescan_interval_s=RESCAN,
                            poll_interval_s=HOUR, max_concurrency=CONCURRENCY, deadline_s=5.0,
                            probe_timeout_s=IDENTIFY_TIMEOUT_S)
    svc = FarmService(store, cfg)
    task = asyncio.create_task(svc.run())
    try:
        await _until_known(store, COUNT)
        await asyncio.wait_for(svc.first_polled.wait(), WAIT)  # the summary comes after the last status
        first = svc.last_first_poll
        assert first is not None and first.devices == COUNT
        # Three devices leave the inventory; the next scan finds them again: new to the inventory.
        gone = sorted(d.id for d in store.devices())[:3]
        for device_id in gone:
            store.remove_device(device_id)
        before = {s.device.id: s.time for s in store.statuses()}
        svc.first_polled.clear()
        await asyncio.wait_for(svc.first_polled.wait(), WAIT)
        again = svc.last_first_poll
        for _ in range(3):  # a few more rescans, which find nothing new
            svc.scanned.clear()
            await asyncio.wait_for(svc.scanned.wait(), WAIT)
    finally:
        svc.stop()
        await asyncio.wait_for(task, WAIT)
    assert again is not None and again.devices == 3 and again.ok == 3
    assert svc.last_first_poll is again  # rescans finding nothing new read nothing
    assert svc.last_sweep is not None and svc.last_sweep.devices == 0  # never a second full sweep
    after = {s.device.id: s.time for s in store.statuses()}
    assert set(after) == set(before) | set(gone) and len(after) == COUNT
    assert all(after[d] > before.get(d, 0.0) for d in gone)  # read again on rediscovery
    assert all(after[d] == before[d] for d in after if d not in gone)  # the others were not

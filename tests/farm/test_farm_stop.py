"""FarmService.stop() cuts short a sweep in progress, against the simulated fleet (pithead.fleetsim).

The poll interval is an hour, so a sweep of 12 devices paces its starts 4 minutes apart: a stop that only
took effect between sweeps would wait most of an hour. Here the service must end within a bounded wait
(far below one pacing step) with the reading it already took written and no other device started. The
fleet is served in shared-bind mode on ephemeral ports on its own loopback addresses, as in
test_farm_first_poll.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("pithead.fleetsim.server")

from pithead.farm.drivers import default_drivers
from pithead.farm.inventory import IDENTIFY_TIMEOUT_S, Scanner
from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.poller import SPREAD_FRACTION, Poller
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer

COUNT = 12
NETWORK = "127.16.2.0/28"  # 14 host addresses: 12 devices, the rest empty
#: The poll interval: a sweep paces its 12 starts HOUR * SPREAD_FRACTION / 12 = 240 s apart.
HOUR = 3600.0
#: Bounded waits only, so a broken build fails instead of hanging (nothing here measures time). Far below
#: one pacing step, so a stop that waits for the next paced start cannot pass.
WAIT = 20.0
CONCURRENCY = 4


@pytest.fixture
async def fleet_server() -> AsyncIterator[FleetServer]:
    clock = ManualClock()
    fleet = Fleet.build(COUNT, "s19xp:4,s19:3,s21:2,bitaxe-gamma:3", seed=13, network=NETWORK, clock=clock)
    clock.advance(600.0)  # past warm-up: every device is hashing
    server = FleetServer(fleet, api_port=0, web_port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _ports(server: FleetServer) -> dict[DriverKind, tuple[int, ...]]:
    api, web = server.bound_ports()
    return {DriverKind.CGMINER: (api,), DriverKind.AXEOS: (web,)}


async def _inventory(store: FarmStore, server: FleetServer) -> None:
    """Fill the inventory by a real scan (the service under test then has no scan of its own)."""
    # the simulator answers from this loop: on a loaded machine, probes get the identify step's time
    report = await Scanner(default_drivers(), _ports(server), probe_timeout_s=IDENTIFY_TIMEOUT_S).scan([NETWORK])
    assert len(report.found) == COUNT
    store.upsert_devices(report.found)


async def _until_requested(server: FleetServer, baseline: int) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if server.stats.requests > baseline:
                return
            await asyncio.sleep(0.005)


async def test_stop_cuts_a_paced_sweep_short_and_keeps_its_readings(fleet_server: FleetServer,
                                                                    store: FarmStore) -> None:
    await _inventory(store, fleet_server)
    assert HOUR * SPREAD_FRACTION / COUNT > 10 * WAIT  # the test's premise: pacing is far slower than WAIT
    cfg = FarmServiceConfig(poll_interval_s=HOUR, max_concurrency=CONCURRENCY, deadline_s=5.0)
    svc = FarmService(store, cfg)
    baseline = fleet_server.stats.requests
    task = asyncio.create_task(svc.run())
    try:
        await _until_requested(fleet_server, baseline)  # the sweep's first poll has begun (or finished)
    finally:
        svc.stop()
        await asyncio.wait_for(task, WAIT)
    statuses = store.statuses()
    assert len(statuses) == COUNT
    read = [s for s in statuses if s.state is not DeviceState.UNKNOWN]
    # Only the sweep's first device was due; its reading (in flight or done at the stop) was written.
    assert len(read) == 1
    assert read[0].state is DeviceState.OK and read[0].reading is not None and read[0].reading.hashrate_ths > 0
    assert read[0].device.id == store.devices()[0].id
    # A sweep cut short is not a sweep: no alerts/rollups ran over it.
    assert svc.last_sweep is None


async def test_a_stopped_sweep_starts_nothing_more_and_reports_what_it_polled(fleet_server: FleetServer,
                                                                            store: FarmStore) -> None:
    await _inventory(store, fleet_server)
    devices = store.devices()
    poller = Poller(default_drivers(), max_concurrency=CONCURRENCY, deadline_s=5.0)
    stop = asyncio.Event()
    written: list[str] = []
    baseline = fleet_server.stats.requests
    sweep = asyncio.create_task(poller.sweep(devices, lambda batch: written.extend(r.device_id for r in batch),
                                             spread_s=HOUR * SPREAD_FRACTION, stop=stop))
    await _until_requested(fleet_server, baseline)
    stop.set()
    report, kept = await asyncio.wait_for(sweep, WAIT)
    assert kept == []  # everything went to the sink
    assert report.stopped and report.devices == 1 and report.ok == 1
    assert written == [devices[0].id]
    # The sweep is over: nothing it owned polls any more.
    after = fleet_server.stats.requests
    await asyncio.sleep(0.2)
    assert fleet_server.stats.requests == after and poller.in_flight == 0

    # A sweep given an already-set stop starts nothing.
    report, kept = await poller.sweep(devices, spread_s=HOUR * SPREAD_FRACTION, stop=stop)
    assert report.stopped and report.devices == 0 and kept == []

"""FarmService: re-scan, poll, alert and roll up on their own schedules, end to end on loopback devices."""

from __future__ import annotations

import asyncio

from farm_devices import Antminer, Servers, chain

from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore


async def test_service_discovers_polls_and_alerts(servers: Servers, store: FarmStore) -> None:
    hot = Antminer(chains=[chain(0, chip=99), chain(1), chain(2)])
    p1, p2 = await servers.antminer(Antminer()), await servers.antminer(hot)
    cfg = FarmServiceConfig(scan_cidrs=("127.0.0.1/32",), scan_ports={DriverKind.CGMINER: (p1, p2)},
                            rescan_interval_s=3600, poll_interval_s=0.2, deadline_s=2.0)
    svc = FarmService(store, cfg)
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(20):
            while not (svc.last_sweep and svc.last_sweep.devices == 2):
                await svc.swept.wait()
                svc.swept.clear()
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    states = {s.device.address.port: s.state for s in store.statuses()}
    assert states == {p1: DeviceState.OK, p2: DeviceState.OK}
    assert [(a.kind, a.device_id.endswith(f":{p2}")) for a in store.open_alerts()] == [("overheat", True)]
    assert svc.router().prefix == "/farm"

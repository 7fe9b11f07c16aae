"""FarmService: re-scan, poll, alert and roll up on their own schedules, end to end on loopback devices."""

from __future__ import annotations

import asyncio
import socket

from farm_devices import Antminer, Servers, chain

from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.web.farm import service_router


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
    assert service_router(svc).prefix == "/farm"


async def test_service_curtails_when_the_price_is_above_strike(servers: Servers, store: FarmStore) -> None:
    from farm_devices import Antminer as A

    from pithead.farm.curtailment import CurtailmentPolicy
    from pithead.farm.drivers import default_drivers
    from pithead.farm.energy import PriceSchedule

    with socket.socket() as s:  # no web interface on the fake devices: sleep goes through the API
        s.bind(("127.0.0.1", 0))
        no_web = int(s.getsockname()[1])
    hungry, lean = A(power_w=6000.0), A(power_w=2500.0)
    p1, p2 = await servers.antminer(hungry), await servers.antminer(lean)
    cfg = FarmServiceConfig(scan_cidrs=("127.0.0.1/32",), scan_ports={DriverKind.CGMINER: (p1, p2)},
                            poll_interval_s=0.2, deadline_s=2.0,
                            curtailment=CurtailmentPolicy(80.0, min_on_s=0.0, max_switches_per_step=1))
    svc = FarmService(store, cfg, drivers=default_drivers(antminer_web_port=no_web),
                      prices=PriceSchedule.flat(300.0))
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(20):
            while not hungry.sleeping:
                await svc.swept.wait()
                svc.swept.clear()
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    assert hungry.sleeping  # least efficient first; one per step
    sleep_audit = [a for a in store.audit_log() if a.action == "sleep" and a.outcome == "ok"]
    first = min(sleep_audit, key=lambda a: a.id)
    assert first.device_id.endswith(f":{p1}") and first.actor == "curtailment"

"""The farm API's power endpoints, behind the farm token, against a simulated fleet on loopback."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from pithead.farm.actions import ActionService
from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.poller import Poller
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer
from pithead.web.farm import FarmAuth, make_router

pytestmark = pytest.mark.timeout(120)
TOKEN = "power-test-token-0123456789"


async def test_power_endpoints_need_the_token_and_act_through_the_firmware() -> None:
    fleet = Fleet.build(4, mix="s19jpro-lux:1,s19xp:3", seed=3, clock=ManualClock())
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    await srv.start()
    api, web = srv.bound_ports()
    store = FarmStore(":memory:")
    try:
        devices = [Device(DeviceAddress(d.ip, api, DriverKind.CGMINER), Identity("x", d.spec.key),
                          Labels(site="east")) for d in fleet]
        store.upsert_devices(devices)
        shared = AsyncFarmStore(store)
        actions = ActionService(shared, default_drivers(antminer_web_port=web), clock=fleet.now)
        app = FastAPI()
        app.include_router(make_router(shared, actions, auth=FarmAuth(TOKEN)))
        lux = next(d for d, s in zip(devices, fleet, strict=True) if s.spec.key == "s19jpro-lux")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
            r = await anon.post(f"/farm/api/devices/{lux.id}/power", json={"watts": 2000, "actor": "eve"})
            assert r.status_code == 401
            r = await anon.post("/farm/api/power/site", json={"kw": 1, "actor": "eve"})
            assert r.status_code == 401
        assert store.audit_log() == []  # refused before anything was written or sent
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            r = await c.post(f"/farm/api/devices/{lux.id}/power", json={"watts": 2000, "actor": "ops"})
            assert r.status_code == 200 and r.json()["ok"], r.text
            # the highest built-in profile at or below 2000 W: 370 MHz / 12.65 V, 1871 W
            assert r.json()["level"] == "370MHz" and r.json()["expected_w"] == 1871.0
            assert (await c.post(f"/farm/api/devices/{lux.id}/power", json={"watts": -3, "actor": "ops"})
                    ).status_code == 422
            assert (await c.post("/farm/api/devices/cgminer://10.9.9.9:4028/power",
                                 json={"watts": 2000, "actor": "ops"})).status_code == 404
            assert (await c.post("/farm/api/power/site", json={"kw": 5, "actor": "ops", "site": "west"})
                    ).status_code == 422
            # the site: one LuxOS unit and three stock S19 XP (sleep/normal only); readings first
            await Poller(actions.drivers).sweep(devices, lambda rs: shared.call(FarmStore.write_results, rs))
            r = await c.post("/farm/api/power/site", json={"kw": 6.5, "within_s": 60, "actor": "grid",
                                                          "site": "east"})
            assert r.status_code == 202, r.text
            plan = r.json()["plan"]
            assert plan["budget_kw"] == 6.5 and plan["steps"]
            for _ in range(200):  # the background request re-reads the site every 5 s
                st = (await c.get("/farm/api/power/site")).json()
                if not st["running"]:
                    break
                await asyncio.sleep(0.1)
            assert not st["running"] and st["report"]["reached"], st
            assert st["report"]["site_kw"] <= 6.5
            assert fleet.totals()["power_kw"] <= 6.5
        acts = {(a.action, a.actor, a.params.get("auth")) for a in store.audit_log()}
        assert ("set_power", "ops", "token") in acts
        assert any(a[1] == "grid" and a[2] == "token" for a in acts)
    finally:
        store.close()
        await srv.close()

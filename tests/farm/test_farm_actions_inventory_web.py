"""Audited actions and curtailment execution, CIDR inventory scans with labels, and the web router."""

from __future__ import annotations

import socket

import httpx
import pytest
from farm_devices import Antminer, Bitaxe, Servers
from fastapi import FastAPI

from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.curtailment import CurtailmentPolicy, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import PoolSpec
from pithead.farm.energy import PriceSchedule
from pithead.farm.inventory import InventoryError, Labeler, Scanner, expand_targets
from pithead.farm.model import Device, DeviceAddress, DeviceState, DriverKind, Identity, Labels
from pithead.farm.poller import Poller
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import FarmAuth, make_router


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_actions_are_audited(servers: Servers, store: FarmStore) -> None:
    dev = Antminer(privileged=True)
    port = await servers.antminer(dev)
    d = Device(DeviceAddress("127.0.0.1", port, DriverKind.CGMINER), Identity("Antminer", "Antminer S19 XP"))
    store.upsert_devices([d])
    svc = ActionService(AsyncFarmStore(store), default_drivers(), clock=lambda: 42.0)
    assert (await svc.reboot(d.id, "alice")).ok and dev.restarts == 1
    res = await svc.set_pools(d.id, [PoolSpec("stratum+tcp://10.1.1.1:3333", "acct.w1", "secret")], "bob")
    assert res.ok and dev.pools == [("stratum+tcp://10.1.1.1:3333", "acct.w1")]
    dev.privileged = False
    denied = await svc.switch_pool(d.id, 0, "carol")
    assert not denied.ok and "Access denied" in (denied.error or "")
    unknown = await svc.reboot("cgminer://10.9.9.9:4028", "dave")
    assert not unknown.ok
    log = {a.id: a for a in store.audit_log()}
    assert [(log[i].actor, log[i].action, log[i].outcome) for i in sorted(log)] == [
        ("alice", "reboot", "ok"), ("bob", "set_pools", "ok"), ("carol", "switch_pool", "failed"),
        ("dave", "reboot", "invalid")]
    assert "secret" not in str(log[2].params)  # passwords never reach the audit log
    assert log[1].finished == 42.0


async def test_curtailment_round_trip_on_live_devices(servers: Servers, store: FarmStore) -> None:
    """Poll three devices, decide at a high price, sleep the least efficient, then bring it back."""
    efficient = Antminer(power_w=3000.0)  # ~140 TH/s -> ~21 J/TH
    hungry = Antminer(power_w=5000.0)  # ~36 J/TH
    stock = Antminer(power_w=4200.0, can_sleep=False)  # ~30 J/TH, firmware cannot sleep
    devs = []
    for i, a in enumerate((efficient, hungry, stock)):
        port = await servers.antminer(a)
        devs.append(Device(DeviceAddress("127.0.0.1", port, DriverKind.CGMINER), Identity("Antminer", "Antminer S19 XP"),
                           Labels("s", "r", str(i))))
    store.upsert_devices(devs)
    drivers = default_drivers()
    await Poller(drivers).sweep(devs, store.write_results)
    now = 100_000.0
    svc = ActionService(AsyncFarmStore(store), drivers, clock=lambda: now)
    pol = CurtailmentPolicy(strike_price_per_mwh=80.0, max_switches_per_step=2)
    d = decide(machines_from_statuses(store.statuses(), store.curtailment()), 150.0, now, pol)
    assert d.power_down == (devs[1].id, devs[2].id)
    results = {r.device_id: r for r in await apply_decision(d, svc)}
    assert results[devs[1].id].ok and hungry.sleeping
    assert not results[devs[2].id].ok and not stock.sleeping  # could not sleep: not marked curtailed
    states = {s.device.id: s.state for s in store.statuses()}
    assert states[devs[1].id] is DeviceState.CURTAILED and states[devs[2].id] is DeviceState.OK
    now += 600.0
    d2 = decide(machines_from_statuses(store.statuses(), store.curtailment()), 20.0, now, pol)
    assert d2.power_up == (devs[1].id,)
    await apply_decision(d2, svc)
    assert not hungry.sleeping and store.curtailment()[devs[1].id][0] is False
    assert [a.action for a in store.audit_log(devs[1].id)] == ["wake", "sleep"]


async def test_scan_finds_and_labels_devices(servers: Servers, store: FarmStore) -> None:
    a1, a2 = Antminer(model="Antminer S19 XP"), Antminer(model="Antminer S21")
    p1, p2 = await servers.antminer(a1), await servers.antminer(a2)
    bx = await servers.http(Bitaxe().handle)
    frozen = await servers.frozen("127.0.0.2")  # a hung device on a host of its own
    labeler = Labeler.from_csv("cidr,site,rack\n127.0.0.0/8,lab,R1\n127.0.0.1/32,lab,R9\n")
    scanner = Scanner(default_drivers(), {DriverKind.CGMINER: (p1, p2, frozen), DriverKind.AXEOS: (bx,)},
                      labeler=labeler, identify_timeout_s=2.0)
    rep = await scanner.scan(["127.0.0.1/32", "127.0.0.2"])
    assert rep.hosts == 2 and rep.probes == 8 and rep.open_ports == 4
    models = {d.address.port: (d.address.driver, d.identity.model, d.labels) for d in rep.found}
    assert models[p1][:2] == (DriverKind.CGMINER, "Antminer S19 XP")
    assert models[p2][:2] == (DriverKind.CGMINER, "Antminer S21")
    assert models[bx][:2] == (DriverKind.AXEOS, "BM1370")
    assert models[p1][2] == Labels("lab", "R9", f"1:{p1}")  # most specific rule; host shared -> port in position
    assert [f[0] for f in rep.failures] == [f"127.0.0.2:{frozen}"]  # frozen: open but not identified
    assert store.upsert_devices(rep.found) == 3 and store.upsert_devices(rep.found) == 0


def test_expand_targets_bounds() -> None:
    assert expand_targets(["10.0.0.0/30"]) == ["10.0.0.1", "10.0.0.2"]
    assert expand_targets(["10.0.0.5", "10.0.0.4/31", "10.0.0.5/32"]) == ["10.0.0.5", "10.0.0.4"]
    with pytest.raises(InventoryError):
        expand_targets(["10.0.0.0/8"])
    with pytest.raises(InventoryError):
        expand_targets(["10.0.0.300"])


async def test_web_router(servers: Servers, store: FarmStore) -> None:
    dev = Antminer(power_w=3000.0)
    port = await servers.antminer(dev)
    d = Device(DeviceAddress("127.0.0.1", port, DriverKind.CGMINER), Identity("Antminer", "Antminer S19 XP"),
               Labels("north", "A1", "01"))
    down = Device(DeviceAddress("127.0.0.1", closed_port(), DriverKind.CGMINER), Identity("Antminer", "Antminer S19"),
                  Labels("north", "A1", "02"))
    store.upsert_devices([d, down])
    drivers = default_drivers()
    await Poller(drivers, deadline_s=1.0).sweep([d, down], store.write_results)
    store.open_alert(down.id, "offline", "critical", "down", 1.0)
    app = FastAPI()
    token = "router-test-token-0123456789"
    shared = AsyncFarmStore(store)
    app.include_router(make_router(shared, ActionService(shared, drivers), PriceSchedule.flat(50.0), lambda: 0.05,
                                   auth=FarmAuth(token)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        page = await c.get("/farm/")
        assert page.status_code == 200 and "rack map" in page.text.lower()
        assert "http://" not in page.text and "https://" not in page.text  # no CDN or external asset
        devices = (await c.get("/farm/api/devices")).json()
        by_id = {x["id"]: x for x in devices}
        assert by_id[d.id]["colour"] == "ok" and by_id[d.id]["power_w"] == 3000.0
        assert by_id[down.id]["colour"] == "error" and by_id[down.id]["state"] == "unreachable"
        only_down = (await c.get("/farm/api/devices", params={"state": "unreachable"})).json()
        assert [x["id"] for x in only_down] == [down.id]
        page2 = (await c.get("/farm/api/devices", params={"site": "north", "offset": 1, "limit": 1})).json()
        assert [x["position"] for x in page2] == ["02"]
        assert (await c.get("/farm/api/devices", params={"limit": 0})).status_code == 422
        racks = (await c.get("/farm/api/racks")).json()
        assert [c_["position"] for c_ in racks["sites"]["north"]["A1"]] == ["01", "02"]
        assert (await c.get("/farm/api/alerts")).json()[0]["device_id"] == down.id
        energy = (await c.get("/farm/api/energy")).json()
        assert energy["price_per_mwh"] == 50.0 and energy["fleet"]["power_w"] == 3000.0
        # the page always finds its labels endpoint (no 404 in the browser console); empty unless given
        assert (await c.get("/farm/api/notes")).json() == {}
        # ids contain "://": they pass through the path converter as they are
        r = await c.post(f"/farm/api/devices/{d.id}/reboot", json={"actor": "web-user"})
        assert r.status_code == 200 and r.json()["ok"] and dev.restarts == 1
        bad = await c.post(f"/farm/api/devices/{d.id}/pools", json={"actor": "x", "pools": [{"url": "http://x", "user": "u"}]})
        assert bad.status_code == 422
        missing = await c.post("/farm/api/devices/cgminer://10.9.9.9:4028/reboot", json={"actor": "x"})
        assert missing.status_code == 404
        hist = (await c.get(f"/farm/api/devices/{d.id}/history", params={"since": 0})).json()
        assert len(hist) == 1 and hist[0]["state"] == "ok"
        per_device = (await c.get("/farm/api/energy", params={"devices": "true"})).json()["devices"]
        assert {x["key"] for x in per_device} == {d.id, down.id}
        store.rollup(until=hist[0]["time"] + 7200)
        rolled = (await c.get("/farm/api/rollups", params={"bucket_s": 300, "device_id": d.id})).json()
        assert len(rolled) == 1 and rolled[0]["samples"] == 1 and rolled[0]["avg_power_w"] == 3000.0
        assert (await c.get("/farm/api/rollups", params={"bucket_s": 7})).status_code == 422
        audit = (await c.get("/farm/api/audit")).json()
        assert audit[0]["actor"] == "web-user" and audit[0]["outcome"] == "ok"
        assert audit[0]["params"] == {"auth": "token"}  # what let the action through


async def test_web_router_serves_the_labels_it_is_given(store: FarmStore) -> None:
    app = FastAPI()
    app.include_router(make_router(AsyncFarmStore(store), None, PriceSchedule.flat(60.0), lambda: 0.06,
                                   notes={"price": "demo price"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/farm/api/notes")).json() == {"price": "demo price"}

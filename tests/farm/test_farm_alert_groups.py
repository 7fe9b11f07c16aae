"""Alerts a big site can read: a dark rack or site is one alert with its count, flapping is damped, alerts
are acknowledged and silenced (store and API), and evaluation split by rack gives the same alerts."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from test_farm_store import device, fail

from pithead.events import Notice
from pithead.farm.alert_groups import Placement, Wanted, group, rack_partition, silenced
from pithead.farm.alerts import AlertEvent, AlertManager, AlertThresholds, NoticeAlertSink
from pithead.farm.model import Board, Device, DeviceState, Fan, PollResult, Reading
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import FarmAuth, make_router

T = AlertThresholds()
TOKEN = "farm-alerts-token-0123456789abcdef"


def ok(d: Device, t: float, chip: float = 70.0) -> PollResult:
    """A healthy reading of the test's S19 XP (3 boards, 4 fans), but for its chip temperature."""
    boards = tuple(Board(i, 46.7, 110, 110, 55.0, chip) for i in range(3))
    fans = tuple(Fan(i, 4000) for i in range(4))
    return PollResult(d.id, t, DeviceState.OK, Reading(d.id, t, 140.0, 140.0, boards, fans, 3000.0))


class Told:
    """An alert sink that keeps what it was handed."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def deliver(self, events: list[AlertEvent]) -> None:
        self.events.extend(events)


def fleet(store: FarmStore, racks: dict[tuple[str, str], int]) -> dict[tuple[str, str], list[Device]]:
    out: dict[tuple[str, str], list[Device]] = {}
    i = 1
    for (site, rack), n in racks.items():
        out[(site, rack)] = [device(i + k, site, rack) for k in range(n)]
        i += n
    store.upsert_devices([d for ds in out.values() for d in ds])
    return out


def test_a_dark_rack_is_one_alert_with_its_count_and_the_count_follows(store: FarmStore) -> None:
    racks = fleet(store, {("s1", "r1"): 10, ("s1", "r2"): 10})
    r1, r2 = racks[("s1", "r1")], racks[("s1", "r2")]
    store.write_results([ok(d, 0.0) for d in r1 + r2])
    store.write_results([fail(d, 60.0) for d in r1[:8]] + [fail(d, 60.0) for d in r2[:2]])
    told = Told()
    mgr = AlertManager(T, sinks=[told], group_min=5)
    mgr.run_once(store, 60.0 + T.offline_after_s)
    opened = {(a.device_id, a.machines) for a in store.open_alerts()}
    assert opened == {("rack:s1/r1", 8), (r2[0].id, 1), (r2[1].id, 1)}  # 2 in r2: below the group size
    rack_alert = next(a for a in store.open_alerts() if a.device_id == "rack:s1/r1")
    assert rack_alert.message.startswith("8 of 10 machines of rack r1 at s1 offline")
    assert len(told.events) == 3
    # two more machines of r1 go dark: the same alert, its count moves, nothing new is told
    store.write_results([fail(d, 300.0) for d in r1[8:]])
    mgr.run_once(store, 300.0 + T.offline_after_s)
    after = [a for a in store.open_alerts() if a.device_id == "rack:s1/r1"]
    assert [(a.id, a.machines) for a in after] == [(rack_alert.id, 10)] and len(told.events) == 3
    assert after[0].message.startswith("10 of 10 machines")
    # the rack comes back: the one alert resolves
    store.write_results([ok(d, 600.0) for d in r1])
    mgr.run_once(store, 600.0)
    assert [e.device_id for e in told.events[3:]] == ["rack:s1/r1"] and told.events[3].action == "resolved"


class Phone:
    """A notice sink that keeps the notices."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


def test_a_dark_site_is_one_alert_and_one_notice_with_its_count(store: FarmStore) -> None:
    racks = fleet(store, {("north", "a"): 6, ("north", "b"): 6, ("south", "c"): 6})
    north = racks[("north", "a")] + racks[("north", "b")]
    store.write_results([fail(d, 0.0, DeviceState.UNREACHABLE) for d in north])
    store.write_results([ok(d, 0.0) for d in racks[("south", "c")]])
    phone = Phone()
    AlertManager(T, group_min=5, sinks=[NoticeAlertSink(phone)]).run_once(store, T.offline_after_s + 1)
    [notice] = phone.notices
    assert notice.title == "Farm: site:north (12 machines) offline" and notice.severity == "critical"
    assert [(a.device_id, a.kind, a.machines) for a in store.open_alerts()] == [("site:north", "offline", 12)]
    assert store.open_alerts()[0].message.startswith("12 of 12 machines of site north offline")


def test_a_machine_with_its_own_alert_keeps_it_when_its_rack_is_grouped() -> None:
    items = [Wanted(f"d{i}", "offline", "critical", "down") for i in range(6)]
    where = {f"d{i}": Placement("s", "r") for i in range(6)}
    out = group(items, where, {("s", "r"): 6}, 5, open_keys={("d3", "offline")})
    assert sorted(w.key for w in out) == ["d3", "rack:s/r"]
    assert group(items, where, {("s", "r"): 6}, 0) == items  # grouping off


def test_flapping_is_damped(store: FarmStore) -> None:
    d = fleet(store, {("s1", "r1"): 1})[("s1", "r1")][0]
    told = Told()
    mgr = AlertManager(T, sinks=[told], open_after_s=120.0, clear_after_s=300.0)
    hot, cool = 95.0, 60.0
    # the chip crosses the limit on every other poll: held for 60 s at most, it never opens
    for minute in range(6):
        t = minute * 60.0
        store.write_results([ok(d, t, chip=hot if minute % 2 == 0 else cool)])
        mgr.run_once(store, t)
    assert told.events == [] and store.open_alerts() == []
    # hot for good: opens once it has held 120 s
    for t in (360.0, 420.0, 480.0):
        store.write_results([ok(d, t, chip=hot)])
        mgr.run_once(store, t)
    assert [(e.action, e.kind, e.time) for e in told.events] == [("opened", "overheat", 480.0)]
    # cool, hot, cool...: stays open (no resolve before 300 s clear), then resolves once
    for k, t in enumerate(540.0 + 60.0 * m for m in range(12)):
        store.write_results([ok(d, t, chip=hot if k == 2 else cool)])
        mgr.run_once(store, t)
    assert [(e.action, e.time) for e in told.events] == [("opened", 480.0), ("resolved", 1020.0)]  # 720 + 300


def test_offline_is_not_delayed_twice(store: FarmStore) -> None:
    d = fleet(store, {("s1", "r1"): 1})[("s1", "r1")][0]
    store.write_results([fail(d, 0.0)])
    AlertManager(T, open_after_s=120.0).run_once(store, T.offline_after_s)
    assert [a.kind for a in store.open_alerts()] == ["offline"]


def test_silenced_changes_are_stored_but_not_delivered(store: FarmStore) -> None:
    racks = fleet(store, {("s1", "r1"): 3, ("s1", "r2"): 1})
    r1, r2 = racks[("s1", "r1")], racks[("s1", "r2")]
    store.add_silence("rack:s1/r1", "overheat", 1000.0, "alice", "swapping fans", now=0.0)
    store.add_silence(r2[0].id, None, 50.0, "alice", "", now=0.0)
    told = Told()
    mgr = AlertManager(T, sinks=[told])
    store.write_results([ok(d, 10.0, chip=95.0) for d in r1 + r2])
    events = mgr.run_once(store, 10.0)
    assert len(events) == 4 and len(store.open_alerts()) == 4  # all stored
    assert told.events == []  # r1's overheat (its rack) and r2's (the machine, every kind) are silenced
    store.write_results([ok(d, 100.0) for d in r2])  # r2's silence has ended by now
    mgr.run_once(store, 100.0)
    assert [(e.action, e.device_id) for e in told.events] == [("resolved", r2[0].id)]
    assert silenced("rack:s1/r1", "offline", None, [("site:s1", None)])
    assert not silenced("rack:s1/r1", "offline", None, [("site:s1", "overheat")])
    with pytest.raises(Exception, match="within 30 days"):
        store.add_silence("*", None, 10**9, "alice", "", now=0.0)
    with pytest.raises(Exception, match="bad silence target"):
        store.add_silence("a\nb", None, 10.0, "alice", "", now=0.0)


def test_partitions_by_rack_give_the_fleet_its_alerts_and_leave_each_other_alone(farm_store: FarmStore) -> None:
    layout = {("s1", f"r{k}"): 6 for k in range(7)}
    racks = fleet(farm_store, layout)
    assert {rack_partition(s, r, 2) for s, r in layout} == {0, 1}  # both partitions have racks here
    everyone = [d for ds in racks.values() for d in ds]
    healthy = racks[("s1", "r6")]  # so the site is not dark as a whole: rack alerts, in both evaluations
    farm_store.write_results([ok(d, 0.0) if d in healthy else fail(d, 0.0) if i % 3 == 0 else ok(d, 0.0, chip=95.0)
                              for i, d in enumerate(everyone)])
    now = T.offline_after_s
    parts = [farm_store.partition_statuses(i, 2) for i in range(2)]
    assert sorted(st.device.id for p in parts for st in p) == sorted(d.id for d in everyone)
    assert all(rack_partition(st.device.labels.site, st.device.labels.rack, 2) == i
               for i, p in enumerate(parts) for st in p)
    a, b = AlertManager(T, group_min=4), AlertManager(T, group_min=4)
    a.evaluate(farm_store, now, parts[0])
    b.evaluate(farm_store, now, parts[1])
    b.evaluate(farm_store, now + 60, farm_store.partition_statuses(1, 2))  # b again: a's alerts stay
    split = sorted((x.device_id, x.kind, x.machines) for x in farm_store.open_alerts())
    for x in farm_store.open_alerts():
        farm_store.resolve_alert(x.id, now)
    AlertManager(T, group_min=4).evaluate(farm_store, now)
    whole = sorted((x.device_id, x.kind, x.machines) for x in farm_store.open_alerts())
    assert split == whole and ("rack:s1/r0", "overheat", 4) in whole


async def test_ack_and_silence_through_the_api(store: FarmStore) -> None:
    d = fleet(store, {("s1", "r1"): 1})[("s1", "r1")][0]
    store.write_results([ok(d, 10.0, chip=95.0)])
    AlertManager(T).run_once(store, 10.0)
    alert_id = store.open_alerts()[0].id
    app = FastAPI()
    app.include_router(make_router(AsyncFarmStore(store), auth=FarmAuth(TOKEN), clock=lambda: 20.0))
    auth = {"authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app, client=("192.168.1.20", 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://farm.lan:8081") as c:
        assert (await c.post(f"/farm/api/alerts/{alert_id}/ack", json={"actor": "bob"})).status_code == 401
        r = await c.post(f"/farm/api/alerts/{alert_id}/ack", json={"actor": "bob"}, headers=auth)
        assert r.status_code == 200 and (r.json()["acked_by"], r.json()["acked_at"]) == ("bob", 20.0)
        assert (await c.post("/farm/api/alerts/999/ack", json={"actor": "bob"}, headers=auth)).status_code == 404
        body = {"target": "rack:s1/r1", "kind": "overheat", "duration_s": 3600, "reason": "fans", "actor": "bob"}
        assert (await c.post("/farm/api/silences", json=body)).status_code == 401
        r = await c.post("/farm/api/silences", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["until"] == 3620.0
        sid = r.json()["id"]
        for bad in ({**body, "kind": "nonsense"}, {**body, "duration_s": -1}, {**body, "duration_s": 1e9},
                    {**body, "target": ""}, {**body, "target": "x\ty"}):
            assert (await c.post("/farm/api/silences", json=bad, headers=auth)).status_code == 422, bad
        [listed] = (await c.get("/farm/api/silences")).json()
        assert (listed["id"], listed["target"], listed["created_by"]) == (sid, "rack:s1/r1", "bob")
        [shown] = (await c.get("/farm/api/alerts")).json()
        assert (shown["silenced"], shown["acked_by"], shown["machines"]) == (True, "bob", 1)
        assert (await c.delete(f"/farm/api/silences/{sid}")).status_code == 401
        assert (await c.delete(f"/farm/api/silences/{sid}", headers=auth)).json() == {"id": sid, "ended": True}
        assert (await c.delete(f"/farm/api/silences/{sid}", headers=auth)).status_code == 404
        assert (await c.get("/farm/api/silences")).json() == []
        assert (await c.get("/farm/api/alerts")).json()[0]["silenced"] is False

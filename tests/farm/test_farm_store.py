"""The farm's store, on SQLite and PostgreSQL alike: inventory, latest status, history with rollups, alerts,
audit, central ingest."""

from __future__ import annotations

import pytest

from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    Identity,
    Labels,
    ModelError,
    PollResult,
    Reading,
)
from pithead.farm.store import FarmStore, FarmStoreError


@pytest.fixture
def store(farm_store: FarmStore) -> FarmStore:
    """Every test of this module runs on SQLite and on PostgreSQL (tests/farm/conftest.py)."""
    return farm_store


def device(i: int, site: str = "s1", rack: str = "r1") -> Device:
    return Device(DeviceAddress(f"10.0.0.{i}", 4028, DriverKind.CGMINER),
                  Identity("Antminer", "Antminer S19 XP", expected_boards=3, expected_fans=4),
                  Labels(site, rack, str(i)), 0.0, 0.0)


def ok(d: Device, t: float, ths: float = 140.0, power: float | None = 3000.0, chip: float = 70.0) -> PollResult:
    r = Reading(d.id, t, ths, 140.0, (Board(0, ths, 110, 110, 55.0, chip),), (Fan(0, 3000),), power)
    return PollResult(d.id, t, DeviceState.OK, r)


def fail(d: Device, t: float, state: DeviceState = DeviceState.TIMEOUT) -> PollResult:
    return PollResult(d.id, t, state, error="no answer")


def test_model_invariants() -> None:
    d = device(1)
    with pytest.raises(ModelError):
        PollResult(d.id, 0.0, DeviceState.TIMEOUT, error=None)  # an error state must say why
    with pytest.raises(ModelError):
        PollResult(d.id, 0.0, DeviceState.OK)  # OK needs a reading
    with pytest.raises(ModelError):
        PollResult(d.id, 0.0, DeviceState.TIMEOUT, ok(d, 0).reading, error="x")  # a timeout has no reading
    with pytest.raises(ModelError):
        Reading(d.id, 0.0, -1.0)
    with pytest.raises(ModelError):
        DeviceAddress("10.0.0.1", 0, DriverKind.CGMINER)
    assert Board(0, 0.0, chips=0).missing and Board(0, 1.0, chips=100, expected_chips=110).missing
    assert not Board(0, 1.0, chips=110, expected_chips=110).missing


def test_inventory_upsert_keeps_labels(store: FarmStore) -> None:
    assert store.upsert_devices([device(1), device(2)]) == 2
    store.set_labels(device(1).id, Labels("north", "A7", "3-07"))
    unlabelled = Device(device(1).address, Identity("Antminer", "Antminer S19 XP", firmware="new"), Labels(), 0, 50)
    assert store.upsert_devices([unlabelled]) == 0
    d1 = store.device(device(1).id)
    assert d1.labels == Labels("north", "A7", "3-07") and d1.identity.firmware == "new" and d1.last_seen == 50
    with pytest.raises(FarmStoreError):
        store.set_labels("cgminer://10.9.9.9:4028", Labels("x"))
    with pytest.raises(FarmStoreError):
        store.set_labels(device(2).id, Labels("x" * 100))


def test_status_tracks_failures_and_keeps_last_good_reading(store: FarmStore) -> None:
    d = device(1)
    store.upsert_devices([d])
    assert store.statuses()[0].state is DeviceState.UNKNOWN
    store.write_results([ok(d, 100.0)])
    store.write_results([fail(d, 160.0)])
    store.write_results([fail(d, 220.0, DeviceState.UNREACHABLE)])
    st = store.statuses()[0]
    assert st.state is DeviceState.UNREACHABLE and st.failures == 2
    assert st.state_since == 160.0  # down since the first failure, whichever error kind
    assert st.reading is not None and st.reading.hashrate_ths == 140.0 and st.last_ok == 100.0
    store.write_results([ok(d, 280.0, ths=120.0)])
    st = store.statuses()[0]
    assert st.state is DeviceState.OK and st.failures == 0 and st.state_since == 280.0
    assert st.reading is not None and st.reading.hashrate_ths == 120.0
    hist = store.history(d.id, 0.0)
    assert [h["state"] for h in hist] == ["ok", "timeout", "unreachable", "ok"]
    assert hist[1]["hashrate_ths"] is None  # a failed poll is not a zero reading


def test_rollups_and_prune(store: FarmStore) -> None:
    a, b = device(1), device(2)
    store.upsert_devices([a, b])
    for minute in range(10):  # 0..540 s: buckets [0,300) and [300,600)
        t = minute * 60.0
        store.write_results([ok(a, t, ths=100.0 + minute, power=3000.0), fail(b, t) if minute % 2 else ok(b, t, power=None)])
    assert store.rollup(until=600.0, buckets=(300,)) == 4
    rows = {(r.device_id, r.bucket): r for r in store.rollups(300, 0.0)}
    ra0 = rows[(a.id, 0.0)]
    assert ra0.samples == 5 and ra0.ok_samples == 5
    assert ra0.avg_hashrate_ths == pytest.approx(102.0) and ra0.max_hashrate_ths == pytest.approx(104.0)
    assert ra0.energy_wh == pytest.approx(3000.0 * 300 / 3600)
    rb0 = rows[(b.id, 0.0)]
    assert rb0.ok_samples == 3 and rb0.samples == 5 and rb0.energy_wh is None  # no power reported
    # idempotent: a second pass over the same window adds nothing new
    assert store.rollup(until=600.0, buckets=(300,)) == 0
    assert len(store.rollups(300, 0.0)) == 4
    # prune only what is rolled up by every bucket size
    store.rollup(until=3600.0)
    deleted = store.prune(now=10_000.0, retention_s=100.0)
    assert deleted == 20 and store.history(a.id, 0.0) == []


def test_alerts_unique_while_open_and_audit(store: FarmStore) -> None:
    first = store.open_alert("dev", "offline", "critical", "down", 10.0)
    assert first is not None
    assert store.open_alert("dev", "offline", "critical", "down again", 20.0) is None
    store.resolve_alert(first, 30.0)
    again = store.open_alert("dev", "offline", "critical", "down", 40.0)
    assert again is not None and again != first
    assert [a.id for a in store.open_alerts()] == [again]
    aid = store.audit_begin("alice", "dev", "reboot", {"why": "test"}, 5.0)
    assert store.audit_log()[0].outcome == "pending"
    store.audit_end(aid, "ok", None, 6.0)
    row = store.audit_log("dev")[0]
    assert (row.actor, row.action, row.params, row.outcome, row.finished) == ("alice", "reboot", {"why": "test"}, "ok", 6.0)


def test_store_persists_on_disk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "farm.sqlite3"
    d = device(1)
    with FarmStore(path) as s:
        s.upsert_devices([d])
        s.write_results([ok(d, 1.0)])
        s.set_curtailed(d.id, True, 2.0)
    with FarmStore(path) as s:
        st = s.statuses()[0]
        assert st.state is DeviceState.CURTAILED and st.reading is not None
        assert s.curtailment() == {d.id: (True, 2.0)}


def test_status_cache_sees_other_connections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "farm.sqlite3"
    d = device(1)
    with FarmStore(path) as a, FarmStore(path) as b:
        a.upsert_devices([d])
        assert b.statuses()[0].state is DeviceState.UNKNOWN  # b has now cached the statuses
        a.write_results([ok(d, 10.0, ths=123.0)])
        st = b.statuses()[0]  # another connection committed: b reloads
        assert st.state is DeviceState.OK and st.reading is not None and st.reading.hashrate_ths == 123.0
        b.write_results([fail(d, 70.0)])  # b's own write updates its cache the same way as the rows
        st_b, st_a = b.statuses()[0], a.statuses()[0]
        assert st_b == st_a
        assert st_b.state is DeviceState.TIMEOUT and st_b.failures == 1 and st_b.state_since == 70.0

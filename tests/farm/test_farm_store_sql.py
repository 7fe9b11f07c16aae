"""The farm store on its SQL layer: the same behaviour on SQLite and PostgreSQL, several connections (ingest
workers) on one database, and opening a store by URL."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from test_farm_store import device, fail, ok

from pithead.farm.model import DeviceState
from pithead.farm.store import FarmStore, open_farm_store
from pithead.farm.store_sql import FarmDatabaseError, connect


def test_ingest_is_idempotent_and_keeps_the_newest_status(farm_store: FarmStore) -> None:
    a, b = device(1), device(2)
    out = farm_store.ingest("b1", "c0", [a], [ok(a, 100.0), ok(b, 100.0)], now=100.0)
    assert (out.devices_new, out.written, out.unknown) == (1, 1, (1,))  # b is not in the inventory yet
    again = farm_store.ingest("b1", "c0", [a], [ok(a, 100.0)], now=101.0)
    assert again.duplicate_batch and again.written == 0
    # the same reading in another batch is not written twice; an older one is history, not status
    out = farm_store.ingest("b2", "c0", [b], [ok(a, 100.0), ok(a, 40.0, ths=1.0), fail(b, 130.0)], now=130.0)
    assert (out.devices_new, out.written, out.duplicates) == (1, 2, 1)
    farm_store.remove_device(b.id)
    assert farm_store.ingest("b3", "c0", [], [ok(b, 190.0)], now=190.0).removed == (0,)
    sts = {st.device.id: st for st in farm_store.statuses()}
    assert set(sts) == {a.id}
    assert sts[a.id].time == 100.0 and sts[a.id].reading is not None and sts[a.id].reading.hashrate_ths == 140.0
    assert [h["time"] for h in farm_store.history(a.id, 0.0)] == [40.0, 100.0]


def test_a_second_connection_sees_the_writes_and_its_own(farm_url: str) -> None:
    d = device(1)
    with open_farm_store(farm_url) as a, open_farm_store(farm_url) as b:
        a.upsert_devices([d])
        assert b.statuses()[0].state is DeviceState.UNKNOWN  # b has cached the statuses
        a.write_results([ok(d, 10.0, ths=123.0)])
        st = b.statuses()[0]  # another connection committed: b reloads
        assert st.state is DeviceState.OK and st.reading is not None and st.reading.hashrate_ths == 123.0
        b.write_results([fail(d, 70.0)])
        assert b.statuses() == a.statuses()
        st = a.statuses()[0]
        assert st.state is DeviceState.TIMEOUT and st.failures == 1 and st.state_since == 70.0
        a.set_curtailed(d.id, True, 80.0)
        assert b.statuses()[0].state is DeviceState.CURTAILED


def test_ingest_workers_on_one_database_write_each_batch_once(farm_url: str) -> None:
    """Several ingest workers (one connection each) take batches at once; a batch two of them receive at
    the same moment (a collector's retry landing on another worker) is written by exactly one."""
    workers = 4
    devices = [device(i, rack=f"r{i % 5}") for i in range(1, 201)]
    with open_farm_store(farm_url) as setup:
        setup.upsert_devices(devices)
    stores = [open_farm_store(farm_url) for _ in range(workers)]
    outcomes: list[list[object]] = [[] for _ in range(workers)]
    start = threading.Barrier(workers)

    def work(k: int) -> None:
        start.wait()
        for n in range(10):  # every worker sends the same ten batches: each is written once
            results = [ok(d, 60.0 * n) for d in devices]
            outcomes[k].append(stores[k].ingest(f"batch-{n}", f"c{k}", [], results, now=60.0 * n))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not any(t.is_alive() for t in threads)
        flat = [o for per in outcomes for o in per]
        assert len(flat) == 10 * workers
        written = [o for o in flat if not o.duplicate_batch]  # type: ignore[attr-defined]
        assert len(written) == 10 and all(o.written == 200 for o in written)  # type: ignore[attr-defined]
        hist = stores[0].history(devices[7].id, 0.0)
        assert [h["time"] for h in hist] == [60.0 * n for n in range(10)]
        assert {st.time for st in stores[1].statuses()} == {540.0}
    finally:
        for s in stores:
            s.close()


def test_open_by_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open_farm_store("farm.sqlite3", data_dir=tmp_path) as s:
        assert s.backend == "sqlite" and (tmp_path / "farm.sqlite3").exists()
    with open_farm_store(f"sqlite:///{tmp_path}/sub/f.sqlite3") as s:
        s.upsert_devices([device(1)])
    with open_farm_store(tmp_path / "sub" / "f.sqlite3") as s:
        assert [d.id for d in s.devices()] == [device(1).id]
    with pytest.raises(FarmDatabaseError, match="unknown farm database URL"):
        connect("mysql://x/y")
    with pytest.raises(FarmDatabaseError, match="bad PostgreSQL schema name"):
        connect("postgresql://postgres@127.0.0.1:5432/test?schema=Robert';drop")


def test_mark_stale_leaves_curtailed_removed_and_fresh_devices_alone(farm_store: FarmStore) -> None:
    quiet, fresh, curtailed, removed, down = (device(i) for i in range(1, 6))
    farm_store.upsert_devices([quiet, fresh, curtailed, removed, down])
    farm_store.write_results([ok(quiet, 10.0), ok(fresh, 300.0), ok(curtailed, 10.0), ok(removed, 10.0),
                              fail(down, 10.0)])
    farm_store.statuses()  # cached: the marks must reach the cache too
    farm_store.set_curtailed(curtailed.id, True, 20.0)
    farm_store.remove_device(removed.id)
    assert farm_store.mark_stale(200.0, "no reading forwarded") == [quiet.id]
    st = {s.device.id: s for s in farm_store.statuses()}
    assert st[quiet.id].state is DeviceState.UNREACHABLE and st[quiet.id].state_since == 10.0
    assert st[quiet.id].error == "no reading forwarded" and st[quiet.id].reading is not None
    assert st[fresh.id].state is DeviceState.OK and st[curtailed.id].state is DeviceState.CURTAILED
    assert st[down.id].state is DeviceState.TIMEOUT and st[down.id].failures == 1
    assert farm_store.mark_stale(200.0, "again") == []  # marked once
    farm_store.write_results([ok(quiet, 400.0)])  # its collector is back: a newer reading replaces the mark
    assert {s.device.id: s.state for s in farm_store.statuses()}[quiet.id] is DeviceState.OK


def test_an_older_sqlite_farm_database_gets_the_new_alert_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A farm.sqlite3 written before alerts had machines and acks opens, keeps its alerts, and can ack them."""
    path = tmp_path / "farm.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("""CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
                       kind TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL, opened_at REAL NOT NULL,
                       resolved_at REAL)""")
        old.execute("INSERT INTO alerts (device_id, kind, severity, message, opened_at) VALUES "
                    "('cgminer://10.0.0.1:4028', 'offline', 'critical', 'down', 5.0)")
    with FarmStore(path) as s:
        [a] = s.open_alerts()
        assert (a.device_id, a.machines, a.acked_at) == ("cgminer://10.0.0.1:4028", 1, None)
        acked = s.ack_alert(a.id, "carol", 9.0)
        assert (acked.acked_by, acked.acked_at) == ("carol", 9.0)
        assert s.ack_alert(a.id, "dave", 10.0).acked_by == "carol"  # the first ack counts


def test_workers_starting_together_create_the_schema_once(farm_url: str) -> None:
    """Central workers start at the same moment on an empty database: each opens its store without error."""
    n = 4
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def open_one() -> None:
        start.wait()
        try:
            open_farm_store(farm_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)


def test_a_status_cache_trusted_for_a_while_reads_others_writes_after_it(farm_url: str) -> None:
    """`status_max_age_s`: the page's store re-reads the fleet at most that often, whatever others commit;
    its own writes show at once."""
    a_dev, b_dev = device(1), device(2)
    with open_farm_store(farm_url) as writer, open_farm_store(farm_url, status_max_age_s=3600.0) as page:
        writer.upsert_devices([a_dev, b_dev])
        writer.write_results([ok(a_dev, 10.0)])
        assert {s.device.id: s.state for s in page.statuses()}[a_dev.id] is DeviceState.OK  # first read: loads
        writer.write_results([fail(a_dev, 70.0)])
        assert {s.device.id: s.state for s in page.statuses()}[a_dev.id] is DeviceState.OK  # trusted, not re-read
        page.write_results([ok(b_dev, 80.0)])
        assert {s.device.id: s.state for s in page.statuses()}[b_dev.id] is DeviceState.OK  # its own write
        page.status_max_age_s = 0.0  # the while is over
        assert {s.device.id: s.state for s in page.statuses()}[a_dev.id] is DeviceState.TIMEOUT

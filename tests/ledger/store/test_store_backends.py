"""LedgerStore behaviour, identical on SQLite and PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

import pytest

from pithead.events import ShareEvent
from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore, iter_newest
from pithead.ledger.store.records import (
    BatchStatus,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
)

W = 10  # bucket width used by these tests


def share(t: float, worker: str = "addrA.rig1", address: str = "addrA", d: float = 2.0, **kw: object) -> ShareEvent:
    fields: dict[str, object] = {"job_id": "j1", "height": 100, "accepted": True, "share_difficulty": d * 1.5}
    fields.update(kw)
    return ShareEvent(t, worker, address, d, **fields)  # type: ignore[arg-type]


def block(h: str, height: int = 101, status: BlockStatus = BlockStatus.PENDING) -> BlockRecord:
    return BlockRecord(h, height, 1000.0, "addrA.rig1", "addrA", 5_000_000_000, 1234, status, 0, "pplns", 10.0, 1000.0)


def test_shares_feed_raw_rows_buckets_workers_and_round(store: LedgerStore) -> None:
    store.add_shares(
        [
            share(1000.0),
            share(1001.0, d=4.0, share_difficulty=50.0),
            share(1015.0, worker="addrB.x", address="addrB", d=1.0),
            share(1016.0, accepted=False, reject_reason="low-difficulty"),
            share(1017.0, accepted=False, reject_reason="stale"),
            share(1018.0, accepted=False, reject_reason="stale"),
        ],
        W,
    )
    store.add_shares([share(1002.0, d=8.0)], W)  # second batch lands in the same bucket
    assert store.share_count() == 4
    newest = store.newest_shares(None, 10)
    assert [r.time for r in newest] == [1002.0, 1015.0, 1001.0, 1000.0]
    assert [r.id for r in newest] == sorted((r.id for r in newest), reverse=True)
    assert store.newest_shares(newest[1].id, 10) == newest[2:]
    assert [r.time for r in store.recent_shares(10, worker="addrB.x")] == [1015.0]
    assert store.best_shares(1)[0].share_difficulty == 50.0

    a = store.work_since(990.0, worker="addrA.rig1")
    assert (a.shares, a.difficulty_sum, a.best_share) == (3, 14.0, 50.0)
    assert store.work_since(1010.0, worker="addrA.rig1").shares == 0
    assert store.work_since(990.0).shares == 4
    assert store.work_since(990.0, address="addrB").difficulty_sum == 1.0
    assert store.rejects_since(0.0) == {"low-difficulty": 1, "stale": 2}
    assert store.rejects_since(0.0, worker="addrB.x") == {}

    w = store.worker("addrA.rig1")
    assert w is not None
    assert (w.accepted, w.rejected, w.accepted_difficulty) == (3, 3, 14.0)
    assert (w.best_share, w.best_share_time, w.last_share_time, w.first_seen) == (50.0, 1001.0, 1002.0, 1000.0)
    assert [x.worker for x in store.workers()] == ["addrA.rig1", "addrB.x"]
    assert [x.worker for x in store.workers("addrB")] == ["addrB.x"]
    assert store.round_work() == {"addrA": 14.0, "addrB": 1.0}
    store.clear_round_work()
    assert store.round_work() == {}


def test_late_share_does_not_move_last_share_time_back(store: LedgerStore) -> None:
    store.add_shares([share(2000.0)], W)
    store.add_shares([share(1500.0, share_difficulty=1.0)], W)
    w = store.worker("addrA.rig1")
    assert w is not None and w.last_share_time == 2000.0 and w.best_share == 3.0


def test_transaction_is_all_or_nothing(store: LedgerStore) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_shares([share(1000.0)], W)
            store.set_meta("cursor:x", "5-0")
            raise RuntimeError("crash mid-batch")
    assert store.share_count() == 0
    assert store.get_meta("cursor:x") is None
    assert store.worker("addrA.rig1") is None
    with store.transaction():
        store.add_shares([share(1000.0)], W)
        with store.transaction():  # nested joins the outer one
            store.set_meta("cursor:x", "6-0")
    assert store.share_count() == 1 and store.get_meta("cursor:x") == "6-0"


def test_delete_shares_respects_both_bounds(store: LedgerStore) -> None:
    store.add_shares([share(float(t)) for t in range(1000, 1010)], W)
    ids = [r[0] for r in iter_newest(store, 3)]
    assert [r[1:] for r in iter_newest(store, 4)] == [(r.address, r.difficulty) for r in store.newest_shares(None, 100)]
    assert len(ids) == 10 and ids == sorted(ids, reverse=True)
    cut = ids[4]  # keep the newest five by id...
    assert store.delete_shares_before(cut, 1003.0) == 3  # ...but only delete those also older than 1003
    assert [r.time for r in store.newest_shares(None, 100)][-1] == 1003.0
    # buckets are untouched by pruning raw shares
    assert store.work_since(0.0).shares == 10


def test_coarsening_buckets_keeps_totals(store: LedgerStore) -> None:
    events = [share(float(t), d=float(t % 7 + 1)) for t in range(0, 7200, 37)]
    events += [share(float(t), accepted=False, reject_reason="dup") for t in range(5, 7200, 301)]
    store.add_shares(events, W)
    before = store.work_since(0.0)
    rejects = store.rejects_since(0.0)
    hist_before = store.work_history(0.0, 3600)
    moved = store.coarsen_buckets(3600.0, W, 3600)
    assert moved > 0
    after = store.work_since(0.0)
    assert (after.shares, after.best_share) == (before.shares, before.best_share)
    assert after.difficulty_sum == pytest.approx(before.difficulty_sum)
    assert store.rejects_since(0.0) == rejects
    assert [(t, s.shares) for t, s in store.work_history(0.0, 3600)] == [(t, s.shares) for t, s in hist_before]
    assert store.coarsen_buckets(3600.0, W, 3600) == 0  # nothing left to move
    store.delete_buckets_before(3600.0, 3600)
    assert store.work_since(0.0).shares == before.shares - hist_before[0][1].shares
    with pytest.raises(StoreError):
        store.coarsen_buckets(0.0, 7, 3600)


def test_blocks_and_credits_move_together(store: LedgerStore) -> None:
    assert store.add_block(block("aa"))
    assert not store.add_block(block("aa"))  # the same block twice is one block
    store.add_credits(
        [
            CreditRecord("addrA", 3_000, CreditKind.BLOCK, CreditStatus.IMMATURE, 1000.0, "aa"),
            CreditRecord("addrB", 2_000, CreditKind.BLOCK, CreditStatus.IMMATURE, 1000.0, "aa"),
            CreditRecord("addrB", 500, CreditKind.PPS, CreditStatus.MATURE, 1000.0),
        ]
    )
    bal = {b.address: b for b in store.balances()}
    assert (bal["addrA"].immature_sat, bal["addrA"].mature_sat) == (3_000, 0)
    assert (bal["addrB"].immature_sat, bal["addrB"].payable_sat) == (2_000, 500)
    store.set_block_status("aa", BlockStatus.CONFIRMED, 100, 2000.0)
    got = store.get_block("aa")
    assert got is not None and got.status is BlockStatus.CONFIRMED and got.confirmations == 100
    bal = {b.address: b for b in store.balances()}
    assert (bal["addrA"].immature_sat, bal["addrA"].payable_sat) == (0, 3_000)
    assert bal["addrB"].payable_sat == 2_500
    assert {c.status for c in store.credits(block_hash="aa")} == {CreditStatus.MATURE}
    store.add_block(block("bb", 102))
    store.add_credits([CreditRecord("addrA", 7, CreditKind.BLOCK, CreditStatus.IMMATURE, 1.0, "bb")])
    store.set_block_status("bb", BlockStatus.ORPHANED, -1, 2000.0)
    assert {b.address: b for b in store.balances()}["addrA"].immature_sat == 0
    assert [b.hash for b in store.blocks(10)] == ["bb", "aa"]
    assert [b.hash for b in store.blocks(10, [BlockStatus.ORPHANED])] == ["bb"]
    with pytest.raises(StoreError):
        store.set_block_status("nope", BlockStatus.CONFIRMED, 1, 0.0)


def test_payout_batches_reserve_then_pay(store: LedgerStore) -> None:
    store.add_credits([CreditRecord("addrA", 10_000, CreditKind.PPS, CreditStatus.MATURE, 1.0)])
    batch = store.create_batch({"addrA": 6_000}, 5.0)
    assert batch.status is BatchStatus.INTENT and batch.total_sat == 6_000
    bal = store.balances()[0]
    assert (bal.reserved_sat, bal.paid_sat, bal.payable_sat) == (6_000, 0, 4_000)
    store.update_batch(batch.id, BatchStatus.SENT, 6.0, txid="ab" * 32)
    bal = store.balances()[0]
    assert (bal.reserved_sat, bal.paid_sat, bal.payable_sat) == (0, 6_000, 4_000)
    store.update_batch(batch.id, BatchStatus.CONFIRMED, 7.0)
    (got,) = store.batches()
    assert got.txid == "ab" * 32 and got.status is BatchStatus.CONFIRMED and got.items == (("addrA", 6_000),)
    failed = store.create_batch({"addrA": 4_000}, 8.0)
    store.update_batch(failed.id, BatchStatus.FAILED, 9.0, error="insufficient funds")
    assert store.balances()[0].payable_sat == 4_000  # a failed batch releases its amounts
    assert [b.id for b in store.batches([BatchStatus.FAILED])] == [failed.id]
    with pytest.raises(StoreError):
        store.create_batch({}, 1.0)
    with pytest.raises(StoreError):
        store.update_batch(9999, BatchStatus.SENT, 1.0)


def test_meta_and_migrate_are_idempotent(store: LedgerStore) -> None:
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2"
    store.migrate()
    assert store.get_meta("k") == "2"


def test_store_urls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = open_store("sqlite:///ledger.sqlite3", data_dir=tmp_path)
    s.add_shares([share(1.0)], W)
    s.close()
    assert (tmp_path / "ledger.sqlite3").exists()
    again = open_store(f"sqlite:///{tmp_path}/ledger.sqlite3")
    assert again.share_count() == 1
    assert again._one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[attr-defined]
    again.close()
    mem = open_store("sqlite://:memory:")
    assert mem.share_count() == 0
    with pytest.raises(StoreError):
        open_store("mysql://localhost/x")
    with pytest.raises(StoreError):
        open_store("postgresql://postgres@127.0.0.1:5432/test?schema=Robert');DROP")


def test_postgres_reconnects_after_the_server_drops_it(store: LedgerStore) -> None:
    from pithead.ledger.store.postgres import PostgresStore

    if not isinstance(store, PostgresStore):
        pytest.skip("PostgreSQL connection handling")
    import psycopg

    store.add_shares([share(1.0)], W)
    with psycopg.connect(store.conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store.backend_pid(),))
    with pytest.raises(StoreError):  # the statement that finds the connection dead fails, typed...
        store.share_count()
    assert store.share_count() == 1  # ...and the next one runs on a new connection, in the same schema
    with store.transaction():
        store.add_shares([share(2.0)], W)
    assert store.share_count() == 2


def test_reads_do_not_wait_for_a_writer(store: LedgerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A second connection (the web's) reads balances and batches while the ledger holds a write
    # transaction open: it sees the last committed state and does not block.
    from pithead.ledger.store.postgres import PostgresStore

    store.add_credits([CreditRecord("addrA", 10, CreditKind.PPS, CreditStatus.MATURE, 1.0)])
    if isinstance(store, PostgresStore):
        reader: LedgerStore = open_store(f"{store.conninfo}?schema={store.schema}")
    else:
        reader = open_store(f"sqlite:///{tmp_path}/ledger.sqlite3")
    import sqlite3

    if hasattr(reader, "_conn") and isinstance(reader._conn, sqlite3.Connection):  # type: ignore[attr-defined]
        reader._conn.execute("PRAGMA busy_timeout = 200")  # type: ignore[attr-defined]  # fail fast if it would wait
    try:
        with store.transaction():
            store.add_credits([CreditRecord("addrA", 5, CreditKind.PPS, CreditStatus.MATURE, 2.0)])
            assert [b.mature_sat for b in reader.balances()] == [10]
            assert reader.batches() == []
        assert [b.mature_sat for b in reader.balances()] == [15]
    finally:
        reader.close()


def test_leases_have_one_holder(store: LedgerStore) -> None:
    assert store.try_lease("payouts", "a", now=0.0, until=100.0)
    assert not store.try_lease("payouts", "b", now=50.0, until=150.0)  # held by a
    assert store.try_lease("payouts", "a", now=60.0, until=160.0)  # a renews
    assert store.try_lease("other", "b", now=60.0, until=160.0)  # leases are independent
    store.release_lease("payouts", "b")  # not b's to release
    assert not store.try_lease("payouts", "b", now=70.0, until=170.0)
    store.release_lease("payouts", "a")
    assert store.try_lease("payouts", "b", now=70.0, until=170.0)
    assert store.try_lease("payouts", "a", now=170.0, until=270.0)  # b's expired


def test_racing_connections_never_both_win_a_lease(store: LedgerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from pithead.ledger.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        other: LedgerStore = open_store(f"{store.conninfo}?schema={store.schema}")
    else:
        other = open_store(f"sqlite:///{tmp_path}/ledger.sqlite3")
    rounds = 25
    wins: list[list[bool]] = [[], []]
    barrier = threading.Barrier(2)

    def race(s: LedgerStore, me: int) -> None:
        for r in range(rounds):
            barrier.wait()
            wins[me].append(s.try_lease(f"lease-{r}", f"owner-{me}", 0.0, 100.0))

    threads = [threading.Thread(target=race, args=(s, i)) for i, s in enumerate((store, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert all(a != b for a, b in zip(wins[0], wins[1], strict=True))  # exactly one winner per lease

"""Rejected work costs the book no permanent storage, on SQLite and PostgreSQL.

A worker (and its address) enters the workers table only with its first accepted share; rejects of names
that never had one are counted pool-wide by reason and remote, in minute buckets with a cap on remotes per
bucket, pruned by the rollup, plus one all-time count. Ledgers written before this (a row for every name
that ever sent anything) are migrated: the reject-only rows leave, their counts become the statistics.
"""

from __future__ import annotations

from pithead.events import ShareEvent
from pithead.ledger.ledger import REJECT_STATS_RETENTION_S, Ledger, LedgerSettings
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus
from pithead.ledger.store.sql import MAX_REJECT_REMOTES_PER_BUCKET, OTHER_REMOTES, REJECT_STATS_BUCKET_S

NOW = 1_800_000_000.0
REASONS = ("low-difficulty", "job-not-found", "duplicate")


def reject(worker: str, t: float, reason: str = "low-difficulty", remote: str | None = "10.0.0.1") -> ShareEvent:
    address = worker.split(".")[0]
    return ShareEvent(t, worker, address, 1.0, "j", 5, False, reason, remote=remote)


def accept(worker: str, t: float) -> ShareEvent:
    return ShareEvent(t, worker, worker.split(".")[0], 2.0, "j", 5, True, share_difficulty=3.0, remote="10.0.0.9")


def rows(store: LedgerStore, table: str) -> int:
    return int(store._one(f"SELECT COUNT(*) FROM {table}")[0])  # type: ignore[attr-defined]


def test_names_that_only_ever_send_rejects_never_enter_the_book(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([accept("bcrt1qgood.rig", NOW), reject("bcrt1qgood.rig", NOW + 1, "duplicate")])
    before = store.workers()
    names = 3000
    events = [reject(f"bcrt1qjunk{i}.w{i}", NOW + 2 + i % 50, REASONS[i % 3], f"10.1.{i % 4}.{i % 5}")
              for i in range(names)]
    for i in range(0, names, 1000):
        ledger.apply(events[i : i + 1000])
    assert store.workers() == before  # the workers table is unchanged...
    assert rows(store, "reject_buckets") == 1  # ...and so are the per-worker rejects (the good worker's one)
    # ...while the rejects are counted: pool-wide by reason, by remote, and all time
    assert store.rejects_since(NOW - 60) == {"duplicate": 1 + names // 3, "job-not-found": names // 3,
                                             "low-difficulty": names // 3}
    assert store.rejects_since(NOW - 60, worker="bcrt1qgood.rig") == {"duplicate": 1}
    by_remote = store.rejects_by_remote(NOW - 60, 1000)
    assert sum(r.count for r in by_remote) == names and {r.remote for r in by_remote} <= {
        f"10.1.{a}.{b}" for a in range(4) for b in range(5)}
    totals = store.worker_totals(NOW - 600)
    assert (totals.workers, totals.accepted, totals.rejected, totals.rejected_unknown) == (1, 1, 1, names)
    assert rows(store, "reject_stats") <= len(REASONS) * 20 * 2  # (reason, remote) per minute bucket, two buckets


def test_a_worker_enters_with_its_first_accepted_share(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([reject("bcrt1qlate.rig", NOW), reject("bcrt1qlate.rig", NOW + 1)])
    assert store.worker("bcrt1qlate.rig") is None
    # in one batch: a reject, its first accepted share, another reject: it enters, with both rejects
    ledger.apply([reject("bcrt1qlate.rig", NOW + 2), accept("bcrt1qlate.rig", NOW + 3),
                  reject("bcrt1qlate.rig", NOW + 4, "job-not-found")])
    row = store.worker("bcrt1qlate.rig")
    assert row is not None and (row.accepted, row.rejected) == (1, 2) and row.first_seen == NOW + 2
    assert store.rejects_since(NOW - 60, worker="bcrt1qlate.rig") == {"job-not-found": 1, "low-difficulty": 1}
    ledger.apply([reject("bcrt1qlate.rig", NOW + 5)])  # known now: its rejects are its own
    row = store.worker("bcrt1qlate.rig")
    assert row is not None and row.rejected == 3
    assert store.worker_totals(NOW - 600).rejected_unknown == 2
    assert store.rejects_since(NOW - 60) == {"job-not-found": 1, "low-difficulty": 4}


def test_remotes_per_bucket_are_capped(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    t = NOW // REJECT_STATS_BUCKET_S * REJECT_STATS_BUCKET_S
    many = MAX_REJECT_REMOTES_PER_BUCKET * 3
    for batch in range(3):  # the cap holds across batches too
        ledger.apply([reject(f"bcrt1qx{i}.w", t + batch, remote=f"192.0.2.{i}") for i in range(many)])
    found = store.rejects_by_remote(t, 1000)
    assert len({r.remote for r in found}) == MAX_REJECT_REMOTES_PER_BUCKET + 1
    assert sum(r.count for r in found) == 3 * many
    other = next(r for r in found if r.remote == OTHER_REMOTES)
    assert other.count == 3 * (many - MAX_REJECT_REMOTES_PER_BUCKET)


def test_rollup_forgets_old_reject_statistics(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([reject("bcrt1qold.w", NOW), reject("bcrt1qnew.w", NOW + REJECT_STATS_RETENTION_S)])
    result = ledger.rollup(NOW + REJECT_STATS_RETENTION_S + REJECT_STATS_BUCKET_S)
    assert result.reject_stats_deleted == 1
    assert sum(r.count for r in store.rejects_by_remote(0.0, 10)) == 1
    assert store.worker_totals(NOW).rejected_unknown == 2  # the all-time count stays


def test_an_older_ledger_is_migrated(store: LedgerStore) -> None:
    """A ledger written by an older pithead: reject-only rows for every name, and payout batches without
    the column that says since when one is stuck."""
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([accept("bcrt1qgood.rig", NOW), reject("bcrt1qgood.rig", NOW + 1)])
    exec_ = store._exec  # type: ignore[attr-defined]
    for i in range(5):  # what the older pithead wrote for a name that only sent rejected work
        exec_("INSERT INTO workers (worker, address, first_seen, last_share_time, last_difficulty, best_share,"
              " best_share_time, accepted, rejected, accepted_difficulty) VALUES (?, ?, ?, NULL, 1, 0, NULL, 0, 2, 0)",
              (f"bcrt1qjunk.w{i}", "bcrt1qjunk", NOW))
        exec_("INSERT INTO reject_buckets (worker, width, start, reason, address, count) VALUES (?, 10, ?, ?, ?, 2)",
              (f"bcrt1qjunk.w{i}", int(NOW), "low-difficulty", "bcrt1qjunk"))
    batch = store.create_batch({"bcrt1qgood": 1000}, NOW)
    exec_("DELETE FROM meta WHERE key = 'migrated:reject_only_workers'")
    exec_("ALTER TABLE payout_batches DROP COLUMN stuck_since")
    exec_("DELETE FROM reject_stats")
    exec_("DELETE FROM counters")
    assert len(store.workers()) == 6
    store.migrate()
    assert [w.worker for w in store.workers()] == ["bcrt1qgood.rig"]
    assert rows(store, "reject_buckets") == 1
    assert store.rejects_since(NOW - 60) == {"low-difficulty": 11}
    assert store.rejects_by_remote(NOW - 60, 10)[0].count == 10
    assert store.worker_totals(NOW).rejected_unknown == 10
    (migrated,) = store.batches()
    assert migrated.id == batch.id and migrated.stuck_since is None
    store.update_batch(batch.id, BatchStatus.STUCK, NOW + 5, "ab" * 32, "left the mempool")
    assert store.batches()[0].stuck_since == NOW + 5
    store.migrate()  # again: nothing more to do
    assert store.worker_totals(NOW).rejected_unknown == 10 and len(store.workers()) == 1

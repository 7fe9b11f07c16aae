"""Grouped statistics reads (several windows, many workers in one statement) agree with the one-at-a-time
reads they replace, on SQLite and PostgreSQL alike (the `store` fixture runs each test on both)."""

from __future__ import annotations

from pithead.events import ShareEvent
from pithead.ledger.store import open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import WorkSums
from pithead.ledger.store.sql import names_per_statement

W = 10  # fine bucket width used by these tests
HOUR = 3600
NOW = 10 * HOUR + 5.5  # not on a bucket edge, like a real clock
# Bounds as the hashrate windows make them (1m, 5m, 1h, 1d), plus one off the bucket grid and one that
# starts after every share.
BOUNDS = [NOW - 60, NOW - 300, NOW - HOUR, NOW - 86400, NOW - 1234.5, NOW + 100]


def _seed(store: LedgerStore) -> list[str]:
    events = []
    workers = [f"addr{a}.rig{r}" for a in "ABC" for r in range(3)]
    for k in range(600):
        wk = workers[k % len(workers)]
        t = NOW - k * 37.0  # a share every 37 s per the whole pool, back about six hours
        if wk.endswith("rig2") and t < NOW - 2 * HOUR:
            continue  # some workers went quiet hours ago
        accepted = k % 11 != 0
        events.append(
            ShareEvent(
                t, wk, wk.split(".")[0], float(1 + k % 4), "j", 100, accepted,
                None if accepted else ("stale" if k % 2 else "low-difficulty"), float(1 + k % 13),
            )
        )
    events.sort(key=lambda e: e.time)
    store.add_shares(events, W)
    # Older buckets become hourly, so the reads also span buckets of two widths.
    store.coarsen_buckets(NOW - 3 * HOUR, W, HOUR)
    return workers


def test_windows_match_work_since(store: LedgerStore) -> None:
    _seed(store)
    for who in ({}, {"worker": "addrA.rig1"}, {"address": "addrB"}, {"worker": "nobody"}):
        assert store.work_windows(BOUNDS, **who) == [store.work_since(b, **who) for b in BOUNDS]
    assert store.work_windows([]) == []
    assert store.work_windows(BOUNDS)[0].shares > 0  # the fixture really has recent work


def test_windows_by_worker_match_work_since(store: LedgerStore) -> None:
    workers = _seed(store)
    every = store.work_windows_by_worker(BOUNDS)
    assert sorted(every) == sorted(workers)  # all nine have work in the longest window
    for wk in workers:
        assert every[wk] == [store.work_since(b, worker=wk) for b in BOUNDS]
    # Only the named ones, unknown names absent, repeats harmless.
    named = store.work_windows_by_worker(BOUNDS, workers=["addrC.rig0", "nobody", "addrC.rig0"])
    assert named == {"addrC.rig0": every["addrC.rig0"]}
    assert store.work_windows_by_worker(BOUNDS, workers=[]) == {}
    # By address: just that address's workers.
    by_b = store.work_windows_by_worker(BOUNDS, address="addrB")
    assert by_b == {wk: every[wk] for wk in workers if wk.startswith("addrB.")}
    # A window starting after the quiet workers' last share gives them zero, not a missing entry.
    quiet = store.work_windows_by_worker([NOW - 60, NOW - 86400], workers=["addrA.rig2"])
    assert quiet["addrA.rig2"][0] == WorkSums(0, 0.0, 0.0) and quiet["addrA.rig2"][1].shares > 0


def test_more_workers_than_one_statement_takes(store: LedgerStore) -> None:
    per = names_per_statement(2)
    n = 2 * per + 7
    store.add_shares(
        [ShareEvent(NOW - 5 - i % 50, f"a{i}.r", f"a{i}", 1.0 + i, "j", 1, True, None, 2.0 + i) for i in range(n)], W
    )
    names = [f"a{i}.r" for i in range(n)]
    got = store.work_windows_by_worker([NOW - 60, NOW - 30], workers=names)
    assert len(got) == n
    for i in (0, per, n - 1):
        assert got[f"a{i}.r"] == [store.work_since(NOW - 60, worker=f"a{i}.r"), store.work_since(NOW - 30, worker=f"a{i}.r")]


def test_rejects_by_worker_match_rejects_since(store: LedgerStore) -> None:
    workers = _seed(store)
    for since in (NOW - HOUR, NOW - 86400, NOW + 100):
        for address in (None, "addrA"):
            got = store.rejects_by_worker(since, address=address)
            want = {
                wk: r for wk in workers
                if (address is None or wk.startswith(address + ".")) and (r := store.rejects_since(since, worker=wk))
            }
            assert got == want
    assert sum(sum(r.values()) for r in store.rejects_by_worker(0.0).values()) == sum(store.rejects_since(0.0).values())


def test_sqlite_reads_worker_sums_from_the_index_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite answers a worker's window sums from its covering index, without a table seek per bucket
    (the reason the worker list is fast); a second migrate keeps it."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.sqlite3")
    try:
        store.migrate()
        plan = store._all(  # type: ignore[attr-defined]
            "EXPLAIN QUERY PLAN SELECT worker, SUM(shares), SUM(difficulty_sum), MAX(best) FROM stat_buckets"
            " WHERE start >= ? AND worker IN (?, ?) GROUP BY worker",
            (0, "a.x", "b.y"),
        )
        assert any("COVERING INDEX stat_buckets_worker_sums" in str(row[-1]) for row in plan), plan
    finally:
        store.close()

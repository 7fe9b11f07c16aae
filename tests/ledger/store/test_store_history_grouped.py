"""The grouped history reads the Miningcore-compatible API needs (`work_history_by_worker`, one statement
for every worker's chart; `active_history`, how many workers and addresses had work in each step) agree
with the one-at-a-time `work_history` and with the shares put in, on SQLite and PostgreSQL alike (the
`store` fixture runs each test on both)."""

from __future__ import annotations

from pithead.events import ShareEvent
from pithead.ledger.store.base import LedgerStore

W = 10  # fine bucket width
HOUR = 3600
NOW = 30 * HOUR + 7.5
WORKERS = ("addrA.rig0", "addrA.rig1", "addrB.cpu", "addrC.x")


def _seed(store: LedgerStore) -> None:
    events = []
    for k in range(400):
        wk = WORKERS[k % len(WORKERS)]
        t = NOW - k * 61.0  # back about 6.8 hours
        if wk == "addrC.x" and t < NOW - 2 * HOUR:
            continue  # C only mined in the last two hours
        events.append(ShareEvent(t, wk, wk.split(".")[0], float(1 + k % 3), "j", 100, True, None, 2.0))
    # A rejected share alone in its hour counts as no work.
    events.append(ShareEvent(NOW - 20 * HOUR, "addrD.z", "addrD", 1.0, "j", 100, False, "stale"))
    events.sort(key=lambda e: e.time)
    store.add_shares(events, W)
    store.coarsen_buckets(NOW - 3 * HOUR, W, HOUR)  # older buckets hourly: the reads span two widths


def test_history_by_worker_matches_work_history(store: LedgerStore) -> None:
    _seed(store)
    since = NOW - 24 * HOUR
    every = store.work_history_by_worker(since, HOUR)
    assert sorted(every) == sorted(WORKERS)
    for wk in WORKERS:
        assert every[wk] == store.work_history(since, HOUR, worker=wk)
    only_a = store.work_history_by_worker(since, 180, address="addrA")
    assert sorted(only_a) == ["addrA.rig0", "addrA.rig1"]
    assert only_a["addrA.rig1"] == store.work_history(since, 180, worker="addrA.rig1")
    assert store.work_history_by_worker(NOW + 100, HOUR) == {}


def test_active_history_counts_workers_and_addresses_per_step(store: LedgerStore) -> None:
    _seed(store)
    steps = {int(start): (workers, addresses) for start, workers, addresses in store.active_history(NOW - 8 * HOUR, HOUR)}
    last = int(NOW // HOUR * HOUR) - HOUR  # the last whole hour
    assert steps[last] == (4, 3)  # every worker mined in it; addrA is one address of two workers
    assert steps[last - 3 * HOUR] == (3, 2)  # C had not started
    assert last - 19 * HOUR not in steps  # only a rejected share there: no accepted work
    # The totals agree with work_history: a step is present exactly when the pool had work in it.
    assert sorted(steps) == [int(s) for s, _ in store.work_history(NOW - 8 * HOUR, HOUR)]

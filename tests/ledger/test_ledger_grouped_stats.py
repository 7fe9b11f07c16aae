"""The ledger's grouped statistics reads: an address's per-worker stats (one grouped read for all its
workers) are exactly each worker's own stats, and hashrate windows align to whole statistics buckets; the
online and miners'-money rules the web API shares with the ledger."""

from __future__ import annotations

import pytest

from pithead.events import ShareEvent
from pithead.ledger.ledger import (
    FINE_BUCKET_S,
    HASHRATE_WINDOWS,
    HASHRATE_WINDOWS_S,
    ONLINE_S,
    Ledger,
    LedgerSettings,
    MinerMoney,
    balance_of,
    is_online,
    miner_money,
    window_start,
    window_starts,
)
from pithead.ledger.schemes import POOL_ACCOUNT, Scheme
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import Balance

NOW = 1_000_000.0 + 3.25  # off the bucket grid, as a real clock is


def test_window_starts_align_down_to_whole_buckets() -> None:
    assert [name for name, _ in HASHRATE_WINDOWS] == ["1m", "5m", "1h", "1d"]
    assert list(HASHRATE_WINDOWS_S) == sorted(HASHRATE_WINDOWS_S)  # shortest first: the last is the longest
    starts = window_starts(NOW)
    for start, window in zip(starts, HASHRATE_WINDOWS_S, strict=True):
        assert start % FINE_BUCKET_S == 0
        assert NOW - window - FINE_BUCKET_S < start <= NOW - window  # never short of the window, < 1 bucket over
    assert window_start(120.0, 60.0, 30) == 60.0  # on the grid: exactly the window
    assert window_start(119.0, 60.0, 30) == 30.0


def test_address_workers_match_each_workers_own_stats(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    events = []
    for i in range(120):
        wk = ("addr1.a", "addr1.b", "addr1.c")[i % 3]
        events.append(ShareEvent(NOW - 30 * i, wk, "addr1", float(1 + i % 5), "j", 1, True, None, float(2 + i % 9)))
        if i % 7 == 0:
            events.append(ShareEvent(NOW - 30 * i, wk, "addr1", 1.0, "j", 1, False, ("stale", "low-difficulty")[i % 2]))
    events.append(ShareEvent(NOW - 3 * 86400, "addr1.idle", "addr1", 1.0, "j", 1, True, None, 1.0))
    events.append(ShareEvent(NOW - 10, "addr2.x", "addr2", 9.0, "j", 1, True, None, 9.0))
    ledger.apply(sorted(events, key=lambda e: e.time))
    addr = ledger.address_stats("addr1", NOW)
    assert addr is not None
    assert [w.worker.worker for w in addr.workers] == ["addr1.a", "addr1.b", "addr1.c", "addr1.idle"]
    for w in addr.workers:
        alone = ledger.worker_stats(w.worker.worker, NOW)
        assert alone is not None and w == alone
    idle = addr.workers[-1].stats
    assert all(e.shares == 0 for e in idle.hashrate.values()) and idle.rejects == {}
    assert addr.workers[0].stats.hashrate[3600].shares == 40 and addr.workers[0].stats.rejects
    # The address's own windows are the sum of its workers' (no other address's work mixed in).
    for window in HASHRATE_WINDOWS_S:
        total = sum(w.stats.hashrate[window].difficulty_sum for w in addr.workers)
        assert addr.stats.hashrate[window].difficulty_sum == pytest.approx(total)


def test_online_and_miners_money_rules() -> None:
    assert is_online(NOW - ONLINE_S, NOW) and not is_online(NOW - ONLINE_S - 1, NOW) and not is_online(None, NOW)
    books = [
        Balance("addrA", 100, 500, 50, 200),  # payable 250
        Balance("addrB", 0, 10, 30, 0),  # over-reserved: payable -20, counted as 0
        Balance(POOL_ACCOUNT, 7, 1000, 0, 0),  # the pool's fees: never miners' money
    ]
    assert miner_money(books) == MinerMoney(immature_sat=100, payable_sat=250, paid_sat=200)
    assert balance_of(books, "addrB") == books[1] and balance_of(books, "nobody") is None

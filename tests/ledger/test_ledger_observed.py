"""Hashrate windows over the time actually observed: a worker (address, pool) that appeared mid-window is
counted over the part of the window since its first share, one idle before the window over all of it.

Runs on both store backends (the `store` fixture). The regression: a pool minutes old read its 5-minute,
1-hour and 1-day rates as the work of those minutes spread over the whole window.
"""

from __future__ import annotations

import pytest

from pithead.events import ShareEvent
from pithead.ledger.ledger import FINE_BUCKET_S, HASHRATE_WINDOWS_S, Ledger, LedgerSettings, WorkStats
from pithead.ledger.schemes import Scheme
from pithead.ledger.stats import HASHES_PER_DIFF1, HashrateEstimate, estimate, poisson_interval
from pithead.ledger.store.base import LedgerStore

NOW = 1_000_003.0  # not on a bucket boundary, so the window alignment is exercised
DIFF = 8.0
EVERY_S = 1.0  # one share a second at DIFF: the true rate is DIFF x 2^32-ish per second
TRUE_RATE = DIFF * HASHES_PER_DIFF1 / EVERY_S
STARTED_AGO_S = 60.0


def steady(worker: str, address: str, start: float, end: float, every: float = EVERY_S) -> list[ShareEvent]:
    """Accepted shares at DIFF every `every` seconds in [start, end)."""
    out = []
    t = start
    while t < end:
        out.append(ShareEvent(t, worker, address, DIFF, "j", 200, True, None, DIFF))
        t += every
    return out


def new_worker(worker: str, address: str) -> list[ShareEvent]:
    """A worker that connected STARTED_AGO_S ago and has sent a steady share a second since."""
    return steady(worker, address, NOW - STARTED_AGO_S, NOW - 0.5)


def assert_true_rate(stats: WorkStats, truth: float, windows: tuple[int, ...] = (300, 3600, 86400)) -> None:
    for window in windows:
        est = stats.hashrate[window]
        # observed from the first share's bucket: at most one bucket more than the minute it has been here
        assert STARTED_AGO_S <= est.observed_s < STARTED_AGO_S + FINE_BUCKET_S, window
        assert est.observed_s < est.span_s
        assert est.reliable
        assert est.low <= truth <= est.high, (window, est)
        assert est.hashrate == pytest.approx(est.difficulty_sum * HASHES_PER_DIFF1 / est.observed_s)


def test_a_worker_started_a_minute_ago_reads_its_true_rate_in_every_window(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    ledger.apply(new_worker("addr1.new", "addr1"))
    ws = ledger.worker_stats("addr1.new", NOW)
    assert ws is not None
    assert_true_rate(ws.stats, TRUE_RATE)
    # the same 60 shares in each window: the longer windows do not dilute them
    assert {ws.stats.hashrate[w].shares for w in (300, 3600, 86400)} == {60}
    # the 1-minute window began before the worker: it is observed whole
    one_min = ws.stats.hashrate[60]
    assert one_min.observed_s == one_min.span_s
    assert one_min.low <= TRUE_RATE <= one_min.high


def test_an_idle_worker_with_older_shares_reads_low_over_the_whole_window(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    # two hours ago it ran for 200 s; then nothing until the last minute (same rate as the new worker)
    events = steady("addr1.back", "addr1", NOW - 7200, NOW - 7000) + new_worker("addr1.back", "addr1")
    # and one that has been idle ever since that early run
    events += steady("addr1.gone", "addr1", NOW - 7200, NOW - 7000)
    ledger.apply(sorted(events, key=lambda e: e.time))
    back = ledger.worker_stats("addr1.back", NOW)
    gone = ledger.worker_stats("addr1.gone", NOW)
    assert back is not None and gone is not None
    for window in (300, 3600):
        est = back.stats.hashrate[window]
        # not clipped to its first share *in the window*: it was known, and idle, before the window
        assert est.observed_s == est.span_s
        assert est.shares == 60
        assert est.high < TRUE_RATE
        assert est.hashrate == pytest.approx(60 * DIFF * HASHES_PER_DIFF1 / est.span_s)
        idle = gone.stats.hashrate[window]
        assert idle.shares == 0 and idle.hashrate == 0.0 and idle.observed_s == idle.span_s
    day = back.stats.hashrate[86400]
    # the day began before the worker: it is observed from its very first share, two hours ago
    assert day.shares == 260 and 7200 <= day.observed_s < 7200 + FINE_BUCKET_S and day.high < TRUE_RATE


def test_pool_and_address_of_new_workers_read_their_true_rate(store: LedgerStore) -> None:
    """The QA case: `pithead up` a minute old, two miners; the pool's windows read their sum."""
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    events = new_worker("addr1.a", "addr1") + new_worker("addr2.b", "addr2")
    ledger.apply(sorted(events, key=lambda e: e.time))
    summary = ledger.pool_summary(NOW)
    assert_true_rate(summary.stats, 2 * TRUE_RATE)
    address = ledger.address_stats("addr1", NOW)
    assert address is not None
    assert_true_rate(address.stats, TRUE_RATE)
    assert_true_rate(address.workers[0].stats, TRUE_RATE)


def test_a_pool_older_than_the_window_is_observed_over_all_of_it(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    # the pool's first share two hours ago, then a new worker in the last minute
    events = steady("addr1.old", "addr1", NOW - 7200, NOW - 7190) + new_worker("addr2.new", "addr2")
    ledger.apply(sorted(events, key=lambda e: e.time))
    summary = ledger.pool_summary(NOW)
    for window in (300, 3600):
        est = summary.stats.hashrate[window]
        assert est.observed_s == est.span_s
        assert est.shares == 60 and est.high < TRUE_RATE
    # the new worker's own address is observed since its first share
    address = ledger.address_stats("addr2", NOW)
    assert address is not None
    assert_true_rate(address.stats, TRUE_RATE)


def test_a_first_share_stamped_now_never_divides_by_zero(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    aligned = 1_000_000.0  # on a bucket boundary: the first share's bucket starts exactly now
    ledger.apply([ShareEvent(aligned, "addr1.x", "addr1", DIFF, "j", 200, True, None, DIFF)])
    ws = ledger.worker_stats("addr1.x", aligned)
    assert ws is not None
    for window in HASHRATE_WINDOWS_S:
        est = ws.stats.hashrate[window]
        assert est.observed_s > 0 and est.shares == 1 and not est.reliable


def test_estimate_interval_is_over_the_observed_exposure() -> None:
    full = estimate(30, 30 * DIFF, 300.0, 300, DIFF)
    part = estimate(30, 30 * DIFF, 300.0, 300, DIFF, observed_s=60.0)
    assert full.observed_s == 300.0 and part.observed_s == 60.0 and part.span_s == 300.0
    lo_k, hi_k = poisson_interval(30)
    assert part.hashrate == pytest.approx(30 * DIFF * HASHES_PER_DIFF1 / 60.0)
    assert part.low == pytest.approx(lo_k * DIFF * HASHES_PER_DIFF1 / 60.0)
    assert part.high == pytest.approx(hi_k * DIFF * HASHES_PER_DIFF1 / 60.0)
    # the zero-share upper bound is over the exposure too
    none: HashrateEstimate = estimate(0, 0.0, 300.0, 300, DIFF, observed_s=60.0)
    assert none.hashrate == 0.0 and none.high == pytest.approx(hi_k_zero() * DIFF * HASHES_PER_DIFF1 / 60.0)
    # an exposure longer than the span counted is the span; a non-positive one is refused
    assert estimate(30, 30 * DIFF, 300.0, 300, DIFF, observed_s=900.0).observed_s == 300.0
    with pytest.raises(ValueError):
        estimate(30, 30 * DIFF, 300.0, 300, DIFF, observed_s=0.0)


def hi_k_zero() -> float:
    return poisson_interval(0)[1]

"""Hashrate windows over the time the pool was up: the ledger's heartbeat records each run, and a window
spanning an outage divides its work by the up-time only.

The regression from operators: after `pithead up` was stopped for an hour and started again, the 1-day
rate read low for a day, the outage counted as observed time with no work. Store-backed tests run on
SQLite and PostgreSQL (the `store` fixture); the interval arithmetic is tested on its own first.
"""

from __future__ import annotations

import asyncio

import pytest

from pithead.events import ShareEvent
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.ledger import FINE_BUCKET_S, Ledger, LedgerSettings, WorkStats
from pithead.ledger.schemes import Scheme
from pithead.ledger.service import Timers, run_ledger
from pithead.ledger.stats import HASHES_PER_DIFF1
from pithead.ledger.store import open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import UptimeRun
from pithead.ledger.store.sqlite import SqliteStore
from pithead.ledger.uptime import ALWAYS_UP, LIVE_GRACE_S, Uptime, uptime_of

DIFF = 8.0
TRUE_RATE = DIFF * HASHES_PER_DIFF1  # one share a second at DIFF
T0 = 1_000_200.0  # the pool's first start (on a bucket and a 10-minute chart step boundary)
UP_S, DOWN_S = 1800.0, 3600.0  # up 30 min, down 60 min, up 30 min
RESTART = T0 + UP_S + DOWN_S
NOW = RESTART + UP_S


# --- the interval arithmetic ---------------------------------------------------------------------------
def test_nothing_recorded_means_always_up() -> None:
    assert uptime_of([], 500.0, 10) == ALWAYS_UP
    assert ALWAYS_UP.covered(100.0, 400.0) == 300.0
    assert ALWAYS_UP.covered(400.0, 100.0) == 0.0


def test_runs_are_widened_to_whole_buckets_and_the_gaps_are_down() -> None:
    up = uptime_of([UptimeRun("a", 103.0, 197.0), UptimeRun("b", 405.0, 452.0)], 1000.0, 10)
    assert up == Uptime(100.0, ((100.0, 200.0), (400.0, 460.0)))
    assert up.covered(100.0, 460.0) == 160.0
    assert up.covered(200.0, 400.0) == 0.0  # the outage
    assert up.covered(150.0, 420.0) == 50.0 + 20.0
    # before the record began nothing is known: counted as up, as before there was a record
    assert up.covered(0.0, 150.0) == 100.0 + 50.0


def test_a_run_with_a_recent_heartbeat_is_up_until_now() -> None:
    now = 1000.0
    live = uptime_of([UptimeRun("a", 500.0, now - LIVE_GRACE_S)], now, 10)
    assert live.covered(500.0, now) == 500.0
    stale = uptime_of([UptimeRun("a", 500.0, now - LIVE_GRACE_S - 5)], now, 10)
    assert stale.covered(500.0, now) == 470.0  # up to its last beat's bucket end (965 -> 970)
    # a reader whose clock is behind the writer's never counts past its own now (0-500 is before the record)
    assert uptime_of([UptimeRun("a", 500.0, now + 50)], now, 10).covered(0.0, 2 * now) == 500.0 + (now - 500.0)


def test_overlapping_runs_are_counted_once_and_runs_after_now_not_at_all() -> None:
    up = uptime_of([UptimeRun("a", 100.0, 300.0), UptimeRun("b", 250.0, 400.0), UptimeRun("c", 900.0, 950.0)], 600.0, 10)
    assert up.spans == ((100.0, 400.0),)
    assert up.covered(0.0, 600.0) == 100.0 + 300.0
    with pytest.raises(ValueError):
        uptime_of([UptimeRun("a", 1.0, 2.0)], 10.0, 0)


# --- windows over a pool that was down for an hour ------------------------------------------------------
def steady(worker: str, address: str, start: float, end: float) -> list[ShareEvent]:
    return [ShareEvent(start + i, worker, address, DIFF, "j", 200, True, None, DIFF) for i in range(int(end - start))]


def beat(store: LedgerStore, run: str, start: float, end: float) -> None:
    """The heartbeats a run from `start` to `end` writes (every 10 s, and its stop time)."""
    t = start
    while t < end:
        store.record_uptime(run, start, t)
        t += 10.0
    store.record_uptime(run, start, end)


def outage_pool(store: LedgerStore, record: bool = True) -> Ledger:
    """Up 30 min, down 60 min, up 30 min (up now), one worker sending a share a second whenever up."""
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    ledger.apply(steady("addr1.rig", "addr1", T0, T0 + UP_S) + steady("addr1.rig", "addr1", RESTART, NOW))
    if record:
        beat(store, "first", T0, T0 + UP_S)
        beat(store, "second", RESTART, NOW - 5)  # last beat a few seconds ago: running
    return ledger


def assert_reads_true_rate(stats: WorkStats, truth: float) -> None:
    hour, day = stats.hashrate[3600], stats.hashrate[86400]
    assert hour.shares == 1800 and day.shares == 3600
    assert hour.observed_s == UP_S and day.observed_s == 2 * UP_S  # the outage is not in the exposure
    for est in (hour, day):
        assert est.reliable and est.low <= truth <= est.high, est
        assert est.hashrate == pytest.approx(est.difficulty_sum * HASHES_PER_DIFF1 / est.observed_s)


def test_windows_spanning_an_outage_read_the_true_rate(store: LedgerStore) -> None:
    ledger = outage_pool(store)
    ws = ledger.worker_stats("addr1.rig", NOW)
    assert ws is not None
    assert_reads_true_rate(ws.stats, TRUE_RATE)
    assert_reads_true_rate(ledger.pool_summary(NOW).stats, TRUE_RATE)
    address = ledger.address_stats("addr1", NOW)
    assert address is not None
    assert_reads_true_rate(address.stats, TRUE_RATE)
    assert_reads_true_rate(address.workers[0].stats, TRUE_RATE)
    # the ledger's own chart: the steps inside the outage have no points, the others the rate
    points = ledger.hashrate_history(NOW, span_s=7200, step_s=600)
    assert [start for start, _ in points] == [T0 + 600 * i for i in (0, 1, 2, 9, 10, 11)]
    for start, rate in points:
        assert rate == pytest.approx(TRUE_RATE), start


def test_without_a_record_the_outage_still_reads_low(store: LedgerStore) -> None:
    """An older ledger, with no uptime on record: the behaviour before the record (every second up)."""
    ledger = outage_pool(store, record=False)
    ws = ledger.worker_stats("addr1.rig", NOW)
    assert ws is not None
    hour, day = ws.stats.hashrate[3600], ws.stats.hashrate[86400]
    assert hour.observed_s == hour.span_s and day.observed_s == NOW - T0
    assert hour.high < TRUE_RATE and day.high < TRUE_RATE


def test_an_upgraded_ledger_does_not_count_its_older_work_over_the_new_record_only(store: LedgerStore) -> None:
    """A ledger with work from before the uptime record (an older pithead) that is upgraded and restarted:
    the time before the record is unknown, so it is read as up (as before), never as down, which would
    divide the older work by the new run's minutes and read many times the true rate."""
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    ledger.apply(steady("addr1.rig", "addr1", T0, T0 + UP_S) + steady("addr1.rig", "addr1", RESTART, NOW))
    beat(store, "first-after-upgrade", RESTART, NOW - 5)  # only the run after the upgrade is on record
    ws = ledger.worker_stats("addr1.rig", NOW)
    assert ws is not None
    five, hour, day = ws.stats.hashrate[300], ws.stats.hashrate[3600], ws.stats.hashrate[86400]
    assert five.observed_s == five.span_s and five.low <= TRUE_RATE <= five.high  # on record, and up
    # the hour and the day reach back before the record: read as before (the outage still dilutes them)
    assert hour.observed_s == hour.span_s and hour.high < TRUE_RATE
    assert day.observed_s == NOW - T0 and day.high < TRUE_RATE


def test_a_worker_idle_while_the_pool_was_up_still_reads_low(store: LedgerStore) -> None:
    ledger = outage_pool(store)
    # a second worker that hashed through the first run only: the pool was up since, it was not
    ledger.apply(steady("addr2.gone", "addr2", T0, T0 + UP_S))
    gone = ledger.worker_stats("addr2.gone", NOW)
    assert gone is not None
    hour, day = gone.stats.hashrate[3600], gone.stats.hashrate[86400]
    assert hour.shares == 0 and hour.observed_s == UP_S and hour.hashrate == 0.0
    assert day.observed_s == 2 * UP_S and day.high < TRUE_RATE  # half its up-time idle: reads about half


def test_a_restart_inside_the_shortest_windows(store: LedgerStore) -> None:
    """Down for 20 s inside the last minute: the minute is observed over the 40 s the pool was up."""
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    now = T0 + 600
    ledger.apply(steady("a.rig", "a", T0, now - 60) + steady("a.rig", "a", now - 40, now))
    beat(store, "first", T0, now - 60)
    beat(store, "second", now - 40, now)
    ws = ledger.worker_stats("a.rig", now)
    assert ws is not None
    minute = ws.stats.hashrate[60]
    assert minute.shares == 40 and minute.observed_s == 40.0


# --- the heartbeat, written by the running ledger -------------------------------------------------------
class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


FAST_BEAT = Timers(rollup_s=3600.0, maturity_s=3600.0, payout_s=3600.0, heartbeat_s=0.01)


async def wait_for(cond, limit_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


def reopen(store: LedgerStore) -> LedgerStore:
    if isinstance(store, SqliteStore):
        return open_store(f"sqlite:///{store.path}")
    return open_store(f"{store.conninfo}?schema={store.schema}")  # type: ignore[attr-defined]


async def run_once(store: LedgerStore, clock: Clock, start: float, stop_at: float) -> list[UptimeRun]:
    """One run of the ledger from `start` (its clock) with a share a second until `stop_at`, then a stop."""
    clock.t = start
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    bus = MemoryBus()
    stop = asyncio.Event()
    before = store.worker("a.rig")
    accepted = before.accepted if before else 0
    task = asyncio.create_task(run_ledger(ledger, bus, stop, timers=FAST_BEAT, clock=clock))
    assert await wait_for(lambda: any(r.started == start for r in store.uptime_runs(start)))
    for ev in steady("a.rig", "a", start, stop_at):
        bus.put(ev)
    n = int(stop_at - start)
    assert await wait_for(lambda: (w := store.worker("a.rig")) is not None and w.accepted == accepted + n)
    clock.t = start + 600  # while it runs, the heartbeat moves its last seen on
    assert await wait_for(lambda: any(r.last_seen == start + 600 for r in store.uptime_runs(start)))
    clock.t = stop_at
    stop.set()
    await task
    return store.uptime_runs(0.0)


async def test_heartbeats_are_written_while_running_and_survive_a_restart(store: LedgerStore) -> None:
    runs = await run_once(store, Clock(T0), T0, T0 + UP_S)
    assert len(runs) == 1 and (runs[0].started, runs[0].last_seen) == (T0, T0 + UP_S)  # the stop time is the last beat
    store.close()  # the process stops; an hour later the next one opens the same ledger
    again = reopen(store)
    try:
        runs = await run_once(again, Clock(RESTART), RESTART, NOW)
        assert [(r.started, r.last_seen) for r in runs] == [(T0, T0 + UP_S), (RESTART, NOW)]
        assert runs[0].run != runs[1].run
        # and the ledger's windows read the true rate across the outage
        ws = Ledger(again).worker_stats("a.rig", NOW)
        assert ws is not None
        assert_reads_true_rate(ws.stats, TRUE_RATE)
    finally:
        again.close()


def test_rollup_forgets_runs_as_old_as_the_oldest_statistics(store: LedgerStore) -> None:
    from pithead.ledger.ledger import COARSE_RETENTION_S

    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    beat(store, "ancient", T0, T0 + 60)
    beat(store, "recent", T0 + COARSE_RETENTION_S, T0 + COARSE_RETENTION_S + 60)
    result = ledger.rollup(T0 + COARSE_RETENTION_S + 120)
    assert result.uptime_runs_deleted == 1
    assert [r.run for r in store.uptime_runs(0.0)] == ["recent"]
    assert FINE_BUCKET_S == 10  # the widening in these tests assumes 10-second buckets

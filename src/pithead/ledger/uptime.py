"""When the pool was up, and how many seconds of a span that covers: the exposure of the hashrate windows.

A hashrate window's rate is its work divided by the time in which shares could have arrived. Clipping the
window to the first share ever seen is not enough: after the pool is stopped and started again, the outage
inside a window would count as observed time with no work, and the 1-day rate would read low for a day
after a one-hour outage. So the process that takes the pool's shares (the ledger, in `pithead up`) records
each of its runs as (started, last seen) and moves "last seen" on every HEARTBEAT_S
(`pithead.ledger.service.run_ledger`); a window is observed only where it overlaps those runs.

The rules, each for a reason:

* Runs are widened to whole statistics buckets (start down, last seen up): the windows count buckets
  whole, and a share in a bucket a run only partly covers was counted in full.
* A run whose last heartbeat is at most LIVE_GRACE_S old is taken to be running: it covers up to now,
  not only to its last beat.
* Before the earliest run on record nothing is known (a ledger older than this record, or runs pruned
  long ago): that time counts as up, which is how every window was read before the record existed. With
  no run on record at all, every second counts as up.
* A run that crashes loses at most one heartbeat interval at its end.

This is not a monitor of miners: a pool that is up with nobody hashing is observed (and reads zero).
Pure, apart from `read_uptime`, which is one store read; time comes in as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pithead.ledger.store.base import StoreReader
from pithead.ledger.store.records import UptimeRun

# How often a running ledger records that it is up. The statistics buckets' width: finer would not change
# any window (they count whole buckets), coarser would lose more of a crashed run's end. One small upsert.
HEARTBEAT_S = 10.0

# A run whose last heartbeat is at most this old is taken to be running now. Three beats: one late beat (a
# slow commit, a busy event loop) must not make a running pool look down; a stopped one looks down at once
# after a clean stop is older than this.
LIVE_GRACE_S = 3 * HEARTBEAT_S


@dataclass(frozen=True, slots=True)
class Uptime:
    """The recorded runs as disjoint (start, end) spans, oldest first, and where the record begins."""

    began: float | None  # None: nothing recorded (an older ledger), so all time counts as up
    spans: tuple[tuple[float, float], ...] = ()

    def covered(self, start: float, end: float) -> float:
        """Seconds of [start, end] the pool was up (or, before the record began, may have been)."""
        if end <= start:
            return 0.0
        if self.began is None:
            return end - start
        total = max(0.0, min(end, self.began) - start)  # before the record: unknown, counted as up
        for lo, hi in self.spans:
            lo, hi = max(lo, start), min(hi, end)
            if hi > lo:
                total += hi - lo
        return total


# Nothing recorded: every second counts as up (how windows were read before uptime was recorded).
ALWAYS_UP = Uptime(None)


def uptime_of(runs: Sequence[UptimeRun], now: float, bucket_s: int) -> Uptime:
    """The `Uptime` of `runs` (from `StoreReader.uptime_runs`) as seen at `now`, widened to `bucket_s`."""
    if bucket_s <= 0:
        raise ValueError(f"bucket width must be positive, got {bucket_s}")
    if not runs:
        return ALWAYS_UP
    spans: list[tuple[float, float]] = []
    for r in sorted(runs, key=lambda r: r.started):
        lo = math.floor(r.started / bucket_s) * bucket_s
        hi = now if now - r.last_seen <= LIVE_GRACE_S else math.ceil(r.last_seen / bucket_s) * bucket_s
        if hi <= lo:
            continue
        if spans and lo <= spans[-1][1]:  # overlapping or touching runs merge
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((float(lo), float(hi)))
    began = float(math.floor(min(r.started for r in runs) / bucket_s) * bucket_s)
    return Uptime(began, tuple(spans))


def read_uptime(store: StoreReader, since: float, now: float, bucket_s: int) -> Uptime:
    """The `Uptime` for spans from `since` to `now` (one store read)."""
    # a run last seen up to a bucket before `since` still reaches into it once widened to whole buckets
    return uptime_of(store.uptime_runs(since - bucket_s), now, bucket_s)

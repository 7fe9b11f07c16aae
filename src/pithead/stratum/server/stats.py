"""Per-worker and per-address share statistics (pure: time is a parameter).

Accepted/rejected counts by reason, hashrate estimated from accepted share difficulty over 1 m / 5 m /
1 h / 1 d (difficulty × 2^32 per second), best share, last share time.

Each window is an exponentially decaying sum (as ckpool keeps its dsps1/5/60/1440): two floats per
window instead of a ring of buckets, so 100,000 workers and their addresses cost a few tens of MB, not
gigabytes. The estimate is corrected for a worker younger than the window (divide by the part of the
window it has existed for), so a new miner's hashrate is not under-reported for its first day.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

WINDOWS: tuple[tuple[str, float], ...] = (("1m", 60.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0))
MAX_TRACKED_WORKERS = 1_000_000
"""Bound on distinct worker names tracked; past it the least recently active are dropped."""
HASHES_PER_DIFF1 = 2**32


class DecayingRate:
    """An exponentially decaying sum with time constant `span`: `rate(now)` ≈ sum per second over the
    last `span` seconds."""

    __slots__ = ("_at", "_first", "_sum", "span")

    def __init__(self, span: float) -> None:
        self.span = span
        self._sum = 0.0
        self._at = 0.0
        self._first: float | None = None

    def add(self, now: float, value: float) -> None:
        if self._first is None:
            self._first = self._at = now
        elif now > self._at:
            self._sum *= math.exp(-(now - self._at) / self.span)
            self._at = now
        self._sum += value

    def rate(self, now: float) -> float:
        if self._first is None:
            return 0.0
        decayed = self._sum * math.exp(-max(0.0, now - self._at) / self.span)
        # the part of the window the series has existed for (a new worker's sum has not built up yet)
        seen = 1.0 - math.exp(-max(now - self._first, 1.0) / self.span)
        return decayed / (self.span * seen)


@dataclass
class ShareStats:
    accepted: int = 0
    accepted_difficulty: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    best_share: float = 0.0
    last_share: float | None = None
    blocks: int = 0
    windows: dict[str, DecayingRate] = field(default_factory=lambda: {k: DecayingRate(s) for k, s in WINDOWS})

    def record(self, now: float, accepted: bool, difficulty: float, share_difficulty: float,
               reason: str | None) -> None:
        self.last_share = now
        if accepted:
            self.accepted += 1
            self.accepted_difficulty += difficulty
            for w in self.windows.values():
                w.add(now, difficulty)
            if share_difficulty > self.best_share:
                self.best_share = share_difficulty
        else:
            self.rejected[reason or "other"] += 1

    def hashrate(self, now: float) -> dict[str, float]:
        """H/s per window."""
        return {k: w.rate(now) * HASHES_PER_DIFF1 for k, w in self.windows.items()}

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "hashrate": self.hashrate(now),
            "best_share": self.best_share,
            "last_share": self.last_share,
            "blocks": self.blocks,
        }


class StatsBook:
    """Statistics keyed by worker name and by payout address, plus pool totals."""

    def __init__(self) -> None:
        self.workers: dict[str, ShareStats] = {}
        self.addresses: dict[str, ShareStats] = {}
        self.pool = ShareStats()

    def _get(self, table: dict[str, ShareStats], key: str) -> ShareStats:
        s = table.get(key)
        if s is None:
            if len(table) >= MAX_TRACKED_WORKERS:
                oldest = min(table, key=lambda k: table[k].last_share or 0.0)
                del table[oldest]
            s = table[key] = ShareStats()
        return s

    def record(self, now: float, worker: str, address: str, accepted: bool, difficulty: float,
               share_difficulty: float, reason: str | None) -> None:
        for s in (self._get(self.workers, worker), self._get(self.addresses, address), self.pool):
            s.record(now, accepted, difficulty, share_difficulty, reason)

    def block(self, worker: str, address: str) -> None:
        for s in (self._get(self.workers, worker), self._get(self.addresses, address), self.pool):
            s.blocks += 1

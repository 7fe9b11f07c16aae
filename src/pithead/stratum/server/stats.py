"""Per-worker and per-address share statistics (pure: time is a parameter).

Accepted/rejected counts by reason, hashrate estimated from accepted share difficulty over 1 m / 5 m /
1 h / 1 d windows (sum of difficulty × 2^32 / window), best share, last share time. Each window is a
ring of time buckets, so memory per worker is fixed whatever the share rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WINDOWS: tuple[tuple[str, float], ...] = (("1m", 60.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0))
BUCKETS_PER_WINDOW = 30
"""Buckets per window: the estimate's edge error is at most 1/30 of the window."""
MAX_TRACKED_WORKERS = 1_000_000
"""Bound on distinct worker names tracked; past it the least recently active are dropped."""
HASHES_PER_DIFF1 = 2**32


class RateWindow:
    """Sum of values over the last `span` seconds, in `BUCKETS_PER_WINDOW` buckets."""

    __slots__ = ("_buckets", "_starts", "span", "width")

    def __init__(self, span: float) -> None:
        self.span = span
        self.width = span / BUCKETS_PER_WINDOW
        self._buckets = [0.0] * BUCKETS_PER_WINDOW
        self._starts = [-1] * BUCKETS_PER_WINDOW

    def add(self, now: float, value: float) -> None:
        n = int(now // self.width)
        i = n % BUCKETS_PER_WINDOW
        if self._starts[i] != n:
            self._starts[i] = n
            self._buckets[i] = 0.0
        self._buckets[i] += value

    def total(self, now: float) -> float:
        n = int(now // self.width)
        lo = n - BUCKETS_PER_WINDOW + 1
        return sum(b for b, s in zip(self._buckets, self._starts, strict=True) if lo <= s <= n)


@dataclass
class ShareStats:
    accepted: int = 0
    accepted_difficulty: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    best_share: float = 0.0
    last_share: float | None = None
    blocks: int = 0
    windows: dict[str, RateWindow] = field(default_factory=lambda: {k: RateWindow(s) for k, s in WINDOWS})

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
        return {k: w.total(now) * HASHES_PER_DIFF1 / w.span for k, w in self.windows.items()}

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

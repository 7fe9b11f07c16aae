"""What an operator looks at in a farm proxy, per upstream pool and per machine (pure: time is a parameter).

Per upstream (`UpstreamFigures`): shares forwarded, accepted (count and difficulty: what the pool credits),
rejected by the pool's reason, stale (the pool's "stale"/"job not found" answers, a subset of rejected),
lost (sent to a connection that died before answering, or that could not be sent: counted by why, never
dropped silently), the submit round trip (median and 99th percentile of the last LATENCY_SAMPLES) and the
credited work in one-minute buckets, from which the web layer gives the hashrate the pool credits with
its Poisson interval. Per machine (`MachineFigures`, by worker name as the machine authorized): the same
from the pool's side — what of its work the pool credited, rejected or never answered — so the proxy's
early "accepted" to the machine (it answers on its own judgement, as every aggregating proxy must) never
hides a pool's rejects (stratum #788). The machine's own side (shares judged locally, by reason, and its
hashrate at its own difficulty) is the pool shell's `StatsBook`.

Everything is bounded: the buckets cover WINDOW_HISTORY_S, latency keeps LATENCY_SAMPLES, and at most
MAX_MACHINES_TRACKED machines are kept (the least recently credited go first).

What it is not: the hashrate interval's statistics (`pithead.ledger.stats`, used by `pithead.web.proxy`) or
any I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

BUCKET_S = 60.0
"""Width of a credited-work bucket: the shortest window the hashrate is given for."""
WINDOW_HISTORY_S = 3600.0
"""How far back credited work is kept: the longest window (1 h)."""
WINDOWS: tuple[tuple[str, float], ...] = (("5m", 300.0), ("1h", 3600.0))
"""The windows the credited hashrate is reported over."""
LATENCY_SAMPLES = 1024
"""Submit round trips kept per upstream for the median and 99th percentile (the last few minutes of a farm)."""
MAX_MACHINES_TRACKED = 200_000
"""Machines (worker names) whose pool-side figures are kept; past it the least recently credited go."""
STALE_REASONS = frozenset({"stale", "job-not-found", "job not found", "stale job", "21"})
"""Pool answers that mean the share came too late (counted as stale as well as rejected)."""


@dataclass(frozen=True, slots=True)
class WindowCount:
    """Credited work over a window: what the hashrate and its interval are computed from."""

    window: str
    span_s: float
    observed_s: float  # the part of the span there was anything to observe (a new machine: less)
    shares: int
    difficulty_sum: float


class CreditedWork:
    """Accepted share difficulty in BUCKET_S buckets over WINDOW_HISTORY_S (only buckets with shares)."""

    __slots__ = ("_buckets", "first_at", "last_at", "last_difficulty")

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()  # [bucket start, shares, difficulty sum]
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.last_difficulty = 0.0

    def add(self, now: float, difficulty: float) -> None:
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.last_difficulty = difficulty
        start = now - now % BUCKET_S
        if self._buckets and self._buckets[-1][0] == start:
            b = self._buckets[-1]
            b[1] += 1
            b[2] += difficulty
        else:
            self._buckets.append([start, 1.0, difficulty])
        while self._buckets and self._buckets[0][0] < now - WINDOW_HISTORY_S - BUCKET_S:
            self._buckets.popleft()

    def window(self, now: float, name: str, span_s: float, since: float | None = None) -> WindowCount:
        """The work credited in the last `span_s` (whole buckets); observed from `since` (default: the
        first credited share) or the span, whichever is shorter."""
        begin = now - span_s
        shares = 0
        diff = 0.0
        for start, n, d in self._buckets:
            if start + BUCKET_S > begin:
                shares += int(n)
                diff += d
        first = since if since is not None else self.first_at
        observed = span_s if first is None else max(1.0, min(span_s, now - first))
        return WindowCount(name, span_s, observed, shares, diff)

    def windows(self, now: float, since: float | None = None) -> list[WindowCount]:
        return [self.window(now, name, span, since) for name, span in WINDOWS]


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class ShareCounts:
    """What happened to forwarded shares, from the pool's side."""

    forwarded: int = 0
    accepted: int = 0
    accepted_difficulty: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    stale: int = 0
    lost: Counter[str] = field(default_factory=Counter)  # why: "connection lost", "not connected", ...
    blocks: int = 0  # block-solving shares forwarded

    def on_accepted(self, difficulty: float) -> None:
        self.accepted += 1
        self.accepted_difficulty += difficulty

    def on_rejected(self, reason: str) -> None:
        self.rejected[reason] += 1
        if reason.lower() in STALE_REASONS:
            self.stale += 1

    @property
    def in_flight(self) -> int:
        """Forwarded and not yet answered (nor lost)."""
        return self.forwarded - self.accepted - sum(self.rejected.values()) - sum(self.lost.values())

    def snapshot(self) -> dict[str, object]:
        return {
            "forwarded": self.forwarded, "accepted": self.accepted,
            "accepted_difficulty": self.accepted_difficulty, "rejected": dict(self.rejected),
            "stale": self.stale, "lost": dict(self.lost), "in_flight": self.in_flight, "blocks": self.blocks,
        }


@dataclass
class UpstreamFigures:
    counts: ShareCounts = field(default_factory=ShareCounts)
    credited: CreditedWork = field(default_factory=CreditedWork)
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    connected_since: float | None = None
    difficulty: float | None = None  # the pool's share difficulty on its latest job
    version_mask: int | None = None  # what the pool granted (None: not negotiated yet)
    version_note: str | None = None  # why version rolling is off behind this pool (None: it is on)
    connects: int = 0
    disconnects: int = 0

    def latency(self) -> dict[str, float | None]:
        samples = list(self.latency_s)
        return {"p50_s": percentile(samples, 0.5), "p99_s": percentile(samples, 0.99), "samples": len(samples)}


@dataclass
class MachineFigures:
    counts: ShareCounts = field(default_factory=ShareCounts)
    credited: CreditedWork = field(default_factory=CreditedWork)
    seen_at: float = 0.0  # first seen: its windows are observed from here


class MachineBook:
    """Pool-side figures by worker name, bounded to MAX_MACHINES_TRACKED."""

    def __init__(self, limit: int = MAX_MACHINES_TRACKED) -> None:
        self.limit = limit
        self.machines: dict[str, MachineFigures] = {}

    def get(self, worker: str, now: float) -> MachineFigures:
        m = self.machines.get(worker)
        if m is None:
            if len(self.machines) >= self.limit:
                oldest = min(self.machines, key=lambda k: self.machines[k].credited.last_at or self.machines[k].seen_at)
                del self.machines[oldest]
            m = self.machines[worker] = MachineFigures(seen_at=now)
        return m

    def __len__(self) -> int:
        return len(self.machines)


def sum_windows(groups: list[list[WindowCount]]) -> list[WindowCount]:
    """Several machines' credited work, window by window, as one (a rack's): shares and difficulty add up;
    the observed part of a window is the longest of theirs (a rack is watched as long as its oldest machine)."""
    out = []
    for name, span in WINDOWS:
        ws = [w for g in groups for w in g if w.window == name]
        observed = max((w.observed_s for w in ws), default=span)
        out.append(WindowCount(name, span, observed, sum(w.shares for w in ws), sum(w.difficulty_sum for w in ws)))
    return out

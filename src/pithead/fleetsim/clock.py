"""The simulation clock and the seeded, counter-based randomness every simulated device draws from.

`SimClock` maps real time to simulated Unix seconds (`start + speed × elapsed`), or is driven by hand
(`ManualClock.advance`) so tests and replays step through time exactly. `mix64` / `unit` are a
SplitMix64-style counter hash: the n-th random number of a device is a pure function of
(fleet seed, device index, stream, n), so no per-device RNG object is kept (compact state) and the
answer never depends on *when* or *how often* a device was queried — which is what makes a run
replayable from its seed.

Not here: what the numbers mean (see `device`).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-mixed 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def draw(seed: int, stream: int, n: int) -> int:
    """The n-th 64-bit draw of a (seed, stream) pair: one SplitMix64 finalisation of a combined key.

    Device seeds are already well mixed (`mix64` of fleet seed and index); stream goes in the top
    byte and n in the low 56 bits, so (stream, n) pairs never collide for n < 2**56.
    """
    return mix64(seed ^ ((stream & 0xFF) << 56) ^ (n & 0x00FF_FFFF_FFFF_FFFF))


def unit(seed: int, stream: int, n: int) -> float:
    """A uniform float in (0, 1) from `draw` (never exactly 0, so `-log(u)` is finite)."""
    return ((draw(seed, stream, n) >> 11) + 0.5) / float(1 << 53)


def exponential(seed: int, stream: int, n: int, rate: float) -> float:
    """An exponential inter-arrival time (seconds) with the given rate (per second); inf if rate is 0."""
    if rate <= 0.0:
        return math.inf
    return -math.log(unit(seed, stream, n)) / rate


class Clock(Protocol):
    def now(self) -> float: ...


class SimClock:
    """Simulated Unix time: `start + speed × (monotonic − t0)`; `speed > 1` runs faster than real time."""

    __slots__ = ("_speed", "_start", "_t0")

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._start = time.time() if start is None else start
        self._speed = speed
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + self._speed * (time.monotonic() - self._t0)


class ManualClock:
    """A clock that moves only when told to: replays and tests step it exactly."""

    __slots__ = ("_t",)

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._t += seconds
        return self._t

    def set(self, t: float) -> None:
        if t < self._t:
            raise ValueError("time does not go backwards")
        self._t = t

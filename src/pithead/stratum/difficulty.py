"""Share difficulty: the wire form, and vardiff (per-connection, sans-IO: time is a parameter).

Vardiff aims at one share every `target_interval` seconds per connection. It re-estimates from the shares
seen since the last retarget, and:
  * converges fast on a new connection: the first retargets happen after a few shares (or a few seconds)
    and may move the difficulty by up to 2^8 at once, so a Bitaxe at diff 1 reaches ~500 within seconds
    instead of ckpool's minutes (ESP-Miner #98);
  * then moves at most ×4 / ÷4 per retarget and only when the observed rate is outside a hysteresis band
    (×0.5..×2 of the target), so it does not flap on share-time noise;
  * a new connection that finds nothing steps down ever faster (QUIET_STEP), and its start difficulty
    follows what its user agent says it is (AGENT_STARTS: a CPU miner is not an S21);
  * lowers the difficulty when a connection stops finding shares (a slow device never gets stuck);
  * stays within [min, max] (and under a `ceiling` the caller may set: a farm proxy keeps every machine at
    or below its upstream pool's difficulty, so no share the pool would credit goes unreported); fractional (sub-1) difficulties are allowed for ESP32-class miners, and whole
    ones are sent as JSON integers (ASIC firmware parses integers; ckpool-lhr §1-2).
A `fixed` difficulty (password `d=`) disables vardiff for the connection, as rental services need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FAST_RETARGETS = 3
"""Retargets in the fast (first-convergence) phase of a new connection; only those made from at least
FAST_SHARES shares count (a quiet window's one or two shares say too little to call it converged)."""
FAST_SHARES = 4
"""Shares that trigger a retarget in the fast phase (a few shares already estimate the rate within ×2)."""
FAST_MAX_FACTOR = 256.0
"""Largest change per retarget in the fast phase: from diff 1 to a 1 TH/s device in two steps."""
SLOW_SHARES = 24
"""Shares per retarget once converged: a ±20% rate estimate, so noise rarely crosses the hysteresis band."""
SLOW_MAX_FACTOR = 4.0
"""Largest change per retarget once converged."""
HYSTERESIS = 2.0
"""No change unless the observed share rate is off target by more than this factor either way."""
FAST_AFTER_INTERVALS = 1.5
"""In the fast phase, also retarget when this many target intervals pass without the shares for a
retarget (a device far too slow for the starting difficulty finds no share: it must not wait minutes)."""
QUIET_STEP = 4.0
"""A new connection with no share at all after FAST_AFTER_INTERVALS: the difficulty falls by this factor,
then by its square, its cube... (capped at FAST_MAX_FACTOR) while it stays silent. Zero shares say little
about how much too hard the work is, so the steps grow: a CPU miner started at difficulty 1 (200× too hard)
finds shares within a minute instead of the many minutes a fixed step takes; a device that was merely
unlucky finds its next shares sooner and the share-based retarget lifts it back. Quiet steps are not
convergence: the fast phase lasts until FAST_RETARGETS retargets made from shares."""
SLOW_AFTER_INTERVALS = 30.0
"""Once converged, retarget on time only after this many intervals without SLOW_SHARES shares (thirty
expected): Poisson noise alone moves the difficulty in well under 1% of windows (P(n < 15) ~ 0.2%), while
a device that slowed down by more than ×2 is caught within five minutes."""
SIGNIFICANT_DIGITS = 3
"""Sub-1 difficulties are rounded to this many significant digits (clean set_difficulty values)."""


#: A new connection's starting difficulty by what its user agent says it is (lowercased substring, start,
#: what it is): where the configured start is far too hard for it, the first share would take minutes (a
#: CPU miner at difficulty 1 expects one share per ~20 minutes at 4 MH/s). Each start gives the class's
#: typical device a share every few seconds; vardiff's fast phase then finds its own rate. Only ever
#: lowers the configured start: an ASIC started low climbs ×256 per retarget within its first seconds.
AGENT_STARTS: tuple[tuple[str, float, str], ...] = (
    ("nerdminer", 0.0001, "ESP32 NerdMiner, ~50 kH/s (it asks 0.00015 itself)"),
    ("nmminer", 0.0001, "ESP32 NMMiner, ~100 kH/s"),
    ("cpuminer", 0.001, "cpuminer / cpuminer-opt on a CPU, 1-20 MH/s"),
    ("minerd", 0.001, "pooler's minerd (cpuminer), 1-20 MH/s"),
    ("pithead-miner", 0.001, "pithead's reference miner on a CPU, a few MH/s"),
    ("pithead-up-miner", 0.001, "pithead up's CPU miners"),
)


def start_difficulty_for(user_agent: str | None, configured: float) -> float:
    """The start difficulty for a connection whose mining.subscribe named `user_agent` (see AGENT_STARTS):
    the class's start when it is below `configured`, else `configured`."""
    if user_agent:
        agent = user_agent.lower()
        for needle, start, _ in AGENT_STARTS:
            if needle in agent:
                return min(start, configured)
    return configured


def wire_difficulty(diff: float) -> int | float:
    """The JSON value to send: an integer for whole difficulties, else the float."""
    if diff >= 1 and float(diff).is_integer():
        return int(diff)
    return diff


def round_difficulty(diff: float) -> float:
    """Whole numbers at or above 1, a few significant digits below."""
    if diff >= 1:
        return float(max(1, round(diff)))
    digits = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(diff))
    return round(diff, digits)


def clamp(diff: float, lo: float, hi: float) -> float:
    return min(max(diff, lo), hi)


@dataclass(frozen=True, slots=True)
class VarDiffConfig:
    target_interval: float = 10.0  # seconds per share per connection
    min_difficulty: float = 0.001
    max_difficulty: float = 1e12

    def __post_init__(self) -> None:
        if not (self.target_interval > 0 and 0 < self.min_difficulty <= self.max_difficulty):
            raise ValueError("vardiff needs target_interval > 0 and 0 < min <= max difficulty")


class VarDiff:
    """One connection's difficulty controller. Call `on_share(now)` per accepted share and
    `on_tick(now)` now and then; each returns the new difficulty when it changed, else None."""

    __slots__ = ("_fixed", "_quiet", "_retargets", "_shares", "_since", "ceiling", "cfg", "difficulty", "floor")

    def __init__(self, cfg: VarDiffConfig, start: float, now: float) -> None:
        self.cfg = cfg
        self.floor = cfg.min_difficulty
        self.ceiling = cfg.max_difficulty
        self.difficulty = round_difficulty(clamp(start, cfg.min_difficulty, cfg.max_difficulty))
        self._since = now
        self._shares = 0
        self._retargets = 0
        self._quiet = 0  # consecutive quiet (share-less) retargets of the fast phase
        self._fixed = False

    @property
    def fixed(self) -> bool:
        return self._fixed

    def _bound(self, diff: float) -> float:
        hi = min(self.ceiling, self.cfg.max_difficulty)
        # the ceiling wins over a floor above it: a difficulty above the ceiling loses credited work
        lo = min(max(self.floor, self.cfg.min_difficulty), hi)
        bounded = clamp(diff, lo, hi)
        rounded = round_difficulty(bounded)
        # rounding must never lift a difficulty over the ceiling (an upstream's 1.5 is not our 2)
        return rounded if rounded <= hi else bounded

    def set_ceiling(self, ceiling: float, now: float) -> float | None:
        """Never go above `ceiling` (a farm proxy's upstream difficulty); lowers the difficulty at once when
        it is above. Returns the new difficulty when it changed."""
        if not ceiling > 0:
            raise ValueError(f"a difficulty ceiling must be positive, not {ceiling!r}")
        self.ceiling = ceiling
        if self.difficulty <= self._bound(self.difficulty):
            return None
        return self._change(self.difficulty, now)

    def set_floor(self, floor: float, now: float) -> float | None:
        """BIP310 minimum-difficulty: never go below `floor` (still within the pool bounds)."""
        self.floor = clamp(floor, self.cfg.min_difficulty, self.cfg.max_difficulty)
        return self._change(max(self.difficulty, self.floor), now)

    def restart(self, start: float, now: float) -> None:
        """Start again from `start` (bounded) before any work was sent: the subscribe named the device."""
        self.difficulty = self._bound(start)
        self._since, self._shares, self._retargets, self._quiet = now, 0, 0, 0

    def suggest(self, diff: float, now: float) -> float | None:
        """mining.suggest_difficulty: start from the miner's value (bounded); treated as converged."""
        self._retargets = max(self._retargets, FAST_RETARGETS)
        return self._change(diff, now)

    def fix(self, diff: float, now: float) -> float | None:
        """Password d=: a fixed difficulty within the bounds; vardiff stops for this connection."""
        self._fixed = True
        return self._change(diff, now, force=True)

    def _change(self, diff: float, now: float, force: bool = False) -> float | None:
        new = self._bound(diff)
        self._since = now
        self._shares = 0
        if new == self.difficulty:
            return None
        self.difficulty = new
        return new

    def on_share(self, now: float) -> float | None:
        if self._fixed:
            return None
        self._shares += 1
        fast = self._retargets < FAST_RETARGETS
        needed = FAST_SHARES if fast else SLOW_SHARES
        if self._shares < needed and not self._overdue(now, fast):
            return None
        return self._retarget(now, fast)

    def on_tick(self, now: float) -> float | None:
        """Retarget a quiet connection (no or few shares for a long time)."""
        if self._fixed:
            return None
        fast = self._retargets < FAST_RETARGETS
        if not self._overdue(now, fast):
            return None
        return self._retarget(now, fast)

    def _overdue(self, now: float, fast: bool) -> bool:
        after = FAST_AFTER_INTERVALS if fast else SLOW_AFTER_INTERVALS
        return now - self._since >= after * self.cfg.target_interval

    def _retarget(self, now: float, fast: bool) -> float | None:
        elapsed = max(now - self._since, 1e-3)
        if fast and self._shares == 0:  # silent from the start: step down, faster each time
            self._quiet += 1
            step = min(max(QUIET_STEP**self._quiet, elapsed / self.cfg.target_interval), FAST_MAX_FACTOR)
            return self._change(self.difficulty / step, now)
        self._quiet = 0
        # With no share yet, assume one was just about to arrive: the most optimistic estimate, so the
        # difficulty falls no faster than the evidence says.
        shares = max(self._shares, 1)
        ratio = (self.cfg.target_interval * shares) / elapsed  # > 1: shares come too fast → raise diff
        if not fast or self._shares >= FAST_SHARES:  # a share or two in a quiet window proves no convergence
            self._retargets += 1
        if 1 / HYSTERESIS <= ratio <= HYSTERESIS:
            self._since = now
            self._shares = 0
            return None
        limit = FAST_MAX_FACTOR if fast else SLOW_MAX_FACTOR
        ratio = clamp(ratio, 1 / limit, limit)
        return self._change(self.difficulty * ratio, now)

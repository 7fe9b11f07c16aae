"""Hashrate from accepted shares, with the uncertainty that comes with counting a random process.

Shares arrive as a Poisson process: a worker with hashrate H at share difficulty d finds shares at rate
H / (d x HASHES_PER_DIFF1). Counting k shares in a span T therefore estimates H = k x d x HASHES_PER_DIFF1 / T
with the uncertainty of a Poisson count (T is the exposure: the time there was anything to observe, so a
worker that connected mid-window is counted over the part it was there, never over the whole window, and
an outage of the pool is not in it): the exact (Garwood) interval for the mean of a count k is
[Gamma(k).ppf(a/2), Gamma(k+1).ppf(1-a/2)] (equivalently chi-square with 2k and 2k+2 degrees of freedom,
halved). With varying share difficulty the count is scaled by the mean difficulty of the shares counted.
A handful of shares is not a hashrate: estimates from fewer than MIN_SHARES_RELIABLE shares are flagged.

Pure functions; no clock, no store. The ledger feeds them bucket sums from the store.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# Hashes expected per share at difficulty 1: 2**256 / (difficulty-1 target + 1), where the difficulty-1
# target is 0xFFFF * 2**208 (Bitcoin Core's GetDifficulty, compact 0x1d00ffff). The common 2**32 is an
# approximation of this, off by 1/65535.
HASHES_PER_DIFF1 = 2**256 / (0xFFFF * 2**208 + 1)

CONFIDENCE = 0.90  # the interval the dashboard shows: 5 % below, 5 % above

# Fewer shares than this and the estimate is flagged as unreliable: at k = 10 the 90 % interval is already
# about [0.54, 1.70] x the estimate; below it the interval is wider than the estimate itself.
MIN_SHARES_RELIABLE = 10

# Above this many shares the gamma quantile uses the Wilson-Hilferty approximation, whose relative error
# there is far below the statistical uncertainty; below it the quantile is solved exactly by bisection.
EXACT_QUANTILE_MAX_K = 10_000

_BISECT_STEPS = 200  # halves the bracket to below float resolution for any k up to EXACT_QUANTILE_MAX_K

# 95th percentile of the standard normal, for Wilson-Hilferty.
_Z95 = 1.6448536269514722


def _gamma_series(a: float, x: float) -> float:
    """The series sum behind P(a, x) (converges fast for x < a + 1): P(a, x) = sum x exp(log_front)."""
    term = total = 1.0 / a
    n = a
    for _ in range(100_000):
        n += 1
        term *= x / n
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total


def _gamma_fraction(a: float, x: float) -> float:
    """Lentz's continued fraction behind Q(a, x) (converges fast for x >= a + 1): Q = h x exp(log_front)."""
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return h


def _log_front(a: float, x: float) -> float:
    return a * math.log(x) - x - math.lgamma(a)


def _lower_gamma_p(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 0.0
    if x < a + 1:
        return min(1.0, _gamma_series(a, x) * math.exp(_log_front(a, x)))
    return max(0.0, 1.0 - math.exp(_log_front(a, x)) * _gamma_fraction(a, x))


def upper_gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) = 1 - P(a, x), computed directly where it is small (x at or
    above a + 1), so a tail of 1e-30 comes out as such rather than as 1 - 1 = 0."""
    if a <= 0:
        raise ValueError(f"upper_gamma_q needs a > 0, got {a}")
    if x <= 0:
        return 1.0
    if x < a + 1:
        return max(0.0, 1.0 - min(1.0, _gamma_series(a, x) * math.exp(_log_front(a, x))))
    return min(1.0, math.exp(_log_front(a, x)) * _gamma_fraction(a, x))


def log_lower_gamma_p(a: float, x: float) -> float:
    """log P(a, x), exact where P is tiny (x well below a, where P itself underflows); -inf at x = 0."""
    if a <= 0:
        raise ValueError(f"log_lower_gamma_p needs a > 0, got {a}")
    if x <= 0:
        return -math.inf
    if x < a + 1:
        return _log_front(a, x) + math.log(_gamma_series(a, x))
    return math.log1p(-min(1.0, math.exp(_log_front(a, x)) * _gamma_fraction(a, x)))


def gamma_ppf(p: float, k: float) -> float:
    """The p-quantile of Gamma(shape k, scale 1): the x with P(k, x) = p."""
    if not 0 < p < 1 or k <= 0:
        raise ValueError(f"gamma_ppf needs 0 < p < 1 and k > 0, got p={p}, k={k}")
    if k > EXACT_QUANTILE_MAX_K:
        z = _Z95 if p > 0.5 else -_Z95
        if abs(p - 0.95) > 1e-12 and abs(p - 0.05) > 1e-12:
            raise ValueError("the large-k approximation is only set up for the 5 % and 95 % quantiles")
        return k * (1 - 1 / (9 * k) + z / (3 * math.sqrt(k))) ** 3
    lo, hi = 0.0, k + 20 * math.sqrt(k) + 20
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if _lower_gamma_p(k, mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


# Intervals remembered by share count: the dashboard asks for the same small counts over and over, and
# each exact one costs a few hundred incomplete-gamma evaluations.
INTERVAL_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=INTERVAL_CACHE_SIZE)
def poisson_interval(k: int) -> tuple[float, float]:
    """The exact 90 % interval for the mean of a Poisson count k (Garwood)."""
    if k < 0:
        raise ValueError(f"negative count {k}")
    alpha = 1 - CONFIDENCE
    low = 0.0 if k == 0 else gamma_ppf(alpha / 2, k)
    high = gamma_ppf(1 - alpha / 2, k + 1)
    return low, high


@dataclass(frozen=True, slots=True)
class HashrateEstimate:
    """Hashes per second over a window, with its 90 % interval and whether enough shares back it."""

    window_s: float  # the window asked for
    span_s: float  # the span actually counted (the window rounded out to whole buckets)
    # The exposure the rate and its interval are over: `span_s` clipped to when observation began (the
    # first share ever seen of the worker, address or pool), less any time the pool was down
    # (`pithead.ledger.uptime`); equal to `span_s` once it began before and the pool stayed up.
    observed_s: float
    shares: int
    difficulty_sum: float
    hashrate: float
    low: float
    high: float
    reliable: bool


def estimate(
    shares: int, difficulty_sum: float, span_s: float, window_s: float, last_difficulty: float,
    observed_s: float | None = None,
) -> HashrateEstimate:
    """Hashrate from `shares` accepted shares summing to `difficulty_sum`, counted over a `span_s` window
    of which `observed_s` seconds (all of it when None) were observed: the rate and its Poisson interval
    are over the observed seconds, the exposure in which those shares could have been found.

    With no share at all the upper bound still says something: it is what the worker could have been
    doing at its last known difficulty without us seeing a share (0 if it never had one).
    """
    if span_s <= 0:
        raise ValueError(f"span must be positive, got {span_s}")
    exposure = span_s if observed_s is None else min(observed_s, span_s)
    if exposure <= 0:
        raise ValueError(f"observed time must be positive, got {observed_s}")
    low_k, high_k = poisson_interval(shares)
    if shares:
        per_share = difficulty_sum / shares * HASHES_PER_DIFF1 / exposure
    else:
        per_share = max(0.0, last_difficulty) * HASHES_PER_DIFF1 / exposure
    rate = difficulty_sum * HASHES_PER_DIFF1 / exposure
    return HashrateEstimate(
        window_s, span_s, exposure, shares, difficulty_sum, rate, low_k * per_share, high_k * per_share,
        shares >= MIN_SHARES_RELIABLE,
    )

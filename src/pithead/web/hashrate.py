"""Hashrate estimated from shares, with its 90% confidence interval: pure arithmetic, no IO, no clock.

A share at difficulty d stands for d x 2**32 hashes on average, so the work of n shares over t seconds
estimates the hashrate as sum(d) x 2**32 / t. The number of shares in a window is a Poisson count, so the
estimate is only as good as n: the interval here is the exact (Garwood) Poisson interval for the count,
chi2(0.05; 2n)/2 to chi2(0.95; 2n+2)/2, scaled by the mean work per share. The chi-square quantiles use
the Wilson-Hilferty cube approximation, good to well under 1% for the counts we care about (n >= 1).

Below `MIN_SHARES_TO_ESTIMATE` shares the interval spans more than a factor of two either way, so the
estimate is reported as "too few shares" and the dashboard says so instead of drawing a misleading
number. This module does not read shares; callers pass the sums (see `pithead.web.queries`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HASHES_PER_DIFFICULTY_1 = 2**32  # expected hashes per share at difficulty 1 (Bitcoin's pdiff-1 target)

# Fewer shares than this and the 90% interval is wider than roughly [0.45x, 1.9x] of the estimate: we
# state "too few shares to estimate" rather than show a number that means little.
MIN_SHARES_TO_ESTIMATE = 10

CONFIDENCE = 0.90
_Z_95 = 1.6448536269514722  # standard normal quantile at 0.95 (the upper tail of a two-sided 90% interval)


def _chi2_quantile(p_z: float, k: float) -> float:
    """Chi-square quantile with k degrees of freedom at the normal quantile `p_z` (Wilson-Hilferty)."""
    if k <= 0:
        return 0.0
    c = 2.0 / (9.0 * k)
    return max(0.0, k * (1.0 - c + p_z * math.sqrt(c)) ** 3)


def poisson_interval(n: int) -> tuple[float, float]:
    """The two-sided 90% interval for the mean of a Poisson count observed as n."""
    if n < 0:
        raise ValueError(f"share count cannot be negative: {n}")
    low = 0.0 if n == 0 else _chi2_quantile(-_Z_95, 2 * n) / 2.0
    high = _chi2_quantile(_Z_95, 2 * n + 2) / 2.0
    return low, high


@dataclass(frozen=True, slots=True)
class HashrateEstimate:
    window_s: float  # the nominal window (60, 300, 3600, 86400)
    span_s: float  # the seconds the counted shares really cover
    shares: int
    difficulty_sum: float
    hashrate: float | None  # hashes per second; None when there are too few shares
    low: float | None  # 90% interval, hashes per second
    high: float | None
    enough: bool  # False: "too few shares to estimate"


def estimate(shares: int, difficulty_sum: float, span_s: float, window_s: float | None = None) -> HashrateEstimate:
    """Estimate the hashrate from `shares` accepted shares totalling `difficulty_sum` over `span_s` seconds."""
    window = span_s if window_s is None else window_s
    if shares < 0 or difficulty_sum < 0:
        raise ValueError("share count and difficulty sum cannot be negative")
    if span_s <= 0 or shares < MIN_SHARES_TO_ESTIMATE:
        return HashrateEstimate(window, span_s, shares, difficulty_sum, None, None, None, False)
    rate = difficulty_sum * HASHES_PER_DIFFICULTY_1 / span_s
    lo, hi = poisson_interval(shares)
    return HashrateEstimate(
        window, span_s, shares, difficulty_sum, rate, rate * lo / shares, rate * hi / shares, True
    )


def rate_only(difficulty_sum: float, span_s: float) -> float:
    """Hashes per second for a chart point (no interval; charts show the trend, the cards the interval)."""
    return 0.0 if span_s <= 0 else difficulty_sum * HASHES_PER_DIFFICULTY_1 / span_s

"""Hashrate estimates: the exact Poisson interval against chi-square table values and by simulated coverage."""

from __future__ import annotations

import math
import random

import pytest

from pithead.ledger import stats
from pithead.ledger.stats import HASHES_PER_DIFF1, estimate, gamma_ppf, poisson_interval


@pytest.mark.parametrize(
    ("p", "k", "expected"),
    [
        (0.05, 1, -math.log(0.95)),  # Gamma(1) is the exponential distribution
        (0.95, 1, -math.log(0.05)),
        (0.05, 10, 10.851 / 2),  # chi-square table: 5 % point with 20 degrees of freedom
        (0.95, 11, 33.924 / 2),  # 95 % point with 22 degrees of freedom
        (0.95, 50, 124.342 / 2),  # 95 % point with 100 degrees of freedom
    ],
)
def test_gamma_quantiles_match_tables(p: float, k: int, expected: float) -> None:
    assert gamma_ppf(p, k) == pytest.approx(expected, rel=2e-4)


def test_large_k_approximation_joins_the_exact_solution() -> None:
    k = stats.EXACT_QUANTILE_MAX_K
    exact_lo, exact_hi = gamma_ppf(0.05, k), gamma_ppf(0.95, k)
    approx = stats.EXACT_QUANTILE_MAX_K + 1
    assert gamma_ppf(0.05, approx) == pytest.approx(exact_lo + 1, rel=1e-4)
    assert gamma_ppf(0.95, approx) == pytest.approx(exact_hi + 1, rel=1e-4)


def test_interval_brackets_the_count_and_tightens() -> None:
    widths = []
    for k in (1, 3, 10, 100, 1000):
        lo, hi = poisson_interval(k)
        assert lo <= k <= hi
        widths.append((hi - lo) / k)
    assert widths == sorted(widths, reverse=True)
    assert poisson_interval(0)[0] == 0.0


def _poisson(rng: random.Random, lam: float) -> int:
    # count exponential arrivals in one unit of time: a Poisson draw
    t, k = rng.expovariate(lam), 0
    while t < 1.0:
        k += 1
        t += rng.expovariate(lam)
    return k


@pytest.mark.parametrize("lam", [0.7, 4.0, 25.0])
def test_interval_covers_the_true_rate_at_least_90_percent(lam: float) -> None:
    rng = random.Random(7)  # fixed seed: the test is deterministic
    trials = 2000
    covered = sum(1 for _ in range(trials) if (iv := poisson_interval(_poisson(rng, lam)))[0] <= lam <= iv[1])
    # Garwood's interval is conservative: coverage is at least the nominal 90 %, up to sampling noise
    assert covered / trials >= 0.88


def test_estimate_scales_by_difficulty_and_flags_few_shares() -> None:
    e = estimate(30, 60.0, 60.0, 60, 2.0)
    assert e.hashrate == pytest.approx(60.0 * HASHES_PER_DIFF1 / 60.0)
    assert e.low < e.hashrate < e.high
    assert e.reliable
    few = estimate(3, 6.0, 60.0, 60, 2.0)
    assert not few.reliable
    assert few.high / few.hashrate > 2  # three shares say little
    none = estimate(0, 0.0, 60.0, 60, 2.0)
    assert none.hashrate == 0 and none.low == 0 and none.high > 0 and not none.reliable


def test_hashes_per_diff1_is_near_two_to_the_32() -> None:
    assert HASHES_PER_DIFF1 == pytest.approx(2**32 * 65536 / 65535, rel=1e-9)

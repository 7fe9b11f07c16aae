"""The hashrate estimator and its 90% Poisson interval."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.web import hashrate as hr

# Exact chi-square quantiles (from tables) for the Garwood interval: n -> (chi2(.05; 2n)/2, chi2(.95; 2n+2)/2)
EXACT = {
    10: (5.425, 16.962),
    30: (21.59, 40.39),
    100: (84.14, 118.08),
}


@pytest.mark.parametrize("n", sorted(EXACT))
def test_interval_matches_exact_quantiles(n: int) -> None:
    low, high = hr.poisson_interval(n)
    assert low == pytest.approx(EXACT[n][0], rel=0.01)
    assert high == pytest.approx(EXACT[n][1], rel=0.01)


def test_zero_count_has_zero_lower_bound() -> None:
    low, high = hr.poisson_interval(0)
    assert low == 0.0
    assert high == pytest.approx(2.996, rel=0.02)  # -ln(0.05)


def test_estimate_is_work_over_time() -> None:
    e = hr.estimate(100, 250.0, 50.0, 60)
    assert e.enough and e.hashrate == pytest.approx(250.0 * 2**32 / 50.0)
    assert e.low is not None and e.high is not None and e.low < e.hashrate < e.high
    assert e.window_s == 60 and e.span_s == 50.0


def test_too_few_shares_gives_no_number() -> None:
    e = hr.estimate(hr.MIN_SHARES_TO_ESTIMATE - 1, 9.0, 60.0)
    assert not e.enough and e.hashrate is None and e.low is None and e.high is None
    assert hr.estimate(5, 5.0, 0.0).hashrate is None


def test_negative_input_is_an_error() -> None:
    with pytest.raises(ValueError):
        hr.estimate(-1, 1.0, 1.0)
    with pytest.raises(ValueError):
        hr.poisson_interval(-3)


@given(st.integers(min_value=hr.MIN_SHARES_TO_ESTIMATE, max_value=10**7))
def test_interval_brackets_and_narrows(n: int) -> None:
    low, high = hr.poisson_interval(n)
    assert 0 < low < n < high
    low2, high2 = hr.poisson_interval(4 * n)
    assert (high2 - low2) / (4 * n) < (high - low) / n


def test_interval_covers_about_90_percent() -> None:
    """Simulated Poisson counts around a known mean: the interval should hold it ~90% of the time."""
    rng = random.Random(7)
    mean, trials, covered = 40.0, 4000, 0
    for _ in range(trials):
        # Poisson sample by counting exponential arrivals in unit time.
        n, t = 0, rng.expovariate(mean)
        while t < 1.0:
            n += 1
            t += rng.expovariate(mean)
        low, high = hr.poisson_interval(n)
        covered += low <= mean <= high
    assert 0.87 < covered / trials < 0.96

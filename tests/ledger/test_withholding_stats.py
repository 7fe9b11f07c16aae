"""Block withholding's statistics (pithead.ledger.withholding): the Poisson tail against direct sums, the
anytime evidence against its closed form and a numerical integral, the ordering P <= chernoff <= anytime,
the cheap `review` equal to the exact rule, the flag's hysteresis, the work needed to flag, luck and its
interval, and the per-batch tally."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead import config as config_mod
from pithead.ledger import withholding as wh
from pithead.ledger.withholding import (
    DEFAULT_LEVEL,
    UNFLAG_FACTOR,
    WithholdingError,
    anytime_p,
    assess,
    chernoff_p,
    log_evidence,
    luck_over_blocks,
    luck_over_work,
    min_expected_blocks,
    next_flag,
    poisson_cdf,
    review,
    share_odds,
    tally,
    work_to_flag,
)

lams = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
ks = st.integers(min_value=0, max_value=6000)
levels = st.sampled_from([1e-9, 1e-6, 1e-4, DEFAULT_LEVEL, 0.01, 0.05, 0.1])


def direct_cdf(k: int, lam: float) -> float:
    """P(X <= k) as the sum of its terms, in log space (the reference, for small k)."""
    if lam == 0:
        return 1.0
    return math.fsum(math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1)) for i in range(k + 1))


def integrated_evidence(k: int, lam: float, steps: int = 20_000) -> float:
    """M(k, lam) = integral_0^1 theta^k e^((1-theta) lam) dtheta by Simpson's rule (the reference)."""
    h = 1.0 / steps
    total = 0.0
    for i in range(steps + 1):
        t = i * h
        f = t**k * math.exp((1 - t) * lam)
        total += f * (1 if i in (0, steps) else 4 if i % 2 else 2)
    return total * h / 3


@pytest.mark.parametrize(("k", "lam"), [(0, 0.5), (0, 9.0), (3, 2.5), (5, 20.0), (40, 50.0), (100, 180.0)])
def test_poisson_cdf_is_the_sum_of_its_terms(k: int, lam: float) -> None:
    assert poisson_cdf(k, lam) == pytest.approx(direct_cdf(k, lam), rel=1e-10)


def test_poisson_cdf_keeps_deep_tails() -> None:
    # k = 0: e^-lambda exactly, far below what 1 - P could show
    assert poisson_cdf(0, 100.0) == pytest.approx(math.exp(-100.0), rel=1e-12)
    assert poisson_cdf(10, 200.0) == pytest.approx(direct_cdf(10, 200.0), rel=1e-9)
    assert 0 < poisson_cdf(10, 200.0) < 1e-60


@given(ks, lams)
@settings(max_examples=300, deadline=None)
def test_probabilities_are_ordered_and_in_range(k: int, lam: float) -> None:
    p, c, a = poisson_cdf(k, lam), chernoff_p(k, lam), anytime_p(k, lam)
    assert 0.0 <= p <= 1.0 and 0.0 <= a <= 1.0
    # Chernoff: P(X <= k) <= 1 / max L_theta; and the mixture is at most the max: anytime_p >= chernoff_p
    assert p <= c * (1 + 1e-9) + 1e-300
    assert c <= a * (1 + 1e-9) + 1e-300


@given(st.integers(min_value=0, max_value=200), st.floats(min_value=0.0, max_value=300.0),
       st.floats(min_value=0.0, max_value=50.0))
@settings(max_examples=200, deadline=None)
def test_more_work_never_helps_and_more_blocks_never_hurt(k: int, lam: float, more: float) -> None:
    assert poisson_cdf(k, lam + more) <= poisson_cdf(k, lam) * (1 + 1e-9)
    assert anytime_p(k, lam + more) <= anytime_p(k, lam) * (1 + 1e-9) + 1e-300
    assert poisson_cdf(k + 1, lam) >= poisson_cdf(k, lam) * (1 - 1e-9)
    assert anytime_p(k + 1, lam) >= anytime_p(k, lam) * (1 - 1e-9)


@pytest.mark.parametrize("lam", [0.5, 3.0, 9.118, 25.0])
def test_evidence_of_a_full_withholder_has_its_closed_form(lam: float) -> None:
    # k = 0: M = (e^lambda - 1) / lambda
    assert math.exp(log_evidence(0, lam)) == pytest.approx(math.expm1(lam) / lam, rel=1e-10)


@pytest.mark.parametrize(("k", "lam"), [(1, 6.0), (3, 15.0), (10, 30.0), (25, 60.0)])
def test_evidence_is_the_mixture_integral(k: int, lam: float) -> None:
    assert math.exp(log_evidence(k, lam)) == pytest.approx(integrated_evidence(k, lam), rel=1e-7)


def test_more_blocks_than_expected_is_no_evidence() -> None:
    assert anytime_p(5, 5.0) == 1.0 and anytime_p(50, 10.0) == 1.0 and anytime_p(0, 0.0) == 1.0
    assert log_evidence(3, 0.0) == -math.log(4)


@given(ks, lams, levels, st.booleans())
@settings(max_examples=400, deadline=None)
def test_review_is_the_exact_rule(k: int, lam: float, level: float, flagged: bool) -> None:
    assert review(lam, k, level, flagged) == next_flag(assess(lam, k), level, flagged)


def test_a_flag_needs_enough_work_and_lifts_only_when_the_evidence_fades() -> None:
    level = DEFAULT_LEVEL
    assert not next_flag(assess(9.0, 0), level, False)  # anytime_p 1.1e-3: not yet
    assert next_flag(assess(9.2, 0), level, False)
    # a plain P(X <= 0) = e^-7 = 9e-4 is below the level, but 7 blocks are not enough work to flag on
    assert poisson_cdf(0, 7.0) < level and not next_flag(assess(7.0, 0), level, False)
    # Flagged at 10 expected and none found; blocks found afterwards: the flag stays while anytime_p < 10 x
    # level, and is lifted at the first count where it is not.
    lam, k = 10.0, 0
    assert next_flag(assess(lam, k), level, False)
    while anytime_p(k, lam) < UNFLAG_FACTOR * level:
        assert next_flag(assess(lam, k), level, True)
        k += 1
    assert not next_flag(assess(lam, k), level, True)
    assert anytime_p(k - 1, lam) < UNFLAG_FACTOR * level <= anytime_p(k, lam)
    # Between the two thresholds an unflagged worker is not flagged: the band is what stops flapping.
    between = next(j for j in range(20) if level <= anytime_p(j, 12.0) < UNFLAG_FACTOR * level)
    assert not next_flag(assess(12.0, between), level, False) and next_flag(assess(12.0, between), level, True)


def test_work_to_flag_a_full_withholder() -> None:
    # Its own expected blocks at the threshold: (e^lambda - 1) / lambda = 1000 at the default level.
    own = work_to_flag(1.0)
    assert own == pytest.approx(9.118, abs=1e-3)
    assert math.expm1(own) / own == pytest.approx(1 / DEFAULT_LEVEL, rel=1e-6)
    # As blocks' worth of the pool's work: the withholder's own, over its share of the pool.
    assert work_to_flag(0.01) == pytest.approx(911.8, abs=0.1)
    assert work_to_flag(0.05) == pytest.approx(182.4, abs=0.1)
    assert work_to_flag(0.20) == pytest.approx(45.6, abs=0.1)
    assert work_to_flag(1.0, 0.01) == pytest.approx(6.4746, abs=1e-3)
    assert min_expected_blocks(wh.MAX_LEVEL) == pytest.approx(3.615, abs=1e-3)
    with pytest.raises(WithholdingError):
        work_to_flag(0.0)


@given(ks, lams, levels)
@settings(max_examples=300, deadline=None)
def test_nothing_is_flagged_on_less_work_than_a_full_withholder(k: int, lam: float, level: float) -> None:
    """"Enough work behind it": anytime_p only falls as blocks go missing, so no worker with any count
    is flagged on less work than min_expected_blocks."""
    if lam < min_expected_blocks(level):
        assert not next_flag(assess(lam, k), level, False)


def test_the_config_range_is_the_modules() -> None:
    assert config_mod.WITHHOLDING_LEVEL_RANGE == (wh.MIN_LEVEL, wh.MAX_LEVEL)
    assert config_mod.LedgerConfig().withholding_level == DEFAULT_LEVEL
    for bad in (0.0, 0.2, -1.0):
        with pytest.raises(WithholdingError):
            wh.check_level(bad)
        with pytest.raises(config_mod.ConfigError, match=r"ledger\.withholding_level"):
            config_mod.validate(config_mod.LedgerConfig(withholding_level=bad))
    config_mod.validate(config_mod.LedgerConfig(withholding_level=wh.MAX_LEVEL))


def test_share_odds_cap_at_one_and_tally_sums() -> None:
    assert share_odds(1.0, 4.0) == 0.25 and share_odds(8.0, 4.0) == 1.0
    with pytest.raises(WithholdingError):
        share_odds(1.0, 0.0)
    workers, addresses, pool = tally([
        (10.0, "a.1", "a", 1.0, 4.0),
        (11.0, "a.2", "a", 2.0, 4.0),
        (9.0, "b.1", "b", 5.0, 4.0),  # harder than the network: a block for sure
        (12.0, "a.1", "a", 1.0, 0.0),  # network difficulty unknown: unpriced
    ])
    assert workers["a.1"] == wh.Tally(0.25, 1, 10.0)
    assert workers["b.1"] == wh.Tally(1.0, 0, 9.0)
    assert addresses["a"] == wh.Tally(0.75, 1, 10.0)
    assert pool == wh.Tally(1.75, 1, 9.0)


def test_luck_over_work_and_over_blocks() -> None:
    luck = luck_over_work(10, 12.5)
    assert luck.luck == pytest.approx(0.8)
    assert luck.low is not None and luck.high is not None and luck.low < 0.8 < luck.high
    assert luck_over_work(0, 0.0).luck is None
    assert luck_over_work(0, 5.0).low == 0.0
    even = luck_over_blocks([1.0] * 10)
    assert even.luck == 1.0 and even.low is not None and even.high is not None and even.low < 1.0 < even.high
    assert luck_over_blocks([]).luck is None


def test_luck_intervals_cover_the_truth() -> None:
    """By simulation, fixed seed: an honest pool's luck intervals hold 1.0 about 90 % of the time."""
    rng = random.Random(17)
    runs = 2000
    held_work = held_blocks = 0
    for _ in range(runs):
        efforts = [rng.expovariate(1.0) for _ in range(10)]
        lb = luck_over_blocks(efforts)
        assert lb.low is not None and lb.high is not None
        held_blocks += lb.low <= 1.0 <= lb.high
        work = 20.0
        found, t = 0, rng.expovariate(1.0)
        while t <= work:
            found, t = found + 1, t + rng.expovariate(1.0)
        lw = luck_over_work(found, work)
        assert lw.low is not None and lw.high is not None
        held_work += lw.low <= 1.0 <= lw.high
    # exact intervals: 90 % for the Gamma one; at least 90 % for the (conservative) Garwood one
    assert 0.87 * runs <= held_blocks <= 0.93 * runs
    assert 0.88 * runs <= held_work <= 0.97 * runs

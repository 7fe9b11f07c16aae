"""Reward schemes: exact integer splits, PPLNS window arithmetic, PPS carry — properties on random histories."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.ledger import schemes
from pithead.ledger.schemes import (
    CARRY_UNITS_PER_SAT,
    POOL_ACCOUNT,
    PricedWork,
    SchemeError,
    Work,
)

ADDRESSES = st.sampled_from(["bcrt1qa", "bcrt1qb", "bcrt1qc", "bcrt1qd", "bcrt1qe"])
# Share difficulties from ESP32 territory to big ASICs, as the pool's vardiff hands them out.
DIFFS = st.floats(min_value=1e-4, max_value=1e9, allow_nan=False, allow_infinity=False)
REWARDS = st.integers(min_value=0, max_value=21_000_000 * 100_000_000)
FEES = st.integers(min_value=0, max_value=schemes.MAX_FEE_PPM - 1)
HISTORY = st.lists(st.builds(Work, ADDRESSES, DIFFS), min_size=0, max_size=60)


def _check_split(split: schemes.Split, reward: int, fee_ppm: int) -> None:
    assert sum(split.credits.values()) == reward
    assert split.fee_sat == reward * fee_ppm // 1_000_000
    assert split.fee_sat + split.distributable_sat == reward
    assert split.credits.get(POOL_ACCOUNT, 0) == split.fee_sat
    assert all(v >= 0 for v in split.credits.values())


@given(REWARDS, FEES, ADDRESSES)
def test_solo_pays_finder_everything_but_fee(reward: int, fee: int, finder: str) -> None:
    split = schemes.solo(reward, finder, fee)
    _check_split(split, reward, fee)
    assert split.credits.get(finder, 0) == split.distributable_sat


@given(REWARDS, FEES, HISTORY, ADDRESSES)
def test_prop_sums_exactly_and_is_proportional(reward: int, fee: int, history: list[Work], finder: str) -> None:
    work: dict[str, float] = {}
    for w in history:
        work[w.address] = work.get(w.address, 0.0) + w.difficulty
    split = schemes.prop(reward, work, finder, fee)
    _check_split(split, reward, fee)
    if not work:
        assert split.credits.get(finder, 0) == split.distributable_sat
        return
    total = sum((Fraction(d) for d in work.values()), Fraction(0))
    for address, d in work.items():
        exact = split.distributable_sat * Fraction(d) / total
        # every miner gets its exact share rounded down or up, never further off
        assert exact - 1 < split.credits.get(address, 0) <= exact + 1


@given(REWARDS, FEES, HISTORY, st.floats(min_value=1e-3, max_value=1e10), ADDRESSES)
@settings(max_examples=200)
def test_pplns_sums_exactly_and_counts_exactly_the_window(
    reward: int, fee: int, history: list[Work], window: float, finder: str
) -> None:
    newest_first = list(reversed(history))
    split = schemes.pplns(reward, newest_first, window, finder, fee)
    _check_split(split, reward, fee)
    weights = schemes.pplns_weights(newest_first, window)
    counted = sum(weights.values(), Fraction(0))
    available = sum((Fraction(w.difficulty) for w in history), Fraction(0))
    assert counted == min(Fraction(window), available)


@given(REWARDS, HISTORY, HISTORY, st.floats(min_value=1e-3, max_value=1e6))
def test_pplns_ignores_shares_older_than_the_window(reward: int, recent: list[Work], old: list[Work], window: float) -> None:
    recent_work = sum((Fraction(w.difficulty) for w in recent), Fraction(0))
    if recent_work < Fraction(window):
        recent = [*recent, Work("bcrt1qfill", window)]  # make the recent shares fill the window
    newest_first = list(reversed(recent))
    with_old = newest_first + list(reversed(old))
    a = schemes.pplns(reward, newest_first, window, "bcrt1qfinder")
    b = schemes.pplns(reward, with_old, window, "bcrt1qfinder")
    assert a == b


def test_pplns_straddling_share_counts_partially() -> None:
    # newest first: B with 3, then A with 4, window 5 -> B counts 3, A counts 2 of its 4
    split = schemes.pplns(500, [Work("B", 3.0), Work("A", 4.0)], 5.0, "F")
    assert split.credits == {"B": 300, "A": 200}


def test_prop_ties_break_by_address_not_dict_order() -> None:
    one = schemes.prop(2, {"x": 1.0, "y": 1.0, "z": 1.0}, "f")
    two = schemes.prop(2, {"z": 1.0, "y": 1.0, "x": 1.0}, "f")
    assert dict(one.credits) == dict(two.credits) == {"x": 1, "y": 1, "z": 0}


@pytest.mark.parametrize(
    "bad",
    [lambda: schemes.split_fee(-1, 0), lambda: schemes.split_fee(10, 1_000_000), lambda: schemes.fee_ppm_from_percent(100),
     lambda: schemes.fee_ppm_from_percent(-0.5), lambda: schemes.prop(10, {"a": -1.0}, "f"),
     lambda: schemes.pplns(10, [Work("a", float("nan"))], 5.0, "f"), lambda: schemes.pplns_window(0, 5.0)],
)
def test_bad_arguments_are_typed_errors(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemeError):
        bad()


def test_fee_percent_conversion() -> None:
    assert schemes.fee_ppm_from_percent(1.0) == 10_000
    assert schemes.fee_ppm_from_percent(0.5) == 5_000
    assert schemes.fee_ppm_from_percent(0) == 0


PRICED = st.lists(
    st.builds(
        PricedWork,
        ADDRESSES,
        st.floats(min_value=1e-4, max_value=1e6),
        st.floats(min_value=1.0, max_value=1e14),
        st.integers(min_value=0, max_value=10_000_000_000),
    ),
    max_size=40,
)


@given(PRICED, FEES, st.lists(st.integers(min_value=1, max_value=10), max_size=8))
@settings(max_examples=200)
def test_pps_never_overpays_and_carries_the_rest(shares: list[PricedWork], fee: int, cuts: list[int]) -> None:
    # Feed the shares in arbitrary batches; the total credited must trail the exact value by < 1 sat
    # plus the carry's rounding grain per batch, and never exceed it.
    carry: dict[str, int] = {}
    credited: dict[str, int] = {}
    i = 0
    batches = 0
    for n in [*cuts, len(shares)]:
        batch = shares[i : i + n]
        i += n
        if not batch:
            continue
        batches += 1
        result = schemes.pps(batch, fee, carry)
        carry = dict(result.carry)
        assert all(0 < u < CARRY_UNITS_PER_SAT for u in carry.values())
        for a, v in result.credits.items():
            assert v > 0
            credited[a] = credited.get(a, 0) + v
    for address in {w.address for w in shares}:
        exact = sum((schemes.pps_value(w, fee) for w in shares if w.address == address), Fraction(0))
        got = Fraction(credited.get(address, 0)) + Fraction(carry.get(address, 0), CARRY_UNITS_PER_SAT)
        assert got <= exact
        assert exact - got <= Fraction(batches, CARRY_UNITS_PER_SAT)
        assert exact - credited.get(address, 0) < 1 + Fraction(batches, CARRY_UNITS_PER_SAT)


def test_pps_value_is_expected_value_less_fee() -> None:
    # a share at 1/1000 of the network difficulty is worth 1/1000 of the block, less 2 %
    w = PricedWork("a", 1.0, 1000.0, 5_000_000_000)
    assert schemes.pps_value(w, 20_000) == Fraction(5_000_000_000 * 98, 100 * 1000)
    assert schemes.pps([w], 20_000).credits == {"a": 4_900_000}

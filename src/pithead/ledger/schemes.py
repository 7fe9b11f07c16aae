"""Reward schemes as pure functions: who gets how many satoshis of a block, or of a share under PPS.

SOLO (the finder takes all), PROP (proportional to work in the round), PPLNS (pay per last N shares,
the window measured in share difficulty: N x network difficulty) and PPS (the pool pays each share its
expected value, minus the fee, from its own balance, and keeps the blocks).

Everything here is integer satoshis and exact rationals: difficulties arrive as floats, which are exact
binary fractions, so `Fraction(d)` loses nothing; splits round down and hand the leftover satoshis out by
largest remainder, so the credits of a block always add up to its distributable reward exactly. There is
no IO, no clock and no randomness here; time and state come in as arguments.

This module is not the ledger: it does not know where shares are stored or when a block matures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

PPM = 1_000_000  # fee is expressed in parts per million so that it is an integer, like everything else
MAX_FEE_PPM = PPM  # a fee of 100 % or more would leave nothing, or less than nothing, to distribute

# The pool's own account in the credit book: fees go here, PPS blocks go here and PPS credits come out of
# it. It is not an address (no address starts with "@"), so it can never be paid out by sendmany.
POOL_ACCOUNT = "@pool"

# PPS credits are worth fractions of a satoshi per share; the fraction is carried per address in units of
# 2**-32 sat, an integer that fits every database's BIGINT. Rounding the carry down to this grain loses
# less than 2**-32 sat per credited batch, always in the pool's favour, never the miner's against the rule
# that we never credit more than the exact expected value.
CARRY_UNITS_PER_SAT = 2**32


class Scheme(StrEnum):
    SOLO = "solo"
    PROP = "prop"
    PPLNS = "pplns"
    PPS = "pps"


class SchemeError(ValueError):
    """Arguments a scheme cannot work with (negative reward, fee out of range, bad difficulty)."""


@dataclass(frozen=True, slots=True)
class Work:
    """One accepted share as the schemes see it: whose it is and how much work it proves."""

    address: str
    difficulty: float


@dataclass(frozen=True, slots=True)
class Split:
    """A block's reward divided: `credits` (address -> sat, the pool's fee under POOL_ACCOUNT)."""

    credits: Mapping[str, int]
    fee_sat: int
    distributable_sat: int


def fee_ppm_from_percent(percent: float) -> int:
    """The config's `pool_fee_percent` as an integer number of parts per million."""
    ppm = round(percent * 10_000)
    if not 0 <= ppm < MAX_FEE_PPM:
        raise SchemeError(f"pool fee must be in [0, 100) percent, got {percent}")
    return ppm


def split_fee(reward_sat: int, fee_ppm: int) -> tuple[int, int]:
    """(fee, distributable) for a reward; the fee is rounded down, so miners get the odd satoshi."""
    if reward_sat < 0:
        raise SchemeError(f"negative reward {reward_sat}")
    if not 0 <= fee_ppm < MAX_FEE_PPM:
        raise SchemeError(f"fee {fee_ppm} ppm out of range")
    fee = reward_sat * fee_ppm // PPM
    return fee, reward_sat - fee


def _exact(difficulty: float) -> Fraction:
    if not difficulty > 0 or difficulty != difficulty or difficulty == float("inf"):
        raise SchemeError(f"share difficulty must be a positive finite number, got {difficulty}")
    return Fraction(difficulty)


def apportion(total_sat: int, weights: Mapping[str, Fraction]) -> dict[str, int]:
    """Divide `total_sat` in proportion to `weights`, exactly: floors, then largest remainders.

    Ties between equal remainders go to the lexicographically smaller key, so the result depends on the
    weights only, never on dict order. Keys with zero weight get nothing; the result sums to `total_sat`.
    """
    if total_sat < 0:
        raise SchemeError(f"negative amount {total_sat}")
    live = {k: w for k, w in weights.items() if w > 0}
    if not live:
        raise SchemeError("no positive weight to apportion over")
    total_w = sum(live.values(), Fraction(0))
    shares: dict[str, int] = {}
    remainders: list[tuple[Fraction, str]] = []
    for key, w in live.items():
        exact = total_sat * w / total_w
        whole = exact.numerator // exact.denominator
        shares[key] = whole
        remainders.append((exact - whole, key))
    left = total_sat - sum(shares.values())
    remainders.sort(key=lambda rk: (-rk[0], rk[1]))
    for _, key in remainders[:left]:
        shares[key] += 1
    return shares


def _with_fee(credits: dict[str, int], fee: int) -> dict[str, int]:
    if fee:
        credits[POOL_ACCOUNT] = credits.get(POOL_ACCOUNT, 0) + fee
    return credits


def solo(reward_sat: int, finder_address: str, fee_ppm: int = 0) -> Split:
    """SOLO: the finder's address takes the whole reward less the pool fee."""
    fee, dist = split_fee(reward_sat, fee_ppm)
    return Split(_with_fee({finder_address: dist} if dist else {}, fee), fee, dist)


def prop(reward_sat: int, round_work: Mapping[str, float], finder_address: str, fee_ppm: int = 0) -> Split:
    """PROP: the reward in proportion to each address's summed share difficulty in the round.

    `round_work` maps address -> total difficulty of its accepted shares since the previous block. A round
    with no work (a block found before any share was counted) pays the finder, as SOLO would.
    """
    weights = {a: _exact(d) for a, d in round_work.items() if d != 0}
    if not weights:
        return solo(reward_sat, finder_address, fee_ppm)
    fee, dist = split_fee(reward_sat, fee_ppm)
    return Split(_with_fee(apportion(dist, weights), fee), fee, dist)


def _dyadic(difficulty: float) -> tuple[int, int]:
    """A positive finite float as (n, k) with value n / 2**k, exactly (every float is such a fraction)."""
    if not 0 < difficulty < float("inf"):  # NaN fails this too
        raise SchemeError(f"share difficulty must be a positive finite number, got {difficulty}")
    num, den = float(difficulty).as_integer_ratio()  # den is a power of two
    return num, den.bit_length() - 1


def pplns_weights(newest_first: Iterable[Work], window: float) -> dict[str, Fraction]:
    """Each address's counted difficulty in the last `window` units of share difficulty.

    Shares are walked newest first; the share that straddles the window's edge counts only for the part
    that fits, so the counted work is exactly `window` when there is enough history (and all of it when
    there is not). Sums are kept as integers in units of 2**-exp, `exp` growing only when a share needs
    a finer unit: exact like Fractions, and many times faster.
    """
    left, exp = _dyadic(window)
    units: dict[str, int] = {}
    for work in newest_first:
        if left <= 0:
            break
        num, k = _dyadic(work.difficulty)
        if k > exp:  # a finer unit: rescale everything counted so far
            shift = k - exp
            left <<= shift
            units = {a: u << shift for a, u in units.items()}
            exp = k
        d = min(num << (exp - k), left)
        units[work.address] = units.get(work.address, 0) + d
        left -= d
    return {a: Fraction(u, 1 << exp) for a, u in units.items()}


def pplns(
    reward_sat: int, newest_first: Iterable[Work], window: float, finder_address: str, fee_ppm: int = 0
) -> Split:
    """PPLNS: the reward in proportion to work in the last `window` (= N x network difficulty) of shares."""
    weights = pplns_weights(newest_first, window)
    if not weights:
        return solo(reward_sat, finder_address, fee_ppm)
    fee, dist = split_fee(reward_sat, fee_ppm)
    return Split(_with_fee(apportion(dist, weights), fee), fee, dist)


def pplns_window(n: float, network_difficulty: float) -> float:
    """The PPLNS window in share difficulty: N times the network difficulty."""
    if not n > 0 or not network_difficulty > 0:
        raise SchemeError(f"PPLNS needs N > 0 and a network difficulty > 0, got {n}, {network_difficulty}")
    return n * network_difficulty


@dataclass(frozen=True, slots=True)
class PricedWork:
    """A share with what it was worth: the network difficulty and block value of the job it mined."""

    address: str
    difficulty: float
    network_difficulty: float
    block_value_sat: int


@dataclass(frozen=True, slots=True)
class PpsResult:
    """PPS credits for a batch of shares (address -> sat), and each address's carried fraction."""

    credits: Mapping[str, int]
    carry: Mapping[str, int]  # in 1/CARRY_UNITS_PER_SAT sat, always < CARRY_UNITS_PER_SAT


def pps_value(work: PricedWork, fee_ppm: int) -> Fraction:
    """The exact expected value of one share, less the fee: value x (1 - fee) x d / D."""
    if work.block_value_sat < 0:
        raise SchemeError(f"negative block value {work.block_value_sat}")
    if not 0 <= fee_ppm < MAX_FEE_PPM:
        raise SchemeError(f"fee {fee_ppm} ppm out of range")
    share = _exact(work.difficulty) / _exact(work.network_difficulty)
    return work.block_value_sat * Fraction(PPM - fee_ppm, PPM) * share


def pps(shares: Sequence[PricedWork], fee_ppm: int, carry: Mapping[str, int] | None = None) -> PpsResult:
    """PPS: credit each address the expected value of its shares, whole satoshis now, the rest carried.

    A credit never exceeds the exact expected value; the part not credited yet stays in `carry` (rounded
    down to 2**-32 sat) and is added to the next batch, so over time miners receive it all.
    """
    carry = dict(carry or {})
    exact: dict[str, Fraction] = {}
    for work in shares:
        exact[work.address] = exact.get(work.address, Fraction(0)) + pps_value(work, fee_ppm)
    credits: dict[str, int] = {}
    new_carry: dict[str, int] = dict(carry)
    for address, value in exact.items():
        total = value + Fraction(carry.get(address, 0), CARRY_UNITS_PER_SAT)
        whole = total.numerator // total.denominator
        rest = total - whole
        units = rest.numerator * CARRY_UNITS_PER_SAT // rest.denominator
        if whole:
            credits[address] = whole
        new_carry[address] = units
    return PpsResult(credits, {a: u for a, u in new_carry.items() if u})

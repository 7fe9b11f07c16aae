"""Block withholding: the blocks a worker's share work should have found, the blocks it did find, and how
unlikely that is for an honest miner; and the pool's luck, from the same figures.

A withholding miner submits every share except those that would solve a block: it is paid for its shares
and costs the pool every block it finds. Nothing in one share betrays it, but its share work predicts its
blocks. A share accepted at pool difficulty d, on a job whose network difficulty is D, solves the block
with probability p = min(1, d / D) (its hash is uniform below the share target; the network target is the
fraction d / D of it, or all of it when the share target is the harder one). Over a worker's accepted
shares the blocks expected are lambda = sum p_i and the blocks found k; for an honest miner k is a sum of
Bernoulli(p_i), which is Poisson(lambda) when every p is small and more tightly concentrated otherwise.

D is the network difficulty of the share's own job, which pithead's pool puts on every share event. An
event without it (0: a pool that does not say) is priced by the ledger at the last D it was told, by an
event or by the app's poll of its node (`getmininginfo`, every few seconds): right after the difficulty
rises, such shares are priced at the old, lower D and lambda reads high, which leans towards a false flag
until the new D arrives (one poll on mainnet, where D moves once in 2016 blocks; on the demo chain, which
retargets every block, lambda would be off all the time, hence D on every event). A share with no D ever
told is counted as unpriced and left out of lambda: lambda then reads low, which never flags anyone.
k counts every block solution a worker submitted, whatever the node then said (a block that lost a race
to another was still not withheld), as its share arrives (the share's hash met its job's network target),
so k never lags lambda by the node's answer time.

The evidence (all pure functions here; the ledger feeds them the sums it keeps per worker, per address and
for the pool, `pithead.ledger.store`):

* `poisson_cdf(k, lam)`, P(X <= k) for X ~ Poisson(lambda): how often an honest miner with this much work
  finds k blocks or fewer. This is the figure shown (with lambda and k) on the dashboard, in the API and in
  Prometheus. Where flags happen (k well below lambda) the Poisson tail is the larger one for Bernoulli
  sums too (Hoeffding 1956; Anderson & Samuels 1967), so it never overstates the evidence.

* `anytime_p(k, lam)`: the same question asked continuously. The ledger re-reads the evidence after every
  batch of shares for as long as a worker mines, and a fixed-time test checked forever flags every honest
  miner eventually (the law of the iterated logarithm): P(X <= k) < 0.001 somewhere in a run of 100
  blocks' worth of work happens to ~0.3 % of honest miners, not 0.1 % (measured in the tests). So a flag
  rests on a test that stays valid however often it is looked at: for a miner that reveals only the share
  theta of its blocks, the likelihood ratio against an honest one is L_theta = theta^k e^((1-theta) lambda);
  averaged over theta uniform on [0, 1] it is

      M(k, lambda) = e^lambda * integral_0^1 theta^k e^(-theta lambda) dtheta
                   = e^lambda * k! * P(k + 1, lambda) / lambda^(k + 1)     (P: regularised lower gamma),

  and for an honest miner M is a nonnegative supermartingale in its shares (each share's factor has mean
  (1 - p + p theta) e^((1-theta) p) <= 1, exactly so for Poisson work), so by Ville's inequality the chance
  that M ever reaches 1 / level is at most `level`, however long the miner mines and however often it is
  checked. `anytime_p` = min(1, 1 / M). Since P(X <= k) <= 1 / L_theta for every theta (Chernoff) and
  M <= max L_theta, anytime_p >= P(X <= k) always: a flag implies the plain probability is below the level
  too.

* The rule (`next_flag`): a worker (or an address) is flagged when anytime_p < level, and unflagged when
  the evidence fades, once anytime_p is back at or above UNFLAG_FACTOR x level (the band keeps a flag
  from flapping on each share). "Enough work behind it" is part of that rule, not a separate knob: M falls
  as k grows (theta^k does), so no worker is flagged before a full withholder (k = 0) would be, and for
  that one M = (e^lambda - 1) / lambda; the least work that can ever be flagged (`min_expected_blocks`) is
  where that reaches 1 / level: lambda = 9.12 blocks at the default level 0.001 (the fixed-time test would
  take ln 1000 = 6.91), 6.47 at 0.01 and 3.61 at the most lenient level accepted, 0.1. Partial withholders
  take longer (theta = 1/2: about 48 blocks at the median). As a share s of the pool, 9.12 blocks of its
  own work are 9.12 / s blocks' worth of the pool's: 912 at 1 %, 182 at 5 %, 46 at 20 % (`work_to_flag`).

A flag is evidence for an operator, never a verdict: an honest worker is flagged at most with probability
`level` over its whole life, so a pool of N workers expects at most N x level false flags ever; a block
event lost before the ledger (a pool killed between submitblock and its event) or a wrong network
difficulty looks like withholding too. Nothing here holds payouts (`pithead.ledger.payouts` does, when an
operator asks).

Pool-wide the same sums give each block's effort (the expected blocks of the pool's work since the block
before it: 1.0 is average, 2.0 took twice the work) and the pool's luck (found / expected, 1.0 as expected,
above is lucky) with its 90 % interval: over all its work, a Poisson count k with exposure lambda (Garwood,
as the hashrate windows, `pithead.ledger.stats`); over the last n blocks, n over their summed effort S,
where S ~ Gamma(n) / luck.

What this module is not: it reads no store and no clock, and raises no notice (the ledger does both).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pithead.events import Notice
from pithead.ledger.stats import CONFIDENCE, gamma_ppf, log_lower_gamma_p, poisson_interval, upper_gamma_q

# The configured level's default: the chance an honest worker is ever flagged, over its whole life. A pool
# of a thousand workers then expects at most one false flag ever, and a full withholder is flagged after
# 9.12 blocks of its own work.
DEFAULT_LEVEL = 0.001
# The levels `[ledger] withholding_level` accepts. Above 10 % a flag says little (one honest worker in ten
# would carry one); below 1e-9 a full withholder needs 24 blocks of its own work, and the Poisson
# model's own small errors (a lost block event, a network difficulty known late) matter more than the level.
MIN_LEVEL = 1e-9
MAX_LEVEL = 0.1

# A flag is lifted when the evidence has faded to ten times the level (anytime_p >= 10 x level): far enough
# from the flagging threshold that a flagged worker's next few shares or one block cannot toggle it back
# and forth (each flag raises a notice).
UNFLAG_FACTOR = 10.0

# The pool's luck is shown over all its work and over its last blocks (each block's effort is kept with it).
LUCK_BLOCK_SPANS: tuple[int, ...] = (10, 100)


class WithholdingError(ValueError):
    """An impossible figure: negative work or blocks, a level out of range."""


def check_level(level: float) -> float:
    if not (isinstance(level, int | float) and MIN_LEVEL <= level <= MAX_LEVEL):
        raise WithholdingError(f"withholding level must be in [{MIN_LEVEL:g}, {MAX_LEVEL:g}], not {level!r}")
    return float(level)


def share_odds(difficulty: float, network_difficulty: float) -> float:
    """The chance a share accepted at `difficulty` on a job of `network_difficulty` solves the block."""
    if not (network_difficulty > 0 and difficulty > 0):
        raise WithholdingError(f"need positive difficulties, got d={difficulty!r}, D={network_difficulty!r}")
    return min(1.0, difficulty / network_difficulty)


def _check(k: int, lam: float) -> None:
    if k < 0 or not (lam >= 0 and math.isfinite(lam)):
        raise WithholdingError(f"need k >= 0 and a finite lambda >= 0, got k={k!r}, lambda={lam!r}")


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam): Q(k + 1, lam), the regularised upper incomplete gamma, computed
    directly in the lower tail (no 1 - 1 cancellation, so 1e-40 comes out as 1e-40)."""
    _check(k, lam)
    if lam == 0:
        return 1.0
    return upper_gamma_q(k + 1, lam)


def log_evidence(k: int, lam: float) -> float:
    """log M(k, lam), the mixture likelihood ratio of the module docstring (0 at lam = 0, k = 0; M <= 1, so
    at most 0, whenever k >= lam: more blocks than expected is never evidence)."""
    _check(k, lam)
    if lam == 0:
        return -math.log(k + 1)
    return lam + math.lgamma(k + 1) + log_lower_gamma_p(k + 1, lam) - (k + 1) * math.log(lam)


def anytime_p(k: int, lam: float) -> float:
    """min(1, 1 / M(k, lam)): the probability bound that holds however often it is checked."""
    _check(k, lam)
    if k >= lam:  # L_theta is largest at theta = 1 there, so M <= 1: no evidence at all
        return 1.0
    return min(1.0, math.exp(-log_evidence(k, lam)))


@dataclass(frozen=True, slots=True)
class Odds:
    """The evidence for one worker, address or the pool: blocks expected and found, and how unlikely."""

    expected: float  # lambda: sum of min(1, d/D) over accepted shares
    found: int  # k: blocks whose solution it submitted
    p_value: float  # P(X <= k), X ~ Poisson(lambda)
    anytime_p: float  # the same, valid under continuous checking (what flags)

    @property
    def luck(self) -> float | None:
        """Blocks found per block expected (None before any work)."""
        return self.found / self.expected if self.expected > 0 else None


def assess(expected: float, found: int) -> Odds:
    return Odds(expected, found, poisson_cdf(found, expected), anytime_p(found, expected))


def should_flag(odds: Odds, level: float) -> bool:
    """The flagging threshold: anytime_p below the level (which needs at least `min_expected_blocks`)."""
    return odds.anytime_p < level


def next_flag(odds: Odds, level: float, flagged: bool) -> bool:
    """Whether a worker with this evidence is flagged now, given whether it was: flagged at `should_flag`,
    unflagged once anytime_p is back at or above UNFLAG_FACTOR x level."""
    if flagged:
        return odds.anytime_p < UNFLAG_FACTOR * level
    return should_flag(odds, level)


def chernoff_p(k: int, lam: float) -> float:
    """1 / max over theta in (0, 1] of L_theta: exp(-(lam - k + k ln(k / lam))) below lam, 1 at or above it.
    In O(1), a bound on both sides: P(X <= k) <= chernoff_p <= anytime_p."""
    _check(k, lam)
    if k >= lam:
        return 1.0
    return math.exp(-(lam - k + (k * math.log(k / lam) if k else 0.0)))


def review(expected: float, found: int, level: float, flagged: bool) -> bool:
    """`next_flag(assess(expected, found), level, flagged)`, cheaply: the ledger asks this of every worker
    a batch moved, and for nearly all of them the O(1) bound `chernoff_p` already says anytime_p is above
    the threshold that matters, so the incomplete gamma is only computed near a decision."""
    threshold = UNFLAG_FACTOR * level if flagged else level
    if chernoff_p(found, expected) >= threshold:  # anytime_p >= chernoff_p >= threshold: not (or no longer)
        return False
    return next_flag(assess(expected, found), level, flagged)


def notice(kind: str, name: str, odds: Odds, level: float, flagged: bool, now: float) -> Notice:
    """What the operator is told when a worker or an address is flagged (a warning) or its flag is lifted."""
    what = f"{kind.capitalize()} {name}"
    figures = (f"{odds.expected:.2f} blocks expected from its share work, {odds.found} found; an honest miner "
               f"finds {odds.found} or fewer with probability {odds.p_value:.3g} (checked continuously: "
               f"{odds.anytime_p:.3g}; level {level:g})")
    if flagged:
        return Notice(
            "worker.withholding", "warning", f"{what} may be withholding blocks",
            f"{figures}. Its payouts are not held: in pool mode an operator may hold them "
            f"(`pithead ledger hold {name}`), after looking at the evidence.",
            f"withholding:{kind}:{name}", now,
        )
    return Notice(
        "worker.withholding", "info", f"{what}: withholding flag lifted",
        f"{figures}: the evidence has faded. Any payout hold stays until an operator releases it.",
        f"withholding-lifted:{kind}:{name}", now,
    )


@functools.lru_cache(maxsize=16)  # a pure function of the level, asked by every withholding report
def min_expected_blocks(level: float = DEFAULT_LEVEL) -> float:
    """The least work (blocks expected) that can ever be flagged at `level`: a full withholder's, where
    (e^lambda - 1) / lambda = 1 / level (anyone who found a block needs more)."""
    check_level(level)
    lo, hi = 0.0, 1.0
    while not should_flag(assess(hi, 0), level):
        hi *= 2
    for _ in range(100):  # bisection to far below the precision anyone reads it at
        mid = (lo + hi) / 2
        if should_flag(assess(mid, 0), level):
            hi = mid
        else:
            lo = mid
    return hi


def work_to_flag(pool_share: float, level: float = DEFAULT_LEVEL) -> float:
    """Blocks' worth of the pool's work after which a full withholder holding `pool_share` of its hashrate
    is flagged: its own expected blocks at the threshold (`min_expected_blocks`), over its share."""
    if not 0 < pool_share <= 1:
        raise WithholdingError(f"a share of the pool is in (0, 1], not {pool_share!r}")
    return min_expected_blocks(level) / pool_share


@dataclass(frozen=True, slots=True)
class Luck:
    """Blocks found per block expected, with its 90 % interval (None where there is nothing to say)."""

    blocks: int
    expected: float
    luck: float | None
    low: float | None
    high: float | None


def luck_over_work(found: int, expected: float) -> Luck:
    """Luck over a stretch of work: k blocks found where lambda were expected; the interval is the exact
    (Garwood) one for the mean of a Poisson count, over the exposure lambda."""
    _check(found, expected)
    if expected <= 0:
        return Luck(found, expected, None, None, None)
    low, high = poisson_interval(found)
    return Luck(found, expected, found / expected, low / expected, high / expected)


def luck_over_blocks(efforts: Sequence[float]) -> Luck:
    """Luck over the blocks whose efforts are given: n blocks took S = sum of efforts expected blocks of
    work; n / S, with the interval from S ~ Gamma(n) / luck."""
    n = len(efforts)
    total = math.fsum(efforts)
    if n == 0 or not total > 0:
        return Luck(n, total, None, None, None)
    tail = (1 - CONFIDENCE) / 2
    return Luck(n, total, n / total, gamma_ppf(tail, n) / total, gamma_ppf(1 - tail, n) / total)


@dataclass(frozen=True, slots=True)
class Tally:
    """One batch's share work for one worker, address or the pool."""

    expected: float = 0.0  # sum of min(1, d/D) over shares with a known network difficulty
    unpriced: int = 0  # accepted shares with no network difficulty known: left out of expected
    first: float = math.inf  # the batch's earliest share time


def solves_block(share_difficulty: float, network_difficulty: float) -> bool:
    """Whether a share whose hash reached `share_difficulty` solved its job's block (network difficulty
    known, > 0): its hash is at or under the network target."""
    return network_difficulty > 0 and share_difficulty >= network_difficulty


def tally(shares: Iterable[tuple[float, str, str, float, float]]) -> tuple[dict[str, Tally], dict[str, Tally], Tally]:
    """Sum (time, worker, address, difficulty, network difficulty) of accepted shares per worker, per
    address and for the whole pool. A network difficulty of 0 (unknown) counts the share as unpriced.

    Floats, summed per batch and then in the database: each share adds at most 1, and a double's rounding
    adds at most half an ulp of the running sum per addition, so a worker at lambda = 1e6 after 1e9 batches
    is off by under 0.1 block, against a Poisson spread of sqrt(lambda) = 1000: the error never matters."""
    workers: dict[str, list[float]] = {}
    addresses: dict[str, list[float]] = {}
    pool = [0.0, 0.0, math.inf]
    for t, worker, address, d, d_net in shares:
        w = workers.get(worker)
        if w is None:
            w = workers[worker] = [0.0, 0.0, math.inf]
        a = addresses.get(address)
        if a is None:
            a = addresses[address] = [0.0, 0.0, math.inf]
        slot, add = (0, share_odds(d, d_net)) if d_net > 0 else (1, 1.0)
        for acc in (w, a, pool):
            acc[slot] += add
            if t < acc[2]:
                acc[2] = t

    def done(acc: list[float]) -> Tally:
        return Tally(acc[0], int(acc[1]), acc[2])

    return ({w: done(a) for w, a in workers.items()}, {a: done(x) for a, x in addresses.items()}, done(pool))

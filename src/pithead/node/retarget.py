"""Difficulty for the embedded node's chains, as pure functions of the ancestors' (time, bits).

- `regtest`: Bitcoin Core's regtest never retargets (consensus.fPowNoRetargeting): every block carries
  the proof-of-work limit's nBits, 0x207fffff.
- `demo`: pithead's own rule so that a demo on a laptop finds blocks at a human pace whatever hashrate is
  present. After every block the target is scaled by how fast the last `window` blocks actually came
  versus `spacing` seconds each (a moving-window version of Core's CalculateNextWorkRequired), with each
  step clamped to a factor of MAX_STEP so one lucky block cannot swing it wildly, and never easier than
  the proof-of-work limit. The demo chain is otherwise regtest (same genesis, addresses, halving).
- `signet`: Bitcoin's own rule, as every signet keeps it (Core's GetNextWorkRequired and
  CalculateNextWorkRequired, pow.cpp): the previous nBits, except every RETARGET_INTERVAL blocks, when the
  target is scaled by how long the last interval took against two weeks (clamped to a factor of 4) and
  never easier than the proof-of-work limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from pithead.chain.compact import bits_to_target, target_to_bits

DEMO_WINDOW = 12  # blocks averaged: enough to smooth Poisson noise, short enough to follow a miner joining
MAX_STEP = 4  # per-block clamp, like Core's factor-of-4 clamp per retarget period


RETARGET_INTERVAL = 2016  # Core's DifficultyAdjustmentInterval: nPowTargetTimespan / nPowTargetSpacing
TARGET_TIMESPAN = 14 * 24 * 60 * 60  # consensus.nPowTargetTimespan, two weeks


def bitcoin_next_bits(next_height: int, ancestors: Sequence[tuple[int, int]], *, pow_limit: int) -> int:
    """nBits for the block at `next_height` (mainnet's and signet's rule); `ancestors` are (time, bits) of
    its parent and older, newest first, at least RETARGET_INTERVAL of them at a retarget height."""
    last_time, last_bits = ancestors[0]
    if next_height % RETARGET_INTERVAL != 0:
        return last_bits
    if len(ancestors) < RETARGET_INTERVAL:
        raise ValueError(f"a retarget needs {RETARGET_INTERVAL} ancestors, got {len(ancestors)}")
    first_time = ancestors[RETARGET_INTERVAL - 1][0]  # Core: the ancestor at height - (interval - 1)
    span = min(max(last_time - first_time, TARGET_TIMESPAN // 4), TARGET_TIMESPAN * 4)
    new_target = bits_to_target(last_bits) * span // TARGET_TIMESPAN
    return target_to_bits(min(new_target, pow_limit))


def regtest_next_bits(pow_limit: int) -> int:
    return target_to_bits(pow_limit)


def demo_next_bits(
    ancestors: Sequence[tuple[int, int]],
    *,
    spacing: float,
    pow_limit: int,
    window: int = DEMO_WINDOW,
) -> int:
    """nBits for the block after `ancestors[0]`; `ancestors` are (time, bits) newest first."""
    if spacing <= 0:
        raise ValueError("spacing must be positive")
    limit_bits = target_to_bits(pow_limit)
    n = min(window, len(ancestors) - 1)
    if n < 1:
        return limit_bits
    recent = ancestors[: n + 1]
    mean_target = sum(bits_to_target(b) for _, b in recent[:n]) // n
    expected = spacing * n
    span = min(max(float(recent[0][0] - recent[n][0]), expected / MAX_STEP), expected * MAX_STEP)
    new_target = int(mean_target * span / expected)
    new_target = max(1, min(new_target, pow_limit))
    return target_to_bits(new_target)

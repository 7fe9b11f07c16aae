"""nBits ("compact") ↔ target ↔ difficulty, with Bitcoin Core's exact semantics.

`set_compact`/`get_compact` mirror arith_uint256::SetCompact/GetCompact (src/arith_uint256.cpp): the top
byte is a base-256 exponent, the low 23 bits the mantissa, and bit 23 (0x00800000) a sign bit. Core reports
a negative flag when the sign bit is set with a non-zero mantissa, and an overflow flag when the value would
not fit in 256 bits; consensus (CheckProofOfWork, src/pow.cpp) rejects both, and zero.

Difficulty is relative to the difficulty-1 target 0x00000000FFFF0000...0000 (= 0xFFFF × 2^208, nBits
0x1d00ffff), as Core's GetDifficulty and every Stratum pool use. Pool share difficulties may be fractional
(< 1 means a target above diff-1, as used for CPU miners and tests).
"""

from __future__ import annotations

import math
from fractions import Fraction

from pithead.chain.errors import CompactError

DIFF1_TARGET = 0xFFFF << 208
"""Target at difficulty 1 (nBits 0x1d00ffff). Also "truediffone" in cgminer terms."""

MAX_TARGET_256 = (1 << 256) - 1


def set_compact(bits: int) -> tuple[int, bool, bool]:
    """Decode nBits the way arith_uint256::SetCompact does: (value, negative, overflow)."""
    if not 0 <= bits <= 0xFFFFFFFF:
        raise CompactError(f"nBits out of range: {bits!r}")
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        # Core shifts nWord itself here, so the flags below see the bytes that survive: 0x01803456 is
        # "not negative" (the sign byte is shifted out with the mantissa).
        word >>= 8 * (3 - size)
        value = word
    else:
        value = word << (8 * (size - 3))
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32))
    if overflow:
        value &= MAX_TARGET_256  # Core's uint256 wraps; the flag is what matters
    return value, negative, overflow


def get_compact(value: int, negative: bool = False) -> int:
    """Encode a non-negative integer as nBits, like arith_uint256::GetCompact."""
    if value < 0 or value > MAX_TARGET_256:
        raise CompactError("value must be a 256-bit unsigned integer")
    size = (value.bit_length() + 7) // 8
    if size <= 3:
        compact = value << (8 * (3 - size))
    else:
        compact = value >> (8 * (size - 3))
    # The mantissa's top bit is the sign bit: if set, shift one byte and bump the exponent.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and (compact & 0x007FFFFF):
        compact |= 0x00800000
    return compact


def bits_to_target(bits: int) -> int:
    """nBits → target, refusing what consensus refuses (negative, overflow, zero)."""
    value, negative, overflow = set_compact(bits)
    if negative:
        raise CompactError(f"nBits {bits:08x} is negative")
    if overflow:
        raise CompactError(f"nBits {bits:08x} overflows 256 bits")
    if value == 0:
        raise CompactError(f"nBits {bits:08x} encodes a zero target")
    return value


def target_to_bits(target: int) -> int:
    return get_compact(target)


def target_to_difficulty(target: int) -> float:
    """Difficulty of a target: DIFF1_TARGET / target (float, as pools and Core's getdifficulty show)."""
    if target <= 0:
        raise CompactError("target must be positive")
    return DIFF1_TARGET / target


def difficulty_to_target(difficulty: float) -> int:
    """Share target for a (possibly fractional) pool difficulty, capped at 2^256 - 1.

    Computed with exact rational arithmetic from the decimal value, so difficulty 1 gives exactly
    DIFF1_TARGET and 0.5 exactly twice it."""
    if not (difficulty > 0 and math.isfinite(difficulty)):
        raise CompactError(f"difficulty must be positive and finite, got {difficulty!r}")
    target = int(Fraction(DIFF1_TARGET) / Fraction(difficulty))
    if target == 0:  # a zero target can never be met: refuse rather than hand out impossible work
        raise CompactError(f"difficulty {difficulty!r} is above the largest meaningful one ({DIFF1_TARGET})")
    return min(target, MAX_TARGET_256)


def bits_to_difficulty(bits: int) -> float:
    """Core's GetDifficulty(blockindex): computed from nBits with doubles, exactly as Core does.

    Like Core it reads all 24 low bits (sign bit included) as the mantissa, so for a negative nBits it
    differs from `target_to_difficulty(set_compact(bits))`; such nBits are invalid anyway."""
    if not 0 <= bits <= 0xFFFFFFFF:
        raise CompactError(f"nBits out of range: {bits!r}")
    shift = (bits >> 24) & 0xFF
    diff = float(0x0000FFFF) / float(bits & 0x00FFFFFF) if bits & 0x00FFFFFF else float("inf")
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


def hash_difficulty(hash_int: int) -> float:
    """The difficulty a hash achieved: DIFF1_TARGET / hash (what pools call "share difficulty")."""
    return DIFF1_TARGET / hash_int if hash_int else float("inf")


def work_from_target(target: int) -> int:
    """Expected hashes to meet a target: 2^256 / (target + 1), Core's GetBlockProof."""
    return (1 << 256) // (target + 1)

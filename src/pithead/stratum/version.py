"""BIP310 version rolling: mask negotiation and the exact nVersion formula (sans-IO, pure).

Negotiation answers `pool_mask & miner_mask` (the miner's mask defaults to ffffffff when omitted, as
cgminer sends no min-bit-count); when fewer bits than the miner's `min-bit-count` remain, rolling is
refused (`version-rolling: false`). A share's rolled version is
`(job_version & ~mask) | (version_bits & mask)` with `version_bits & ~mask == 0` enforced — not the OR
of ckpool nor the XOR of public-pool, which agree with BIP310 only when the template has zeros in the
mask bits.

Stratum V2 has no negotiation: its jobs may always roll `BIP323_MASK`.

What it is not: V1's JSON shapes (the hex fields and the `mining.configure` answer are
`pithead.stratum.v1.wire`'s); this module is what V1 and V2 judge alike.
"""

from __future__ import annotations

from dataclasses import dataclass

BIP320_MASK = 0x1FFFE000
"""BIP320 general-purpose bits 13..28: what ASICs (BM136x/BM1370) roll and the pool's default mask."""

BIP323_MASK = 0x1FFFFFE0
"""BIP323 general-purpose bits 5..28 (24 bits): what Stratum V2 lets every standard job roll without
negotiation since spec `e8b7aae` (2026-06; before it, BIP320's 16 bits). pithead's V2 endpoint accepts
this mask on every channel: a pool still on BIP320's would refuse shares from devices rolling bits 5-12
(`invalid-non-rollable-version-bit`); SRI `channels-sv2` `VERSION_ROLLING_MASK`, spec §5.3.15. V1 keeps
BIP310 negotiation and its own mask."""

FULL_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class VersionRollingAnswer:
    enabled: bool
    mask: int  # 0 when not enabled


def negotiate(pool_mask: int, miner_mask: int | None, min_bit_count: int = 0) -> VersionRollingAnswer:
    """Answer a version-rolling request: pool ∧ miner mask, refused if fewer than min-bit-count bits."""
    mask = pool_mask & (FULL_MASK if miner_mask is None else miner_mask)
    if mask == 0 or bin(mask).count("1") < min_bit_count:
        return VersionRollingAnswer(False, 0)
    return VersionRollingAnswer(True, mask)


def bits_allowed(version_bits: int, mask: int) -> bool:
    """BIP310: the miner may only change bits inside the negotiated mask."""
    return version_bits & ~mask & FULL_MASK == 0


def rolled_version(job_version: int, version_bits: int, mask: int) -> int:
    """BIP310's nVersion = (job_version & ~mask) | (version_bits & mask)."""
    return (job_version & ~mask & FULL_MASK) | (version_bits & mask)

"""Miner-side work: a Stratum job turned into block headers to hash, and hits turned into submits.

What it is: pure functions and frozen values. ``mining.notify`` params → :class:`NotifiedJob`; a job plus
the session's extranonce1, extranonce2 size, difficulty and version mask → :class:`MinerWork` (which
the Stratum V2 client shell also makes, from a V2 job: a standard channel's carries the merkle root the
pool fixed); a work
plus one (extranonce2, ntime, version bits) choice → :class:`WorkUnit` whose 76-byte header prefix the
hashing core scans; a hit nonce → :class:`FoundShare` with the exact ``mining.submit`` params.
:class:`WorkRoller` hands out distinct units when a unit's 2^32 nonces are spent: version bits first (no
merkle work), then extranonce2, then ntime. (The pool's side of a job is `pithead.template.job.Job`.)

The chain: coinbase = coinb1 || extranonce1 || extranonce2 || coinb2; merkle root = fold of sha256d
over the branch starting from sha256d(coinbase); header = version || prevhash || root || ntime || nbits
(all little-endian, prevhash decoded from Stratum's word-swapped form). BIP310 version rolling:
``nVersion = (job_version & ~mask) | (version_bits & mask)``.

What it is not: I/O, threads or the clock (ntime comes from the job; callers pass any offset).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from pithead.chain.compact import difficulty_to_target, hash_difficulty
from pithead.chain.errors import ChainDecodeError
from pithead.chain.hashes import prevhash_from_stratum, sha256d
from pithead.chain.merkle import fold_branch
from pithead.stratum.v1.errors import ProtocolViolation, WorkExhausted
from pithead.stratum.v1.wire import parse_hex32, parse_hex_bytes

#: Job ids are opaque strings; real pools use up to ~40 characters. Anything longer is refused so a
#: hostile pool cannot make us hold (and echo back) arbitrary amounts of text.
MAX_JOB_ID_LEN: Final = 128
#: A block's transaction count is bounded by its weight (4M WU); 2^20 transactions need 20 branch levels,
#: so 32 levels is beyond anything valid.
MAX_MERKLE_BRANCH: Final = 32
#: coinb1 + coinb2 are parts of one coinbase transaction; 100 kB is far above real coinbases (~300 B
#: typical, a few kB with many payout outputs) and bounds the memory one job may take.
MAX_COINBASE_PART_BYTES: Final = 100_000
#: extranonce1 is a few bytes on every pool we know (4 on most, 8 on ckpool proxies); 32 bounds it.
MAX_EXTRANONCE1_BYTES: Final = 32
#: extranonce2 > 8 bytes breaks cgminer-derived firmware; we accept up to 16 (cgminer's own upper bound).
MAX_EXTRANONCE2_SIZE: Final = 16
#: How far ahead of the job's ntime we roll: pools accept about +7000 s (ckpool) to +2 h (Miningcore, NOMP,
#: consensus MAX_FUTURE_BLOCK_TIME); a stricter pool (slush: +1000 s) is still respected by staying low.
MAX_NTIME_ROLL: Final = 900
#: nVersion, nBits, nTime, nonce are u32 on the wire (8 hex digits each).
U32_MAX: Final = 0xFFFFFFFF


def _hex_u32(value: Any, what: str) -> int:
    return parse_hex32(value, what, exact=True)


def _hex_bytes(value: Any, what: str, max_len: int, exact: int | None = None) -> bytes:
    return parse_hex_bytes(value, what, max_len, exact=exact)


@dataclass(frozen=True, slots=True)
class NotifiedJob:
    """One ``mining.notify``: everything the pool fixed for this template."""

    job_id: str
    prevhash: bytes  # internal byte order (decoded from the Stratum word-swapped form)
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]  # internal byte order
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool

    @classmethod
    def from_notify(cls, params: Any) -> NotifiedJob:
        """Validate ``mining.notify`` params field by field (ProtocolViolation if bad).

        Nine params are standard. Some firmware parsers (ESP-Miner) tolerate extra params and read
        clean_jobs from the last one; so do we, since the first nine are unambiguous.
        """
        if not isinstance(params, list | tuple) or len(params) < 9:
            raise ProtocolViolation("mining.notify needs 9 params")
        job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime = params[:8]
        clean = params[-1]
        if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID_LEN:
            raise ProtocolViolation(f"job_id must be a string of 1..{MAX_JOB_ID_LEN} characters")
        if not isinstance(branch, list) or len(branch) > MAX_MERKLE_BRANCH:
            raise ProtocolViolation(f"merkle_branch must be a list of at most {MAX_MERKLE_BRANCH} hashes")
        if not isinstance(clean, bool):
            raise ProtocolViolation("clean_jobs must be a boolean")
        try:
            prev = prevhash_from_stratum(prevhash)
        except ChainDecodeError as exc:
            raise ProtocolViolation(f"prevhash: {exc}") from exc
        return cls(
            job_id=job_id,
            prevhash=prev,
            coinb1=_hex_bytes(coinb1, "coinb1", MAX_COINBASE_PART_BYTES),
            coinb2=_hex_bytes(coinb2, "coinb2", MAX_COINBASE_PART_BYTES),
            merkle_branch=tuple(_hex_bytes(b, "merkle_branch entry", 32, exact=32) for b in branch),
            version=_hex_u32(version, "version"),
            nbits=_hex_u32(nbits, "nbits"),
            ntime=_hex_u32(ntime, "ntime"),
            clean_jobs=clean,
        )


def coinbase(job: NotifiedJob, extranonce1: bytes, extranonce2: bytes) -> bytes:
    """The coinbase transaction (non-witness serialization) for one extranonce2."""
    return job.coinb1 + extranonce1 + extranonce2 + job.coinb2


def merkle_root(job: NotifiedJob, extranonce1: bytes, extranonce2: bytes) -> bytes:
    """The header's merkle root (internal order) for one extranonce2."""
    return fold_branch(sha256d(coinbase(job, extranonce1, extranonce2)), job.merkle_branch)


def roll_version(job_version: int, mask: int, version_bits: int) -> int:
    """BIP310: ``nVersion = (job_version & ~mask) | (version_bits & mask)``."""
    return ((job_version & ~mask) | (version_bits & mask)) & U32_MAX


def deposit_bits(index: int, mask: int) -> int:
    """Spread the low bits of ``index`` over the set bits of ``mask`` (the x86 PDEP operation).

    Counting index 0, 1, 2, ... walks every value inside the mask in the same order as incrementing
    with carries that skip the bits outside it (ESP-Miner's increment_bitmask).
    """
    out = 0
    bit = 1
    while mask and index:
        low = mask & -mask
        if index & bit:
            out |= low
        mask ^= low
        index &= ~bit
        bit <<= 1
    return out


def header76(version: int, prevhash: bytes, root: bytes, ntime: int, nbits: int) -> bytes:
    """The first 76 bytes of a block header (everything but the nonce)."""
    return struct.pack("<I32s32sII", version, prevhash, root, ntime, nbits)


@dataclass(frozen=True, slots=True)
class MinerWork:
    """A job in the context of the session that received it (all of it fixed when the job arrived)."""

    job: NotifiedJob
    extranonce1: bytes
    extranonce2_size: int
    difficulty: float
    version_mask: int  # 0 when version rolling was not negotiated
    generation: int = 0  # increases with every new MinerWork a session hands out
    # Header-only work (a Stratum V2 standard channel): the pool fixed the merkle root, so there is no
    # coinbase to roll (extranonce2_size 0) and only version bits, nTime and the nonce move.
    fixed_merkle_root: bytes | None = None

    @property
    def share_target(self) -> int:
        return difficulty_to_target(self.difficulty)

    def unit(self, extranonce2: int, ntime_offset: int = 0, version_index: int = 0) -> WorkUnit:
        """The header prefix for one (extranonce2, ntime offset, version-bits index) choice."""
        if not 0 <= extranonce2 < 256**self.extranonce2_size or (self.extranonce2_size == 0 and extranonce2):
            raise ValueError("extranonce2 out of range for its size")
        en2 = extranonce2.to_bytes(self.extranonce2_size, "big") if self.extranonce2_size else b""
        bits = (self.job.version & self.version_mask) ^ deposit_bits(version_index, self.version_mask)
        version = roll_version(self.job.version, self.version_mask, bits)
        ntime = (self.job.ntime + ntime_offset) & U32_MAX
        root = self.fixed_merkle_root if self.fixed_merkle_root is not None else merkle_root(self.job, self.extranonce1,
                                                                                               en2)
        return WorkUnit(self, en2, ntime, version, header76(version, self.job.prevhash, root, ntime, self.job.nbits))


@dataclass(frozen=True, slots=True)
class FoundShare:
    """A hit ready for ``mining.submit``."""

    work: MinerWork
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int  # the rolled nVersion in the header
    hash: bytes = field(repr=False)  # sha256d(header), internal order

    @property
    def difficulty(self) -> float:
        """The difficulty this share achieved (pool diff-1 = 0xffff * 2^208)."""
        return hash_difficulty(int.from_bytes(self.hash, "little"))

    @property
    def version_bits(self) -> int:
        """The 6th submit param (BIP310): the rolled bits, i.e. nVersion & mask."""
        return self.version & self.work.version_mask

    def submit_params(self, worker: str) -> list[str]:
        """``mining.submit`` params; the version bits only when rolling was negotiated."""
        params = [worker, self.work.job.job_id, self.extranonce2.hex(), f"{self.ntime:08x}", f"{self.nonce:08x}"]
        if self.work.version_mask:
            params.append(f"{self.version_bits:08x}")
        return params


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """One header prefix to scan over all 2^32 nonces."""

    work: MinerWork
    extranonce2: bytes
    ntime: int
    version: int
    header76: bytes

    def share(self, nonce: int) -> FoundShare:
        """The share for a hit nonce (the hash is recomputed here with hashlib, the reference)."""
        h = sha256d(self.header76 + nonce.to_bytes(4, "little"))
        return FoundShare(self.work, self.extranonce2, self.ntime, nonce, self.version, h)


class WorkRoller:
    """Hands out distinct units of one MinerWork: version bits innermost, then extranonce2, then ntime.

    Not thread-safe: the engine calls it under its lock. Pure: no clock, the ntime offset is a counter.
    """

    def __init__(self, work: MinerWork, max_ntime_roll: int = MAX_NTIME_ROLL, start: int = 0) -> None:
        self.work = work
        self._versions = 1 << bin(work.version_mask).count("1")
        self._en2_space = 256**work.extranonce2_size
        self._limit = self._versions * self._en2_space * (max_ntime_roll + 1)
        # Pools re-issue the same template under a new job id (a vardiff change, a refresh): starting every
        # job at unit 0 would hash the very same headers again and submit duplicates. A session-wide
        # counter carried over (`start`) keeps units distinct; it wraps only if the whole space is used.
        self._next = start if 0 <= start < self._limit else 0

    @property
    def handed_out(self) -> int:
        return self._next

    def next_unit(self) -> WorkUnit:
        k = self._next
        if k >= self._limit:
            raise WorkExhausted(f"job {self.work.job.job_id}: every extranonce2/version/ntime choice is used")
        self._next += 1
        version_index = k % self._versions
        rest = k // self._versions
        return self.work.unit(rest % self._en2_space, rest // self._en2_space, version_index)

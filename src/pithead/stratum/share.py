"""The share check: one pure function that judges a submitted share against the job it names.

What it is: `check_share` takes a `Submission` (what a miner submitted, already validated by the
protocol that carried it) and applies, in order: job known and not stale, extranonce2 of the negotiated
size, ntime within [template mintime, now + 7200 s] (Core's MAX_FUTURE_BLOCK_TIME), version bits inside
the negotiated mask (BIP310's exact formula), not a duplicate, hash <= the share target (or <= the
network target: a block is never refused). It returns a `ShareVerdict` with the hash, its difficulty,
whether it is also a block and, for a rejected share, a `RejectReason`.

What it is not: protocol-specific. The verdict names a reason, never a reply: Stratum V1 maps it to its
coded error (`pithead.stratum.v1.errors.rejection`), V2 to its own. Parsing `mining.submit` params is
V1's (`pithead.stratum.v1.wire.parse_submit`). It keeps no state — the caller passes the set of
already-seen shares and adds the key on its side — and it reads no clock.

Hashing is hashlib's sha256 (OpenSSL, C): one sha256d of the coinbase, one per branch level, one for the
header.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Container
from dataclasses import dataclass

from pithead.chain.compact import DIFF1_TARGET
from pithead.stratum.version import bits_allowed, rolled_version
from pithead.template.job import Job

MAX_FUTURE_NTIME = 7200
"""Seconds an ntime may lead the server clock: Core's MAX_FUTURE_BLOCK_TIME (validation.h), as
Miningcore and NOMP use. A block further ahead is refused by every node."""

_sha = hashlib.sha256
_HEADER_TAIL = struct.Struct("<III")

ShareKey = tuple[bytes, bytes, int, int, int]  # (extranonce1, extranonce2, ntime, nonce, version bits)


class RejectReason(enum.StrEnum):
    """Why a share was rejected, in words both protocol versions share (statistics and the ledger record
    the value; each version maps it to its own reply)."""

    JOB_NOT_FOUND = "job-not-found"
    STALE = "stale"  # the job's previous block is no longer the tip
    BAD_EXTRANONCE2 = "bad-extranonce2"  # not the negotiated size
    NTIME_TOO_OLD = "ntime-too-old"
    NTIME_TOO_NEW = "ntime-too-new"
    VERSION_ROLLING_NOT_NEGOTIATED = "version-rolling-not-negotiated"
    BAD_VERSION_BITS = "bad-version-bits"  # outside the negotiated mask
    DUPLICATE = "duplicate"
    LOW_DIFFICULTY = "low-difficulty"


@dataclass(frozen=True, slots=True)
class Submission:
    worker: str
    job_id: str
    extranonce2: bytes
    ntime: int
    nonce: int
    version_bits: int | None  # None when the miner sent 5 params

    def key(self, extranonce1: bytes) -> ShareKey:
        """Identity for duplicate detection (hex case and padding already normalised away)."""
        return (extranonce1, self.extranonce2, self.ntime, self.nonce, self.version_bits or 0)


@dataclass(frozen=True, slots=True)
class ShareVerdict:
    accepted: bool
    reason: RejectReason | None  # None when accepted
    hash_int: int  # 0 when not hashed
    share_difficulty: float  # what the hash achieved (0 when not hashed)
    is_block: bool
    version: int  # the header nVersion used


def share_hash(job: Job, extranonce1: bytes, sub: Submission, version: int) -> int:
    """The header hash as the integer compared with targets."""
    cb = job.coinbase
    h = _sha(_sha(cb.coinb1 + extranonce1 + sub.extranonce2 + cb.coinb2).digest()).digest()
    for sibling in job.branch:
        h = _sha(_sha(h + sibling).digest()).digest()
    header = (
        version.to_bytes(4, "little")
        + job.prev_hash
        + h
        + _HEADER_TAIL.pack(sub.ntime, job.bits, sub.nonce)
    )
    return int.from_bytes(_sha(_sha(header).digest()).digest(), "little")


def _reject(reason: RejectReason, version: int = 0, hash_int: int = 0) -> ShareVerdict:
    diff = DIFF1_TARGET / hash_int if hash_int else 0.0
    return ShareVerdict(False, reason, hash_int, diff, False, version)


def check_share(
    job: Job | None,
    sub: Submission,
    *,
    extranonce1: bytes,
    version_mask: int,
    share_target: int,
    now: int,
    stale: bool = False,
    seen: Container[ShareKey] = (),
) -> ShareVerdict:
    """Judge one share. `job` None means unknown; `stale` means its previous block is no longer the tip;
    `share_target` is the target in force for this job on this connection; `seen` holds the keys
    (`Submission.key`) of the shares already judged on this job."""
    if job is None:
        return _reject(RejectReason.JOB_NOT_FOUND)
    if stale:
        return _reject(RejectReason.STALE)
    if len(sub.extranonce2) != job.coinbase.extranonce2_size:
        return _reject(RejectReason.BAD_EXTRANONCE2)
    if sub.ntime < job.mintime:
        return _reject(RejectReason.NTIME_TOO_OLD)
    if sub.ntime > now + MAX_FUTURE_NTIME:
        return _reject(RejectReason.NTIME_TOO_NEW)
    if sub.version_bits is None or sub.version_bits == 0:
        version = job.version
    else:
        if version_mask == 0:
            return _reject(RejectReason.VERSION_ROLLING_NOT_NEGOTIATED)
        if not bits_allowed(sub.version_bits, version_mask):
            return _reject(RejectReason.BAD_VERSION_BITS)
        version = rolled_version(job.version, sub.version_bits, version_mask)
    if sub.key(extranonce1) in seen:
        return _reject(RejectReason.DUPLICATE, version)
    hash_int = share_hash(job, extranonce1, sub, version)
    # A hash that meets the network target is a block and is never refused, even when the share target
    # is harder (regtest's target is easier than difficulty 1; Miningcore's regtest vector relies on it).
    is_block = hash_int <= job.network_target
    if hash_int > share_target and not is_block:
        return _reject(RejectReason.LOW_DIFFICULTY, version, hash_int)
    diff = DIFF1_TARGET / hash_int if hash_int else float("inf")
    return ShareVerdict(True, None, hash_int, diff, is_block, version)

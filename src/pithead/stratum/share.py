"""The share check: one pure function that judges a `mining.submit` against the job it names.

What it is: `parse_submit` validates the untrusted params into a `Submission` (5 or 6 params; nonce,
ntime and version bits are big-endian hex, short ones left-padded as NerdMiner sends them; extranonce2
must be exactly the negotiated size). `check_share` then applies, in order: job known and not stale,
ntime within [template mintime, now + 7200 s] (Core's MAX_FUTURE_BLOCK_TIME), version bits inside the
negotiated mask (BIP310's exact formula), not a duplicate, hash <= the share target (or <= the network
target: a block is never refused). It returns a verdict
with the hash, its difficulty and whether it is also a block. What it is not: it keeps no state — the
caller passes the set of already-seen shares and adds the key on its side — and it reads no clock.

Hashing is hashlib's sha256 (OpenSSL, C): one sha256d of the coinbase, one per branch level, one for the
header.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Container
from dataclasses import dataclass

from pithead.chain.compact import DIFF1_TARGET
from pithead.stratum.v1.errors import (
    DuplicateShare,
    JobNotFound,
    LowDifficulty,
    OtherError,
    ProtocolViolation,
    StratumError,
)
from pithead.stratum.version import bits_allowed, parse_hex32, rolled_version
from pithead.template.job import Job

MAX_FUTURE_NTIME = 7200
"""Seconds an ntime may lead the server clock: Core's MAX_FUTURE_BLOCK_TIME (validation.h), as
Miningcore and NOMP use. A block further ahead is refused by every node."""

MAX_EXTRANONCE2_BYTES = 16
"""Longest extranonce2 accepted before the size check (cgminer allows 16 at subscribe; ours is <= 8)."""

MAX_WORKER_NAME = 128
"""Longest worker name accepted in a submit (names are echoed into stats and the ledger)."""

_sha = hashlib.sha256
_HEADER_TAIL = struct.Struct("<III")

ShareKey = tuple[bytes, bytes, int, int, int]  # (extranonce1, extranonce2, ntime, nonce, version bits)


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
    error: StratumError | None
    hash_int: int  # 0 when not hashed
    share_difficulty: float  # what the hash achieved (0 when not hashed)
    is_block: bool
    version: int  # the header nVersion used

    @property
    def reason(self) -> str | None:
        return None if self.error is None else self.error.reason


def parse_submit(params: tuple[object, ...]) -> Submission:
    """Validate mining.submit params into a Submission, or raise ProtocolViolation naming the field."""
    if len(params) not in (5, 6):
        raise ProtocolViolation("mining.submit takes 5 or 6 params")
    worker, job_id, en2_hex, ntime_hex, nonce_hex = params[:5]
    if not isinstance(worker, str) or len(worker) > MAX_WORKER_NAME:
        raise ProtocolViolation("worker name must be a short string")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        raise ProtocolViolation("job id must be a short non-empty string")
    # the exact size is a share-check rule (a reject, not a violation); here only a sane bound
    if not isinstance(en2_hex, str) or not 0 < len(en2_hex) <= 2 * MAX_EXTRANONCE2_BYTES:
        raise ProtocolViolation("extranonce2 must be a short hex string")
    try:
        en2 = bytes.fromhex(en2_hex)
    except ValueError as exc:
        raise ProtocolViolation("extranonce2 is not hex") from exc
    ntime = parse_hex32(ntime_hex, "ntime")
    nonce = parse_hex32(nonce_hex, "nonce")
    vbits = parse_hex32(params[5], "version bits") if len(params) == 6 else None
    return Submission(worker, job_id, en2, ntime, nonce, vbits)


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


def _reject(err: StratumError, version: int = 0, hash_int: int = 0) -> ShareVerdict:
    diff = DIFF1_TARGET / hash_int if hash_int else 0.0
    return ShareVerdict(False, err, hash_int, diff, False, version)


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
        return _reject(JobNotFound())
    if stale:
        return _reject(JobNotFound("Stale job", reason="stale"))
    if len(sub.extranonce2) != job.coinbase.extranonce2_size:
        return _reject(OtherError("Incorrect size of extranonce2", reason="bad-extranonce2"))
    if sub.ntime < job.mintime:
        return _reject(OtherError("ntime out of range (too old)", reason="ntime-too-old"))
    if sub.ntime > now + MAX_FUTURE_NTIME:
        return _reject(OtherError("ntime out of range (too new)", reason="ntime-too-new"))
    if sub.version_bits is None or sub.version_bits == 0:
        version = job.version
    else:
        if version_mask == 0:
            return _reject(OtherError("Version rolling was not negotiated", reason="version-rolling-not-negotiated"))
        if not bits_allowed(sub.version_bits, version_mask):
            return _reject(OtherError("Version bits outside the negotiated mask", reason="bad-version-bits"))
        version = rolled_version(job.version, sub.version_bits, version_mask)
    if sub.key(extranonce1) in seen:
        return _reject(DuplicateShare(), version)
    hash_int = share_hash(job, extranonce1, sub, version)
    # A hash that meets the network target is a block and is never refused, even when the share target
    # is harder (regtest's target is easier than difficulty 1; Miningcore's regtest vector relies on it).
    is_block = hash_int <= job.network_target
    if hash_int > share_target and not is_block:
        return _reject(LowDifficulty(), version, hash_int)
    diff = DIFF1_TARGET / hash_int if hash_int else float("inf")
    return ShareVerdict(True, None, hash_int, diff, is_block, version)

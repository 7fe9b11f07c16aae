"""Stratum V2's Mining protocol messages (spec `05-Mining-Protocol.md` at `sv2-spec@0f38d51`), 0x10-0x25.

What it is: every Mining message of the pinned snapshot as a frozen dataclass, its fields in the spec's
order and types (the field notes' §4.1 table), with the channel-message bit as the snapshot has it —
NewMiningJob and SetCustomMiningJob(.Success/.Error) carry it since 2026-05 (`875fe81`, `fbf87d8`), so a
peer of an older snapshot is refused by the strict decoder rather than silently misread. 0x1e is
reserved and has no message. The messages a pool and a miner exchange for every share or job
(SubmitSharesStandard/Extended, SubmitShares.Success, NewMiningJob, SetTarget, SetNewPrevHash) encode
and decode through precompiled `struct` formats; NewMiningJob and SubmitSharesExtended, whose one
variable field defeats the generic fast path, have hand-written ones, checked against their codec
tables by the tests.

Conventions on the wire (and so here): U256 hashes (prev_hash, merkle_root, merkle_path) are raw SHA-256
output bytes (header byte order); U256 targets are little-endian numbers (`types.u256_from_int`);
`version` in a share is the full nVersion; `extranonce_prefix` is the whole extranonce of a standard
channel.

What it is not: channels, jobs or share checks (the pool step's channel tables), nor Job Declaration
and Template Distribution messages (later steps; the registry already knows their type ranges, so one
arriving on a Mining connection is a clear `WrongSubprotocol`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from pithead.stratum.v2.messages.base import (
    Message,
    Subprotocol,
    decode_by_table,
    encode_by_table,
    message,
)
from pithead.stratum.v2.types import (
    B0_32,
    B0_64K,
    B0_255,
    BOOL,
    F32,
    OPTION_U32,
    SEQ0_64K_U32,
    SEQ0_255_U256,
    STR0_255,
    U16,
    U32,
    U64,
    U256,
)

MINING = Subprotocol.MINING

# Error codes SRI sends (spec §3.5: free-form strings; receivers log unknown ones and carry on).
ERROR_UNKNOWN_USER = "unknown-user"
ERROR_MAX_TARGET_OUT_OF_RANGE = "max-target-out-of-range"
ERROR_INVALID_USER_IDENTITY = "invalid-user-identity"
ERROR_INVALID_NOMINAL_HASHRATE = "invalid-nominal-hashrate"
ERROR_MIN_EXTRANONCE_SIZE_TOO_LARGE = "min-extranonce-size-too-large"
ERROR_UNSUPPORTED_MIN_EXTRANONCE_SIZE = "unsupported-min-extranonce-size"
ERROR_INVALID_CHANNEL_ID = "invalid-channel-id"
ERROR_STALE_SHARE = "stale-share"
ERROR_DIFFICULTY_TOO_LOW = "difficulty-too-low"
ERROR_INVALID_JOB_ID = "invalid-job-id"
ERROR_DUPLICATE_SHARE = "duplicate-share"
ERROR_BAD_EXTRANONCE_SIZE = "bad-extranonce-size"
ERROR_INVALID_SHARE = "invalid-share"
ERROR_INVALID_NON_ROLLABLE_VERSION_BIT = "invalid-non-rollable-version-bit"
ERROR_VERSION_ROLLING_NOT_ALLOWED = "version-rolling-not-allowed"

# --- channels -------------------------------------------------------------------------------------------


@message(0x10, "OpenStandardMiningChannel", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class OpenStandardMiningChannel(Message):
    """Client → server: open a standard channel (header-only mining; the pool gives the merkle root)."""

    request_id: U32
    user_identity: STR0_255
    nominal_hash_rate: F32  # H/s; a proxy with no devices yet sends 0.0
    max_target: U256


@message(0x11, "OpenStandardMiningChannel.Success", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class OpenStandardMiningChannelSuccess(Message):
    request_id: U32
    channel_id: U32
    target: U256
    extranonce_prefix: B0_32  # the whole extranonce of a standard channel
    group_channel_id: U32


@message(0x12, "OpenMiningChannel.Error", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class OpenMiningChannelError(Message):
    """Server → client: a standard or extended channel refused."""

    request_id: U32
    error_code: STR0_255


@message(0x13, "OpenExtendedMiningChannel", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class OpenExtendedMiningChannel(Message):
    """Client → server: open an extended channel (the client rolls `extranonce_size` bytes)."""

    request_id: U32
    user_identity: STR0_255
    nominal_hash_rate: F32
    max_target: U256
    min_extranonce_size: U16


@message(0x14, "OpenExtendedMiningChannel.Success", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class OpenExtendedMiningChannelSuccess(Message):
    request_id: U32
    channel_id: U32
    target: U256
    extranonce_size: U16
    extranonce_prefix: B0_32
    group_channel_id: U32  # added by spec 7babb93 (2025-10)


@message(0x16, "UpdateChannel", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class UpdateChannel(Message):
    """Client → server: the channel's hashrate or maximum target changed (no reply on success)."""

    channel_id: U32
    nominal_hash_rate: F32
    maximum_target: U256


@message(0x17, "UpdateChannel.Error", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class UpdateChannelError(Message):
    channel_id: U32
    error_code: STR0_255


@message(0x18, "CloseChannel", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class CloseChannel(Message):
    """Either way: close a channel (a group id closes all its members)."""

    channel_id: U32
    reason_code: STR0_255


@message(0x19, "SetExtranoncePrefix", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetExtranoncePrefix(Message):
    """Server → client: a new extranonce prefix for jobs sent after it (not for group ids)."""

    channel_id: U32
    extranonce_prefix: B0_32


@message(0x25, "SetGroupChannel", channel_msg=False, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetGroupChannel(Message):
    """Server → client: these channels now belong to the group (only to connections that did not
    require standard jobs)."""

    group_channel_id: U32
    channel_ids: SEQ0_64K_U32


# --- shares ---------------------------------------------------------------------------------------------


@message(0x1A, "SubmitSharesStandard", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SubmitSharesStandard(Message):
    """Client → server: a share of a standard channel (24 bytes)."""

    channel_id: U32
    sequence_number: U32
    job_id: U32
    nonce: U32
    ntime: U32
    version: U32  # the full nVersion


_SUBMIT_HEAD = struct.Struct("<IIIIII")


@message(0x1B, "SubmitSharesExtended", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SubmitSharesExtended(Message):
    """Client → server: a share of an extended channel; `extranonce` is the client's part, of the
    channel's `extranonce_size` (checked by the channel, not the wire). TLVs may follow (0x0002)."""

    channel_id: U32
    sequence_number: U32
    job_id: U32
    nonce: U32
    ntime: U32
    version: U32
    extranonce: B0_32

    def encode(self) -> bytes:
        extranonce = self.extranonce
        if isinstance(extranonce, bytes) and len(extranonce) <= 32:
            try:
                return _SUBMIT_HEAD.pack(self.channel_id, self.sequence_number, self.job_id, self.nonce,
                                         self.ntime, self.version) + bytes((len(extranonce),)) + extranonce
            except (struct.error, TypeError):
                pass
        return encode_by_table(self)  # raises EncodeError naming the field

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) > 24:
            size = data[24]
            if size <= 32 and len(data) == 25 + size:
                channel_id, sequence_number, job_id, nonce, ntime, version = _SUBMIT_HEAD.unpack_from(data)
                return cls(channel_id, sequence_number, job_id, nonce, ntime, version, data[25:])
        return decode_by_table(cls, data)


@message(0x1C, "SubmitShares.Success", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SubmitSharesSuccess(Message):
    """Server → client: acknowledges a batch up to `last_sequence_number`; counters are per batch."""

    channel_id: U32
    last_sequence_number: U32
    new_submits_accepted_count: U32
    new_shares_sum: U64  # sum of the accepted shares' difficulties in this batch


@message(0x1D, "SubmitShares.Error", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SubmitSharesError(Message):
    """Server → client: one share refused, at once."""

    channel_id: U32
    sequence_number: U32
    error_code: STR0_255


# --- jobs -----------------------------------------------------------------------------------------------

_JOB_FUTURE = struct.Struct("<IIBI32s")  # channel_id, job_id, OPTION count 0, version, merkle_root
_JOB_ACTIVE = struct.Struct("<IIBII32s")  # channel_id, job_id, OPTION count 1, min_ntime, version, root


@message(0x15, "NewMiningJob", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class NewMiningJob(Message):
    """Server → client: a standard job; `min_ntime` None = a future job, activated by SetNewPrevHash."""

    channel_id: U32
    job_id: U32
    min_ntime: OPTION_U32
    version: U32
    merkle_root: U256  # was B0_32 before spec 8435b5d (2025-01)

    def encode(self) -> bytes:
        root = self.merkle_root
        if isinstance(root, bytes) and len(root) == 32:
            try:
                if self.min_ntime is None:
                    return _JOB_FUTURE.pack(self.channel_id, self.job_id, 0, self.version, root)
                return _JOB_ACTIVE.pack(self.channel_id, self.job_id, 1, self.min_ntime, self.version, root)
            except (struct.error, TypeError):
                pass
        return encode_by_table(self)  # raises EncodeError naming the field

    @classmethod
    def decode(cls, data: bytes) -> Self:
        size = len(data)
        if size == _JOB_ACTIVE.size and data[8] == 1:
            channel_id, job_id, _, min_ntime, version, root = _JOB_ACTIVE.unpack(data)
            return cls(channel_id, job_id, min_ntime, version, root)
        if size == _JOB_FUTURE.size and data[8] == 0:
            channel_id, job_id, _, version, root = _JOB_FUTURE.unpack(data)
            return cls(channel_id, job_id, None, version, root)
        return decode_by_table(cls, data)


@message(0x1F, "NewExtendedMiningJob", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class NewExtendedMiningJob(Message):
    """Server → client: an extended job; the coinbase halves are stripped of BIP141 fields (their hash
    is the txid); the merkle path is folded deepest first."""

    channel_id: U32
    job_id: U32
    min_ntime: OPTION_U32
    version: U32
    version_rolling_allowed: BOOL
    merkle_path: SEQ0_255_U256
    coinbase_tx_prefix: B0_64K
    coinbase_tx_suffix: B0_64K


@message(0x20, "SetNewPrevHash", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetNewPrevHash(Message):
    """Server → client: a new block; the future job `job_id` becomes active, every other job stale."""

    channel_id: U32  # a channel or a group
    job_id: U32
    prev_hash: U256
    min_ntime: U32
    nbits: U32


@message(0x21, "SetTarget", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetTarget(Message):
    """Server → client: the channel's target from now on (also for future jobs already received)."""

    channel_id: U32
    maximum_target: U256


# --- custom jobs (work selection) -----------------------------------------------------------------------


@message(0x22, "SetCustomMiningJob", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetCustomMiningJob(Message):
    """Client → server: a job of the client's own (on a connection that required work selection)."""

    channel_id: U32
    request_id: U32
    mining_job_token: B0_255
    version: U32
    prev_hash: U256
    min_ntime: U32
    nbits: U32
    coinbase_tx_version: U32
    coinbase_prefix: B0_255  # at most 8 bytes by the spec (checked by the channel)
    coinbase_tx_input_n_sequence: U32
    coinbase_tx_outputs: B0_64K  # CompactSize-prefixed array of outputs
    coinbase_tx_locktime: U32
    merkle_path: SEQ0_255_U256


@message(0x23, "SetCustomMiningJob.Success", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetCustomMiningJobSuccess(Message):
    channel_id: U32
    request_id: U32
    job_id: U32


@message(0x24, "SetCustomMiningJob.Error", channel_msg=True, protocol=MINING)
@dataclass(frozen=True, slots=True)
class SetCustomMiningJobError(Message):
    channel_id: U32
    request_id: U32
    error_code: STR0_255

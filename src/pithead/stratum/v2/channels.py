"""The pool side of one Stratum V2 mining channel as a pure state machine, driven by `CHANNEL_TRANSITIONS`.

What it is: `PoolChannel`, one standard or extended channel of a connection (spec `05-Mining-Protocol.md`
§5.1-5.3), and its transition table — every (state, input) pair listed, the illegal ones too. The states
say the channel's kind and whether it has work: `STANDARD_WAITING` / `EXTENDED_WAITING` (opened, no
template yet), `STANDARD_MINING` / `EXTENDED_MINING` (a job is active), `CLOSED`. The inputs are the
client's channel messages (by class: SubmitSharesStandard, SubmitSharesExtended, UpdateChannel,
CloseChannel, SetCustomMiningJob) and the pool's own two: `JOB` (a job on the tip the channel mines on)
and `BLOCK` (a job on a new tip). Every state change is made by the table.

How work reaches a channel (§4.2 of the field notes):

- standard channel (header-only mining): the pool computes the merkle root for the channel's whole
  extranonce (`extranonce_prefix` = extranonce1 ‖ a fixed extranonce2) and sends `NewMiningJob`; the
  device rolls only nonce, the BIP323 version bits and nTime;
- extended channel: `NewExtendedMiningJob` carries the coinbase halves (legacy serialization: the txid's
  bytes) and the merkle path; the client rolls `extranonce_size` bytes after the channel's
  `extranonce_prefix` (the pool's extranonce1).

A channel's first job and the first job on every new tip go out as a *future* job (no `min_ntime`)
followed at once by `SetNewPrevHash` activating it (§5.3.15; the spec requires a future job first); a
job on the same tip (new transactions, a new target) goes out active, with `min_ntime`. Job ids are the
channel's own, counted up and never reused. Every job is the pool's job-book job with its BIP323 bits
cleared (`version.BIP323_MASK`, which every share may roll): miners then agree on how rolled bits combine.

Shares are judged by `stratum.share.check_share`, exactly as V1's are, against the job they name: its
version-neutral `RejectReason` becomes the spec's error code (`SUBMIT_ERROR_CODES`); an accepted share
joins the batch that one `SubmitShares.Success` acknowledges (at most `SHARE_BATCH_SIZE`, and at least
once per turn of the connection, so no reply waits for another share); errors go out at once, as the
spec asks. A share whose hash meets the network target is assembled into a block (`template.job`).

Targets (§5.3.21): each job keeps the target in force when it was sent; a share is judged at the easier
of that and the channel's current target and credited at the one it was judged at, so a change either
way never rejects in-flight work and never credits more than the work proves. Vardiff (`stratum.
difficulty`) moves the channel's target; each change is a `SetTarget` followed by the current job again
under a new id at the new target. The client's `max_target` is a floor on the difficulty.

Beside the table, not in it: the job and target bookkeeping, the share batch, the retarget, and the
pool's own SetExtranoncePrefix (`set_extranonce_prefix`).
What it is not: the connection (setup, opening, routing by channel id, the Noise transport:
`stratum.v2.pool`), the job book (reached through `JobFeed`), or I/O of any kind; time is a parameter.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable, MutableSet
from dataclasses import dataclass, replace
from typing import Protocol

from pithead.chain.compact import DIFF1_TARGET, difficulty_to_target
from pithead.stratum.difficulty import VarDiff
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.share import RejectReason, ShareKey, Submission, check_share
from pithead.stratum.v2.messages.base import Message
from pithead.stratum.v2.messages.mining import (
    ERROR_BAD_EXTRANONCE_SIZE,
    ERROR_DIFFICULTY_TOO_LOW,
    ERROR_DUPLICATE_SHARE,
    ERROR_INVALID_CHANNEL_ID,
    ERROR_INVALID_JOB_ID,
    ERROR_INVALID_NOMINAL_HASHRATE,
    ERROR_INVALID_NON_ROLLABLE_VERSION_BIT,
    ERROR_INVALID_SHARE,
    ERROR_MAX_TARGET_OUT_OF_RANGE,
    ERROR_STALE_SHARE,
    ERROR_VERSION_ROLLING_NOT_ALLOWED,
    CloseChannel,
    NewExtendedMiningJob,
    NewMiningJob,
    SetCustomMiningJob,
    SetCustomMiningJobError,
    SetExtranoncePrefix,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
    UpdateChannelError,
)
from pithead.stratum.v2.types import int_from_u256, u256_from_int
from pithead.stratum.version import BIP323_MASK
from pithead.template.job import Job, assemble_block, block_hash

MAX_JOBS_PER_CHANNEL = 32
"""Jobs a channel remembers; a share naming an older one answers `invalid-job-id`. Jobs on the current
tip stay valid until the next SetNewPrevHash (stratum #788: a translator's miners keep working on past
jobs of the tip); 32 spans many refresh intervals and retargets."""

SHARE_BATCH_SIZE = 10
"""Accepted shares acknowledged by one SubmitShares.Success at most (SRI pool `share_batch_size`); a batch
is also closed at the end of every turn of the connection, so no miner waits on its own next share."""

HONEST_REASONS = frozenset({RejectReason.STALE, RejectReason.JOB_NOT_FOUND, RejectReason.DUPLICATE})
"""Rejects that happen to honest miners (work in flight over a new block, a resubmit after a dropped
reply): they do not count towards a ban, as in V1."""

HASHES_PER_DIFF1 = 2**32
"""Expected hashes of a difficulty-1 share: a nominal hashrate becomes a starting difficulty with it."""

MAX_NOMINAL_HASHRATE = 1e21
"""Largest nominal hashrate believed (H/s): a zettahash is several times the whole network's; above it
(or NaN, or negative) is `invalid-nominal-hashrate`."""

MAX_U64 = (1 << 64) - 1

SUBMIT_ERROR_CODES: dict[RejectReason, str] = {
    RejectReason.JOB_NOT_FOUND: ERROR_INVALID_JOB_ID,
    RejectReason.STALE: ERROR_STALE_SHARE,
    RejectReason.BAD_EXTRANONCE2: ERROR_BAD_EXTRANONCE_SIZE,
    RejectReason.NTIME_TOO_OLD: ERROR_INVALID_SHARE,
    RejectReason.NTIME_TOO_NEW: ERROR_INVALID_SHARE,
    RejectReason.VERSION_ROLLING_NOT_NEGOTIATED: ERROR_VERSION_ROLLING_NOT_ALLOWED,
    RejectReason.BAD_VERSION_BITS: ERROR_INVALID_NON_ROLLABLE_VERSION_BIT,
    RejectReason.DUPLICATE: ERROR_DUPLICATE_SHARE,
    RejectReason.LOW_DIFFICULTY: ERROR_DIFFICULTY_TOO_LOW,
}
"""The share check's reasons as SubmitShares.Error codes (SRI's strings; the ledger records the reason)."""


# --- what a channel is given --------------------------------------------------------------------------


class ChannelWorker(Protocol):
    """Who mines on a channel, as the pool authorized its `user_identity` (V1's `PoolWorker` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def payout_script(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class BookJob:
    """A job of the pool's job book (shared with V1) as channels see it: the template job and its id in
    the book, which keys the book's duplicate sets."""

    job: Job
    book_id: str
    # The hardest difficulty a channel may be set while on this job (None: the pool's own bounds): a farm
    # proxy's job carries its upstream's difficulty, so no machine is set above it (V1's `IssuedJob` alike).
    max_difficulty: float | None = None
    # The version bits a share on this job may roll: the BIP323 bits, or fewer on a farm proxy's job from an
    # upstream that allows fewer (0: none — an extended job then says version_rolling_allowed = false; a
    # standard job cannot say it, so a share rolling a bit outside is refused with invalid-version-bits)
    version_mask: int = BIP323_MASK


class JobFeed(Protocol):
    """The pool's job book, as channels use it (the server shell adapts V1's `JobSource`)."""

    def current(self, payout_script: bytes | None, extranonce1: bytes | None = None) -> BookJob | None:
        """The newest job for a miner paid to `payout_script` (pool mode: the pool's), or None; a farm
        proxy routes each channel by its `extranonce1` (its tag) to one upstream connection's jobs."""

    def standing(self, job: BookJob) -> RejectReason | None:
        """None while shares on `job` may be judged; `STALE` once its tip is gone (or it took all the
        shares it can remember), `JOB_NOT_FOUND` once the book forgot it."""

    def seen(self, job: BookJob) -> MutableSet[ShareKey]:
        """The keys of the shares already judged on `job` (across V1 and V2 alike)."""


@dataclass(frozen=True, slots=True)
class ShareTarget:
    """A share target and the difficulty it is credited at."""

    difficulty: float
    target: int


@dataclass(frozen=True, slots=True)
class SentJob:
    """A job as this channel sent it: its id on the channel, the book's job, the job with the BIP323 bits
    cleared (what the miner hashes), the share target in force when it was sent, and the extranonce1 it
    was sent for (a SetExtranoncePrefix changes it for later jobs only)."""

    job_id: int
    book: BookJob
    job: Job
    level: ShareTarget
    extranonce1: bytes


# --- events for the connection and its shell ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShareJudgement:
    """A share judged on a channel; the same facts as V1's `ShareJudged`, so the ledger credits it alike.
    `job` is None when the share named no job the channel knows."""

    channel_id: int
    worker: ChannelWorker
    job: Job | None
    submission: Submission
    accepted: bool
    reason: RejectReason | None
    difficulty: float  # the share target's difficulty it was judged (and is credited) at
    share_difficulty: float  # what the hash reached
    is_block: bool
    hash_int: int = 0  # the header hash (0 when not hashed), for a caller with a target of its own (a proxy's)
    version: int = 0  # the header nVersion hashed
    extranonce1: bytes = b""  # the channel's extranonce1 the share was judged with (a proxy's tag)


@dataclass(frozen=True, slots=True)
class BlockSolved:
    """A share that met the network target, assembled into the block to submit."""

    channel_id: int
    worker: ChannelWorker
    job: Job
    block: bytes
    block_hash: bytes  # internal order


ChannelEvent = ShareJudgement | BlockSolved


class ChannelKind(enum.Enum):
    STANDARD = "standard"
    EXTENDED = "extended"


class ChannelState(enum.Enum):
    STANDARD_WAITING = "standard, waiting for work"  # opened before the pool had a template
    STANDARD_MINING = "standard, mining"
    EXTENDED_WAITING = "extended, waiting for work"
    EXTENDED_MINING = "extended, mining"
    CLOSED = "closed"  # closed by the client (or its connection): late messages are answered, not acted on


JOB = "<job>"  # the pool's new job on the tip the channel mines on
BLOCK = "<block>"  # the pool's first job on a new tip
CLIENT_MESSAGES: tuple[type[Message], ...] = (SubmitSharesStandard, SubmitSharesExtended, UpdateChannel,
                                               CloseChannel, SetCustomMiningJob)
"""The client's channel messages: the table's message columns."""
CHANNEL_INPUTS: tuple[type[Message] | str, ...] = (*CLIENT_MESSAGES, JOB, BLOCK)
"""Every column of the table."""


# --- the rules a table cell can hold --------------------------------------------------------------------

MessageHandler = Callable[["PoolChannel", Message, float, list[Message], list[ChannelEvent]], None]
WorkHandler = Callable[["PoolChannel", BookJob, float, list[Message], list[ChannelEvent]], None]


@dataclass(frozen=True, slots=True)
class OnChannelMessage:
    """Run `handler` on the client's message; then move to `next_state` (None: stay)."""

    handler: MessageHandler
    next_state: ChannelState | None = None


@dataclass(frozen=True, slots=True)
class OnPoolWork:
    """Send the pool's job with `handler`; then move to `next_state` (None: stay)."""

    handler: WorkHandler
    next_state: ChannelState | None = None


@dataclass(frozen=True, slots=True)
class RefuseOnChannel:
    """Answer the message with its error reply carrying `code` (CloseChannel has none: nothing is sent)
    and add `penalty` to the connection's misbehaviour score; the state stays."""

    code: str
    penalty: float = 0.0


@dataclass(frozen=True, slots=True)
class PassOver:
    """Nothing to do, no change."""


ChannelRule = OnChannelMessage | OnPoolWork | RefuseOnChannel | PassOver

SCORE_WRONG_MESSAGE = 10.0
"""A message a well-behaved client never sends on this channel (the other kind's submit, a custom job
without work selection) costs as much as V1's malformed request: ten in a row is a ban."""
SCORE_PER_INVALID_SHARE = 1.0
"""A share refused for a reason an honest miner does not meet (low difficulty, bad version bits ...)."""


def channel_id_of(message: Message) -> int:
    """The channel a client's channel message (one of CLIENT_MESSAGES) names."""
    assert isinstance(message, SubmitSharesStandard | SubmitSharesExtended | UpdateChannel | CloseChannel
                      | SetCustomMiningJob), f"{type(message).__name__} is no channel message of a client"
    return message.channel_id


def error_reply(message: Message, code: str) -> Message | None:
    """The error message answering a client's channel message with `code`, or None (CloseChannel)."""
    if isinstance(message, SubmitSharesStandard | SubmitSharesExtended):
        return SubmitSharesError(message.channel_id, message.sequence_number, code)
    if isinstance(message, UpdateChannel):
        return UpdateChannelError(message.channel_id, code)
    if isinstance(message, SetCustomMiningJob):
        return SetCustomMiningJobError(message.channel_id, message.request_id, code)
    return None


def starting_difficulty(nominal_hash_rate: float, share_interval: float) -> float | None:
    """The difficulty at which `nominal_hash_rate` H/s finds a share every `share_interval` seconds, or
    None for 0.0 (a proxy with no devices yet: the pool's start difficulty applies). Raises ValueError
    for a hashrate nobody has (negative, NaN, infinite, above MAX_NOMINAL_HASHRATE)."""
    if not math.isfinite(nominal_hash_rate) or not 0 <= nominal_hash_rate <= MAX_NOMINAL_HASHRATE:
        raise ValueError(ERROR_INVALID_NOMINAL_HASHRATE)
    if nominal_hash_rate == 0:
        return None
    return nominal_hash_rate * share_interval / HASHES_PER_DIFF1


def max_target_in_range(max_target: int, max_difficulty: float) -> bool:
    """Whether a client's maximum target allows the pool's hardest share target (that of its maximum
    difficulty). Targets are compared, not difficulties: a tiny maximum difficulty's target is capped at
    2^256-1, which an all-0xff `max_target` allows although DIFF1 / (2^256-1) is not tiny."""
    return max_target >= difficulty_to_target(max_difficulty)


def floor_difficulty(max_target: int) -> float:
    """The lowest difficulty a client's maximum target allows: DIFF1 / max_target (infinite for zero, which
    no share can meet)."""
    return DIFF1_TARGET / max_target if max_target else math.inf


class PoolChannel:
    """One channel's state; see the module docstring. Made by the connection when the client opens it."""

    def __init__(self, channel_id: int, kind: ChannelKind, worker: ChannelWorker, *, feed: JobFeed,
                 allocator: ExtranonceAllocator, extranonce1: bytes, extranonce2: bytes, extranonce_size: int,
                 vardiff: VarDiff, max_target: int, share_interval: float,
                 penalize: Callable[[float, float], None]) -> None:
        """`extranonce1` is the part `allocator` gave this channel (freed when it closes); a standard
        channel's miner also gets `extranonce2` fixed (its whole extranonce is their concatenation); an
        extended channel's client rolls `extranonce_size` bytes (`extranonce2` is then empty).
        `penalize(amount, now)` is the connection's misbehaviour score."""
        self.channel_id = channel_id
        self.kind = kind
        self.worker = worker
        self.feed = feed
        self.allocator = allocator
        self.extranonce1 = extranonce1
        self.extranonce2 = extranonce2
        self.extranonce_size = extranonce_size
        self.vardiff = vardiff
        self.max_target = max_target
        self.share_interval = share_interval
        self._penalize = penalize
        self.state = (ChannelState.STANDARD_WAITING if kind is ChannelKind.STANDARD
                      else ChannelState.EXTENDED_WAITING)
        self.level = self._level(vardiff.difficulty)
        self.current: BookJob | None = None  # the job last sent (re-sent under a new id after a retarget)
        self.prev_hash: bytes | None = None  # the tip the active job builds on
        self.last_share_at: float | None = None
        self._jobs: OrderedDict[int, SentJob] = OrderedDict()
        self._next_job_id = 1
        self._batch_last = 0  # sequence number of the newest accepted share not yet acknowledged
        self._batch_count = 0
        self._batch_sum = 0.0
        self._released = False
        self._retired: list[bytes] = []  # earlier extranonce1 values, kept while a remembered job uses one

    @property
    def extranonce_prefix(self) -> bytes:
        """What the client is told: a standard channel's whole extranonce, an extended one's fixed part."""
        return self.extranonce1 + self.extranonce2

    @property
    def is_open(self) -> bool:
        return self.state is not ChannelState.CLOSED

    def job(self, job_id: int) -> SentJob | None:
        return self._jobs.get(job_id)

    # --- the table's dispatch -------------------------------------------------------------------------
    def handle(self, message: Message, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """One client message through the table."""
        rule = CHANNEL_TRANSITIONS[(self.state, type(message))]
        if isinstance(rule, OnChannelMessage):
            rule.handler(self, message, now, out, events)
            if rule.next_state is not None:
                self.state = rule.next_state
        elif isinstance(rule, RefuseOnChannel):
            reply = error_reply(message, rule.code)
            if reply is not None:
                out.append(reply)
            if rule.penalty:
                self._penalize(rule.penalty, now)
        elif not isinstance(rule, PassOver):
            raise AssertionError(f"{rule!r} cannot answer {type(message).__name__} in {self.state}")

    def take_work(self, book: BookJob, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """The pool's job for this channel: `BLOCK` when it builds on another tip than the channel's active
        job (or the channel has none), else `JOB`. A job with a `max_difficulty` first brings the channel
        down to it (SetTarget), so the job goes out at a target its pool would credit."""
        if book.max_difficulty is not None and self.is_open:
            self._cap(book.max_difficulty, now, out)
        self.handle_work(BLOCK if book.job.prev_hash != self.prev_hash else JOB, book, now, out, events)

    def handle_work(self, kind: str, book: BookJob, now: float, out: list[Message],
                    events: list[ChannelEvent]) -> None:
        """One of the pool's inputs (`JOB`, `BLOCK`) through the table."""
        rule = CHANNEL_TRANSITIONS[(self.state, kind)]
        if isinstance(rule, OnPoolWork):
            rule.handler(self, book, now, out, events)
            if rule.next_state is not None:
                self.state = rule.next_state
        elif not isinstance(rule, PassOver):
            raise AssertionError(f"{rule!r} cannot take {kind} in {self.state}")

    # --- the client's messages (referenced by the table) ---------------------------------------------
    def _submit_standard(self, message: Message, now: float, out: list[Message],
                         events: list[ChannelEvent]) -> None:
        assert isinstance(message, SubmitSharesStandard)
        self._judge(message, self.extranonce2, now, out, events)

    def _submit_extended(self, message: Message, now: float, out: list[Message],
                         events: list[ChannelEvent]) -> None:
        assert isinstance(message, SubmitSharesExtended)
        self._judge(message, message.extranonce, now, out, events)

    def _update(self, message: Message, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """UpdateChannel (§5.3.7): a new hashrate re-bases vardiff; the maximum target becomes the floor of
        the difficulty (a lower one MUST be honoured). No reply on success; SetTarget when the target moved."""
        assert isinstance(message, UpdateChannel)
        try:
            start = starting_difficulty(message.nominal_hash_rate, self.share_interval)
        except ValueError as exc:
            out.append(UpdateChannelError(self.channel_id, str(exc)))
            self._penalize(SCORE_WRONG_MESSAGE, now)
            return
        max_target = int_from_u256(message.maximum_target)
        if not max_target_in_range(max_target, self.vardiff.cfg.max_difficulty):
            out.append(UpdateChannelError(self.channel_id, ERROR_MAX_TARGET_OUT_OF_RANGE))
            return
        floor = floor_difficulty(max_target)
        if start is not None:
            self.vardiff.suggest(start, now)
        self.max_target = max_target
        self.vardiff.set_floor(floor, now)
        self._retarget(now, out)

    def _close(self, message: Message, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """CloseChannel from the client: its pending acknowledgements go out, its extranonce is free again;
        nothing more is sent."""
        self.flush(out)
        self.current = None
        self.release()

    # --- the pool's work (referenced by the table) ---------------------------------------------------
    def _activate(self, book: BookJob, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """A first job, or the first on a new tip: as a future job, then SetNewPrevHash activating it.
        Every other job of the channel is then invalid (its tip is gone, or it never was active)."""
        sent = self._send(book, None, out)
        self.prev_hash = sent.job.prev_hash
        out.append(SetNewPrevHash(self.channel_id, sent.job_id, sent.job.prev_hash, sent.job.ntime,
                                  sent.job.bits))

    def _update_job(self, book: BookJob, now: float, out: list[Message], events: list[ChannelEvent]) -> None:
        """A job on the active tip: sent active (min_ntime set), the earlier ones stay valid."""
        self._send(book, book.job.ntime, out)

    # --- bookkeeping beside the table ----------------------------------------------------------------
    def _send(self, book: BookJob, min_ntime: int | None, out: list[Message]) -> SentJob:
        job = replace(book.job, version=book.job.version & ~book.version_mask & 0xFFFFFFFF)
        sent = SentJob(self._next_job_id, book, job, self.level, self.extranonce1)
        self._next_job_id = self._next_job_id + 1 if self._next_job_id < 0xFFFFFFFF else 1
        if len(self._jobs) >= MAX_JOBS_PER_CHANNEL:
            self._jobs.popitem(last=False)
            self._release_retired()
        self._jobs[sent.job_id] = sent
        self.current = book
        if self.kind is ChannelKind.STANDARD:
            root = job.merkle_root(self.extranonce1, self.extranonce2)
            out.append(NewMiningJob(self.channel_id, sent.job_id, min_ntime, job.version, root))
        else:
            out.append(NewExtendedMiningJob(self.channel_id, sent.job_id, min_ntime, job.version,
                                            book.version_mask != 0, job.branch, job.coinbase.coinb1,
                                            job.coinbase.coinb2))
        return sent

    def _level(self, difficulty: float) -> ShareTarget:
        """The share target for `difficulty`, never easier than the client's `max_target`."""
        target = difficulty_to_target(difficulty)
        if target > self.max_target:
            return ShareTarget(DIFF1_TARGET / self.max_target, self.max_target)
        return ShareTarget(difficulty, target)

    def _retarget(self, now: float, out: list[Message]) -> None:
        """After vardiff (or the client) moved the difficulty: SetTarget, then, while mining, the current
        job again under a new id at the new target (the spec keeps an active job's target: §5.3.21)."""
        level = self._level(self.vardiff.difficulty)
        if level.target == self.level.target:
            return
        self.level = level
        out.append(SetTarget(self.channel_id, u256_from_int(level.target)))
        if self.current is not None and self.state in (ChannelState.STANDARD_MINING,
                                                       ChannelState.EXTENDED_MINING):
            self._send(self.current, self.current.job.ntime, out)

    def _cap(self, ceiling: float, now: float, out: list[Message]) -> None:
        """Never above `ceiling` from now on; SetTarget when that lowered the target (the job follows)."""
        self.vardiff.set_ceiling(ceiling, now)
        level = self._level(self.vardiff.difficulty)
        if level.target != self.level.target:
            self.level = level
            out.append(SetTarget(self.channel_id, u256_from_int(level.target)))

    def release(self) -> None:
        """Free the channel's extranonce1 (and any it had before) for another channel or V1 session (its
        close, or its connection's end) — once: freed twice, it could free a value handed out again."""
        if not self._released:
            self._released = True
            self.allocator.release(self.extranonce1)
            for value in self._retired:
                self.allocator.release(value)
            self._retired.clear()

    def set_extranonce_prefix(self, extranonce1: bytes, now: float, out: list[Message]) -> None:
        """The pool gives the channel a new extranonce1 (SetExtranoncePrefix, spec §5.3.10): jobs sent
        after it use it — the current one is sent again at once — while shares of the jobs sent before
        are judged with the one they were sent for, which stays allocated until no remembered job uses it.
        (The pool's own decision, outside the table: no client message causes it.)"""
        if not self.is_open:
            raise ValueError(f"channel {self.channel_id} is closed")
        self._retired.append(self.extranonce1)
        self.extranonce1 = extranonce1
        out.append(SetExtranoncePrefix(self.channel_id, self.extranonce_prefix))
        if self.current is not None and self.state in (ChannelState.STANDARD_MINING, ChannelState.EXTENDED_MINING):
            self._send(self.current, self.current.job.ntime, out)

    def _release_retired(self) -> None:
        """Free the earlier extranonce1 values no remembered job was sent for any more."""
        if self._retired:
            in_use = {sent.extranonce1 for sent in self._jobs.values()}
            for value in [v for v in self._retired if v not in in_use]:
                self._retired.remove(value)
                self.allocator.release(value)

    def tick(self, now: float, out: list[Message]) -> None:
        """Housekeeping for a quiet channel: vardiff lowers the target of a miner that stopped finding."""
        if self.is_open and self.vardiff.on_tick(now) is not None:
            self._retarget(now, out)

    def flush(self, out: list[Message]) -> None:
        """Acknowledge the accepted shares not yet acknowledged (one SubmitShares.Success)."""
        if self._batch_count:
            out.append(SubmitSharesSuccess(self.channel_id, self._batch_last, self._batch_count,
                                           min(int(self._batch_sum), MAX_U64)))
            self._batch_count = 0
            self._batch_sum = 0.0

    def _judge(self, message: SubmitSharesStandard | SubmitSharesExtended, extranonce2: bytes, now: float,
               out: list[Message], events: list[ChannelEvent]) -> None:
        sent = self._jobs.get(message.job_id)
        standing = RejectReason.JOB_NOT_FOUND if sent is None else self.feed.standing(sent.book)
        # the version as the bits the miner changed from the job's (BIP323 bits cleared there): inside the
        # mask they are the rolled bits; any outside it are refused by the share check's BIP310 test
        version_bits = message.version ^ (sent.job.version if sent is not None else 0)
        book_id = sent.book.book_id if sent is not None else f"v2:{message.job_id}"
        sub = Submission(self.worker.name, book_id, extranonce2, message.ntime, message.nonce, version_bits)
        if sent is None or standing is RejectReason.JOB_NOT_FOUND:
            self._refuse(message, RejectReason.JOB_NOT_FOUND, None, sub, self.level.difficulty, 0.0, now, out,
                         events)
            return
        level = sent.level if sent.level.target > self.level.target else self.level  # the easier
        seen = self.feed.seen(sent.book)
        extranonce1 = sent.extranonce1
        verdict = check_share(sent.job, sub, extranonce1=extranonce1, version_mask=sent.book.version_mask,
                              share_target=level.target, now=int(now), stale=standing is RejectReason.STALE,
                              seen=seen)
        if verdict.hash_int:
            seen.add(sub.key(extranonce1))
        if verdict.reason is not None:
            # bits the spec lets every share roll, refused only because this job allows fewer (a farm proxy's,
            # from an upstream that does): the miner could not know (a standard job cannot say it), no penalty
            narrowed = (sent.book.version_mask != BIP323_MASK and version_bits & ~BIP323_MASK == 0
                        and verdict.reason in (RejectReason.BAD_VERSION_BITS,
                                               RejectReason.VERSION_ROLLING_NOT_NEGOTIATED))
            self._refuse(message, verdict.reason, sent.job, sub, level.difficulty, verdict.share_difficulty, now,
                         out, events, honest=narrowed)
            return
        events.append(ShareJudgement(self.channel_id, self.worker, sent.job, sub, True, None, level.difficulty,
                                     verdict.share_difficulty, verdict.is_block, verdict.hash_int, verdict.version,
                                     extranonce1))
        self.last_share_at = now
        self._batch_last = message.sequence_number
        self._batch_count += 1
        self._batch_sum += level.difficulty
        if verdict.is_block:
            block = assemble_block(sent.job, extranonce1, extranonce2, message.ntime, message.nonce, verdict.version)
            events.append(BlockSolved(self.channel_id, self.worker, sent.job, block, block_hash(block)))
        if self._batch_count >= SHARE_BATCH_SIZE:
            self.flush(out)
        if self.vardiff.on_share(now) is not None:
            self.flush(out)  # the acknowledgements of shares judged at the old target go first
            self._retarget(now, out)

    def _refuse(self, message: SubmitSharesStandard | SubmitSharesExtended, reason: RejectReason,
                job: Job | None, sub: Submission, difficulty: float, share_difficulty: float, now: float,
                out: list[Message], events: list[ChannelEvent], *, honest: bool = False) -> None:
        events.append(ShareJudgement(self.channel_id, self.worker, job, sub, False, reason, difficulty,
                                     share_difficulty, False))
        out.append(SubmitSharesError(self.channel_id, message.sequence_number, SUBMIT_ERROR_CODES[reason]))
        if reason not in HONEST_REASONS and not honest:
            self._penalize(SCORE_PER_INVALID_SHARE, now)


# --- the transition table: the spec ----------------------------------------------------------------------
# Every (state, input) pair, legal or not. A channel's kind fixes which submit it takes: the other kind's
# is refused as naming no channel of that kind. Work moves a waiting channel to mining; a closed channel
# answers late shares and updates (they may have crossed its CloseChannel) but acts on nothing.

_WRONG_KIND = RefuseOnChannel(ERROR_INVALID_CHANNEL_ID, SCORE_WRONG_MESSAGE)
_NO_CUSTOM_JOBS = RefuseOnChannel("jd-not-supported", SCORE_WRONG_MESSAGE)  # work selection was refused
_CLOSED = RefuseOnChannel(ERROR_INVALID_CHANNEL_ID)

CHANNEL_TRANSITIONS: dict[tuple[ChannelState, type[Message] | str], ChannelRule] = {
    # STANDARD_WAITING: a standard channel without work yet
    (ChannelState.STANDARD_WAITING, SubmitSharesStandard): OnChannelMessage(PoolChannel._submit_standard),
    (ChannelState.STANDARD_WAITING, SubmitSharesExtended): _WRONG_KIND,
    (ChannelState.STANDARD_WAITING, UpdateChannel): OnChannelMessage(PoolChannel._update),
    (ChannelState.STANDARD_WAITING, CloseChannel): OnChannelMessage(PoolChannel._close, ChannelState.CLOSED),
    (ChannelState.STANDARD_WAITING, SetCustomMiningJob): _NO_CUSTOM_JOBS,
    (ChannelState.STANDARD_WAITING, JOB): OnPoolWork(PoolChannel._activate, ChannelState.STANDARD_MINING),
    (ChannelState.STANDARD_WAITING, BLOCK): OnPoolWork(PoolChannel._activate, ChannelState.STANDARD_MINING),
    # STANDARD_MINING: header-only mining on the pool's merkle root
    (ChannelState.STANDARD_MINING, SubmitSharesStandard): OnChannelMessage(PoolChannel._submit_standard),
    (ChannelState.STANDARD_MINING, SubmitSharesExtended): _WRONG_KIND,
    (ChannelState.STANDARD_MINING, UpdateChannel): OnChannelMessage(PoolChannel._update),
    (ChannelState.STANDARD_MINING, CloseChannel): OnChannelMessage(PoolChannel._close, ChannelState.CLOSED),
    (ChannelState.STANDARD_MINING, SetCustomMiningJob): _NO_CUSTOM_JOBS,
    (ChannelState.STANDARD_MINING, JOB): OnPoolWork(PoolChannel._update_job),
    (ChannelState.STANDARD_MINING, BLOCK): OnPoolWork(PoolChannel._activate),
    # EXTENDED_WAITING: an extended channel without work yet
    (ChannelState.EXTENDED_WAITING, SubmitSharesStandard): _WRONG_KIND,
    (ChannelState.EXTENDED_WAITING, SubmitSharesExtended): OnChannelMessage(PoolChannel._submit_extended),
    (ChannelState.EXTENDED_WAITING, UpdateChannel): OnChannelMessage(PoolChannel._update),
    (ChannelState.EXTENDED_WAITING, CloseChannel): OnChannelMessage(PoolChannel._close, ChannelState.CLOSED),
    (ChannelState.EXTENDED_WAITING, SetCustomMiningJob): _NO_CUSTOM_JOBS,
    (ChannelState.EXTENDED_WAITING, JOB): OnPoolWork(PoolChannel._activate, ChannelState.EXTENDED_MINING),
    (ChannelState.EXTENDED_WAITING, BLOCK): OnPoolWork(PoolChannel._activate, ChannelState.EXTENDED_MINING),
    # EXTENDED_MINING: the client rolls its extranonce in the coinbase
    (ChannelState.EXTENDED_MINING, SubmitSharesStandard): _WRONG_KIND,
    (ChannelState.EXTENDED_MINING, SubmitSharesExtended): OnChannelMessage(PoolChannel._submit_extended),
    (ChannelState.EXTENDED_MINING, UpdateChannel): OnChannelMessage(PoolChannel._update),
    (ChannelState.EXTENDED_MINING, CloseChannel): OnChannelMessage(PoolChannel._close, ChannelState.CLOSED),
    (ChannelState.EXTENDED_MINING, SetCustomMiningJob): _NO_CUSTOM_JOBS,
    (ChannelState.EXTENDED_MINING, JOB): OnPoolWork(PoolChannel._update_job),
    (ChannelState.EXTENDED_MINING, BLOCK): OnPoolWork(PoolChannel._activate),
    # CLOSED: late messages are answered with invalid-channel-id; work is not sent
    (ChannelState.CLOSED, SubmitSharesStandard): _CLOSED,
    (ChannelState.CLOSED, SubmitSharesExtended): _CLOSED,
    (ChannelState.CLOSED, UpdateChannel): _CLOSED,
    (ChannelState.CLOSED, CloseChannel): PassOver(),
    (ChannelState.CLOSED, SetCustomMiningJob): _CLOSED,
    (ChannelState.CLOSED, JOB): PassOver(),
    (ChannelState.CLOSED, BLOCK): PassOver(),
}

"""The pool side of one Stratum V1 connection as a pure state machine: bytes in → events out, replies as bytes.

What it is: `PoolSession.receive(data, now)` frames and decodes lines (`pithead.stratum.v1.wire`), looks
each one up in the transition table `TRANSITIONS` — the spec: every (state, input) pair is listed, the
illegal ones with the error they answer — runs the rule, queues the reply bytes and returns events
(`ShareJudged`, `BlockFound`, `WorkerAuthorized`, `DifficultyAssigned`, `CloseRequested`) for the asyncio
shell to act on. The shell takes the bytes with `data_to_send()`. The table's inputs are the miner's
methods (an unknown one as `UNKNOWN`), its responses to our requests (`RESPONSE`), and what happens to
the session itself: a stream that can no longer be framed (`UNFRAMEABLE`), a misbehaviour score that
reached the ban (`BANNED`), a connection that is gone (`LOST`). Every state change is made by the table.
Server-initiated messages (notify, set_difficulty, set_version_mask, set_extranonce, client.reconnect,
client.show_message) are methods that queue bytes. What it is not: no socket, no clock (`now` is a
parameter), no asyncio; the block it builds is handed out as an event and submitted by the shell.

Beside the table, not in it: parsing (the wire layer and the handlers' field checks), the misbehaviour
score (`_penalize`; reaching `BAN_SCORE` feeds the table `BANNED`: malformed input, invalid shares, and
spam that is well formed but useless — unknown methods, refused requests, shares for job ids never sent;
their running total `penalties` is what the shell sums per address) and the share-target bookkeeping
(`_diff_for`, `_note_job`).

Field rules kept here (see notes/stratum-field-notes.md): configure/suggest_difficulty/extranonce.subscribe
are answered, never ignored, in any state; suggest_difficulty is honoured before or after authorize; the
share target of a job is the lowest difficulty in force since the job was sent (no reject storm after a
difficulty change, whichever way a miner applies it; the share is credited at that difficulty); whole
difficulties go out as integers; pipelined requests are handled in bounded turns (`max_lines`).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from pithead.chain.address import AddressError, address_to_script
from pithead.chain.compact import difficulty_to_target
from pithead.chain.params import Network
from pithead.stratum.difficulty import VarDiff, VarDiffConfig, start_difficulty_for, wire_difficulty
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.share import RejectReason, Submission, check_share
from pithead.stratum.v1.errors import (
    NotSubscribed,
    OtherError,
    ProtocolViolation,
    StratumError,
    Unauthorized,
    rejection,
)
from pithead.stratum.v1.jobs import IssuedJob, JobSource
from pithead.stratum.v1.wire import (
    AUTHORIZE,
    CONFIGURE,
    EXTRANONCE_SUBSCRIBE,
    GET_VERSION,
    MAX_LINE_FROM_MINER,
    NOTIFY,
    PING,
    RECONNECT,
    SET_DIFFICULTY,
    SET_EXTRANONCE,
    SET_VERSION_MASK,
    SHOW_MESSAGE,
    SUBMIT,
    SUBSCRIBE,
    SUGGEST_DIFFICULTY,
    LineFramer,
    Request,
    decode,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
    parse_hex32,
    parse_hex_bytes,
    parse_submit,
    version_rolling_result,
)
from pithead.stratum.version import BIP320_MASK, FULL_MASK, negotiate
from pithead.template.job import Job, assemble_block, block_hash

SERVER_VERSION = "pithead/0.1.0"

MAX_USER_AGENT = 256
"""User agents are recorded for statistics; longer ones are truncated."""
MAX_WORKERS_PER_CONNECTION = 64
"""Distinct worker names one connection may authorize (cgminer proxies authorize a few)."""
MAX_USERNAME = 128
"""Longest `ADDRESS[.worker]` accepted (a bech32 address is at most 90 characters)."""
MAX_CONFIGURE_EXTENSIONS = 16
"""Extensions looked at in one mining.configure (BIP310 defines four; the rest are junk)."""
MAX_PASSWORD_OPTIONS = 16
"""`key=value` items read from a password (`d=512` is the one we use)."""
MAX_SESSION_ID_HEX = 16
"""Longest session id (a previous extranonce1, hex) a resuming subscribe may name; ours are 8 digits."""

BAN_SCORE = 100.0
"""Misbehaviour score at which the connection is closed and its IP banned for a while."""
SCORE_PER_VIOLATION = 10.0
"""A malformed message (bad JSON, wrong types) costs this much: ten in a row is a flood of junk."""
SCORE_PER_INVALID_SHARE = 1.0
"""A share rejected as invalid (low difficulty, bad ntime/version/extranonce2) costs this much."""
SCORE_PER_REFUSED = 2.0
"""A request refused for what it is (an unknown method, a second subscribe, a failed authorize): honest
miners make a handful per connection (an optional method this pool lacks, a mistyped address retried every
few seconds); 20,000 in a row on one connection is spam and reaches the ban within ~50."""
SCORE_PER_UNKNOWN_JOB = 3.0
"""A share for a job id this connection was never sent. An honest miner does that only with work still in
flight from before a reconnect or a pool restart (a few shares, once: an ASIC has under ten in flight); a
loop of made-up job ids is banned after ~33 in quick succession (at ~100 each attacking connection still
doubled an honest miner's reply time: `pithead bench attack`). Shares for jobs this connection was sent that have since aged out of the
job book stay free (slow devices), like stale and duplicate shares."""
SCORE_DECAY_PER_SECOND = 1.0
"""Score forgiven per second: an honest miner's occasional reject never adds up; a flood does."""
MAX_TRACKED_JOBS = 32
"""Jobs per connection whose share difficulty is remembered (older ones are judged at the current
difficulty; 32 jobs span several refresh intervals and new blocks)."""
MAX_SENT_JOB_IDS = 2 * MAX_TRACKED_JOBS
"""Job ids remembered per connection as sent to it (what tells an aged-out job from a made-up one)."""
MAX_TARGETS_CACHED = 8
"""Share targets kept per connection (one per difficulty a job was judged at: a few in force at once)."""
HONEST_REASONS = frozenset({RejectReason.STALE, RejectReason.JOB_NOT_FOUND, RejectReason.DUPLICATE})
"""Reject reasons that do not count towards a ban: they happen to honest miners around new blocks and
reconnects (in-flight work on an old job; a resubmit after a dropped reply)."""


class PoolState(enum.Enum):
    NEW = "new"  # connected, nothing yet (configure may come here)
    SUBSCRIBED = "subscribed"  # subscribed, no worker authorized yet
    AUTHORIZED = "authorized"  # a worker authorized before subscribing (some miners do this)
    READY = "ready"  # subscribed and authorized: gets jobs, may submit
    CLOSED = "closed"  # closing or gone: nothing more is read or answered


# The table's inputs: the methods a miner calls, then what else can happen to a session.
UNKNOWN = "<unknown method>"  # any other method name
RESPONSE = "<response>"  # the miner's answer to a request of ours (client.get_version)
UNFRAMEABLE = "<unframeable>"  # an over-long line: the stream can no longer be framed
BANNED = "<banned>"  # the misbehaviour score reached BAN_SCORE
LOST = "<connection lost>"  # the shell says the connection is gone

METHODS = (CONFIGURE, SUBSCRIBE, AUTHORIZE, SUGGEST_DIFFICULTY, EXTRANONCE_SUBSCRIBE, SUBMIT, PING, GET_VERSION,
           UNKNOWN)
"""The table's request columns (a method not listed is looked up as UNKNOWN)."""
INPUTS = (*METHODS, RESPONSE, UNFRAMEABLE, BANNED, LOST)
"""Every column of the table."""
_KNOWN_METHODS = frozenset(METHODS)


# --- pool rules the sessions share ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolWorker:
    name: str  # as authorized: "ADDRESS.rig1"
    address: str  # the part before the first "."
    payout_script: bytes | None  # solo mode: where the coinbase pays


@dataclass(frozen=True)
class PoolRules:
    """Everything a session needs to know about the pool (immutable; one object shared by all)."""

    mode: str  # "solo" | "pool"
    network: Network
    vardiff: VarDiffConfig = field(default_factory=VarDiffConfig)
    start_difficulty: float = 1.0
    version_mask: int = BIP320_MASK  # what the pool lets miners roll
    extranonce2_size: int = 4
    user_rule: str = "address"  # pool mode: "address" (username must be a valid address) or "any"
    server_version: str = SERVER_VERSION

    def authorize(self, username: object, password: object) -> tuple[PoolWorker, dict[str, str]]:
        """Check a login; returns the worker and its password options (e.g. {"d": "512"})."""
        if not isinstance(username, str) or not username or len(username) > MAX_USERNAME:
            raise Unauthorized("Worker name must be ADDRESS[.worker]")
        address = username.split(".", 1)[0].strip()
        script: bytes | None = None
        if self.mode == "solo" or self.user_rule == "address":
            try:
                script = address_to_script(address, self.network)
            except AddressError as exc:
                raise Unauthorized(f"Not a {self.network.name} address: {exc}") from None
        return PoolWorker(username, address, script), parse_password(password)


def parse_password(password: object) -> dict[str, str]:
    """Password options: comma- or space-separated `key=value` items (`d=512`); anything else ignored."""
    opts: dict[str, str] = {}
    if not isinstance(password, str):
        return opts
    for item in password.replace(" ", ",").split(",")[:MAX_PASSWORD_OPTIONS]:
        key, sep, value = item.partition("=")
        if sep and key.strip():
            opts[key.strip().lower()] = value.strip()
    return opts


# --- events for the shell -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShareJudged:
    worker: PoolWorker
    job: Job | None  # None when the job id was unknown
    submission: Submission
    accepted: bool
    reason: RejectReason | None  # why it was rejected (None when accepted)
    difficulty: float  # the share difficulty credited / required
    share_difficulty: float  # what the hash reached
    is_block: bool
    hash_int: int = 0  # the header hash (0 when not hashed), for a caller with a target of its own (a proxy's)
    version: int = 0  # the header nVersion hashed (the job's, or rolled by the miner's version bits)


@dataclass(frozen=True, slots=True)
class BlockFound:
    worker: PoolWorker
    job: Job
    block: bytes  # serialized, ready for submitblock
    block_hash: bytes  # internal order


@dataclass(frozen=True, slots=True)
class WorkerAuthorized:
    worker: PoolWorker


@dataclass(frozen=True, slots=True)
class DifficultyAssigned:
    """The pool changed this miner's share difficulty (vardiff, a suggestion, `d=`, minimum-difficulty)."""

    difficulty: float


@dataclass(frozen=True, slots=True)
class CloseRequested:
    reason: str
    ban: bool


PoolEvent = ShareJudged | BlockFound | WorkerAuthorized | DifficultyAssigned | CloseRequested


# --- the rules a table cell can hold --------------------------------------------------------------------

PoolHandler = Callable[["PoolSession", Request, float, list[PoolEvent]], object]
"""Runs an allowed request; returns its result (the reply), or raises the StratumError it answers."""


@dataclass(frozen=True, slots=True)
class Allow:
    """Run `handler` and reply with its result; on success move to `next_state` (None: stay), then run
    `then` (what entering that state sends, after the reply)."""

    handler: PoolHandler
    next_state: PoolState | None = None
    then: Callable[[PoolSession], None] | None = None


@dataclass(frozen=True, slots=True)
class Refuse:
    """Reply with this error; the state stays."""

    error: type[StratumError]
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    """No reply, no change."""


@dataclass(frozen=True, slots=True)
class Close:
    """Move to CLOSED and ask the shell to close the connection (and to ban its IP when `ban`)."""

    ban: bool


@dataclass(frozen=True, slots=True)
class Gone:
    """The connection is gone: move to CLOSED and free the extranonce1 (a new connection may resume it)."""


PoolRule = Allow | Refuse | Ignore | Close | Gone


def _num(v: object, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ProtocolViolation(f"{what} must be a number")
    try:
        f = float(v)
    except ValueError as exc:
        raise ProtocolViolation(f"{what} must be a number") from exc
    if not f > 0 or f == float("inf"):
        raise ProtocolViolation(f"{what} must be positive")
    return f


class PoolSession:
    """A connection's protocol state. Not thread-safe; one per connection."""

    def __init__(
        self,
        rules: PoolRules,
        jobs: JobSource,
        allocator: ExtranonceAllocator,
        now: float,
        *,
        remote: str | None = None,
    ) -> None:
        self.rules = rules
        self.jobs = jobs
        self.allocator = allocator
        self.remote = remote
        self.state = PoolState.NEW
        self.connected_at = now
        self.last_activity = now
        self.user_agent: str | None = None
        self.last_share_at: float | None = None  # time of the last accepted share (for status pages)
        self.extranonce1: bytes | None = None
        self.extranonce2_size = rules.extranonce2_size
        self.version_mask = 0  # negotiated (0: no rolling)
        self._rolling = False  # whether version rolling was negotiated (the mask may since have been narrowed)
        self._requested_mask = FULL_MASK  # what the miner asked to roll (BIP310: ffffffff when it named none)
        # what the pool may let this miner roll beyond its rules (set_version_mask): a proxy's upstream grant
        self._mask_limit = FULL_MASK
        # bits a mask the pool has since narrowed (set_version_mask) allowed: work rolled under it may still
        # be in flight, so such a share is rejected (BIP310: the new mask applies at once) but not held
        # against the miner as junk
        self._earlier_masks = 0
        self.extranonce_subscribed = False
        self.workers: dict[str, PoolWorker] = {}
        self.vardiff = VarDiff(rules.vardiff, rules.start_difficulty, now)
        self._suggested: float | None = None
        # share target bookkeeping: for each job sent (by seq), the lowest difficulty in force since it
        # was sent — what a share on it must meet (see `_diff_for`)
        self._job_diff: dict[int, float] = {}
        self._sent_ids: dict[str, None] = {}  # ids of the jobs sent to this miner, oldest first (bounded)
        self._target_cache: dict[float, int] = {}
        self._last_job: IssuedJob | None = None
        self._framer = LineFramer(MAX_LINE_FROM_MINER)
        self._backlog: list[bytes] = []  # complete request lines not handled yet (see `receive`)
        self._backlog_pos = 0
        self._out: list[bytes] = []
        self._after: list[bytes] = []  # server messages that must follow the current reply
        self._score = 0.0
        self._score_at = now
        self.penalties = 0.0  # every penalty ever added, undecayed: the shell sums them per address
        self._server_req_id = 0
        self.close_reason: str | None = None

    # --- I/O boundary ----------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    @property
    def difficulty(self) -> float:
        return self.vardiff.difficulty

    @property
    def primary_worker(self) -> PoolWorker | None:
        return next(iter(self.workers.values()), None)

    @property
    def payout_script(self) -> bytes | None:
        """Where this miner's coinbase pays in solo mode (every worker of a solo connection has the same)."""
        return self._payout_script()

    def receive(self, data: bytes, now: float, max_lines: int | None = None) -> list[PoolEvent]:
        """Feed received bytes; returns the events; replies are queued for `data_to_send`.

        With `max_lines`, at most that many requests are handled now; the rest wait in order
        (`pending_requests`) for `continue_pending` — so one pipelining miner cannot hold the event loop
        while others wait (the shell stops reading that peer until its backlog is handled)."""
        if self.state is PoolState.CLOSED:
            return []
        self.last_activity = now
        events: list[PoolEvent] = []
        try:
            lines = self._framer.feed(data)
        except ProtocolViolation as exc:
            self._penalize(SCORE_PER_VIOLATION, now)
            if self._score >= BAN_SCORE:
                self.session_input(BANNED, "too many invalid messages or shares", events)
            else:
                self.session_input(UNFRAMEABLE, f"framing: {exc}", events)
            return events
        if self._backlog:
            self._backlog.extend(lines)
        else:
            self._backlog = lines
        self._run_backlog(now, events, max_lines)
        return events

    @property
    def pending_requests(self) -> int:
        return len(self._backlog) - self._backlog_pos

    def continue_pending(self, now: float, max_lines: int | None = None) -> list[PoolEvent]:
        """Handle the next requests of the backlog left by `receive(..., max_lines)`."""
        events: list[PoolEvent] = []
        if self.state is not PoolState.CLOSED:
            self._run_backlog(now, events, max_lines)
        return events

    def _run_backlog(self, now: float, events: list[PoolEvent], max_lines: int | None) -> None:
        backlog = self._backlog
        pos = self._backlog_pos
        end = len(backlog) if max_lines is None else min(len(backlog), pos + max_lines)
        while pos < end:
            self.receive_line(backlog[pos], now, events)
            pos += 1
            if self.state is PoolState.CLOSED:
                break
        if pos >= len(backlog) or self.state is PoolState.CLOSED:
            self._backlog = []
            self._backlog_pos = 0
        else:
            self._backlog_pos = pos

    def receive_line(self, line: bytes, now: float, events: list[PoolEvent]) -> None:
        """One complete line: decoded, then through the table (a line that is no message is answered
        with error 20 and counts towards a ban)."""
        try:
            msg = decode(line)
        except ProtocolViolation as exc:
            self._out.append(encode_error(None, OtherError(f"Malformed message: {exc}")))
            self._penalize(SCORE_PER_VIOLATION, now)
        else:
            if isinstance(msg, Request):
                self.handle(msg, now, events)
            else:
                self.session_input(RESPONSE, "", events)  # answers to client.get_version: nothing to do
        if self._score >= BAN_SCORE:
            self.session_input(BANNED, "too many invalid messages or shares", events)

    def handle(self, req: Request, now: float, events: list[PoolEvent]) -> None:
        """One request through the transition table: the rule of (state, method) answers it."""
        method = req.method if req.method in _KNOWN_METHODS else UNKNOWN
        rule = TRANSITIONS[(self.state, method)]
        if isinstance(rule, Allow):
            try:
                result = rule.handler(self, req, now, events)
            except StratumError as err:
                self._out.append(encode_error(req.id, err, method == SUBMIT))
                self._flush_after()
                if method != SUBMIT:  # a submit's rejects are scored by their reason (`_submit`)
                    self._penalize(SCORE_PER_REFUSED, now)
                return
            except ProtocolViolation as exc:
                self._out.append(encode_error(req.id, OtherError(f"Invalid params: {exc}")))
                self._flush_after()
                self._penalize(SCORE_PER_VIOLATION, now)
                return
            self._out.append(encode_result(req.id, result))
            self._flush_after()
            if rule.next_state is not None:
                self.state = rule.next_state
            if rule.then is not None:
                rule.then(self)
        elif isinstance(rule, Refuse):
            self._out.append(encode_error(req.id, rule.error(rule.message), method == SUBMIT))
            self._penalize(SCORE_PER_INVALID_SHARE if method == SUBMIT else SCORE_PER_REFUSED, now)
        elif not isinstance(rule, Ignore):
            raise AssertionError(f"{rule!r} cannot answer a request ({self.state}, {method})")

    def session_input(self, kind: str, reason: str, events: list[PoolEvent]) -> None:
        """An input that is not a request (RESPONSE, UNFRAMEABLE, BANNED, LOST) through the table;
        `receive` and `close` feed these, `reason` says why for a close."""
        rule = TRANSITIONS[(self.state, kind)]
        if isinstance(rule, Close):
            self.state = PoolState.CLOSED
            self.close_reason = reason
            events.append(CloseRequested(reason, rule.ban))
        elif isinstance(rule, Gone):
            self.state = PoolState.CLOSED
            if self.extranonce1 is not None:
                self.allocator.release(self.extranonce1)
        elif not isinstance(rule, Ignore):
            raise AssertionError(f"{rule!r} needs a request ({self.state}, {kind})")

    def close(self) -> None:
        """The connection is gone (the shell's connection_lost): the table's LOST input."""
        self.session_input(LOST, "connection lost", [])

    # --- handlers (referenced by the table) ------------------------------------------------------------
    def _configure(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        if len(req.params) < 1 or not isinstance(req.params[0], list):
            raise ProtocolViolation("mining.configure params: [extensions[], options{}]")
        exts = req.params[0][:MAX_CONFIGURE_EXTENSIONS]
        opts = req.params[1] if len(req.params) > 1 and isinstance(req.params[1], dict) else {}
        result: dict[str, object] = {}
        for ext in exts:
            if not isinstance(ext, str):
                continue
            if ext == "version-rolling":
                miner_mask = opts.get("version-rolling.mask")
                mask = parse_hex32(miner_mask, "version-rolling.mask") if miner_mask is not None else None
                mbc = opts.get("version-rolling.min-bit-count", 0)
                min_bits = int(mbc) if isinstance(mbc, int) and not isinstance(mbc, bool) else 0
                answer = negotiate(self.rules.version_mask & self._mask_limit, mask, min_bits)
                self.version_mask = answer.mask
                self._rolling = answer.enabled
                self._requested_mask = FULL_MASK if mask is None else mask
                result.update(version_rolling_result(answer))
            elif ext == "minimum-difficulty":
                value = opts.get("minimum-difficulty.value")
                try:
                    floor = _num(value, "minimum-difficulty.value")
                except ProtocolViolation:
                    result["minimum-difficulty"] = False
                    continue
                self._apply_difficulty(self.vardiff.set_floor(floor, now), events)
                result["minimum-difficulty"] = True
            elif ext == "subscribe-extranonce":
                self.extranonce_subscribed = True
                result["subscribe-extranonce"] = True
            else:
                result[ext] = False
        return result

    def _subscribe(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        agent = req.params[0] if req.params else None
        if isinstance(agent, str):
            self.user_agent = agent[:MAX_USER_AGENT]
            if self._suggested is None and not self.vardiff.fixed and not self._job_diff:
                # a CPU miner is not an S21: start where its class finds shares within seconds
                self.vardiff.restart(start_difficulty_for(self.user_agent, self.rules.start_difficulty), now)
        previous: bytes | None = None
        if len(req.params) > 1 and req.params[1] is not None:
            # a session id that is not one of ours (not hex, too long) is not resumed: a fresh extranonce1
            with contextlib.suppress(ProtocolViolation):
                previous = parse_hex_bytes(req.params[1], "session id", MAX_SESSION_ID_HEX // 2)
        self.extranonce1 = self.allocator.allocate(previous)
        sid = self.extranonce1.hex()
        return [[[SET_DIFFICULTY, sid], [NOTIFY, sid]], sid, self.extranonce2_size]

    def _authorize(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        if not req.params:
            raise Unauthorized("mining.authorize needs a worker name")
        username = req.params[0]
        if isinstance(username, str) and username in self.workers:
            return True
        if len(self.workers) >= MAX_WORKERS_PER_CONNECTION:
            raise Unauthorized("Too many workers on one connection")
        worker, opts = self.rules.authorize(username, req.params[1] if len(req.params) > 1 else None)
        if self.workers and self.rules.mode == "solo":
            first = self.primary_worker
            assert first is not None
            if first.payout_script != worker.payout_script:
                raise Unauthorized("Solo mode: one payout address per connection")
        self.workers[worker.name] = worker
        events.append(WorkerAuthorized(worker))
        if "d" in opts:
            try:
                fixed = _num(opts["d"], "d=")
            except ProtocolViolation:
                fixed = None
            if fixed is not None:
                self._apply_difficulty(self.vardiff.fix(fixed, now), events)
        return True

    def _suggest_difficulty(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        if not req.params:
            raise ProtocolViolation("mining.suggest_difficulty needs a difficulty")
        diff = _num(req.params[0], "difficulty")
        self._suggested = diff
        if not self.vardiff.fixed:
            self._apply_difficulty(self.vardiff.suggest(diff, now), events)
        return True

    def _extranonce_subscribe(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        self.extranonce_subscribed = True
        return True

    def _ping(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        return "pong"

    def _get_version(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        return self.rules.server_version

    def _submit(self, req: Request, now: float, events: list[PoolEvent]) -> object:
        sub = parse_submit(req.params)
        worker = self.workers.get(sub.worker)
        if worker is None:
            self._penalize(SCORE_PER_INVALID_SHARE, now)
            raise Unauthorized(f"Worker {sub.worker!r} is not authorized on this connection")
        assert self.extranonce1 is not None
        ij = self.jobs.get(sub.job_id, self._payout_script())
        diff = self._diff_for(ij)
        target = self._target(diff)
        job = ij.job if ij is not None else None
        seen = self.jobs.seen(sub.job_id) if ij is not None else ()
        verdict = check_share(
            job,
            sub,
            extranonce1=self.extranonce1,
            version_mask=self.version_mask,
            share_target=target,
            now=int(now),
            stale=ij is not None and (self.jobs.is_stale(ij) or self.jobs.is_full(sub.job_id)),
            seen=seen,
        )
        if verdict.hash_int:
            self.jobs.remember(sub.job_id, sub.key(self.extranonce1))
        made_up = verdict.reason is RejectReason.JOB_NOT_FOUND and sub.job_id not in self._sent_ids
        if not made_up:  # a job id this connection was never sent is no share of its work: a violation
            # (answered, and scored towards a ban below), never a ledger event or a statistic; a flood of
            # them otherwise cost the pool an event to its supervisor and ledger per line (issue 16)
            events.append(
                ShareJudged(worker, job, sub, verdict.accepted, verdict.reason, diff,
                            verdict.share_difficulty, verdict.is_block, verdict.hash_int, verdict.version)
            )
        if verdict.reason is not None:
            in_flight = (verdict.reason is RejectReason.BAD_VERSION_BITS and sub.version_bits is not None
                         and sub.version_bits & ~(self._earlier_masks | self.version_mask) == 0)
            if made_up:
                self._penalize(SCORE_PER_UNKNOWN_JOB, now)  # never sent to this miner: made up, or from before
            elif verdict.reason not in HONEST_REASONS and not in_flight:
                self._penalize(SCORE_PER_INVALID_SHARE, now)
            raise rejection(verdict.reason)
        assert job is not None
        self.last_share_at = now
        if verdict.is_block and self.jobs.builds_blocks:
            block = assemble_block(job, self.extranonce1, sub.extranonce2, sub.ntime, sub.nonce, verdict.version)
            events.append(BlockFound(worker, job, block, block_hash(block)))
        self._apply_difficulty(self.vardiff.on_share(now), events)  # queued after the reply
        return True

    def _start_work(self) -> None:
        """Entering READY: the difficulty, then the current job (clean), after the reply that got us here.
        A job with a difficulty ceiling (a proxy's upstream difficulty) lowers the difficulty first."""
        ij = self.jobs.job_for(self._payout_script(), self.extranonce1)
        if ij is not None and ij.max_difficulty is not None:
            self.vardiff.set_ceiling(ij.max_difficulty, self.last_activity)
        self._out.append(encode_notification(SET_DIFFICULTY, [wire_difficulty(self.difficulty)]))
        if ij is not None:
            self._send_job(ij, clean=True)

    def _flush_after(self) -> None:
        if self._after:
            self._out.extend(self._after)
            self._after.clear()

    # --- difficulty ------------------------------------------------------------------------------------
    def _diff_for(self, ij: IssuedJob | None) -> float:
        """The difficulty a share on this job must meet: the lowest one in force since the job was sent.

        Miners differ on when a set_difficulty takes effect (cgminer: from the next notify; others: at
        once), and shares found before a change arrive after it; with several quick changes (vardiff's
        fast phase) a share may have been found two changes ago. Judging each job at the lowest
        difficulty it has seen means no reject storm either way (field notes: ESP-Miner #212, PP #39,
        MC #964); the share is credited at that difficulty, so leniency gains a miner nothing."""
        cur = self.vardiff.difficulty
        if ij is None:
            return cur
        d = self._job_diff.get(ij.seq)
        return cur if d is None or d > cur else d

    def _note_job(self, ij: IssuedJob) -> None:
        """Remember a job sent to this miner at the current difficulty (bounded to recent jobs)."""
        if ij.seq not in self._job_diff:
            if len(self._job_diff) >= MAX_TRACKED_JOBS:
                del self._job_diff[min(self._job_diff)]
            self._job_diff[ij.seq] = self.vardiff.difficulty
            job_id = ij.job.job_id
            if job_id not in self._sent_ids:
                if len(self._sent_ids) >= MAX_SENT_JOB_IDS:
                    del self._sent_ids[next(iter(self._sent_ids))]
                self._sent_ids[job_id] = None

    def _target(self, diff: float) -> int:
        t = self._target_cache.get(diff)
        if t is None:
            if len(self._target_cache) > MAX_TARGETS_CACHED:
                self._target_cache.clear()
            t = self._target_cache[diff] = difficulty_to_target(diff)
        return t

    def _apply_difficulty(self, new: float | None, events: list[PoolEvent], resend_job: bool = True) -> None:
        """After vardiff/suggest/d= changed the difficulty: lower the remembered difficulty of the jobs
        already sent if the new one is lower, and (when the miner already has work) send set_difficulty
        and (`resend_job`) the current job again, since most miners apply a new difficulty from the next
        notify."""
        if new is None:
            return
        for seq, d in self._job_diff.items():  # a lower difficulty applies to every job sent so far
            if new < d:
                self._job_diff[seq] = new
        events.append(DifficultyAssigned(new))
        if self.state is PoolState.READY:
            # queued after the reply of the request being handled (see `handle`)
            self._after.append(encode_notification(SET_DIFFICULTY, [wire_difficulty(new)]))
            if resend_job and self._last_job is not None:
                current = self.jobs.job_for(self._payout_script(), self.extranonce1)
                if current is not None:
                    self._after.append(current.line_update)
                    self._last_job = current
                    self._note_job(current)

    # --- server-initiated --------------------------------------------------------------------------------
    def _payout_script(self) -> bytes | None:
        w = self.primary_worker
        return w.payout_script if w is not None else None

    def _send_job(self, ij: IssuedJob, clean: bool) -> None:
        self._out.append(ij.line_clean if clean else ij.line_update)
        self._last_job = ij
        self._note_job(ij)

    def current_job(self) -> IssuedJob | None:
        """The job this session should be working on now (solo: for its payout script)."""
        if self.state is not PoolState.READY:
            return None
        return self.jobs.job_for(self._payout_script(), self.extranonce1)

    def take_job(self, ij: IssuedJob) -> None:
        """Record that `ij` was sent to this (READY) session by the broadcast path, which writes the
        pre-serialized line itself (solo: this miner's line of the generation `ij` stands for: the same job
        id and seq, its own coinbase; see `JobBook.broadcast`)."""
        self._last_job = ij
        if ij.seq not in self._job_diff:
            self._note_job(ij)

    def push_job(self, ij: IssuedJob, clean: bool) -> bytes:
        """A new job for a READY session: returns the bytes to write (the pre-serialized notify line),
        without queuing them — the broadcast path writes them straight out."""
        if self.state is not PoolState.READY:
            return b""
        self._last_job = ij
        self._note_job(ij)
        return ij.line_clean if clean else ij.line_update

    def tick(self, now: float) -> list[PoolEvent]:
        """Periodic housekeeping: vardiff for quiet connections."""
        events: list[PoolEvent] = []
        if self.state is PoolState.READY:
            self._apply_difficulty(self.vardiff.on_tick(now), events)
            self._flush_after()
        return events

    def set_version_mask(self, mask: int) -> None:
        """BIP310 mining.set_version_mask: takes effect immediately (only for miners that negotiated).

        The new mask is `mask` within the pool's rules and within what the miner asked to roll, and it
        also bounds a later mining.configure. Narrowing to 0 stops rolling; a later, wider mask (a proxy
        failing over to an upstream that allows rolling again) resumes it."""
        self._mask_limit = mask & FULL_MASK
        if not self._rolling:
            return
        new = mask & self.rules.version_mask & self._requested_mask
        if new == self.version_mask:
            return
        self._earlier_masks |= self.version_mask
        self.version_mask = new
        self._out.append(encode_notification(SET_VERSION_MASK, [f"{self.version_mask:08x}"]))

    def cap_difficulty(self, ceiling: float, now: float) -> list[PoolEvent]:
        """Keep this miner at or below `ceiling` from now on (a farm proxy's upstream difficulty). When its
        difficulty is above, it is lowered at once and (a READY miner) set_difficulty is queued, without the
        current job again: call it right before sending the job the ceiling comes with, so the new
        difficulty applies from that notify (as most miners apply it) and no share the upstream would
        credit goes unreported."""
        events: list[PoolEvent] = []
        self._apply_difficulty(self.vardiff.set_ceiling(ceiling, now), events, resend_job=False)
        self._flush_after()
        return events

    def set_extranonce(self, extranonce1: bytes, extranonce2_size: int | None = None) -> bool:
        """Change this session's extranonce. Miners that subscribed to extranonce changes get
        mining.set_extranonce and a clean job; others are asked to reconnect. Returns True if sent."""
        if extranonce2_size is not None:
            self.extranonce2_size = extranonce2_size
        old = self.extranonce1
        self.extranonce1 = extranonce1
        if old is not None and old != extranonce1:
            self.allocator.release(old)
        if not self.extranonce_subscribed:
            self.reconnect()
            return False
        self._out.append(encode_notification(SET_EXTRANONCE, [extranonce1.hex(), self.extranonce2_size]))
        ij = self.current_job()
        if ij is not None:
            self._send_job(ij, clean=True)
        return True

    def reconnect(self, host: str | None = None, port: int | None = None, wait: int = 0) -> None:
        params: list[object] = [] if host is None else [host, port, wait]
        self._out.append(encode_notification(RECONNECT, params))

    def show_message(self, text: str) -> None:
        self._out.append(encode_notification(SHOW_MESSAGE, [text]))

    def request_version(self) -> None:
        self._server_req_id += 1
        self._out.append(encode_request(f"s{self._server_req_id}", GET_VERSION, []))

    # --- misbehaviour (bookkeeping beside the table) -----------------------------------------------------
    @property
    def score(self) -> float:
        return self._score

    def _penalize(self, amount: float, now: float) -> None:
        """Add to the decaying misbehaviour score; reaching BAN_SCORE feeds the table BANNED (the caller
        checks once the message is answered, so the miner still gets its reply)."""
        self._score = max(0.0, self._score - (now - self._score_at) * SCORE_DECAY_PER_SECOND) + amount
        self._score_at = now
        self.penalties += amount


# --- the transition table: the spec ----------------------------------------------------------------------
# Every (state, input) pair, legal or not. configure, suggest_difficulty, extranonce.subscribe, ping and
# get_version are answered in every open state (field notes: never ignore them); subscribe and authorize
# may come in either order, and READY is entered by whichever completes the pair.

_UNKNOWN_METHOD = Refuse(OtherError, "Unknown method")
_ALREADY_SUBSCRIBED = Refuse(OtherError, "Already subscribed")

TRANSITIONS: dict[tuple[PoolState, str], PoolRule] = {
    # NEW: connected, nothing yet
    (PoolState.NEW, CONFIGURE): Allow(PoolSession._configure),
    (PoolState.NEW, SUBSCRIBE): Allow(PoolSession._subscribe, PoolState.SUBSCRIBED),
    (PoolState.NEW, AUTHORIZE): Allow(PoolSession._authorize, PoolState.AUTHORIZED),
    (PoolState.NEW, SUGGEST_DIFFICULTY): Allow(PoolSession._suggest_difficulty),
    (PoolState.NEW, EXTRANONCE_SUBSCRIBE): Allow(PoolSession._extranonce_subscribe),
    (PoolState.NEW, SUBMIT): Refuse(NotSubscribed),
    (PoolState.NEW, PING): Allow(PoolSession._ping),
    (PoolState.NEW, GET_VERSION): Allow(PoolSession._get_version),
    (PoolState.NEW, UNKNOWN): _UNKNOWN_METHOD,
    (PoolState.NEW, RESPONSE): Ignore(),
    (PoolState.NEW, UNFRAMEABLE): Close(ban=False),
    (PoolState.NEW, BANNED): Close(ban=True),
    (PoolState.NEW, LOST): Gone(),
    # SUBSCRIBED: subscribed, no worker yet
    (PoolState.SUBSCRIBED, CONFIGURE): Allow(PoolSession._configure),
    (PoolState.SUBSCRIBED, SUBSCRIBE): _ALREADY_SUBSCRIBED,
    (PoolState.SUBSCRIBED, AUTHORIZE): Allow(PoolSession._authorize, PoolState.READY,
                                             then=PoolSession._start_work),
    (PoolState.SUBSCRIBED, SUGGEST_DIFFICULTY): Allow(PoolSession._suggest_difficulty),
    (PoolState.SUBSCRIBED, EXTRANONCE_SUBSCRIBE): Allow(PoolSession._extranonce_subscribe),
    (PoolState.SUBSCRIBED, SUBMIT): Refuse(Unauthorized),
    (PoolState.SUBSCRIBED, PING): Allow(PoolSession._ping),
    (PoolState.SUBSCRIBED, GET_VERSION): Allow(PoolSession._get_version),
    (PoolState.SUBSCRIBED, UNKNOWN): _UNKNOWN_METHOD,
    (PoolState.SUBSCRIBED, RESPONSE): Ignore(),
    (PoolState.SUBSCRIBED, UNFRAMEABLE): Close(ban=False),
    (PoolState.SUBSCRIBED, BANNED): Close(ban=True),
    (PoolState.SUBSCRIBED, LOST): Gone(),
    # AUTHORIZED: a worker authorized, not subscribed yet
    (PoolState.AUTHORIZED, CONFIGURE): Allow(PoolSession._configure),
    (PoolState.AUTHORIZED, SUBSCRIBE): Allow(PoolSession._subscribe, PoolState.READY,
                                             then=PoolSession._start_work),
    (PoolState.AUTHORIZED, AUTHORIZE): Allow(PoolSession._authorize),
    (PoolState.AUTHORIZED, SUGGEST_DIFFICULTY): Allow(PoolSession._suggest_difficulty),
    (PoolState.AUTHORIZED, EXTRANONCE_SUBSCRIBE): Allow(PoolSession._extranonce_subscribe),
    (PoolState.AUTHORIZED, SUBMIT): Refuse(NotSubscribed),
    (PoolState.AUTHORIZED, PING): Allow(PoolSession._ping),
    (PoolState.AUTHORIZED, GET_VERSION): Allow(PoolSession._get_version),
    (PoolState.AUTHORIZED, UNKNOWN): _UNKNOWN_METHOD,
    (PoolState.AUTHORIZED, RESPONSE): Ignore(),
    (PoolState.AUTHORIZED, UNFRAMEABLE): Close(ban=False),
    (PoolState.AUTHORIZED, BANNED): Close(ban=True),
    (PoolState.AUTHORIZED, LOST): Gone(),
    # READY: subscribed and authorized — gets jobs, may submit, may authorize more workers
    (PoolState.READY, CONFIGURE): Allow(PoolSession._configure),
    (PoolState.READY, SUBSCRIBE): _ALREADY_SUBSCRIBED,
    (PoolState.READY, AUTHORIZE): Allow(PoolSession._authorize),
    (PoolState.READY, SUGGEST_DIFFICULTY): Allow(PoolSession._suggest_difficulty),
    (PoolState.READY, EXTRANONCE_SUBSCRIBE): Allow(PoolSession._extranonce_subscribe),
    (PoolState.READY, SUBMIT): Allow(PoolSession._submit),
    (PoolState.READY, PING): Allow(PoolSession._ping),
    (PoolState.READY, GET_VERSION): Allow(PoolSession._get_version),
    (PoolState.READY, UNKNOWN): _UNKNOWN_METHOD,
    (PoolState.READY, RESPONSE): Ignore(),
    (PoolState.READY, UNFRAMEABLE): Close(ban=False),
    (PoolState.READY, BANNED): Close(ban=True),
    (PoolState.READY, LOST): Gone(),
    # CLOSED: nothing more is read or answered; the connection going away still frees its extranonce1
    (PoolState.CLOSED, CONFIGURE): Ignore(),
    (PoolState.CLOSED, SUBSCRIBE): Ignore(),
    (PoolState.CLOSED, AUTHORIZE): Ignore(),
    (PoolState.CLOSED, SUGGEST_DIFFICULTY): Ignore(),
    (PoolState.CLOSED, EXTRANONCE_SUBSCRIBE): Ignore(),
    (PoolState.CLOSED, SUBMIT): Ignore(),
    (PoolState.CLOSED, PING): Ignore(),
    (PoolState.CLOSED, GET_VERSION): Ignore(),
    (PoolState.CLOSED, UNKNOWN): Ignore(),
    (PoolState.CLOSED, RESPONSE): Ignore(),
    (PoolState.CLOSED, UNFRAMEABLE): Ignore(),
    (PoolState.CLOSED, BANNED): Ignore(),
    (PoolState.CLOSED, LOST): Gone(),
}

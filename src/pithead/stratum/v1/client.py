"""The miner side of one Stratum V1 connection as a pure state machine: bytes in, events out, bytes to send.

What it is: the protocol state of one connection to a pool (the reference miner's, a simulated device's,
a proxy's upstream), driven by one transition table, `CLIENT_TRANSITIONS`: every (state, input) pair is
listed, the illegal ones too. The inputs are the pool's methods (an unknown one as `UNKNOWN`), the pool's
responses to each kind of request we send (`*_RESULT`; an authorize's as granted or refused; one we are
not waiting for as `STRAY_RESPONSE`), and our own `START` and `CLOSE`. The states say truthfully where
the handshake stands: subscribe and authorize may be answered in either order (`SUBSCRIBED` or
`AUTHORIZED`, then `MINING`), as the pool's table takes them. :meth:`ClientSession.start` queues the
handshake (``mining.configure`` for BIP310 version rolling, ``mining.subscribe``, ``mining.authorize``;
after a granted authorize ``mining.suggest_difficulty`` and ``mining.extranonce.subscribe``);
:meth:`receive_data` frames and decodes the pool's lines through :mod:`pithead.stratum.v1.wire` and
returns typed events; :meth:`submit` queues a share; :meth:`data_to_send` drains what must be written.

Beside the table, not in it: parsing (the wire layer; the params checks below), the requests in flight
(which request a response answers decides its input), and the work bookkeeping. Semantics kept from the
field:

- ``mining.set_difficulty`` applies from the *next* ``mining.notify`` (cgminer, docs.miners.tools); every
  :class:`~pithead.stratum.v1.work.MinerWork` carries the difficulty in force when its job arrived.
- ``mining.set_extranonce`` likewise applies to the next job; ``mining.set_version_mask`` applies at once
  (BIP310) and re-issues the current job with the new mask.
- a notify before the subscribe result is held (no extranonce1 yet) and issued once subscribed.
- the 6th submit param (version bits) is sent only when version rolling was negotiated.
- server requests ``mining.ping`` and ``client.get_version`` are answered; unknown requests get error 20.

What it is not: sockets, timers, reconnect policy or hashing (see :mod:`pithead.stratum.client` and
:mod:`pithead.miner`). Nothing here reads the clock. A pool's bad input raises
:class:`~pithead.stratum.v1.errors.ProtocolViolation` (the shell then drops the connection).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pithead.stratum.v1.errors import OtherError, ProtocolViolation, SessionClosed, TooManyPending
from pithead.stratum.v1.wire import (
    AUTHORIZE,
    CONFIGURE,
    EXTRANONCE_SUBSCRIBE,
    GET_VERSION,
    MAX_LINE_FROM_POOL,
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
    Response,
    decode,
    encode_error,
    encode_request,
    encode_result,
    parse_hex32,
    parse_hex_bytes,
)
from pithead.stratum.v1.work import (
    MAX_EXTRANONCE1_BYTES,
    MAX_EXTRANONCE2_SIZE,
    U32_MAX,
    FoundShare,
    MinerWork,
    NotifiedJob,
)

#: Requests awaiting a reply. Submits are the only steady source; a pool that stops answering 1024 of
#: them is dead, and the shell reconnects rather than queue without bound. (A farm proxy forwarding a
#: whole farm's shares on one connection sets its own bound, `ClientConfig.max_pending`.)
MAX_PENDING_REQUESTS: Final = 1024
#: Share difficulty bounds we accept from set_difficulty: ESP32 miners use ~1e-4; 2^64 is beyond any pool.
MIN_DIFFICULTY: Final = 1e-12
MAX_DIFFICULTY: Final = float(2**64)
#: The mask we offer in mining.configure: BIP320's general-purpose bits. The pool answers with a subset.
DEFAULT_VERSION_MASK: Final = 0x1FFFE000
#: client.reconnect may ask us to wait; more than 10 minutes is treated as 10 minutes.
MAX_RECONNECT_WAIT: Final = 600.0
#: show_message text kept for display.
MAX_MESSAGE_CHARS: Final = 512
#: Largest TCP port number (client.reconnect names one).
MAX_PORT: Final = 65535


class ClientState(enum.Enum):
    NEW = "new"  # start() not called yet: nothing sent
    HANDSHAKE = "handshake"  # configure/subscribe/authorize sent; neither subscribe nor authorize answered
    SUBSCRIBED = "subscribed"  # the subscribe result came (extranonce1 known); authorize not granted yet
    AUTHORIZED = "authorized"  # authorize granted; the subscribe result not here yet
    MINING = "mining"  # subscribed and authorized
    CLOSED = "closed"  # closed by us: nothing more is sent or received


# The table's inputs. The pool's methods (NOTIFY ... PING, from the wire layer) and any other one:
UNKNOWN = "<unknown method>"
# the pool's responses, by the request they answer:
CONFIGURE_RESULT = "<mining.configure result>"
SUBSCRIBE_RESULT = "<mining.subscribe result>"
AUTHORIZE_GRANTED = "<mining.authorize granted>"  # result true, no error
AUTHORIZE_REFUSED = "<mining.authorize refused>"  # anything else
SUGGEST_DIFFICULTY_RESULT = "<mining.suggest_difficulty result>"
EXTRANONCE_SUBSCRIBE_RESULT = "<mining.extranonce.subscribe result>"
SUBMIT_RESULT = "<mining.submit result>"
STRAY_RESPONSE = "<stray response>"  # an id we did not send, or already answered
# and our own calls:
START = "<start>"
CLOSE = "<close>"

METHODS = (NOTIFY, SET_DIFFICULTY, SET_EXTRANONCE, SET_VERSION_MASK, RECONNECT, SHOW_MESSAGE, GET_VERSION, PING,
           UNKNOWN)
"""The table's columns for the pool's requests and notifications (a method not listed is UNKNOWN)."""
RESULTS = (CONFIGURE_RESULT, SUBSCRIBE_RESULT, AUTHORIZE_GRANTED, AUTHORIZE_REFUSED, SUGGEST_DIFFICULTY_RESULT,
           EXTRANONCE_SUBSCRIBE_RESULT, SUBMIT_RESULT, STRAY_RESPONSE)
"""The table's columns for the pool's responses."""
CALLS = (START, CLOSE)
"""The table's columns for our own calls."""
INPUTS = (*METHODS, *RESULTS, *CALLS)
"""Every column of the table."""
_KNOWN_METHODS = frozenset(METHODS)
_RESULT_OF = {
    CONFIGURE: CONFIGURE_RESULT,
    SUBSCRIBE: SUBSCRIBE_RESULT,
    SUGGEST_DIFFICULTY: SUGGEST_DIFFICULTY_RESULT,
    EXTRANONCE_SUBSCRIBE: EXTRANONCE_SUBSCRIBE_RESULT,
    SUBMIT: SUBMIT_RESULT,
}
"""The input a response becomes, by the method of the request it answers (authorize: granted/refused)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What the miner asks of the pool."""

    username: str
    password: str = "x"
    user_agent: str = "pithead"
    version_rolling: bool = True
    version_mask: int = DEFAULT_VERSION_MASK
    suggest_difficulty: float | None = None
    extranonce_subscribe: bool = True
    max_pending: int = MAX_PENDING_REQUESTS  # requests awaiting a reply before the connection counts as dead


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class VersionRollingNegotiated:
    enabled: bool
    mask: int


@dataclass(frozen=True, slots=True)
class Subscribed:
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True)
class AuthorizationGranted:
    worker: str


@dataclass(frozen=True, slots=True)
class AuthorizationFailed:
    worker: str
    reason: str


@dataclass(frozen=True, slots=True)
class NewWork:
    """Mine this now. ``clean``: drop work (and unsent shares) of earlier jobs."""

    work: MinerWork
    clean: bool


@dataclass(frozen=True, slots=True)
class DifficultySet:
    """The pool's mining.set_difficulty: applies from the next job."""

    difficulty: float


@dataclass(frozen=True, slots=True)
class ExtranonceChanged:
    extranonce1: bytes
    extranonce2_size: int  # applies from the next job


@dataclass(frozen=True, slots=True)
class ShareAccepted:
    share: FoundShare


@dataclass(frozen=True, slots=True)
class ShareRejected:
    share: FoundShare
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ReconnectRequested:
    host: str | None
    port: int | None
    wait: float


@dataclass(frozen=True, slots=True)
class PoolMessage:
    text: str


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A handshake request other than authorize failed (the session continues without it)."""

    method: str
    reason: str


ClientEvent = (
    VersionRollingNegotiated
    | Subscribed
    | AuthorizationGranted
    | AuthorizationFailed
    | NewWork
    | DifficultySet
    | ExtranonceChanged
    | ShareAccepted
    | ShareRejected
    | ReconnectRequested
    | PoolMessage
    | RequestFailed
)


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A request of ours awaiting its response."""

    method: str
    share: FoundShare | None = None  # for a submit


@dataclass(frozen=True, slots=True)
class Answer:
    """The pool's response together with the request of ours it answers."""

    sent: SentRequest
    response: Response


# --- the rules a table cell can hold --------------------------------------------------------------------

MethodHandler = Callable[["ClientSession", Request, list[ClientEvent]], None]
ResultHandler = Callable[["ClientSession", Answer, list[ClientEvent]], None]
CallHandler = Callable[["ClientSession"], None]


@dataclass(frozen=True, slots=True)
class OnMethod:
    """A request or notification from the pool: run `handler`; on success move to `next_state`."""

    handler: MethodHandler
    next_state: ClientState | None = None


@dataclass(frozen=True, slots=True)
class OnResult:
    """The pool's response to a request of ours: run `handler`; on success move to `next_state`."""

    handler: ResultHandler
    next_state: ClientState | None = None


@dataclass(frozen=True, slots=True)
class OnCall:
    """One of our own calls (start, close): run `handler` (if any), then move to `next_state`."""

    handler: CallHandler | None
    next_state: ClientState | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """The pool broke the protocol: ProtocolViolation (the shell drops the connection)."""

    why: str


@dataclass(frozen=True, slots=True)
class Misuse:
    """Our side cannot do this now: SessionClosed."""

    why: str


@dataclass(frozen=True, slots=True)
class Disregard:
    """Nothing to do, no change."""


ClientRule = OnMethod | OnResult | OnCall | Violation | Misuse | Disregard


class ClientSession:
    """One connection's protocol state (see the module docstring). Not thread-safe."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.state = ClientState.NEW
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.difficulty = 1.0  # Stratum's default until the first set_difficulty
        self.version_mask = 0  # negotiated; 0 = no version rolling
        self.current_work: MinerWork | None = None
        self._pending_difficulty: float | None = None
        self._pending_extranonce: tuple[bytes, int] | None = None
        self._early_job: NotifiedJob | None = None  # a notify that arrived before the subscribe result
        self._generation = 0
        self._next_id = 1
        self._pending: OrderedDict[int, SentRequest] = OrderedDict()
        self._framer = LineFramer(MAX_LINE_FROM_POOL)
        self._outbuf = bytearray()

    @property
    def subscribed(self) -> bool:
        return self.state in (ClientState.SUBSCRIBED, ClientState.MINING)

    @property
    def authorized(self) -> bool:
        return self.state in (ClientState.AUTHORIZED, ClientState.MINING)

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------------------------- our calls

    def start(self) -> None:
        """Queue the handshake: configure (BIP310 says first), subscribe, authorize."""
        self.handle(START)

    def close(self) -> None:
        self.handle(CLOSE)

    def submit(self, share: FoundShare) -> int:
        """Queue ``mining.submit`` for a share; returns its request id."""
        return self._request(SUBMIT, share.submit_params(self.config.username), share)

    def data_to_send(self) -> bytes:
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def _request(self, method: str, params: list[Any], share: FoundShare | None = None) -> int:
        if self.state is ClientState.CLOSED:
            raise SessionClosed("the session is closed")
        if len(self._pending) >= self.config.max_pending:
            raise TooManyPending(f"{len(self._pending)} requests unanswered")
        rid = self._next_id
        self._next_id += 1
        self._pending[rid] = SentRequest(method, share)
        self._outbuf += encode_request(rid, method, params)
        return rid

    # ------------------------------------------------------------------------------------- incoming

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes from the pool; returns the events of every complete line.

        Raises ProtocolViolation for bad framing or JSON, or for malformed params of a message the miner
        cannot go on without (notify, subscribe result); the shell then drops the connection."""
        if self.state is ClientState.CLOSED:
            raise SessionClosed("the session is closed")
        events: list[ClientEvent] = []
        for line in self._framer.feed(data):
            msg = decode(line)
            if isinstance(msg, Request):
                events += self.handle(msg.method if msg.method in _KNOWN_METHODS else UNKNOWN, msg)
            else:
                events += self._response(msg)
        return events

    def _response(self, resp: Response) -> list[ClientEvent]:
        """Which request a response answers decides its input (bookkeeping beside the table)."""
        rid = resp.id
        sent = self._pending.pop(rid, None) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if sent is None:
            return self.handle(STRAY_RESPONSE)  # not one of ours (ids are ints we chose), late or duplicate
        if sent.method == AUTHORIZE:
            kind = AUTHORIZE_GRANTED if resp.ok else AUTHORIZE_REFUSED
        else:
            kind = _RESULT_OF[sent.method]
        return self.handle(kind, Answer(sent, resp))

    def handle(self, kind: str, message: Request | Answer | None = None) -> list[ClientEvent]:
        """One input through the transition table: a pool method (with its Request), a response (with
        its Answer), or our own call (no message). Returns the events."""
        rule = CLIENT_TRANSITIONS[(self.state, kind)]
        events: list[ClientEvent] = []
        if isinstance(rule, OnMethod):
            if not isinstance(message, Request):
                raise TypeError(f"{kind} needs the pool's Request")
            rule.handler(self, message, events)
        elif isinstance(rule, OnResult):
            if not isinstance(message, Answer):
                raise TypeError(f"{kind} needs an Answer")
            rule.handler(self, message, events)
        elif isinstance(rule, OnCall):
            if rule.handler is not None:
                rule.handler(self)
        elif isinstance(rule, Violation):
            raise ProtocolViolation(f"{kind} in state {self.state.value}: {rule.why}")
        elif isinstance(rule, Misuse):
            raise SessionClosed(rule.why)
        else:
            return events  # Disregard
        if rule.next_state is not None:
            self.state = rule.next_state
        return events

    # --- our calls (referenced by the table) ---------------------------------------------------------

    def _start(self) -> None:
        if self.config.version_rolling:
            self._request(
                CONFIGURE,
                [["version-rolling"], {"version-rolling.mask": f"{self.config.version_mask & U32_MAX:08x}"}],
            )
        self._request(SUBSCRIBE, [self.config.user_agent])
        self._request(AUTHORIZE, [self.config.username, self.config.password])

    # --- the pool's methods (referenced by the table) ------------------------------------------------

    def _hold_job(self, req: Request, events: list[ClientEvent]) -> None:
        """A notify before the subscribe result: no extranonce1 yet, so no header can be built; keep the
        newest job for when it comes."""
        self._early_job = NotifiedJob.from_notify(req.params)

    def _new_job(self, req: Request, events: list[ClientEvent]) -> None:
        events += self._issue(NotifiedJob.from_notify(req.params))

    def _set_difficulty(self, req: Request, events: list[ClientEvent]) -> None:
        diff = _difficulty(req.params[0] if req.params else None)
        self._pending_difficulty = diff
        events.append(DifficultySet(diff))

    def _set_extranonce(self, req: Request, events: list[ClientEvent]) -> None:
        if len(req.params) < 2:
            raise ProtocolViolation("mining.set_extranonce needs [extranonce1, extranonce2_size]")
        en1, size = _extranonce(req.params[0], req.params[1])
        self._pending_extranonce = (en1, size)
        if req.id is not None:
            self._outbuf += encode_result(req.id, True)
        events.append(ExtranonceChanged(en1, size))

    def _set_version_mask(self, req: Request, events: list[ClientEvent]) -> None:
        mask = _mask(req.params[0] if req.params else None, "mining.set_version_mask")
        # The pool may only narrow what we offered; never roll bits we did not ask for.
        self.version_mask = mask & self.config.version_mask if self.config.version_rolling else 0
        events.append(VersionRollingNegotiated(bool(self.version_mask), self.version_mask))
        if self.current_work is not None:
            # BIP310: effective immediately, so re-issue the current job under the new mask.
            self.current_work = self._make_work(self.current_work.job)
            events.append(NewWork(self.current_work, False))

    def _reconnect(self, req: Request, events: list[ClientEvent]) -> None:
        params = req.params
        host = params[0] if len(params) > 0 and isinstance(params[0], str) and params[0] else None
        port: int | None = None
        if len(params) > 1 and params[1] not in (None, ""):
            try:
                port = int(params[1])
            except (TypeError, ValueError) as exc:
                raise ProtocolViolation("client.reconnect: port must be a number") from exc
            if not 0 <= port <= MAX_PORT:
                raise ProtocolViolation("client.reconnect: port out of range")
            port = port or None  # 0 means "the same port", as an empty value does
        wait = 0.0
        if len(params) > 2:
            try:
                wait = min(max(float(params[2]), 0.0), MAX_RECONNECT_WAIT)
            except (TypeError, ValueError) as exc:
                raise ProtocolViolation("client.reconnect: wait must be a number") from exc
        events.append(ReconnectRequested(host, port, wait))

    def _show_message(self, req: Request, events: list[ClientEvent]) -> None:
        text = str(req.params[0]) if req.params else ""
        events.append(PoolMessage(text[:MAX_MESSAGE_CHARS]))

    def _get_version(self, req: Request, events: list[ClientEvent]) -> None:
        if req.id is not None:
            self._outbuf += encode_result(req.id, self.config.user_agent)

    def _ping(self, req: Request, events: list[ClientEvent]) -> None:
        if req.id is not None:
            self._outbuf += encode_result(req.id, "pong")

    def _unknown(self, req: Request, events: list[ClientEvent]) -> None:
        if req.id is not None:  # a request is answered (error 20); a notification needs nothing
            self._outbuf += encode_error(req.id, OtherError(f"unsupported method {req.method}"))

    # --- the pool's responses (referenced by the table) ----------------------------------------------

    def _configured(self, answer: Answer, events: list[ClientEvent]) -> None:
        resp = answer.response
        mask = 0
        if resp.error is None and isinstance(resp.result, dict) and resp.result.get("version-rolling") is True:
            try:
                mask = _mask(resp.result.get("version-rolling.mask"), "version-rolling.mask") & self.config.version_mask
            except ProtocolViolation:
                mask = 0
        self.version_mask = mask
        events.append(VersionRollingNegotiated(mask != 0, mask))

    def _subscribed(self, answer: Answer, events: list[ClientEvent]) -> None:
        resp = answer.response
        if resp.error is not None:
            raise ProtocolViolation(f"mining.subscribe failed: {resp.error.message}")
        result = resp.result
        if not isinstance(result, list) or len(result) < 3:
            raise ProtocolViolation(f"mining.subscribe failed: {result!r}")
        self.extranonce1, self.extranonce2_size = _extranonce(result[1], result[2])
        events.append(Subscribed(self.extranonce1, self.extranonce2_size))
        if self._early_job is not None:
            job, self._early_job = self._early_job, None
            events += self._issue(job)

    def _authorization_granted(self, answer: Answer, events: list[ClientEvent]) -> None:
        if self.config.suggest_difficulty is not None:
            self._request(SUGGEST_DIFFICULTY, [self.config.suggest_difficulty])
        if self.config.extranonce_subscribe:
            self._request(EXTRANONCE_SUBSCRIBE, [])
        events.append(AuthorizationGranted(self.config.username))

    def _authorization_refused(self, answer: Answer, events: list[ClientEvent]) -> None:
        error = answer.response.error
        events.append(AuthorizationFailed(self.config.username, "refused" if error is None else error.message))

    def _request_answered(self, answer: Answer, events: list[ClientEvent]) -> None:
        """suggest_difficulty, extranonce.subscribe: a failure is reported and the session goes on."""
        if answer.response.error is not None:
            events.append(RequestFailed(answer.sent.method, answer.response.error.message))

    def _share_answered(self, answer: Answer, events: list[ClientEvent]) -> None:
        share, resp = answer.sent.share, answer.response
        assert share is not None  # every submit is sent with its share
        if resp.ok:
            events.append(ShareAccepted(share))
            return
        code, reason = (None, "rejected") if resp.error is None else (resp.error.code, resp.error.message)
        if resp.reject_reason is not None:  # ckpool's extra field, cgminer reads it
            reason = resp.reject_reason
        events.append(ShareRejected(share, code, reason))

    # --- work bookkeeping (beside the table) ---------------------------------------------------------

    def _issue(self, job: NotifiedJob) -> list[ClientEvent]:
        if self._pending_difficulty is not None:
            self.difficulty = self._pending_difficulty
            self._pending_difficulty = None
        if self._pending_extranonce is not None:
            self.extranonce1, self.extranonce2_size = self._pending_extranonce
            self._pending_extranonce = None
        work = self._make_work(job)
        # A job issued under a new extranonce1 cannot share work with older ones: treat it as clean.
        clean = job.clean_jobs or (
            self.current_work is not None and self.current_work.extranonce1 != work.extranonce1
        )
        self.current_work = work
        return [NewWork(work, clean)]

    def _make_work(self, job: NotifiedJob) -> MinerWork:
        self._generation += 1
        return MinerWork(job, self.extranonce1, self.extranonce2_size, self.difficulty, self.version_mask,
                         self._generation)


# --- params checks (beside the table) -------------------------------------------------------------------


def _difficulty(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolViolation(f"difficulty must be a number, got {value!r}")
    diff = float(value)
    if not MIN_DIFFICULTY <= diff <= MAX_DIFFICULTY:
        raise ProtocolViolation(f"difficulty {diff!r} out of range")
    return diff


def _extranonce(en1: Any, size: Any) -> tuple[bytes, int]:
    raw = parse_hex_bytes(en1, "extranonce1", MAX_EXTRANONCE1_BYTES)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_EXTRANONCE2_SIZE:
        raise ProtocolViolation(f"extranonce2_size must be an integer in 0..{MAX_EXTRANONCE2_SIZE}")
    return raw, size


def _mask(value: Any, what: str) -> int:
    return parse_hex32(value, what)


# --- the transition table: the spec ----------------------------------------------------------------------
# Every (state, input) pair, legal or not. The pool's methods are taken in every open state (a notify
# before the subscribe result is held, after it issued); subscribe and authorize may be answered in either
# order; a response the session cannot be waiting for in a state (answered twice, or before it was sent)
# is a violation; a share's result is taken whenever it comes; after close nothing is.

_CLOSED = Misuse("the session is closed")
_STARTED = Misuse("start() is called once per session")
_NOT_SENT = Violation("no such request is in flight")
_ANSWERED = Violation("that request was already answered")

CLIENT_TRANSITIONS: dict[tuple[ClientState, str], ClientRule] = {
    # NEW: start() not called, nothing sent
    (ClientState.NEW, NOTIFY): OnMethod(ClientSession._hold_job),
    (ClientState.NEW, SET_DIFFICULTY): OnMethod(ClientSession._set_difficulty),
    (ClientState.NEW, SET_EXTRANONCE): OnMethod(ClientSession._set_extranonce),
    (ClientState.NEW, SET_VERSION_MASK): OnMethod(ClientSession._set_version_mask),
    (ClientState.NEW, RECONNECT): OnMethod(ClientSession._reconnect),
    (ClientState.NEW, SHOW_MESSAGE): OnMethod(ClientSession._show_message),
    (ClientState.NEW, GET_VERSION): OnMethod(ClientSession._get_version),
    (ClientState.NEW, PING): OnMethod(ClientSession._ping),
    (ClientState.NEW, UNKNOWN): OnMethod(ClientSession._unknown),
    (ClientState.NEW, CONFIGURE_RESULT): _NOT_SENT,
    (ClientState.NEW, SUBSCRIBE_RESULT): _NOT_SENT,
    (ClientState.NEW, AUTHORIZE_GRANTED): _NOT_SENT,
    (ClientState.NEW, AUTHORIZE_REFUSED): _NOT_SENT,
    (ClientState.NEW, SUGGEST_DIFFICULTY_RESULT): _NOT_SENT,
    (ClientState.NEW, EXTRANONCE_SUBSCRIBE_RESULT): _NOT_SENT,
    (ClientState.NEW, SUBMIT_RESULT): OnResult(ClientSession._share_answered),
    (ClientState.NEW, STRAY_RESPONSE): Disregard(),
    (ClientState.NEW, START): OnCall(ClientSession._start, ClientState.HANDSHAKE),
    (ClientState.NEW, CLOSE): OnCall(None, ClientState.CLOSED),
    # HANDSHAKE: configure/subscribe/authorize sent, neither subscribe nor authorize answered
    (ClientState.HANDSHAKE, NOTIFY): OnMethod(ClientSession._hold_job),
    (ClientState.HANDSHAKE, SET_DIFFICULTY): OnMethod(ClientSession._set_difficulty),
    (ClientState.HANDSHAKE, SET_EXTRANONCE): OnMethod(ClientSession._set_extranonce),
    (ClientState.HANDSHAKE, SET_VERSION_MASK): OnMethod(ClientSession._set_version_mask),
    (ClientState.HANDSHAKE, RECONNECT): OnMethod(ClientSession._reconnect),
    (ClientState.HANDSHAKE, SHOW_MESSAGE): OnMethod(ClientSession._show_message),
    (ClientState.HANDSHAKE, GET_VERSION): OnMethod(ClientSession._get_version),
    (ClientState.HANDSHAKE, PING): OnMethod(ClientSession._ping),
    (ClientState.HANDSHAKE, UNKNOWN): OnMethod(ClientSession._unknown),
    (ClientState.HANDSHAKE, CONFIGURE_RESULT): OnResult(ClientSession._configured),
    (ClientState.HANDSHAKE, SUBSCRIBE_RESULT): OnResult(ClientSession._subscribed, ClientState.SUBSCRIBED),
    (ClientState.HANDSHAKE, AUTHORIZE_GRANTED): OnResult(ClientSession._authorization_granted,
                                                         ClientState.AUTHORIZED),
    (ClientState.HANDSHAKE, AUTHORIZE_REFUSED): OnResult(ClientSession._authorization_refused),
    (ClientState.HANDSHAKE, SUGGEST_DIFFICULTY_RESULT): _NOT_SENT,
    (ClientState.HANDSHAKE, EXTRANONCE_SUBSCRIBE_RESULT): _NOT_SENT,
    (ClientState.HANDSHAKE, SUBMIT_RESULT): OnResult(ClientSession._share_answered),
    (ClientState.HANDSHAKE, STRAY_RESPONSE): Disregard(),
    (ClientState.HANDSHAKE, START): _STARTED,
    (ClientState.HANDSHAKE, CLOSE): OnCall(None, ClientState.CLOSED),
    # SUBSCRIBED: extranonce1 known, authorize not granted (yet, or refused)
    (ClientState.SUBSCRIBED, NOTIFY): OnMethod(ClientSession._new_job),
    (ClientState.SUBSCRIBED, SET_DIFFICULTY): OnMethod(ClientSession._set_difficulty),
    (ClientState.SUBSCRIBED, SET_EXTRANONCE): OnMethod(ClientSession._set_extranonce),
    (ClientState.SUBSCRIBED, SET_VERSION_MASK): OnMethod(ClientSession._set_version_mask),
    (ClientState.SUBSCRIBED, RECONNECT): OnMethod(ClientSession._reconnect),
    (ClientState.SUBSCRIBED, SHOW_MESSAGE): OnMethod(ClientSession._show_message),
    (ClientState.SUBSCRIBED, GET_VERSION): OnMethod(ClientSession._get_version),
    (ClientState.SUBSCRIBED, PING): OnMethod(ClientSession._ping),
    (ClientState.SUBSCRIBED, UNKNOWN): OnMethod(ClientSession._unknown),
    (ClientState.SUBSCRIBED, CONFIGURE_RESULT): OnResult(ClientSession._configured),
    (ClientState.SUBSCRIBED, SUBSCRIBE_RESULT): _ANSWERED,
    (ClientState.SUBSCRIBED, AUTHORIZE_GRANTED): OnResult(ClientSession._authorization_granted,
                                                          ClientState.MINING),
    (ClientState.SUBSCRIBED, AUTHORIZE_REFUSED): OnResult(ClientSession._authorization_refused),
    (ClientState.SUBSCRIBED, SUGGEST_DIFFICULTY_RESULT): _NOT_SENT,
    (ClientState.SUBSCRIBED, EXTRANONCE_SUBSCRIBE_RESULT): _NOT_SENT,
    (ClientState.SUBSCRIBED, SUBMIT_RESULT): OnResult(ClientSession._share_answered),
    (ClientState.SUBSCRIBED, STRAY_RESPONSE): Disregard(),
    (ClientState.SUBSCRIBED, START): _STARTED,
    (ClientState.SUBSCRIBED, CLOSE): OnCall(None, ClientState.CLOSED),
    # AUTHORIZED: authorize granted, the subscribe result not here yet
    (ClientState.AUTHORIZED, NOTIFY): OnMethod(ClientSession._hold_job),
    (ClientState.AUTHORIZED, SET_DIFFICULTY): OnMethod(ClientSession._set_difficulty),
    (ClientState.AUTHORIZED, SET_EXTRANONCE): OnMethod(ClientSession._set_extranonce),
    (ClientState.AUTHORIZED, SET_VERSION_MASK): OnMethod(ClientSession._set_version_mask),
    (ClientState.AUTHORIZED, RECONNECT): OnMethod(ClientSession._reconnect),
    (ClientState.AUTHORIZED, SHOW_MESSAGE): OnMethod(ClientSession._show_message),
    (ClientState.AUTHORIZED, GET_VERSION): OnMethod(ClientSession._get_version),
    (ClientState.AUTHORIZED, PING): OnMethod(ClientSession._ping),
    (ClientState.AUTHORIZED, UNKNOWN): OnMethod(ClientSession._unknown),
    (ClientState.AUTHORIZED, CONFIGURE_RESULT): OnResult(ClientSession._configured),
    (ClientState.AUTHORIZED, SUBSCRIBE_RESULT): OnResult(ClientSession._subscribed, ClientState.MINING),
    (ClientState.AUTHORIZED, AUTHORIZE_GRANTED): _ANSWERED,
    (ClientState.AUTHORIZED, AUTHORIZE_REFUSED): _ANSWERED,
    (ClientState.AUTHORIZED, SUGGEST_DIFFICULTY_RESULT): OnResult(ClientSession._request_answered),
    (ClientState.AUTHORIZED, EXTRANONCE_SUBSCRIBE_RESULT): OnResult(ClientSession._request_answered),
    (ClientState.AUTHORIZED, SUBMIT_RESULT): OnResult(ClientSession._share_answered),
    (ClientState.AUTHORIZED, STRAY_RESPONSE): Disregard(),
    (ClientState.AUTHORIZED, START): _STARTED,
    (ClientState.AUTHORIZED, CLOSE): OnCall(None, ClientState.CLOSED),
    # MINING: subscribed and authorized
    (ClientState.MINING, NOTIFY): OnMethod(ClientSession._new_job),
    (ClientState.MINING, SET_DIFFICULTY): OnMethod(ClientSession._set_difficulty),
    (ClientState.MINING, SET_EXTRANONCE): OnMethod(ClientSession._set_extranonce),
    (ClientState.MINING, SET_VERSION_MASK): OnMethod(ClientSession._set_version_mask),
    (ClientState.MINING, RECONNECT): OnMethod(ClientSession._reconnect),
    (ClientState.MINING, SHOW_MESSAGE): OnMethod(ClientSession._show_message),
    (ClientState.MINING, GET_VERSION): OnMethod(ClientSession._get_version),
    (ClientState.MINING, PING): OnMethod(ClientSession._ping),
    (ClientState.MINING, UNKNOWN): OnMethod(ClientSession._unknown),
    (ClientState.MINING, CONFIGURE_RESULT): OnResult(ClientSession._configured),
    (ClientState.MINING, SUBSCRIBE_RESULT): _ANSWERED,
    (ClientState.MINING, AUTHORIZE_GRANTED): _ANSWERED,
    (ClientState.MINING, AUTHORIZE_REFUSED): _ANSWERED,
    (ClientState.MINING, SUGGEST_DIFFICULTY_RESULT): OnResult(ClientSession._request_answered),
    (ClientState.MINING, EXTRANONCE_SUBSCRIBE_RESULT): OnResult(ClientSession._request_answered),
    (ClientState.MINING, SUBMIT_RESULT): OnResult(ClientSession._share_answered),
    (ClientState.MINING, STRAY_RESPONSE): Disregard(),
    (ClientState.MINING, START): _STARTED,
    (ClientState.MINING, CLOSE): OnCall(None, ClientState.CLOSED),
    # CLOSED: closed by us; closing again is harmless
    (ClientState.CLOSED, NOTIFY): _CLOSED,
    (ClientState.CLOSED, SET_DIFFICULTY): _CLOSED,
    (ClientState.CLOSED, SET_EXTRANONCE): _CLOSED,
    (ClientState.CLOSED, SET_VERSION_MASK): _CLOSED,
    (ClientState.CLOSED, RECONNECT): _CLOSED,
    (ClientState.CLOSED, SHOW_MESSAGE): _CLOSED,
    (ClientState.CLOSED, GET_VERSION): _CLOSED,
    (ClientState.CLOSED, PING): _CLOSED,
    (ClientState.CLOSED, UNKNOWN): _CLOSED,
    (ClientState.CLOSED, CONFIGURE_RESULT): _CLOSED,
    (ClientState.CLOSED, SUBSCRIBE_RESULT): _CLOSED,
    (ClientState.CLOSED, AUTHORIZE_GRANTED): _CLOSED,
    (ClientState.CLOSED, AUTHORIZE_REFUSED): _CLOSED,
    (ClientState.CLOSED, SUGGEST_DIFFICULTY_RESULT): _CLOSED,
    (ClientState.CLOSED, EXTRANONCE_SUBSCRIBE_RESULT): _CLOSED,
    (ClientState.CLOSED, SUBMIT_RESULT): _CLOSED,
    (ClientState.CLOSED, STRAY_RESPONSE): _CLOSED,
    (ClientState.CLOSED, START): _CLOSED,
    (ClientState.CLOSED, CLOSE): OnCall(None),
}

"""The miner side of one Stratum V1 connection, sans-IO: bytes in, events out, bytes to send.

What it is: the protocol state of one connection to a pool. :meth:`ClientSession.start` queues the
handshake (``mining.configure`` for BIP310 version rolling, ``mining.subscribe``, ``mining.authorize``;
after a successful authorize ``mining.suggest_difficulty`` and ``mining.extranonce.subscribe``).
:meth:`receive_data` parses newline-framed JSON and returns typed events; :meth:`submit` queues a share;
:meth:`data_to_send` drains what must be written. Semantics kept from the field:

- ``mining.set_difficulty`` applies from the *next* ``mining.notify`` (cgminer, docs.miners.tools); every
  :class:`~pithead.stratum.v1.work.Work` carries the difficulty in force when its job arrived.
- ``mining.set_extranonce`` likewise applies to the next job; ``mining.set_version_mask`` applies at once
  (BIP310) and re-issues the current job with the new mask.
- the 6th submit param (version bits) is sent only when version rolling was negotiated.
- server requests ``mining.ping`` and ``client.get_version`` are answered; unknown requests get error 20.

What it is not: sockets, timers, reconnect policy or hashing (see ``connection.py`` and
:mod:`pithead.miner`). Nothing here reads the clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pithead.stratum.v1.errors import PoolProtocolViolation, SessionClosed, TooManyPending
from pithead.stratum.v1.work import (
    MAX_EXTRANONCE1_BYTES,
    MAX_EXTRANONCE2_SIZE,
    U32_MAX,
    Job,
    Share,
    Work,
)

#: One JSON line from the pool. A notify with a large coinbase and a full branch is a few kB; 256 KiB
#: bounds what a broken or hostile pool can make us buffer before a newline.
MAX_LINE_BYTES: Final = 256 * 1024
#: Requests awaiting a reply. Submits are the only steady source; a pool that stops answering 1024 of
#: them is dead, and the shell reconnects rather than queue without bound.
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
#: Stratum error code "other/unknown" (Miningcore, public-pool, NOMP).
ERR_OTHER: Final = 20


class State(enum.Enum):
    NEW = "new"
    HANDSHAKE = "handshake"  # configure/subscribe/authorize sent
    MINING = "mining"  # subscribed and authorized
    CLOSED = "closed"


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
class Authorized:
    worker: str


@dataclass(frozen=True, slots=True)
class AuthorizationFailed:
    worker: str
    reason: str


@dataclass(frozen=True, slots=True)
class NewWork:
    """Mine this now. ``clean``: drop work (and unsent shares) of earlier jobs."""

    work: Work
    clean: bool


@dataclass(frozen=True, slots=True)
class DifficultyChanged:
    difficulty: float  # applies from the next job


@dataclass(frozen=True, slots=True)
class ExtranonceChanged:
    extranonce1: bytes
    extranonce2_size: int  # applies from the next job


@dataclass(frozen=True, slots=True)
class ShareAccepted:
    share: Share


@dataclass(frozen=True, slots=True)
class ShareRejected:
    share: Share
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
    | Authorized
    | AuthorizationFailed
    | NewWork
    | DifficultyChanged
    | ExtranonceChanged
    | ShareAccepted
    | ShareRejected
    | ReconnectRequested
    | PoolMessage
    | RequestFailed
)


def describe_error(error: Any) -> tuple[int | None, str]:
    """A Stratum error in any of the forms pools send: ``[code, msg, data]``, ``{code, message}``, text."""
    if isinstance(error, list) and error:
        code = error[0] if isinstance(error[0], int) and not isinstance(error[0], bool) else None
        msg = error[1] if len(error) > 1 and isinstance(error[1], str) else str(error[0])
        return code, msg
    if isinstance(error, dict):
        raw_code = error.get("code")
        text = str(error.get("message", error.get("msg", "")))
        return (raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None), text
    return None, str(error)


@dataclass(slots=True)
class _Pending:
    method: str
    share: Share | None = None


@dataclass(slots=True)
class ClientSession:
    """One connection's protocol state (see the module docstring)."""

    config: ClientConfig
    state: State = State.NEW
    extranonce1: bytes = b""
    extranonce2_size: int = 0
    difficulty: float = 1.0  # Stratum's default until the first set_difficulty
    version_mask: int = 0  # negotiated; 0 = no version rolling
    authorized: bool = False
    subscribed: bool = False
    current_work: Work | None = None
    _pending_difficulty: float | None = None
    _pending_extranonce: tuple[bytes, int] | None = None
    _early_job: Job | None = None  # a notify that arrived before the subscribe result
    _generation: int = 0
    _next_id: int = 1
    _pending: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    _inbuf: bytearray = field(default_factory=bytearray)
    _outbuf: bytearray = field(default_factory=bytearray)

    # ------------------------------------------------------------------------------------- outgoing

    def _request(self, method: str, params: list[Any], share: Share | None = None) -> int:
        if self.state is State.CLOSED:
            raise SessionClosed("the session is closed")
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            raise TooManyPending(f"{len(self._pending)} requests unanswered")
        rid = self._next_id
        self._next_id += 1
        self._pending[rid] = _Pending(method, share)
        self._outbuf += orjson.dumps({"id": rid, "method": method, "params": params}) + b"\n"
        return rid

    def _reply(self, rid: Any, result: Any, error: Any = None) -> None:
        self._outbuf += orjson.dumps({"id": rid, "result": result, "error": error}) + b"\n"

    def start(self) -> None:
        """Queue the handshake: configure (BIP310 says first), subscribe, authorize."""
        if self.state is not State.NEW:
            raise SessionClosed("start() is called once per session")
        self.state = State.HANDSHAKE
        if self.config.version_rolling:
            self._request(
                "mining.configure",
                [["version-rolling"], {"version-rolling.mask": f"{self.config.version_mask & U32_MAX:08x}"}],
            )
        self._request("mining.subscribe", [self.config.user_agent])
        self._request("mining.authorize", [self.config.username, self.config.password])

    def submit(self, share: Share) -> int:
        """Queue ``mining.submit`` for a share; returns its request id."""
        return self._request("mining.submit", share.submit_params(self.config.username), share)

    def data_to_send(self) -> bytes:
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def close(self) -> None:
        self.state = State.CLOSED

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------------------------- incoming

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes from the pool; returns the events of every complete line.

        Raises PoolProtocolViolation for bad framing or JSON, or malformed params of a message the
        miner cannot go on without (notify, subscribe result); the shell then drops the connection.
        """
        if self.state is State.CLOSED:
            raise SessionClosed("the session is closed")
        self._inbuf += data
        events: list[ClientEvent] = []
        while True:
            nl = self._inbuf.find(b"\n")
            if nl < 0:
                if len(self._inbuf) > MAX_LINE_BYTES:
                    raise PoolProtocolViolation(f"line longer than {MAX_LINE_BYTES} bytes")
                return events
            if nl > MAX_LINE_BYTES:
                raise PoolProtocolViolation(f"line longer than {MAX_LINE_BYTES} bytes")
            line = bytes(self._inbuf[:nl]).strip()
            del self._inbuf[: nl + 1]
            if line:
                events.extend(self._handle_line(line))

    def _handle_line(self, line: bytes) -> list[ClientEvent]:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PoolProtocolViolation(f"not JSON: {line[:80]!r}") from exc
        if not isinstance(msg, dict):
            raise PoolProtocolViolation("a Stratum message is a JSON object")
        method = msg.get("method")
        if isinstance(method, str):
            params = msg.get("params", [])
            if not isinstance(params, list):
                raise PoolProtocolViolation(f"{method}: params must be a list")
            return self._handle_method(msg.get("id"), method, params)
        if "id" in msg and ("result" in msg or "error" in msg):
            return self._handle_response(msg.get("id"), msg.get("result"), msg.get("error"), msg)
        raise PoolProtocolViolation("message is neither a request/notification nor a response")

    # server → client methods

    def _handle_method(self, rid: Any, method: str, params: list[Any]) -> list[ClientEvent]:
        handler = _METHODS.get(method)
        if handler is None:
            if rid is not None:
                self._reply(rid, None, [ERR_OTHER, f"unsupported method {method[:64]}", None])
            return []
        return handler(self, rid, params)

    def _on_notify(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        job = Job.from_notify(params)
        if not self.subscribed:
            # No extranonce1 yet, so no header can be built: keep the newest job for when it comes.
            self._early_job = job
            return []
        return self._issue(job)

    def _issue(self, job: Job) -> list[ClientEvent]:
        events: list[ClientEvent] = []
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
        events.append(NewWork(work, clean))
        return events

    def _make_work(self, job: Job) -> Work:
        self._generation += 1
        return Work(job, self.extranonce1, self.extranonce2_size, self.difficulty, self.version_mask, self._generation)

    def _on_set_difficulty(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        diff = _difficulty(params[0] if params else None)
        self._pending_difficulty = diff
        return [DifficultyChanged(diff)]

    def _on_set_extranonce(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        if len(params) < 2:
            raise PoolProtocolViolation("mining.set_extranonce needs [extranonce1, extranonce2_size]")
        en1, size = _extranonce(params[0], params[1])
        self._pending_extranonce = (en1, size)
        if rid is not None:
            self._reply(rid, True)
        return [ExtranonceChanged(en1, size)]

    def _on_set_version_mask(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        mask = _mask(params[0] if params else None, "mining.set_version_mask")
        # The pool may only narrow what we offered; never roll bits we did not ask for.
        self.version_mask = mask & self.config.version_mask if self.config.version_rolling else 0
        events: list[ClientEvent] = [VersionRollingNegotiated(bool(self.version_mask), self.version_mask)]
        if self.current_work is not None:
            # BIP310: effective immediately, so re-issue the current job under the new mask.
            self.current_work = self._make_work(self.current_work.job)
            events.append(NewWork(self.current_work, False))
        return events

    def _on_reconnect(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        host = params[0] if len(params) > 0 and isinstance(params[0], str) and params[0] else None
        port: int | None = None
        if len(params) > 1 and params[1] not in (None, ""):
            try:
                port = int(params[1])
            except (TypeError, ValueError) as exc:
                raise PoolProtocolViolation("client.reconnect: port must be a number") from exc
            if not 0 <= port < 65536:
                raise PoolProtocolViolation("client.reconnect: port out of range")
            port = port or None  # 0 means "the same port", as an empty value does
        wait = 0.0
        if len(params) > 2:
            try:
                wait = min(max(float(params[2]), 0.0), MAX_RECONNECT_WAIT)
            except (TypeError, ValueError) as exc:
                raise PoolProtocolViolation("client.reconnect: wait must be a number") from exc
        return [ReconnectRequested(host, port, wait)]

    def _on_show_message(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        text = str(params[0]) if params else ""
        return [PoolMessage(text[:MAX_MESSAGE_CHARS])]

    def _on_get_version(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        if rid is not None:
            self._reply(rid, self.config.user_agent)
        return []

    def _on_ping(self, rid: Any, params: list[Any]) -> list[ClientEvent]:
        if rid is not None:
            self._reply(rid, "pong")
        return []

    # responses to our requests

    def _handle_response(self, rid: Any, result: Any, error: Any, msg: dict[str, Any]) -> list[ClientEvent]:
        if not isinstance(rid, int) or isinstance(rid, bool):
            return []  # not one of ours (ids are ints we chose)
        pending = self._pending.pop(rid, None)
        if pending is None:
            return []  # late or duplicate reply
        method = pending.method
        if method == "mining.submit":
            assert pending.share is not None
            if error is None and result is True:
                return [ShareAccepted(pending.share)]
            code, reason = describe_error(error) if error is not None else (None, "rejected")
            if isinstance(msg.get("reject-reason"), str):  # ckpool's extra field, cgminer reads it
                reason = msg["reject-reason"]
            return [ShareRejected(pending.share, code, reason)]
        if method == "mining.configure":
            return [self._on_configure_result(result, error)]
        if method == "mining.subscribe":
            return self._on_subscribe_result(result, error)
        if method == "mining.authorize":
            if error is None and result is True:
                self.authorized = True
                self._after_authorize()
                if self.subscribed:
                    self.state = State.MINING
                return [Authorized(self.config.username)]
            _code, reason = describe_error(error) if error is not None else (None, "refused")
            return [AuthorizationFailed(self.config.username, reason)]
        if error is not None:
            return [RequestFailed(method, describe_error(error)[1])]
        return []

    def _on_configure_result(self, result: Any, error: Any) -> VersionRollingNegotiated:
        enabled = False
        mask = 0
        if error is None and isinstance(result, dict) and result.get("version-rolling") is True:
            try:
                mask = _mask(result.get("version-rolling.mask"), "version-rolling.mask") & self.config.version_mask
            except PoolProtocolViolation:
                mask = 0
            enabled = mask != 0
        self.version_mask = mask
        return VersionRollingNegotiated(enabled, mask)

    def _on_subscribe_result(self, result: Any, error: Any) -> list[ClientEvent]:
        if error is not None or not isinstance(result, list) or len(result) < 3:
            raise PoolProtocolViolation(f"mining.subscribe failed: {describe_error(error)[1] if error else result!r}")
        en1, size = _extranonce(result[1], result[2])
        self.extranonce1, self.extranonce2_size = en1, size
        self.subscribed = True
        if self.authorized:
            self.state = State.MINING
        events: list[ClientEvent] = [Subscribed(en1, size)]
        if self._early_job is not None:
            job, self._early_job = self._early_job, None
            events.extend(self._issue(job))
        return events

    def _after_authorize(self) -> None:
        if self.config.suggest_difficulty is not None:
            self._request("mining.suggest_difficulty", [self.config.suggest_difficulty])
        if self.config.extranonce_subscribe:
            self._request("mining.extranonce.subscribe", [])


def _difficulty(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PoolProtocolViolation(f"difficulty must be a number, got {value!r}")
    diff = float(value)
    if not MIN_DIFFICULTY <= diff <= MAX_DIFFICULTY:
        raise PoolProtocolViolation(f"difficulty {diff!r} out of range")
    return diff


def _extranonce(en1: Any, size: Any) -> tuple[bytes, int]:
    if not isinstance(en1, str) or len(en1) > 2 * MAX_EXTRANONCE1_BYTES:
        raise PoolProtocolViolation("extranonce1 must be a short hex string")
    try:
        raw = bytes.fromhex(en1)
    except ValueError as exc:
        raise PoolProtocolViolation("extranonce1 is not hex") from exc
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_EXTRANONCE2_SIZE:
        raise PoolProtocolViolation(f"extranonce2_size must be an integer in 0..{MAX_EXTRANONCE2_SIZE}")
    return raw, size


def _mask(value: Any, what: str) -> int:
    if not isinstance(value, str) or not 0 < len(value) <= 8:
        raise PoolProtocolViolation(f"{what} must be up to 8 hex digits")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise PoolProtocolViolation(f"{what} is not hex") from exc


_METHODS = {
    "mining.notify": ClientSession._on_notify,
    "mining.set_difficulty": ClientSession._on_set_difficulty,
    "mining.set_extranonce": ClientSession._on_set_extranonce,
    "mining.set_version_mask": ClientSession._on_set_version_mask,
    "client.reconnect": ClientSession._on_reconnect,
    "client.show_message": ClientSession._on_show_message,
    "client.get_version": ClientSession._on_get_version,
    "mining.ping": ClientSession._on_ping,
}

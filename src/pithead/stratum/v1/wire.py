"""Stratum V1 on the wire, for both sides: line framing, message shapes, encoders and decoders (sans-IO).

What it is: `LineFramer` splits a byte stream into bounded lines (the bound is a parameter: a pool reads
miners' short requests, a client reads a pool's long notifies — `MAX_LINE_FROM_MINER`,
`MAX_LINE_FROM_POOL`). `decode` validates one line field by field into a typed message, whichever side
reads it: a `Request` (it has a method: a call, or a notification when its id is null) or a `Response`
(a result or an error for something sent, the error in one shape whatever form the peer used, plus the
extra field real pools add: ckpool's `reject-reason`). `encode_*` produce the exact bytes either side
sends: replies always carry `"error": null` on success and `[code, message, null]` on failure. The method
names, the field decoders of V1's params (`parse_hex32`, `parse_hex_bytes`, `parse_submit`: strict hex,
digits only, bounded) and the shape of a
`mining.configure` version-rolling answer are here too, so the pool, the client and a proxy speak one
vocabulary.

What it is not: a session. It knows no state and no method semantics (those are the transition tables
of `pithead.stratum.v1.pool` and `pithead.stratum.v1.client`), and it never touches a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from pithead.stratum.share import Submission
from pithead.stratum.v1.errors import ProtocolViolation, StratumError
from pithead.stratum.version import VersionRollingAnswer

MAX_LINE_FROM_MINER = 16 * 1024
"""Longest line a pool accepts from a miner. Real requests are < 1 KiB (a submit is ~200 bytes, a
configure with all extensions ~300); 16 KiB leaves room for odd user agents while bounding memory per
connection."""

MAX_LINE_FROM_POOL = 256 * 1024
"""Longest line a client accepts from a pool. A notify with a large coinbase and a full merkle branch is a
few kB; 256 KiB bounds what a broken or hostile pool can make us buffer before a newline."""

MAX_ID_LENGTH = 64
"""A string request id longer than this is junk, not an id (ids are echoed back, so they are bounded)."""

MAX_METHOD_LENGTH = 64
"""The longest method name is 27 characters (mining.extranonce.subscribe); a longer one is junk."""

MAX_JOB_ID_LENGTH = 64
"""Longest job id accepted in a submit: ours are a few hex digits, and ids are echoed into the ledger."""

MAX_EXTRANONCE2_BYTES = 16
"""Longest extranonce2 accepted before the size check (cgminer allows 16 at subscribe; ours is <= 8)."""

MAX_WORKER_NAME = 128
"""Longest worker name accepted in a submit (names are echoed into stats and the ledger)."""

# --- method names ---------------------------------------------------------------------------------------
# miner → pool
CONFIGURE = "mining.configure"
SUBSCRIBE = "mining.subscribe"
AUTHORIZE = "mining.authorize"
SUGGEST_DIFFICULTY = "mining.suggest_difficulty"
EXTRANONCE_SUBSCRIBE = "mining.extranonce.subscribe"
SUBMIT = "mining.submit"
# pool → miner
NOTIFY = "mining.notify"
SET_DIFFICULTY = "mining.set_difficulty"
SET_EXTRANONCE = "mining.set_extranonce"
SET_VERSION_MASK = "mining.set_version_mask"
RECONNECT = "client.reconnect"
SHOW_MESSAGE = "client.show_message"
GET_VERSION = "client.get_version"
# either way
PING = "mining.ping"

JsonId = int | str | None


# --- message shapes ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A call with a method (a notification when `id` is None), in either direction."""

    id: JsonId
    method: str
    params: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ReplyError:
    """A failure as a peer reported it, in one shape: the standard `[code, message, data]`, the
    `{code, message}` some pools send, or bare text (then `code` is None)."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to a request we sent: no method, a result, and an error (None on success)."""

    id: JsonId
    result: Any
    error: ReplyError | None
    reject_reason: str | None = None  # ckpool's extra field beside a rejected share (cgminer shows it)

    @property
    def ok(self) -> bool:
        """`result: true` without an error: how a pool accepts an authorize or a share."""
        return self.error is None and self.result is True


Message = Request | Response


# --- framing ---------------------------------------------------------------------------------------------


class LineFramer:
    """Accumulates received bytes and yields complete lines, refusing any line longer than `max_line`.

    The partial line kept between reads is at most `max_line` bytes too, so this bound is also what the
    framer holds per connection."""

    __slots__ = ("_buf", "max_line")

    def __init__(self, max_line: int) -> None:
        self._buf = b""
        self.max_line = max_line

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete lines (without terminators, blank lines dropped).

        Raises ProtocolViolation when a line, or the partial line held for the next read, exceeds
        `max_line`; the connection should then be closed (the stream can no longer be framed safely)."""
        buf = self._buf + data if self._buf else data
        parts = buf.split(b"\n")
        tail = parts.pop()
        if len(tail) > self.max_line:
            self._buf = b""
            raise ProtocolViolation(f"line longer than {self.max_line} bytes")
        self._buf = tail
        lines = []
        for p in parts:
            if len(p) > self.max_line:
                raise ProtocolViolation(f"line longer than {self.max_line} bytes")
            p = p.strip()
            if p:
                lines.append(p)
        return lines


# --- decoding --------------------------------------------------------------------------------------------


def _check_id(v: Any) -> JsonId:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v  # type: ignore[no-any-return]
    if isinstance(v, str) and len(v) <= MAX_ID_LENGTH:
        return v
    raise ProtocolViolation("id must be an integer, a short string or null")


def _reply_error(error: Any) -> ReplyError:
    """A failure in any of the forms pools send: ``[code, msg, data]``, ``{code, message}``, text."""
    if isinstance(error, list) and error:
        code = error[0] if isinstance(error[0], int) and not isinstance(error[0], bool) else None
        msg = error[1] if len(error) > 1 and isinstance(error[1], str) else str(error[0])
        return ReplyError(code, msg)
    if isinstance(error, dict):
        raw_code = error.get("code")
        text = str(error.get("message", error.get("msg", "")))
        return ReplyError(raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None, text)
    return ReplyError(None, str(error))


def decode(line: bytes | str) -> Message:
    """One JSON line → Request or Response, validated field by field (ProtocolViolation if malformed)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ProtocolViolation("not valid JSON") from exc
    if not isinstance(obj, dict):
        raise ProtocolViolation("a message must be a JSON object")
    msg_id = _check_id(obj.get("id"))
    method = obj.get("method")
    if method is None:
        if "result" in obj or "error" in obj:
            error = obj.get("error")
            reject_reason = obj.get("reject-reason")
            return Response(
                msg_id,
                obj.get("result"),
                None if error is None else _reply_error(error),
                reject_reason if isinstance(reject_reason, str) else None,
            )
        raise ProtocolViolation("message has neither a method nor a result")
    if not isinstance(method, str) or not method or len(method) > MAX_METHOD_LENGTH:
        raise ProtocolViolation("method must be a short non-empty string")
    params = obj.get("params", [])
    if params is None:
        params = []
    if isinstance(params, dict):  # a few clients send named params; keep the values in order
        params = [params]
    if not isinstance(params, list):
        raise ProtocolViolation("params must be a list")
    return Request(msg_id, method, tuple(params))


_HEX = re.compile(r"[0-9a-fA-F]*")
"""Hex digits and nothing else: `int(x, 16)` also takes signs, a 0x prefix, underscores and spaces ("-1",
"+1", "0x1", " 1", "1_0"), `bytes.fromhex` spaces; no Stratum field has any of them."""


def hex_text(value: object, what: str, min_digits: int, max_digits: int) -> str:
    """`value` if it is a string of `min_digits`..`max_digits` hex digits (only [0-9a-fA-F]), else a
    ProtocolViolation naming the field."""
    if not isinstance(value, str) or not min_digits <= len(value) <= max_digits or _HEX.fullmatch(value) is None:
        span = f"{max_digits}" if min_digits == max_digits else f"{min_digits}..{max_digits}"
        raise ProtocolViolation(f"{what} must be {span} hex digits, got {_shown(value)}")
    return value


def parse_hex_bytes(value: object, what: str, max_bytes: int, *, min_bytes: int = 0,
                    exact: int | None = None) -> bytes:
    """A hex string of whole bytes (an even number of hex digits) → bytes, within the bounds."""
    lo, hi = (exact, exact) if exact is not None else (min_bytes, max_bytes)
    text = hex_text(value, what, 2 * lo, 2 * hi)
    if len(text) % 2:
        raise ProtocolViolation(f"{what} must be whole bytes (an even number of hex digits), got {_shown(value)}")
    return bytes.fromhex(text)


def parse_hex32(value: object, what: str, *, exact: bool = False) -> int:
    """A big-endian hex u32 as Stratum sends it: 1..8 hex digits, short strings left-padded (NerdMiner sends
    nonces unpadded), or exactly 8 with `exact`; anything else (a sign, a prefix, spaces) is a violation."""
    return int(hex_text(value, what, 8 if exact else 1, 8), 16)


def _shown(value: object) -> str:
    """A field's value in an error message, bounded (errors are echoed to the peer and logged)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_submit(params: tuple[object, ...]) -> Submission:
    """Validate `mining.submit` params into a Submission, or raise ProtocolViolation naming the field.

    5 or 6 params; nonce, ntime and version bits are big-endian hex (hex digits only: no sign, prefix or
    space), short ones left-padded as NerdMiner sends them. extranonce2 is only bounded here: its exact size is a share-check rule (a reject, not a
    violation)."""
    if len(params) not in (5, 6):
        raise ProtocolViolation("mining.submit takes 5 or 6 params")
    worker, job_id, en2_hex, ntime_hex, nonce_hex = params[:5]
    if not isinstance(worker, str) or len(worker) > MAX_WORKER_NAME:
        raise ProtocolViolation("worker name must be a short string")
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_JOB_ID_LENGTH:
        raise ProtocolViolation("job id must be a short non-empty string")
    en2 = parse_hex_bytes(en2_hex, "extranonce2", MAX_EXTRANONCE2_BYTES, min_bytes=1)
    ntime = parse_hex32(ntime_hex, "ntime")
    nonce = parse_hex32(nonce_hex, "nonce")
    vbits = parse_hex32(params[5], "version bits") if len(params) == 6 else None
    return Submission(worker, job_id, en2, ntime, nonce, vbits)


# --- encoding --------------------------------------------------------------------------------------------


def version_rolling_result(answer: VersionRollingAnswer) -> dict[str, object]:
    """The `version-rolling` fields of a `mining.configure` result (BIP310)."""
    if not answer.enabled:
        return {"version-rolling": False}
    return {"version-rolling": True, "version-rolling.mask": f"{answer.mask:08x}"}


def encode_result(msg_id: JsonId, result: Any) -> bytes:
    return orjson.dumps({"id": msg_id, "result": result, "error": None}) + b"\n"


def encode_error(msg_id: JsonId, error: StratumError, reject_reason: bool = False) -> bytes:
    """A failure reply. `reject_reason` (rejected shares) adds ckpool's `"reject-reason"` field with the
    message: cgminer-derived firmware shows it beside the reject (cgminer.c reads it); other miners ignore
    an extra field."""
    if reject_reason:
        return orjson.dumps({"id": msg_id, "result": None, "error": error.wire(),
                             "reject-reason": error.message}) + b"\n"
    return orjson.dumps({"id": msg_id, "result": None, "error": error.wire()}) + b"\n"


def encode_notification(method: str, params: list[Any] | tuple[Any, ...]) -> bytes:
    return orjson.dumps({"id": None, "method": method, "params": params}) + b"\n"


def encode_request(msg_id: JsonId, method: str, params: list[Any] | tuple[Any, ...]) -> bytes:
    return orjson.dumps({"id": msg_id, "method": method, "params": params}) + b"\n"

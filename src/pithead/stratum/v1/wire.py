"""Newline-delimited JSON-RPC framing and message shapes for Stratum V1 (sans-IO, orjson).

What it is: `LineBuffer` splits a byte stream into bounded lines; `decode` validates one line field by
field into a `Request` (has a method) or a `ClientResponse` (an answer to something we sent);
`encode_*` produce the exact bytes we send. What it is not: it knows no Stratum method semantics
(that is `session`), and it never touches a socket.

Replies always carry `"error": null` on success and `[code, message, null]` on failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pithead.stratum.v1.errors import ProtocolViolation, StratumError

MAX_LINE_BYTES = 16 * 1024
"""Longest request line accepted. Real requests are < 1 KiB (a submit is ~200 bytes, a configure with
all extensions ~300); 16 KiB leaves room for odd user agents while bounding memory per connection."""

MAX_BUFFERED_BYTES = 64 * 1024
"""Most unparsed bytes held per connection (several pipelined lines); beyond this the peer is flooding."""

MAX_ID_LENGTH = 64
"""A string request id longer than this is junk, not an id (ids are echoed back, so they are bounded)."""

JsonId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """A client → server call (or notification when id is None)."""

    id: JsonId
    method: str
    params: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ClientResponse:
    """A client's answer to a server request (e.g. client.get_version); carries no method."""

    id: JsonId
    result: Any
    error: Any


Message = Request | ClientResponse


class LineBuffer:
    """Accumulates received bytes and yields complete lines, refusing over-long lines and floods."""

    __slots__ = ("_buf", "max_buffered", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES, max_buffered: int = MAX_BUFFERED_BYTES) -> None:
        self._buf = b""
        self.max_line = max_line
        self.max_buffered = max_buffered

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete lines (without terminators, blank lines dropped).

        Raises ProtocolViolation when a line exceeds `max_line` or the partial tail exceeds the buffer
        bound; the connection should then be closed (the stream can no longer be framed safely)."""
        buf = self._buf + data if self._buf else data
        if len(buf) > self.max_buffered and b"\n" not in buf[-self.max_buffered :]:
            raise ProtocolViolation("too many buffered bytes without a newline")
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


def _check_id(v: Any) -> JsonId:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v  # type: ignore[no-any-return]
    if isinstance(v, str) and len(v) <= MAX_ID_LENGTH:
        return v
    raise ProtocolViolation("id must be an integer, a short string or null")


def decode(line: bytes | str) -> Message:
    """One JSON line → Request or ClientResponse, validated field by field."""
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
            return ClientResponse(msg_id, obj.get("result"), obj.get("error"))
        raise ProtocolViolation("message has neither a method nor a result")
    if not isinstance(method, str) or not method or len(method) > 64:
        raise ProtocolViolation("method must be a short non-empty string")
    params = obj.get("params", [])
    if params is None:
        params = []
    if isinstance(params, dict):  # a few clients send named params; keep the values in order
        params = [params]
    if not isinstance(params, list):
        raise ProtocolViolation("params must be a list")
    return Request(msg_id, method, tuple(params))


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


def encode_request(msg_id: int, method: str, params: list[Any]) -> bytes:
    return orjson.dumps({"id": msg_id, "method": method, "params": params}) + b"\n"

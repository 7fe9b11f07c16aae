"""The simulated devices' HTTP/1.1 server codec (h11 frames the requests) and server-side HTTP Digest auth
(RFC 7616, MD5, qop=auth).

Why not uvicorn/starlette here: the simulator serves tens of thousands of *addresses* from one listening
socket and dispatches on each connection's destination address; an ASGI app per device would cost far
more memory and CPU than this. h11, the sans-IO HTTP/1.1 state machine the embedded node's RPC server uses
too, does the framing (bare-LF lines, keep-alive, pipelined requests, chunked bodies, the RFC's strictness:
a HTTP/1.1 request without `Host` is a 400, as on the node); this module adds the bounds a device has and
hands the device a complete request. Responses are written with `Content-Length` (`build_response`).

Every bound is a named constant; a violation becomes an `HttpError` with the status to send.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import h11

# A request head (request line + headers) larger than this is not a farm tool; nginx's default is 8 KiB.
MAX_HEAD_BYTES = 8192
# Headers per request: httpx sends ~8; 64 leaves room and bounds the dict we build.
MAX_HEADERS = 64
# Largest body we accept (a settings PATCH or set_miner_conf POST is well under 4 KiB); AxeOS's own
# server refuses bodies over a few KiB too.
MAX_BODY_BYTES = 64 * 1024
# Requests served on one keep-alive connection before we close it (bounds one client's hold on us).
MAX_REQUESTS_PER_CONNECTION = 100

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class HttpError(Exception):
    """A request that cannot be served; `status` is what to answer before closing."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # path + query as sent
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    body: bytes
    keep_alive: bool

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None


class HttpRequestParser:
    """Feed bytes, get complete requests. Raises `HttpError` on malformed or oversized input.

    One h11 connection per request: h11 pauses after a complete request until a response is sent through
    it, and the simulator writes its own; the bytes h11 held back (a pipelined next request) start the next
    one, so nothing a client sent is lost or read twice."""

    __slots__ = ("_body", "_conn", "_fresh", "_head")

    def __init__(self) -> None:
        self._conn = _connection()
        self._fresh = True  # nothing of the next request yet: blank lines before it are skipped
        self._head: h11.Request | None = None
        self._body = bytearray()

    def _receive(self, data: bytes) -> None:
        if self._fresh:  # RFC 9112 §2.2: ignore empty lines before a request line (a CRLF after a body)
            data = data.lstrip(b"\r\n")
            self._fresh = not data
        if data:
            self._conn.receive_data(data)

    def feed(self, data: bytes) -> list[HttpRequest]:
        self._receive(data)
        out: list[HttpRequest] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                hint = exc.error_status_hint
                raise HttpError(hint if hint in (413, 431) else 400, str(exc) or "bad request") from exc
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return out
            if event is h11.PAUSED:  # one request done: the next starts in what h11 held back
                rest, closed = self._conn.trailing_data
                self._conn, self._fresh = _connection(), True
                self._receive(bytes(rest))
                if closed:
                    self._conn.receive_data(b"")
            elif isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_BODY_BYTES:
                    raise HttpError(413, "body too large")
            elif isinstance(event, h11.EndOfMessage):
                out.append(self._finish())

    def _start(self, event: h11.Request) -> None:
        if len(event.headers) > MAX_HEADERS:
            raise HttpError(431, "too many headers")
        target = event.target.decode("latin-1")
        if not target.startswith("/"):
            raise HttpError(400, "bad request target")
        for name, value in event.headers:
            if name == b"content-length" and int(value) > MAX_BODY_BYTES:
                raise HttpError(413, "body too large")
        self._head = event
        self._body = bytearray()

    def _finish(self) -> HttpRequest:
        head = self._head
        assert head is not None  # h11 gives EndOfMessage only after a Request
        self._head = None
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
        conn = ",".join(v for k, v in headers if k == "connection").lower()
        version = head.http_version
        keep = (version == b"1.1" and "close" not in conn) or (version == b"1.0" and "keep-alive" in conn)
        return HttpRequest(head.method.decode("ascii").upper(), head.target.decode("latin-1"), headers,
                           bytes(self._body), keep)


def _connection() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)


def build_response(
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    extra_headers: tuple[tuple[str, str], ...] = (),
    keep_alive: bool = True,
) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    if body or status not in (204,):
        head.append(f"Content-Type: {content_type}")
    head.append(f"Content-Length: {len(body)}")
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head.extend(f"{k}: {v}" for k, v in extra_headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------------------------------------- digest

NONCE_BUCKET_S = 300  # a nonce stays valid for 5–10 minutes (current and previous bucket)


class DigestAuthority:
    """Stateless server side of HTTP Digest (MD5, qop=auth), as stock Antminer lighttpd does it.

    Nonces are an HMAC of a coarse time bucket under a per-process secret, so no per-client state is
    kept for tens of thousands of devices. Replay protection (nonce-count tracking) is deliberately not
    implemented: this authenticates simulated devices on loopback, it does not protect anything.
    """

    __slots__ = ("_ha1", "_realm", "_secret", "_user")

    def __init__(self, realm: str, user: str, password: str, secret: bytes | None = None) -> None:
        self._realm = realm
        self._user = user
        self._secret = secret or os.urandom(16)
        self._ha1 = digest_ha1(user, realm, password)

    def _nonce(self, bucket: int) -> str:
        return hmac.new(self._secret, str(bucket).encode(), hashlib.sha256).hexdigest()[:32]

    def challenge(self, now: float) -> str:
        nonce = self._nonce(int(now // NONCE_BUCKET_S))
        return f'Digest realm="{self._realm}", qop="auth", nonce="{nonce}", algorithm=MD5'

    def verify(self, method: str, header: str | None, now: float) -> bool:
        if not header or not header[:7].lower() == "digest ":
            return False
        params = _parse_auth_params(header[7:])
        if params is None:
            return False
        if params.get("username") != self._user or params.get("realm") != self._realm:
            return False
        bucket = int(now // NONCE_BUCKET_S)
        nonce = params.get("nonce", "")
        if not any(hmac.compare_digest(nonce, self._nonce(b)) for b in (bucket, bucket - 1)):
            return False
        qop = params.get("qop")
        if qop not in (None, "auth"):
            return False
        expect = digest_response(
            self._ha1,
            nonce,
            method,
            params.get("uri", ""),
            qop,
            params.get("nc", ""),
            params.get("cnonce", ""),
        )
        return hmac.compare_digest(params.get("response", ""), expect)


def digest_ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def digest_response(
    ha1: str, nonce: str, method: str, uri: str, qop: str | None, nc: str, cnonce: str
) -> str:
    """RFC 2617 §3.2.2.1 request-digest (MD5): with qop=auth, MD5(HA1:nonce:nc:cnonce:auth:HA2)."""
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    if qop == "auth":
        return hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()


def _parse_auth_params(s: str) -> dict[str, str] | None:
    """Parse `k="v", k2=v2` (quoted strings may contain commas)."""
    out: dict[str, str] = {}
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " ,":
            i += 1
        if i >= n:
            break
        eq = s.find("=", i)
        if eq < 0:
            return None
        key = s[i:eq].strip().lower()
        i = eq + 1
        if i < n and s[i] == '"':
            j = i + 1
            buf = []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(s[j])
                j += 1
            if j >= n:
                return None
            out[key] = "".join(buf)
            i = j + 1
        else:
            j = s.find(",", i)
            j = n if j < 0 else j
            out[key] = s[i:j].strip()
            i = j
        if len(out) > 16:
            return None
    return out

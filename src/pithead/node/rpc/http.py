"""The embedded node's HTTP/1.1 server for JSON-RPC: h11 frames the bytes, a thin asyncio shell reads,
bounds and writes, and the request rules are Bitcoin Core's (httpserver.cpp, httprpc.cpp).

Why h11 and not starlette + uvicorn: h11 is the sans-IO HTTP/1.1 state machine (the farm's AxeOS client
uses it too), so every framing rule (bare-LF line endings, pipelining, chunked bodies, 100-continue,
keep-alive) is a well-tested library's, while the shell keeps what an ASGI server would hide: the
credentials are checked from the request head *before* the body is read, the ephemeral port is known to
in-process callers at once, and a clean close drops idle keep-alive connections immediately.

Lenient where Core (libevent) is lenient: lines ending in a bare LF, keep-alive, pipelined requests
(answered in order), `Expect: 100-continue`, chunked request bodies. Strict where it must be, each bound
a named constant below:
- a request head is bounded (MAX_HEADER_BYTES), and so is its body (MAX_BODY_BYTES: a declared length
  over it is answered 413 before a byte of the body is read; a chunked body is cut off when it passes it);
- the credentials are checked on the request head: a request that fails them never has its body read
  (401, and the connection closes when a body was announced);
- connections that have not yet authenticated have a budget of their own (MAX_PENDING_CONNECTIONS: a new
  connection closes the oldest of them) and a short deadline (PENDING_TIMEOUT_S), so idle or slow
  unauthenticated sockets, however many, never lock out a client that has the password;
- authenticated connections are bounded (MAX_AUTHENTICATED_CONNECTIONS) and closed after IDLE_TIMEOUT_S
  without a request (Core's -rpcservertimeout);
- requests in progress are bounded (WORK_QUEUE_DEPTH, Core's -rpcworkqueue: 503 "Work queue depth
  exceeded" when full), counted only once a request has authenticated.

Routes, as Core registers its handlers: `/` and `/wallet/NAME` (NAME URL-decoded, handed to the handler);
anything else 404. JSON-RPC takes POST only (405 "JSONRPC server handles only POST requests"). Replies
carry Content-Type, Date and Content-Length as libevent's do, with the status's standard reason phrase.

On purpose unlike Core: a HTTP/1.1 request without `Host` is refused (400), as RFC 9112 requires and h11
enforces (every client we know sends one); an HTTP/1.0 client's connection closes after each reply (h11
does not keep HTTP/1.0 connections alive); Core looks at its work queue before the credentials, this
server after them, so an unauthenticated flood can never fill it.

Not here: the JSON-RPC layer (server.py), checking credentials (the caller's `authorize`), TLS (Core has
none either).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple, NoReturn
from urllib.parse import unquote

import h11

from pithead.bitcoind.codes import (
    HTTP_BAD_METHOD,
    HTTP_NOT_FOUND,
    HTTP_SERVICE_UNAVAILABLE,
    HTTP_UNAUTHORIZED,
)
from pithead.chain.block import MAX_BLOCK_WEIGHT

log = logging.getLogger(__name__)

HTTP_PAYLOAD_TOO_LARGE = 413  # what libevent answers to a request over its size limits
MAX_HEADER_BYTES = 8 * 1024  # request line and headers together: Core's MAX_HEADERS_SIZE (httpserver.cpp)
# Bytes per read of a body. A request head is read MAX_HEADER_BYTES at a time, so what a refused request
# makes the server read is one head read (plus LINGER_BYTES dropped); asyncio's stream buffer holds at
# most twice this per connection before it stops reading the socket.
READ_CHUNK = 64 * 1024
MAX_BLOCK_SERIALIZED_SIZE = MAX_BLOCK_WEIGHT  # the largest block: all witness bytes, 1 WU each (BIP141)
BODY_ENVELOPE_BYTES = 1024 * 1024  # JSON around the hex and room for a few more parameters
# The largest legitimate request is a submitblock (or a getblocktemplate proposal) of the largest block:
# 4,000,000 bytes of block are 8,000,000 hex digits. Core bounds a request by MAX_SIZE (32 MiB); nothing a
# pool or a wallet sends needs more than this, and memory per request stays at a quarter of Core's bound.
MAX_BODY_BYTES = 2 * MAX_BLOCK_SERIALIZED_SIZE + BODY_ENVELOPE_BYTES
# A connection that has not authenticated must send a complete request head with valid credentials
# within this time after it connects (a real client sends its request at once), or it is closed.
PENDING_TIMEOUT_S = 5.0
# Connections that have not (yet) authenticated: a new one closes the oldest beyond this many, so they
# cost a small, fixed number of sockets and can never crowd out a client with the password.
MAX_PENDING_CONNECTIONS = 32
IDLE_TIMEOUT_S = 30.0  # Core's -rpcservertimeout default: an idle authenticated connection, a stalled read
MAX_AUTHENTICATED_CONNECTIONS = 128  # pools, wallets, dashboards: each holds a few keep-alive sockets
WORK_QUEUE_DEPTH = 64  # requests in progress at once (long-polls included): Core 29's -rpcworkqueue
AUTH_FAILURE_DELAY_S = 0.25  # Core sleeps 250 ms after a wrong password to slow down guessing
CLOSE_GRACE_S = 0.5  # on close, requests in progress get this long to answer before connections drop
# After an early reply that closes the connection (the body left unread), read and drop at most this much
# for at most this long before closing, so the client reads the reply instead of a TCP reset.
LINGER_BYTES = 64 * 1024
LINGER_S = 1.0
WWW_AUTHENTICATE = b'Basic realm="jsonrpc"'  # Core's WWW_AUTH_HEADER_DATA
JSON_CONTENT_TYPE = b"application/json"
TEXT_CONTENT_TYPE = b"text/html; charset=ISO-8859-1"  # libevent's default for a body without a type
WALLET_PREFIX = "/wallet/"  # Core's wallet endpoint (RegisterHTTPHandler("/wallet/", false, ...))
ONLY_POST = b"JSONRPC server handles only POST requests"  # Core's 405 body
WORK_QUEUE_FULL = b"Work queue depth exceeded"  # Core's 503 body

#: The JSON-RPC layer: (request body, wallet named by a /wallet/NAME URI or None) → (status, reply body).
Handler = Callable[[bytes, "str | None"], Awaitable[tuple[int, bytes]]]


class Route(NamedTuple):
    """The JSON-RPC endpoint a request target names: `/` (wallet None) or `/wallet/NAME`."""

    wallet: str | None


def route(target: str) -> Route | None:
    """Core's handler lookup: exactly `/`, or anything under `/wallet/` (the rest URL-decoded as the
    wallet's name, Core's GetWalletNameFromJSONRPCRequest); None for any other target (404)."""
    if target == "/":
        return Route(None)
    if target.startswith(WALLET_PREFIX):
        return Route(unquote(target[len(WALLET_PREFIX) :]))
    return None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


@dataclass
class HttpCounters:
    """What the server has done, for tests and logs: bytes read off sockets, and refusals by kind."""

    bytes_received: int = 0
    evicted: int = 0  # unauthenticated connections closed to admit a newer one
    timed_out: int = 0
    too_large: int = 0
    unauthorized: int = 0
    busy: int = 0  # 503: work queue full or too many authenticated connections


@dataclass(eq=False)
class _Conn:
    """One client connection: its task (to cancel), writer (to abort) and whether it authenticated."""

    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    authenticated: bool = False
    watchdog: asyncio.Timeout | None = None  # armed while the connection waits to read


class _Close(Exception):
    """The connection ends here (a reply that closes it was sent, or the peer went away)."""


def _declares_body(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and int(value) > 0:
            return True
    return False


def _declared_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked that it is a decimal number
    return None


def _header(request: h11.Request, name: bytes) -> str | None:
    for k, v in request.headers:
        if k == name:
            return v.decode("latin-1")
    return None


_REASONS = {int(s): s.phrase.encode() for s in HTTPStatus}


class _DateHeader:
    """The Date header's value, formatted once a second (formatting it for every reply costs more than
    the rest of a small reply)."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


class HttpRpcServer:
    """Serves `handler` over HTTP/1.1 on (host, port), with `authorize` checking each request's
    Authorization header (None when absent) before its body is read."""

    def __init__(
        self,
        handler: Handler,
        authorize: Callable[[str | None], bool],
        host: str,
        port: int,
        *,
        work_queue_depth: int = WORK_QUEUE_DEPTH,
        max_pending: int = MAX_PENDING_CONNECTIONS,
        max_authenticated: int = MAX_AUTHENTICATED_CONNECTIONS,
    ) -> None:
        self.handler = handler
        self.authorize = authorize
        self.host = host
        self.port = port
        self.work_queue_depth = work_queue_depth
        self.max_pending = max_pending
        self.max_authenticated = max_authenticated
        self.counters = HttpCounters()
        self._server: asyncio.Server | None = None
        # insertion order is arrival order: the first pending connection is the oldest, evicted first
        self._pending: dict[asyncio.Task[None], _Conn] = {}
        self._authenticated: dict[asyncio.Task[None], _Conn] = {}
        self._in_progress = 0
        self._closing = False
        self._date = _DateHeader()

    @property
    def connections(self) -> tuple[int, int]:
        """(unauthenticated, authenticated) connections open now."""
        return len(self._pending), len(self._authenticated)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=READ_CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop accepting, let requests in progress answer briefly, then drop every connection. Aborting the
        transports (not only cancelling) ends keep-alive loops even where a cancellation would race with a
        completed read."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        conns = {**self._pending, **self._authenticated}
        if conns:
            await asyncio.wait(list(conns), timeout=CLOSE_GRACE_S)
        for task, conn in list({**self._pending, **self._authenticated}.items()):
            conn.writer.transport.abort()
            task.cancel()
        remaining = list({**self._pending, **self._authenticated})
        if remaining:
            await asyncio.wait(remaining, timeout=CLOSE_GRACE_S)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # --- connections ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(task, writer)
        if self._closing:
            writer.transport.abort()
            return
        while len(self._pending) >= self.max_pending:
            self._evict_oldest_pending()
        self._pending[task] = conn
        try:
            await self._session(reader, writer, conn)
        except TimeoutError:
            self.counters.timed_out += 1
        except (_Close, ConnectionError, h11.ProtocolError):
            pass
        except asyncio.CancelledError:
            # Only close() and eviction cancel connection tasks; the task ends here (start_server's
            # callback would otherwise report the cancellation as an error).
            pass
        except Exception:  # a bug in one request drops that connection, never the server
            log.exception("HTTP connection failed")
        finally:
            self._pending.pop(task, None)
            self._authenticated.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _evict_oldest_pending(self) -> None:
        task, conn = next(iter(self._pending.items()))
        del self._pending[task]
        self.counters.evicted += 1
        conn.writer.transport.abort()
        task.cancel()

    def _admit(self, conn: _Conn) -> bool:
        """Move a connection that has just authenticated to the authenticated set; False when full."""
        if conn.authenticated:
            return True
        if len(self._authenticated) >= self.max_authenticated:
            return False
        self._pending.pop(conn.task, None)
        self._authenticated[conn.task] = conn
        conn.authenticated = True
        return True

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn) -> None:
        """Requests one after another on one connection (keep-alive, pipelined) until it closes."""
        loop = asyncio.get_running_loop()
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        pending_deadline = loop.time() + PENDING_TIMEOUT_S
        # One timeout for the connection's life, armed only while it waits to read (cheaper than a
        # timeout per read); when it fires, the session ends with TimeoutError.
        async with asyncio.timeout(None) as conn.watchdog:
            while not self._closing:
                deadline = loop.time() + IDLE_TIMEOUT_S if conn.authenticated else pending_deadline
                try:
                    event = await self._next_event(h, reader, writer, conn, deadline, MAX_HEADER_BYTES)
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    if status == 431:  # a head over MAX_HEADER_BYTES: libevent's answer is 413
                        self.counters.too_large += 1
                        status = HTTP_PAYLOAD_TOO_LARGE
                    await self._refuse(h, reader, writer, status)
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    raise _Close
                await self._request(h, reader, writer, conn, event)
                if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                    return
                h.start_next_cycle()

    async def _next_event(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: _Conn,
        deadline: float,
        chunk: int = READ_CHUNK,
    ) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        """The next event (never NEED_DATA, though h11's sentinels are types that mypy cannot narrow by
        `is`), reading (at most `chunk` bytes at a time) until `deadline` when h11 needs data.
        Heads are read MAX_HEADER_BYTES at a time: h11 bounds what it buffers of an incomplete head, and a
        small read makes sure a head over the bound is never seen complete."""
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            if h.they_are_waiting_for_100_continue:
                await self._write(writer, h.send(h11.InformationalResponse(status_code=100, headers=[])))
            assert conn.watchdog is not None
            conn.watchdog.reschedule(deadline)
            data = await reader.read(chunk)
            conn.watchdog.reschedule(None)
            self.counters.bytes_received += len(data)
            h.receive_data(data)  # b"" at the end of the stream: h11 turns it into ConnectionClosed

    # --- one request ---

    async def _request(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: _Conn,
        request: h11.Request,
    ) -> None:
        """Answer one request, in Core's order of checks: size, route, method, credentials, work queue;
        the body is read only once all of them passed."""
        has_body = _declares_body(request)
        length = _declared_length(request)
        if length is not None and length > MAX_BODY_BYTES:
            self.counters.too_large += 1
            await self._refuse(h, reader, writer, HTTP_PAYLOAD_TOO_LARGE)
        endpoint = route(request.target.decode("latin-1"))
        if endpoint is None:
            await self._early_reply(h, reader, writer, has_body, HTTP_NOT_FOUND)
            return
        if request.method != b"POST":
            text = b"" if request.method == b"HEAD" else ONLY_POST  # a reply to HEAD has no body
            await self._early_reply(h, reader, writer, has_body, HTTP_BAD_METHOD, text)
            return
        authorization = _header(request, b"authorization")
        if not self.authorize(authorization):
            self.counters.unauthorized += 1
            if authorization is not None:
                await asyncio.sleep(AUTH_FAILURE_DELAY_S)
            extra = [(b"WWW-Authenticate", WWW_AUTHENTICATE)]
            await self._early_reply(h, reader, writer, has_body, HTTP_UNAUTHORIZED, extra=extra)
            return
        if not self._admit(conn) or self._in_progress >= self.work_queue_depth:
            self.counters.busy += 1
            await self._early_reply(h, reader, writer, has_body, HTTP_SERVICE_UNAVAILABLE, WORK_QUEUE_FULL)
            return
        self._in_progress += 1
        try:
            body = await self._read_body(h, reader, writer, conn)
            status, payload = await self.handler(body, endpoint.wallet)
        finally:
            self._in_progress -= 1
        await self._reply(h, writer, status, payload, JSON_CONTENT_TYPE, close=self._closing)

    async def _read_body(
        self, h: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> bytes:
        """The whole body (at most MAX_BODY_BYTES: beyond it 413 and the connection closes)."""
        loop = asyncio.get_running_loop()
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(h, reader, writer, conn, loop.time() + IDLE_TIMEOUT_S)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    self.counters.too_large += 1
                    await self._refuse(h, reader, writer, HTTP_PAYLOAD_TOO_LARGE)
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:  # the peer closed in the middle of its body
                raise _Close

    # --- replies ---

    async def _early_reply(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        has_body: bool,
        status: int,
        body: bytes = b"",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """A reply given without reading the request's body: the connection stays open only when there
        is no body to skip."""
        if has_body:
            await self._refuse(h, reader, writer, status, body, extra)
        await self._reply(h, writer, status, body, TEXT_CONTENT_TYPE, close=False, extra=extra)

    async def _refuse(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes = b"",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> NoReturn:
        """Reply and end the connection (raises _Close): the rest of the request is never read. The
        write side is shut first and a little of what the client still sends is dropped (LINGER_*), so
        that it reads the reply rather than a reset."""
        with contextlib.suppress(h11.LocalProtocolError):
            await self._reply(h, writer, status, body, TEXT_CONTENT_TYPE, close=True, extra=extra)
            if writer.can_write_eof():
                writer.write_eof()
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(LINGER_S):
                    dropped = 0
                    while dropped < LINGER_BYTES:
                        data = await reader.read(min(READ_CHUNK, LINGER_BYTES - dropped))
                        if not data:
                            break
                        dropped += len(data)
                        self.counters.bytes_received += len(data)
        raise _Close

    async def _reply(
        self,
        h: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: bytes,
        *,
        close: bool,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers: list[tuple[bytes, bytes]] = []
        if body:
            headers.append((b"Content-Type", content_type))
        headers.append((b"Date", self._date.value()))
        if status != HTTPStatus.NO_CONTENT:
            headers.append((b"Content-Length", b"%d" % len(body)))
        if close:
            headers.append((b"Connection", b"close"))
        headers.extend(extra or ())
        out = [h.send(h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b"")))]
        if body:
            out.extend(h.send_with_data_passthrough(h11.Data(data=body)) or ())
        out.append(h.send(h11.EndOfMessage()))
        await self._write(writer, b"".join(b for b in out if b))  # one write: one segment for small replies

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes | None) -> None:
        if data:
            writer.write(data)
        if writer.transport.get_write_buffer_size():  # what the socket did not take at once
            async with asyncio.timeout(IDLE_TIMEOUT_S):  # a client that does not read its replies is dropped
                await writer.drain()

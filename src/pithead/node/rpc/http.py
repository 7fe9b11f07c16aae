"""A small asyncio HTTP/1.1 server for JSON-RPC, the way Bitcoin Core's httpserver behaves.

Why not starlette + uvicorn: the node needs exactly one endpoint (POST with basic auth), keep-alive,
long-polls held open for minutes, an ephemeral port reported back to in-process callers, and a clean
close that drops idle keep-alive connections at once; a hundred lines of asyncio give all of that with no
ASGI layer in the way and start instantly inside tests.

What it does: one request at a time per connection (HTTP/1.1 keep-alive, no pipelining), POST only (405
otherwise, as Core), `Authorization: Basic` checked by the caller's `authorize` (401 with
`WWW-Authenticate: Basic realm="jsonrpc"` otherwise), bodies bounded by MAX_BODY_BYTES, headers by
MAX_HEADER_BYTES, and an idle timeout. Not here: chunked request bodies, TLS (Core has neither).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pithead.bitcoind.codes import HTTP_BAD_METHOD, HTTP_BAD_REQUEST, HTTP_UNAUTHORIZED

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024  # request line + headers; Core's libevent limit is 8 KiB per header line
MAX_BODY_BYTES = 32 * 1024 * 1024  # Core's MAX_SIZE for HTTP bodies: a 4 MWU block as hex fits easily
IDLE_TIMEOUT_S = 30.0  # Core's -rpcservertimeout default is 30 s
AUTH_FAILURE_DELAY_S = 0.25  # Core sleeps 250 ms after a wrong password to slow down guessing
CLOSE_GRACE_S = 0.5  # on close, requests in progress get this long to answer before connections drop
MAX_CONNECTIONS = 64  # Core's -rpcthreads/-rpcworkqueue bound concurrent work; we bound sockets

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

Handler = Callable[[bytes], Awaitable[tuple[int, bytes]]]


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


class HttpRpcServer:
    def __init__(
        self, handler: Handler, authorize: Callable[[str | None], bool], host: str, port: int
    ) -> None:
        self.handler = handler
        self.authorize = authorize
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop accepting, let requests in progress answer briefly, then drop every connection. Aborting the
        transports (not only cancelling) ends keep-alive loops even where a cancellation would race with a
        completed read."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=CLOSE_GRACE_S)
        for task, writer in list(self._conns.items()):
            writer.transport.abort()
            task.cancel()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=CLOSE_GRACE_S)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            if len(self._conns) > MAX_CONNECTIONS or self._closing:
                await self._reply(writer, 503, b"", close=True)
                return
            while not self._closing and await self._one(reader, writer):
                pass
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
        ):
            pass
        except asyncio.CancelledError:
            # Only close() cancels connection tasks; the task ends here (start_server's callback would
            # otherwise report the cancellation as an error).
            pass
        except Exception:  # a bug in one request drops that connection, never the server
            log.exception("HTTP connection failed")
        finally:
            self._conns.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False to close the connection."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self._reply(writer, HTTP_BAD_REQUEST, b"", close=True)
            return False
        method, _, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            await self._reply(writer, 413 if length > 0 else HTTP_BAD_REQUEST, b"", close=True)
            return False
        if headers.get("expect", "").lower() == "100-continue" and length:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for this before large bodies
            await writer.drain()
        body = b""
        if length:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                body = await reader.readexactly(length)
        if not self.authorize(headers.get("authorization")):
            if "authorization" in headers:
                await asyncio.sleep(AUTH_FAILURE_DELAY_S)
            await self._reply(
                writer,
                HTTP_UNAUTHORIZED,
                b"",
                close=not keep_alive,
                extra=b'WWW-Authenticate: Basic realm="jsonrpc"\r\n',
            )
            return keep_alive
        if method != "POST":
            await self._reply(
                writer, HTTP_BAD_METHOD, b"JSONRPC server handles only POST requests", close=True
            )
            return False
        status, payload = await self.handler(body)
        keep_alive = keep_alive and not self._closing
        await self._reply(writer, status, payload, close=not keep_alive)
        return keep_alive

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, status: int, body: bytes, *, close: bool, extra: bytes = b""
    ) -> None:
        head = (
            (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Length: {len(body)}\r\n"
                + ("Content-Type: application/json\r\n" if body[:1] in (b"{", b"[") else "")
                + ("Connection: close\r\n" if close else "")
            ).encode()
            + extra
            + b"\r\n"
        )
        writer.write(head + body)
        await writer.drain()

"""Real receivers on loopback for the notifier's tests: an HTTP server for apprise's json:// and form://
webhooks (which can fail, hang or answer as told) and an SMTP server (aiosmtpd) for mailto://; and a
`Recorder`, the `NoticeSink` the parts' tests hand them to see what they raise.

The HTTP receiver is a small HTTP/1.1 server on `asyncio.start_server`, on the test's own event loop: it
reads each request (request line, headers, a Content-Length body), records it, and answers 200 (or 500 for
the first `fail_first` requests; or nothing at all while `hang` is set, holding the connection open until
`release()`). Waits are on conditions with generous bounds, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from pithead.events import Notice

WAIT_S = 30.0  # generous: two shared cores
POLL_S = 0.02  # how often `until` looks again


async def until(condition: Any, timeout_s: float = WAIT_S) -> None:
    """Wait until `condition()` holds, looking every POLL_S, at most `timeout_s` (then TimeoutError)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"the condition did not hold within {timeout_s:g} s")
        await asyncio.sleep(POLL_S)


class Recorder:
    """A `NoticeSink` that keeps what it is told (from any thread, as the ledger's worker threads call it)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self._lock = threading.Lock()

    def notify(self, notice: Notice) -> None:
        with self._lock:
            self.notices.append(notice)

    def of(self, kind: str) -> list[Notice]:
        with self._lock:
            return [n for n in self.notices if n.kind == kind]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class HttpReceiver:
    fail_first: int = 0  # answer 500 to this many requests, then 200
    hang: bool = False  # read each request and never answer, until release()
    requests: list[Request] = field(default_factory=list)  # every request read, answered or not
    answered: list[Request] = field(default_factory=list)  # those answered 200
    port: int = 0
    _server: asyncio.Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0  # connections held open without an answer right now

    async def start(self) -> HttpReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        self.hang = False
        self._released.set()

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def until(self, condition: Any, timeout_s: float = WAIT_S) -> None:
        """Wait until `condition()` holds (re-checked on every request), at most `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, value = h.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(method, path, headers, body)
                self.requests.append(request)
                if self.hang:
                    self.holding += 1
                    self._note()
                    await self._released.wait()
                    self.holding -= 1
                    return  # close without an answer
                failing = len(self.requests) <= self.fail_first
                status = b"500 Internal Server Error" if failing else b"200 OK"
                if not failing:
                    self.answered.append(request)
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
                self._note()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class _AnyPortController(Controller):
    """aiosmtpd's Controller on a free port (port 0): its start-up check connects to the port it got."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpReceiver:
    """aiosmtpd on loopback (its own thread and loop): every message it accepted, parsed."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.controller = _AnyPortController(self.mailbox, hostname="127.0.0.1", port=0, ready_timeout=WAIT_S)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?mode=insecure&from=pithead@example.com"
                "&to=ops@example.com")

    def messages(self) -> list[email.message.EmailMessage]:
        with self.mailbox.lock:
            return list(self.mailbox.messages)

    async def until(self, count: int, timeout_s: float = WAIT_S) -> list[email.message.EmailMessage]:
        """Wait until `count` messages arrived (looked at again and again: the server runs in another thread)."""
        await until(lambda: len(self.messages()) >= count, timeout_s)
        return self.messages()

    def stop(self) -> None:
        self.controller.stop()

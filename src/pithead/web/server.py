"""Serves the web app with uvicorn inside the caller's asyncio loop (no extra process, no signal handlers).

`WebServer.start()` binds (port 0 picks a free port, reported by `.port` afterwards) and returns once
the socket listens; `stop()` shuts down gracefully, cutting open Server-Sent Event streams after
`GRACEFUL_S`. With `reuse_port` several processes listen on one port (SO_REUSEPORT: the kernel spreads
new connections over them), as the farm central's ingest workers do. Signal handling is left to the owner (`pithead up`), which stops everything together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

# Seconds an in-flight request (or an open live stream) gets to finish once we stop.
GRACEFUL_S = 2
# How long start() waits for uvicorn to bind before giving up with a clear error.
STARTUP_TIMEOUT_S = 10.0


class WebServerError(RuntimeError):
    """The web server could not start (port taken, bad address)."""


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the owner (`pithead up`) handles signals for every part at
    once. Left in, uvicorn would stop the web server on the first Ctrl-C by itself and, on exit, raise
    the captured signal again, which reads as a second Ctrl-C."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield


class WebServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning",
                 reuse_port: bool = False) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S, loop="none",
        )
        self._server = _Server(config)
        self._app = app
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port
        self.reuse_port = reuse_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self) -> None:
        try:
            if self.reuse_port:
                await self._server.serve(sockets=[self._shared_socket()])
            else:
                await self._server.serve()
        except OSError as exc:
            raise WebServerError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind; we want an error instead
            raise WebServerError(f"cannot listen on {self.host}:{self.port} (address in use?)") from exc

    def _shared_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(False)
        return sock

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="pithead-web")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                if isinstance(exc, WebServerError):
                    raise exc
                raise WebServerError(f"web server did not start on {self.host}:{self.port}: {exc or 'exited'}")
            if loop.time() > deadline:
                await self.stop()
                raise WebServerError(f"web server did not start within {STARTUP_TIMEOUT_S} s")
            await asyncio.sleep(0.02)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                break

    async def stop(self) -> None:
        if self._task is None:
            return
        shutdown = getattr(self._app.state, "shutdown", None)
        if isinstance(shutdown, asyncio.Event):
            shutdown.set()  # live streams end on their own instead of being cut with a traceback
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), GRACEFUL_S + 3.0)
        except (TimeoutError, Exception):
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None


logging.getLogger("uvicorn.error").propagate = True

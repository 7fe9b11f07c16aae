"""A small Chrome DevTools Protocol client for the dashboard tests: Debian's headless Chromium, driven
over its websocket. It never downloads a browser; `find_chromium()` only looks on this machine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
import websockets

from skips import missing

# Debian's package installs /usr/bin/chromium; nothing else is looked for.
CHROMIUM_NAMES = ("chromium", "chromium-browser")
# The launch flags the project allows: headless, sandbox off (root in CI), no network chatter of its own.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
    "--window-size=1400,2200",
)
LAUNCH_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; collects console errors and exceptions."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.proc: asyncio.subprocess.Process | None = None
        self.ws: Any = None
        self.session: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._profile = tempfile.TemporaryDirectory(prefix="pithead-chromium-")
        self.console_errors: list[str] = []
        self.console_messages: list[str] = []

    async def __aenter__(self) -> Browser:
        self.proc = await asyncio.create_subprocess_exec(
            self.executable, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        url = None
        async with asyncio.timeout(LAUNCH_TIMEOUT_S):
            while url is None:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise CdpError("chromium exited before it opened DevTools")
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m:
                    url = m.group(1)
        # Keep draining stderr so the browser never blocks on a full pipe.
        asyncio.get_running_loop().create_task(self._drain())
        self.ws = await websockets.connect(url, max_size=64 * 2**20)
        self._reader = asyncio.create_task(self._read())
        target = await self.call("Target.createTarget", {"url": "about:blank"})
        attached = await self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            await self.call(f"{domain}.enable", session=True)
        return self

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with contextlib.suppress(Exception):
            while await self.proc.stderr.readline():
                pass

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = orjson.loads(raw)
            if "id" in msg:
                fut = self._pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    if "error" in msg:
                        fut.set_exception(CdpError(str(msg["error"])))
                    else:
                        fut.set_result(msg.get("result", {}))
                continue
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                self.console_messages.append(f"{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    self.console_errors.append(text)
            elif method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                self.console_errors.append(str(d.get("exception", {}).get("description") or d.get("text")))
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error":
                    self.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")

    async def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> Any:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self.ws.send(orjson.dumps(msg).decode())
        return await asyncio.wait_for(fut, CALL_TIMEOUT_S)

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", {"url": url}, session=True)

    async def evaluate(self, expression: str) -> Any:
        res = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True
        )
        if "exceptionDetails" in res:
            raise CdpError(f"{expression}: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise CdpError(f"timed out waiting for {expression}; console: {self.console_messages[-10:]}")
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> None:
        res = await self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        await asyncio.to_thread(_write, path, base64.b64decode(res["data"]))

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.call("Browser.close")
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._profile.cleanup()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def require_chromium() -> str:
    """The browser, or a skip listed at the end of the run (only outside CI: CI=true makes a missing
    browser a failure; .ci/run installs it)."""
    path = find_chromium()
    if path is None:
        missing("chromium", "chromium is not installed (apt-get install chromium)")
    return path


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

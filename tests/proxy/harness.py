"""What the proxy's end-to-end tests share: upstream pools (pithead's own, run as `pithead pool` runs them,
and scripted bad ones), the proxy itself, and bounded waits.

- `Upstream`: `pithead.app.pool.serve` (the `pithead pool` profile) on a template source — an embedded
  node, or a hand-fed regtest template with a difficulty-1 target when shares must not be blocks —
  recording every share and block event; `stop()` kills it (its connections close), `restart()` brings
  it back on the same port.
- `FakePool`: a scripted Stratum V1 pool over raw asyncio streams that misbehaves on purpose (garbage,
  an extranonce2 size no machine can use, a mask no machine can roll, silence, dying with shares unanswered);
  its jobs are real (pithead's job book), so the machines' shares are valid.
- `start_proxy`: a `FarmProxy` on loopback in front of given upstreams, with quick health timings.
- `wait_for`: a bounded wait on a condition (never an assertion about speed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from pithead.app.lifecycle import Running
from pithead.app.pool import serve
from pithead.config import PoolConfig
from pithead.events import BlockEvent, ShareEvent
from pithead.proxy.proxy import FarmProxy, ProxySettings, UpstreamSpec
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.v1.jobs import JobBook
from pithead.template.interface import TemplateSource
from stratum.helpers import SOLO_ADDRESS, regtest_template, solo_script

WAIT_S = 30.0
"""Safety net for every wait (a hung proxy fails the test; a slow, loaded machine does not)."""

PROXY_USER = SOLO_ADDRESS + ".farm"
"""The account the proxy mines to upstream (solo pools pay it)."""


async def wait_for(cond: Callable[[], bool], what: str, limit_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class ListSink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)

    @property
    def accepted(self) -> list[ShareEvent]:
        return [e for e in self.events if isinstance(e, ShareEvent) and e.accepted]

    @property
    def rejected(self) -> list[ShareEvent]:
        return [e for e in self.events if isinstance(e, ShareEvent) and not e.accepted]

    @property
    def blocks(self) -> list[BlockEvent]:
        return [e for e in self.events if isinstance(e, BlockEvent)]


class Upstream:
    """A pithead pool, as `pithead pool` runs it (see the module docstring)."""

    def __init__(self, name: str, cfg: PoolConfig, source_factory: Callable[[], TemplateSource | None]) -> None:
        self.name = name
        self.cfg = cfg
        self.source_factory = source_factory
        self.sink = ListSink()
        self.port = 0
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[Running] | None = None

    async def start(self) -> None:
        """Start (or restart, on the same port) and wait until it listens."""
        self._stop = asyncio.Event()
        banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cfg = replace(self.cfg, port=self.port)
        self._task = asyncio.create_task(serve(cfg, self.source_factory(), self.sink, stop=self._stop,
                                               on_listening=banner.set_result))
        done, _ = await asyncio.wait({self._task, banner}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()  # raises what went wrong
        assert banner in done, f"pool {self.name} did not start"
        self.port = int(banner.result().split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])

    async def stop(self) -> None:
        assert self._stop is not None and self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, WAIT_S)

    def spec(self, priority: int) -> UpstreamSpec:
        return UpstreamSpec(self.name, PoolAddress("127.0.0.1", self.port), PROXY_USER, "x", priority)


def upstream_job_params(clean: bool = True, job_id: str = "f00d") -> list[Any]:
    """A real job's notify params (difficulty-1 network target: shares are not blocks)."""
    book = JobBook(mode="pool", pool_script=solo_script(), extranonce2_size=8)
    book.new_template(regtest_template(bits=0x1D00FFFF))
    ij = book.job_for(None)
    assert ij is not None
    params = ij.job.notify_params(clean)
    params[0] = job_id
    return params


class FakePool:
    """A scripted pool (see the module docstring). `behaviour` picks the misbehaviour:

    - "good": answers everything, one job, accepts every share;
    - "garbage": answers the handshake, then sends a line that is not JSON;
    - "huge-extranonce2": subscribe answers an extranonce2_size of 32 (no firmware takes it);
    - "small-extranonce2": subscribe answers 3 (no room for the proxy's tag and the machines' 2 bytes);
    - "odd-mask": configure grants version mask 00000003 (nothing a machine can roll);
    - "silent": accepts the connection and never says anything;
    - "no-answers": handshakes and sends a job, never answers a share;
    - "die-on-submit": handshakes and sends a job, closes the connection when a share comes.
    """

    def __init__(self, behaviour: str, difficulty: float = 1e-6) -> None:
        self.behaviour = behaviour
        self.difficulty = difficulty
        self.port = 0
        self.submits: list[list[Any]] = []
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), WAIT_S)

    def spec(self, name: str, priority: int) -> UpstreamSpec:
        return UpstreamSpec(name, PoolAddress("127.0.0.1", self.port), PROXY_USER, "x", priority)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        b = self.behaviour

        def send(obj: dict[str, Any]) -> None:
            writer.write(orjson.dumps(obj) + b"\n")

        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if b == "silent":
                    continue
                msg = orjson.loads(line)
                method, rid = msg.get("method"), msg.get("id")
                if method == "mining.configure":
                    mask = "00000003" if b == "odd-mask" else "1fffe000"
                    send({"id": rid, "result": {"version-rolling": True, "version-rolling.mask": mask}, "error": None})
                elif method == "mining.subscribe":
                    size = {"huge-extranonce2": 32, "small-extranonce2": 3}.get(b, 8)
                    en1 = f"{self.connections:08x}"
                    send({"id": rid, "result": [[["mining.notify", en1]], en1, size], "error": None})
                elif method == "mining.authorize":
                    send({"id": rid, "result": True, "error": None})
                    send({"id": None, "method": "mining.set_difficulty", "params": [self.difficulty]})
                    send({"id": None, "method": "mining.notify", "params": upstream_job_params()})
                    if b == "garbage":
                        writer.write(b"this is not json\n")
                elif method == "mining.submit":
                    self.submits.append(msg["params"])
                    if b == "die-on-submit":
                        writer.close()
                        return
                    if b != "no-answers":
                        send({"id": rid, "result": True, "error": None})
                elif rid is not None:
                    send({"id": rid, "result": True, "error": None})
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


QUICK = ProxySettings(
    connections_per_upstream=2, tag_bytes=2, extranonce2_size=2, start_difficulty=1e-6, min_difficulty=1e-9,
    share_interval=1000.0, keepalive_interval=30.0, failback_after=1.0, stale_after=120.0, answer_timeout=2.0,
    upstream_timeout=2.0, retry_initial=0.2, retry_max=1.0,
)
"""Proxy settings for tests: health timings of a second or two, vardiff that does not move on its own."""


async def start_proxy(specs: list[UpstreamSpec], settings: ProxySettings = QUICK, **kw: Any) -> FarmProxy:
    proxy = FarmProxy(settings, specs, **kw)
    await proxy.start("127.0.0.1", 0)
    return proxy


async def stop_all(*parts: Any) -> None:
    for part in parts:
        with contextlib.suppress(Exception):
            stop: Callable[[], Awaitable[None]] = part.stop
            await asyncio.wait_for(stop(), WAIT_S)

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
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from pithead.app.lifecycle import Running
from pithead.app.pool import serve
from pithead.config import PoolConfig
from pithead.events import BlockEvent, ShareEvent
from pithead.proxy.proxy import FarmProxy, ProxySettings, UpstreamSpec
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.client.v2 import Sv2PoolAddress, parse_sv2_url
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v2 import cert, noise, secp256k1
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

    def __init__(self, name: str, cfg: PoolConfig, source_factory: Callable[[], TemplateSource | None], *,
                 sv2_key_file: Path | None = None) -> None:
        """`sv2_key_file`: the pool also serves Stratum V2 (on a port of its own), with this authority key."""
        self.name = name
        self.cfg = cfg if sv2_key_file is None else replace(cfg, sv2_port=0, sv2_authority_secret_key_file=str(sv2_key_file))
        self.source_factory = source_factory
        self.sink = ListSink()
        self.port = 0
        self.sv2_url: str | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[Running] | None = None

    async def start(self) -> None:
        """Start (or restart, on the same port) and wait until it listens."""
        self._stop = asyncio.Event()
        banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cfg = replace(self.cfg, port=self.port)
        if self.sv2_url is not None:  # a restart: the same SV2 port too
            cfg = replace(cfg, sv2_port=parse_sv2_url(self.sv2_url).port)
        self._task = asyncio.create_task(serve(cfg, self.source_factory(), self.sink, stop=self._stop,
                                               on_listening=banner.set_result))
        done, _ = await asyncio.wait({self._task, banner}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()  # raises what went wrong
        assert banner in done, f"pool {self.name} did not start"
        text = banner.result()
        self.port = int(text.split("listening on ")[1].split(";")[0].split(",")[0].rsplit(":", 1)[1])
        if self.cfg.sv2_port is not None:
            self.sv2_url = text.split("Stratum V2 on ")[1].split()[0].rstrip(",;")

    async def stop(self) -> None:
        assert self._stop is not None and self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, WAIT_S)

    def spec(self, priority: int) -> UpstreamSpec:
        return UpstreamSpec(self.name, PoolAddress("127.0.0.1", self.port), PROXY_USER, "x", priority)

    def sv2_spec(self, priority: int, authority_key: bytes | None = None) -> UpstreamSpec:
        """The pool's Stratum V2 endpoint as an upstream, pinned to its key (or to `authority_key`)."""
        assert self.sv2_url is not None, "this pool serves no Stratum V2"
        address = parse_sv2_url(self.sv2_url)
        if authority_key is not None:
            address = replace(address, authority_key=authority_key)
        return UpstreamSpec(self.name, address, PROXY_USER, "x", priority)


def sv2_key_file(path: Path) -> tuple[Path, bytes]:
    """A new authority key written as `pithead keys new` writes it; returns (its file, its x-only public key)."""
    secret = secp256k1.new_secret()
    path.write_text(cert.encode_secret_key(secret) + "\n")
    return path, secp256k1.xonly_public(secret)


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


class FakeSv2Pool:
    """A scripted Stratum V2 "pool" that misbehaves on purpose, after (or instead of) a real Noise handshake
    as the responder with `authority_secret`'s certificate. `behaviour`:

    - "garbage": completes the handshake, then sends bytes that do not decrypt;
    - "oversized": completes the handshake, then a frame whose header says 4 MiB (more than any frame a
      pool may send a miner, `framing.MAX_PAYLOAD_FROM_SERVER`);
    - "junk-handshake": answers Act 1 with 234 random bytes (no SV2 server behind the port).
    """

    def __init__(self, behaviour: str, authority_secret: bytes) -> None:
        self.behaviour = behaviour
        self.authority_secret = authority_secret
        self.port = 0
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

    def spec(self, name: str, priority: int) -> UpstreamSpec:
        address = Sv2PoolAddress("127.0.0.1", self.port, authority_key=secp256k1.xonly_public(self.authority_secret))
        return UpstreamSpec(name, address, PROXY_USER, "x", priority)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            act1 = await reader.readexactly(noise.ACT1_SIZE)
            if self.behaviour == "junk-handshake":
                writer.write(os.urandom(234))
            else:
                step = noise.Responder.for_connection(self.authority_secret, int(time.time())).feed(act1)
                assert step.transport is not None
                writer.write(step.send)
                if self.behaviour == "garbage":
                    writer.write(os.urandom(200))
                elif self.behaviour == "oversized":
                    size = 4 << 20
                    header = struct.pack("<HBHB", 0, 0x1F, size & 0xFFFF, size >> 16)
                    writer.write(step.transport.encrypt(header + bytes(size)))
            await writer.drain()
            await reader.read()  # until the proxy hangs up
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

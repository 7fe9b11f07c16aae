"""`pithead bench proxy`: the farm proxy's figures. Prints them; asserts nothing.

The proxy (`pithead.proxy.proxy.FarmProxy`) runs in a child process, alone, so its memory and CPU are its
own. This process plays both sides over loopback: the upstream pools (small scripted Stratum V1 pools,
`_Pool`: they answer the handshake, send one job at a fixed difficulty and accept every share, recording
when each arrives) and the machines (`_Machine`, cheap asyncio protocols that count lines). Figures:

  1. machines held: `--machines` (10,000) machines subscribe and authorize to the proxy and each gets its
     job; the proxy's RSS growth per machine;
  2. shares judged per CPU-second of the proxy process (utime+stime from /proc): `--share-conns`
     machines pipeline `--shares` shares at a difficulty every hash meets (each one hashed and judged in
     full), first on a pool whose difficulty none of them meets (judged only), then on a pool whose
     difficulty all of them meet (judged and forwarded upstream), then on a Stratum V2 pool at that
     difficulty (`_Sv2Pool`: the translator's path, each share forwarded as SubmitSharesExtended over Noise);
  3. the latency the proxy adds to a share: one machine submits one share at a time, and the pool notes
     when the forwarded share arrives; the same share path straight to the pool, without the proxy, is
     the baseline (median and 90th percentile of `--latency-samples` shares, the difference of medians is
     what the proxy adds); and the same through the proxy to the Stratum V2 pool, against the same straight
     V1 baseline (what the translator adds to a machine's share);
  4. failover: the pool every machine mines on is killed (its socket and connections closed); the figure is
     the time until the last machine received its new job from the next pool (this process's clock on both
     ends). The pool is then restarted and the machines moved back with `switch`, for the next run.

Each measured phase runs `--runs` times; best and median are printed. The machine this runs on may be shared
and loaded: the figures are what it gave, and say so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import resource
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from pithead.chain.compact import difficulty_to_target
from pithead.proxy.proxy import FarmProxy, ProxySettings, UpstreamSpec
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.client.v2 import parse_sv2_url
from pithead.stratum.server.loop import run
from pithead.stratum.server.pool import ServerLimits
from pithead.stratum.v2 import cert, noise, secp256k1
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.common import SetupConnection, SetupConnectionSuccess
from pithead.stratum.v2.messages.mining import (
    NewExtendedMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    SetNewPrevHash,
    SubmitSharesExtended,
    SubmitSharesSuccess,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.types import u256_from_int

_NONCES = itertools.count(0x10000000)
"""Latency shares' nonces: never the same twice, so the proxy's duplicate check never refuses one."""
CONNECT_BATCH = 500
"""Machines connecting at once (the listen backlog and the loop both stay comfortable)."""
PIPELINE_WINDOW = 256
"""Outstanding submits per machine in the throughput phase."""
EASY = 1e-12
"""A difficulty every hash meets (its target is capped at 2^256 - 1): shares need no hashing to be valid."""
HARD = 1e12
"""A pool difficulty no share of this bench meets: nothing is forwarded."""
POOL_REFRESH_S = 20.0
"""The scripted pools send a new job this often, as real pools do every 30-60 s: a pool silent for the
proxy's `stale_after` counts as unhealthy, and the bench runs for minutes."""
WAIT_S = 120.0
"""Bound on every wait for the proxy (a stuck run ends with a message, never hangs the bench)."""
TAG_BYTES = 2
"""The proxy's tag width here: 65,536 machines at once, well above the 10,000 goal."""


# --- the pools (this process) ---------------------------------------------------------------------------


def _job_params(job_id: str) -> list[Any]:
    """A notify with a 1-block-sized coinbase and a difficulty-1 network target (shares are not blocks)."""
    coinb1 = bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2003") \
        + (1000).to_bytes(3, "little") + b"/bench/"
    coinb2 = bytes.fromhex("ffffffff0100f2052a010000001600140000000000000000000000000000000000000000") + bytes(4)
    return [job_id, "00" * 32, coinb1.hex(), coinb2.hex(), [], "20000000", "1d00ffff", f"{int(time.time()):08x}",
            True]


class _Pool:
    """A scripted upstream pool (see the module docstring)."""

    def __init__(self, name: str, difficulty: float) -> None:
        self.name = name
        self.difficulty = difficulty
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.arrivals: dict[str, float] = {}  # nonce hex → perf_counter when its submit arrived
        self.submits = 0
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        self._refresher = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(POOL_REFRESH_S)
            n += 1
            params = _job_params(f"{self.name}{n}")
            params[8] = False
            line = orjson.dumps({"id": None, "method": "mining.notify", "params": params}) + b"\n"
            for w in list(self.writers):
                w.write(line)

    def kill(self) -> None:
        """Gone at once: no more connections, every open one aborted."""
        if self.server is not None:
            self.server.close()
        if self._refresher is not None:
            self._refresher.cancel()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        sid = f"{len(self.writers):08x}"
        try:
            while line := await reader.readline():
                msg = orjson.loads(line)
                method, rid = msg.get("method"), msg.get("id")
                if method == "mining.submit":
                    self.arrivals[msg["params"][4]] = time.perf_counter()
                    self.submits += 1
                    writer.write(b'{"id":%s,"result":true,"error":null}\n' % orjson.dumps(rid))
                elif method == "mining.configure":
                    writer.write(orjson.dumps({"id": rid, "error": None, "result": {
                        "version-rolling": True, "version-rolling.mask": "1fffe000"}}) + b"\n")
                elif method == "mining.subscribe":
                    writer.write(orjson.dumps({"id": rid, "error": None,
                                               "result": [[["mining.notify", sid]], sid, 8]}) + b"\n")
                elif method == "mining.authorize":
                    writer.write(orjson.dumps({"id": rid, "error": None, "result": True}) + b"\n")
                    writer.write(orjson.dumps({"id": None, "method": "mining.set_difficulty",
                                               "params": [self.difficulty]}) + b"\n")
                    writer.write(orjson.dumps({"id": None, "method": "mining.notify",
                                               "params": _job_params(self.name)}) + b"\n")
                elif rid is not None:
                    writer.write(orjson.dumps({"id": rid, "error": None, "result": True}) + b"\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


class _Sv2Pool(_Pool):
    """A scripted Stratum V2 pool: a real Noise handshake (a certificate signed by its own authority key),
    then SetupConnection and one extended channel per connection answered at once, a future job and its
    SetNewPrevHash at `difficulty`, a new job every POOL_REFRESH_S, every share acknowledged."""

    def __init__(self, name: str, difficulty: float) -> None:
        super().__init__(name, difficulty)
        self.authority_secret = secp256k1.new_secret()

    @property
    def url_tail(self) -> str:
        return f"{self.port}/{cert.encode_public_key(secp256k1.xonly_public(self.authority_secret))}"

    async def _refresh(self) -> None:
        n = 1
        while True:
            await asyncio.sleep(POOL_REFRESH_S)
            n += 1
            for w in list(self.writers):
                send = getattr(w, "sv2_send", None)
                if send is not None:
                    send(n, int(time.time()))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        channel_id = len(self.writers)
        coinb1, coinb2 = (bytes.fromhex(h) for h in _job_params(self.name)[2:4])
        try:
            step = noise.Responder.for_connection(self.authority_secret, int(time.time())).feed(
                await reader.readexactly(noise.ACT1_SIZE))
            transport = step.transport
            assert transport is not None
            writer.write(step.send)

            def send(*messages: Message) -> None:
                writer.write(b"".join(transport.encrypt(encode_frame(m)) for m in messages))

            def job(job_id: int, ntime: int) -> None:
                send(NewExtendedMiningJob(channel_id, job_id, ntime, 0x20000000, True, (), coinb1, coinb2))

            writer.sv2_send = job  # type: ignore[attr-defined]
            while data := await reader.read(65536):
                for frame in transport.feed(data):
                    msg, _ = decode_frame(frame, protocol=Subprotocol.MINING)
                    if isinstance(msg, SubmitSharesExtended):
                        self.arrivals[f"{msg.nonce:08x}"] = time.perf_counter()
                        self.submits += 1
                        send(SubmitSharesSuccess(channel_id, msg.sequence_number, 1, 1))
                    elif isinstance(msg, SetupConnection):
                        send(SetupConnectionSuccess(2, 0))
                    elif isinstance(msg, OpenExtendedMiningChannel):
                        target = u256_from_int(difficulty_to_target(self.difficulty))
                        send(OpenExtendedMiningChannelSuccess(msg.request_id, channel_id, target, 8,
                                                              channel_id.to_bytes(4, "big"), 0),
                             NewExtendedMiningJob(channel_id, 1, None, 0x20000000, True, (), coinb1, coinb2),
                             SetNewPrevHash(channel_id, 1, bytes(32), int(time.time()), 0x1D00FFFF))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


# --- the machines (this process) ------------------------------------------------------------------------


class _Machine(asyncio.Protocol):
    """A machine that counts replies and remembers its last job and when a job arrived (no JSON parse)."""

    __slots__ = ("_tail", "job_id", "notified_at", "replies", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies = 0
        self.job_id: bytes | None = None
        self.notified_at = 0.0
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._tail + data
        if b"mining.notify" in data:
            self.notified_at = time.perf_counter()
            at = buf.rfind(b'"method":"mining.notify"')
            start = buf.find(b'"params":["', at)
            end = buf.find(b'"', start + 11) if start >= 0 else -1
            if end > 0:
                self.job_id = buf[start + 11 : end]
        self.replies += data.count(b'"result"')
        nl = buf.rfind(b"\n")
        self._tail = buf[nl + 1 :] if nl >= 0 else buf


async def _connect(src: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
        sock.bind((src, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open(port: int, n: int, sources: list[str], user: str) -> list[_Machine]:
    loop = asyncio.get_running_loop()
    hello = (b'{"id":1,"method":"mining.subscribe","params":["bench/1"]}\n'
             b'{"id":2,"method":"mining.authorize","params":["' + user.encode() + b'","x"]}\n')
    machines: list[_Machine] = []

    async def one(i: int) -> None:
        transport, m = await loop.create_connection(_Machine, sock=await _connect(sources[i % len(sources)], port))
        m.transport = transport  # type: ignore[assignment]
        transport.write(hello)
        machines.append(m)

    for start in range(0, n, CONNECT_BATCH):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + CONNECT_BATCH))))
    # a poll over every machine is slow for thousands: look twice a second
    await _until(lambda: sum(1 for m in machines if m.job_id) >= n, "every machine's first job", poll=0.5)
    return machines


def _close(machines: list[_Machine]) -> None:
    for m in machines:
        if m.transport is not None:
            m.transport.close()


async def _until(cond: Callable[[], bool], what: str, poll: float = 0.002) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


# --- the proxy (child process) ---------------------------------------------------------------------------


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def _serve_proxy(upstreams: list[tuple[str, str]]) -> None:
    specs = [UpstreamSpec(name, parse_sv2_url(f"stratum2+tcp://127.0.0.1:{where}") if "/" in where
                          else PoolAddress("127.0.0.1", int(where)), "bench.farm", "x", priority=i)
             for i, (name, where) in enumerate(upstreams)]
    settings = ProxySettings(connections_per_upstream=2, tag_bytes=TAG_BYTES, extranonce2_size=2,
                             start_difficulty=EASY, min_difficulty=EASY, share_interval=1e-9,
                             failback_after=3600.0, retry_initial=0.05, retry_max=0.5,
                             # every machine of the bench comes from loopback: no per-IP bound, no idle drop
                             limits=ServerLimits(max_connections_per_ip=1_000_000, idle_timeout=3600.0))
    proxy = FarmProxy(settings, specs)
    _, port = await proxy.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"port": port})
    while line := await reader.readline():
        cmd, _, arg = line.decode().strip().partition(" ")
        if cmd == "stats":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            snap = proxy.snapshot()
            reply({"rss": _rss(), "cpu": ru.ru_utime + ru.ru_stime, "judged": proxy.server.metrics.shares_judged,
                   "ready": snap["machines"]["ready"], "active": snap["active"],
                   "forwarded": sum(u["shares"]["forwarded"] for u in snap["upstreams"])})
        elif cmd == "switch":
            proxy.switch(arg)
            reply({"active": proxy.book.active})
        elif cmd == "quit":
            break
    await proxy.stop()


class _ProxyChild:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), WAIT_S))  # type: ignore[no-any-return]


# --- the phases ------------------------------------------------------------------------------------------


def _best_median(values: list[float], fmt: str, low_is_best: bool = True) -> str:
    best = min(values) if low_is_best else max(values)
    return f"best {fmt.format(best)}, median {fmt.format(statistics.median(values))} ({len(values)} runs)"


async def _throughput(child: _ProxyChild, port: int, conns: int, shares: int, sources: list[str]) -> float:
    """Shares judged per CPU-second of the proxy for one run."""
    machines = await _open(port, conns, sources, "bench.shares")
    per = shares // conns
    before = await child.ask("stats")

    async def pump(k: int, m: _Machine) -> None:
        assert m.transport is not None and m.job_id is not None
        sent, base = 0, m.replies
        while sent < per:
            while sent - (m.replies - base) >= PIPELINE_WINDOW:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            batch = min(64, per - sent)
            m.transport.write(b"".join(
                b'{"id":%d,"method":"mining.submit","params":["bench.shares","%s","%04x","%08x","%08x"]}\n'
                % (10 + sent + j, m.job_id, k & 0xFFFF, int(time.time()), sent + j) for j in range(batch)))
            sent += batch
        await _until(lambda: m.replies - base >= per, "the replies")

    await asyncio.gather(*(pump(k, m) for k, m in enumerate(machines)))
    after = await child.ask("stats")
    _close(machines)
    judged = after["judged"] - before["judged"]
    cpu = after["cpu"] - before["cpu"]
    return judged / cpu if cpu > 0 else 0.0


async def _latency(port: int, pool: _Pool, samples: int, src: str) -> list[float]:
    """Seconds from a machine's write of a share to the pool's read of it, one share at a time."""
    (m,) = await _open(port, 1, [src], "bench.latency")
    assert m.transport is not None and m.job_id is not None
    out = []
    for i in range(samples):
        nonce = f"{next(_NONCES):08x}"
        base = m.replies
        t0 = time.perf_counter()
        m.transport.write(b'{"id":%d,"method":"mining.submit","params":["bench.latency","%s","0001","%08x","%s"]}\n'
                          % (100 + i, m.job_id, int(time.time()), nonce.encode()))
        await _until(lambda n=nonce, b=base: n in pool.arrivals and m.replies > b, "a share at the pool")  # type: ignore[misc]
        out.append(pool.arrivals[nonce] - t0)
    _close([m])
    return out


async def _failover(machines: list[_Machine], pool: _Pool) -> float:
    """Seconds from `pool` killed to the last machine's new job (from the next pool)."""
    for m in machines:
        m.notified_at = 0.0
    t0 = time.perf_counter()
    pool.kill()
    # the figure comes from each machine's own receipt time; the poll only says when to stop waiting
    await _until(lambda: all(m.notified_at > t0 for m in machines), "every machine's job from the backup", poll=0.1)
    return max(m.notified_at for m in machines) - t0


async def _drive(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    pools = {name: _Pool(name, diff) for name, diff in (("hard", HARD), ("easy", EASY), ("spare", EASY))}
    sv2 = pools["sv2"] = _Sv2Pool("sv2", EASY)
    for p in pools.values():
        await p.start()
    ups = ",".join(f"{name}={p.url_tail if isinstance(p, _Sv2Pool) else p.port}" for name, p in pools.items())
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pithead.bench.proxy", "--child", ups,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    child = _ProxyChild(proc)
    assert proc.stdout is not None
    port = json.loads(await asyncio.wait_for(proc.stdout.readline(), WAIT_S))["port"]
    sources = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
    print(f"pithead bench proxy: proxy pid {proc.pid} on 127.0.0.1:{port}; pools and machines in this process; "
          f"RLIMIT_NOFILE {nofile}; CPUs {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (a shared, "
          "loaded machine gives slower figures than an idle one)")
    try:
        st = await child.ask("stats")
        deadline = time.monotonic() + WAIT_S
        while st["active"] != "hard" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            st = await child.ask("stats")
        # 1. machines held
        n = min(args.machines, max(0, nofile - 200))
        rss0 = st["rss"]
        t0 = time.perf_counter()
        held = await _open(port, n, sources, "bench.held")
        opened = time.perf_counter() - t0
        st = await child.ask("stats")
        print(f"  machines held: {st['ready']} mining in one proxy process (opened with their first job in "
              f"{opened:.1f} s); RSS {st['rss'] / 2**20:.0f} MiB, {(st['rss'] - rss0) / max(1, n) / 1024:.1f} KiB "
              f"per machine")
        # 2. shares judged per CPU-second
        judged_only, judged_forwarded, judged_sv2 = [], [], []
        for _ in range(args.runs):
            await child.ask("switch hard")
            judged_only.append(await _throughput(child, port, args.share_conns, args.shares, sources))
            await child.ask("switch easy")
            judged_forwarded.append(await _throughput(child, port, args.share_conns, args.shares, sources))
            await child.ask("switch sv2")
            judged_sv2.append(await _throughput(child, port, args.share_conns, args.shares, sources))
        print(f"  shares judged per CPU-second of the proxy: {_best_median(judged_only, '{:,.0f}', False)} "
              "(none forwarded)")
        print(f"    judged and forwarded upstream: {_best_median(judged_forwarded, '{:,.0f}', False)}")
        print(f"    judged and forwarded to a Stratum V2 pool (the translator: Noise, one extended channel per "
              f"connection): {_best_median(judged_sv2, '{:,.0f}', False)}")
        # 3. latency added
        direct_ms, proxied_ms, sv2_ms = [], [], []
        for _ in range(args.runs):
            await child.ask("switch easy")
            direct = await _latency(pools["easy"].port, pools["easy"], args.latency_samples, sources[0])
            proxied = await _latency(port, pools["easy"], args.latency_samples, sources[0])
            await child.ask("switch sv2")
            translated = await _latency(port, sv2, args.latency_samples, sources[0])
            direct_ms.append(statistics.median(direct) * 1000)
            proxied_ms.append(statistics.median(proxied) * 1000)
            sv2_ms.append(statistics.median(translated) * 1000)
        added = [p - d for p, d in zip(proxied_ms, direct_ms, strict=True)]
        added_sv2 = [p - d for p, d in zip(sv2_ms, direct_ms, strict=True)]
        print(f"  share to pool, median: straight {_best_median(direct_ms, '{:.3f} ms')}; through the proxy "
              f"{_best_median(proxied_ms, '{:.3f} ms')}")
        print(f"    added by the proxy: {_best_median(added, '{:.3f} ms')}")
        print(f"    through the proxy to a Stratum V2 pool (V1 share in, SubmitSharesExtended out): "
              f"{_best_median(sv2_ms, '{:.3f} ms')}; added over the straight V1 share: "
              f"{_best_median(added_sv2, '{:.3f} ms')}")
        # 4. failover, with every held machine on the active pool
        times = []
        for _ in range(args.runs):
            moved = time.perf_counter()
            await child.ask("switch easy")
            await _until(lambda t=moved: all(m.notified_at > t for m in held), "every machine on easy",  # type: ignore[misc]
                         poll=0.2)
            await asyncio.sleep(0.5)  # settled: the figure is the failover alone
            times.append(await _failover(held, pools["easy"]))
            await pools["easy"].start()  # back, on the same port, for the next run
            await asyncio.sleep(1.0)  # the proxy reconnects (its backoff is short here)
        print(f"  failover of {len(held)} machines (pool killed → last machine on the next pool's job): "
              f"{_best_median(times, '{:.3f} s')}")
        _close(held)
    finally:
        with contextlib.suppress(Exception):
            await child.ask("quit")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
        for p in pools.values():
            p.kill()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pithead bench proxy", description=__doc__.split("\n")[0])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--machines", type=int, default=10_000, help="machines held at once")
    p.add_argument("--shares", type=int, default=100_000, help="shares per throughput run")
    p.add_argument("--share-conns", type=int, default=20, help="machines pipelining shares")
    p.add_argument("--latency-samples", type=int, default=300, help="shares timed one at a time per run")
    p.add_argument("--runs", type=int, default=3, help="runs of each measured phase (best and median printed)")
    p.add_argument("--sources", type=int, default=8, help="127.0.0.x source addresses the machines use")
    args = p.parse_args(argv)
    if args.child is not None:
        raise_nofile()
        logging.basicConfig(level=logging.ERROR)  # the proxy's switches are the bench's doing: not news
        ups = [(name, where) for name, where in (kv.split("=") for kv in args.child.split(","))]
        run(_serve_proxy(ups))
    else:
        run(_drive(args))


if __name__ == "__main__":
    main(sys.argv[1:])

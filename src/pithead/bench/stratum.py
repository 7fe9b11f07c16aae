"""`pithead bench stratum`: the Stratum pool's load generator. Prints figures; asserts nothing.

It starts the pool in a child process (pool mode, a fixed regtest-shaped template with a difficulty-1
network target so shares are not blocks) and drives it from this process over loopback:

  1. share throughput: `--share-conns` connections (20 by default) pipeline low-difficulty shares, each
     with a fresh nonce, so every one is hashed, judged (accepted), counted in the statistics and emitted
     to the ledger queue. Figure: shares judged per CPU-second of the pool process (utime+stime from
     /proc), and per wall-second; and the bytes each share costs on the wire (TCP payload, both ways).
     Then the same over Stratum V2, in the same run against the same pool: the pool's SV2 endpoint beside
     its V1 one (one process only), the same number of connections each with a standard channel, shares
     as encrypted SubmitSharesStandard frames acknowledged in batches. Before that, `--sv2-handshakes`
     Noise handshakes against the live endpoint (a certificate signed per connection, two ElligatorSwift
     ECDHs): handshakes per CPU-second of the pool.
  0. memory of `--sessions` (100,000) READY sessions without sockets, in this process: the Python side of
     100,000 idle miners, which RLIMIT_NOFILE (20,000 here) does not let us open for real;
  2. for each N in `--conns` (1,000 and 10,000 by default): N miners subscribe and authorize and stay
     idle. Figures: connections held, pool RSS growth per connection, and — after the child pushes a new
     block — the time from the template update to the last miner's receipt of its clean notify (this
     side's clock, same machine), plus the pool's own time to write all the notifies.

Both processes raise RLIMIT_NOFILE to the hard limit; connections are spread over several 127.0.0.x
source addresses (`--sources`). The child is controlled through its stdin/stdout with one JSON line per
command (`stats`, `newblock`, `quit`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pithead.chain.address import address_to_script
from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.params import REGTEST
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.config import PoolConfig
from pithead.ledger.bus.memory import MemoryBus
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.server.v2 import Sv2Endpoint
from pithead.stratum.server.workers import WorkerPool
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v1.pool import PoolRules, PoolSession, PoolState
from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.cert import decode_public_key
from pithead.stratum.v2.client import (
    ChannelWork,
    MinerChannelConfig,
    MinerConnection,
    ShareAcknowledged,
    ShareDenied,
    WorkReady,
)
from pithead.template.block_template import BlockTemplate, TemplateTx
from pithead.template.sources.static import StaticTemplateSource

POOL_ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
BENCH_BITS = 0x1D00FFFF  # difficulty-1 network target: the bench's tiny-difficulty shares are not blocks
SHARE_DIFFICULTY = 1e-12  # every hash meets it (target capped at 2^256-1): all shares are accepted
PIPELINE_WINDOW = 256  # outstanding submits per connection in the throughput phase
CONNECT_BATCH = 500  # concurrent connection attempts while opening N miners
SV2_HANDSHAKE_BATCH = 8  # concurrent SV2 handshakes: enough to keep the pool busy, few enough to measure it


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def bench_template(height: int, n_txs: int = 200) -> BlockTemplate:
    txs = []
    for i in range(n_txs):
        prev = OutPoint(sha256d(b"bench" + height.to_bytes(4, "little") + i.to_bytes(4, "little")), 0)
        tx = Transaction(2, (TxIn(prev, b"", 0xFFFFFFFD, (b"\x30" * 71, b"\x02" * 33)),),
                         (TxOut(10_000, bytes.fromhex("0014") + bytes(20)),))
        txs.append(TemplateTx(tx.serialize(), tx.txid(), tx.wtxid(), 500, 1, tx.weight(), ()))
    return BlockTemplate(
        version=0x20000000, prev_hash=sha256d(b"tip" + height.to_bytes(4, "little")), height=height,
        bits=BENCH_BITS, target=bits_to_target(BENCH_BITS), curtime=int(time.time()), mintime=0,
        coinbase_value=50 * 100_000_000 + 500 * n_txs, transactions=tuple(txs), rules=("csv", "!segwit"),
    )


# --- the pool side (child process) -----------------------------------------------------------------------


def _proc_cpu() -> float:
    """This process's CPU seconds, every thread included (the notify fan-out's threads too), in µs."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _pid_rss(pid: int) -> int:
    """RSS bytes of another process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


async def _command_loop(hello: dict[str, Any], stats: Callable[[], Awaitable[dict[str, Any]]],
                        push: Callable[[BlockTemplate], None]) -> None:
    """The child's side of the driver's protocol: `hello` (where it listens) first, then one JSON line per
    command on stdin (`stats`, `newblock`, `quit`), one JSON answer per line on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply(hello)
    height = 1000
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode().strip()
        if cmd == "stats":
            reply(await stats())
        elif cmd == "newblock":
            height += 1
            tpl = bench_template(height)
            t_push = time.time()
            push(tpl)
            reply({"t_push": t_push, "job_height": height})
        elif cmd == "quit":
            break


async def _serve_workers(port: int, workers: int) -> None:
    """The pool as `workers` processes (`pithead pool --workers N`): a supervisor (this process) and its
    workers sharing the port; CPU and RSS are summed over all of them."""

    source = StaticTemplateSource(bench_template(1000))
    cfg = PoolConfig(port=port, mode="pool", pool_address=POOL_ADDRESS, user_rule="any", share_interval=1e9,
                     min_difficulty=SHARE_DIFFICULTY, max_difficulty=SHARE_DIFFICULTY,
                     start_difficulty=SHARE_DIFFICULTY, refresh_interval=3600, max_connections_per_ip=1_000_000,
                     handshake_timeout=3600)
    pool = WorkerPool(cfg, source, MemoryBus("bench"), workers, log_level=30)
    _, bound = await pool.start("127.0.0.1", port)

    async def stats() -> dict[str, Any]:
        await pool.refresh_stats()  # every worker reports now
        cpu, rss = _proc_cpu(), _rss_bytes()
        for w in pool.workers:  # each worker's own getrusage, from the report it just sent
            if w.stats.get("pid"):
                cpu += w.stats.get("cpu", 0.0)
                rss += _pid_rss(w.stats["pid"])
        m = pool.metrics
        return {"cpu": cpu, "rss": rss, "connections": m.connections, "ready": m.ready,
                "shares": m.shares_judged, "accepted": pool.stats.pool.accepted,
                "rejected": dict(pool.stats.pool.rejected), "broadcast_ms": m.last_broadcast_ms,
                "broadcast_end": max((w.stats.get("last_broadcast_at", 0.0) for w in pool.workers), default=0.0),
                "miners": m.last_broadcast_miners}

    def push(tpl: BlockTemplate) -> None:
        source.push(tpl, new_block=True)  # as a node's new tip reaches the supervisor

    await _command_loop({"port": bound}, stats, push)  # no SV2 endpoint with worker processes
    await pool.stop()


async def _serve(port: int) -> None:

    source = StaticTemplateSource(bench_template(1000))
    rules = PoolRules(mode="pool", network=REGTEST, user_rule="any",
                      vardiff=VarDiffConfig(1e9, SHARE_DIFFICULTY, SHARE_DIFFICULTY),
                      start_difficulty=SHARE_DIFFICULTY)
    server = PoolServer(
        rules=rules, source=source, sink=MemoryBus("bench"), pool_script=address_to_script(POOL_ADDRESS, REGTEST),
        refresh_interval=3600, limits=ServerLimits(max_connections_per_ip=1_000_000, handshake_timeout=3600),
    )
    _, bound = await server.start("127.0.0.1", port)
    sv2 = Sv2Endpoint(server, secp256k1.new_secret())
    _, sv2_port = await sv2.start("127.0.0.1", 0)

    async def stats() -> dict[str, Any]:
        ready = sum(1 for c in server.connections if c.session is not None and c.session.state is PoolState.READY)
        m = server.metrics
        return {"cpu": _proc_cpu(), "rss": _rss_bytes(), "connections": len(server.connections), "ready": ready,
                "shares": m.shares_judged, "accepted": server.stats.pool.accepted,
                "rejected": dict(server.stats.pool.rejected), "broadcast_ms": m.last_broadcast_ms,
                "miners": m.last_broadcast_miners, "broadcast_end": m.last_broadcast_at,
                "sv2_handshakes": sv2.metrics.handshakes}

    # what the template consumer does on an update, called at once
    await _command_loop({"port": bound, "sv2_port": sv2_port, "sv2_key": sv2.public_key}, stats,
                        lambda tpl: server.on_template(tpl, new_block=True))
    await sv2.stop()
    await server.stop()


# --- the miner side (this process) ----------------------------------------------------------------------


class _Miner(asyncio.Protocol):
    """A minimal miner: counts reply lines, remembers the last notify's job id and when it arrived."""

    __slots__ = ("_tail", "bytes_in", "job_id", "notified_at", "replies", "transport", "want_clean")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies = 0
        self.bytes_in = 0
        self.job_id: str | None = None
        self.notified_at = 0.0
        self.want_clean = False
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # kept cheap on purpose (no JSON parse): on 2 cores this process's reading competes with the pool
        self.bytes_in += len(data)
        at = data.rfind(b'"method":"mining.notify"')
        if at >= 0:
            self.notified_at = time.time()
            buf = self._tail + data
            at = buf.rfind(b'"method":"mining.notify"')
            start = buf.find(b'"params":["', at)
            end = buf.find(b'"', start + 11) if start >= 0 else -1
            if end > 0:
                self.job_id = buf[start + 11 : end].decode()
        self.replies += data.count(b'"result"')
        nl = data.rfind(b"\n")
        self._tail = data[nl + 1 :] if nl >= 0 else self._tail + data


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2


async def _connected(src: str, port: int) -> socket.socket:
    """A socket from `src` connected to 127.0.0.1:port. The source port is chosen at connect time
    (IP_BIND_ADDRESS_NO_PORT), by the whole 4-tuple: a plain bind((src, 0)) must find a port free for every
    destination and crawls, or fails, once tens of thousands of earlier connections sit in TIME_WAIT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((src, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open(port: int, n: int, sources: list[str], user: str) -> list[_Miner]:
    loop = asyncio.get_running_loop()
    hello = (
        b'{"id":1,"method":"mining.subscribe","params":["pithead-bench/1"]}\n'
        + b'{"id":2,"method":"mining.authorize","params":["' + user.encode() + b'","x"]}\n'
    )
    miners: list[_Miner] = []

    async def one(i: int) -> None:
        transport, m = await loop.create_connection(_Miner, sock=await _connected(sources[i % len(sources)], port))
        m.transport = transport  # type: ignore[assignment]  # uvloop may call connection_made later
        transport.write(hello)
        miners.append(m)

    for start in range(0, n, CONNECT_BATCH):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + CONNECT_BATCH))))
    deadline = time.monotonic() + 60
    while sum(1 for m in miners if m.job_id) < n and time.monotonic() < deadline:  # noqa: ASYNC110 - polling is the cheap way here
        await asyncio.sleep(0.05)
    return miners


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        await self.proc.stdin.drain()
        return json.loads(await self.proc.stdout.readline())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _WireFigures:
    """What one protocol's throughput phase measured."""

    shares: int
    per_cpu_second: float
    up: float  # bytes the miners sent per share (TCP payload)
    down: float  # bytes the pool sent back per share


async def _throughput(child: _Child, port: int, conns: int, shares_per_conn: int, sources: list[str]
                      ) -> _WireFigures | None:
    miners = await _open(port, conns, sources, "bench.throughput")
    if not all(m.job_id for m in miners):
        print("  throughput: not every connection got a job; skipped")
        return None
    before = await child.ask("stats")
    t0 = time.perf_counter()
    up = 0
    down0 = sum(m.bytes_in for m in miners)

    async def pump(k: int, m: _Miner) -> None:
        nonlocal up
        assert m.transport is not None
        sent = 0
        base = m.replies
        jid = m.job_id
        while sent < shares_per_conn:
            while sent - (m.replies - base) >= PIPELINE_WINDOW:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            batch = min(64, shares_per_conn - sent)
            data = b"".join(
                b'{"id":%d,"method":"mining.submit","params":["bench.throughput","%s","%08x","%08x","%08x"]}\n'
                % (10 + sent + j, jid.encode(), k, int(time.time()), sent + j)  # type: ignore[union-attr]
                for j in range(batch)
            )
            up += len(data)
            m.transport.write(data)
            sent += batch
        while m.replies - base < shares_per_conn:  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    await asyncio.gather(*(pump(k, m) for k, m in enumerate(miners)))
    wall = time.perf_counter() - t0
    after = await child.ask("stats")
    judged = after["shares"] - before["shares"]
    cpu = after["cpu"] - before["cpu"]
    down = sum(m.bytes_in for m in miners) - down0
    print(f"  share throughput: {judged} shares from {conns} pipelining connections in {wall:.2f} s wall")
    print(f"    pool CPU {cpu:.2f} s → {judged / cpu:,.0f} shares judged per CPU-second "
          f"({judged / wall:,.0f} per wall-second); accepted {after['accepted'] - before['accepted']}, "
          f"rejected {after['rejected']}")
    for m in miners:
        if m.transport is not None:
            m.transport.close()
    await asyncio.sleep(0.5)
    return _WireFigures(judged, judged / cpu, up / max(1, judged), down / max(1, judged))


# --- Stratum V2 ----------------------------------------------------------------------------------------


class _Sv2Miner(asyncio.Protocol):
    """A load-generating SV2 miner: the real miner-side connection (`MinerConnection`: Noise, the table),
    one standard channel, shares submitted by hand (fresh nonces; at the bench's difficulty all count),
    bytes counted both ways. With `handshake_only` it hangs up once the pool has proved itself."""

    def __init__(self, key: bytes, handshake_only: bool = False) -> None:
        self.conn = MinerConnection(MinerChannelConfig("bench.sv2"), key)
        self.handshake_only = handshake_only
        self.transport: asyncio.Transport | None = None
        self.work: ChannelWork | None = None
        self.acknowledged = 0
        self.denied = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.done = asyncio.get_running_loop().create_future()  # set at the end of the handshake (or a failure)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.start()
        self._write()

    def _write(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.bytes_out += len(data)
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        try:
            events = self.conn.receive(data, time.time())
        except Exception as exc:  # a bench never hides a failure: the phase reports it
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if self.conn.handshake_done and not self.done.done():
            self.done.set_result(None)
            if self.handshake_only and self.transport is not None:
                self.transport.close()
                return
        for event in events:
            if isinstance(event, WorkReady):
                self.work = event.work
            elif isinstance(event, ShareAcknowledged):
                self.acknowledged += 1
            elif isinstance(event, ShareDenied):
                self.denied += 1
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("closed during the handshake"))

    def submit(self, first_nonce: int, count: int) -> None:
        work = self.work
        assert work is not None
        for nonce in range(first_nonce, first_nonce + count):
            self.conn.submit(work.job_id, nonce, work.ntime, work.version, b"", None)
        self._write()


async def _sv2_handshakes(child: _Child, port: int, key: bytes, n: int, sources: list[str]) -> None:
    loop = asyncio.get_running_loop()
    before = await child.ask("stats")
    t0 = time.perf_counter()
    for start in range(0, n, SV2_HANDSHAKE_BATCH):
        miners = []
        for i in range(start, min(n, start + SV2_HANDSHAKE_BATCH)):
            _, m = await loop.create_connection(lambda: _Sv2Miner(key, handshake_only=True),
                                                sock=await _connected(sources[i % len(sources)], port))
            miners.append(m)
        await asyncio.gather(*(m.done for m in miners))
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.2)
    after = await child.ask("stats")
    done = after["sv2_handshakes"] - before["sv2_handshakes"]
    cpu = after["cpu"] - before["cpu"]
    print(f"  SV2 handshakes: {done} Noise NX handshakes (a certificate signed for each) in {wall:.2f} s wall; "
          f"pool CPU {cpu:.2f} s → {done / cpu:,.0f} handshakes per CPU-second")


async def _sv2_throughput(child: _Child, port: int, key: bytes, conns: int, shares_per_conn: int,
                          sources: list[str]) -> _WireFigures | None:
    loop = asyncio.get_running_loop()
    miners: list[_Sv2Miner] = []
    for i in range(conns):
        _, m = await loop.create_connection(lambda: _Sv2Miner(key), sock=await _connected(sources[i % len(sources)],
                                                                                          port))
        miners.append(m)
    deadline = time.monotonic() + 60
    while not all(m.work for m in miners) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if not all(m.work for m in miners):
        print("  SV2 throughput: not every channel got a job; skipped")
        return None
    before = await child.ask("stats")
    up0, down0 = sum(m.bytes_out for m in miners), sum(m.bytes_in for m in miners)
    t0 = time.perf_counter()

    async def pump(m: _Sv2Miner) -> None:
        sent = 0
        while sent < shares_per_conn:
            while sent - (m.acknowledged + m.denied) >= PIPELINE_WINDOW:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            batch = min(64, shares_per_conn - sent)
            m.submit(sent, batch)
            sent += batch
        while m.acknowledged + m.denied < shares_per_conn:  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    await asyncio.gather(*(pump(m) for m in miners))
    wall = time.perf_counter() - t0
    after = await child.ask("stats")
    judged = after["shares"] - before["shares"]
    cpu = after["cpu"] - before["cpu"]
    up = sum(m.bytes_out for m in miners) - up0
    down = sum(m.bytes_in for m in miners) - down0
    print(f"  SV2 share throughput: {judged} shares from {conns} pipelining standard channels in {wall:.2f} s wall")
    print(f"    pool CPU {cpu:.2f} s → {judged / cpu:,.0f} shares judged per CPU-second "
          f"({judged / wall:,.0f} per wall-second); acknowledged {sum(m.acknowledged for m in miners)}, "
          f"refused {sum(m.denied for m in miners)}")
    for m in miners:
        if m.transport is not None:
            m.transport.close()
    await asyncio.sleep(0.5)
    return _WireFigures(judged, judged / cpu, up / max(1, judged), down / max(1, judged))


class _LocalMiners:
    """A group of idle miners in this process."""

    def __init__(self) -> None:
        self.miners: list[_Miner] = []

    async def open(self, port: int, n: int, sources: list[str]) -> tuple[int, int]:
        self.miners = await _open(port, n, sources, "bench.idle")
        return len(self.miners), sum(1 for m in self.miners if m.job_id)

    async def reset(self) -> None:
        for m in self.miners:
            m.notified_at = 0.0

    async def collect(self, wait_s: float = 30.0) -> list[float]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(m.notified_at for m in self.miners):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return [m.notified_at for m in self.miners if m.notified_at]

    async def cpu(self) -> float:
        return _proc_cpu()

    async def close(self) -> None:
        for m in self.miners:
            if m.transport is not None:
                m.transport.close()


class _RemoteMiners:
    """A group of idle miners in a client process of its own (`--client-procs`): one process may hold at
    most RLIMIT_NOFILE sockets, and reading 10,000 notifies is work that can be spread over cores too."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def _ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench client process exited")
        return json.loads(line)  # type: ignore[no-any-return]

    async def open(self, port: int, n: int, sources: list[str]) -> tuple[int, int]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.bench.stratum", "--client",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024,
        )
        r = await self._ask({"cmd": "open", "port": port, "n": n, "sources": sources})
        return r["held"], r["got_job"]

    async def reset(self) -> None:
        await self._ask({"cmd": "reset"})

    async def collect(self, wait_s: float = 30.0) -> list[float]:
        return (await self._ask({"cmd": "collect", "wait_s": wait_s}))["times"]  # type: ignore[no-any-return]

    async def cpu(self) -> float:
        return (await self._ask({"cmd": "cpu"}))["cpu"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            await self._ask({"cmd": "quit"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 30)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def _client_main() -> None:
    """A bench client process: holds a group of idle miners and answers the driver on stdin/stdout."""
    raise_nofile()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    group = _LocalMiners()
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        out: dict[str, Any] = {"ok": True}
        if cmd["cmd"] == "open":
            held, got = await group.open(cmd["port"], cmd["n"], cmd["sources"])
            out = {"held": held, "got_job": got}
        elif cmd["cmd"] == "reset":
            await group.reset()
        elif cmd["cmd"] == "collect":
            out = {"times": await group.collect(cmd["wait_s"])}
        elif cmd["cmd"] == "cpu":
            out = {"cpu": _proc_cpu()}
        elif cmd["cmd"] == "quit":
            await group.close()
            await asyncio.sleep(0.5)
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
            break
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


async def _paused_rounds(child: _Child, groups: list[_LocalMiners | _RemoteMiners], n: int, rounds: int,
                         workers: int) -> None:
    """New blocks with every load-generator process stopped (SIGSTOP) until the pool has written all its
    notifies: the pool alone on the CPUs, as when the miners are other machines. The figure is the pool's
    own, from the template push to its last notify written (the kernel has queued it for the miner); the
    miners' receipt times mean nothing here and are not printed."""
    import signal

    procs = [g.proc for g in groups if isinstance(g, _RemoteMiners) and g.proc is not None]
    ends: list[float] = []
    for r in range(rounds):
        await asyncio.gather(*(g.reset() for g in groups))
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        try:
            info = await child.ask("newblock")
            await asyncio.sleep(0.5 + n / 20_000)  # far longer than the pool needs to write them all
            wrote = await child.ask("stats")
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
        got = sum(len(ts) for ts in await asyncio.gather(*(g.collect() for g in groups)))
        end = (wrote["broadcast_end"] - info["t_push"]) * 1000
        ends.append(end)
        per = " (the slowest worker)" if workers > 1 else ""
        print(f"    block {r + 1}/{rounds}, miners paused: template push → the pool's last notify written "
              f"{end:.1f} ms; {wrote['miners']} notifies, {wrote['broadcast_ms']:.1f} ms of writing{per}; "
              f"{got} received after the miners resumed")
    if ends:
        ends.sort()
        print(f"    N={n}, miners paused: push → last notify written over {len(ends)} blocks: best {ends[0]:.1f} ms, "
              f"median {ends[len(ends) // 2]:.1f} ms, worst {ends[-1]:.1f} ms")


async def _hold_and_notify(child: _Child, port: int, n: int, sources: list[str], workers: int,
                           rounds: int, client_procs: int, paused: bool = False) -> None:
    base = await child.ask("stats")
    t0 = time.perf_counter()
    groups: list[_LocalMiners | _RemoteMiners] = (
        [_LocalMiners()] if client_procs <= 1 else [_RemoteMiners() for _ in range(client_procs)]
    )
    sizes = [n // len(groups) + (1 if i < n % len(groups) else 0) for i in range(len(groups))]
    try:
        opened_counts = await asyncio.gather(*(g.open(port, k, sources) for g, k in zip(groups, sizes, strict=True)))
        opened = time.perf_counter() - t0
        await asyncio.sleep(0.5)
        held = await child.ask("stats")
        got_job = sum(g for _, g in opened_counts)
        per_conn = (held["rss"] - base["rss"]) / max(1, held["connections"] - base["connections"])
        where = f" from {len(groups)} client processes" if len(groups) > 1 else ""
        print(f"  N={n}: {held['ready']} miners held (ready){where} after {opened:.1f} s; {got_job} got a job; "
              f"pool RSS {held['rss'] / 2**20:.0f} MiB, {per_conn / 1024:.1f} KiB per connection")
        if paused:
            await _paused_rounds(child, groups, n, rounds, workers)
            return
        lasts: list[float] = []
        cpu_per_round: list[tuple[float, float]] = []
        for r in range(rounds):
            await asyncio.gather(*(g.reset() for g in groups))
            pool_cpu0 = (await child.ask("stats"))["cpu"]
            miners_cpu0 = sum(await asyncio.gather(*(g.cpu() for g in groups)))
            info = await child.ask("newblock")
            times = sorted(t for ts in await asyncio.gather(*(g.collect() for g in groups)) for t in ts)
            miners_cpu = sum(await asyncio.gather(*(g.cpu() for g in groups))) - miners_cpu0
            if not times:
                continue
            wrote = await child.ask("stats")
            cpu_per_round.append((wrote["cpu"] - pool_cpu0, miners_cpu))
            last = (times[-1] - info["t_push"]) * 1000
            median = (times[len(times) // 2] - info["t_push"]) * 1000
            lasts.append(last)
            slowest = " (the slowest worker)" if workers > 1 else ""
            print(f"    block {r + 1}/{rounds}: new block → last miner's notify {last:.1f} ms (median {median:.1f} ms)"
                  f" over {len(times)} miners; pool wrote {wrote['miners']} notifies in {wrote['broadcast_ms']:.1f} ms"
                  f"{slowest}")
        if lasts:
            lasts.sort()
            print(f"    N={n}: last miner's notify over {len(lasts)} blocks: best {lasts[0]:.1f} ms, "
                  f"median {lasts[len(lasts) // 2]:.1f} ms, worst {lasts[-1]:.1f} ms")
            pool_cpu = min(c for c, _ in cpu_per_round) * 1000
            miners_cpu = min(m for _, m in cpu_per_round) * 1000
            cores = os.cpu_count() or 1
            # the CPU a round costs, pool and miners (kernel included): here both share this machine's
            # cores, so no schedule finishes a round faster than their sum over the cores
            print(f"    CPU per new block (least of {len(cpu_per_round)}): pool {pool_cpu:.0f} ms "
                  f"({pool_cpu * 1000 / n:.1f} µs per miner), load generator {miners_cpu:.0f} ms; "
                  f"on {cores} cores shared by both, no round can finish in under "
                  f"{(pool_cpu + miners_cpu) / cores:.0f} ms")
    finally:
        await asyncio.gather(*(g.close() for g in groups))
    await asyncio.sleep(1.0)


def _sessions_only(n: int) -> None:
    """Python-side memory of n READY sessions without sockets (RLIMIT_NOFILE caps real connections)."""
    import gc


    book = JobBook(mode="pool", pool_script=address_to_script(POOL_ADDRESS, REGTEST))
    book.new_template(bench_template(1000))
    rules = PoolRules(mode="pool", network=REGTEST, user_rule="any", vardiff=VarDiffConfig(10.0, 1e-6, 1e9))
    alloc = ExtranonceAllocator()
    hello = (b'{"id":1,"method":"mining.subscribe","params":["bench"]}\n'
             b'{"id":2,"method":"mining.authorize","params":["bench.idle","x"]}\n')
    gc.collect()
    before = _rss_bytes()
    sessions = []
    for _ in range(n):
        s = PoolSession(rules, book, alloc, 0.0)
        s.receive(hello, 0.0)
        s.data_to_send()
        sessions.append(s)
    gc.collect()
    grown = _rss_bytes() - before
    print(f"  {n} READY sessions without sockets: {grown / 2**20:.0f} MiB, {grown / n / 1024:.2f} KiB per session "
          f"(Python side; the kernel's socket buffers are extra)")


def _send_floor(n: int, size: int = 1000) -> None:
    """Calibration: the kernel's cost of one send() of a notify-sized line to each of n loopback sockets,
    from plain Python with nothing else going on: no pool can notify n miners faster than this here."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(n)
    port = srv.getsockname()[1]
    pairs = []
    try:
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = srv.accept()
            pairs.append((c, a))
        line = b"x" * (size - 1) + b"\n"
        t0 = time.perf_counter()
        for _, a in pairs:
            a.send(line)
        dt = time.perf_counter() - t0
        print(f"  calibration: one send() of {size} bytes to each of {n} loopback sockets: {dt * 1000:.1f} ms "
              f"({dt / n * 1e6:.1f} µs per socket) — the kernel floor for notifying {n} miners on this machine")
    finally:
        for c, a in pairs:
            c.close()
            a.close()
        srv.close()


async def _drive(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.bench.stratum", "--serve", str(args.port), "--workers", str(args.workers),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    child = _Child(proc)
    assert proc.stdout is not None
    hello = json.loads(await proc.stdout.readline())
    port = hello["port"]
    sources = [f"127.0.0.{i}" for i in range(1, args.sources + 1)]
    procs = f" with {args.workers} worker processes" if args.workers > 1 else ""
    print(f"pithead bench stratum: pool pid {proc.pid}{procs} on 127.0.0.1:{port}; RLIMIT_NOFILE {nofile}; "
          f"{len(sources)} source addresses; CPUs {os.cpu_count()}")
    try:
        if args.sessions > 0:
            _sessions_only(args.sessions)
        _send_floor(min(4000, max(args.conns or [1000])))
        v1 = v2 = None
        if args.shares > 0:
            v1 = await _throughput(child, port, args.share_conns, args.shares // args.share_conns, sources)
        sv2_port = hello.get("sv2_port")
        if sv2_port is None:
            print("  SV2: not measured (the SV2 endpoint runs in the one-process pool only)")
        else:
            key = decode_public_key(hello["sv2_key"])
            if args.sv2_handshakes > 0:
                await _sv2_handshakes(child, sv2_port, key, args.sv2_handshakes, sources)
            if args.shares > 0:
                v2 = await _sv2_throughput(child, sv2_port, key, args.share_conns, args.shares // args.share_conns,
                                           sources)
        if v1 is not None and v2 is not None:
            print(f"  bytes on the wire per share (TCP payload, miner → pool + pool → miner): "
                  f"V1 {v1.up:.0f} + {v1.down:.0f} = {v1.up + v1.down:.0f}; "
                  f"V2 {v2.up:.0f} + {v2.down:.1f} = {v2.up + v2.down:.0f} (encrypted, acknowledged in batches)")
            print(f"  shares judged per CPU-second: V1 {v1.per_cpu_second:,.0f}, V2 {v2.per_cpu_second:,.0f} "
                  f"({v2.per_cpu_second / v1.per_cpu_second:.2f}x)")
        for n in args.conns:
            if n // max(1, args.client_procs) + 64 > nofile:
                print(f"  N={n}: skipped (RLIMIT_NOFILE {nofile} too low for one client process: "
                      f"use --client-procs {-(-n // (nofile - 1000))} or more)")
                continue
            if n // max(1, args.workers) + 64 > nofile:
                print(f"  N={n}: skipped (RLIMIT_NOFILE {nofile} too low for one pool process: "
                      f"use --workers {-(-n // (nofile - 3000))} or more)")
                continue
            await _hold_and_notify(child, port, n, sources, args.workers, args.rounds, args.client_procs)
            if args.paused_miners:
                await _hold_and_notify(child, port, n, sources, args.workers, args.rounds,
                                       max(2, args.client_procs), paused=True)
    finally:
        with contextlib.suppress(Exception):
            await child.ask("quit")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pithead bench stratum", description=__doc__.split("\n")[0])
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--shares", type=int, default=200_000, help="shares in the throughput phase (0: skip)")
    p.add_argument("--share-conns", type=int, default=20)
    p.add_argument("--sv2-handshakes", type=int, default=500,
                   help="Noise handshakes against the SV2 endpoint (0: skip)")
    p.add_argument("--conns", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 10000],
                   help="comma-separated N for the idle/notify phase")
    p.add_argument("--sources", type=int, default=4, help="127.0.0.x source addresses to spread over")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--client-procs", type=int, default=1,
                   help="spread the idle miners over this many load-generator processes (1: this one)")
    p.add_argument("--paused-miners", action="store_true",
                   help="also time each N with the load generator stopped during the broadcast (the pool "
                        "alone on the CPUs, as with miners on other machines)")
    p.add_argument("--rounds", type=int, default=5, help="new blocks pushed to the N idle miners, one at a time")
    p.add_argument("--workers", type=int, default=1,
                   help="pool processes sharing the port, as `pithead pool --workers N` (1: one process)")
    p.add_argument("--sessions", type=int, default=100_000,
                   help="also measure the memory of this many socket-less READY sessions (0: skip)")
    args = p.parse_args(argv)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None  # type: ignore[assignment]
    with asyncio.Runner(loop_factory=factory) as runner:
        if args.client:
            runner.run(_client_main())
        elif args.serve is not None:
            raise_nofile()
            runner.run(_serve(args.serve) if args.workers <= 1 else _serve_workers(args.serve, args.workers))
        else:
            runner.run(_drive(args))


if __name__ == "__main__":
    main(sys.argv[1:])

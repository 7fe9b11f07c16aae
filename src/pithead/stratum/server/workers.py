"""The pool on several cores: worker processes sharing one Stratum port, and the supervisor that runs them.

Why: one Python process judges ~39,000 shares per CPU-second and writes a new block's notify to ~100
miners per millisecond, and the kernel's own cost of one loopback `send()` (~6.5 µs here) alone makes
65 ms for 10,000 miners from one core. A farm of tens of thousands of devices needs every core, so
`pithead pool --workers N` (or `[pool] workers`, 0 = one per core) runs N worker processes, each a whole
`PoolServer` over its share of the miners. What it is: each worker binds the same port with SO_REUSEPORT
and the kernel spreads new connections over them by a hash of the 4-tuple; the supervisor (this process)
owns everything there must be one of:

- the node connections: it consumes the template source and sends each update to every worker (pickled
  once), and submits the blocks workers find to every node, answering the worker with the results;
- the ledger: workers send their share and block events in batches (one frame per event-loop turn), the
  supervisor puts them into the `ShareSink` and keeps the pool's totals (`stats.pool`) from them;
- bans (a ban made by one worker is sent to all; each worker scores the addresses it sees, `bans.AddressScores`,
  so an address is banned when the connections one worker holds of it together earn it) and the block
  message shown to every miner;
- the workers' health: one that dies is restarted (its miners reconnect and land on a live worker); when
  the supervisor goes away the workers see the end of their channel and stop.

Extranonce1 values never collide across workers: worker i of N allocates from its own slice
(`ExtranonceAllocator(shard=(i, N))`). What it is not: a cluster across machines (that is several pool
front-ends on the Redis share bus), and the per-IP connection limit is per worker, so the pool-wide bound
is up to N times `max_connections_per_ip`.

The channel is one Unix socketpair per worker carrying frames of a 4-byte big-endian length and a pickle.
Pickle is safe here because both ends are this program's own processes (nothing from the network is ever
unpickled) and it carries the frozen template and event dataclasses unchanged at C speed. Messages:

  supervisor → worker: ("config", PoolConfig, index, count, host, port, log_level, sv2_port, sv2_authority,
      heartbeat seconds), ("template",
      TemplateUpdate), ("submitted", request_id, [SubmitResult]), ("ban", ip), ("message", text),
      ("report",) (send statistics now), ("stop",)
  worker → supervisor: ("ready", pid, port), ("events", [ShareEvent fields as tuples], [BlockEvent]),
      ("submit", request_id, block_hex), ("ban", ip), ("stats", {...}), ("beat",) (alive: see STALL_SECONDS)
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import dataclasses
import itertools
import logging
import operator
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

from pithead.chain.hashes import display_hex, sha256d
from pithead.config import PoolConfig
from pithead.events import BlockEvent, ShareEvent, ShareSink
from pithead.stratum.server.bans import BanTable
from pithead.stratum.server.build import build_server, front_end_shard
from pithead.stratum.server.loop import run
from pithead.stratum.server.pool import PoolServer, block_message
from pithead.stratum.server.stats import StatsBook
from pithead.stratum.server.v2 import Sv2Endpoint
from pithead.stratum.v1.pool import PoolState
from pithead.template.block_template import BlockTemplate, TemplateTx
from pithead.template.interface import SubmitResult, TemplateSource, TemplateUpdate
from pithead.template.sources.fanout import UpdateFanout

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
MAX_FRAME = 512 * 1024 * 1024
"""A frame larger than this is a bug (a full block template pickles to a few MB)."""
MAX_CHANNEL_BACKLOG = 256 * 1024 * 1024
"""Unsent bytes a worker lets pile up towards a supervisor that does not read (stuck or gone): past this
its share events are dropped and counted rather than filling the worker's memory."""
STATS_INTERVAL = 1.0
"""Seconds between a worker's statistics reports."""
PROMPT_REPORT_S = 0.2
"""A worker whose number of connections changed reports within this many seconds."""
READY_TIMEOUT = 30.0
"""Seconds a new worker has to import, bind and report ready."""
STALL_SECONDS = 15.0
"""A worker that has said nothing (it beats at least every `heartbeat_interval(STALL_SECONDS)`) for this
long is stuck — a bug in a loop, a process stopped by a signal — and is killed, then restarted like one
that died. "Said nothing" is measured so that a busy machine is not a stuck worker: the time counts from
the last bytes that reached the supervisor's socket (not from when its reader got round to decoding them),
only while the worker is up (not while it imports and binds: that has READY_TIMEOUT), and a watchdog tick
that comes late (the supervisor itself starved of CPU) adds at most two tick lengths."""
BEATS_PER_STALL = 5
"""A worker beats this many times per stall period at least, so a stall is several missed beats, never one
late report."""
RESTART_BACKOFF = (0.5, 30.0)
"""First and longest wait before restarting a worker that died (doubling while it keeps dying young)."""


class WorkerError(RuntimeError):
    """A worker could not be started (the port is taken, the process died at start)."""


def heartbeat_interval(stall_seconds: float) -> float:
    """How often a worker must say something for a supervisor that kills it after `stall_seconds`."""
    return max(PROMPT_REPORT_S, min(STATS_INTERVAL, stall_seconds / BEATS_PER_STALL))


class _StampedReader(asyncio.StreamReader):
    """A StreamReader that notes when bytes last arrived: the event loop feeds it as soon as the socket is
    readable, whether or not the task reading frames has run since (it may be behind on a busy loop)."""

    last_data_at = 0.0  # time.monotonic() of the last bytes received

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self.last_data_at = time.monotonic()
        super().feed_data(data)


class Channel:
    """Length-prefixed pickle frames over one end of a Unix socketpair (asyncio streams)."""

    def __init__(self, reader: _StampedReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        # asyncio.open_unix_connection, with the reader that stamps arrivals
        loop = asyncio.get_running_loop()
        reader = _StampedReader(loop=loop)
        transport, protocol = await loop.create_unix_connection(lambda: asyncio.StreamReaderProtocol(reader),
                                                                sock=sock)
        return cls(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    @property
    def last_data_at(self) -> float:
        """time.monotonic() when bytes last came from the other end (0.0: never)."""
        return self._reader.last_data_at

    @staticmethod
    def encode(msg: tuple[Any, ...]) -> bytes:
        body = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(len(body)) + body

    def send(self, msg: tuple[Any, ...]) -> None:
        self.send_frame(self.encode(msg))

    def send_frame(self, frame: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(frame)

    @property
    def backlog(self) -> int:
        transport = self._writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    async def recv(self) -> tuple[Any, ...]:
        """The next message; raises EOFError when the other end has gone."""
        try:
            (size,) = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
            if size > MAX_FRAME:
                raise EOFError(f"frame of {size} bytes from the other end: closing the channel")
            body = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise EOFError("channel closed") from exc
        try:
            msg = pickle.loads(body)
        except Exception as exc:  # a frame that is not one of ours: the channel is broken, close it
            raise EOFError(f"malformed frame on the channel: {exc}") from exc
        if not isinstance(msg, tuple) or not msg:
            raise EOFError(f"malformed message {type(msg).__name__} on the channel")
        return msg

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


# --- the worker side -------------------------------------------------------------------------------------


class ChannelSource:
    """The worker's `TemplateSource`: updates arrive from the supervisor; blocks go back to it to submit."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._current: BlockTemplate | None = None
        self._fanout = UpdateFanout()
        self._pending: dict[int, asyncio.Future[list[SubmitResult]]] = {}
        self._ids = itertools.count(1)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.fail_pending("the pool is stopping")

    def current(self) -> BlockTemplate | None:
        return self._current

    def push(self, update: TemplateUpdate) -> None:
        self._current = update.template
        self._fanout.publish(update)

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        return self._fanout.subscribe()

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        rid = next(self._ids)
        fut: asyncio.Future[list[SubmitResult]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._channel.send(("submit", rid, block_hex))
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)

    def submitted(self, rid: int, results: list[SubmitResult]) -> None:
        fut = self._pending.get(rid)
        if fut is not None and not fut.done():
            fut.set_result(results)

    def fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(why))


_share_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(ShareEvent)))
"""A ShareEvent as the tuple of its fields, in order (ShareEvent(*t) is the inverse)."""

_tx_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(TemplateTx)))


def _reduce_tx(tx: TemplateTx) -> tuple[type[TemplateTx], tuple[Any, ...]]:
    return TemplateTx, _tx_fields(tx)


# A template's transactions are pickled as constructor calls: for a 3,000-transaction template this takes
# pickling + unpickling from 21.7 ms to 7.3 ms (measured), the latency a new block pays on its way to the
# workers. The default pickling of slotted dataclasses goes through copyreg's generic state per object.
copyreg.pickle(TemplateTx, _reduce_tx)


class ChannelSink:
    """The worker's `ShareSink`: events are batched and sent once per event-loop turn."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._batch: list[ShareEvent | BlockEvent] = []
        self.dropped = 0

    def put(self, event: ShareEvent | BlockEvent) -> None:
        if not self._batch:
            asyncio.get_running_loop().call_soon(self.flush)
        self._batch.append(event)

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self._channel.backlog > MAX_CHANNEL_BACKLOG:
            self.dropped += len(batch)
            log.error("supervisor not reading: dropped %d share events (%d in all)", len(batch), self.dropped)
            return
        # shares travel as plain tuples: pickling a slotted frozen dataclass costs ~10 µs a share both ends,
        # a tuple ~3 µs (measured) — a quarter of the per-share budget at 40,000 shares per CPU-second
        shares = [_share_fields(e) for e in batch if type(e) is ShareEvent]
        blocks = [e for e in batch if type(e) is not ShareEvent]
        self._channel.send(("events", shares, blocks))


LISTED_SESSIONS = 500
"""Sessions a worker lists in each report (the dashboard's live table; the counts are always exact)."""


SessionRow = tuple[str, str | None, float, float, str | None, float | None]
"""(remote, worker, difficulty, connected_at, user_agent, last_share_at) of one session, as a worker reports it."""


def _sessions(server: PoolServer, limit: int) -> list[SessionRow]:
    """The SessionRow of up to `limit` of the worker's sessions."""
    out = []
    for c in server.connections:
        s = c.session
        if s is None:
            continue
        w = s.primary_worker
        out.append((str(s.remote or c.ip), None if w is None else w.name, float(s.difficulty), s.connected_at,
                    s.user_agent, s.last_share_at))
        if len(out) >= limit:
            break
    return out


def worker_shard(front_end: tuple[int, int], index: int, count: int) -> tuple[int, int]:
    """Worker `index` of `count` inside front-end (I, N): the front-end's extranonce1 prefix bits, then the
    worker's, so every worker's slice lies inside its front-end's slice whatever N and count are (and a
    single-process front-end's slice, (I, N), is exactly the union of its workers' would be)."""
    first, fronts = front_end
    front_bits, worker_bits = (fronts - 1).bit_length(), (count - 1).bit_length()
    return (first << worker_bits) | index, 1 << (front_bits + worker_bits)


def _worker_stats(server: PoolServer, sink: ChannelSink, listed: int = LISTED_SESSIONS) -> dict[str, Any]:
    ready = sum(1 for c in server.connections if c.session is not None and c.session.state is PoolState.READY)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "sessions": _sessions(server, listed),
        "pid": os.getpid(), "connections": len(server.connections), "ready": ready,
        "shares_judged": server.metrics.shares_judged, "blocks_found": server.metrics.blocks_found,
        "block_candidates": server.metrics.block_candidates,
        "last_broadcast_ms": server.metrics.last_broadcast_ms,
        "last_broadcast_miners": server.metrics.last_broadcast_miners,
        "last_broadcast_at": server.metrics.last_broadcast_at, "dropped_events": sink.dropped,
    }


async def run_worker(fd: int) -> None:
    """A worker process's life: take the config, serve its share of the miners, obey the supervisor."""
    channel = await Channel.open(socket.socket(fileno=fd))
    first = await channel.recv()
    if first[0] != "config":
        raise WorkerError(f"worker expected its config first, got {first[0]!r}")
    _, cfg, index, count, host, port, level, sv2_port, sv2_authority, beat_s = first
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s worker {index}: %(name)s: %(message)s")
    source = ChannelSource(channel)
    sink = ChannelSink(channel)
    server = build_server(cfg, source, sink, extranonce_shard=worker_shard(front_end_shard(cfg), index, count),
                          on_ban=lambda ip, now: channel.send(("ban", ip)),
                          broadcast_threads=max(1, min(4, (os.cpu_count() or 1) // count)))
    # the current template comes right after the config, so the first miners get work at once
    msg = await channel.recv()
    if msg[0] == "template":
        source.push(msg[1])
    _, bound = await server.start(host, port, reuse_port=True)
    sv2: Sv2Endpoint | None = None
    if sv2_port is not None and sv2_authority is not None:  # Stratum V2 beside V1, on its shared port too
        sv2 = Sv2Endpoint(server, sv2_authority, cert_validity=cfg.sv2_cert_validity)
        await sv2.start(host, sv2_port, reuse_port=True)
    channel.send(("ready", os.getpid(), bound))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def report() -> None:
        # Every STATS_INTERVAL, and sooner (every PROMPT_REPORT_S at most) when miners came or went, so the
        # dashboard's connection count follows a reconnecting farm within a fraction of a second. Between
        # reports, a beat every `beat_s` (sent from this loop: a worker whose loop is stuck stops beating).
        last_sent, last_beat, last_count = 0.0, 0.0, -1
        while True:
            await asyncio.sleep(PROMPT_REPORT_S)
            now = loop.time()
            count = len(server.connections)
            if count != last_count or now - last_sent >= STATS_INTERVAL:
                channel.send(("stats", _worker_stats(server, sink)))
                last_sent = last_beat = now
                last_count = count
            elif now - last_beat >= beat_s:
                channel.send(("beat",))
                last_beat = now

    async def obey() -> None:
        try:
            while True:
                msg = await channel.recv()
                kind = msg[0]
                if kind == "template":
                    source.push(msg[1])
                elif kind == "submitted":
                    source.submitted(msg[1], msg[2])
                elif kind == "ban":  # ("ban", ip) or ("ban", ip, seconds left) for a ban made earlier
                    server.admission.ban(msg[1], server.clock(), msg[2] if len(msg) > 2 else None)
                elif kind == "message":
                    server.broadcast_message(msg[1])
                elif kind == "report":
                    channel.send(("stats", _worker_stats(server, sink)))
                elif kind == "stop":  # keep reading: a block found just before it still gets its verdict
                    stop.set()
        except EOFError:
            log.warning("supervisor gone: stopping")
            source.fail_pending("supervisor gone")
        finally:
            stop.set()

    tasks = [asyncio.create_task(report()), asyncio.create_task(obey())]
    await stop.wait()
    if sv2 is not None:  # V2 first: then nothing judges shares any more
        await sv2.stop()
    await server.stop()  # waits (bounded) for the blocks being submitted through the supervisor
    source.fail_pending("the pool stopped before the node answered")
    sink.flush()
    channel.send(("stats", _worker_stats(server, sink)))
    await channel.drain()
    for t in tasks:
        t.cancel()
    channel.close()


def worker_main(argv: list[str]) -> None:
    """Entry of `python -m pithead.stratum.server.workers FD` (started by the supervisor, never by hand)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the supervisor stops us
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    run(run_worker(int(argv[0])))


# --- the supervisor side ---------------------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    restarts: int = 0
    reader: asyncio.Task[None] | None = None
    ready: bool = False  # up and serving (said "ready"); the watchdog watches only such a worker
    heard_at: float = 0.0  # the channel's last_data_at the watchdog saw last
    silent_s: float = 0.0  # how long the watchdog has seen nothing from it (see STALL_SECONDS)
    reports: int = 0  # statistics reports received from this process


@dataclass
class PoolMetrics:
    """The pool-wide view, merged from the workers' reports (same names as `ServerMetrics`)."""

    connections: int = 0
    ready: int = 0
    shares_judged: int = 0
    block_candidates: int = 0
    blocks_found: int = 0
    last_broadcast_ms: float = 0.0  # the slowest worker's template → last notify written
    last_broadcast_miners: int = 0
    dropped_events: int = 0
    worker_restarts: int = 0
    worker_stalls: int = 0
    submit_results: list[tuple[str, list[SubmitResult]]] = field(default_factory=list)


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, never listening: it holds the port (and picks it when
    0) for the workers, which bind it too, without taking connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    res = socket.socket(family, socket.SOCK_STREAM)
    res.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    res.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        res.bind((host, port))
    except OSError:
        res.close()
        raise
    return res


class WorkerPool:
    """`PoolServer`'s twin for many cores: same `start`/`stop`/`snapshot`, the miners served by workers."""

    def __init__(self, cfg: PoolConfig, source: TemplateSource, sink: ShareSink | None = None,
                 workers: int = 2, *, log_level: int | None = None,
                 stall_seconds: float = STALL_SECONDS, sv2_authority: bytes | None = None) -> None:
        self.cfg = cfg
        # the Stratum V2 endpoint of `[pool] sv2_port`, in every worker beside its V1 server (None: off)
        self.sv2_authority = sv2_authority if cfg.sv2_port is not None else None
        self.sv2_port: int | None = None
        self.source = source
        self.sink = sink
        self.count = workers
        self.stall_seconds = stall_seconds
        self.log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self.stats = StatsBook()
        self.metrics = PoolMetrics()
        self.workers = [_Worker(i) for i in range(workers)]
        self.host = cfg.bind
        self.port = cfg.port
        self._reservation: socket.socket | None = None
        self._sv2_reservation: socket.socket | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._reported = asyncio.Event()  # set on every statistics report (refresh_stats waits on it)
        # the pool's bans (ends in time.monotonic()), handed to workers (re)started later
        self._bans = BanTable(ipv6_prefix=cfg.ban_ipv6_prefix)

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Reserve the port, start every worker and wait until each listens; returns (host, port)."""
        self.host = host if host is not None else self.cfg.bind
        port = self.port if port is None else port
        res = _reserve(self.host, port)
        self._reservation = res
        self.port = res.getsockname()[1]
        if self.sv2_authority is not None and self.cfg.sv2_port is not None:
            try:
                self._sv2_reservation = _reserve(self.host, self.cfg.sv2_port)
            except OSError:
                res.close()
                raise
            self.sv2_port = self._sv2_reservation.getsockname()[1]
        try:
            await asyncio.gather(*(self._spawn(w) for w in self.workers))
        except BaseException:
            await self.stop(grace=1.0)
            raise
        self._feeder = asyncio.create_task(self._feed_templates(), name="pool-workers-templates")
        self._spawn_task(self._watchdog())
        return self.host, self.port

    async def stop(self, grace: float = 2.0) -> None:
        """Stop every worker gracefully (each flushes its miners and its last events), then the rest."""
        self._stopping = True
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        for w in self.workers:
            if w.channel is not None:
                w.channel.send(("stop",))
        await asyncio.gather(*(self._reap(w, grace + 3.0) for w in self.workers))
        for t in list(self._tasks):
            t.cancel()
        for reservation in (self._reservation, self._sv2_reservation):
            if reservation is not None:
                reservation.close()
        self._reservation = self._sv2_reservation = None

    async def _reap(self, w: _Worker, wait_s: float) -> None:
        proc = w.proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), wait_s)
            except TimeoutError:
                log.warning("worker %d did not stop in %.0f s: killing it", w.index, wait_s)
                proc.kill()
                await proc.wait()
        if w.reader is not None:  # its last events and statistics are read before we return
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(w.reader, 2.0)

    async def _spawn(self, w: _Worker) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pithead.stratum.server.workers", str(child.fileno()),
                pass_fds=(child.fileno(),),
            )
        finally:
            child.close()
        w.proc = proc
        w.ready = False
        w.started_at = time.monotonic()
        channel = w.channel = await Channel.open(parent)
        channel.send(("config", self.cfg, w.index, self.count, self.host, self.port, self.log_level, self.sv2_port,
                      self.sv2_authority, heartbeat_interval(self.stall_seconds)))
        current = self.source.current()
        channel.send(("template", TemplateUpdate(current, True, time.time())) if current is not None
                     else ("none",))
        for key, left in self._bans.active(time.monotonic()):  # a restarted worker keeps refusing the flooders
            channel.send(("ban", key, left))  # for what is left of the ban, not a fresh one
        try:
            ready = await asyncio.wait_for(channel.recv(), READY_TIMEOUT)
        except (EOFError, TimeoutError) as exc:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise WorkerError(f"pool worker {w.index} did not start (exit code {proc.returncode}): "
                              f"is {self.host}:{self.port} free?") from exc
        if ready[0] != "ready":
            raise WorkerError(f"pool worker {w.index} said {ready[0]!r} instead of ready")
        log.info("pool worker %d (pid %d) listening on %s:%d", w.index, ready[1], self.host, ready[2])
        w.heard_at, w.silent_s, w.ready = channel.last_data_at, 0.0, True
        w.reader = asyncio.create_task(self._listen(w, channel), name=f"pool-worker-{w.index}")

    # --- what the workers say --------------------------------------------------------------------------
    async def _listen(self, w: _Worker, channel: Channel) -> None:
        try:
            while True:
                msg = await channel.recv()
                kind = msg[0]
                if kind == "events":
                    self._on_events(w, [ShareEvent(*t) for t in msg[1]])
                    if msg[2]:
                        self._on_events(w, msg[2])
                elif kind == "submit":
                    self._spawn_task(self._submit(channel, msg[1], msg[2]))
                elif kind == "ban":
                    now = time.monotonic()
                    self._bans.ban(msg[1], now + self.cfg.ban_seconds, now)
                    for other in self.workers:
                        if other is not w and other.channel is not None:
                            other.channel.send(("ban", msg[1]))
                elif kind == "stats":
                    w.stats = msg[1]
                    w.reports += 1
                    self._merge_stats()
                    self._reported.set()
        except EOFError:
            pass
        finally:
            channel.close()
            if w.channel is channel:
                w.channel = None
        if not self._stopping:
            self._spawn_task(self._revive(w))

    def _on_events(self, w: _Worker, events: list[ShareEvent | BlockEvent]) -> None:
        # Pool totals only: per-worker and per-address figures are the ledger's (the dashboard reads them
        # there), and keeping them here too cost the supervisor ~1.2 µs a share on the hot path.
        pool = self.stats.pool
        for ev in events:
            if isinstance(ev, ShareEvent):
                pool.record(ev.time, ev.accepted, ev.difficulty, ev.share_difficulty, ev.reject_reason)
            elif isinstance(ev, BlockEvent):
                if ev.accepted_by_node:  # the finder's worker told its own miners; tell everyone else's
                    pool.blocks += 1  # a candidate that lost a race found no block
                    text = block_message(ev.height, ev.worker)
                    for other in self.workers:
                        if other is not w and other.channel is not None:
                            other.channel.send(("message", text))
            if self.sink is not None:
                try:
                    self.sink.put(ev)
                except Exception:  # a sink failure must never take the pool down
                    log.exception("share sink refused an event")

    async def _submit(self, channel: Channel, rid: int, block_hex: str) -> None:
        try:
            results = await self.source.submit_block(block_hex)
        except Exception as exc:  # the worker records the failure with its block; it is never lost in silence
            log.exception("submitblock failed")
            results = [SubmitResult(node="?", result=f"error: {exc}", accepted=False)]
        header = bytes.fromhex(block_hex[:160])
        self.metrics.submit_results.append((display_hex(sha256d(header)), results))
        del self.metrics.submit_results[:-100]
        channel.send(("submitted", rid, results))

    def _merge_stats(self) -> None:
        m = self.metrics
        live = [w.stats for w in self.workers if w.stats]
        m.connections = sum(s["connections"] for s in live)
        m.ready = sum(s["ready"] for s in live)
        m.shares_judged = sum(s["shares_judged"] for s in live)
        m.blocks_found = sum(s["blocks_found"] for s in live)
        m.block_candidates = sum(s.get("block_candidates", 0) for s in live)
        m.dropped_events = sum(s["dropped_events"] for s in live)
        latest = max((s["last_broadcast_at"] for s in live), default=0.0)
        same = [s for s in live if s["last_broadcast_at"] and latest - s["last_broadcast_at"] < 1.0]
        m.last_broadcast_ms = max((s["last_broadcast_ms"] for s in same), default=0.0)
        m.last_broadcast_miners = sum(s["last_broadcast_miners"] for s in same)

    async def _watchdog(self) -> None:
        """Kill a worker that has been silent for `stall_seconds` (see STALL_SECONDS for how that is measured:
        bytes waiting for a busy supervisor, a worker starting up or a supervisor that was itself starved of
        CPU are not a stuck worker)."""
        tick = min(STATS_INTERVAL, self.stall_seconds / 4)
        last = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(tick)
            now = time.monotonic()
            step = min(now - last, 2 * tick)  # a late tick is the supervisor's delay, not the worker's silence
            last = now
            for w in self.workers:
                proc, channel = w.proc, w.channel
                if not w.ready or channel is None or proc is None or proc.returncode is not None:
                    continue
                if channel.last_data_at != w.heard_at:  # it said something since the last tick
                    w.heard_at, w.silent_s = channel.last_data_at, 0.0
                    continue
                w.silent_s += step
                if w.silent_s > self.stall_seconds:
                    log.error("pool worker %d (pid %d) silent for %.1f s: killing it", w.index, proc.pid,
                              w.silent_s)
                    self.metrics.worker_stalls += 1
                    w.ready = False  # once: its channel ends, and it is restarted as if it had died
                    proc.kill()

    async def _revive(self, w: _Worker) -> None:
        proc = w.proc
        code = await proc.wait() if proc is not None else None
        if self._stopping:
            return
        young = time.monotonic() - w.started_at < 60.0
        w.restarts = w.restarts + 1 if young else 1
        self.metrics.worker_restarts += 1
        delay = min(RESTART_BACKOFF[1], RESTART_BACKOFF[0] * 2 ** (w.restarts - 1))
        log.error("pool worker %d exited (code %s); its miners reconnect to the others; restarting in %.1f s",
                  w.index, code, delay)
        w.stats = {}
        self._merge_stats()
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            await self._spawn(w)
        except Exception:
            log.exception("could not restart pool worker %d", w.index)
            self._spawn_task(self._revive(w))

    # --- templates out ---------------------------------------------------------------------------------
    async def _feed_templates(self) -> None:
        while True:  # a source whose update stream fails is subscribed to again: workers must not go stale
            try:
                async for update in self.source.updates():
                    frame = Channel.encode(("template", update))  # pickled once for every worker
                    for w in self.workers:
                        if w.channel is not None:
                            w.channel.send_frame(frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("template updates failed; subscribing again in 1 s")
            await asyncio.sleep(1.0)

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh_stats(self, wait_s: float = 5.0) -> None:
        """Ask every live worker for its statistics now and wait (at most `wait_s`) for the answers, so
        `metrics`, `snapshot()` and each worker's `stats` are current, not up to STATS_INTERVAL old."""
        asked = {w.index: w.reports for w in self.workers if w.channel is not None}
        for w in self.workers:
            if w.channel is not None:
                w.channel.send(("report",))

        def waiting() -> bool:
            return any(w.reports <= asked[w.index] for w in self.workers if w.index in asked and w.channel is not None)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while waiting():
                    self._reported.clear()
                    await self._reported.wait()

    def live_sessions(self) -> tuple[int, list[SessionRow]]:
        """(open connections, a listing of sessions) over every worker, as of their last reports."""
        listed = [row for w in self.workers for row in w.stats.get("sessions", ())]
        return self.metrics.connections, listed

    def snapshot(self) -> dict[str, object]:
        m = self.metrics
        return {
            "connections": m.connections,
            "shares_judged": m.shares_judged,
            "block_candidates": m.block_candidates,
            "blocks_found": m.blocks_found,
            "last_broadcast_ms": m.last_broadcast_ms,
            "last_broadcast_miners": m.last_broadcast_miners,
            "workers": [{"index": w.index, "pid": w.stats.get("pid"), "connections": w.stats.get("connections", 0),
                         "restarts": w.restarts} for w in self.workers],
            "pool": self.stats.pool.snapshot(time.time()),
        }


if __name__ == "__main__":
    worker_main(sys.argv[1:])

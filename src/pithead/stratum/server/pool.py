"""The asyncio shell around the sans-IO sessions: accept, read, feed, write; templates → jobs → notify.

What it is: `PoolServer` owns the listening socket, one `StratumConnection` (an `asyncio.Protocol`) per
miner, the `JobBook`, statistics, bans, and three background tasks in one TaskGroup: the template
consumer (a new block → clean jobs to every miner at once), the refresher (new transactions every
`refresh_interval` → jobs with clean_jobs=false), and the sweeper (handshake/idle timeouts, vardiff for
quiet miners). Shares are judged synchronously inside `data_received` by the session; block candidates
are submitted to every node at once through the `TemplateSource` in their own task, judged against the
best chain (`judge_submission`: a block only nodes off the best chain accepted is a stale fork, not a
found block), recorded, and, when found, announced with `client.show_message`. Share and block events go to a `ShareSink` (the ledger's
in-process queue today).

The same shell serves a farm proxy's machines (`pithead.proxy`): built with no template source, its
sessions take their jobs from a given `JobSource` (jobs relayed from upstream pools), the proxy publishes
each job to the machines it routes there (`publish`), and judged shares (and block-solving ones) also go to
a `ShareRoute` (the proxy forwards them upstream). TLS (`stratum+ssl`): give `ssl` an `SSLContext`
(`pithead.stratum.server.tls`); the native fan-out then stays off, since it writes plaintext to the socket.

What it is not: no protocol logic lives here (that is `pithead.stratum.v1`).

Why Protocol objects and not a task per connection: 100,000 idle miners must fit in one process under
2 GiB; a Protocol is one small object and no coroutine frame, and the broadcast path writes one
pre-serialized line per miner: from C (`_fanout`, outside the GIL, on several threads) to every socket
with nothing queued, through the transport otherwise. Bounded everything: line length and buffered
bytes (LineFramer), pending replies (reading pauses while the peer does not read our writes; a peer
that lets MAX_WRITE_BUFFER pile up is dropped), handshake and idle timeouts, connections per IP and in
total, bans for flooders (a connection's own misbehaviour score, and its address's: every connection's
penalties summed per ban key, `bans.AddressScores`, so that junk spread over many connections is banned
too). One bad client only ever closes its own transport.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from pithead.chain.compact import target_to_difficulty
from pithead.chain.hashes import display_hex
from pithead.events import BlockEvent, ShareEvent, ShareSink
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.bans import DEFAULT_BAN_SECONDS, DEFAULT_IPV6_PREFIX, Admission
from pithead.stratum.server.stats import StatsBook
from pithead.stratum.v1.jobs import IssuedJob, JobBook, JobSource
from pithead.stratum.v1.pool import (
    BANNED,
    BlockFound,
    CloseRequested,
    PoolEvent,
    PoolRules,
    PoolSession,
    PoolState,
    ShareJudged,
)
from pithead.template.block_template import BlockTemplate
from pithead.template.interface import (
    BlockOutcome,
    SubmitResult,
    TemplateSource,
    TemplateUpdate,
    judge_submission,
)

log = logging.getLogger(__name__)

_fanout: Any
try:  # the native notify fan-out (setup.py builds it; without it every notify goes through the transports)
    from pithead.stratum.server import _fanout  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover - no C compiler at install time
    _fanout = None


ADDRESS_BAN_REASON = "too many invalid messages or shares from this address"
"""Why an address is banned whose connections together reached its score (`bans.AddressScores`)."""

MAX_REQUESTS_PER_TURN = 64
"""Requests of one connection handled per event-loop turn; a longer pipeline waits (reading paused) while
other connections run. 64 shares are ~2 ms of work, so no miner's reply waits behind a flooder for long."""


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 200_000
    """Whole-process bound; the 100k-idle-miners goal plus headroom."""
    max_connections_per_ip: int = 1024
    """A farm behind one NAT has hundreds of devices; more from one IP is likely a flood."""
    handshake_timeout: float = 30.0
    """Seconds to subscribe and authorize: real miners do it in one round trip."""
    idle_timeout: float = 900.0
    """Seconds without any message: low-difficulty miners submit every ~10 s; 15 minutes means dead."""
    write_buffer_high: int = 64 * 1024
    """Above this many unsent bytes we stop reading the peer's requests (backpressure)."""
    max_write_buffer: int = 1024 * 1024
    """A peer that does not read 1 MiB of our messages is gone or hostile: drop it."""
    ban_seconds: float = DEFAULT_BAN_SECONDS
    ban_ipv6_prefix: int = DEFAULT_IPV6_PREFIX
    """An IPv6 ban covers this prefix (`pithead.stratum.server.bans`)."""
    sweep_interval: float = 5.0
    """How often timeouts and quiet-miner vardiff are checked (one pass over all connections)."""
    max_sink_errors_logged: int = 10


@dataclass
class ServerMetrics:
    connections: int = 0
    shares_judged: int = 0
    block_candidates: int = 0  # shares that met the network target, submitted to the nodes
    blocks_found: int = 0  # candidates a node of the best chain accepted (a lost race is no block found)
    last_broadcast_ms: float = 0.0  # template update → last notify written
    last_broadcast_miners: int = 0
    last_broadcast_at: float = 0.0  # time.time() of the last generation of jobs
    submit_results: list[tuple[str, list[SubmitResult]]] = field(default_factory=list)


class _NoTemplates:
    """The template source of a server that is given its jobs (a proxy's): never a template; its jobs build
    no blocks (`JobSource.builds_blocks`), so nothing is ever submitted through it."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def current(self) -> BlockTemplate | None:
        return None

    async def updates(self) -> AsyncIterator[TemplateUpdate]:
        return
        yield  # an async generator that ends at once

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        raise RuntimeError("this server's jobs build no blocks: the upstream pool submits them")


class ShareRoute(Protocol):
    """Where a server's judged shares go besides its statistics and ledger sink: a farm proxy forwards the
    ones its upstream credits. Called on the event loop, right after the share was judged; must not block."""

    def share_judged(self, extranonce1: bytes | None, event: ShareJudged, now: float) -> None:
        """`extranonce1`: the one the share was judged with (a V1 session's, a V2 channel's): a proxy's tag."""


MAX_SOLVED_PARENTS = 64
"""Parents the pool remembers having solved (a later candidate on one is stale without asking a node)."""


def block_message(height: int, worker: str) -> str:
    """What miners are shown (`client.show_message`) when the pool's block is accepted."""
    return f"pithead: block {height} found by {worker}"


class StratumConnection(asyncio.Protocol):
    __slots__ = ("_backlogged", "_paused", "fd", "ip", "server", "session", "transport")

    def __init__(self, server: PoolServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: PoolSession | None = None
        self.ip = ""
        self.fd = -1  # the socket's descriptor, for the native notify fan-out (-1: transport writes only)
        self._paused = False  # reading paused because the peer does not read our writes
        self._backlogged = False  # reading paused while a pipelined backlog is handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here
        t = self.transport = cast(asyncio.Transport, transport)
        peer = t.get_extra_info("peername")
        self.ip = peer[0] if peer else "?"
        srv = self.server
        now = srv.clock()
        refused = (
            "server full" if len(srv.connections) >= srv.limits.max_connections else srv.admission.admit(self.ip, now)
        )
        if refused is not None:
            log.debug("refused %s: %s", self.ip, refused)
            self.ip = ""  # not counted
            t.abort()
            return
        t.set_write_buffer_limits(high=srv.limits.write_buffer_high)
        sock = t.get_extra_info("socket")
        if srv.ssl is None:  # a TLS socket must only be written through its transport (the fan-out writes plaintext)
            with contextlib.suppress(AttributeError, OSError, ValueError):
                self.fd = sock.fileno() if sock is not None else -1
        self.session = PoolSession(srv.rules, srv.job_source, srv.allocator, now, remote=self.ip)
        if srv.version_mask_limit is not None:  # a fresh session only records it, for its mining.configure
            self.session.set_version_mask(srv.version_mask_limit)
        srv.connections.add(self)

    def data_received(self, data: bytes) -> None:
        s = self.session
        if s is None:
            return
        self._handle(lambda now: s.receive(data, now, MAX_REQUESTS_PER_TURN))

    def _continue(self) -> None:
        s = self.session
        if s is not None:
            self._handle(lambda now: s.continue_pending(now, MAX_REQUESTS_PER_TURN))

    def _handle(self, step: Callable[[float], list[PoolEvent]]) -> None:
        s = self.session
        t = self.transport
        if s is None or t is None:
            return
        srv = self.server
        now = srv.clock()
        before = s.penalties
        try:
            events = step(now)
        except Exception:  # a bug must cost this one connection, never the server or anyone else
            log.exception("session error from %s; closing that connection", self.ip)
            t.abort()
            return
        penalties = s.penalties - before
        if penalties and srv.admission.penalize(self.ip, penalties, now):
            # the address's connections together earned a ban (each may be below its own): this one is
            # closed and the address banned like a connection that earned it alone
            if s.state is not PoolState.CLOSED:
                s.session_input(BANNED, ADDRESS_BAN_REASON, events)
            elif not any(isinstance(ev, CloseRequested) and ev.ban for ev in events):
                events.append(CloseRequested(ADDRESS_BAN_REASON, True))
        out = s.data_to_send()
        if out:
            t.write(out)
        if events:
            srv.handle_events(self, events, now)
        if s.state is PoolState.CLOSED:
            t.close()  # flushes what is buffered, then closes
            return
        if s.pending_requests:
            # a pipelined backlog: stop reading this peer, let others run, then take the next batch
            if not self._backlogged:
                self._backlogged = True
                t.pause_reading()
            asyncio.get_running_loop().call_soon(self._continue)
        elif self._backlogged:
            self._backlogged = False
            if not self._paused:
                t.resume_reading()

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or not data:
            return
        if t.get_write_buffer_size() > self.server.limits.max_write_buffer:
            t.abort()
            return
        t.write(data)

    def flush_session(self) -> None:
        if self.session is not None:
            self.write(self.session.data_to_send())

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            if not self._backlogged:
                self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.close()
            self.server.connections.discard(self)
            self.server.admission.release(self.ip)
            self.session = None
        self.transport = None
        self.fd = -1


class PoolServer:
    def __init__(
        self,
        *,
        rules: PoolRules,
        source: TemplateSource | None,
        sink: ShareSink | None = None,
        pool_script: bytes | None = None,
        tag: bytes = b"/pithead/",
        refresh_interval: float = 30.0,
        limits: ServerLimits | None = None,
        clock: Callable[[], float] = time.time,
        extranonce_shard: tuple[int, int] = (0, 1),
        on_ban: Callable[[str, float], None] | None = None,
        broadcast_threads: int | None = None,
        jobs: JobSource | None = None,
        route: ShareRoute | None = None,
        allocator: ExtranonceAllocator | None = None,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        """`extranonce_shard` (index, count) gives this server its slice of the extranonce1 space when it is
        one of several worker processes of one pool; `on_ban(ip, now)` is told of every ban this server
        makes (the workers' supervisor spreads it to the other workers).

        A farm proxy gives no `source` but its own `jobs` (and publishes them, see `publish`), a `route`
        for the judged shares and its own `allocator` (its machines' extranonce1 is a tag of its own width).
        `ssl` serves Stratum over TLS."""
        if source is None and jobs is None:
            raise ValueError("a pool server needs a template source or a job source")
        self.rules = rules
        self.serves_templates = source is not None
        self.source: TemplateSource = source if source is not None else _NoTemplates()
        self.sink = sink
        self.limits = limits or ServerLimits()
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.jobs = JobBook(  # the jobs of the source's templates (empty, unused, when `jobs` is given)
            mode="pool" if rules.mode == "pool" and jobs is None else "solo",
            pool_script=pool_script,
            tag=tag,
            extranonce2_size=rules.extranonce2_size,
            clear_version_bits=rules.version_mask,
        )
        # what the sessions take their jobs from: the book of the source's templates, or the given one
        self.job_source: JobSource = self.jobs if jobs is None else jobs
        self.route = route
        self.ssl = ssl
        self.version_mask_limit: int | None = None  # see limit_version_mask
        self.allocator = allocator if allocator is not None else ExtranonceAllocator(
            salt=int.from_bytes(os.urandom(4), "big"), shard=extranonce_shard)
        self.on_ban = on_ban
        # Threads for the native notify fan-out: every core when this is the only pool process; 1 when the
        # pool runs as one worker per core; 0 turns the fan-out off (transport writes only).
        self.broadcast_threads = min(4, os.cpu_count() or 1) if broadcast_threads is None else broadcast_threads
        self.admission = Admission(self.limits.max_connections_per_ip, self.limits.ban_seconds,
                                   ipv6_prefix=self.limits.ban_ipv6_prefix)
        self.stats = StatsBook()
        self.metrics = ServerMetrics()
        self.connections: set[StratumConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._last_template: BlockTemplate | None = None
        self._last_generation_at = 0.0  # time.monotonic() of the last job generation
        self._submit_tasks: set[asyncio.Task[None]] = set()
        # Block candidates by the block they build on (see `found_block`): the first goes to the nodes, its
        # siblings wait for its verdict; a parent the pool has already solved takes no more candidates.
        self._siblings: dict[bytes, list[tuple[BlockFound, float]]] = {}
        self._solved: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self._sink_errors = 0
        self.template_ready = asyncio.Event()
        self.generation_listeners: list[Callable[[], None]] = []
        """Called after every new generation of jobs (the SV2 endpoint sends its channels their jobs)."""

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 3333, **kw: Any) -> tuple[str, int]:
        """Listen and start the background tasks; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        current = self.source.current()
        if current is not None:
            self._safe_on_template(current, new_block=True)
        if self.ssl is not None:
            kw.setdefault("ssl", self.ssl)
        self._server = await loop.create_server(
            lambda: StratumConnection(self), host, port, reuse_address=True, backlog=4096, **kw
        )
        self._runner = asyncio.create_task(self._run_background(), name="pool-background")
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def _run_background(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.serves_templates:  # a proxy's jobs are published to it instead
                tg.create_task(self._consume_templates(), name="pool-templates")
                tg.create_task(self._refresh_loop(), name="pool-refresh")
            tg.create_task(self._sweep_loop(), name="pool-sweep")

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, flush and close every connection, stop the tasks; waits for block submits."""
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for parent in list(self._siblings):  # candidates still waiting on a sibling's verdict: send them now
            for ev, at in self._siblings.pop(parent):
                self._spawn_submit(ev, at)
        if self._submit_tasks:
            await asyncio.wait(self._submit_tasks, timeout=grace)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), grace)

    # --- templates → jobs → notify ---------------------------------------------------------------------
    async def _consume_templates(self) -> None:
        async for update in self.source.updates():
            if update.template is self._last_template:
                continue
            new_block = update.new_block or update.template.prev_hash != self.jobs.tip
            if not new_block and time.monotonic() - self._last_generation_at < self.refresh_interval:
                continue  # a mempool refresh: the refresh loop picks it up at its interval
            self._safe_on_template(update.template, new_block)

    def _safe_on_template(self, template: BlockTemplate, new_block: bool | None) -> None:
        """on_template for the background loops: a template we cannot build jobs from (a bug, an odd
        node answer) is logged and skipped — the miners keep the last good work, the loops keep running."""
        try:
            self.on_template(template, new_block)
        except Exception:
            log.exception("could not make jobs from the template at height %d; keeping the last ones",
                          template.height)

    async def _refresh_loop(self) -> None:
        """At most one clean_jobs=false job per `refresh_interval`: a source that reports every new
        mempool transaction must not turn into a notify flood for the miners."""
        while True:
            await asyncio.sleep(max(0.05, self.refresh_interval - (time.monotonic() - self._last_generation_at)))
            if time.monotonic() - self._last_generation_at < self.refresh_interval:
                continue
            current = self.source.current()
            if current is not None and current is not self._last_template:
                self._safe_on_template(current, new_block=None)

    def on_template(self, template: BlockTemplate, new_block: bool | None) -> None:
        """A new generation of jobs, sent to every ready miner (clean_jobs when the tip changed)."""
        t0 = time.perf_counter()
        self._last_template = template
        self._last_generation_at = time.monotonic()
        self.jobs.new_template(template, new_block, ntime=max(template.curtime, int(self.clock())))
        clean = self.jobs.current_clean
        n = 0
        if self.jobs.mode == "pool":
            ij = self.jobs.job_for(None)
            if ij is not None:
                # the hot loop of a new block: the same pre-serialized line for everyone, nothing else
                n = self._broadcast(ij, ij.line(clean))
        else:
            # solo: a line per payout script (no job built: see JobBook.broadcast), written to its miners
            groups: dict[bytes, list[StratumConnection]] = {}
            for c in self.connections:
                s = c.session
                if s is not None and s.state is PoolState.READY:
                    script = s.payout_script
                    if script:
                        group = groups.get(script)
                        if group is None:
                            groups[script] = [c]
                        else:
                            group.append(c)
            made = self.jobs.broadcast(groups, clean)
            if made is not None:
                ij, lines = made
                for script, conns in groups.items():
                    n += self._broadcast(ij, lines[script], conns=conns)
        for listener in self.generation_listeners:
            listener()
        self.metrics.last_broadcast_ms = (time.perf_counter() - t0) * 1000
        self.metrics.last_broadcast_miners = n
        self.metrics.last_broadcast_at = time.time()
        self.template_ready.set()
        log.info(
            "job for height %d (%s, %d txs) sent to %d miners in %.1f ms",
            template.height, "new block" if clean else "refresh", len(template.transactions), n,
            self.metrics.last_broadcast_ms,
        )

    def limit_version_mask(self, mask: int) -> None:
        """Let miners roll at most `mask` from now on (a proxy's upstream grant): each miner that negotiated
        rolling gets mining.set_version_mask when its mask changes (BIP310: at once), a new one negotiates
        within it, and a wider mask later gives back what the miner asked for."""
        self.version_mask_limit = mask
        for c in list(self.connections):
            if c.session is not None:
                c.session.set_version_mask(mask)
                c.flush_session()

    def publish(self, ij: IssuedJob, clean: bool, only: Callable[[PoolSession], bool] | None = None) -> int:
        """Send a job made elsewhere (a proxy's relayed job) to every READY miner, or to those `only` picks;
        returns how many. The pre-serialized line goes out as a template's does (`_broadcast`)."""
        return self._broadcast(ij, ij.line(clean), only)

    def _broadcast(self, ij: Any, line: bytes, only: Callable[[PoolSession], bool] | None = None,
                   conns: list[StratumConnection] | None = None) -> int:
        """Write `line` to every READY miner (or those of `conns`), or those `only` picks (their sessions
        take `ij`); returns how many.

        With the native fan-out, connections whose transport has nothing queued get the line from C, outside
        the GIL, over `broadcast_threads` threads; the rest (a queue to keep in order, no native module)
        go through their transport, as does whatever a full socket buffer did not take."""
        max_buffer = self.limits.max_write_buffer
        ready = PoolState.READY
        fast = _fanout is not None and self.broadcast_threads > 0
        fds: list[int] = []
        direct: list[StratumConnection] = []
        n = 0
        for c in self.connections if conns is None else conns:
            s = c.session
            t = c.transport
            if s is None or t is None or s.state is not ready or (only is not None and not only(s)):
                continue
            s.take_job(ij)
            queued = t.get_write_buffer_size()
            if queued > max_buffer:
                t.abort()  # not reading our messages: gone or hostile
                continue
            n += 1
            # a closing transport's descriptor may already be closed (and reused): never write to it by fd
            if fast and not queued and c.fd >= 0 and not t.is_closing():
                fds.append(c.fd)
                direct.append(c)
            else:
                t.write(line)
        if fds:
            assert _fanout is not None
            for i, sent in _fanout.send_all(fds, line, self.broadcast_threads):
                t = direct[i].transport
                if t is not None:  # the transport queues the rest, or meets the error and closes
                    t.write(line[max(sent, 0):])
        return n

    # --- events ----------------------------------------------------------------------------------------
    def handle_events(self, conn: StratumConnection, events: list[PoolEvent], now: float) -> None:
        for ev in events:
            if isinstance(ev, ShareJudged):
                self.record_share(ev, conn.ip, now)
                if self.route is not None and conn.session is not None:
                    self.route.share_judged(conn.session.extranonce1, ev, now)
            elif isinstance(ev, BlockFound):
                self.found_block(ev, now)
            elif isinstance(ev, CloseRequested):
                if ev.ban:
                    log.warning("banning %s for %.0f s: %s", conn.ip, self.limits.ban_seconds, ev.reason)
                    self.admission.ban(conn.ip, now)
                    if self.on_ban is not None:
                        self.on_ban(conn.ip, now)
                if conn.transport is not None:
                    conn.transport.close()

    def record_share(self, ev: ShareJudged, remote: str, now: float) -> None:
        """A share judged by any endpoint of this pool (a V1 session, or the SV2 endpoint beside it): the
        statistics, and the ledger's event."""
        self.metrics.shares_judged += 1
        w = ev.worker
        reason = None if ev.reason is None else ev.reason.value  # plain text from here on (stats, ledger)
        self.stats.record(now, w.name, w.address, ev.accepted, ev.difficulty, ev.share_difficulty, reason)
        if self.sink is not None:
            self._emit(
                ShareEvent(
                    time=now, worker=w.name, address=w.address, difficulty=ev.difficulty,
                    job_id=ev.submission.job_id, height=ev.job.height if ev.job is not None else 0,
                    accepted=ev.accepted, reject_reason=reason, share_difficulty=ev.share_difficulty,
                    remote=remote,
                    # the job's own network difficulty: the ledger's odds of this share solving a block
                    network_difficulty=0.0 if ev.job is None else target_to_difficulty(ev.job.network_target),
                )
            )

    def _emit(self, event: ShareEvent | BlockEvent) -> None:
        assert self.sink is not None
        try:
            self.sink.put(event)
        except Exception:  # a sink failure must never take the pool down
            self._sink_errors += 1
            if self._sink_errors <= self.limits.max_sink_errors_logged:
                log.exception("share sink refused an event")

    def found_block(self, ev: BlockFound, now: float) -> None:
        """A block candidate from any endpoint of this pool: counted, submitted to every node, recorded.

        One candidate per parent block is at the nodes at a time. A sibling (another candidate on the same
        parent, found while the first is being judged) waits for the first's verdict: if the first was
        accepted the sibling is stale without asking anyone (the pool's own block already took the height),
        else it is submitted in turn. Without this, low-difficulty work on a fast chain (the demo chain, a
        test network, a starved machine) sent the node thousands of doomed siblings, whose verdicts then
        came minutes late for everyone, the pool's next real block included."""
        self.metrics.block_candidates += 1
        log.warning("BLOCK candidate %s at height %d by %s", display_hex(ev.block_hash), ev.job.height, ev.worker.name)
        parent = ev.job.prev_hash
        solved_by = self._solved.get(parent)
        if solved_by is not None:
            self._stale_sibling(ev, now, solved_by)
        elif parent in self._siblings:
            self._siblings[parent].append((ev, now))
        else:
            self._siblings[parent] = []
            self._spawn_submit(ev, now)

    def _spawn_submit(self, ev: BlockFound, now: float) -> None:
        task = asyncio.get_running_loop().create_task(self._submit_block(ev, now))
        self._submit_tasks.add(task)
        task.add_done_callback(self._submit_tasks.discard)

    def _stale_sibling(self, ev: BlockFound, now: float, solved_by: str) -> None:
        """A candidate on a parent the pool's block `solved_by` already built on: recorded as a lost race
        (BIP22 "stale"), credited nothing, never sent to a node."""
        log.warning("block %s stale: the pool's block %s already took height %d", display_hex(ev.block_hash),
                    solved_by, ev.job.height)
        if self.sink is not None:
            self._emit(
                BlockEvent(
                    time=now, height=ev.job.height, block_hash=display_hex(ev.block_hash),
                    worker=ev.worker.name, address=ev.worker.address, reward_sat=ev.job.coinbase_value,
                    fees_sat=ev.job.fees, accepted_by_node=False, node_result="stale",
                    network_difficulty=target_to_difficulty(ev.job.network_target),
                )
            )

    def _settle_siblings(self, ev: BlockFound, accepted: bool) -> None:
        """After a candidate's verdict: its waiting siblings are stale (it was accepted), or the next one is
        submitted (it was not)."""
        parent = ev.job.prev_hash
        waiting = self._siblings.get(parent)
        if accepted:
            self._solved[parent] = display_hex(ev.block_hash)
            while len(self._solved) > MAX_SOLVED_PARENTS:
                self._solved.popitem(last=False)
            for sibling, at in self._siblings.pop(parent, []):
                self._stale_sibling(sibling, at, display_hex(ev.block_hash))
        elif waiting:
            nxt, at = waiting.pop(0)
            self._spawn_submit(nxt, at)
        else:
            self._siblings.pop(parent, None)

    async def _submit_block(self, ev: BlockFound, now: float) -> None:
        block_hex = ev.block.hex()
        try:
            results = await self.source.submit_block(block_hex)
        except ConnectionError as exc:  # no node (or supervisor) to take it: said plainly, the block kept
            log.error("submitblock of %s failed: %s", display_hex(ev.block_hash), exc)
            results = [SubmitResult(node="?", result=f"error: {exc}", accepted=False)]
        except Exception as exc:  # keep the block on record even when every node is unreachable
            log.exception("submitblock failed")
            results = [SubmitResult(node="?", result=f"error: {exc}", accepted=False)]
        verdict = judge_submission(results)
        accepted = verdict.outcome is BlockOutcome.FOUND
        self.metrics.submit_results.append((display_hex(ev.block_hash), results))
        del self.metrics.submit_results[:-100]
        if self.sink is not None:
            self._emit(
                BlockEvent(
                    time=now, height=ev.job.height, block_hash=display_hex(ev.block_hash),
                    worker=ev.worker.name, address=ev.worker.address, reward_sat=ev.job.coinbase_value,
                    fees_sat=ev.job.fees, accepted_by_node=accepted, node_result=verdict.node_result,
                    network_difficulty=target_to_difficulty(ev.job.network_target),
                    stale_fork=verdict.outcome is BlockOutcome.STALE_FORK,
                )
            )
        if verdict.outcome is BlockOutcome.STALE_FORK:
            said = f"; the best chain's node said {verdict.node_result}" if verdict.node_result else ""
            log.warning("block %s on a stale fork: accepted only by nodes off the best chain (%s)%s",
                        display_hex(ev.block_hash), ", ".join(verdict.accepted_by), said)
        else:
            log.warning("block %s %s", display_hex(ev.block_hash),
                        "accepted" if accepted else f"refused ({verdict.node_result})")
        self._settle_siblings(ev, accepted)
        if accepted:  # counted only now: a candidate that lost a race ("inconclusive") found no block
            self.metrics.blocks_found += 1
            self.stats.block(ev.worker.name, ev.worker.address)
            self.broadcast_message(block_message(ev.job.height, ev.worker.name))

    def broadcast_message(self, text: str) -> None:
        for c in list(self.connections):
            if c.session is not None and c.session.state is PoolState.READY:
                c.session.show_message(text)
                c.flush_session()

    # --- housekeeping ----------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            try:
                self.sweep(self.clock())
            except Exception:  # never let housekeeping stop: log and try again next interval
                log.exception("sweep failed")

    def sweep(self, now: float) -> None:
        lim = self.limits
        for c in list(self.connections):
            s = c.session
            if s is None or c.transport is None:
                continue
            if s.state is not PoolState.READY and now - s.connected_at > lim.handshake_timeout:
                c.transport.close()
            elif now - s.last_activity > lim.idle_timeout:
                c.transport.close()
            elif s.state is PoolState.READY:
                s.tick(now)
                c.flush_session()
        self.metrics.connections = len(self.connections)

    def snapshot(self) -> dict[str, object]:
        now = self.clock()
        return {
            "connections": len(self.connections),
            "shares_judged": self.metrics.shares_judged,
            "block_candidates": self.metrics.block_candidates,
            "blocks_found": self.metrics.blocks_found,
            "last_broadcast_ms": self.metrics.last_broadcast_ms,
            "last_broadcast_miners": self.metrics.last_broadcast_miners,
            "pool": self.stats.pool.snapshot(now),
        }

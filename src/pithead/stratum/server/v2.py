"""The pool's Stratum V2 endpoint: an asyncio shell around `stratum.v2.pool.PoolConnection`, beside V1's.

What it is: `Sv2Endpoint` listens on its own port and runs one `Sv2Connection` (an `asyncio.Protocol`)
per client: read, feed the sans-IO connection (Noise handshake, then the Mining messages through its
tables), write what it queues, act on its events. It shares everything that makes it the same pool as
the V1 endpoint of the `PoolServer` it is given:

- the job book (`BookFeed` adapts V1's `JobSource`): the same jobs, built once per template by
  `template.job`, the same staleness and the same duplicate sets; each new generation reaches the V2
  channels through the server's `generation_listeners`. A farm proxy's server has its `RelayBook` as the
  job source: each channel is routed by its extranonce1 (the proxy's tag) like a V1 machine, its jobs carry
  the upstream's difficulty as a ceiling, the proxy calls `push_work` when a job is relayed, and every
  judged share also goes to the server's `ShareRoute` (the proxy forwards what its pool credits);
- the extranonce1 allocator, so no V1 session and no V2 channel ever share a coinbase;
- the pool's rules: the user rule authorizes each channel's `user_identity` (`PoolRules.authorize`),
  vardiff and the start difficulty are the same settings;
- the share check (`stratum.share`, inside the channels), and what follows a judged share or a found
  block: `PoolServer.record_share` (statistics, the ledger's `ShareEvent`) and `PoolServer.found_block`
  (submitted to every node, judged against the best chain, the ledger's `BlockEvent`) — so the ledger
  credits V2 shares exactly as V1's;
- the admission (per-IP connection cap and bans: a client banned on one endpoint is refused on both) and
  the limits (connections in all, handshake and idle timeouts, write buffers).

The pool proves itself with a certificate for each connection (a fresh static key, signed by the
authority key, valid from now for `cert_validity` seconds: `noise.Responder.for_connection`). Bounded:
frames (`MAX_FRAME_FROM_MINER`), frames handled per turn (reading pauses while a backlog is handled),
channels per connection, unsent bytes, the handshake (SetupConnection and a channel open within the
pool's handshake timeout) and idleness.

What it is not: protocol logic (that is `stratum.v2`), or a second pool: it does not run without the
`PoolServer` it sits beside, whose background tasks make the jobs. One process only (`[pool] workers`
= 1; the config refuses the SV2 port with worker processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, MutableSet
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pithead.stratum.server.pool import PoolServer
from pithead.stratum.share import RejectReason, ShareKey
from pithead.stratum.v1.errors import StratumError
from pithead.stratum.v1.jobs import JobSource
from pithead.stratum.v1.pool import BlockFound, PoolWorker, ShareJudged
from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.cert import DEFAULT_VALIDITY
from pithead.stratum.v2.channels import BlockSolved, BookJob, ChannelWorker, ShareJudgement
from pithead.stratum.v2.errors import KeyEncodingError
from pithead.stratum.v2.pool import (
    MAX_FRAMES_PER_TURN,
    ChannelOpened,
    ChannelRules,
    ConnectionEvent,
    ConnectionState,
    HangUp,
    IdentityRefused,
    PoolConnection,
    pool_responder,
)
from pithead.stratum.version import BIP323_MASK

log = logging.getLogger(__name__)

MAX_KEY_FILE = 4096
"""An authority key file is one ~50-character line; anything much longer is not one (refused unread)."""

MAX_CHANNEL_ID = 0xFFFFFFFF
"""Channel ids are U32; the server's counter wraps past it (skipping 0, which names no channel)."""


def read_authority_secret(path: str | Path) -> bytes:
    """The authority secret key in `path`, as `pithead keys new` writes it (base58check of 32 bytes);
    `KeyEncodingError` for a file that is not one, `OSError` for one that cannot be read."""
    with Path(path).open("rb") as fh:
        raw = fh.read(MAX_KEY_FILE + 1)
    if len(raw) > MAX_KEY_FILE:
        raise KeyEncodingError(f"{path}: more than {MAX_KEY_FILE} bytes: not an authority key file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyEncodingError(f"{path}: not ASCII text: not an authority key file") from None
    return cert.decode_secret_key(text)


class BookFeed:
    """V1's `JobSource` (the pool's `JobBook`, or a farm proxy's `RelayBook`) as the V2 channels' `JobFeed`:
    the same jobs, staleness and duplicate sets."""

    __slots__ = ("book",)

    def __init__(self, book: JobSource) -> None:
        self.book = book

    def current(self, payout_script: bytes | None, extranonce1: bytes | None = None) -> BookJob | None:
        issued = self.book.job_for(payout_script, extranonce1)
        if issued is None:
            return None
        mask = BIP323_MASK if issued.version_mask is None else issued.version_mask & BIP323_MASK
        return BookJob(issued.job, issued.job.job_id, issued.max_difficulty, mask)

    def standing(self, job: BookJob) -> RejectReason | None:
        issued = self.book.get(job.book_id, job.job.payout_script)
        if issued is None:
            return RejectReason.JOB_NOT_FOUND
        if self.book.is_stale(issued) or self.book.is_full(job.book_id):
            return RejectReason.STALE
        return None

    def seen(self, job: BookJob) -> MutableSet[ShareKey]:
        return self.book.seen(job.book_id)


class ChannelIds:
    """Channel ids unique across the endpoint's connections (1, 2, ...; wrapping past U32, never 0)."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> int:
        return (next(self._counter) - 1) % MAX_CHANNEL_ID + 1


@dataclass
class Sv2Metrics:
    connections: int = 0
    handshakes: int = 0  # completed Noise handshakes
    hangups: int = 0  # connections this side closed for a protocol reason


class Sv2Connection(asyncio.Protocol):
    """One client's socket; the protocol is `connection` (a `PoolConnection`)."""

    __slots__ = ("_backlogged", "_paused", "connection", "endpoint", "ip", "transport")

    def __init__(self, endpoint: Sv2Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.connection: PoolConnection | None = None
        self.ip = ""
        self._paused = False  # reading paused because the peer does not read our writes
        self._backlogged = False  # reading paused while a backlog of frames is handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.transport = cast(asyncio.Transport, transport)  # uvloop's are no asyncio.Transport subclass
        peer = t.get_extra_info("peername")
        self.ip = peer[0] if peer else "?"
        ep = self.endpoint
        pool = ep.pool
        now = ep.clock()
        full = len(ep.connections) + len(pool.connections) >= pool.limits.max_connections
        refused = "server full" if full else pool.admission.admit(self.ip, now)
        if refused is not None:
            log.debug("SV2: refused %s: %s", self.ip, refused)
            self.ip = ""  # not counted
            t.abort()
            return
        t.set_write_buffer_limits(high=pool.limits.write_buffer_high)
        responder = pool_responder(ep.authority_secret, int(now), ep.cert_validity)
        self.connection = PoolConnection(ep.rules, ep.feed, pool.allocator, responder, now,
                                         next_channel_id=ep.channel_ids, remote=self.ip)
        ep.connections.add(self)

    def data_received(self, data: bytes) -> None:
        c = self.connection
        if c is not None:
            self._handle(lambda now: c.receive(data, now, MAX_FRAMES_PER_TURN))

    def _continue(self) -> None:
        c = self.connection
        if c is not None:
            self._handle(lambda now: c.continue_pending(now, MAX_FRAMES_PER_TURN))

    def _handle(self, step: Callable[[float], list[ConnectionEvent]]) -> None:
        c, t = self.connection, self.transport
        if c is None or t is None:
            return
        ep = self.endpoint
        now = ep.clock()
        handshaking = not c.handshake_done
        try:
            events = step(now)
        except Exception:  # a bug must cost this one connection, never the endpoint or anyone else
            log.exception("SV2 connection error from %s; closing that connection", self.ip)
            t.abort()
            return
        if handshaking and c.handshake_done:
            ep.metrics.handshakes += 1
        self.write(c.data_to_send())
        if events:
            ep.handle_events(self, events, now)
        if c.state is ConnectionState.CLOSED:
            t.close()  # flushes what is queued (a last error reply), then closes
            return
        if c.pending_frames:
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
        if t.get_write_buffer_size() > self.endpoint.pool.limits.max_write_buffer:
            t.abort()  # not reading our messages: gone or hostile
            return
        t.write(data)

    def flush(self) -> None:
        if self.connection is not None:
            self.write(self.connection.data_to_send())

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
        if self.connection is not None:
            self.connection.close()
            self.endpoint.connections.discard(self)
            self.endpoint.pool.admission.release(self.ip)
            self.connection = None
        self.transport = None


class Sv2Endpoint:
    """The SV2 endpoint of `pool` (see the module docstring); `start`, then `stop` before the pool's."""

    def __init__(self, pool: PoolServer, authority_secret: bytes, *, cert_validity: int = DEFAULT_VALIDITY,
                 clock: Callable[[], float] | None = None) -> None:
        secp256k1.check_secret(authority_secret)
        self.pool = pool
        self.authority_secret = authority_secret
        self.authority_key = secp256k1.xonly_public(authority_secret)
        self.cert_validity = cert_validity
        self.clock = clock or pool.clock
        self.feed = BookFeed(pool.job_source)
        self.rules = ChannelRules(authorize=self._authorize, vardiff=pool.rules.vardiff,
                                  start_difficulty=pool.rules.start_difficulty,
                                  extranonce2_size=pool.rules.extranonce2_size)
        self.channel_ids = ChannelIds()
        self.metrics = Sv2Metrics()
        self.connections: set[Sv2Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def public_key(self) -> str:
        """The authority key as miners pin it (`stratum2+tcp://HOST:PORT/KEY`)."""
        return cert.encode_public_key(self.authority_key)

    def _authorize(self, user_identity: str) -> ChannelWorker:
        try:
            worker, _ = self.pool.rules.authorize(user_identity, None)
        except StratumError as exc:
            raise IdentityRefused(str(exc)) from None
        return worker

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 3336, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen and follow the pool's jobs; returns the bound (host, port). `reuse_port`: this is one of the
        pool's worker processes, sharing the port with the others (SO_REUSEPORT)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Sv2Connection(self), host, port, reuse_address=True,
                                                reuse_port=reuse_port or None, backlog=4096)
        self.pool.generation_listeners.append(self.push_work)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="pool-sv2-sweep")
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, flush and close every connection, stop following the pool."""
        with contextlib.suppress(ValueError):
            self.pool.generation_listeners.remove(self.push_work)
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), grace)

    # --- jobs ------------------------------------------------------------------------------------------
    def push_work(self) -> None:
        """A new generation of jobs: every channel of every connection gets its own."""
        now = self.clock()
        for c in list(self.connections):
            conn = c.connection
            if conn is None or c.transport is None:
                continue
            try:
                events = conn.push_work(now)
            except Exception:  # one connection's bug never keeps the others from their work
                log.exception("SV2: could not send work to %s; closing that connection", c.ip)
                c.transport.abort()
                continue
            c.flush()
            if events:
                self.handle_events(c, events, now)

    # --- events ----------------------------------------------------------------------------------------
    def handle_events(self, c: Sv2Connection, events: list[ConnectionEvent], now: float) -> None:
        pool = self.pool
        for ev in events:
            if isinstance(ev, ShareJudgement):
                judged = ShareJudged(_pool_worker(ev.worker), ev.job, ev.submission, ev.accepted, ev.reason,
                                     ev.difficulty, ev.share_difficulty, ev.is_block, ev.hash_int, ev.version)
                pool.record_share(judged, c.ip, now)
                if pool.route is not None:
                    pool.route.share_judged(ev.extranonce1, judged, now)
            elif isinstance(ev, BlockSolved):
                if pool.job_source.builds_blocks:  # a proxy's upstream pool builds the block from the share
                    pool.found_block(BlockFound(_pool_worker(ev.worker), ev.job, ev.block, ev.block_hash), now)
            elif isinstance(ev, ChannelOpened):
                log.debug("SV2: %s opened %s channel %d for %s", c.ip, ev.kind.value, ev.channel_id, ev.worker.name)
            elif isinstance(ev, HangUp):
                self.metrics.hangups += 1
                log.info("SV2: closing %s: %s", c.ip, ev.reason)
                if ev.ban:
                    log.warning("banning %s for %.0f s: %s", c.ip, pool.limits.ban_seconds, ev.reason)
                    pool.admission.ban(c.ip, now)
                    if pool.on_ban is not None:
                        pool.on_ban(c.ip, now)
                if c.transport is not None:
                    c.transport.close()

    # --- housekeeping ----------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.pool.limits.sweep_interval)
            try:
                self.sweep(self.clock())
            except Exception:  # never let housekeeping stop: log and try again next interval
                log.exception("SV2 sweep failed")

    def sweep(self, now: float) -> None:
        """Handshake and idle timeouts; vardiff for quiet channels."""
        lim = self.pool.limits
        for c in list(self.connections):
            conn = c.connection
            if conn is None or c.transport is None:
                continue
            if not conn.ready and now - conn.connected_at > lim.handshake_timeout:
                log.info("SV2: closing %s: no channel open after %.0f s", c.ip, lim.handshake_timeout)
                c.transport.close()
            elif now - conn.last_activity > lim.idle_timeout:
                c.transport.close()
            else:
                conn.tick(now)
                c.flush()
        self.metrics.connections = len(self.connections)


def _pool_worker(worker: ChannelWorker) -> PoolWorker:
    """The channel's worker as V1's record (it is one: the pool's rule made it)."""
    return worker if isinstance(worker, PoolWorker) else PoolWorker(worker.name, worker.address, worker.payout_script)

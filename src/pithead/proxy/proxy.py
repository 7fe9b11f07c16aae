"""`FarmProxy`: a farm's machines on the pool's own server shell, mining through a few connections to
upstream pools, with failover.

What it is: the assembly, and the policy that ties the parts together.

- Machines over Stratum V2 too (with an authority key of the proxy's own): the pool's SV2 endpoint
  (`pithead.stratum.server.v2.Sv2Endpoint`) on the same server, standard and extended channels; each
  channel's extranonce1 is a tag from the same allocator, routed, capped and forwarded as a V1 machine is.
- Machines: the pool's asyncio shell (`pithead.stratum.server.pool.PoolServer`) and its sans-IO sessions,
  unchanged — every firmware dialect, BIP310, suggest_difficulty, extranonce.subscribe, bounds, bans, the
  notify fan-out, TLS — built with no template source: its sessions take their jobs from the `RelayBook`
  (`pithead.proxy.jobs`), each machine's extranonce1 is its tag (an allocator of `tag_bytes`), and every
  judged share comes back here (`share_judged`, the server's `ShareRoute`). A machine's handshake never
  waits on a pool: subscribe is answered from the tag allocator, and its first job comes as soon as its
  upstream connection has one.
- Shares: each is judged locally by the session, at the machine's own vardiff difficulty, which never
  exceeds its pool's (each relayed job carries the pool's difficulty as a ceiling; before a job goes out,
  every machine above it gets set_difficulty first). A share the pool would credit — its hash meets the
  pool's difficulty for that job, or it solves a block — is forwarded at once on the connection its job
  came from, exactly once (the session's duplicate check runs first), with the machine's extranonce2 behind
  its tag and the header's version as BIP310 asks the pool to rebuild it. The machine is answered on the
  proxy's own judgement (every aggregating proxy must: the pool's verdict comes later); the pool's answer is
  counted per upstream and per machine (`pithead.proxy.figures`), so its rejects are never hidden.
- Upstreams: Stratum V1 pools and Stratum V2 ones (`stratum2+tcp://HOST:PORT/AUTHORITY_KEY`: the translator,
  one extended channel per connection, the machines' extranonce subdivided inside the channel's), mixed
  freely in one failover; each over `connections_per_upstream` client shells (`pithead.proxy.upstream`), all connected
  all the time (a standby pool's jobs are already here when the active one fails). Health and the choice of
  pool are `pithead.proxy.failover`'s; when the choice changes, every machine is placed on a connection of
  the new pool and gets its job with clean_jobs (and set_version_mask, set_difficulty first when they
  change): no reconnect, no new extranonce (the tag stays; only coinb1 changes). A connection that dies
  moves its machines to a sibling connection the same way, and its unanswered shares are counted as lost.
- SV2 upstreams follow the farm: each channel opens with `sv2_nominal_hash_rate` (before any machine is
  behind it); then UpdateChannel declares the hashrate of the machines on it (`channel_hash_rates`: their
  locally judged shares, or their difficulty at the vardiff target), at most every `sv2_update_interval`
  and only on a change of UPDATE_CHANNEL_CHANGE, so the pool's target follows the farm. A job that forbids
  version rolling (`version_rolling_allowed = false`: work with mask 0) narrows the machines' mask to 0
  before it goes out (`_limit_masks`), so rolled shares are refused to the machine, never lost upstream.
- Keepalive: a pool that sends no new job for `keepalive_interval` gets its current job re-sent to its
  machines with a later ntime (firmware drops a silent pool after 60-120 s).
- The operator: `switch` (pin a pool, or `auto`), `drain` and `resume`; `snapshot` for the API;
  `live_machines` (V1 sessions and SV2 channels alike) behind `machine_snapshot` and `last_credited` (the
  farm's "no shares" alert, in-process or over the API's `/proxy/api/credited`).

What it is not: the protocol (the sessions), HTTP (`pithead.web.proxy`) or the process
(`pithead.app.proxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pithead.chain.compact import difficulty_to_target
from pithead.chain.hashes import display_hex
from pithead.chain.params import network_by_name
from pithead.proxy.extranonce import ExtranonceTooSmall
from pithead.proxy.failover import Failover, PoolChoice, UpstreamHealth
from pithead.proxy.figures import MachineBook, UpstreamFigures
from pithead.proxy.jobs import RelayBook, RelayedJob, RouteKey, UpstreamRoute
from pithead.proxy.upstream import (
    REFUSED_RETRY_S,
    UPSTREAM_IDLE_TIMEOUT,
    Forwarded,
    Sv2Link,
    Upstream,
    UpstreamConnection,
    UpstreamLink,
)
from pithead.stratum.client.connection import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    STOPPED_REASON,
    Backoff,
    Connected,
    Disconnected,
    PoolAddress,
    ShellEvent,
    StratumClient,
)
from pithead.stratum.client.v2 import Sv2Client, Sv2PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.server.stats import HASHES_PER_DIFF1
from pithead.stratum.server.v2 import Sv2Endpoint
from pithead.stratum.v1.client import (
    AuthorizationFailed,
    AuthorizationGranted,
    ClientConfig,
    ClientEvent,
    NewWork,
    PoolMessage,
    RequestFailed,
    ShareAccepted,
    ShareRejected,
    Subscribed,
    VersionRollingNegotiated,
)
from pithead.stratum.v1.pool import PoolRules, PoolSession, PoolState, ShareJudged
from pithead.stratum.v1.work import FoundShare
from pithead.stratum.v2.cert import DEFAULT_VALIDITY
from pithead.stratum.v2.channels import ChannelKind
from pithead.stratum.v2.client import MinerChannelConfig
from pithead.stratum.version import FULL_MASK

log = logging.getLogger(__name__)

PROXY_VERSION = "pithead-proxy/0.1.0"
"""What the proxy calls itself: its user agent upstream and its answer to client.get_version."""
HOUSEKEEPING_S = 0.25
"""How often timeouts, health, keepalives and the choice of pool are looked at. Lost connections act at
once; a pool that goes silent is caught within `answer_timeout` plus this."""
SWEEP_S = 5.0
"""How often machines that left are taken off their connections' counts (only the balance of new machines
over connections depends on it)."""
START_GRACE_S = 3.0
"""At start, how long a lower-priority pool waits for a better one that may still be connecting (within
`upstream_timeout`, whichever is shorter)."""
MAX_DIFFICULTY = 1e15
"""No machine is set above this (a pool's own difficulty is lower by far): vardiff's upper bound."""
MAX_PENDING_PER_CONNECTION = 65_536
"""Shares one upstream connection may have in flight: a farm's burst at a low pool difficulty, not a dead
pool (that is `answer_timeout`'s to catch); bounded, as ~200 bytes each."""
UPDATE_CHANNEL_CHANGE = 0.25
"""How far (relative) the machines' hashrate on an SV2 channel must move from what it last declared before
UpdateChannel is sent again: vardiff noise is not news, a rack coming or going is."""
MAX_LOGGED_PER_KIND = 20
"""Lines logged per kind of repeated problem (a pool rejecting every share must not flood the log)."""


@dataclass(frozen=True, slots=True)
class LiveMachine:
    """A machine connected now: a V1 session's worker, or an SV2 channel's."""

    worker: str
    remote: str  # the IP it connects from
    tag: bytes | None  # its extranonce1 (the proxy's tag; None before subscribe)
    difficulty: float
    connected_at: float
    protocol: str  # "sv1" | "sv2"


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One pool the proxy mines to (what `[[proxy.upstreams]]` says)."""

    name: str
    address: PoolAddress
    user: str
    password: str = "x"
    priority: int = 0
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Everything but the upstreams (what `[proxy]` says)."""

    connections_per_upstream: int = 2
    tag_bytes: int = 2
    extranonce2_size: int = 2
    start_difficulty: float = 1.0
    min_difficulty: float = 0.0001
    share_interval: float = 10.0
    version_mask: int = 0x1FFFE000
    keepalive_interval: float = 30.0
    failback_after: float = 60.0
    stale_after: float = 180.0
    answer_timeout: float = 10.0
    upstream_timeout: float = 10.0
    # asked of every pool after authorize (mining.suggest_difficulty); None: the pool's own start difficulty
    upstream_suggest_difficulty: float | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    # Stratum V2 upstreams: the hashrate each channel declares when it opens (H/s; the pool's first target
    # follows it; 0: the pool's start difficulty)
    sv2_nominal_hash_rate: float = 0.0
    # Stratum V2 upstreams: at most one UpdateChannel per channel this often (seconds), with the hashrate of
    # the machines on it, when it moved by UPDATE_CHANNEL_CHANGE
    sv2_update_interval: float = 30.0
    # a Stratum V2 pool refused for its certificate is tried again after this many seconds
    sv2_refused_retry: float = REFUSED_RETRY_S
    # reconnecting to a pool that is down: the client shell's backoff (first and longest wait, seconds)
    retry_initial: float = BACKOFF_INITIAL
    retry_max: float = BACKOFF_MAX


class FarmProxy:
    """See the module docstring."""

    def __init__(self, settings: ProxySettings, upstreams: Sequence[UpstreamSpec], *,
                 ssl_context: ssl.SSLContext | None = None, sv2_authority: bytes | None = None,
                 sv2_cert_validity: int = DEFAULT_VALIDITY, clock: Callable[[], float] = time.time) -> None:
        """`sv2_authority`: the proxy's own authority secret; the machines may then also speak Stratum V2 to
        it (on the port `start` is given), standard and extended channels, from the pool's SV2 shell."""
        if not upstreams:
            raise ValueError("the proxy needs at least one upstream pool")
        self.settings = settings
        self.clock = clock
        self.book = RelayBook(settings.tag_bytes, settings.extranonce2_size)
        self.rules = PoolRules(
            mode="pool", network=network_by_name("main"),  # "any" worker name: the network is never consulted
            vardiff=VarDiffConfig(settings.share_interval, settings.min_difficulty, MAX_DIFFICULTY),
            start_difficulty=settings.start_difficulty, version_mask=settings.version_mask,
            extranonce2_size=settings.extranonce2_size, user_rule="any", server_version=PROXY_VERSION,
        )
        self.allocator = ExtranonceAllocator(salt=int.from_bytes(os.urandom(4), "big"), size=settings.tag_bytes)
        self.server = PoolServer(rules=self.rules, source=None, jobs=self.book, route=self, allocator=self.allocator,
                                 limits=settings.limits, clock=clock, ssl=ssl_context)
        self.sv2 = (None if sv2_authority is None
                    else Sv2Endpoint(self.server, sv2_authority, cert_validity=sv2_cert_validity, clock=clock))
        self.sv2_host = ""
        self.sv2_port = 0
        self.upstreams: dict[str, Upstream] = {}
        self.specs = {u.name: u for u in upstreams}
        health = []
        for order, spec in enumerate(upstreams):
            self.upstreams[spec.name] = Upstream(
                spec.name, spec.address, spec.user, priority=spec.priority, order=order,
                connections=settings.connections_per_upstream, on_event=self._on_upstream,
                make_link=self._link_maker(spec))
            health.append(UpstreamHealth(spec.name, spec.priority, order))
        self.failover = Failover(health, failback_after=settings.failback_after, stale_after=settings.stale_after,
                                 answer_timeout=settings.answer_timeout,
                                 start_grace=min(START_GRACE_S, settings.upstream_timeout), started_at=clock())
        self.figures = {name: UpstreamFigures() for name in self.upstreams}
        self.machines = MachineBook()
        self.started_at = clock()
        self._targets: dict[float, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._logged: dict[str, int] = {}
        self._swept_at = 0.0
        self._channels_checked_at = float("-inf")
        self.host = ""
        self.port = 0

    def _link_maker(self, spec: UpstreamSpec) -> Callable[[], UpstreamLink]:
        """How each connection to `spec` is made: a V1 client shell, or a V2 one opening one extended channel
        with room for the proxy's tag and the machines' extranonce2 (`pithead.proxy.upstream`)."""
        s = self.settings

        def backoff() -> Backoff:
            return Backoff(s.retry_initial, s.retry_max)

        address = spec.address
        if isinstance(address, Sv2PoolAddress):
            channel = MinerChannelConfig(
                user_identity=spec.user, kind=ChannelKind.EXTENDED, nominal_hash_rate=s.sv2_nominal_hash_rate,
                min_extranonce_size=s.tag_bytes + s.extranonce2_size, vendor="pithead",
                hardware_version="farm-proxy", firmware=PROXY_VERSION, max_pending_shares=MAX_PENDING_PER_CONNECTION)
            sv2_address = address
            return lambda: Sv2Link(Sv2Client([sv2_address], channel, backoff=backoff(),
                                             connect_timeout=s.upstream_timeout, idle_timeout=UPSTREAM_IDLE_TIMEOUT,
                                             clock=self.clock), refused_retry=s.sv2_refused_retry)
        cfg = ClientConfig(username=spec.user, password=spec.password, user_agent=PROXY_VERSION,
                           version_rolling=True, version_mask=s.version_mask, extranonce_subscribe=True,
                           max_pending=MAX_PENDING_PER_CONNECTION,
                           suggest_difficulty=s.upstream_suggest_difficulty)
        return lambda: StratumClient([address], cfg, backoff=backoff(), connect_timeout=s.upstream_timeout,
                                     idle_timeout=UPSTREAM_IDLE_TIMEOUT, ssl_context=spec.ssl_context)

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 3334, sv2_port: int | None = None) -> tuple[str, int]:
        """Listen for machines (V1 on `port`; V2 on `sv2_port` too, with an SV2 authority) and connect to
        every upstream; returns the bound V1 (host, port)."""
        self.host, self.port = await self.server.start(host, port)
        if self.sv2 is not None and sv2_port is not None:
            try:
                self.sv2_host, self.sv2_port = await self.sv2.start(host, sv2_port)
            except OSError:
                await self.server.stop()
                raise
        for up in self.upstreams.values():
            up.start()
        self._task = asyncio.create_task(self._housekeeping(), name="proxy-housekeeping")
        return self.host, self.port

    async def stop(self) -> None:
        """Stop taking machines and shares first, then the upstreams (each waits briefly for the answers to
        what is in flight, so the counts are final)."""
        if self.sv2 is not None and self.sv2_port:
            await self.sv2.stop()
        await self.server.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(up.stop() for up in self.upstreams.values()))

    @property
    def stratum_url(self) -> str:
        return f"stratum+{'ssl' if self.server.ssl is not None else 'tcp'}://{self.host}:{self.port}"

    @property
    def sv2_url(self) -> str | None:
        """Where machines reach the proxy over Stratum V2, pinned to its authority key (None: V1 only)."""
        if self.sv2 is None or not self.sv2_port:
            return None
        return f"stratum2+tcp://{self.sv2_host}:{self.sv2_port}/{self.sv2.public_key}"

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self.tick(self.clock())
            except Exception:  # never let housekeeping stop: the next tick tries again
                log.exception("proxy housekeeping failed")

    def tick(self, now: float) -> None:
        """Timeouts, health, the choice of pool, keepalives; forgets machines that left."""
        s = self.settings
        for up in self.upstreams.values():
            for conn in up.connections:
                if conn.connected_at is not None and not conn.ready and now - conn.connected_at > s.upstream_timeout:
                    self._note_error(up, f"no answer to the handshake within {s.upstream_timeout:.0f} s")
                    conn.client.drop()
                oldest = conn.oldest_unanswered_at()
                if oldest is not None and now - oldest > s.answer_timeout:
                    self._note_error(up, f"a share unanswered for {s.answer_timeout:.0f} s: reconnecting")
                    conn.client.drop()
        self._update_health(now)
        self._decide(now)
        self._update_channels(now)
        active = self.book.active
        for route in list(self.book.routes.values()):
            if route.upstream == active and route.alive and now - route.last_job_at >= s.keepalive_interval:
                rj = self.book.keepalive(route.key, now)
                if rj is not None:
                    self._send(rj, clean=False, only=self._on_route(route))
        if now - self._swept_at >= SWEEP_S:
            self._swept_at = now
            for tag in [t for t in self.book.placed() if not self.allocator.in_use(t)]:
                self.book.unplace(tag)

    def channel_hash_rates(self, now: float) -> dict[RouteKey, float]:
        """The nominal hashrate of the machines on each upstream connection (H/s): each machine's hashrate as
        the proxy judged its shares (the last 5 minutes; not what the pool credited, which is capped by the
        pool's own difficulty), or, for one with no share yet, what its difficulty means at the vardiff
        target (difficulty x 2^32 / share_interval). A worker on several sessions counts once, split."""
        live = [m for m in self.live_machines() if m.tag is not None]
        sessions = Counter(m.worker for m in live)
        rates: dict[RouteKey, float] = {}
        stats = self.server.stats.workers
        for m in live:
            route = self.book.route_of(m.tag)
            if route is None:
                continue
            st = stats.get(m.worker)
            rate = st.hashrate(now)["5m"] if st is not None and st.accepted else 0.0
            if rate <= 0.0:
                rate = m.difficulty * HASHES_PER_DIFF1 / self.settings.share_interval
            rates[route.key] = rates.get(route.key, 0.0) + rate / sessions[m.worker]
        return rates

    def _update_channels(self, now: float) -> None:
        """SV2 upstreams: tell each channel's pool the hashrate of the machines on it (UpdateChannel), so its
        target follows the farm (the channel opened with `sv2_nominal_hash_rate`, before any machine came);
        at most every `sv2_update_interval`, and only when it moved by UPDATE_CHANNEL_CHANGE."""
        if now - self._channels_checked_at < self.settings.sv2_update_interval:
            return  # one look at every machine per interval, not per housekeeping tick (10,000 machines)
        self._channels_checked_at = now
        rates: dict[RouteKey, float] | None = None
        for up in self.upstreams.values():
            for conn in up.connections:
                link = conn.client
                if not conn.ready or not isinstance(link, Sv2Link):
                    continue
                if conn.declared_at is not None and now - conn.declared_at < self.settings.sv2_update_interval:
                    continue
                if rates is None:
                    rates = self.channel_hash_rates(now)
                rate = rates.get((up.name, conn.index), 0.0)
                if rate <= 0.0:
                    continue  # no machine on it: the pool keeps what it has (a zero says nothing)
                declared = conn.declared_rate
                if declared > 0.0 and abs(rate - declared) <= UPDATE_CHANNEL_CHANGE * declared:
                    continue
                if link.update_hash_rate(rate):
                    conn.declared_rate, conn.declared_at = rate, now
                    log.info("upstream %s connection %d: UpdateChannel %.3g H/s", up.name, conn.index, rate)

    # --- upstream events ---------------------------------------------------------------------------------
    def _on_upstream(self, up: Upstream, index: int, ev: ClientEvent | ShellEvent) -> None:
        try:
            self._upstream_event(up, up.connections[index], ev)
        except Exception:  # one pool's odd event must never take the proxy (or the other pools) down
            log.exception("upstream %s connection %d: could not handle %s", up.name, index, type(ev).__name__)

    def _upstream_event(self, up: Upstream, conn: UpstreamConnection, ev: ClientEvent | ShellEvent) -> None:
        now = self.clock()
        key = (up.name, conn.index)
        fig = self.figures[up.name]
        if isinstance(ev, NewWork):
            self._on_job(up, conn, ev, now)
        elif isinstance(ev, ShareAccepted | ShareRejected):
            self._on_answer(up, conn, ev, now)
        elif isinstance(ev, Connected):
            conn.reset()
            conn.connected_at = now
            self.book.open_route(key)
            fig.connects += 1
            if fig.connected_since is None:
                fig.connected_since = now
        elif isinstance(ev, VersionRollingNegotiated):
            conn.version_mask = ev.mask
            route = self.book.routes.get(key)
            if route is not None:
                route.version_mask = ev.mask
            fig.version_mask = ev.mask
            self._check_mask(up, ev.mask)
            if up.name == self.book.active:
                self._limit_masks()
        elif isinstance(ev, Subscribed):
            conn.subscribed = True
            self._maybe_ready(up, conn)
        elif isinstance(ev, AuthorizationGranted):
            conn.authorized = True
            self._maybe_ready(up, conn)
        elif isinstance(ev, AuthorizationFailed):
            self._note_error(up, f"authorization of {ev.worker!r} refused: {ev.reason}")
        elif isinstance(ev, Disconnected):
            self._on_lost(up, conn, ev.reason, now)
        elif isinstance(ev, PoolMessage):
            log.info("upstream %s says: %s", up.name, ev.text)
        elif isinstance(ev, RequestFailed):
            log.info("upstream %s refused %s: %s", up.name, ev.method, ev.reason)
        # DifficultySet and ExtranonceChanged apply from the pool's next job, which carries them
        # (MinerWork.difficulty, .extranonce1); ReconnectRequested ends in Disconnected; BackingOff: nothing

    def _maybe_ready(self, up: Upstream, conn: UpstreamConnection) -> None:
        if conn.ready:
            self.book.route_ready((up.name, conn.index), conn.version_mask)
            self.failover.upstreams[up.name].last_error = None

    def _on_job(self, up: Upstream, conn: UpstreamConnection, ev: NewWork, now: float) -> None:
        key = (up.name, conn.index)
        health = self.failover.upstreams[up.name]
        try:
            rj = self.book.relay(key, ev.work, ev.clean, now)
        except ExtranonceTooSmall as exc:
            if health.refused is None:
                log.error("upstream %s refused: %s", up.name, exc)
            health.refused = str(exc)
            return
        conn.last_job_at = now
        fig = self.figures[up.name]
        fig.difficulty = ev.work.difficulty
        was_ready = health.ready_connections
        self._update_health(now)
        if up.name == self.book.active:
            self._limit_masks()  # a job that forbids version rolling narrows the machines' mask before it goes
            self._send(rj, clean=ev.clean, only=self._on_route(rj.route))
            # machines that became ready while no connection of this pool had work get placed now
            self._place(lambda s: self.book.route_of(s.extranonce1) is None)
        if not was_ready:
            self._decide(now)

    def _on_answer(self, up: Upstream, conn: UpstreamConnection, ev: ShareAccepted | ShareRejected,
                   now: float) -> None:
        record = conn.answered(ev.share)
        if record is None:
            return  # not one of ours (cannot happen: every submit on these clients is forwarded here)
        fig = self.figures[up.name]
        fig.latency_s.append(time.perf_counter() - record.sent_perf)
        machine = self.machines.get(record.machine, now)
        health = self.failover.upstreams[up.name]
        if isinstance(ev, ShareAccepted):
            for counts, credited in ((fig.counts, fig.credited), (machine.counts, machine.credited)):
                counts.on_accepted(record.difficulty)
                credited.add(now, record.difficulty)
            health.reject_run = 0
            if record.is_block:
                log.warning("upstream %s accepted the block-solving share %s of %s", up.name,
                            display_hex(record.share.hash), record.machine)
        else:
            reason = ev.reason.strip().lower() or (str(ev.code) if ev.code is not None else "rejected")
            fig.counts.on_rejected(reason)
            machine.counts.on_rejected(reason)
            health.reject_run += 1
            self._log_once(f"reject:{up.name}", "upstream %s rejected a share of %s: %s", up.name,
                           record.machine, ev.reason)

    def _on_lost(self, up: Upstream, conn: UpstreamConnection, reason: str, now: float) -> None:
        key = (up.name, conn.index)
        was_connected = conn.connected_at is not None
        conn.reset()
        fig = self.figures[up.name]
        if was_connected:
            fig.disconnects += 1
        if reason != STOPPED_REASON:
            self._note_error(up, reason)
        for record in conn.take_in_flight():
            why = "connection lost before the answer"
            fig.counts.lost[why] += 1
            self.machines.get(record.machine, now).counts.lost[why] += 1
            if record.is_block:
                log.error("upstream %s went away before answering the block-solving share %s of %s", up.name,
                          display_hex(record.share.hash), record.machine)
        moved = set(self.book.close_route(key))
        if not any(c.ready for c in up.connections):
            fig.connected_since = None
        self._update_health(now)
        if not self._decide(now) and moved:
            self._place(lambda s: s.extranonce1 in moved)

    # --- health and the choice of pool ------------------------------------------------------------------
    def _update_health(self, now: float) -> None:
        for up in self.upstreams.values():
            h = self.failover.upstreams[up.name]
            ready = [c for c in up.connections
                     if c.ready and self.book.routes.get((up.name, c.index)) is not None
                     and self.book.routes[(up.name, c.index)].current is not None]
            h.ready_connections = len(ready)
            jobs = [c.last_job_at for c in ready if c.last_job_at is not None]
            h.last_job_at = max(jobs) if jobs else None
            unanswered = [t for c in up.connections if (t := c.oldest_unanswered_at()) is not None]
            h.oldest_unanswered_at = min(unanswered) if unanswered else None
            if not any(c.connected_at is not None for c in up.connections):
                h.refused = None  # a refusal is about a connection's extranonce: it is judged again on reconnect

    def _decide(self, now: float) -> bool:
        """Evaluate the choice of pool; moves every machine when it changed. True when it moved them."""
        decision = self.failover.evaluate(now)
        if decision.active == self.book.active:
            return False
        self._switch_to(decision)
        return True

    def _switch_to(self, decision: PoolChoice) -> None:
        previous = self.book.active
        self.book.switch(decision.active)
        if previous is None:
            log.info("mining on upstream %s (%s)", decision.active, decision.reason)
        else:
            log.warning("switching from upstream %s to %s: %s", previous, decision.active, decision.reason)
        self._limit_masks()
        self._place(lambda s: True)

    def _limit_masks(self) -> None:
        """The machines may roll what the active pool granted (every connection of it) and what its current
        jobs allow, within the proxy's own mask; sent to every machine whose mask changes (BIP310
        set_version_mask, before the job it comes with). An SV2 pool's job with version_rolling_allowed =
        false is work with mask 0 (`pithead.stratum.client.v2.miner_work`): the machines get mask 0 and stop
        rolling, and a rolled share on it is refused to the machine with the session's clear reason (bad
        version bits), never accepted and then lost upstream (sv2-apps #650); a later job that allows rolling
        widens the mask again."""
        active = self.book.active
        if active is None:
            return
        ready = [c for c in self.upstreams[active].connections if c.ready]
        if not ready:
            return
        grant = FULL_MASK
        for c in ready:
            grant &= c.version_mask
            route = self.book.routes.get((active, c.index))
            if route is not None and route.alive and route.current is not None:
                grant &= route.current.work.version_mask
        if grant != self.server.version_mask_limit:
            self.server.limit_version_mask(grant)

    def _check_mask(self, up: Upstream, mask: int) -> None:
        """A pool that refuses version rolling, or grants a mask with none of the bits the machines roll
        (the client session keeps only the granted bits within what the proxy asked for), is said once,
        clearly: rolling is off for the machines on it (their shares still flow, at the job's version)."""
        fig = self.figures[up.name]
        if mask & self.settings.version_mask:
            fig.version_note = None
            return
        fig.version_note = (f"the pool grants no version-rolling bit within {self.settings.version_mask:08x}: "
                            "version rolling is off for the machines on it")
        self._log_once(f"mask:{up.name}", "upstream %s: %s", up.name, fig.version_note)

    # --- the machines ------------------------------------------------------------------------------------
    def _on_route(self, route: UpstreamRoute) -> Callable[[PoolSession], bool]:
        book = self.book
        return lambda s: book.route_of(s.extranonce1) is route

    def _place(self, which: Callable[[PoolSession], bool]) -> None:
        """Place the READY machines `which` picks on connections of the active pool and send each of them
        (and no other machine) its connection's current job, clean."""
        placed: dict[int, tuple[UpstreamRoute, set[bytes]]] = {}
        for c in list(self.server.connections):
            s = c.session
            if s is None or s.state is not PoolState.READY or s.extranonce1 is None or not which(s):
                continue
            route = self.book.route_for(s.extranonce1)
            if route is not None:
                placed.setdefault(id(route), (route, set()))[1].add(s.extranonce1)
        for route, tags in placed.values():
            if route.current is not None:
                self._send(route.current, clean=True, only=_tagged(tags))
        self._push_sv2()

    def _push_sv2(self) -> None:
        """Every SV2 channel gets its connection's current job, if it has not got it yet (each is routed by
        its tag, as a V1 machine; the ceiling of the job's pool difficulty comes with it)."""
        if self.sv2 is not None and self.sv2_port:
            self.sv2.push_work()

    def _send(self, rj: RelayedJob, *, clean: bool, only: Callable[[PoolSession], bool]) -> int:
        """One job to the machines `only` picks: first set_difficulty to those above the pool's difficulty,
        then the notify (the same bytes for all, through the shell's fan-out)."""
        now = self.clock()
        ceiling = rj.upstream_difficulty
        for c in list(self.server.connections):
            s = c.session
            if s is not None and s.state is PoolState.READY and only(s):
                s.cap_difficulty(ceiling, now)
                c.flush_session()
        sent = self.server.publish(rj.issued, clean, only)
        self._push_sv2()
        return sent

    # --- shares (the server's ShareRoute) ---------------------------------------------------------------
    def share_judged(self, extranonce1: bytes | None, event: ShareJudged, now: float) -> None:
        """A machine's share, judged by its session or its SV2 channel: forward it when the pool would
        credit it."""
        if not event.accepted:
            return
        rj = self.book.lookup(event.submission.job_id)
        tag = extranonce1
        if rj is None or tag is None:
            return
        if not (event.is_block or event.hash_int <= self._target(rj.upstream_difficulty)):
            return  # the machine's own figures have it (the shell's stats); the pool would refuse it
        up = self.upstreams[rj.route.upstream]
        conn = up.connections[rj.route.key[1]]
        machine = event.worker.name
        fig = self.figures[up.name]
        figures = self.machines.get(machine, now)
        sub = event.submission
        job = rj.work.job
        rolled = event.version ^ job.version
        if rolled & ~rj.work.version_mask & FULL_MASK:
            # bits the pool did not grant (only in flight across a mask change): it would rebuild another header
            for counts in (fig.counts, figures.counts):
                counts.forwarded += 1
                counts.lost["version bits the pool does not allow"] += 1
            return
        share = FoundShare(rj.work, rj.split.upstream_extranonce2(tag, sub.extranonce2), sub.ntime, sub.nonce,
                           event.version, event.hash_int.to_bytes(32, "little"))
        record = Forwarded(share, machine, rj.upstream_difficulty, now, time.perf_counter(), event.is_block)
        for counts in (fig.counts, figures.counts):
            counts.forwarded += 1
            counts.blocks += event.is_block
        if not rj.route.alive or not conn.send(record):
            why = "connection down when it came"
            fig.counts.lost[why] += 1
            figures.counts.lost[why] += 1
            if event.is_block:
                log.error("block-solving share %s of %s could not be sent: upstream %s connection %d is down",
                          display_hex(share.hash), machine, up.name, conn.index)
            return
        if event.is_block:
            log.warning("block-solving share %s of %s sent to upstream %s", display_hex(share.hash), machine, up.name)

    def _target(self, difficulty: float) -> int:
        t = self._targets.get(difficulty)
        if t is None:
            if len(self._targets) > 64:  # a few upstream difficulties are in force at once
                self._targets.clear()
            t = self._targets[difficulty] = difficulty_to_target(difficulty)
        return t

    # --- the operator ------------------------------------------------------------------------------------
    def switch(self, name: str) -> PoolChoice:
        """Pin the machines to upstream `name` (it takes them as soon as it is healthy), or "auto" to go back
        to priorities and health. KeyError for an unknown name."""
        if name == "auto":
            self.failover.unpin()
        else:
            self.failover.pin(name)
        now = self.clock()
        self._decide(now)
        return PoolChoice(self.book.active, None, self.failover.last_reason)

    def drain(self, name: str) -> PoolChoice:
        """Take upstream `name` out of use: its machines move to the next pool now; shares already sent to it
        are still answered (its connections stay open). KeyError for an unknown name."""
        self.failover.drain(name)
        self._decide(self.clock())
        return PoolChoice(self.book.active, None, self.failover.last_reason)

    def resume(self, name: str) -> PoolChoice:
        """Put a drained upstream back in use (it takes the machines back by the usual rules)."""
        self.failover.resume(name)
        self._decide(self.clock())
        return PoolChoice(self.book.active, None, self.failover.last_reason)

    # --- figures -----------------------------------------------------------------------------------------
    def _note_error(self, up: Upstream, why: str) -> None:
        health = self.failover.upstreams[up.name]
        health.last_error = why
        if not health.recent_errors or health.recent_errors[-1] != why:
            health.recent_errors.append(why)
        self._log_once(f"error:{up.name}:{why}", "upstream %s: %s", up.name, why)

    def _log_once(self, kind: str, msg: str, *args: object) -> None:
        n = self._logged.get(kind, 0)
        if n < MAX_LOGGED_PER_KIND:
            self._logged[kind] = n + 1
            log.warning(msg, *args)

    def upstream_snapshot(self, now: float) -> list[dict[str, Any]]:
        out = []
        for up in self.upstreams.values():
            fig = self.figures[up.name]
            health = self.failover.upstreams[up.name]
            conns = []
            for c in up.connections:
                route = self.book.routes.get((up.name, c.index))
                cur = route.current if route is not None else None
                conns.append({
                    "index": c.index, "connected": c.connected_at is not None, "ready": c.ready,
                    "connected_since": c.connected_at,
                    "extranonce1": cur.work.extranonce1.hex() if cur is not None else None,
                    "extranonce2_size": cur.work.extranonce2_size if cur is not None else None,
                    "difficulty": cur.work.difficulty if cur is not None else None,
                    "version_mask": f"{c.version_mask:08x}", "machines": route.machines if route is not None else 0,
                    "in_flight": len(c.in_flight),
                    # SV2: the hashrate the channel last declared to the pool (UpdateChannel; None: not yet)
                    "declared_hash_rate": c.declared_rate if c.declared_at is not None else None,
                    "last_job_age_s": None if c.last_job_at is None else now - c.last_job_at,
                })
            out.append({
                "name": up.name, "url": str(up.address), "user": up.user, "priority": up.priority,
                "protocol": "sv2" if isinstance(up.address, Sv2PoolAddress) else "sv1",
                "state": self.failover.state(up.name, now).value,
                "problem": self.failover.problem(up.name, now), "last_error": health.last_error, "recent_errors": list(health.recent_errors),
                "connections": conns, "connected_since": fig.connected_since,
                "difficulty": fig.difficulty,
                "version_mask": None if fig.version_mask is None else f"{fig.version_mask:08x}",
                "version_rolling": fig.version_note or "on",
                "shares": fig.counts.snapshot(), "latency": fig.latency(),
                "credited": [asdict(w) for w in fig.credited.windows(now, fig.connected_since)],
                "connects": fig.connects, "disconnects": fig.disconnects,
            })
        return out

    def live_machines(self) -> list[LiveMachine]:
        """Every machine connected now, by worker: each V1 session's authorized workers and each open SV2
        channel (standard or extended), alike."""
        out: list[LiveMachine] = []
        for c in self.server.connections:
            s = c.session
            if s is not None:
                for name in s.workers:
                    out.append(LiveMachine(name, s.remote or "", s.extranonce1, s.difficulty, s.connected_at, "sv1"))
        if self.sv2 is not None:
            for sc in self.sv2.connections:
                conn = sc.connection
                if conn is None:
                    continue
                for ch in conn.channels.values():
                    if ch.is_open:
                        out.append(LiveMachine(ch.worker.name, sc.ip, ch.extranonce1, ch.level.difficulty,
                                               conn.connected_at, "sv2"))
        return out

    def last_credited(self) -> dict[str, float]:
        """The machines behind the proxy (connected now over V1 or V2, or with pool-side figures) and when the
        pool last credited a share of theirs; for one never credited, when the proxy first saw it (so a machine
        that just came is given the whole of the farm's "hashing but no shares" window before it is judged).
        Call it on the proxy's event loop (it reads the live sessions)."""
        out: dict[str, float] = {}
        for m in self.live_machines():
            out[m.worker] = min(out.get(m.worker, m.connected_at), m.connected_at)
        for name, fig in self.machines.machines.items():
            last = fig.credited.last_at
            out[name] = last if last is not None else min(out.get(name, fig.seen_at), fig.seen_at)
        return out

    def machine_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Per machine (worker name): its sessions (V1) and channels (V2), where it mines, its own figures
        and the pool's."""
        live: dict[str, list[LiveMachine]] = {}
        for m in self.live_machines():
            live.setdefault(m.worker, []).append(m)
        names = set(live) | set(self.machines.machines)
        out = []
        for name in sorted(names):
            mine = live.get(name, [])
            local = self.server.stats.workers.get(name)
            pool = self.machines.machines.get(name)
            routes = [r for m in mine if (r := self.book.route_of(m.tag)) is not None]
            out.append({
                "worker": name, "sessions": len(mine),
                "protocols": sorted({m.protocol for m in mine}),
                "remote": sorted({m.remote for m in mine}),
                "tags": [m.tag.hex() for m in mine if m.tag is not None],
                "difficulty": max((m.difficulty for m in mine), default=None),
                "upstream": routes[0].upstream if routes else None,
                "connection": routes[0].key[1] if routes else None,
                "local": local.snapshot(now) if local is not None else None,
                "pool": None if pool is None else {
                    **pool.counts.snapshot(),
                    "credited": [asdict(w) for w in pool.credited.windows(now, pool.seen_at)],
                    "last_credited": pool.credited.last_at,
                },
            })
        return out

    def snapshot(self, now: float | None = None, *, machines: bool = False) -> dict[str, Any]:
        """Everything the operator API shows (JSON-ready): the choice of pool and why, each upstream, the
        machines in total (and each one, with `machines`)."""
        now = self.clock() if now is None else now
        ready = sum(1 for c in self.server.connections if c.session is not None and c.session.state is PoolState.READY)
        upstream_conns = sum(len(up.ready_connections) for up in self.upstreams.values())
        out: dict[str, Any] = {
            "stratum_url": self.stratum_url, "started_at": self.started_at,
            "active": self.book.active, "pinned": self.failover.pinned,
            "draining": sorted(self.failover.draining), "reason": self.failover.last_reason,
            "failovers": self.failover.switches, "last_switch_at": self.failover.last_switch_at,
            "machines": {"connected": len(self.server.connections), "ready": ready,
                         "sv2_connections": 0 if self.sv2 is None else len(self.sv2.connections),
                         "shares_judged": self.server.metrics.shares_judged},
            "sv2_url": self.sv2_url,
            "upstream_connections": upstream_conns,
            # Braiins Farm Proxy's figure: how much the upstream connections fold the machines' sessions
            "aggregation_percent": 0.0 if not ready else max(0.0, 100.0 - upstream_conns / ready * 100.0),
            "upstreams": self.upstream_snapshot(now),
        }
        if machines:
            out["machine_list"] = self.machine_snapshot(now)
        return out


def _tagged(tags: set[bytes]) -> Callable[[PoolSession], bool]:
    """Picks the sessions whose extranonce1 (their tag) is in `tags`."""
    return lambda s: s.extranonce1 in tags

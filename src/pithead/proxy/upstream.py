"""The connections to one upstream pool: a few client shells, and the shares in flight on each.

What it is: `Upstream` holds `connections` `UpstreamConnection`s to one pool, each an `UpstreamLink` — the
interface both Stratum versions' client shells offer (`run` with V1-shaped events, `submit`, `drop`,
`stop`), so failover mixes V1 and V2 pools:

- Stratum V1: `pithead.stratum.client.connection.StratumClient` (connect, the handshake of the sans-IO
  client session — BIP310 configure with the proxy's mask, subscribe, authorize, extranonce.subscribe —,
  reconnect with backoff; `client.reconnect` honoured for the same host only, as ckpool's proxy does);
- Stratum V2 (`stratum2+tcp://HOST:PORT/AUTHORITY_KEY`): `Sv2Link`, the miner's `Sv2Client` opening one
  *extended* channel per connection (the Noise handshake checks the pool's certificate against the pinned
  authority key), asking for `min_extranonce_size` = the proxy's tag + the machines' extranonce2, so the
  machines' extranonce is subdivided inside the channel's extranonce space exactly as inside a V1 pool's
  extranonce2 (`pithead.proxy.extranonce`); an opened channel reports as V1's subscribe and authorize
  did, a job as `NewWork`, a SetTarget that makes the job harder as new work at the new target. A pool
  refused for its certificate (a wrong key, an expired certificate, no SV2 server behind the port) is a
  clear error and a failover, never the end of the connection's task: the link tries it again after
  `REFUSED_RETRY_S` (an operator may have fixed the key; nothing is marked failed for good).

Every event of a
connection goes to the callback the proxy gives, with the connection's index; the proxy decides what it
means (`pithead.proxy.proxy`). Each connection keeps its forwarded shares until the pool answers them
(`Forwarded`, in send order), so a connection that dies with shares unanswered reports exactly which
(`take_in_flight`): counted as lost, never silently dropped.

What it is not: protocol logic (the client session), the choice of pool (`pithead.proxy.failover`) or the
machines (`pithead.proxy.proxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pithead.stratum.client.connection import (
    BackingOff,
    EventCallback,
    PoolAddress,
    ShellEvent,
    deliver_event,
)
from pithead.stratum.client.v2 import PoolRefused, Sv2Client
from pithead.stratum.v1.client import ClientEvent
from pithead.stratum.v1.work import FoundShare

UPSTREAM_IDLE_TIMEOUT = 600.0
"""Seconds of silence after which a connection is dropped by the client shell itself. The proxy's own
health checks (no new job for `stale_after`, a share unanswered for `answer_timeout`) act much sooner; this
is the backstop for a pool that keeps the socket open and says nothing."""

REFUSED_RETRY_S = 30.0
"""How long an SV2 pool refused for its certificate waits before it is tried again (the failover has moved
the machines on at once; a certificate does not fix itself within seconds, and retrying sooner would only
hammer a server we must not trust)."""

UpstreamCallback = Callable[["Upstream", int, ClientEvent | ShellEvent], None]


class UpstreamLink(Protocol):
    """One connection's client shell, V1 or V2 (see the module docstring)."""

    def run(self, on_event: EventCallback) -> Coroutine[Any, Any, None]: ...

    def submit(self, share: FoundShare) -> bool: ...

    def drop(self) -> None: ...

    def stop(self) -> None: ...


class Sv2Link:
    """`Sv2Client` as an upstream link: one extended channel, and a refused pool retried later rather
    than the end of the task (see the module docstring)."""

    def __init__(self, client: Sv2Client, *, refused_retry: float = REFUSED_RETRY_S) -> None:
        self.client = client
        self.refused_retry = refused_retry
        self._stopping = asyncio.Event()

    def run(self, on_event: EventCallback) -> Coroutine[Any, Any, None]:
        self._stopping.clear()
        return self._run(on_event)

    async def _run(self, on_event: EventCallback) -> None:
        while not self._stopping.is_set():
            try:
                await self.client.run(on_event)
                return
            except PoolRefused:
                # the client's Disconnected said why ("refused: ..."): the proxy has noted it and failed over
                await deliver_event(on_event, BackingOff(self.refused_retry))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.refused_retry)
            self.client.refused.clear()

    def submit(self, share: FoundShare) -> bool:
        return self.client.submit(share)

    def update_hash_rate(self, nominal_hash_rate: float) -> bool:
        """UpdateChannel with the hashrate of the machines on this channel (False: no open channel)."""
        return self.client.update_channel(nominal_hash_rate)

    def drop(self) -> None:
        self.client.drop()

    def stop(self) -> None:
        self._stopping.set()
        self.client.stop()


@dataclass(slots=True)
class Forwarded:
    """A machine's share sent to a pool, until the pool answers it."""

    share: FoundShare
    machine: str  # the worker name the machine authorized with
    difficulty: float  # what the pool credits it at (the pool's difficulty for its job)
    sent_at: float  # clock time
    sent_perf: float  # perf_counter, for the round trip
    is_block: bool


class UpstreamConnection:
    """One connection to the pool: its client shell, where its handshake stands, its shares in flight."""

    def __init__(self, index: int, client: UpstreamLink) -> None:
        self.index = index
        self.client = client
        self.task: asyncio.Task[None] | None = None
        self.connected_at: float | None = None  # None while disconnected
        self.subscribed = False
        self.authorized = False
        self.version_mask = 0
        self.last_job_at: float | None = None  # the last job the pool sent (keepalives not counted)
        self.in_flight: dict[int, Forwarded] = {}  # by id() of the FoundShare, in send order
        # SV2: the hashrate this connection's channel last declared (UpdateChannel), and when
        self.declared_rate = 0.0
        self.declared_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.connected_at is not None and self.subscribed and self.authorized

    def reset(self) -> None:
        self.connected_at = None
        self.subscribed = self.authorized = False
        self.version_mask = 0
        self.declared_rate = 0.0  # a new channel opens with the configured nominal hashrate
        self.declared_at = None

    def send(self, record: Forwarded) -> bool:
        """Submit a forwarded share; False when it cannot go (disconnected, or its job is from an earlier
        connection: the pool would not know it)."""
        if not self.client.submit(record.share):
            return False
        self.in_flight[id(record.share)] = record
        return True

    def answered(self, share: FoundShare) -> Forwarded | None:
        return self.in_flight.pop(id(share), None)

    def take_in_flight(self) -> list[Forwarded]:
        """Every share still unanswered (the connection is gone), in send order."""
        records = list(self.in_flight.values())
        self.in_flight.clear()
        return records

    def oldest_unanswered_at(self) -> float | None:
        first = next(iter(self.in_flight.values()), None)
        return first.sent_at if first is not None else None


class Upstream:
    """One pool over `connections` connections (see the module docstring); `make_link` makes each one's
    client shell."""

    def __init__(self, name: str, address: PoolAddress, user: str, *, priority: int, order: int,
                 connections: int, on_event: UpstreamCallback, make_link: Callable[[], UpstreamLink]) -> None:
        self.name = name
        self.address = address
        self.user = user
        self.priority = priority
        self.order = order
        self._on_event = on_event
        self.connections = [UpstreamConnection(i, make_link()) for i in range(connections)]

    def start(self) -> None:
        """Start every connection's client (each reconnects by itself until `stop`)."""
        for conn in self.connections:
            if conn.task is None or conn.task.done():
                conn.task = asyncio.create_task(conn.client.run(self._callback(conn.index)),
                                                name=f"proxy-upstream-{self.name}-{conn.index}")

    def _callback(self, index: int) -> Callable[[ClientEvent | ShellEvent], None]:
        def on_event(ev: ClientEvent | ShellEvent) -> None:
            self._on_event(self, index, ev)

        return on_event

    async def stop(self) -> None:
        """Stop every connection; each waits (briefly, the client's STOP_DRAIN) for the answers to the shares
        it has in flight."""
        for conn in self.connections:
            conn.client.stop()
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks)

    @property
    def ready_connections(self) -> list[UpstreamConnection]:
        return [c for c in self.connections if c.ready]

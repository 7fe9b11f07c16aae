"""The connections to one upstream pool: a few client shells, and the shares in flight on each.

What it is: `Upstream` holds `connections` `UpstreamConnection`s to one pool, each a
`pithead.stratum.client.connection.StratumClient` (connect, the handshake of the sans-IO client session —
BIP310 configure with the proxy's mask, subscribe, authorize, extranonce.subscribe —, reconnect with
backoff; `client.reconnect` honoured for the same host only, as ckpool's proxy does). Every event of a
connection goes to the callback the proxy gives, with the connection's index; the proxy decides what it
means (`pithead.proxy.proxy`). Each connection keeps its forwarded shares until the pool answers them
(`Forwarded`, in send order), so a connection that dies with shares unanswered reports exactly which
(`take_in_flight`): counted as lost, never silently dropped.

What it is not: protocol logic (the client session), the choice of pool (`pithead.proxy.failover`) or the
machines (`pithead.proxy.proxy`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from pithead.stratum.client.connection import Backoff, PoolAddress, ShellEvent, StratumClient
from pithead.stratum.v1.client import ClientConfig, ClientEvent
from pithead.stratum.v1.work import FoundShare

UPSTREAM_IDLE_TIMEOUT = 600.0
"""Seconds of silence after which a connection is dropped by the client shell itself. The proxy's own
health checks (no new job for `stale_after`, a share unanswered for `answer_timeout`) act much sooner; this
is the backstop for a pool that keeps the socket open and says nothing."""

UpstreamCallback = Callable[["Upstream", int, ClientEvent | ShellEvent], None]


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

    def __init__(self, index: int, client: StratumClient) -> None:
        self.index = index
        self.client = client
        self.task: asyncio.Task[None] | None = None
        self.connected_at: float | None = None  # None while disconnected
        self.subscribed = False
        self.authorized = False
        self.version_mask = 0
        self.last_job_at: float | None = None  # the last job the pool sent (keepalives not counted)
        self.in_flight: dict[int, Forwarded] = {}  # by id() of the FoundShare, in send order

    @property
    def ready(self) -> bool:
        return self.connected_at is not None and self.subscribed and self.authorized

    def reset(self) -> None:
        self.connected_at = None
        self.subscribed = self.authorized = False
        self.version_mask = 0

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
    """One pool over `connections` connections (see the module docstring)."""

    def __init__(self, name: str, address: PoolAddress, config: ClientConfig, *, priority: int, order: int,
                 connections: int, connect_timeout: float, on_event: UpstreamCallback,
                 ssl_context: ssl.SSLContext | None = None, backoff: Callable[[], Backoff] = Backoff) -> None:
        self.name = name
        self.address = address
        self.config = config
        self.priority = priority
        self.order = order
        self._on_event = on_event
        self.connections = [
            UpstreamConnection(i, StratumClient([address], config, backoff=backoff(), connect_timeout=connect_timeout,
                                                idle_timeout=UPSTREAM_IDLE_TIMEOUT, ssl_context=ssl_context))
            for i in range(connections)
        ]

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

"""The asyncio client shell: failover in order, backoff when every pool is down, client.reconnect.

The peer below is NOT a pool: it is a scripted loopback Stratum endpoint, scoped to these connection
tests, that answers the handshake with fixed replies and sends one recorded notify. Protocol behaviour
is tested sans-IO in test_session.py; against pithead's real pool in tests/miner/test_e2e_pool.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from pithead.stratum.client.connection import (
    BackingOff,
    Backoff,
    Connected,
    Disconnected,
    PoolAddress,
    StratumClient,
    parse_pool_url,
)
from pithead.stratum.v1.client import ClientConfig, NewWork, ReconnectRequested
from pithead.stratum.v1.errors import InvalidPoolUrl

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
NOTIFY = next(
    v for v in json.loads((VECTORS / "stratum_shares.json").read_text())["vectors"] if "public-pool testnet3" in v["name"]
)["given"]["mining.notify_expected"]


def closed_port() -> int:
    """A loopback port with nobody listening (connections are refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ScriptedPeer:
    """Loopback endpoint: answers configure/subscribe/authorize, sends one notify, then runs `after`."""

    def __init__(self, after: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None) -> None:
        self.after = after
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedPeer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def address(self) -> PoolAddress:
        return PoolAddress("127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            authorized = False
            while not authorized:
                raw = await reader.readline()
                if not raw:
                    return
                req = orjson.loads(raw)
                result: Any = True
                if req["method"] == "mining.subscribe":
                    result = [[["mining.notify", "1"]], "00000001", 4]
                elif req["method"] == "mining.configure":
                    result = {"version-rolling": True, "version-rolling.mask": "1fffe000"}
                writer.write(orjson.dumps({"id": req["id"], "result": result, "error": None}) + b"\n")
                authorized = req["method"] == "mining.authorize"
            writer.write(orjson.dumps(NOTIFY) + b"\n")
            await writer.drain()
            if self.after is not None:
                await self.after(writer)
            else:
                await reader.read()  # hold the connection until the client leaves
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def test_pool_urls() -> None:
    assert parse_pool_url("stratum+tcp://pool.example:3333") == PoolAddress("pool.example", 3333)
    assert parse_pool_url("127.0.0.1:4444") == PoolAddress("127.0.0.1", 4444)
    for bad in ("http://pool:80", "stratum+tcp://pool", "stratum+tcp://:3333", "stratum+tcp://pool:99999"):
        with pytest.raises(InvalidPoolUrl):
            parse_pool_url(bad)


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0
    j = Backoff(initial=10.0, maximum=10.0, jitter=0.2, rng=random.Random(1))
    assert all(8.0 <= j.next_delay() <= 12.0 for _ in range(100))
    with pytest.raises(ValueError):
        Backoff(initial=0)


async def test_fails_over_to_the_next_pool_in_order() -> None:
    events: list[Any] = []
    async with ScriptedPeer() as peer:
        down = PoolAddress("127.0.0.1", closed_port())
        client = StratumClient([down, peer.address], ClientConfig("w"), backoff=Backoff(0.01, 0.01))

        def on_event(ev: Any) -> None:
            events.append(ev)
            if isinstance(ev, NewWork):
                client.stop()

        await asyncio.wait_for(client.run(on_event), 10)
    kinds = [type(e) for e in events]
    assert isinstance(events[0], Disconnected) and events[0].pool == down and "connect failed" in events[0].reason
    assert Connected(peer.address) in events
    assert NewWork in kinds and BackingOff not in kinds  # the backup answered: no backoff needed
    assert peer.connections == 1


async def test_all_pools_down_backs_off_instead_of_spinning() -> None:
    pools = [PoolAddress("127.0.0.1", closed_port()), PoolAddress("127.0.0.1", closed_port())]
    naps: list[float] = []
    client: StratumClient

    async def fake_sleep(delay: float) -> None:
        naps.append(delay)
        if len(naps) == 5:
            client.stop()

    client = StratumClient(pools, ClientConfig("w"), backoff=Backoff(1.0, 8.0, jitter=0.0), sleep=fake_sleep)
    backoffs: list[float] = []
    await asyncio.wait_for(client.run(lambda ev: backoffs.append(ev.delay) if isinstance(ev, BackingOff) else None), 10)
    # Each pool is tried once per round, then the client sleeps a growing, capped delay.
    assert naps == [1.0, 2.0, 4.0, 8.0, 8.0] == backoffs
    assert client.connect_attempts == len(pools) * len(naps)


async def test_short_productive_sessions_also_back_off_and_return_to_the_primary() -> None:
    async def drop_at_once(writer: asyncio.StreamWriter) -> None:
        writer.close()

    naps: list[float] = []
    async with ScriptedPeer(after=drop_at_once) as primary, ScriptedPeer() as backup:
        client: StratumClient

        async def fake_sleep(delay: float) -> None:
            naps.append(delay)
            if len(naps) == 3:
                client.stop()

        client = StratumClient(
            [primary.address, backup.address], ClientConfig("w"), backoff=Backoff(0.5, 4.0, jitter=0.0), sleep=fake_sleep
        )
        await asyncio.wait_for(client.run(lambda ev: None), 10)
        # The primary gave work each time, so the client went back to it (never to the backup), pausing
        # between the short sessions instead of reconnecting in a loop.
        assert primary.connections == 3 and backup.connections == 0
        assert naps == [0.5, 1.0, 2.0]


async def test_client_reconnect_moves_to_the_port_the_pool_names() -> None:
    async with ScriptedPeer() as second:

        async def redirect(writer: asyncio.StreamWriter) -> None:
            msg = {"id": None, "method": "client.reconnect", "params": ["127.0.0.1", second.port, 0]}
            writer.write(orjson.dumps(msg) + b"\n")
            await writer.drain()
            await asyncio.sleep(5)

        async with ScriptedPeer(after=redirect) as first:
            seen: list[Any] = []
            client = StratumClient([first.address], ClientConfig("w"), backoff=Backoff(0.01, 0.01))

            def on_event(ev: Any) -> None:
                seen.append(ev)
                if isinstance(ev, Connected) and ev.pool == second.address:
                    client.stop()

            await asyncio.wait_for(client.run(on_event), 10)
    assert ReconnectRequested("127.0.0.1", second.port, 0.0) in seen
    assert [e.pool for e in seen if isinstance(e, Connected)] == [first.address, second.address]


async def test_client_reconnect_to_another_host_is_refused_by_default() -> None:
    async def redirect(writer: asyncio.StreamWriter) -> None:
        msg = {"id": None, "method": "client.reconnect", "params": ["127.0.0.2", 1, 0]}
        writer.write(orjson.dumps(msg) + b"\n")
        await writer.drain()
        await asyncio.sleep(5)

    async with ScriptedPeer(after=redirect) as peer:
        connected: list[PoolAddress] = []
        client = StratumClient([peer.address], ClientConfig("w"), backoff=Backoff(0.01, 0.01))

        def on_event(ev: Any) -> None:
            if isinstance(ev, Connected):
                connected.append(ev.pool)
                if len(connected) == 2:
                    client.stop()

        await asyncio.wait_for(client.run(on_event), 10)
    assert connected == [peer.address, peer.address]  # back to the configured pool, not 127.0.0.2


async def test_submit_without_a_connection_is_dropped() -> None:
    client = StratumClient([PoolAddress("127.0.0.1", 1)], ClientConfig("w"))
    from pithead.stratum.v1.work import MinerWork, NotifiedJob

    share = MinerWork(NotifiedJob("j", bytes(32), b"", b"", (), 2, 3, 4, False), b"", 0, 1.0, 0).unit(0).share(0)
    assert client.submit(share) is False


async def test_a_pool_that_keeps_asking_to_reconnect_gets_backoff() -> None:
    async def reconnect_at_once(writer: asyncio.StreamWriter) -> None:
        writer.write(orjson.dumps({"id": None, "method": "client.reconnect", "params": []}) + b"\n")
        await writer.drain()
        await asyncio.sleep(5)

    naps: list[float] = []
    async with ScriptedPeer(after=reconnect_at_once) as peer:
        client: StratumClient

        async def fake_sleep(delay: float) -> None:
            naps.append(delay)
            if len(naps) == 2:
                client.stop()

        client = StratumClient([peer.address], ClientConfig("w"), backoff=Backoff(0.5, 4.0, jitter=0.0), sleep=fake_sleep)
        await asyncio.wait_for(client.run(lambda ev: None), 10)
    # Three immediate reconnects are honoured as asked (no wait), then each one backs off.
    assert naps == [0.5, 1.0]
    assert peer.connections == 5

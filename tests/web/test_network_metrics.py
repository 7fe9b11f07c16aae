"""Node status over JSON-RPC through the one node client, `RpcClient` (the embedded node, a node that is
down, refuses us, is still warming up or never answers), and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from webseed import BUCKET, Seed, fixed_clock

from pithead.bitcoind.codes import RPC_METHOD_NOT_FOUND
from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.node.node import EmbeddedNode
from pithead.node.testing import running_node
from pithead.web import network
from pithead.web.app import create_app
from pithead.web.network import NodeMonitor
from pithead.web.server import WebServer
from pithead.web.services import NodeRpc, Services


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_status_from_the_embedded_node(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, chain="regtest", rpc_port=0) as node:
        node.mine(bytes([0x51]), 3, 1_000_000)  # OP_TRUE outputs; regtest blocks take a few tries
        rpc = RpcClient(node.rpc_url, cookie_file=node.cookie_path, name="embedded")
        typed: NodeRpc = rpc  # mypy checks the one client against the web's protocol
        seen: list[tuple[str, float]] = []
        monitor = NodeMonitor(typed, last_template_time=lambda: 1000.0, clock=lambda: 1012.5,
                              on_latency=lambda m, s: seen.append((m, s)))
        try:
            st = await monitor.status()
            assert st.available and st.error is None
            assert st.chain == "regtest" and st.height == 3
            assert st.best_block_hash is not None and len(st.best_block_hash) == 64
            assert st.difficulty is not None and 0 < st.difficulty < 1  # regtest's proof-of-work limit
            assert st.template_age_s == 12.5
            assert st.rpc_latency_ms is not None and st.rpc_latency_ms > 0
            assert [m for m, _ in seen] == ["getblockchaininfo", "getmininginfo"]
            again = await monitor.status()  # served from the cache: no new calls
            assert again.height == 3 and len(seen) == 2
            with pytest.raises(RpcError) as err:
                await rpc.call("nosuchmethod")
            assert err.value.code == RPC_METHOD_NOT_FOUND == -32601  # Core's "Method not found"
            bad = RpcClient(node.rpc_url, user="__cookie__", password="wrong")
            try:
                st_bad = await NodeMonitor(bad).status()
                assert not st_bad.available and (st_bad.error or "").startswith("NodeAuthError")
            finally:
                await bad.close()
        finally:
            await rpc.close()


async def test_node_down_is_a_status_not_an_error() -> None:
    rpc = RpcClient(f"http://127.0.0.1:{_closed_port()}", user="u", password="p", timeout=2.0)
    try:
        st = await NodeMonitor(rpc).status()
        assert st.available is False and (st.error or "").startswith("NodeDownError")
        assert st.height is None
    finally:
        await rpc.close()


async def test_missing_cookie_is_a_status_not_an_error(tmp_path: Path) -> None:
    """A node that is not running has no cookie file: the client says the node is down."""
    rpc = RpcClient(f"http://127.0.0.1:{_closed_port()}", cookie_file=tmp_path / ".cookie")
    try:
        st = await NodeMonitor(rpc).status()
        assert st.available is False and (st.error or "").startswith("NodeDownError")
        assert "cookie" in (st.error or "")
    finally:
        await rpc.close()


async def test_warming_up_node_is_a_status(tmp_path: Path) -> None:
    async with running_node(tmp_path, warmup_s=30.0) as (_, rpc):
        st = await NodeMonitor(rpc).status()
        assert st.available is False and (st.error or "").startswith("NodeWarmingUpError")


async def test_silent_node_is_cut_off_and_a_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that accepts and never answers is unavailable after RPC_TIMEOUT_S, not a hung dashboard."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        await asyncio.sleep(10)
        writer.close()

    monkeypatch.setattr(network, "RPC_TIMEOUT_S", 0.3)
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rpc = RpcClient(f"http://127.0.0.1:{port}", user="u", password="p")  # its own timeout is far longer
    try:
        st = await asyncio.wait_for(NodeMonitor(rpc).status(), 5.0)
        assert st.available is False and st.error
    finally:
        await rpc.close()
        server.close()


async def test_network_endpoint_with_a_down_node() -> None:
    """The API answers a node that is down with a status, through the same client `up` and `serve` use
    (served on this test's event loop, as the client's connections belong to the loop that made them)."""
    rpc = RpcClient(f"http://127.0.0.1:{_closed_port()}", user="u", password="p", timeout=2.0)
    server = WebServer(create_app(Services(node=rpc)), port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as web:
            body = (await web.get(server.url + "/api/network")).json()
            assert body["available"] is False and body["error"].startswith("NodeDownError")
            metrics = (await web.get(server.url + "/metrics")).text
            assert "pithead_node_up 0.0" in metrics.splitlines()
    finally:
        await server.stop()
        await rpc.close()


def test_metrics_from_the_ledger(seeded: Seed) -> None:
    app = create_app(Services(store=seeded.store, clock=fixed_clock(seeded.now), bucket_width_s=BUCKET))
    text = TestClient(app).get("/metrics").text
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line and not line.startswith("#")}
    accepted = lines['pithead_shares_total{reason="",result="accepted"}']
    assert accepted == sum(w.accepted for w in seeded.store.workers())
    assert lines['pithead_shares_total{reason="job-not-found",result="rejected"}'] == 3
    assert lines['pithead_shares_total{reason="low-difficulty",result="rejected"}'] == 1
    assert lines['pithead_blocks{status="pending"}'] == 1
    assert lines['pithead_blocks{status="confirmed"}'] == 0
    assert lines['pithead_workers{state="known"}'] == 2
    h = lines['pithead_pool_hashrate_hashes_per_second{window="1h"}']
    assert lines['pithead_pool_hashrate_low_hashes_per_second{window="1h"}'] < h
    assert h < lines['pithead_pool_hashrate_high_hashes_per_second{window="1h"}']
    assert lines["pithead_node_up"] == 0  # no node configured: said plainly, not omitted
    assert "pithead_stratum_connections" not in text  # no pool attached


async def test_web_server_port_in_use_is_a_clear_error() -> None:
    import pytest

    from pithead.web.server import WebServer, WebServerError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = WebServer(create_app(Services()), port=port)
        with pytest.raises(WebServerError, match="cannot listen"):
            await server.start()
        await server.stop()
    ok = WebServer(create_app(Services()), port=0)
    await ok.start()
    try:
        assert ok.port > 0
    finally:
        await ok.stop()


async def test_live_stream_sends_summaries_and_ends_when_the_server_stops(seeded: Seed) -> None:
    import asyncio

    import httpx
    import orjson

    from pithead.web.server import WebServer

    server = WebServer(create_app(Services(store=seeded.store, bucket_width_s=BUCKET)), port=0)
    await server.start()
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", server.url + "/api/stream") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        event = data = None
        async for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
                break
        assert event == "summary" and data is not None
        assert data["pool"]["workers"] == 2 and data["network"]["available"] is False
        stopping = asyncio.create_task(server.stop())
        # The stream ends (instead of hanging until the server cuts it): this loop finishes.
        await asyncio.wait_for(_drain(lines), 10)
        await asyncio.wait_for(stopping, 10)


async def _drain(lines: object) -> None:
    async for _ in lines:  # type: ignore[attr-defined]
        pass

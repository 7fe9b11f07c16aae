"""Node status over JSON-RPC (the embedded node, and a node that is down) and the Prometheus metrics."""

from __future__ import annotations

import socket
from pathlib import Path

from fastapi.testclient import TestClient
from webseed import BUCKET, Seed, fixed_clock

from pithead.node.node import EmbeddedNode
from pithead.web.app import create_app
from pithead.web.network import HttpNodeRpc, NodeMonitor, NodeRpcError
from pithead.web.services import Services


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_status_from_the_embedded_node(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, chain="regtest", rpc_port=0) as node:
        node.mine(bytes([0x51]), 3, 1_000_000)  # OP_TRUE outputs; regtest blocks take a few tries
        user, password = node.auth
        rpc = HttpNodeRpc(node.rpc_url, user, password)
        seen: list[tuple[str, float]] = []
        monitor = NodeMonitor(rpc, last_template_time=lambda: 1000.0, clock=lambda: 1012.5,
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
            try:
                await rpc.call("nosuchmethod", [])
            except NodeRpcError as exc:
                assert exc.code == -32601  # Core's "Method not found"
            else:
                raise AssertionError("an unknown method must be an error")
            bad = HttpNodeRpc(node.rpc_url, "__cookie__", "wrong")
            try:
                st_bad = await NodeMonitor(bad).status()
                assert not st_bad.available and st_bad.error
            finally:
                await bad.aclose()
        finally:
            await rpc.aclose()


async def test_node_down_is_a_status_not_an_error() -> None:
    rpc = HttpNodeRpc(f"http://127.0.0.1:{_closed_port()}", "u", "p", timeout=2.0)
    try:
        st = await NodeMonitor(rpc).status()
        assert st.available is False and "NodeRpcError" in (st.error or "")
        assert st.height is None
    finally:
        await rpc.aclose()


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

"""End to end: pithead's embedded regtest node, the pool and a raw Stratum client in this process mine
blocks that the node accepts — in solo and pool mode, with mempool transactions (segwit included)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from pithead.chain.address import address_to_script
from pithead.chain.params import REGTEST
from pithead.config import UpstreamNode
from pithead.events import BlockEvent, ShareEvent
from pithead.node.node import EmbeddedNode
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.failover import source_from_config

from .helpers import POOL_ADDRESS, SOLO_ADDRESS
from .rawclient import RawClient

pytestmark = pytest.mark.timeout(90)


class ListSink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


async def rpc(node: EmbeddedNode, method: str, *params: object) -> object:
    async with httpx.AsyncClient() as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        data = r.json()
        assert data["error"] is None, data
        return data["result"]


async def wait_until(pred, what: str, limit_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("mode", ["solo", "pool"])
async def test_mine_regtest_blocks_through_the_pool(tmp_path: Path, mode: str) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=40.0, seed=7) as node:
        # the node's transaction generator fills the mempool (segwit and legacy spends)
        async def mempool_has_segwit() -> bool:
            tpl = await rpc(node, "getblocktemplate", {"rules": ["segwit"]})
            txs = tpl["transactions"]  # type: ignore[index]
            return len(txs) >= 3 and any(t["txid"] != t["hash"] for t in txs)

        await wait_until(mempool_has_segwit, "segwit transactions in the mempool")
        # pithead's own node-backed source (long-poll / ZMQ / polling, failover), as `pithead pool` uses
        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="regtest", refresh_interval=0.2)
        await source.start()
        sink = ListSink()
        rules = PoolRules(mode=mode, network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-8, 1e9),
                          start_difficulty=1e-6)
        pool_script = address_to_script(POOL_ADDRESS, REGTEST) if mode == "pool" else None
        server = PoolServer(rules=rules, source=source, sink=sink, pool_script=pool_script, refresh_interval=0.2)
        _, port = await server.start("127.0.0.1", 0)
        user = SOLO_ADDRESS + ".e2e"
        client = await RawClient.connect("127.0.0.1", port)
        try:
            await client.handshake(user)
            start_height = int(await rpc(node, "getblockcount"))  # type: ignore[arg-type]
            found: list[str] = []
            job = await client.wait_notify()
            for i in range(2):
                # the network target: every share found at it is a block candidate
                r = await client.submit_one(user, job, diff=1e-6, version_bits=0x4000 * (i + 1))
                assert r["result"] is True, r
                want = len(found) + 1

                async def answered(want: int = want) -> bool:
                    return len(server.metrics.submit_results) >= want

                await wait_until(answered, "the node's answer")
                blocks = [e for e in sink.events if isinstance(e, BlockEvent)]
                assert blocks and blocks[-1].accepted_by_node, server.metrics.submit_results
                found.append(blocks[-1].block_hash)
                # the new tip arrives as a clean job
                job = await client.wait_notify(clean=True)
            assert int(await rpc(node, "getblockcount")) == start_height + 2  # type: ignore[arg-type]
            assert await rpc(node, "getbestblockhash") == found[-1]
            for h in found:
                block = await rpc(node, "getblock", h, 2)
                txs = block["tx"]  # type: ignore[index]
                coinbase = txs[0]
                payee = SOLO_ADDRESS if mode == "solo" else POOL_ADDRESS
                assert any(o["scriptPubKey"]["hex"] == address_to_script(payee, REGTEST).hex()
                           for o in coinbase["vout"])
                assert int(block["version"]) & 0x1FFFE000  # type: ignore[index]  # the rolled bits made it in
                assert block["nTx"] >= 2  # type: ignore[index]
            first = await rpc(node, "getblock", found[0], 2)
            assert any(t["txid"] != t["hash"] for t in first["tx"][1:])  # type: ignore[index]  # segwit spends
            shares = [e for e in sink.events if isinstance(e, ShareEvent)]
            assert len(shares) == 2 and all(s.accepted for s in shares)
        finally:
            await client.close()
            await server.stop()
            await source.stop()


async def test_pithead_pool_command_serves_miners_and_stops_gracefully(tmp_path: Path) -> None:
    """`pithead pool --port 0 --node URL --cookie FILE` against the embedded node: a miner gets work and
    an accepted share; SIGTERM stops it cleanly."""
    import os
    import re
    import signal
    import sys

    async with EmbeddedNode(tmp_path, rpc_port=0) as node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.cli", "pool", "--port", "0", "--node", node.rpc_url,
            "--cookie", str(node.cookie_path), "--mode", "solo", "-v",
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stderr is not None
        try:
            port = None
            async with asyncio.timeout(30):
                while port is None:
                    line = (await proc.stderr.readline()).decode()
                    assert line, "pithead pool exited early"
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                    port = int(m.group(1)) if m else None
            client = await RawClient.connect("127.0.0.1", port)
            await client.handshake(SOLO_ADDRESS + ".cli")
            job = await client.wait_notify(clean=True)
            r = await client.submit_one(SOLO_ADDRESS + ".cli", job, diff=1e-6)
            assert r["result"] is True
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                assert await proc.wait() == 0
            await asyncio.wait_for(client._task, 5)  # the pool closed our connection on the way out
            await client.close()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

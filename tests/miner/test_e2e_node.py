"""End to end with every real part: pithead's embedded regtest node → the pool → the reference miner.

The miner (native core, its own Stratum client) mines on pithead's pool, whose templates come from
pithead's embedded node with generated mempool transactions; the node must accept the blocks it finds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from pithead.chain.address import address_to_script
from pithead.chain.params import REGTEST
from pithead.config import UpstreamNode
from pithead.events import BlockEvent, ShareEvent
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.node import EmbeddedNode
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.failover import source_from_config

pytestmark = pytest.mark.timeout(90)

# A regtest P2WPKH address listed as valid in tests/vectors/addresses.json.
ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
#: How many blocks the miner must get into the node's chain.
BLOCKS = 3
#: Share difficulty: on regtest every share is also a block candidate (network difficulty ~5e-10), so the
#: share rate is the block rate; ~8.6M hashes per share keeps it to a few per second instead of a flood.
SHARE_DIFF = 0.002
#: Seconds any one wait may take on a loaded machine.
WAIT_LIMIT = 60.0


class Sink:
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


async def test_reference_miner_mines_blocks_the_embedded_node_accepts(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=20.0, seed=11) as node:
        source = source_from_config(
            [UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))], chain="regtest", refresh_interval=0.2
        )
        await source.start()
        sink = Sink()
        rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-8, 1e9), start_difficulty=SHARE_DIFF)
        server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=0.2)
        _, port = await server.start("127.0.0.1", 0)
        start_height = int(await rpc(node, "getblockcount"))  # type: ignore[arg-type]
        miner = Miner(
            MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=f"{ADDRESS}.node", threads=1, suggest_difficulty=SHARE_DIFF)
        )
        task = asyncio.create_task(miner.run())
        try:
            deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
            while int(await rpc(node, "getblockcount")) < start_height + BLOCKS:  # type: ignore[arg-type]
                assert asyncio.get_running_loop().time() < deadline, "the node did not get the miner's blocks"
                await asyncio.sleep(0.1)
            # Every new block on the node's chain was found by our miner and pays its address (solo).
            script = address_to_script(ADDRESS, REGTEST).hex()
            tx_counts = []
            for height in range(start_height + 1, start_height + BLOCKS + 1):
                block_hash = await rpc(node, "getblockhash", height)
                block = await rpc(node, "getblock", block_hash, 2)
                coinbase = block["tx"][0]  # type: ignore[index]
                assert any(o["scriptPubKey"]["hex"] == script for o in coinbase["vout"])
                tx_counts.append(len(block["tx"]))  # type: ignore[index]
            assert max(tx_counts) > 1, tx_counts  # mempool transactions went in too
            assert sum(isinstance(e, BlockEvent) for e in sink.events) >= BLOCKS
            # Each block makes the pool send a clean job; a share in flight at that moment may be stale.
            refused = [e.reject_reason for e in sink.events if isinstance(e, ShareEvent) and not e.accepted]
            assert set(refused) <= {"stale", "job-not-found"}, refused
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
            await source.stop()

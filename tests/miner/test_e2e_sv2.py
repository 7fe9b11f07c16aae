"""End to end over Stratum V2 with every real part: pithead's embedded regtest node → the pool's SV2 endpoint
(beside its V1 one) → the reference miner over an encrypted, authenticated SV2 connection, on a standard
channel (header-only: the pool gives the merkle root) and on an extended one (the miner rolls the
coinbase's extranonce). The node must accept the blocks the miner finds; then a V1 and a V2 miner mine at
once on the one pool, and both are credited."""

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
from pithead.stratum.client.v2 import Sv2PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.server.v2 import Sv2Endpoint
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.channels import HASHES_PER_DIFF1, ChannelKind
from pithead.template.sources.failover import source_from_config

pytestmark = pytest.mark.timeout(120)

# Regtest addresses listed as valid in tests/vectors/addresses.json (P2WPKH and P2WSH on bcrt).
ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
OTHER = "bcrt1qan8gntac7z7me2ejt4hpru42ad2f759fmy0m3ejvs98656znv7eqga4uhv"
#: Blocks the miner must get into the node's chain.
BLOCKS = 3
#: Share difficulty: on regtest every share is a block candidate too (as in test_e2e_node), so ~8.6M
#: hashes per share keeps blocks to a few a second.
SHARE_DIFF = 0.002
SHARE_INTERVAL = 10.0
#: What the SV2 miner tells the pool it does, so the pool starts it at SHARE_DIFF.
NOMINAL = SHARE_DIFF * HASHES_PER_DIFF1 / SHARE_INTERVAL
WAIT_LIMIT = 60.0


class Sink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


async def rpc(node: EmbeddedNode, method: str, *params: object) -> object:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        data = r.json()
        assert data["error"] is None, data
        return data["result"]


async def pool_on(node: EmbeddedNode, sink: Sink) -> tuple[PoolServer, Sv2Endpoint, int, int, object]:
    source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))], chain="regtest",
                                refresh_interval=0.2)
    await source.start()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(SHARE_INTERVAL, 1e-8, 1e9),
                      start_difficulty=SHARE_DIFF)
    server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=0.2)
    _, v1_port = await server.start("127.0.0.1", 0)
    endpoint = Sv2Endpoint(server, secp256k1.new_secret())
    _, port = await endpoint.start("127.0.0.1", 0)
    return server, endpoint, v1_port, port, source


def sv2_miner(endpoint: Sv2Endpoint, port: int, kind: ChannelKind, user: str) -> Miner:
    return Miner(MinerOptions(pools=(Sv2PoolAddress("127.0.0.1", port, authority_key=endpoint.authority_key),), username=user,
                              threads=1, sv2_channel=kind, nominal_hash_rate=NOMINAL))


async def until(cond: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT
    while not await cond():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", list(ChannelKind))
async def test_the_miner_over_sv2_mines_blocks_the_embedded_node_accepts(tmp_path: Path, kind: ChannelKind) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=20.0, seed=12) as node:
        sink = Sink()
        server, endpoint, _, port, source = await pool_on(node, sink)
        start_height = int(await rpc(node, "getblockcount"))  # type: ignore[arg-type]
        miner = sv2_miner(endpoint, port, kind, f"{ADDRESS}.sv2")
        task = asyncio.create_task(miner.run())
        try:
            async def grown() -> bool:
                return int(await rpc(node, "getblockcount")) >= start_height + BLOCKS  # type: ignore[arg-type]

            await until(grown, "the node did not get the SV2 miner's blocks")
            script = address_to_script(ADDRESS, REGTEST).hex()
            tx_counts = []
            for height in range(start_height + 1, start_height + BLOCKS + 1):
                block = await rpc(node, "getblock", await rpc(node, "getblockhash", height), 2)
                coinbase = block["tx"][0]  # type: ignore[index]
                assert any(o["scriptPubKey"]["hex"] == script for o in coinbase["vout"])  # solo: pays the miner
                tx_counts.append(len(block["tx"]))  # type: ignore[index]
            assert max(tx_counts) > 1, tx_counts  # mempool transactions went in too
            assert sum(isinstance(e, BlockEvent) and e.accepted_by_node for e in sink.events) >= BLOCKS
            assert miner.status.accepted >= BLOCKS and miner.status.pool.startswith("stratum2+tcp://")
            # every refused share is one in flight over a new block (SetNewPrevHash made its job stale)
            refused = [e.reject_reason for e in sink.events if isinstance(e, ShareEvent) and not e.accepted]
            assert set(refused) <= {"stale", "job-not-found"}, refused
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await endpoint.stop()
            await server.stop()
            await source.stop()  # type: ignore[attr-defined]


async def test_v1_and_v2_miners_on_one_pool_are_both_credited(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=5.0, seed=13) as node:
        sink = Sink()
        server, endpoint, v1_port, port, source = await pool_on(node, sink)
        v1 = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", v1_port),), username=f"{OTHER}.v1", threads=1,
                                suggest_difficulty=SHARE_DIFF))
        v2 = sv2_miner(endpoint, port, ChannelKind.EXTENDED, f"{ADDRESS}.v2")
        tasks = [asyncio.create_task(m.run()) for m in (v1, v2)]
        try:
            def credited(worker: str) -> int:
                return sum(1 for e in sink.events if isinstance(e, ShareEvent) and e.accepted and e.worker == worker)

            async def both() -> bool:
                return credited(f"{OTHER}.v1") >= 2 and credited(f"{ADDRESS}.v2") >= 2

            await until(both, "both miners were not credited")
            # the same facts for both: each share names its worker, address, job and difficulty
            for worker, address in ((f"{OTHER}.v1", OTHER), (f"{ADDRESS}.v2", ADDRESS)):
                share = next(e for e in sink.events if isinstance(e, ShareEvent) and e.worker == worker)
                assert share.address == address and share.difficulty > 0 and share.remote == "127.0.0.1"
            assert len(server.connections) == 1 and len(endpoint.connections) == 1
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await endpoint.stop()
            await server.stop()
            await source.stop()  # type: ignore[attr-defined]

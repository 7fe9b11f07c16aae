"""A custom signet (challenge 51, OP_TRUE) on the embedded node, mined end to end through the pool.

The node answers as Bitcoin Core does on a signet: `chain` "signet", signet's genesis (its hash is
`SIGNET.genesis_hash`, Core's chainparams), getblocktemplate refused without the `signet` rule (Core's
message, rpc/mining.cpp) and, with it, "!signet" among the rules and the `signet_challenge`. The pool asks
with that rule, and the reference miner finds a block at real signet difficulty (nBits 0x1e0377ae, ~5M
hashes) that the node accepts. BIP325's solution rules (src/signet.cpp) are checked on hand-built blocks:
a witness commitment is required, a solution section must parse, and OP_TRUE takes an empty one.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from pithead.chain.address import address_to_script
from pithead.chain.block import Block
from pithead.chain.hashes import display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.params import SIGNET
from pithead.chain.script import push_data
from pithead.chain.tx import TxOut
from pithead.chain.varint import encode_bytes, encode_varint
from pithead.config import UpstreamNode
from pithead.events import BlockEvent, ShareEvent
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.consensus import BlockInvalid
from pithead.node.genesis import signet_genesis
from pithead.node.mining import coinbase_tx
from pithead.node.node import EmbeddedNode, EmbeddedNodeError
from pithead.node.signet import OP_TRUE_CHALLENGE, SIGNET_HEADER, check_signet_solution, signet_solution
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.failover import source_from_config

pytestmark = pytest.mark.timeout(180)

# A signet (tb) P2WPKH address from tests/vectors/addresses.json (Core's key_io_valid.json, "signet").
ADDRESS = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
#: Share difficulty: signet's network difficulty is ~0.0011, so about ten shares per block.
SHARE_DIFF = 0.0001
WAIT_LIMIT = 120.0  # a block is ~5M hashes: seconds on one thread, far more on a loaded machine


class Sink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


async def call(node: EmbeddedNode, method: str, *params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        return dict(r.json())


async def test_the_pool_mines_a_custom_signet_end_to_end(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, chain="signet", rpc_port=0) as node:
        info = (await call(node, "getblockchaininfo"))["result"]
        assert info["chain"] == "signet" and info["blocks"] == 0
        assert (await call(node, "getblockhash", 0))["result"] == SIGNET.genesis_hash
        refused = await call(node, "getblocktemplate", {"rules": ["segwit"]})
        assert refused["error"]["code"] == -8
        assert "getblocktemplate must be called with the signet rule set" in refused["error"]["message"]
        gbt = (await call(node, "getblocktemplate", {"rules": ["segwit", "signet"]}))["result"]
        assert "!signet" in gbt["rules"] and gbt["signet_challenge"] == "51" and gbt["bits"] == "1e0377ae"

        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="signet", refresh_interval=0.5)
        await source.start()
        sink = Sink()
        rules = PoolRules(mode="solo", network=SIGNET, vardiff=VarDiffConfig(10.0, 1e-8, 1e9),
                          start_difficulty=SHARE_DIFF)
        server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=0.5)
        _, port = await server.start("127.0.0.1", 0)
        miner = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=f"{ADDRESS}.signet",
                                   threads=1, suggest_difficulty=SHARE_DIFF))
        task = asyncio.create_task(miner.run())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_LIMIT
            while (await call(node, "getblockcount"))["result"] < 1:
                assert loop.time() < deadline, f"no signet block; shares so far: {len(sink.events)}"
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
            await source.stop()
        block_hash = (await call(node, "getblockhash", 1))["result"]
        block = (await call(node, "getblock", block_hash, 2))["result"]
        assert block["bits"] == "1e0377ae"
        assert block["tx"][0]["vout"][0]["scriptPubKey"]["hex"] == address_to_script(ADDRESS, SIGNET).hex()
        found = [e for e in sink.events if isinstance(e, BlockEvent) and e.block_hash == block_hash]
        assert found and found[0].accepted_by_node


def _block(extra_outputs: tuple[TxOut, ...] = (), segwit: bool = True) -> Block:
    cb = coinbase_tx(1, 50 * 100_000_000, address_to_script(ADDRESS, SIGNET), [], segwit)
    cb = replace(cb, outputs=(*cb.outputs, *extra_outputs))
    return Block(BlockHeader(0x20000000, bytes(32), cb.txid(), 1_700_000_000, 0x1E0377AE, 0), (cb,))


def _with_section(block: Block, section: bytes) -> Block:
    """The block with its witness commitment output carrying a signet solution push (BIP325)."""
    cb = block.txs[0]
    outs = list(cb.outputs)
    outs[-1] = TxOut(0, outs[-1].script_pubkey + push_data(SIGNET_HEADER + section))
    return Block(block.header, (replace(cb, outputs=tuple(outs)),))


def test_signet_solutions_as_bip325_reads_them() -> None:
    plain = _block()
    assert signet_solution(plain) == (b"", ())
    check_signet_solution(plain, OP_TRUE_CHALLENGE)  # OP_TRUE: no section needed

    empty = _with_section(plain, encode_varint(0) + encode_varint(0))  # an explicit empty solution
    assert signet_solution(empty) == (b"", ())
    check_signet_solution(empty, OP_TRUE_CHALLENGE)

    signed = _with_section(plain, encode_bytes(b"\x51") + encode_varint(1) + encode_bytes(b"\x01" * 3))
    assert signet_solution(signed) == (b"\x51", (b"\x01" * 3,))
    with pytest.raises(BlockInvalid, match="bad-signet-blksig"):
        check_signet_solution(signed, OP_TRUE_CHALLENGE)

    for bad in (encode_bytes(b"\x51"), encode_varint(0) + encode_varint(0) + b"\x00", encode_varint(5) + b"ab"):
        with pytest.raises(BlockInvalid, match="bad-signet-blksig"):
            signet_solution(_with_section(plain, bad))

    with pytest.raises(BlockInvalid, match="without a witness commitment"):
        signet_solution(_block(segwit=False))


def test_a_signet_challenge_the_node_cannot_check_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedNodeError, match="only with the OP_TRUE challenge 51"):
        EmbeddedNode(tmp_path, chain="signet", signet_challenge="512102" + "ab" * 32 + "51ae")


def test_the_signet_genesis_is_cores() -> None:
    assert display_hex(signet_genesis().hash()) == SIGNET.genesis_hash

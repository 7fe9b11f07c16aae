"""Random races between two nodes' chains, fed to one node block by block through submitblock: after every
step the node follows the most-work chain and its UTXO set (gettxoutsetinfo) holds exactly the subsidies
of the active chain — so every connect and disconnect in the reorganisations was undone exactly."""

from __future__ import annotations

import random
from pathlib import Path

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.params import REGTEST
from pithead.node.testing import mine_blocks, running_node

SEEDS = (1, 2)
STEPS = 12


async def subsidies(height: int) -> int:
    return sum(REGTEST.subsidy(h) for h in range(1, height + 1))


async def copy_chain(src: RpcClient, dst: RpcClient) -> None:
    """Submit every block of `src`'s active chain that `dst` does not know, oldest first."""
    height = await src.call("getblockcount")
    for h in range(1, height + 1):
        block_hash = await src.call("getblockhash", h)
        await dst.submitblock(await src.call("getblock", block_hash, 0))


async def test_random_reorganisations_keep_the_utxo_set_exact(tmp_path: Path) -> None:
    reorgs = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        async with (
            running_node(tmp_path / f"a{seed}") as (_, a),
            running_node(tmp_path / f"b{seed}") as (_, b),
        ):
            await mine_blocks(a, 101)
            await mine_blocks(b, 100)  # a rival chain from genesis, one block behind
            pay_to = await a.call("getnewaddress")
            for _ in range(STEPS):
                action = rng.choice(["mine_a", "mine_b", "mine_b", "send", "feed", "feed"])
                if action == "mine_a":
                    await mine_blocks(a, rng.randint(1, 3))
                elif action == "mine_b":
                    await mine_blocks(b, rng.randint(1, 4))
                elif action == "send" and await a.call("getbalance") > 1:
                    await a.call("sendmany", "", {pay_to: round(rng.uniform(0.1, 1), 8)})
                elif action == "feed":
                    before = await a.call("getbestblockhash")
                    await copy_chain(b, a)
                    a_work = int((await a.call("getblockchaininfo"))["chainwork"], 16)
                    b_info = await b.call("getblockchaininfo")
                    assert a_work >= int(b_info["chainwork"], 16)  # a follows the heavier chain
                    if await a.call("getbestblockhash") == b_info["bestblockhash"] != before:
                        reorgs += 1
                info = await a.call("gettxoutsetinfo")
                assert info["bestblock"] == await a.call("getbestblockhash")
                assert round(info["total_amount"] * 100_000_000) == await subsidies(info["height"])
    assert reorgs >= 2  # the seeds do exercise reorganisations

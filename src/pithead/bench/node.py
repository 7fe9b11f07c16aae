"""`pithead bench node`: figures for the embedded node and the template sources, all over loopback.

Prints: RPC round trips per second (getblockcount), blocks per second through generatetoaddress,
getblocktemplate + submitblock time for a template with N wallet transactions, and how long a new tip
takes to reach a NodeSource by ZMQ, by long-poll and by polling (median of several blocks).
Usage: pithead bench node [--blocks N] [--txs N] [--tips N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pithead.chain.hashes import display_hex
from pithead.chain.params import REGTEST
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.template.rpc import RpcClient
from pithead.template.source import NodeSource

# The node's wallet spends a coinbase only at COINBASE_MATURITY + 1 confirmations (as Core's does): the
# sendmany phase needs at least this many blocks on the chain, whatever --blocks asks to time.
WALLET_SPENDABLE_BLOCKS = REGTEST.coinbase_maturity + 1


async def _tip_latency(node_dir: Path, mode: str, tips: int) -> list[float]:
    async with running_node(node_dir) as (node, rpc):
        source = NodeSource(
            RpcClient(node.rpc_url, cookie_file=node.cookie_path),
            zmq_hashblock=node.zmq_endpoints["hashblock"] if mode == "zmq" else None,
            use_longpoll=mode == "longpoll",
            poll_interval=0.05,
            health_interval=60.0,
            refresh_interval=600.0,
        )
        updates = source.updates()
        await source.start()
        await updates.__anext__()
        await asyncio.sleep(0.3)
        out = []
        try:
            for _ in range(tips):
                t0 = time.perf_counter()
                (tip,) = await mine_blocks(rpc, 1)
                while True:
                    u = await asyncio.wait_for(updates.__anext__(), 10)
                    if display_hex(u.template.prev_hash) == tip:
                        break
                out.append(time.perf_counter() - t0)
        finally:
            await source.stop()
        return out


async def _run(blocks: int, txs: int, tips: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        async with running_node(root / "a") as (_, rpc):
            n = 500
            t0 = time.perf_counter()
            for _ in range(n):
                await rpc.call("getblockcount")
            print(f"rpc getblockcount: {n / (time.perf_counter() - t0):,.0f} calls/s")
            t0 = time.perf_counter()
            await mine_blocks(rpc, blocks)
            print(f"generatetoaddress: {blocks / (time.perf_counter() - t0):,.0f} blocks/s ({blocks} blocks)")
            if txs > 0 and blocks < WALLET_SPENDABLE_BLOCKS:
                # untimed: only so the wallet has a mature coinbase to spend
                await mine_blocks(rpc, WALLET_SPENDABLE_BLOCKS - blocks)
            address = await rpc.call("getnewaddress")
            t0 = time.perf_counter()
            for _ in range(txs):
                await rpc.call("sendmany", "", {address: 0.001})
            print(
                f"sendmany: {txs / (time.perf_counter() - t0):,.0f} tx/s ({txs} chained wallet transactions)"
            )
            t0 = time.perf_counter()
            gbt = await rpc.call("getblocktemplate", {"rules": ["segwit"]})
            t1 = time.perf_counter()
            block = block_from_template(gbt, p2wsh_of(BARE_OP_TRUE))
            t2 = time.perf_counter()
            verdict = await rpc.submitblock(block.hex())
            t3 = time.perf_counter()
            print(
                f"getblocktemplate with {len(gbt['transactions'])} txs: {(t1 - t0) * 1000:.1f} ms; "
                f"build+solve {(t2 - t1) * 1000:.1f} ms; submitblock {(t3 - t2) * 1000:.1f} ms -> {verdict}"
            )
        for mode in ("zmq", "longpoll", "poll"):
            lat = await _tip_latency(root / mode, mode, tips)
            print(
                f"new tip -> NodeSource update by {mode}: median {statistics.median(lat) * 1000:.1f} ms, "
                f"max {max(lat) * 1000:.1f} ms (includes generatetoaddress, {tips} tips)"
            )


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pithead bench node")
    p.add_argument("--blocks", type=int, default=300)
    p.add_argument("--txs", type=int, default=100)
    p.add_argument("--tips", type=int, default=10)
    a = p.parse_args(argv)
    asyncio.run(_run(a.blocks, a.txs, a.tips))

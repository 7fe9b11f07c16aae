"""`pithead bench node`: figures for the embedded node and the template sources, all over loopback.

Prints: RPC round trips per second (getblockcount), blocks per second through generatetoaddress,
getblocktemplate + submitblock time for a template with N wallet transactions, how long the template's
transaction selection (ancestor-package fee rate, assembler.py) takes on a mempool of M transactions
shaped three ways (independent, a random dependency graph like the generator's, one long chain), and how
long a new tip takes to reach a NodeSource by ZMQ, by long-poll and by polling (median of several blocks).
Usage: pithead bench node [--blocks N] [--txs N] [--mempool M] [--tips N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.hashes import display_hex
from pithead.chain.params import REGTEST
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.node.assembler import select_packages
from pithead.node.chainstate import ChainState
from pithead.node.mempool import Mempool, MempoolEntry
from pithead.node.mining import template_result
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.template.sources.node import NodeSource

# The node's wallet spends a coinbase only at COINBASE_MATURITY + 1 confirmations (as Core's does): the
# sendmany phase needs at least this many blocks on the chain, whatever --blocks asks to time.
WALLET_SPENDABLE_BLOCKS = REGTEST.coinbase_maturity + 1


MEMPOOL_SHAPES = ("independent", "graph", "chain")
GRAPH_WINDOW = 200  # a graph transaction spends outputs of the last this-many transactions, as the
# generator's chains form among recent unconfirmed coins


def synthetic_mempool(n: int, shape: str, seed: int = 1) -> list[MempoolEntry]:
    """`n` mempool entries in dependency order (fee rates 1-25 sat/vB, 110-400 vbytes, a few sigops):
    "independent", "graph" (half spend one or two recent transactions) or "chain" (each spends the last)."""
    if shape not in MEMPOOL_SHAPES:
        raise ValueError(f"unknown mempool shape {shape!r}")
    rng = random.Random(seed)
    out: list[MempoolEntry] = []
    for k in range(n):
        parents: list[MempoolEntry] = []
        if out and shape == "chain":
            parents = [out[-1]]
        elif out and shape == "graph" and rng.random() < 0.5:
            recent = out[-GRAPH_WINDOW:]
            parents = rng.sample(recent, k=min(len(recent), rng.randint(1, 2)))
        inputs = tuple(TxIn(OutPoint(p.txid, 0), b"", 0xFFFFFFFF) for p in parents) or (
            TxIn(OutPoint(k.to_bytes(32, "little"), 0), b"", 0xFFFFFFFF),
        )
        tx = Transaction(2, inputs, (TxOut(k, b"\x51"),), 0)
        vsize = rng.randint(110, 400)
        fee = rng.randint(1, 25) * vsize
        out.append(MempoolEntry(tx, tx.txid(), tx.wtxid(), fee, 4 * vsize, rng.choice((0, 4, 8)), 0, 0))
    return out


def bench_selection(n: int, chain_dir: Path, repeat: int = 3) -> None:
    """Time the selection alone, then the whole getblocktemplate result (selection, hex of every chosen
    transaction, depends, witness commitment) on a fresh regtest chain. The synthetic entries go straight
    into the mempool's table, past `accept` (their inputs are made up): only template building is timed."""
    chain = ChainState(chain_dir / "chainstate.sqlite3", REGTEST)
    try:
        for shape in MEMPOOL_SHAPES:
            entries = synthetic_mempool(n, shape)
            pool = Mempool()
            pool.entries.update((e.txid, e) for e in entries)
            best_select = best_gbt = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                chosen = select_packages(entries)
                t1 = time.perf_counter()
                gbt = template_result(chain, pool, int(time.time()))
                t2 = time.perf_counter()
                best_select, best_gbt = min(best_select, t1 - t0), min(best_gbt, t2 - t1)
            assert len(gbt["transactions"]) == len(chosen)
            print(
                f"template from a {n}-tx mempool ({shape}): selection {best_select * 1000:.1f} ms, "
                f"whole getblocktemplate result {best_gbt * 1000:.1f} ms ({len(chosen)} txs fit, best of {repeat})"
            )
    finally:
        chain.close()


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


async def _run(blocks: int, txs: int, mempool: int, tips: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if mempool > 0:
            (root / "selection").mkdir()
            bench_selection(mempool, root / "selection")
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
    p.add_argument(
        "--mempool", type=int, default=5000, help="mempool size for the selection timing (0: skip)"
    )
    p.add_argument("--tips", type=int, default=10)
    a = p.parse_args(argv)
    asyncio.run(_run(a.blocks, a.txs, a.mempool, a.tips))

"""The pool over two embedded nodes with failover follows the chain, not the priority.

Real parts on loopback: two `EmbeddedNode`s (regtest, not peered with each other), a `FailoverSource`
over their RPC, the `PoolServer` and a raw Stratum client whose every share meets the network target
(so every share is a block). The primary goes down, the backup carries on, the primary comes back from
its data directory behind the backup: the pool must keep mining on the backup's (the best) chain, and
must never report as accepted a block that the best chain does not contain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pithead.bitcoind.codes import RPC_INVALID_ADDRESS_OR_KEY
from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.hashes import from_display_hex, prevhash_from_stratum
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.node.node import EmbeddedNode
from pithead.node.testing import mine_blocks, running_node
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.failover import FailoverSource
from pithead.template.sources.node import NodeSource

from .helpers import SOLO_ADDRESS
from .rawclient import RawClient

pytestmark = pytest.mark.timeout(180)

WAIT_S = 30.0  # generous bound on every wait: the tests never assert how fast anything happens
BLOCK_DIFF = 1e-6  # above regtest's network difficulty: every share the client finds is a block
USER = SOLO_ADDRESS + ".failover"


class ListSink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)

    def blocks(self) -> list[BlockEvent]:
        return [e for e in self.events if isinstance(e, BlockEvent)]


async def wait_until(pred: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def node_source(node: EmbeddedNode, name: str, priority: int) -> NodeSource:
    # No ZMQ: a node restarted from its data directory publishes on a new ephemeral port. Long-poll and a
    # short health check find every tip.
    return NodeSource(
        RpcClient(node.rpc_url, cookie_file=node.cookie_path, name=name),
        priority=priority,
        health_interval=0.1,
        retry_interval=0.1,
    )


async def in_best_chain(rpc: RpcClient, block_hash: str) -> bool:
    try:
        header = await rpc.call("getblockheader", block_hash)
    except RpcError as exc:
        if exc.code == RPC_INVALID_ADDRESS_OR_KEY:  # "Block not found": not in any chain of this node
            return False
        raise
    height = int(header["height"])
    return int(header["confirmations"]) >= 0 and await rpc.call("getblockhash", height) == block_hash


class Miner:
    """The raw client mining through the pool: one block per `mine_one`, on the pool's current job."""

    def __init__(self, client: RawClient, pool: PoolServer, sink: ListSink) -> None:
        self.client = client
        self.pool = pool
        self.sink = sink

    async def mine_one(self, expect_prev: str | None = None) -> BlockEvent:
        """Submit one block on the job the pool hands out now (on `expect_prev` when given, the display
        hex of the block it must build on) and return the pool's record of it."""
        want_prev = from_display_hex(expect_prev) if expect_prev is not None else None

        async def job_ready() -> bool:
            job = self.client.job
            if job is None or self.pool.jobs.tip is None:
                return False
            prev = prevhash_from_stratum(job[1])
            return prev == self.pool.jobs.tip and (want_prev is None or prev == want_prev)

        await wait_until(job_ready, "the pool's current job at the client")
        assert self.client.job is not None
        before = len(self.sink.blocks())
        reply = await self.client.submit_one(USER, self.client.job, diff=BLOCK_DIFF)
        assert reply["result"] is True, reply

        async def recorded() -> bool:
            return len(self.sink.blocks()) > before

        await wait_until(recorded, "the pool's record of the block")
        return self.sink.blocks()[-1]


async def test_a_primary_that_comes_back_behind_never_leads_and_every_block_lands_on_the_best_chain(
    tmp_path: Path,
) -> None:
    async with (
        running_node(tmp_path / "primary") as (primary, rpc_p),
        running_node(tmp_path / "backup") as (
            backup,
            rpc_b,
        ),
    ):
        failover = FailoverSource([node_source(primary, "primary", 0), node_source(backup, "backup", 1)])
        await failover.start()
        sink = ListSink()
        rules = PoolRules(
            mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-8, 1e9), start_difficulty=BLOCK_DIFF
        )
        pool = PoolServer(rules=rules, source=failover, sink=sink, refresh_interval=600.0)
        _, port = await pool.start("127.0.0.1", 0)
        client = await RawClient.connect("127.0.0.1", port)
        miner = Miner(client, pool, sink)
        restarted: Any = None
        try:
            await client.handshake(USER)
            # Both nodes on one chain: every block goes to both.
            for _ in range(3):
                ev = await miner.mine_one()
                assert ev.accepted_by_node, pool.metrics.submit_results
            assert await rpc_p.call("getbestblockhash") == await rpc_b.call("getbestblockhash")
            assert failover.active is not None and failover.active.name == "primary"
            primary_port = primary.rpc_port

            # The primary goes down: the backup's work, blocks on the backup.
            await primary.stop()
            for _ in range(4):
                ev = await miner.mine_one(expect_prev=await rpc_b.call("getbestblockhash"))
                assert ev.accepted_by_node, pool.metrics.submit_results
            assert failover.active.name == "backup"
            assert await rpc_b.call("getblockcount") == 7

            # The primary comes back from its data directory, three blocks behind, on its old address.
            restarted = running_node(tmp_path / "primary", rpc_port=primary_port)
            _, rpc_p2 = await restarted.__aenter__()
            assert await rpc_p2.call("getblockcount") == 3

            async def primary_seen_again() -> bool:
                status = {s["name"]: s for s in failover.status()}
                return bool(status["primary"]["healthy"]) and status["primary"]["height"] == 4

            await wait_until(primary_seen_again, "the failover to see the primary again")

            # Keep mining: every block is on the best chain (the backup's), and reported as such.
            found = []
            for _ in range(4):
                ev = await miner.mine_one()
                found.append(ev)
            for ev in found:
                assert ev.accepted_by_node, (ev, pool.metrics.submit_results)
                assert await in_best_chain(rpc_b, ev.block_hash), ev
            assert await rpc_b.call("getblockcount") == 11
            status = {s["name"]: s for s in failover.status()}
            assert status["backup"]["active"] and not status["primary"]["active"], status
            assert status["primary"]["reason"].startswith("behind"), status
            # Nothing reported accepted that the best chain lacks, over the whole run.
            for ev in sink.blocks():
                if ev.accepted_by_node:
                    assert await in_best_chain(rpc_b, ev.block_hash), ev
        finally:
            await client.close()
            await pool.stop()
            await failover.stop()
            if restarted is not None:
                await restarted.__aexit__(None, None, None)


async def test_a_block_only_a_lagging_node_accepts_is_reported_as_stale_not_accepted(tmp_path: Path) -> None:
    """The pool's job is still on the primary's tip when the backup's chain overtakes it (the failover has
    not noticed yet: its health check is slow). The block the client finds on that job is accepted by the
    primary alone; judged against the best chain it is on a stale fork, and the pool says so."""
    async with (
        running_node(tmp_path / "primary") as (primary, rpc_p),
        running_node(tmp_path / "backup") as (
            backup,
            rpc_b,
        ),
    ):
        slow = {"health_interval": 600.0, "refresh_interval": 600.0, "use_longpoll": False}
        failover = FailoverSource(
            [
                NodeSource(
                    RpcClient(primary.rpc_url, cookie_file=primary.cookie_path, name="primary"), **slow
                ),
                NodeSource(
                    RpcClient(backup.rpc_url, cookie_file=backup.cookie_path, name="backup"),
                    priority=1,
                    **slow,
                ),
            ]
        )
        await failover.start()
        sink = ListSink()
        rules = PoolRules(
            mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-8, 1e9), start_difficulty=BLOCK_DIFF
        )
        pool = PoolServer(rules=rules, source=failover, sink=sink, refresh_interval=600.0)
        _, port = await pool.start("127.0.0.1", 0)
        client = await RawClient.connect("127.0.0.1", port)
        miner = Miner(client, pool, sink)
        try:
            await client.handshake(USER)
            assert failover.active is not None and failover.active.name == "primary"
            await mine_blocks(rpc_b, 2)  # the backup's chain is now the best one; nobody told the failover
            ev = await miner.mine_one()
            assert not ev.accepted_by_node and ev.stale_fork, (ev, pool.metrics.submit_results)
            assert ev.node_result == "inconclusive"  # the backup's own BIP22 answer for a side-chain block
            # a candidate, not a block found: the pool's counts and the finder's stats say so (issue 19)
            assert pool.metrics.block_candidates == 1 and pool.metrics.blocks_found == 0
            assert pool.stats.pool.blocks == 0 and pool.snapshot()["blocks_found"] == 0
            assert not await in_best_chain(rpc_b, ev.block_hash)
            assert await rpc_p.call("getbestblockhash") == ev.block_hash  # the primary did accept it
            assert failover.active.name == "backup"  # judging the block brought the failover up to date
        finally:
            await client.close()
            await pool.stop()
            await failover.stop()

"""End to end on loopback: a farm of scripted firmware behind the proxy, two pithead pools upstream (each
`pithead.app.pool.serve`, the `pithead pool` profile, on one embedded regtest node), failover and back.

The machines are the dialects of tests/stratum/dialects.py (cpuminer, cgminer, BFGMiner, ESP-Miner current
and 2.1.5, NerdMiner), each speaking exactly its firmware's bytes to the proxy. They mine real shares; the
proxy judges each at the machine's own difficulty (below the pools' — the ESP-Miners' suggestion of 1000 is
held under the pool's difficulty too) and forwards the ones the pool credits. Then:

  * every forwarded share is accepted upstream exactly once: the pool's accepted share events are exactly
    the machines' shares whose hash meets the pool's difficulty (by the hash's difficulty, one for one), and
    the counts add up — machine-side accepted >= forwarded = accepted upstream, nothing rejected or lost;
  * the primary is killed: every machine gets a clean job from the backup on the connection it already has
    (no machine reconnects), and mines on;
  * the primary comes back: after the hysteresis every machine is back on it;
  * a block found by a machine behind the proxy goes upstream at once and the node takes it as its tip.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from pithead.chain.compact import difficulty_to_target
from pithead.config import PoolConfig, UpstreamNode
from pithead.node.node import EmbeddedNode
from pithead.proxy.proxy import FarmProxy
from stratum.dialects import BfgMiner, CgMiner, CpuMiner, EspMiner, EspMinerOld, Firmware, NerdMiner, Share

from .harness import QUICK, Upstream, start_proxy, stop_all, wait_for

pytestmark = pytest.mark.timeout(240)

DIALECTS: tuple[type[Firmware], ...] = (CpuMiner, CgMiner, BfgMiner, EspMiner, EspMinerOld, NerdMiner)
UPSTREAM_DIFFICULTY = 4e-10
"""The pools' share difficulty (fixed: min = max). Regtest's network difficulty is ~4.66e-10 (half of all
hashes are blocks); a share at 4e-10 that is not a block is one hash in ~12."""
MACHINE_DIFFICULTY = 2.5e-10
"""The machines' difficulty at the proxy: a share at it meets the pools' difficulty about one time in five,
so some shares are forwarded and some are judged only by the proxy."""
SHARES = 6
"""Shares per machine per phase."""


def pool_config(node: EmbeddedNode) -> PoolConfig:
    return PoolConfig(
        port=0, mode="solo", network="regtest", refresh_interval=0.5,
        nodes=(UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path)),),
        start_difficulty=UPSTREAM_DIFFICULTY, min_difficulty=UPSTREAM_DIFFICULTY,
        max_difficulty=UPSTREAM_DIFFICULTY, share_interval=1000.0,
    )


def upstream_of(proxy: FarmProxy, m: Firmware) -> str | None:
    rj = proxy.book.lookup(m.work.job_id) if m.work is not None else None
    return rj.route.upstream if rj is not None else None


class Ledger:
    """What the machines were told, and what the proxy should have forwarded, per upstream."""

    def __init__(self) -> None:
        self.accepted = 0
        self.forwarded: dict[str, list[float]] = {"a": [], "b": []}

    def note(self, proxy: FarmProxy, share: Share) -> None:
        self.accepted += 1
        rj = proxy.book.lookup(share.work.job_id)
        assert rj is not None, "a share on a job the proxy forgot"
        if share.hash_int <= difficulty_to_target(rj.upstream_difficulty):
            self.forwarded[rj.route.upstream].append(share.difficulty)


async def mine(proxy: FarmProxy, miners: list[Firmware], ledger: Ledger, n: int) -> None:
    async def one(m: Firmware) -> None:
        for _ in range(n):
            work = await m.wait_work()
            share = m.solve(work)
            reply = await m.submit(share)
            if reply.code == 21:  # the job went stale under it (a new block): take the next one
                continue
            assert reply.ok, (m.name, reply.msg)
            ledger.note(proxy, share)

    await asyncio.gather(*(one(m) for m in miners))


async def settled(proxy: FarmProxy) -> None:
    await wait_for(lambda: all(f.counts.in_flight == 0 for f in proxy.figures.values()), "every answer upstream")


def check_counts(proxy: FarmProxy, ups: dict[str, Upstream], ledger: Ledger) -> None:
    forwarded = 0
    for name, up in ups.items():
        counts = proxy.figures[name].counts
        got = sorted(e.share_difficulty for e in up.sink.accepted)
        assert got == sorted(ledger.forwarded[name]), name  # each forwarded share accepted exactly once
        assert not up.sink.rejected, [e.reject_reason for e in up.sink.rejected]
        assert counts.forwarded == counts.accepted == len(got), (name, counts)
        assert not counts.rejected and not counts.lost, (name, counts)
        forwarded += counts.forwarded
    assert ledger.accepted >= forwarded > 0


async def test_dialects_mine_through_the_proxy_fail_over_and_find_a_block(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0) as node:
        ups = {name: Upstream(name, pool_config(node), lambda: None) for name in ("a", "b")}
        for up in ups.values():
            await up.start()
        settings = replace(QUICK, start_difficulty=MACHINE_DIFFICULTY, min_difficulty=MACHINE_DIFFICULTY,
                           share_interval=0.001)
        proxy = await start_proxy([ups["a"].spec(0), ups["b"].spec(1)], settings)
        miners = [cls(f"rack1.{cls.name}", "x", seed=i) for i, cls in enumerate(DIALECTS)]
        ledger = Ledger()
        try:
            for m in miners:
                await m.connect("127.0.0.1", proxy.port)
                await m.handshake()
            await wait_for(lambda: all(upstream_of(proxy, m) == "a" for m in miners), "every machine on a")
            # the machines' difficulty is never above the pool's, whatever they suggested
            for m in miners:
                diffs = [float(n["params"][0]) for n in m.notifications if n["method"] == "mining.set_difficulty"]
                assert diffs and diffs[-1] <= UPSTREAM_DIFFICULTY, (m.name, diffs)
            await mine(proxy, miners, ledger, SHARES)
            await settled(proxy)
            check_counts(proxy, ups, ledger)
            assert ledger.forwarded["a"] and len(ledger.forwarded["a"]) < ledger.accepted  # both kinds happened

            # kill the primary: the machines get the backup's work on the connections they have
            await ups["a"].stop()
            await wait_for(lambda: all(upstream_of(proxy, m) == "b" for m in miners), "every machine on b")
            assert all(m.work is not None and m.work.params[8] is True for m in miners)  # clean_jobs
            await mine(proxy, miners, ledger, SHARES)
            await settled(proxy)
            check_counts(proxy, ups, ledger)

            # the primary comes back: after the hysteresis, every machine is back on it
            await ups["a"].start()
            await wait_for(lambda: all(upstream_of(proxy, m) == "a" for m in miners), "every machine back on a")
            assert proxy.failover.switches == 2
            await mine(proxy, miners, ledger, 2)
            await settled(proxy)
            check_counts(proxy, ups, ledger)
            assert not any(m.closed for m in miners) and not any(m.violations for m in miners)

            # a block behind the proxy: forwarded at once, and the node's tip
            cg = next(m for m in miners if isinstance(m, CgMiner))
            block = cg.solve(await cg.wait_work(), block=True)
            reply = await cg.submit(block)
            assert reply.ok, reply.msg

            async def tip() -> str:
                async with httpx.AsyncClient() as c:
                    r = await c.post(node.rpc_url, auth=node.auth,
                                     json={"id": 1, "method": "getbestblockhash", "params": []})
                    return str(r.json()["result"])

            async def is_tip() -> bool:
                return await tip() == block.block_hash

            deadline = asyncio.get_running_loop().time() + 30
            while not await is_tip():
                assert asyncio.get_running_loop().time() < deadline, "the node never took the block"
                await asyncio.sleep(0.05)
            while not ups["a"].sink.blocks:  # recorded once the pool has judged it against the best chain
                assert asyncio.get_running_loop().time() < deadline, "the pool never recorded the block"
                await asyncio.sleep(0.05)
            assert [b.accepted_by_node for b in ups["a"].sink.blocks] == [True]
            await settled(proxy)
            assert proxy.figures["a"].counts.blocks == 1 and proxy.figures["a"].counts.accepted >= 1
        finally:
            for m in miners:
                await m.close()
            await stop_all(proxy, ups["a"], ups["b"])

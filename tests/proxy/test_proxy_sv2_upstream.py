"""The translator end to end on loopback: V1 machines behind the proxy, a Stratum V2 pool upstream.

The primary upstream is pithead's own pool over Stratum V2 (`pithead.app.pool.serve` with `sv2_port`: the
Noise handshake, the certificate checked against the pool's authority key, one extended channel per proxy
connection); the backup is another pithead pool over Stratum V1. The machines are the scripted firmware
dialects (tests/stratum/dialects.py) and `pithead miner`, speaking V1 to the proxy. Then:

  * every share the proxy forwards over SV2 is accepted by the pool exactly once (the pool's share events
    are exactly the machines' shares whose hash meets the channel's target), the counts add up, and the
    machines' difficulty is never above the channel's;
  * the SV2 pool is killed: every machine gets a clean job from the V1 backup on the connection it already
    has; it comes back: after the hysteresis every machine is back on SV2;
  * a block found by a V1 machine goes upstream over SV2 and the node takes it as its tip.

Bad SV2 upstreams (a wrong authority key, a server that sends garbage or an oversized frame, a server that
is no SV2 pool) are a clear error and a failover, never a crash: see the last tests.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from pithead.config import PoolConfig
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.node import EmbeddedNode
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.channels import ChannelKind
from pithead.stratum.v2.client import MinerChannelConfig, MinerConnection
from pithead.stratum.v2.errors import NotMining
from pithead.template.sources.static import StaticTemplateSource
from stratum.dialects import CgMiner, Firmware
from stratum.helpers import regtest_template

from .harness import QUICK, FakePool, FakeSv2Pool, Upstream, start_proxy, stop_all, sv2_key_file, wait_for
from .test_proxy_e2e import (
    DIALECTS,
    MACHINE_DIFFICULTY,
    SHARES,
    UPSTREAM_DIFFICULTY,
    Ledger,
    check_counts,
    mine,
    pool_config,
    settled,
    upstream_of,
)

pytestmark = pytest.mark.timeout(240)

ROUNDING = 1 + 1e-9
"""An SV2 target read back as a difficulty is nudged up past float rounding (`miner_difficulty`)."""


async def node_tip(node: EmbeddedNode) -> str:
    async with httpx.AsyncClient() as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": "getbestblockhash", "params": []})
        return str(r.json()["result"])


async def test_dialects_mine_through_an_sv2_upstream_fail_over_to_v1_and_find_a_block(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        key_file, _ = sv2_key_file(tmp_path / "a.key")
        ups = {"a": Upstream("a", pool_config(node), lambda: None, sv2_key_file=key_file),
               "b": Upstream("b", pool_config(node), lambda: None)}
        for up in ups.values():
            await up.start()
        settings = replace(QUICK, start_difficulty=MACHINE_DIFFICULTY, min_difficulty=MACHINE_DIFFICULTY,
                           share_interval=0.001)
        proxy = await start_proxy([ups["a"].sv2_spec(0), ups["b"].spec(1)], settings)
        miners: list[Firmware] = [cls(f"rack1.{cls.name}", "x", seed=i) for i, cls in enumerate(DIALECTS)]
        ledger = Ledger()
        try:
            snap = proxy.snapshot()
            assert [u["protocol"] for u in snap["upstreams"]] == ["sv2", "sv1"]
            for m in miners:
                await m.connect("127.0.0.1", proxy.port)
                await m.handshake()
            await wait_for(lambda: all(upstream_of(proxy, m) == "a" for m in miners), "every machine on the SV2 pool")
            # one extended channel per proxy connection, each with room for the tag and the machines' extranonce2
            for route in (r for r in proxy.book.routes.values() if r.upstream == "a" and r.current is not None):
                assert route.current.work.extranonce2_size >= QUICK.tag_bytes + QUICK.extranonce2_size
                assert route.current.upstream_difficulty <= UPSTREAM_DIFFICULTY * ROUNDING
            for m in miners:
                diffs = [float(n["params"][0]) for n in m.notifications if n["method"] == "mining.set_difficulty"]
                assert diffs and diffs[-1] <= UPSTREAM_DIFFICULTY * ROUNDING, (m.name, diffs)
            await mine(proxy, miners, ledger, SHARES)
            await settled(proxy)
            check_counts(proxy, ups, ledger)
            assert ledger.forwarded["a"] and len(ledger.forwarded["a"]) < ledger.accepted  # both kinds happened

            # the SV2 pool dies: the V1 backup's work on the connections the machines have
            await ups["a"].stop()
            await wait_for(lambda: all(upstream_of(proxy, m) == "b" for m in miners), "every machine on the V1 pool")
            assert all(m.work is not None and m.work.params[8] is True for m in miners)  # clean_jobs
            await mine(proxy, miners, ledger, SHARES)
            await settled(proxy)
            check_counts(proxy, ups, ledger)

            # it comes back: after the hysteresis, every machine is back on SV2
            await ups["a"].start()
            await wait_for(lambda: all(upstream_of(proxy, m) == "a" for m in miners), "every machine back on SV2")
            assert proxy.failover.switches == 2
            await mine(proxy, miners, ledger, 2)
            await settled(proxy)
            check_counts(proxy, ups, ledger)
            assert not any(m.closed for m in miners) and not any(m.violations for m in miners)

            # a block behind the proxy, over SV2: the node's tip
            cg = next(m for m in miners if isinstance(m, CgMiner))
            block = cg.solve(await cg.wait_work(), block=True)
            reply = await cg.submit(block)
            assert reply.ok, reply.msg
            await wait_for(lambda: bool(ups["a"].sink.blocks), "the SV2 pool recorded the block")
            assert [b.accepted_by_node for b in ups["a"].sink.blocks] == [True]
            assert await node_tip(node) == block.block_hash
            await settled(proxy)
            assert proxy.figures["a"].counts.blocks == 1
        finally:
            for m in miners:
                await m.close()
            await stop_all(proxy, ups["a"], ups["b"])


async def test_pithead_miner_mines_through_an_sv2_upstream(tmp_path: Path) -> None:
    """`pithead miner` (V1, its native core) -> proxy -> pithead's SV2 pool on a difficulty-1 template: shares
    accepted upstream exactly once, none rejected or lost."""
    key_file, _ = sv2_key_file(tmp_path / "a.key")
    cfg = PoolConfig(port=0, mode="solo", network="regtest", refresh_interval=3600.0,
                     start_difficulty=1e-4, min_difficulty=1e-4, max_difficulty=1e-4, share_interval=1000.0)
    up = Upstream("a", cfg, lambda: StaticTemplateSource(regtest_template(bits=0x1D00FFFF, height=200,
                                                                          curtime=int(time.time()))),
                  sv2_key_file=key_file)
    await up.start()
    proxy = await start_proxy([up.sv2_spec(0)], replace(QUICK, start_difficulty=1e-5, min_difficulty=1e-9,
                                                        share_interval=1000.0))
    miner = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", proxy.port),), username="rack2.pithead-miner",
                               suggest_difficulty=1e-5))
    assert miner.client is not None
    run = asyncio.create_task(miner.run(duration=None))
    try:
        await wait_for(lambda: proxy.figures["a"].counts.accepted >= 3, "shares of pithead miner credited over SV2")
        miner.client.stop()
        await asyncio.wait_for(run, 30)
        await settled(proxy)
        counts = proxy.figures["a"].counts
        assert not counts.rejected and not counts.lost, counts
        assert counts.forwarded == counts.accepted == len(up.sink.accepted) and not up.sink.rejected
    finally:
        if not run.done():
            miner.client.stop()
            await asyncio.wait_for(run, 30)
        await stop_all(proxy, up)


async def test_a_wrong_authority_key_is_refused_and_the_machines_mine_on_the_backup(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        key_file, _ = sv2_key_file(tmp_path / "a.key")
        ups = {"a": Upstream("a", pool_config(node), lambda: None, sv2_key_file=key_file),
               "b": Upstream("b", pool_config(node), lambda: None)}
        for up in ups.values():
            await up.start()
        wrong = secp256k1.xonly_public(secp256k1.new_secret())
        proxy = await start_proxy([ups["a"].sv2_spec(0, authority_key=wrong), ups["b"].spec(1)])
        m = CgMiner("rack1.cg", "x", seed=1)
        try:
            await m.connect("127.0.0.1", proxy.port)
            await m.handshake()
            await wait_for(lambda: upstream_of(proxy, m) == "b", "the machine on the V1 backup")
            snap = {u["name"]: u for u in proxy.snapshot()["upstreams"]}
            assert snap["a"]["state"] == "unhealthy"
            assert any("certificate does not verify" in e for e in snap["a"]["recent_errors"]), snap["a"]
            assert all(not c["ready"] for c in snap["a"]["connections"])
            share = m.solve(await m.wait_work())
            assert (await m.submit(share)).ok
            # the refused pool's tasks are alive (retried later), not crashed
            assert all(c.task is not None and not c.task.done() for c in proxy.upstreams["a"].connections)
        finally:
            await m.close()
            await stop_all(proxy, ups["a"], ups["b"])


@pytest.mark.parametrize(("behaviour", "error"), [
    ("garbage", "protocol error"),
    ("oversized", "frame of 4194304 bytes"),
    ("junk-handshake", "the Noise handshake failed"),
])
async def test_bad_input_from_an_sv2_upstream_is_a_clear_error_and_a_failover(behaviour: str, error: str) -> None:
    bad = FakeSv2Pool(behaviour, secp256k1.new_secret())
    backup = FakePool("good")
    await bad.start()
    await backup.start()
    proxy = await start_proxy([bad.spec("bad", 0), backup.spec("backup", 1)], replace(QUICK, sv2_refused_retry=0.3))
    m = CgMiner("rack1.cg", "x", seed=2)
    try:
        await m.connect("127.0.0.1", proxy.port)
        await m.handshake()
        await wait_for(lambda: upstream_of(proxy, m) == "backup", "the machine on the backup")
        # both connections tried again (their tasks live on: nothing is marked failed for good)
        await wait_for(lambda: bad.connections >= 2 * QUICK.connections_per_upstream + 1, "the bad pool tried again")
        snap = {u["name"]: u for u in proxy.snapshot()["upstreams"]}
        assert snap["bad"]["state"] == "unhealthy"
        assert any(error in e for e in snap["bad"]["recent_errors"]), snap["bad"]["recent_errors"]
        assert all(c.task is not None and not c.task.done() for c in proxy.upstreams["bad"].connections)
        assert (await m.submit(m.solve(await m.wait_work()))).ok
        assert not m.closed
    finally:
        await m.close()
        await stop_all(proxy, bad, backup)


async def test_update_channel_declares_the_machines_hashrate_and_the_pools_target_follows(tmp_path: Path) -> None:
    """Each SV2 channel opens before any machine is behind it (nominal hashrate 0: the pool's start
    difficulty); once machines are on it, the proxy sends UpdateChannel with their hashrate (no share yet:
    difficulty x 2^32 / share_interval each), and pithead's pool re-bases its vardiff on it: the channel's
    difficulty becomes that hashrate x the pool's share interval / 2^32, per channel, with the number of
    machines on it. A second UpdateChannel waits for the interval and a real change."""
    key_file, _ = sv2_key_file(tmp_path / "a.key")
    cfg = PoolConfig(port=0, mode="solo", network="regtest", refresh_interval=3600.0, start_difficulty=1e-2,
                     min_difficulty=1e-6, max_difficulty=1e3, share_interval=1000.0)
    up = Upstream("a", cfg, lambda: StaticTemplateSource(regtest_template(bits=0x1D00FFFF, height=200,
                                                                          curtime=int(time.time()))),
                  sv2_key_file=key_file)
    await up.start()
    machine_diff = 1e-3
    settings = replace(QUICK, start_difficulty=machine_diff, min_difficulty=machine_diff, share_interval=10.0,
                       sv2_update_interval=0.2)
    proxy = await start_proxy([up.sv2_spec(0)], settings)
    ms: list[CgMiner] = []
    try:
        await wait_for(lambda: proxy.book.active == "a", "the SV2 pool in use")
        ms = [CgMiner(f"rack7.m{i}", "x", seed=i) for i in range(3)]
        for m in ms:
            await m.connect("127.0.0.1", proxy.port)
            await m.handshake()
        routes = [r for r in proxy.book.routes.values() if r.upstream == "a" and r.alive]
        await wait_for(lambda: sum(r.machines for r in routes) == 3, "the machines placed")
        per_machine = machine_diff * 2**32 / settings.share_interval

        def followed() -> bool:
            return all(r.current is not None and math.isclose(r.current.upstream_difficulty,
                                                              r.machines * per_machine * cfg.share_interval / 2**32,
                                                              rel_tol=1e-4)
                       for r in routes if r.machines)

        await wait_for(followed, "each channel's difficulty to follow its machines' hashrate")
        conns = proxy.upstreams["a"].connections
        declared = {c.index: c.declared_rate for c in conns}
        assert sorted(v for v in declared.values() if v) == sorted(r.machines * per_machine for r in routes
                                                                   if r.machines)
        # the machines' own difficulty was never capped below theirs: the figure is not circular
        assert all(s.session is not None and s.session.difficulty == machine_diff for s in proxy.server.connections)
        shown = {c["index"]: c["declared_hash_rate"] for c in proxy.snapshot()["upstreams"][0]["connections"]}
        assert {i: v for i, v in shown.items() if v} == {i: v for i, v in declared.items() if v}
        at = {c.index: c.declared_at for c in conns}
        await asyncio.sleep(3 * settings.sv2_update_interval)
        proxy.tick(time.time())
        assert {c.index: c.declared_at for c in conns} == at  # nothing moved: no second UpdateChannel
    finally:
        for m in ms:
            await m.close()
        await stop_all(proxy, up)


def test_update_channel_needs_an_open_channel() -> None:
    conn = MinerConnection(MinerChannelConfig("acct.farm", ChannelKind.EXTENDED), None)
    with pytest.raises(NotMining, match="no channel to update"):
        conn.update_channel(1e12)

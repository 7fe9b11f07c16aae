"""`pithead miner` (the reference miner: native hashing core, its own Stratum client) behind the proxy, two
pithead pools upstream (`pithead.app.pool.serve` on a hand-fed template with a difficulty-1 network target,
so its many shares are shares and not blocks). The primary is killed while the miner runs: the miner stays
on its one connection to the proxy (no reconnect), gets the backup's work, and every share it was told is
accepted was judged by the proxy; every share the proxy forwarded was accepted upstream exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from pithead.config import PoolConfig
from pithead.miner.runner import Miner, MinerOptions
from pithead.stratum.client.connection import PoolAddress
from pithead.template.sources.static import StaticTemplateSource
from stratum.helpers import regtest_template

from .harness import QUICK, Upstream, start_proxy, stop_all, wait_for

pytestmark = pytest.mark.timeout(180)

UPSTREAM_DIFFICULTY = 1e-4
"""~430,000 hashes per share the pool credits: a few a second from one thread of the native core."""
MACHINE_DIFFICULTY = 1e-5
"""What the miner suggests: ten times the pool's work rate in shares the proxy judges."""


def pool_config() -> PoolConfig:
    return PoolConfig(port=0, mode="solo", network="regtest", refresh_interval=3600.0,
                      start_difficulty=UPSTREAM_DIFFICULTY, min_difficulty=UPSTREAM_DIFFICULTY,
                      max_difficulty=UPSTREAM_DIFFICULTY, share_interval=1000.0)


async def test_pithead_miner_behind_the_proxy_rides_through_a_failover() -> None:
    ups = {name: Upstream(name, pool_config(),
                          lambda h=h: StaticTemplateSource(regtest_template(bits=0x1D00FFFF, height=h,
                                                                            curtime=int(time.time()))))
           for name, h in (("a", 200), ("b", 300))}
    for up in ups.values():
        await up.start()
    settings = replace(QUICK, start_difficulty=MACHINE_DIFFICULTY, min_difficulty=1e-9, share_interval=1000.0)
    proxy = await start_proxy([ups["a"].spec(0), ups["b"].spec(1)], settings)
    miner = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", proxy.port),), username="rack2.pithead-miner",
                               suggest_difficulty=MACHINE_DIFFICULTY))
    assert miner.client is not None
    run = asyncio.create_task(miner.run(duration=None))
    try:
        await wait_for(lambda: proxy.figures["a"].counts.accepted >= 3, "shares credited by a")
        await ups["a"].stop()
        await wait_for(lambda: proxy.figures["b"].counts.accepted >= 3, "shares credited by b after the failover")
        miner.client.stop()  # the miner ends its run once its client stops (answers drained first)
        status = await asyncio.wait_for(run, 30)
    finally:
        if not run.done():
            miner.client.stop()
            await asyncio.wait_for(run, 30)
        await stop_all(proxy, ups["b"])
    assert miner.client is not None and miner.client.connect_attempts == 1, list(status.log)  # never reconnected
    judged = proxy.server.stats.workers["rack2.pithead-miner"]
    assert status.rejected == 0 or all(r in ("stale",) for r in judged.rejected), list(status.log)
    assert status.accepted == judged.accepted > 0
    forwarded = 0
    for name, up in ups.items():
        counts = proxy.figures[name].counts
        assert counts.accepted == len(up.sink.accepted) and not up.sink.rejected, (name, counts)
        # in flight when the primary died: counted as lost, never dropped
        assert counts.forwarded == counts.accepted + sum(counts.lost.values()), (name, counts)
        assert len({e.share_difficulty for e in up.sink.accepted}) == len(up.sink.accepted)  # each once
        forwarded += counts.forwarded
    assert status.accepted >= forwarded
    machine = proxy.machines.machines["rack2.pithead-miner"]
    assert machine.counts.accepted == sum(len(up.sink.accepted) for up in ups.values())

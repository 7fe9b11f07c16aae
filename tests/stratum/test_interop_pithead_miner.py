"""Interop: pithead's own miner (pithead.miner + pithead.stratum.client, written independently of the
pool) mines against the pool over loopback: version rolling, suggest_difficulty, vardiff, accepted
shares and no rejects."""

from __future__ import annotations

import pytest

from pithead.chain.params import REGTEST
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.static import StaticTemplateSource

from .helpers import SOLO_ADDRESS, regtest_template

runner = pytest.importorskip("pithead.miner.runner")
connection = pytest.importorskip("pithead.stratum.client.connection")


async def test_pithead_miner_gets_shares_accepted() -> None:
    source = StaticTemplateSource(regtest_template(bits=0x1D00FFFF))
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(1.0, 1e-6, 1e9), start_difficulty=1e-4)
    server = PoolServer(rules=rules, source=source, refresh_interval=3600)
    _, port = await server.start("127.0.0.1", 0)
    try:
        opts = runner.MinerOptions(pools=(connection.PoolAddress("127.0.0.1", port),),
                                   username=SOLO_ADDRESS + ".pithead-miner", suggest_difficulty=1e-5)
        status = await runner.Miner(opts).run(duration=3.0)
    finally:
        await server.stop()
    stats = server.stats.workers.get(SOLO_ADDRESS + ".pithead-miner")
    assert stats is not None and stats.accepted > 0, status.log
    assert status.accepted == stats.accepted and status.rejected == 0, (dict(stats.rejected), list(status.log))
    assert not stats.rejected

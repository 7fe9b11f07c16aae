"""Simulated devices mine for real against pithead's own pool: distinct source addresses, valid shares."""

from __future__ import annotations

import asyncio
import time

import pytest

from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.params import REGTEST
from pithead.events import ShareEvent
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.device import PoolConf
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.mining import MiningBridge, choose_miners
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.block_template import BlockTemplate
from pithead.template.sources.static import StaticTemplateSource

pytestmark = pytest.mark.timeout(90)

ADDRESS = (
    "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"  # valid regtest P2WPKH (tests/vectors/addresses.json)
)
HARD_BITS = 0x1D00FFFF  # our tiny shares are never blocks
WAIT_LIMIT_S = 45.0


class Sink:
    def __init__(self) -> None:
        self.events: list[object] = []

    def put(self, event: object) -> None:
        self.events.append(event)


def _template() -> BlockTemplate:
    now = int(time.time())
    return BlockTemplate(
        version=0x20000000,
        prev_hash=sha256d(b"farm-sim"),
        height=101,
        bits=HARD_BITS,
        target=bits_to_target(HARD_BITS),
        curtime=now,
        mintime=now - 600,
        coinbase_value=50 * 100_000_000,
        transactions=(),
        rules=("csv", "!segwit", "taproot"),
    )


async def test_devices_mine_from_their_own_addresses_and_shares_are_accepted() -> None:
    sink = Sink()
    rules = PoolRules(
        mode="solo", network=REGTEST, vardiff=VarDiffConfig(5.0, 1e-6, 1e9), start_difficulty=1e-4
    )
    server = PoolServer(
        rules=rules, source=StaticTemplateSource(_template()), sink=sink, refresh_interval=3600
    )
    _, port = await server.start("127.0.0.1", 0)
    pools = (PoolConf(f"stratum+tcp://127.0.0.1:{port}", ADDRESS),)
    fleet = Fleet.build(
        6, mix="s19xp:1,bitaxe-gamma:1", seed=4, network="127.31.7.0/24", clock=ManualClock(), pools=pools
    )
    miners = choose_miners(fleet, 0.5)
    assert 0 < len(miners) < len(fleet)  # a seeded fraction
    assert miners == choose_miners(fleet, 0.5)
    bridge = MiningBridge(fleet, miners, share_difficulty=1e-4, hash_duty=0.5)
    try:
        await bridge.start()
        deadline = time.monotonic() + WAIT_LIMIT_S
        want = {d.ip for d in miners}
        while True:
            shares = [e for e in sink.events if isinstance(e, ShareEvent) and e.accepted]
            if {e.remote for e in shares} >= want:
                break
            assert time.monotonic() < deadline, f"shares only from {sorted({e.remote for e in shares})}"
            await asyncio.sleep(0.1)
        # every device's worker is its own (pool user + "." + hostname), as farms name workers
        by_remote = {e.remote: e.worker for e in shares}
        for d in miners:
            assert by_remote[d.ip] == f"{ADDRESS}.{d.hostname}"
        assert bridge.stats.accepted >= len(miners)
        assert bridge.stats.rejected == 0
        assert bridge.stats.pool_side_hps() > 0
        # pool-side (real) hashing is tiny next to the simulated figure, and the two are kept apart
        simulated_hps = sum(d.snapshot(fleet.ctx, fleet.now()).rate_avg_ghs for d in miners) * 1e9
        assert bridge.stats.pool_side_hps() < simulated_hps / 1e3

        # a rebooting device drops its connection and comes back after the boot
        dev = miners[0]
        fleet.restart(dev.ip)
        deadline = time.monotonic() + WAIT_LIMIT_S
        while bridge.stats.miners[dev.ip].connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        fleet.clock.advance(dev.down_until - fleet.now() + 1)  # type: ignore[attr-defined]
        while not bridge.stats.miners[dev.ip].connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert bridge.stats.miners[dev.ip].connects == 2
    finally:
        await bridge.close()
        await server.stop()

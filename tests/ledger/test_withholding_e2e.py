"""A withholding miner among honest ones, on pithead's demo chain: the whole path on loopback — the embedded
node (demo chain, a block about every second), the Stratum pool in pool mode, the ledger consuming the
pool's events, and three reference miners hashing with the native core, one of which withholds (it submits
every share except those that solve the block). The withholder is flagged, with a notice, and shown so by
the API; the honest miners, who found the blocks, are not.

The withholder is a test miner (`WithholdingMiner`), not a feature: the real miner never drops a share.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pithead import config as config_mod
from pithead.bitcoind.rpc import RpcClient
from pithead.chain.address import script_to_address
from pithead.chain.compact import bits_to_target
from pithead.chain.params import REGTEST
from pithead.chain.script import witness_program_script
from pithead.events import Notice
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.service import Timers, run_ledger
from pithead.ledger.store import open_store
from pithead.ledger.store.base import StoreReader
from pithead.ledger.store.records import OddsKind
from pithead.ledger.withholding import min_expected_blocks
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.node import EmbeddedNode
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.server.build import build_server
from pithead.stratum.v1.work import FoundShare
from pithead.template.sources.failover import source_from_config
from pithead.web.app import create_app
from pithead.web.services import PoolInfo, Services

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# The demo chain retargets every block towards this spacing (seconds) whatever hashrate mines it.
BLOCK_INTERVAL = 1.0
# One fixed share difficulty for everyone (about 200,000 hashes a share, tens a second per CPU thread): well
# below the network difficulty the demo chain settles at for a few MH/s, so a block takes many shares and
# a share's odds d/D are small, as on a real pool. (While the chain's difficulty climbs from the regtest
# limit every share is a block: the pool sends one candidate per parent to the node, and the ledger counts
# a block found as its share arrives, so the node's slow answers on a starved machine flag nobody.)
SHARE_DIFFICULTY = 5e-5
# How long the withholder may take to be flagged on a loaded two-core machine: it needs 9.12 blocks of
# its own work, a third of the pool's hashrate, so about 18 block intervals once the chain's difficulty has
# climbed from the regtest limit (a minute or two of blocks at share rate when the machine is busy).
FLAG_WITHIN_S = 300.0


def address(tag: int) -> str:
    """A regtest P2WPKH address of a made-up key (the pool takes only valid payout addresses as names)."""
    found = script_to_address(witness_program_script(0, bytes([tag]) * 20), REGTEST)
    assert found is not None
    return found


HONEST = (address(1), address(2))
THIEF = address(3)


class WithholdingMiner(Miner):
    """A reference miner that submits every share except the ones that would solve the block."""

    withheld = 0

    def _on_share(self, share: FoundShare) -> None:
        if int.from_bytes(share.hash, "little") <= bits_to_target(share.work.job.nbits):
            self.withheld += 1  # a block: keep it to ourselves (and cost the pool the block)
            return
        super()._on_share(share)


class Notices:
    def __init__(self) -> None:
        self.got: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.got.append(notice)


def flagged(store: StoreReader, kind: OddsKind, name: str) -> bool:
    rows = store.block_odds(kind, [name])
    return bool(rows) and rows[0].flagged_since is not None


async def test_a_withholding_miner_among_honest_ones_is_flagged(tmp_path: Path) -> None:
    node = EmbeddedNode(tmp_path / "node", chain="demo", rpc_port=0, block_interval=BLOCK_INTERVAL)
    await node.start()
    user, password = node.auth
    rpc = RpcClient(node.rpc_url, user=user, password=password, name="demo")
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    store = open_store(url)
    reader = open_store(url, migrate=False)  # the web's and this test's own connection
    notices = Notices()
    ledger = Ledger(store, LedgerSettings(), notices=notices)
    bus = MemoryBus("pool")
    stop = asyncio.Event()
    ledger_task = asyncio.create_task(run_ledger(ledger, bus, stop, timers=Timers(rollup_s=3600.0)))
    pool_cfg = config_mod.PoolConfig(
        port=0, mode="pool", network="regtest", pool_address=str(await rpc.call("getnewaddress")),
        nodes=(config_mod.UpstreamNode(url=node.rpc_url, rpc_user=user, rpc_password=password),),
        min_difficulty=SHARE_DIFFICULTY, max_difficulty=SHARE_DIFFICULTY, start_difficulty=SHARE_DIFFICULTY,
    )
    source = source_from_config(pool_cfg.nodes, chain="regtest", refresh_interval=5.0)
    await source.start()
    server = build_server(pool_cfg, source, bus)
    _, port = await server.start("127.0.0.1", 0)

    def options(payout: str) -> MinerOptions:
        return MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=f"{payout}.cpu", threads=1,
                            suggest_difficulty=SHARE_DIFFICULTY)

    thief = WithholdingMiner(options(THIEF))
    miners = [Miner(options(a)) for a in HONEST] + [thief]
    tasks = [asyncio.create_task(m.run()) for m in miners]
    try:
        deadline = time.monotonic() + FLAG_WITHIN_S
        while not await asyncio.to_thread(flagged, reader, OddsKind.WORKER, f"{THIEF}.cpu"):
            assert time.monotonic() < deadline, (
                f"not flagged in {FLAG_WITHIN_S:.0f} s: {reader.block_odds(OddsKind.WORKER)}")
            assert not ledger_task.done(), ledger_task
            await asyncio.sleep(0.5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for m in miners:
            await asyncio.to_thread(m.engine.stop)
        await server.stop()
        stop.set()
        await asyncio.wait_for(ledger_task, 60)
        await source.stop()
        await rpc.close()
        await node.stop()

    (odds,) = reader.block_odds(OddsKind.WORKER, [f"{THIEF}.cpu"])
    assert odds.found == 0 and odds.expected >= min_expected_blocks()
    assert thief.withheld > 0  # it did find blocks, and kept them
    assert flagged(reader, OddsKind.ADDRESS, THIEF)
    for payout in HONEST:  # the honest miners found the chain's blocks, and carry no flag
        (honest,) = reader.block_odds(OddsKind.WORKER, [f"{payout}.cpu"])
        assert honest.found > 0 and honest.flagged_since is None, honest
        assert not flagged(reader, OddsKind.ADDRESS, payout)
    assert f"withholding:worker:{THIEF}.cpu" in {n.key for n in notices.got if n.severity == "warning"}
    assert not any(a in n.key for n in notices.got for a in HONEST)
    # Every block the pool recorded has its effort; the pool's luck counts the withheld ones as missing.
    blocks = reader.blocks(1_000_000)  # all of them: the climb from the regtest limit makes many
    assert blocks and all(b.effort is not None for b in blocks)
    (pool,) = reader.block_odds(OddsKind.POOL, [""])
    assert pool.found == len(blocks)

    api = TestClient(create_app(Services(store=reader, info=PoolInfo(mode="pool"))))
    report = api.get("/api/withholding").json()
    assert {(s["kind"], s["name"]) for s in report["flagged"]} == {("worker", f"{THIEF}.cpu"), ("address", THIEF)}
    assert report["least_likely"][0]["name"] == f"{THIEF}.cpu"
    reader.close()
    store.close()

"""The answers the dashboard adds for operators: the odds of a block from a hashrate and the network's
difficulty, how far a block is from maturity, explorer links per network (none for regtest or signet), and
how to connect a miner."""

from __future__ import annotations

import math

from pithead.ledger.stats import HASHES_PER_DIFF1
from pithead.ledger.store.records import BatchStatus, BlockRecord, BlockStatus, PayoutBatch
from pithead.web import queries
from pithead.web.explorers import explorer_for_network
from pithead.web.models import Hashrate
from pithead.web.services import PoolInfo


def rate(window: str, hps: float | None, enough: bool = True) -> Hashrate:
    return Hashrate(window=window, window_s=3600, span_s=3600, observed_s=3600, shares=100 if enough else 2,
                    difficulty_sum=1.0, hashrate_hps=hps, low_hps=hps, high_hps=hps, enough_shares=enough)


def test_block_odds_from_hashrate_and_difficulty() -> None:
    # 1 PH/s against difficulty 1e12: 1e12 x 2^32 / 1e15 = ~4295 s per block on average
    odds = queries.block_chance([rate("5m", 2e15), rate("1h", 1e15)], 1e12, network_hashrate_hps=1e18)
    assert odds.window == "1h" and odds.hashrate_hps == 1e15  # the 1h estimate first
    assert math.isclose(odds.expected_block_s or 0, 1e12 * HASHES_PER_DIFF1 / 1e15)
    assert math.isclose(odds.chance_24h or 0, 1 - math.exp(-86400 / odds.expected_block_s))  # type: ignore[operator]
    assert odds.chance_per_block == 1e-3
    # No reliable 1h figure: the shortest window that has one.
    assert queries.block_chance([rate("1m", 5e14), rate("1h", None, False)], 1e12).window == "1m"
    few = queries.block_chance([rate("1h", None, False)], 1e12)
    assert few.expected_block_s is None and few.note == "too few shares to estimate a hashrate"
    unknown = queries.block_chance([rate("1h", 1e15)], None)
    assert unknown.expected_block_s is None and unknown.note == "the node's difficulty is not known yet"


def _block(status: BlockStatus, confirmations: int) -> BlockRecord:
    return BlockRecord("ab" * 32, 800_000, 1.7e9, "bc1qx.rig", "bc1qx", 312_500_000, 0, status, confirmations,
                       "pplns", 1e14, 1.7e9)


def test_maturity_and_explorer_links() -> None:
    main = explorer_for_network("main")
    pending = queries.block_out(_block(BlockStatus.PENDING, 40), main)
    assert pending.maturity_progress == 0.4 and pending.maturity_eta_s == 60 * 600.0
    assert pending.explorer_url == "https://www.blockchain.com/btc/block/" + "ab" * 32
    confirmed = queries.block_out(_block(BlockStatus.CONFIRMED, 130), main)
    assert confirmed.maturity_progress == 1.0 and confirmed.maturity_eta_s is None
    for never in (BlockStatus.STALE, BlockStatus.REJECTED):  # on no public chain: no link, no ETA
        out = queries.block_out(_block(never, 0), main)
        assert out.explorer_url is None and out.maturity_eta_s is None and out.status == str(never)
    assert explorer_for_network("regtest") is None and explorer_for_network("signet") is None
    t4 = explorer_for_network("testnet4")
    assert t4 is not None and t4.block_url("cd" * 32) == "https://mempool.space/testnet4/block/" + "cd" * 32
    batch = PayoutBatch(1, 1.7e9, 1.7e9, BatchStatus.SENT, "ef" * 32, (("bc1qx", 1000),))
    assert queries.payout_out(batch, main).explorer_url == "https://www.blockchain.com/btc/tx/" + "ef" * 32
    assert queries.payout_out(batch, None).explorer_url is None


def test_how_to_connect_a_miner() -> None:
    c = queries.connect_info(PoolInfo(mode="solo", network="signet", stratum_url="stratum+tcp://pool.lan:3333"))
    assert c.stratum_urls == ["stratum+tcp://pool.lan:3333"] and c.user == "ADDRESS.worker" and c.password == "x"
    assert "tb1" in c.address_hint and c.network == "signet"
    by = {e.miner.split(" ")[0]: e.settings for e in c.examples}
    assert by["cgminer"]["command"] == "cgminer -o stratum+tcp://pool.lan:3333 -u ADDRESS.worker -p x"
    assert (by["Bitaxe"]["Stratum URL"], by["Bitaxe"]["Stratum Port"]) == ("pool.lan", "3333")
    assert by["Antminer"]["Pool URL"] == "stratum+tcp://pool.lan:3333"

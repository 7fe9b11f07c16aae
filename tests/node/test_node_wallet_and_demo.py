"""The node's minimal wallet (what a pool's payouts need), the warm-up answer, and the demo chain's
retargeting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pithead.bitcoind.rpc import NodeWarmingUpError, RpcClient, RpcError
from pithead.chain.compact import bits_to_target, target_to_bits
from pithead.chain.params import REGTEST
from pithead.node.node import EmbeddedNode, EmbeddedNodeError
from pithead.node.retarget import MAX_STEP, demo_next_bits
from pithead.node.testing import mine_blocks, running_node

EXTERNAL = "bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m"  # a P2WPKH address from the Core fixtures


async def test_wallet_pays_out_with_cores_shapes(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    _, rpc = node_rpc
    mine_to = await rpc.call("getnewaddress", "pool")
    await mine_blocks(rpc, 101, mine_to)
    assert await rpc.call("getbalance") == 50.0  # one mature coinbase; 100 are immature
    unspent = await rpc.call("listunspent")
    assert [u["amount"] for u in unspent] == [50.0]
    assert (
        unspent[0]["address"] == mine_to
        and unspent[0]["label"] == "pool"
        and unspent[0]["confirmations"] == 101
    )
    txid = await rpc.call(
        "sendmany",
        "",
        {EXTERNAL: 1.5, "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85": 0.25},
    )
    assert txid in await rpc.call("getrawmempool")
    pending = await rpc.call("gettransaction", txid)
    assert pending["confirmations"] == 0 and pending["fee"] < 0
    sends = [d for d in pending["details"] if d["category"] == "send"]
    assert sorted(d["amount"] for d in sends) == [-1.5, -0.25]
    assert pending["amount"] == -1.75
    balance_after = await rpc.call("getbalance")
    assert balance_after == pytest.approx(50 - 1.75 + pending["fee"], abs=1e-8)
    (block,) = await mine_blocks(rpc, 1, mine_to)
    mined = await rpc.call("gettransaction", txid)
    assert mined["confirmations"] == 1 and mined["blockhash"] == block and mined["blockindex"] == 1
    raw = await rpc.call("getrawtransaction", txid, True)
    assert {o["scriptPubKey"].get("address") for o in raw["vout"]} >= {EXTERNAL}
    generated = await rpc.call("gettransaction", (await rpc.call("getblock", block))["tx"][0])
    assert generated["generated"] is True and generated["details"][0]["category"] == "immature"


async def test_wallet_errors_like_core(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    _, rpc = node_rpc
    with pytest.raises(RpcError) as err:
        await rpc.call("sendmany", "", {EXTERNAL: 1})
    assert err.value.code == -6 and err.value.message == "Insufficient funds"
    with pytest.raises(RpcError) as err:
        await rpc.call("sendmany", "", {"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4": 1})
    assert err.value.code == -5
    with pytest.raises(RpcError) as err:
        await rpc.call("gettransaction", "00" * 32)
    assert err.value.code == -5
    with pytest.raises(RpcError) as err:
        await rpc.call("getnewaddress", "", "bech33")
    assert err.value.code == -5


async def test_warming_up_answers_minus_28(tmp_path: Path) -> None:
    async with running_node(tmp_path / "warm", warmup_s=30.0) as (_, rpc):
        with pytest.raises(NodeWarmingUpError) as err:
            await rpc.call("getblockcount")
        assert err.value.code == -28


def test_demo_retarget_follows_the_observed_pace() -> None:
    limit = REGTEST.pow_limit
    start_bits = target_to_bits(limit >> 20)
    spacing = 10
    # Blocks twice as fast as wanted: the target shrinks (harder); twice as slow: it grows.
    fast = [(1_000_000 - i * 5, start_bits) for i in range(13)]
    slow = [(1_000_000 - i * 20, start_bits) for i in range(13)]
    on_pace = [(1_000_000 - i * 10, start_bits) for i in range(13)]
    t0 = bits_to_target(start_bits)
    assert bits_to_target(demo_next_bits(fast, spacing=spacing, pow_limit=limit)) < t0
    assert bits_to_target(demo_next_bits(slow, spacing=spacing, pow_limit=limit)) > t0
    assert abs(bits_to_target(demo_next_bits(on_pace, spacing=spacing, pow_limit=limit)) - t0) < t0 // 1000
    # One absurd timestamp cannot move it by more than the clamp, nor past the proof-of-work limit.
    instant = [(1_000_000, start_bits) for _ in range(13)]
    assert (
        bits_to_target(demo_next_bits(instant, spacing=spacing, pow_limit=limit))
        >= t0 // MAX_STEP - t0 // 1000
    )
    ancient = [(1_000_000 - i * 100_000, target_to_bits(limit)) for i in range(13)]
    assert demo_next_bits(ancient, spacing=spacing, pow_limit=limit) == target_to_bits(limit)
    assert demo_next_bits(ancient[:1], spacing=spacing, pow_limit=limit) == target_to_bits(limit)


async def test_demo_chain_starts_easy_and_hardens_when_blocks_come_fast(tmp_path: Path) -> None:
    async with running_node(tmp_path / "demo", chain="demo", block_interval=600.0) as (_, rpc):
        assert (await rpc.call("getblockchaininfo"))["chain"] == "regtest"
        await mine_blocks(rpc, 14)  # seconds apart instead of ten minutes: far too fast
        info = await rpc.call("getmininginfo")
        assert bits_to_target(int(info["next"]["bits"], 16)) < REGTEST.pow_limit
        tpl = await rpc.call("getblocktemplate", {"rules": ["segwit"]})
        assert tpl["bits"] == info["next"]["bits"]


async def test_node_from_config(tmp_path: Path) -> None:
    from pithead.config import NodeConfig

    node = EmbeddedNode.from_config(
        NodeConfig(tx_rate=0.0, zmq_pub_hashblock="tcp://127.0.0.1:0"), tmp_path / "cfg", rpc_port=0
    )
    async with node:
        client = RpcClient(node.rpc_url, cookie_file=node.cookie_path)
        assert (await client.call("getblockchaininfo"))["chain"] == "regtest"
        await client.close()
        source = node.template_source()
        await source.start()
        try:
            template = source.current()
            assert template is not None and template.height == 1 and source.zmq_hashblock
        finally:
            await source.stop()


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    async with running_node(tmp_path / "first") as (node, _):
        second = EmbeddedNode(tmp_path / "second", rpc_port=node.rpc_port)
        with pytest.raises(EmbeddedNodeError, match="cannot listen"):
            await second.start()
        assert not second.cookie_path.exists()

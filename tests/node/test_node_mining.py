"""Mining against the embedded node as a pool would: templates with real (segwit) transactions, blocks
built from them, ZMQ notifications, long-polls, and a restart that keeps the chain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
import zmq.asyncio

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.block import Block
from pithead.chain.hashes import display_hex
from pithead.chain.params import REGTEST
from pithead.node.genesis import regtest_genesis
from pithead.node.node import EmbeddedNode
from pithead.node.rpc.format import tx_json
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.template.block_template import parse_gbt

CORE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"


def core_fixture(name: str) -> Any:
    return json.loads((CORE_FIXTURES / name).read_text())


GBT = {"rules": ["segwit"]}
PAYOUT = p2wsh_of(BARE_OP_TRUE)


def test_genesis_is_bitcoin_cores_regtest_genesis() -> None:
    assert regtest_genesis().hash_hex() == REGTEST.genesis_hash
    assert display_hex(regtest_genesis().header.merkle_root) == (
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    )


def test_transaction_json_matches_core_on_the_ckpool_block() -> None:
    """Every transaction of the real ckpool-mined block renders exactly as Core's getblock 2 did."""
    core = core_fixture("block-102-ckpool-mined-core-regtest.verbose2.json")
    raw = (
        Path(__file__).parent.parent / "fixtures/bitcoin-core/block-102-ckpool-mined-core-regtest.hex"
    ).read_text()
    block = Block.from_hex(raw.strip())
    assert block.hash_hex() == core["hash"]
    for tx, expected in zip(block.txs, core["tx"], strict=True):
        ours = orjson.loads(orjson.dumps(tx_json(tx, REGTEST, fee=None)))  # as a client reads it
        expected = {k: v for k, v in expected.items() if k != "fee"}
        assert ours == expected


async def test_block_from_template_with_segwit_transactions_is_accepted(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    await mine_blocks(rpc, 101)
    legacy = await rpc.call("getnewaddress", "", "legacy")
    segwit = await rpc.call("getnewaddress")
    first = await rpc.call("sendmany", "", {legacy: 1.25, segwit: 2})
    second = await rpc.call("sendmany", "", {"bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m": 0.5})
    gbt = await rpc.call("getblocktemplate", GBT)
    tpl = parse_gbt(gbt)  # validates txids, wtxids and the default witness commitment
    assert {t["txid"] for t in gbt["transactions"]} == {first, second}
    assert all(t["txid"] != t["hash"] for t in gbt["transactions"])  # witness data present
    assert gbt["coinbasevalue"] == 50 * 100_000_000 + sum(t["fee"] for t in gbt["transactions"])
    dependent = [t for t in gbt["transactions"] if t["depends"]]
    for t in dependent:
        assert all(1 <= d <= len(gbt["transactions"]) for d in t["depends"])
    block = block_from_template(gbt, PAYOUT)
    assert block.txs[0].outputs[-1].script_pubkey == tpl.default_witness_commitment
    assert await rpc.submitblock(block.hex()) is None
    assert await rpc.call("getbestblockhash") == block.hash_hex()
    assert await rpc.call("getrawmempool") == []
    mined = await rpc.call("getblock", block.hash_hex(), 2)
    assert mined["nTx"] == 3 and mined["weight"] == block.weight()
    assert {t["txid"] for t in mined["tx"][1:]} == {first, second}
    assert all("fee" in t for t in mined["tx"][1:])


async def test_transaction_generator_fills_templates_with_chains_and_witnesses(tmp_path: Path) -> None:
    async with running_node(tmp_path / "gen", tx_rate=200.0, seed=7) as (_, rpc):
        assert await rpc.call("getblockcount") == 110  # premined coins for the generator
        for _ in range(200):
            if len(await rpc.call("getrawmempool")) >= 12:
                break
            await asyncio.sleep(0.02)
        gbt = await rpc.call("getblocktemplate", GBT)
        txs = gbt["transactions"]
        assert len(txs) >= 12
        assert any(t["depends"] for t in txs)  # chains of unconfirmed transactions
        assert any(t["txid"] != t["hash"] for t in txs)  # segwit spends
        assert all(t["fee"] > 0 for t in txs)
        block = block_from_template(gbt, PAYOUT)
        assert await rpc.submitblock(block.hex()) is None
        mempool = set(await rpc.call("getrawmempool"))
        assert not mempool & {t["txid"] for t in txs}


async def test_zmq_hashblock_and_rawblock_like_core(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    ctx = zmq.asyncio.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(node.zmq_endpoints["hashblock"])
    sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
    sub.setsockopt(zmq.SUBSCRIBE, b"rawblock")
    try:
        await asyncio.sleep(0.2)  # ZMQ's slow joiner: let the subscription reach the publisher
        hashes = await mine_blocks(rpc, 2)
        got = [await asyncio.wait_for(sub.recv_multipart(), 5) for _ in range(4)]
    finally:
        sub.close()
    by_topic: dict[bytes, list[list[bytes]]] = {}
    for frames in got:
        assert len(frames) == 3 and len(frames[2]) == 4
        by_topic.setdefault(frames[0], []).append(frames)
    assert [f[1].hex() for f in by_topic[b"hashblock"]] == hashes  # display byte order, as Core
    assert [int.from_bytes(f[2], "little") for f in by_topic[b"hashblock"]] == [0, 1]
    raw = [Block.parse(f[1]) for f in by_topic[b"rawblock"]]
    assert [b.hash_hex() for b in raw] == hashes


async def test_longpoll_returns_on_new_tip(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    _, rpc = node_rpc
    first = await rpc.call("getblocktemplate", GBT)
    waiting = asyncio.create_task(rpc.getblocktemplate(longpollid=first["longpollid"]))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # held open while nothing changes
    (new_tip,) = await mine_blocks(rpc, 1)
    second = await asyncio.wait_for(waiting, 5)
    assert second["previousblockhash"] == new_tip and second["height"] == first["height"] + 1


async def test_longpoll_returns_for_new_transactions_after_the_mempool_delay(tmp_path: Path) -> None:
    async with running_node(tmp_path / "lp", longpoll_mempool_s=0.3) as (_, rpc):
        await mine_blocks(rpc, 101)
        first = await rpc.call("getblocktemplate", GBT)
        waiting = asyncio.create_task(rpc.getblocktemplate(longpollid=first["longpollid"]))
        txid = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 1})
        second = await asyncio.wait_for(waiting, 5)
        assert second["previousblockhash"] == first["previousblockhash"]
        assert [t["txid"] for t in second["transactions"]] == [txid]


async def test_chain_survives_restart(tmp_path: Path) -> None:
    datadir = tmp_path / "persist"
    async with running_node(datadir) as (_, rpc):
        await mine_blocks(rpc, 105)
        txid = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 3})
        (tip,) = await mine_blocks(rpc, 1)
        balance = await rpc.call("getbalance")
        info = await rpc.call("getblockchaininfo")
    async with running_node(datadir) as (_, rpc):
        assert await rpc.call("getbestblockhash") == tip
        again = await rpc.call("getblockchaininfo")
        assert {k: again[k] for k in ("blocks", "bestblockhash", "chainwork", "mediantime")} == {
            k: info[k] for k in ("blocks", "bestblockhash", "chainwork", "mediantime")
        }
        assert await rpc.call("getbalance") == balance
        assert (await rpc.call("gettransaction", txid))["confirmations"] == 1
        (next_tip,) = await mine_blocks(rpc, 1)
        assert (await rpc.call("getblockheader", next_tip))["previousblockhash"] == tip


async def test_generateblock_mines_exactly_the_given_transactions(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    await mine_blocks(rpc, 101)
    address = await rpc.call("getnewaddress")
    first = await rpc.call("sendmany", "", {address: 1})
    second = await rpc.call("sendmany", "", {address: 2})
    raw_first = await rpc.call("getrawtransaction", first)
    result = await rpc.call("generateblock", address, [raw_first])
    block = await rpc.call("getblock", result["hash"])
    assert block["tx"][1:] == [first]
    assert await rpc.call("getrawmempool") == [second]
    result = await rpc.call("generateblock", f"addr({address})", [second], False)
    assert set(result) == {"hash", "hex"} and await rpc.call("getbestblockhash") != result["hash"]
    with pytest.raises(RpcError) as err:
        await rpc.call("generateblock", address, ["ab" * 32])
    assert err.value.code == -5 and "not in mempool" in err.value.message
    with pytest.raises(RpcError) as err:
        await rpc.call("generateblock", address, [raw_first])  # already mined: its inputs are spent
    assert err.value.code == -25 and err.value.message.startswith("TestBlockValidity failed")


async def test_zmq_hashtx_for_mempool_and_block_transactions(tmp_path: Path) -> None:
    async with running_node(tmp_path / "tx", zmq_pubhashtx="tcp://127.0.0.1:0") as (node, rpc):
        await mine_blocks(rpc, 101)
        sub = zmq.asyncio.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(node.zmq_endpoints["hashtx"])
        sub.setsockopt(zmq.SUBSCRIBE, b"hashtx")
        try:
            await asyncio.sleep(0.2)
            txid = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 1})
            (block,) = await mine_blocks(rpc, 1)
            coinbase = (await rpc.call("getblock", block))["tx"][0]
            got = [await asyncio.wait_for(sub.recv_multipart(), 5) for _ in range(3)]
        finally:
            sub.close()
        assert [f[1].hex() for f in got] == [txid, coinbase, txid]
        seqs = [int.from_bytes(f[2], "little") for f in got]
        assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]  # one counter per topic, 101 coinbases before

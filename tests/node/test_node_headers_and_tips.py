"""Headers, competing tips and the methods a pool uses to steer between them, through RPC only:
preciousblock (ckpool calls it on every block it finds, so that its own block wins a tie),
submitheader, getchaintips and getnetworkhashps, with Core's results and errors (rpc/blockchain.cpp,
rpc/mining.cpp)."""

from __future__ import annotations

from typing import Any

import pytest

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.block import Block
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, break_pow, mine_blocks

OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)
GBT = {"rules": ["segwit"]}


@pytest.fixture
async def chain101(rpc: RpcClient) -> RpcClient:
    await mine_blocks(rpc, 101)
    return rpc


async def rival_blocks(rpc: RpcClient) -> tuple[Block, Block]:
    """Two different blocks on the same tip (equal work)."""
    gbt = await rpc.call("getblocktemplate", GBT)
    a = block_from_template(gbt, OP_TRUE_P2WSH, extranonce=b"\x01" * 8)
    b = block_from_template(gbt, OP_TRUE_P2WSH, extranonce=b"\x02" * 8)
    assert a.hash() != b.hash()
    return a, b


def tips_by_hash(tips: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["hash"]: t for t in tips}


async def test_preciousblock_switches_between_tips_of_equal_work(chain101: RpcClient) -> None:
    rpc = chain101
    a, b = await rival_blocks(rpc)
    assert await rpc.submitblock(a.hex()) is None
    assert await rpc.submitblock(b.hex()) == "inconclusive"  # equal work: the first seen stays the tip
    tips = tips_by_hash(await rpc.call("getchaintips"))
    assert tips[a.hash_hex()] == {"height": 102, "hash": a.hash_hex(), "branchlen": 0, "status": "active"}
    assert tips[b.hash_hex()] == {
        "height": 102,
        "hash": b.hash_hex(),
        "branchlen": 1,
        "status": "valid-headers",
    }
    assert await rpc.call("preciousblock", b.hash_hex()) is None
    assert await rpc.call("getbestblockhash") == b.hash_hex()
    tips = tips_by_hash(await rpc.call("getchaintips"))
    assert tips[b.hash_hex()]["status"] == "active"
    assert tips[a.hash_hex()]["status"] == "valid-fork"  # connected once, fully valid, not active
    template = await rpc.call("getblocktemplate", GBT)
    assert template["previousblockhash"] == b.hash_hex()
    assert await rpc.call("preciousblock", a.hash_hex()) is None  # the latest call wins
    assert await rpc.call("getbestblockhash") == a.hash_hex()
    # a block with less work than the tip changes nothing
    assert await rpc.call("preciousblock", await rpc.call("getblockhash", 101)) is None
    assert await rpc.call("getbestblockhash") == a.hash_hex()
    with pytest.raises(RpcError) as err:
        await rpc.call("preciousblock", "11" * 32)
    assert (err.value.code, err.value.message) == (-5, "Block not found")


async def test_more_work_beats_a_precious_block(chain101: RpcClient) -> None:
    rpc = chain101
    a, b = await rival_blocks(rpc)
    assert await rpc.submitblock(a.hex()) is None
    assert await rpc.submitblock(b.hex()) == "inconclusive"
    await rpc.call("preciousblock", b.hash_hex())
    gbt = await rpc.call("getblocktemplate", GBT)
    on_b = block_from_template(gbt, OP_TRUE_P2WSH)
    gbt_a = {**gbt, "previousblockhash": a.hash_hex()}
    on_a = block_from_template(gbt_a, OP_TRUE_P2WSH, extranonce=b"\x03" * 8)
    assert await rpc.submitblock(on_a.hex()) is None  # a's branch now has more work
    assert await rpc.call("getbestblockhash") == on_a.hash_hex()
    assert await rpc.submitblock(on_b.hex()) == "inconclusive"


async def test_submitheader_then_its_block(chain101: RpcClient) -> None:
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    parent = block_from_template(gbt, OP_TRUE_P2WSH)
    child = block_from_template(
        {**gbt, "previousblockhash": parent.hash_hex(), "height": 103, "curtime": gbt["curtime"] + 1},
        OP_TRUE_P2WSH,
    )
    assert await rpc.call("submitheader", parent.header.serialize().hex()) is None
    assert await rpc.call("submitheader", parent.header.serialize().hex()) is None  # known: valid again
    assert await rpc.call("submitheader", child.header.serialize().hex()) is None
    header = await rpc.call("getblockheader", child.hash_hex())
    assert (header["height"], header["confirmations"], header["nTx"]) == (103, -1, 0)
    info = await rpc.call("getblockchaininfo")
    assert (info["blocks"], info["headers"]) == (101, 103)
    tips = tips_by_hash(await rpc.call("getchaintips"))
    assert tips[child.hash_hex()] == {
        "height": 103,
        "hash": child.hash_hex(),
        "branchlen": 2,
        "status": "headers-only",
    }
    with pytest.raises(RpcError) as err:
        await rpc.call("getblock", child.hash_hex())
    assert (err.value.code, err.value.message) == (-1, "Block not found on disk")
    # the child's block arrives first: stored, not connectable while its parent has no data
    assert await rpc.submitblock(child.hex()) == "inconclusive"
    assert await rpc.call("getblockcount") == 101
    # the parent's block arrives: both connect
    assert await rpc.submitblock(parent.hex()) is None
    assert await rpc.call("getbestblockhash") == child.hash_hex()
    assert (await rpc.call("getblock", parent.hash_hex()))["nTx"] == 1


async def test_submitheader_errors_as_core(chain101: RpcClient) -> None:
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    good = block_from_template(gbt, OP_TRUE_P2WSH)
    cases: list[tuple[str, int, str]] = [
        ("00" * 79, -22, "Block header decode failed"),
        ("zz" * 80, -22, "Block header decode failed"),
        (
            block_from_template({**gbt, "previousblockhash": "33" * 32}, OP_TRUE_P2WSH)
            .header.serialize()
            .hex(),
            -25,
            f"Must submit previous header ({'33' * 32}) first",
        ),
        (break_pow(good).header.serialize().hex(), -25, "high-hash"),
        (
            block_from_template(gbt, OP_TRUE_P2WSH, time=gbt["mintime"] - 1).header.serialize().hex(),
            -25,
            "time-too-old",
        ),
    ]
    for hexdata, code, message in cases:
        with pytest.raises(RpcError) as err:
            await rpc.call("submitheader", hexdata)
        assert (err.value.code, err.value.message) == (code, message), hexdata[:20]
    assert await rpc.call("getblockcount") == 101


async def test_getnetworkhashps_as_core(rpc: RpcClient) -> None:
    assert await rpc.call("getnetworkhashps") == 0  # at genesis: 0
    await mine_blocks(rpc, 3)
    value = await rpc.call("getnetworkhashps")
    assert isinstance(value, int | float) and value >= 0
    assert await rpc.call("getnetworkhashps", -1) == value  # since the last retarget: all 3 blocks here
    assert (await rpc.call("getmininginfo"))["networkhashps"] == value
    assert await rpc.call("getnetworkhashps", 120, 0) == 0
    for args, code, message in (
        ((0,), -8, "Invalid nblocks. Must be a positive number or -1."),
        ((-2,), -8, "Invalid nblocks. Must be a positive number or -1."),
        ((120, 4), -8, "Block does not exist at specified height"),
        ((120, -2), -8, "Block does not exist at specified height"),
    ):
        with pytest.raises(RpcError) as err:
            await rpc.call("getnetworkhashps", *args)
        assert (err.value.code, err.value.message) == (code, message), args

"""A full mempool makes room by fee rate: the cheapest childless transaction is evicted for a better-paying
newcomer, a cheaper newcomer is refused ("mempool full"), and a cheap parent with a child stays. Driven
through sendrawtransaction on a real node whose pool is capped small."""

from __future__ import annotations

import pytest

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.hashes import display_hex
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.node.mempool import Mempool
from pithead.node.node import EmbeddedNode
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks

GBT = {"rules": ["segwit"]}
OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)


def spend(prevout: OutPoint, value: int, sat_per_vb: int) -> Transaction:
    """Spend an OP_TRUE P2WSH output back to the same script at `sat_per_vb`."""

    def build(fee: int) -> Transaction:
        return Transaction(
            2, (TxIn(prevout, b"", 0xFFFFFFFF, (BARE_OP_TRUE,)),), (TxOut(value - fee, OP_TRUE_P2WSH),)
        )

    return build(sat_per_vb * build(0).vsize())


async def coins(rpc: RpcClient, n: int) -> list[tuple[OutPoint, int]]:
    out = []
    for _ in range(n):
        block = block_from_template(await rpc.call("getblocktemplate", GBT), OP_TRUE_P2WSH)
        assert await rpc.submitblock(block.hex()) is None
        out.append((OutPoint(block.txs[0].txid(), 0), block.txs[0].outputs[0].value))
    await mine_blocks(rpc, 100)
    return out


async def send(rpc: RpcClient, tx: Transaction) -> str:
    txid = await rpc.call("sendrawtransaction", tx.serialize().hex())
    assert txid == display_hex(tx.txid())
    return txid


async def test_full_mempool_evicts_by_fee_rate(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    (ca, va), (cb, vb), (cc, vc), (cd, vd), (ce, ve), (cg, vg) = await coins(rpc, 6)
    node.mempool = Mempool(max_txs=3)
    a, b, c = spend(ca, va, 5), spend(cb, vb, 10), spend(cc, vc, 20)
    for tx in (a, b, c):
        await send(rpc, tx)

    with pytest.raises(RpcError) as refused:  # 2 sat/vB: cheaper than anything there
        await send(rpc, spend(cd, vd, 2))
    assert "mempool full" in refused.value.message
    assert set(await rpc.call("getrawmempool")) == {display_hex(t.txid()) for t in (a, b, c)}

    e = spend(ce, ve, 8)  # beats a (5 sat/vB): a goes
    await send(rpc, e)
    assert set(await rpc.call("getrawmempool")) == {display_hex(t.txid()) for t in (b, c, e)}

    f = spend(OutPoint(e.txid(), 0), e.outputs[0].value, 50)  # e is its parent, so b (10) goes, not e
    await send(rpc, f)
    assert set(await rpc.call("getrawmempool")) == {display_hex(t.txid()) for t in (c, e, f)}

    # e (8 sat/vB) is the cheapest, but f spends it; the cheapest childless one, c, pays 20 > 9: refused
    with pytest.raises(RpcError) as refused:
        await send(rpc, spend(cg, vg, 9))
    assert "mempool full" in refused.value.message

    # what is left is mined from the template, the CPFP pair first
    gbt = await rpc.call("getblocktemplate", GBT)
    assert [t["txid"] for t in gbt["transactions"]] == [display_hex(t.txid()) for t in (e, f, c)]
    block = block_from_template(gbt, OP_TRUE_P2WSH)
    assert await rpc.submitblock(block.hex()) is None
    assert await rpc.call("getrawmempool") == []

    # the evicted transactions' coins are spendable again
    await send(rpc, spend(ca, va, 3))


def test_mempool_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_txs"):
        Mempool(max_txs=0)

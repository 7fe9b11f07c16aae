"""The embedded node's wallet against Bitcoin Core's documented behaviour for what a payer must rely on.

Against a real in-process node, through its JSON-RPC:
- a payment funded from coins the transaction generator made (coins whose transactions the wallet does not
  record) is a wallet transaction like any other: gettransaction knows it and listtransactions lists a
  `send` entry per output, with its fee, with or without change (Core lists a send for every wallet
  transaction that spends the wallet's coins, CachedTxGetAmounts/ListTransactions);
- coins of an unconfirmed transaction the wallet does not record are not trusted, so sendmany never builds
  on them (Core's CachedTxIsTrusted: the parent must be a wallet transaction);
- a block spending an input of a wallet transaction another way makes it, and its wallet descendants,
  conflicted: negative confirmations, minus the depth of that block, and trusted false (Core's
  GetTxDepthInMainChain / MarkConflicted); the conflict ends if that block leaves the chain;
- abandontransaction: -5 for an unknown txid, -5 "not eligible" in the mempool or confirmed; an abandoned
  transaction and its descendants are marked abandoned, never offered to the mempool again, and the coins
  they held are the wallet's again; until then a payment that fell out of the mempool still holds its coins
  (Core's IsSpent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pithead.bitcoind import codes
from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.address import script_to_address
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.params import REGTEST
from pithead.chain.tx import OutPoint, TxOut
from pithead.node.mempool import Mempool
from pithead.node.node import EmbeddedNode
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.node.wallet import TXGEN_LABEL

GBT = {"rules": ["segwit"]}
SAT = 100_000_000


def payee(i: int) -> str:
    address = script_to_address(bytes([0, 20]) + bytes([i]) * 20, REGTEST)
    assert address is not None
    return address


async def fund_from_the_generator(node: EmbeddedNode, rpc: RpcClient, coins: int) -> str:
    """`coins` mature coinbases paid to one of the generator's scripts (whose transactions the wallet
    never records); returns that script's address."""
    assert node.wallet is not None
    address = script_to_address(node.wallet.new_script("segwit", TXGEN_LABEL), REGTEST)
    assert address is not None
    await mine_blocks(rpc, coins, address)
    await mine_blocks(rpc, 100, payee(99))
    return address


def sends(entries: list[dict[str, Any]], txid: str) -> dict[str, int]:
    return {e["address"]: round(-e["amount"] * SAT) for e in entries if e["txid"] == txid and e["category"] == "send"}


async def test_a_payment_from_generator_coins_is_listed_as_a_send(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    await fund_from_the_generator(node, rpc, 2)
    assert await rpc.call("getbalance") == 100.0
    with_change = await rpc.call("sendmany", "", {payee(1): 1, payee(2): 2}, 0, "from the generator's coins")
    listed = await rpc.call("listtransactions", "*", 1000)
    assert sends(listed, with_change) == {payee(1): SAT, payee(2): 2 * SAT}
    tx = await rpc.call("gettransaction", with_change)
    assert tx["comment"] == "from the generator's coins" and tx["fee"] < 0 and tx["amount"] == -3.0
    assert {d["category"] for d in tx["details"]} == {"send"}  # the change is neither a send nor a receive
    assert all(e["category"] != "receive" for e in listed if e["txid"] == with_change)
    # a payment that leaves no change: before, the wallet kept no record of it at all
    balance = round(await rpc.call("getbalance") * SAT)
    coin = next(u for u in await rpc.call("listunspent", 1) if u["amount"] == 50.0)
    fee = 10 * 200  # generous: spends the whole coin, outputs plus this fee, no change above dust
    exact = await rpc.call("sendmany", "", {payee(3): (50 * SAT - fee) / SAT}, 0, "no change")
    spent = await rpc.call("gettransaction", exact)
    assert spent["comment"] == "no change" and spent["confirmations"] == 0
    assert {d["category"] for d in spent["details"]} == {"send"}
    decoded = await rpc.call("getrawtransaction", exact, True)
    assert [i["txid"] for i in decoded["vin"]] == [coin["txid"]] and len(decoded["vout"]) == 1
    assert sends(await rpc.call("listtransactions", "*", 1000), exact) == {payee(3): 50 * SAT - fee}
    assert round(await rpc.call("getbalance") * SAT) < balance


async def test_unrecorded_unconfirmed_coins_are_not_trusted(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    """A transaction of the generator's (not recorded) pays the wallet: its coin is unsafe, so getbalance
    leaves it out and sendmany never spends it; once confirmed it is an ordinary coin."""
    node, rpc = node_rpc
    gen = await fund_from_the_generator(node, rpc, 1)
    assert node.wallet is not None and node.chain is not None
    (coin,) = [c for c in node.wallet.coins(node.chain, node.mempool) if c.confirmations > 0]
    out = TxOut(coin.coin.value - 10_000, node.wallet.new_script("segwit", TXGEN_LABEL))
    gen_tx = node.wallet.sign([(coin.outpoint, coin.coin)], [out])
    node.accept_transaction(gen_tx)
    assert node.wallet.recorded(gen_tx.txid()) is None  # the generator's own traffic is not recorded
    assert await rpc.call("getbalance") == 0
    (unsafe,) = await rpc.call("listunspent", 0)
    assert unsafe["txid"] == display_hex(gen_tx.txid()) and unsafe["safe"] is False
    with pytest.raises(RpcError) as poor:
        await rpc.call("sendmany", "", {payee(1): 1})
    assert poor.value.code == codes.RPC_WALLET_INSUFFICIENT_FUNDS
    await mine_blocks(rpc, 1, gen)
    assert round(await rpc.call("getbalance") * SAT) == out.value


async def conflicting_block(node: EmbeddedNode, rpc: RpcClient, prevout: OutPoint) -> str:
    """Mine a block whose one transaction spends `prevout` (a wallet coin: anyone can spend it) elsewhere."""
    assert node.wallet is not None and node.chain is not None
    coin = node.chain.coin(prevout)
    assert coin is not None
    thief = script_to_address(bytes([0, 20]) + bytes([7]) * 20, REGTEST)
    assert thief is not None
    spend = node.wallet.sign([(prevout, coin)], [TxOut(coin.value - 20_000, bytes([0, 20]) + bytes([7]) * 20)])
    gbt = await rpc.call("getblocktemplate", GBT)
    base = {**gbt, "transactions": []}  # the mempool's transactions (the payments) left out
    base.pop("default_witness_commitment", None)
    block = block_from_template(base, bytes([0, 20]) + bytes([9]) * 20, extra_txs=[spend])
    assert await rpc.submitblock(block.hex()) is None
    return block.hash_hex()


async def test_a_spent_input_conflicts_the_payment_and_its_descendants(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    node, rpc = node_rpc
    await mine_blocks(rpc, 101)  # one mature coin
    parent = await rpc.call("sendmany", "", {payee(1): 1}, 0, "parent")
    child = await rpc.call("sendmany", "", {payee(2): 2}, 0, "child")  # spends the parent's change
    raw = await rpc.call("getrawtransaction", parent, True)
    (vin,) = raw["vin"]
    prevout = OutPoint(from_display_hex(vin["txid"]), vin["vout"])
    fork_parent = await rpc.call("getbestblockhash")
    await conflicting_block(node, rpc, prevout)
    assert await rpc.call("getrawmempool") == []  # both left the mempool with their input
    for txid in (parent, child):
        tx = await rpc.call("gettransaction", txid)
        assert tx["confirmations"] == -1 and tx["trusted"] is False, txid
        assert "blockhash" not in tx
    listed = {(e["txid"], e["category"]): e for e in await rpc.call("listtransactions", "*", 1000)}
    assert listed[(child, "send")]["confirmations"] == -1
    await mine_blocks(rpc, 1, payee(9))
    assert (await rpc.call("gettransaction", parent))["confirmations"] == -2
    with pytest.raises(RpcError) as err:  # a conflicted payment is not eligible for abandoning
        await rpc.call("abandontransaction", parent)
    assert (err.value.code, err.value.message) == (
        codes.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not eligible for abandonment")
    # a longer branch without the conflicting block: the conflict ends with its block's place in the chain
    header = await rpc.call("getblockheader", fork_parent)
    gbt = await rpc.call("getblocktemplate", GBT)
    base = {**gbt, "transactions": []}
    base.pop("default_witness_commitment", None)
    prev = fork_parent
    for k in range(3):
        side = block_from_template({**base, "previousblockhash": prev, "height": header["height"] + 1 + k},
                                   bytes([0, 20]) + bytes([9]) * 20, time=header["time"] + 1 + k)
        await rpc.submitblock(side.hex())
        prev = side.hash_hex()
    assert await rpc.call("getbestblockhash") == prev
    assert (await rpc.call("gettransaction", parent))["confirmations"] == 0
    assert (await rpc.call("gettransaction", child))["confirmations"] == 0


async def test_abandon_frees_what_an_evicted_payment_held(tmp_path: Path) -> None:
    async with running_node(tmp_path / "node", zmq_pubhashblock=None, zmq_pubrawblock=None) as (node, rpc):
        await mine_blocks(rpc, 101)
        with pytest.raises(RpcError) as unknown:
            await rpc.call("abandontransaction", "11" * 32)
        assert (unknown.value.code, unknown.value.message) == (
            codes.RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        parent = await rpc.call("sendmany", "", {payee(1): 1}, 0, "parent")
        child = await rpc.call("sendmany", "", {payee(2): 2}, 0, "child")
        with pytest.raises(RpcError) as pending:
            await rpc.call("abandontransaction", parent)
        assert pending.value.message == "Transaction not eligible for abandonment"
        node.mempool = Mempool()  # both fall out of the mempool (an eviction, a lost mempool)
        # still the wallet's payments: the coin they spend stays spent, nothing to pay with
        assert await rpc.call("getbalance") == 0
        with pytest.raises(RpcError) as poor:
            await rpc.call("sendmany", "", {payee(3): 1})
        assert poor.value.code == codes.RPC_WALLET_INSUFFICIENT_FUNDS
        entries = await rpc.call("listtransactions", "*", 1000)
        assert {e["abandoned"] for e in entries if e["txid"] in (parent, child)} == {False}
        assert await rpc.call("abandontransaction", parent) is None  # and its descendant with it
        entries = await rpc.call("listtransactions", "*", 1000)
        assert {e["abandoned"] for e in entries if e["txid"] in (parent, child)} == {True}
        tx = await rpc.call("gettransaction", child)
        assert tx["confirmations"] == 0 and tx["trusted"] is False
        assert await rpc.call("getbalance") == 50.0  # the coin is the wallet's again
        again = await rpc.call("sendmany", "", {payee(3): 3}, 0, "retry")
    async with running_node(tmp_path / "node", zmq_pubhashblock=None, zmq_pubrawblock=None) as (node, rpc):
        await rpc.call("getbalance")  # the first wallet call: unconfirmed, unabandoned payments come back
        assert await rpc.call("getrawmempool") == [again]
        (block,) = await mine_blocks(rpc, 1, payee(9))
        assert (await rpc.call("gettransaction", again))["confirmations"] == 1
        assert (await rpc.call("gettransaction", parent))["confirmations"] == -1  # conflicted by the retry
        assert (await rpc.call("gettransaction", child))["confirmations"] == -1
        assert block

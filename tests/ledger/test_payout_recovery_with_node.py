"""Payout crash recovery against pithead's real embedded node (in process, over its JSON-RPC, as Core).

The two windows of the issue "no payout twice or never":
- a crash after `sendmany`, before the txid is recorded, when the payment was funded from coins the node's
  transaction generator made (the node once listed no `send` for those, and the ledger only looked at sends:
  it paid the batch a second time); with change and without;
- a sent payment whose input disappears: spent another way by a block (conflicted: released at once and
  paid again, once), or a payment that fell out of the mempool and that the node refuses to take back
  (held while it might still confirm, abandoned after PAYOUT_ABANDON_AFTER_S, paid again once).
Each ends by reading the chain: every payee got exactly what it was credited, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from ledger_standins import CrashAfterSend

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.address import script_to_address
from pithead.chain.hashes import from_display_hex
from pithead.chain.params import REGTEST
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.ledger.payouts import PAYOUT_ABANDON_AFTER_S, PayoutProcessor, RpcWallet
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus, CreditKind, CreditRecord, CreditStatus
from pithead.node.mempool import Mempool
from pithead.node.node import EmbeddedNode
from pithead.node.rpc.wallet import WALLET_FEE_RATE
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.node.wallet import TXGEN_LABEL, estimate_vsize

THRESHOLD_SAT = 100_000
COIN_SAT = 5_000_000_000
GBT = {"rules": ["segwit"]}
OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)


def payee(i: int) -> str:
    """An address outside the node's wallet (a P2WPKH of a made-up key hash)."""
    address = script_to_address(bytes([0, 20]) + bytes([i]) * 20, REGTEST)
    assert address is not None
    return address


def credit(store: LedgerStore, amounts: Mapping[str, int]) -> None:
    store.add_credits([CreditRecord(a, v, CreditKind.PPS, CreditStatus.MATURE, 0.0) for a, v in amounts.items()])


async def paid_on_chain(rpc: RpcClient, payees: set[str]) -> dict[str, int]:
    """What the active chain paid each of `payees`, from every block's transactions."""
    out: dict[str, int] = {}
    for height in range(1, int(await rpc.call("getblockcount")) + 1):
        block = await rpc.call("getblock", await rpc.call("getblockhash", height), 2)
        for tx in block["tx"]:
            for o in tx["vout"]:
                address = o["scriptPubKey"].get("address")
                if address in payees:
                    out[address] = out.get(address, 0) + round(o["value"] * 100_000_000)
    return out


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    async with running_node(tmp_path / "node", zmq_pubhashblock=None, zmq_pubrawblock=None) as pair:
        yield pair


async def fund_from_the_generator(node: EmbeddedNode, rpc: RpcClient, coins: int) -> None:
    """Mature coins paid to the transaction generator's scripts only (as `pithead up`'s premine is)."""
    assert node.wallet is not None
    address = script_to_address(node.wallet.new_script("segwit", TXGEN_LABEL), REGTEST)
    assert address is not None
    await mine_blocks(rpc, coins, address)
    await mine_blocks(rpc, 100, payee(99))


@pytest.mark.parametrize("change", [True, False], ids=["with-change", "no-change"])
async def test_crash_after_sendmany_from_generator_coins_pays_once(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore, change: bool
) -> None:
    n, rpc = node
    await fund_from_the_generator(n, rpc, 2)
    if change:
        batch = {payee(1): 300_000_000, payee(2): 7_000_000}
    else:  # outputs plus fee spend one coin exactly
        fee = WALLET_FEE_RATE * estimate_vsize(1, 2 + 1, 1)
        batch = {payee(1): 2_000_000_000, payee(2): COIN_SAT - 2_000_000_000 - fee}
    credit(store, batch)
    wallet = RpcWallet(rpc)
    with pytest.raises(KeyboardInterrupt):
        await PayoutProcessor(store, CrashAfterSend(wallet), THRESHOLD_SAT, REGTEST).run_once(1.0)
    (intent,) = store.batches()
    assert intent.status is BatchStatus.INTENT
    (sent_txid,) = await rpc.call("getrawmempool")  # the node's wallet did pay
    raw = await rpc.call("getrawtransaction", sent_txid, True)
    assert len(raw["vout"]) == (3 if change else 2)
    report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(2.0)
    assert report.recovered == ((intent.id, sent_txid),)
    assert report.sent == () and report.created == ()
    assert await rpc.call("getrawmempool") == [sent_txid]  # nothing was sent a second time
    await mine_blocks(rpc, 1, payee(99))
    report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(3.0)
    assert report.confirmed == (intent.id,) and report.created == ()
    assert await paid_on_chain(rpc, set(batch)) == batch


async def conflict_input(n: EmbeddedNode, rpc: RpcClient, txid: str) -> None:
    """Mine a block spending the first input of wallet transaction `txid` another way (the wallet's coins
    are anyone-can-spend), leaving the payment out."""
    assert n.wallet is not None and n.chain is not None
    vin = (await rpc.call("getrawtransaction", txid, True))["vin"][0]
    prevout = OutPoint(from_display_hex(vin["txid"]), vin["vout"])
    coin = n.chain.coin(prevout)
    assert coin is not None
    thief = n.wallet.sign([(prevout, coin)], [TxOut(coin.value - 20_000, bytes([0, 20]) + bytes([7]) * 20)])
    base = {**await rpc.call("getblocktemplate", GBT), "transactions": []}
    base.pop("default_witness_commitment", None)
    block = block_from_template(base, bytes([0, 20]) + bytes([9]) * 20, extra_txs=[thief])
    assert await rpc.submitblock(block.hex()) is None


async def test_a_payment_whose_input_is_spent_elsewhere_is_paid_again_once(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    n, rpc = node
    await mine_blocks(rpc, 3)
    await mine_blocks(rpc, 100, payee(99))  # three mature coins
    batch = {payee(1): 150_000_000, payee(2): 20_000_000}
    credit(store, batch)
    wallet = RpcWallet(rpc)
    processor = PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST)
    ((batch_id, txid),) = (await processor.run_once(1.0)).sent
    await conflict_input(n, rpc, txid)
    assert await rpc.call("getrawmempool") == []
    assert (await rpc.call("gettransaction", txid))["confirmations"] == -1  # as Core reports a conflict
    report = await processor.run_once(2.0)
    assert report.failed == (batch_id,)  # it can never confirm: released...
    ((new_id, new_txid),) = report.sent  # ...and paid again, in a new batch
    assert new_id != batch_id and new_txid != txid
    assert any(r.levelname == "WARNING" and "conflicted" in r.getMessage() for r in caplog.records)
    await mine_blocks(rpc, 1, payee(99))
    report = await processor.run_once(3.0)
    assert report.confirmed == (new_id,) and report.created == () and report.confirmed_late == ()
    assert await paid_on_chain(rpc, set(batch)) == batch
    assert {b.address: b.paid_sat for b in store.balances()} == batch


def spend_op_true(prevout: OutPoint, value: int, sat_per_vb: int) -> Transaction:
    def build(fee: int) -> Transaction:
        return Transaction(2, (TxIn(prevout, b"", 0xFFFFFFFF, (BARE_OP_TRUE,)),), (TxOut(value - fee, OP_TRUE_P2WSH),))

    return build(sat_per_vb * build(0).vsize())


async def test_a_payment_the_node_will_not_take_back_is_held_then_abandoned_and_paid_once(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    n, rpc = node
    await mine_blocks(rpc, 1)  # the wallet's one coin
    op_true = []
    for _ in range(2):  # two coins anyone can spend, for transactions paying more than the wallet does
        block = block_from_template(await rpc.call("getblocktemplate", GBT), OP_TRUE_P2WSH)
        assert await rpc.submitblock(block.hex()) is None
        op_true.append((OutPoint(block.txs[0].txid(), 0), block.txs[0].outputs[0].value))
    await mine_blocks(rpc, 100, payee(99))
    batch = {payee(1): 150_000_000, payee(2): 20_000_000}
    credit(store, batch)
    wallet = RpcWallet(rpc)
    processor = PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST)
    ((batch_id, txid),) = (await processor.run_once(1.0)).sent
    # The node loses its mempool (a restart) into a smaller one that better-paying transactions fill.
    n.mempool = Mempool(max_txs=2)
    for op, value in op_true:
        await rpc.call("sendrawtransaction", spend_op_true(op, value, 4 * WALLET_FEE_RATE).serialize().hex())
    report = await processor.run_once(2.0)
    assert report.stuck == (batch_id,) and report.failed == () and report.created == ()
    (stuck,) = store.batches()
    assert stuck.status is BatchStatus.STUCK and "mempool full" in (stuck.error or "")
    assert any(r.levelname == "WARNING" and "STUCK" in r.getMessage() for r in caplog.records)
    balances = {b.address: b for b in store.balances()}
    assert all(balances[a].reserved_sat == v and balances[a].paid_sat == 0 for a, v in batch.items())
    # held while it might still confirm: its coin stays spent in the wallet, nothing is paid again
    assert (await processor.run_once(1.0 + PAYOUT_ABANDON_AFTER_S)).failed == ()
    assert (await rpc.call("gettransaction", txid))["confirmations"] == 0
    report = await processor.run_once(2.0 + PAYOUT_ABANDON_AFTER_S)
    assert report.failed[0] == batch_id  # abandoned, released; the retry finds the mempool still full
    entries = [e for e in await rpc.call("listtransactions", "*", 100) if e["txid"] == txid]
    assert entries and all(e["abandoned"] for e in entries)
    await mine_blocks(rpc, 1, payee(99))  # the better-paying transactions leave the mempool in a block
    report = await processor.run_once(3.0 + PAYOUT_ABANDON_AFTER_S)
    ((new_id, new_txid),) = report.sent
    assert new_txid != txid
    await mine_blocks(rpc, 1, payee(99))
    report = await processor.run_once(4.0 + PAYOUT_ABANDON_AFTER_S)
    assert report.confirmed == (new_id,) and report.confirmed_late == ()
    assert await paid_on_chain(rpc, set(batch)) == batch
    assert {b.address: (b.paid_sat, b.reserved_sat) for b in store.balances()} == {a: (v, 0) for a, v in batch.items()}
    # the abandoned payment spent the same coin as the one that confirmed: it can never confirm now
    assert (await rpc.call("gettransaction", txid))["confirmations"] == -1

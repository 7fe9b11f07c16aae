"""A payout that leaves no change to the wallet, interrupted right after sendmany, is found and never repaid.

Against pithead's real embedded node (in process, over its JSON-RPC). The batch is sized so that the
node's wallet spends one 50 BTC coin exactly (outputs plus fee, no change output): nothing of the payment
is left in the wallet's unspent coins, so a search by outputs from the unspent coins cannot see it. The
ledger finds it by its batch comment through `listtransactions`, as with Bitcoin Core, whether the node
kept running or was restarted after the payment confirmed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ledger_standins import CrashAfterSend

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.address import script_to_address
from pithead.chain.params import REGTEST
from pithead.ledger.payouts import PayoutProcessor, RpcWallet, batch_comment, ledger_id
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus, CreditKind, CreditRecord, CreditStatus
from pithead.node.node import EmbeddedNode
from pithead.node.rpc.wallet import WALLET_FEE_RATE
from pithead.node.testing import mine_blocks, running_node
from pithead.node.wallet import estimate_vsize

COIN_SAT = 5_000_000_000  # one regtest coinbase (the wallet's coins are all this size here)
THRESHOLD_SAT = 100_000


def payee(i: int) -> str:
    """An address outside the node's wallet (a P2WPKH of a made-up key hash)."""
    address = script_to_address(bytes([0, 20]) + bytes([i]) * 20, REGTEST)
    assert address is not None
    return address


def exact_batch() -> dict[str, int]:
    """Three payouts that, with the node wallet's fee for one segwit input, sum to exactly one coin."""
    fee = WALLET_FEE_RATE * estimate_vsize(1, 3 + 1, 1)  # the wallet prices a change output it may add
    return {payee(1): 2_000_000_000, payee(2): 2_000_000_000, payee(3): COIN_SAT - 4_000_000_000 - fee}


async def fund(rpc: RpcClient) -> None:
    await mine_blocks(rpc, 102)  # two mature coinbases: the ledger's budget covers one whole coin


async def crash_mid_payout(rpc: RpcClient, store: LedgerStore, batch: dict[str, int]) -> tuple[int, str]:
    for address, sat in batch.items():
        store.add_credits([CreditRecord(address, sat, CreditKind.PPS, CreditStatus.MATURE, 0.0)])
    with pytest.raises(KeyboardInterrupt):
        await PayoutProcessor(store, CrashAfterSend(RpcWallet(rpc)), THRESHOLD_SAT, REGTEST).run_once(
            1.0
        )
    (intent,) = store.batches()
    assert intent.status is BatchStatus.INTENT and intent.txid is None and dict(intent.items) == batch
    (txid,) = await rpc.call("getrawmempool")  # the wallet did pay
    raw = await rpc.call("getrawtransaction", txid, True)
    paid = {o["scriptPubKey"]["address"]: round(o["value"] * 100_000_000) for o in raw["vout"]}
    assert paid == batch  # every output pays the batch: no change came back to the wallet
    assert len(raw["vin"]) == 1
    return intent.id, txid


async def assert_paid_once(rpc: RpcClient, batch: dict[str, int], txid: str) -> None:
    sends = [e for e in await rpc.call("listtransactions", "*", 1000) if e["category"] == "send"]
    assert {e["txid"] for e in sends} == {txid}
    assert {e["address"]: round(-e["amount"] * 100_000_000) for e in sends} == batch


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    async with running_node(tmp_path / "node", zmq_pubhashblock=None, zmq_pubrawblock=None) as pair:
        yield pair


async def test_crash_after_a_changeless_sendmany_is_found_by_comment(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore
) -> None:
    _, rpc = node
    await fund(rpc)
    batch = exact_batch()
    batch_id, sent_txid = await crash_mid_payout(rpc, store, batch)
    wallet = RpcWallet(rpc)
    # the gap this closes: walking back from the wallet's unspent coins never reaches this payment
    assert await wallet._find_by_outputs(batch) is None
    (intent,) = store.batches()
    comment = batch_comment(ledger_id(store), intent)
    assert (await rpc.call("gettransaction", sent_txid))["comment"] == comment
    assert await wallet.find_transaction(comment, batch) == sent_txid

    report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(2.0)
    assert report.recovered == ((batch_id, sent_txid),)
    assert report.sent == () and report.created == ()
    assert await rpc.call("getrawmempool") == [sent_txid]  # nothing was sent a second time
    (recorded,) = store.batches()
    assert recorded.status is BatchStatus.SENT and recorded.txid == sent_txid

    await mine_blocks(rpc, 1, payee(99))
    report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(3.0)
    assert report.confirmed == (batch_id,) and report.sent == () and report.created == ()
    (done,) = store.batches()
    assert done.status is BatchStatus.CONFIRMED and done.txid == sent_txid
    assert all(b.payable_sat == 0 for b in store.balances() if b.address in batch)
    await assert_paid_once(rpc, batch, sent_txid)


async def test_crash_then_node_restart_still_finds_the_payment(tmp_path: Path, store: LedgerStore) -> None:
    datadir = tmp_path / "node"
    batch = exact_batch()
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        await fund(rpc)
        batch_id, sent_txid = await crash_mid_payout(rpc, store, batch)
        await mine_blocks(rpc, 1, payee(99))  # confirmed before the node goes down
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        wallet = RpcWallet(rpc)
        report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(2.0)
        assert report.recovered == ((batch_id, sent_txid),)
        assert report.confirmed == (batch_id,)  # found, then reconciled as confirmed in the same run
        assert report.sent == () and report.created == ()
        assert await rpc.call("getrawmempool") == []
        (done,) = store.batches()
        assert done.status is BatchStatus.CONFIRMED and done.txid == sent_txid
        await assert_paid_once(rpc, batch, sent_txid)


async def test_crash_then_restart_before_confirmation_pays_once(tmp_path: Path, store: LedgerStore) -> None:
    """The node restarts with the payment still unconfirmed (its mempool is not kept): the wallet offers it
    to the mempool again, the ledger finds it by comment, and it confirms; nothing is sent twice."""
    datadir = tmp_path / "node"
    batch = exact_batch()
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        await fund(rpc)
        batch_id, sent_txid = await crash_mid_payout(rpc, store, batch)
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        wallet = RpcWallet(rpc)
        report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(2.0)
        assert report.recovered == ((batch_id, sent_txid),)
        assert report.sent == () and report.created == ()
        assert await rpc.call("getrawmempool") == [sent_txid]
        await mine_blocks(rpc, 1, payee(99))
        report = await PayoutProcessor(store, wallet, THRESHOLD_SAT, REGTEST).run_once(3.0)
        assert report.confirmed == (batch_id,) and report.sent == () and report.created == ()
        (done,) = store.batches()
        assert done.status is BatchStatus.CONFIRMED and done.txid == sent_txid
        await assert_paid_once(rpc, batch, sent_txid)

"""The ledger against pithead's real embedded node, over its JSON-RPC (as with Bitcoin Core).

Payouts go through the node's wallet (`sendmany` of matured coinbase coins) and are found again after an
injected crash; block maturity and orphaning are tracked through `getblockcount`/`getblockhash`/
`getblockheader`, with a real reorganisation built from side-branch blocks.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ledger_standins import CrashAfterSend

from pithead.bitcoind import codes
from pithead.bitcoind.rpc import NodeDownError, RpcClient, RpcError
from pithead.chain.address import script_to_address
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.maturity import Observation, observe, track
from pithead.ledger.payouts import PayoutProcessor, RpcWallet, WalletError, WalletRejected
from pithead.ledger.schemes import Scheme
from pithead.ledger.service import RpcChainView
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import (
    BatchStatus,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
)
from pithead.node.node import EmbeddedNode
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node

OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)
GBT = {"rules": ["segwit"]}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    async with running_node(tmp_path / "node", zmq_pubhashblock=None, zmq_pubrawblock=None) as pair:
        yield pair


def payee(i: int) -> str:
    """An address outside the node's wallet (a P2WPKH of a made-up key hash)."""
    address = script_to_address(bytes([0, 20]) + bytes([i]) * 20, REGTEST)
    assert address is not None
    return address


def credit(store: LedgerStore, address: str, sat: int) -> None:
    store.add_credits([CreditRecord(address, sat, CreditKind.PPS, CreditStatus.MATURE, 0.0)])


async def sends_of(rpc: RpcClient, txid: str) -> dict[str, int]:
    tx = await rpc.call("gettransaction", txid)
    return {d["address"]: round(-d["amount"] * 100_000_000) for d in tx["details"] if d["category"] == "send"}


async def test_payout_through_the_node_wallet(node: tuple[EmbeddedNode, RpcClient], store: LedgerStore) -> None:
    _, rpc = node
    await mine_blocks(rpc, 101)  # one mature coinbase in the wallet
    wallet = RpcWallet(rpc)
    assert await wallet.getbalance() == 5_000_000_000
    credit(store, payee(1), 150_000_000)
    credit(store, payee(2), 20_000_000)
    credit(store, payee(3), 50_000)  # below the threshold
    processor = PayoutProcessor(store, wallet, 100_000, network=REGTEST)
    report = await processor.run_once(1.0)
    ((_, txid),) = report.sent
    assert await sends_of(rpc, txid) == {payee(1): 150_000_000, payee(2): 20_000_000}
    assert txid in await rpc.call("getrawmempool")
    await mine_blocks(rpc, 1)
    report = await processor.run_once(2.0)
    assert len(report.confirmed) == 1 and report.created == ()
    (batch,) = store.batches()
    assert batch.status is BatchStatus.CONFIRMED and batch.txid == txid


async def test_crash_after_sendmany_is_recovered_not_repaid(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore
) -> None:
    _, rpc = node
    await mine_blocks(rpc, 101)
    wallet = RpcWallet(rpc)
    credit(store, payee(4), 300_000_000)
    credit(store, payee(5), 7_000_000)
    with pytest.raises(KeyboardInterrupt):
        await PayoutProcessor(store, CrashAfterSend(wallet), 100_000, network=REGTEST).run_once(1.0)
    (batch,) = store.batches()
    assert batch.status is BatchStatus.INTENT
    (sent_txid,) = await rpc.call("getrawmempool")  # the node's wallet did pay
    report = await PayoutProcessor(store, wallet, 100_000, network=REGTEST).run_once(2.0)
    assert report.recovered == ((batch.id, sent_txid),)  # found by its comment (listtransactions)
    assert report.sent == () and report.created == ()
    assert await rpc.call("getrawmempool") == [sent_txid]  # and nothing was sent a second time
    # With listtransactions, an unknown comment means "never sent" (an identical earlier payment must not
    # be mistaken for this batch); the output walk, used only for wallets without listtransactions, still
    # finds it once its change has been spent by a later payment.
    credit(store, payee(6), 1_000_000)
    later = await PayoutProcessor(store, wallet, 100_000, network=REGTEST).run_once(3.0)
    assert len(later.sent) == 1
    assert await wallet.find_transaction("no-such-comment", dict(batch.items)) is None
    assert await wallet._find_by_outputs(dict(batch.items)) == sent_txid
    assert await wallet._find_by_outputs({payee(9): 1}) is None


async def test_block_maturity_and_orphaning_on_the_node(
    node: tuple[EmbeddedNode, RpcClient], store: LedgerStore
) -> None:
    _, rpc = node
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    view = RpcChainView(rpc)
    await mine_blocks(rpc, 3)
    fork_parent = await rpc.call("getblockhash", 3)
    (ours,) = await mine_blocks(rpc, 1)  # "our" block at height 4
    ledger.apply([BlockEvent(1.0, 4, ours, "m.rig", "m", 5_000_000_000, 0, True)])
    await track(store, view, 2.0)
    got = store.get_block(ours)
    assert got is not None and got.status is BlockStatus.PENDING and got.confirmations == 1
    # a rival branch from height 3, two blocks long, takes the chain from our block
    header: dict[str, Any] = await rpc.call("getblockheader", fork_parent)
    gbt = await rpc.call("getblocktemplate", GBT)
    base = {**gbt, "transactions": []}
    base.pop("default_witness_commitment", None)
    prev = fork_parent
    for k in range(2):
        b = block_from_template({**base, "previousblockhash": prev, "height": 4 + k}, OP_TRUE_P2WSH,
                                time=header["time"] + 1 + k)
        await rpc.submitblock(b.hex())
        prev = b.hash_hex()
    assert await rpc.call("getbestblockhash") == prev
    (change,) = await track(store, view, 3.0)
    assert change.new is BlockStatus.ORPHANED
    assert {c.status for c in store.credits(block_hash=ours)} == {CreditStatus.VOID}
    # a block that stays on the chain matures at 100 confirmations
    (kept,) = await mine_blocks(rpc, 1)
    height = int((await rpc.call("getblockheader", kept))["height"])
    ledger.apply([BlockEvent(4.0, height, kept, "m.rig", "m", 5_000_000_000, 0, True)])
    await mine_blocks(rpc, 98)
    assert await track(store, view, 5.0) == []
    await mine_blocks(rpc, 1)
    (matured,) = await track(store, view, 6.0)
    assert (matured.new, matured.confirmations) == (BlockStatus.CONFIRMED, 100)
    assert next(b for b in store.balances() if b.address == "m").payable_sat == 5_000_000_000


async def test_wallet_errors_are_sorted_by_cores_code(node: tuple[EmbeddedNode, RpcClient]) -> None:
    """Through the one client: a refusal (Core's code says nothing was sent) is WalletRejected, a node
    that does not answer is WalletError with no code (outcome unknown, the batch waits)."""
    _, rpc = node
    wallet = RpcWallet(rpc)
    with pytest.raises(WalletRejected) as poor:
        await wallet.sendmany({payee(1): 100_000}, "nothing to pay with")  # no mature coins yet
    assert poor.value.code == codes.RPC_WALLET_INSUFFICIENT_FUNDS
    with pytest.raises(WalletRejected) as unknown:
        await wallet.gettransaction("00" * 32)
    assert unknown.value.code == codes.RPC_INVALID_ADDRESS_OR_KEY
    down = RpcClient(f"http://127.0.0.1:{_closed_port()}", user="u", password="p")
    try:
        with pytest.raises(WalletError) as lost:
            await RpcWallet(down).getbalance()
        assert type(lost.value) is WalletError and lost.value.code is None
        assert isinstance(lost.value.__cause__, NodeDownError)
    finally:
        await down.close()


async def test_chain_view_reads_an_unknown_block_as_not_found(node: tuple[EmbeddedNode, RpcClient]) -> None:
    _, rpc = node
    await mine_blocks(rpc, 2)
    view = RpcChainView(rpc)
    ghost = BlockRecord("11" * 32, 1, 0.0, "w", "a", 1, 0, BlockStatus.PENDING, 0, "solo", 1.0, 0.0)
    assert await observe(view, ghost, 2) == Observation(None, False, 2)
    with pytest.raises(RpcError) as err:
        await view.getblockhash(99)
    assert err.value.code == codes.RPC_INVALID_PARAMETER


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

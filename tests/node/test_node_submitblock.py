"""submitblock verdicts, driven only through RPC: every broken variant of a block built from
getblocktemplate gets Bitcoin Core's BIP22 string, and the honest block is then accepted. Core's fix-up
of a block before validation (the coinbase witness nonce) is applied as Core applies it, checked against
the block Core stored from ckpool's submission."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.block import Block
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.merkle import merkle_root
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.node.consensus import fill_witness_nonce
from pithead.node.node import EmbeddedNode
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, break_pow, mine_blocks, solve_block

CORE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"


def core_fixture(name: str) -> Any:
    return json.loads((CORE_FIXTURES / name).read_text())


OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)  # anyone-can-spend segwit output: spent with witness [OP_TRUE]
VERDICTS = core_fixture("rpc-shapes-core-regtest.json")["submitblock"]
GBT = {"rules": ["segwit"]}


def spend_op_true(prevout: OutPoint, value: int, fee: int = 10_000) -> Transaction:
    return Transaction(
        2, (TxIn(prevout, b"", 0xFFFFFFFF, (BARE_OP_TRUE,)),), (TxOut(value - fee, OP_TRUE_P2WSH),)
    )


def with_txs(block: Block, txs: tuple[Transaction, ...]) -> Block:
    header = replace(block.header, merkle_root=merkle_root([t.txid() for t in txs]))
    return solve_block(Block(header, txs))


async def op_true_coin(rpc: RpcClient, matured: bool = True) -> tuple[OutPoint, int]:
    """Mine a block paying the OP_TRUE P2WSH script (then mature it): its coinbase outpoint and value."""
    gbt = await rpc.call("getblocktemplate", GBT)
    block = block_from_template(gbt, OP_TRUE_P2WSH)
    assert await rpc.submitblock(block.hex()) is None
    if matured:
        await mine_blocks(rpc, 100)
    return OutPoint(block.txs[0].txid(), 0), block.txs[0].outputs[0].value


@pytest.fixture
async def chain101(rpc: RpcClient) -> RpcClient:
    await mine_blocks(rpc, 101)
    return rpc


async def test_good_block_then_duplicate_then_garbage(chain101: RpcClient) -> None:
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    block = block_from_template(gbt, OP_TRUE_P2WSH)
    assert await rpc.submitblock(block.hex()) is VERDICTS["good"] is None
    assert await rpc.call("getbestblockhash") == block.hash_hex()
    assert await rpc.submitblock(block.hex()) == VERDICTS["duplicate"] == "duplicate"
    with pytest.raises(RpcError) as err:
        await rpc.submitblock("00ff")
    assert err.value.code == VERDICTS["garbage"]["error_code"] == -22


@pytest.mark.parametrize(
    "fault",
    [
        "high-hash",
        "bad-txnmrklroot",
        "bad-cb-height",
        "bad-cb-amount",
        "prev-blk-not-found",
        "time-too-old",
        "time-too-new",
        "bad-diffbits",
        "bad-version(0x00000001)",
    ],
)
async def test_each_broken_block_gets_cores_verdict(chain101: RpcClient, fault: str) -> None:
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    script = OP_TRUE_P2WSH
    if fault == "high-hash":
        block = break_pow(block_from_template(gbt, script))
    elif fault == "bad-txnmrklroot":
        good = block_from_template(gbt, script)
        block = solve_block(Block(replace(good.header, merkle_root=bytes(32)), good.txs))
    elif fault == "bad-cb-height":
        block = block_from_template({**gbt, "height": gbt["height"] + 1}, script)
    elif fault == "bad-cb-amount":
        block = block_from_template({**gbt, "coinbasevalue": gbt["coinbasevalue"] + 1}, script)
    elif fault == "prev-blk-not-found":
        block = block_from_template({**gbt, "previousblockhash": "11" * 32}, script)
    elif fault == "time-too-old":
        block = block_from_template(gbt, script, time=gbt["mintime"] - 1)
    elif fault == "time-too-new":
        block = block_from_template(gbt, script, time=int(time.time()) + 2 * 3600 + 600)
    elif fault == "bad-diffbits":
        good = block_from_template(gbt, script)
        block = solve_block(Block(replace(good.header, bits=0x207FFFFE), good.txs))
    else:
        block = block_from_template({**gbt, "version": 1}, script)
    verdict = await rpc.submitblock(block.hex())
    assert verdict == fault
    if fault in VERDICTS:
        assert VERDICTS[fault] == fault  # the same string a real Core gave for this fault
    # Nothing moved: the honest block for the same template is still accepted.
    assert await rpc.call("getblockcount") == 101
    assert await rpc.submitblock(block_from_template(gbt, script).hex()) is None


async def test_cve_2012_2459_mutated_copy_refused_and_honest_block_accepted(chain101: RpcClient) -> None:
    rpc = chain101
    outpoint, value = await op_true_coin(rpc)
    a = spend_op_true(outpoint, value)
    b = spend_op_true(OutPoint(a.txid(), 0), a.outputs[0].value)
    gbt = await rpc.call("getblocktemplate", GBT)
    honest = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(a, b))
    assert len(honest.txs) == 3  # odd: the last transaction is paired with itself in the merkle tree
    mutated = Block(honest.header, (*honest.txs, honest.txs[-1]))
    assert mutated.hash() == honest.hash() and mutated.computed_merkle_root()[0] == honest.header.merkle_root
    assert await rpc.submitblock(mutated.hex()) == "bad-txns-duplicate"
    assert await rpc.submitblock(honest.hex()) is None  # the mutated copy did not poison the hash
    block = await rpc.call("getblock", honest.hash_hex(), 2)
    assert [t["txid"] for t in block["tx"][1:]] == [a.txid_hex(), b.txid_hex()]
    assert block["tx"][1]["vin"][0]["txinwitness"] == ["51"]


async def test_witness_commitment_rules(chain101: RpcClient) -> None:
    rpc = chain101
    outpoint, value = await op_true_coin(rpc)
    tx = spend_op_true(outpoint, value)
    gbt = await rpc.call("getblocktemplate", GBT)
    wrong = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(tx,), commitment=bytes(32))
    assert await rpc.submitblock(wrong.hex()) == "bad-witness-merkle-match"
    missing = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(tx,), commitment=None)
    assert await rpc.submitblock(missing.hex()) == "unexpected-witness"
    good = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(tx,))
    assert await rpc.submitblock(good.hex()) is None


async def test_inputs_must_exist_be_unspent_and_mature(chain101: RpcClient) -> None:
    rpc = chain101
    young, value = await op_true_coin(rpc, matured=False)
    gbt = await rpc.call("getblocktemplate", GBT)
    premature = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(spend_op_true(young, value),))
    assert await rpc.submitblock(premature.hex()) == "bad-txns-premature-spend-of-coinbase"
    missing = block_from_template(
        gbt, OP_TRUE_P2WSH, extra_txs=(spend_op_true(OutPoint(b"\x42" * 32, 0), value),)
    )
    assert await rpc.submitblock(missing.hex()) == "bad-txns-inputs-missingorspent"
    await mine_blocks(rpc, 99)
    tx = spend_op_true(young, value)
    gbt = await rpc.call("getblocktemplate", GBT)
    assert await rpc.submitblock(block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(tx,)).hex()) is None
    gbt = await rpc.call("getblocktemplate", GBT)
    double = Transaction(2, tx.inputs, (TxOut(value - 20_000, OP_TRUE_P2WSH),))
    assert await rpc.submitblock(block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(double,)).hex()) == (
        "bad-txns-inputs-missingorspent"
    )
    overspend = spend_op_true(OutPoint(tx.txid(), 0), tx.outputs[0].value, fee=-1)
    assert await rpc.submitblock(block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(overspend,)).hex()) == (
        "bad-txns-in-belowout"
    )
    wrong_script = Transaction(
        2, (TxIn(OutPoint(tx.txid(), 0), b"", 0xFFFFFFFF, (b"\x52",)),), (TxOut(1000, OP_TRUE_P2WSH),)
    )
    assert await rpc.submitblock(
        block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(wrong_script,)).hex()
    ) == ("mandatory-script-verify-flag-failed")


async def test_side_branch_is_inconclusive_and_more_work_reorganises(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    await mine_blocks(rpc, 5)
    fork_point = await rpc.call("getblockhash", 3)
    old_tip = await rpc.call("getbestblockhash")
    header = await rpc.call("getblockheader", fork_point)
    # A branch from height 3: one block is less work than the active chain (height 5).
    gbt = await rpc.call("getblocktemplate", GBT)
    side_gbt = {
        **gbt,
        "previousblockhash": fork_point,
        "height": 4,
        "transactions": [],
        "default_witness_commitment": None,
        "coinbasevalue": gbt["coinbasevalue"],
    }
    side_gbt.pop("default_witness_commitment")
    s1 = block_from_template(side_gbt, OP_TRUE_P2WSH, time=header["time"] + 1)
    assert await rpc.submitblock(s1.hex()) == "inconclusive"
    assert await rpc.call("getbestblockhash") == old_tip
    s2 = block_from_template(
        {**side_gbt, "previousblockhash": s1.hash_hex(), "height": 5}, OP_TRUE_P2WSH, time=header["time"] + 2
    )
    assert await rpc.submitblock(s2.hex()) == "inconclusive"  # equal work: the first seen stays
    s3 = block_from_template(
        {**side_gbt, "previousblockhash": s2.hash_hex(), "height": 6}, OP_TRUE_P2WSH, time=header["time"] + 3
    )
    assert await rpc.submitblock(s3.hex()) is None  # more work: reorganised onto the branch
    assert await rpc.call("getbestblockhash") == s3.hash_hex()
    assert await rpc.call("getblockhash", 4) == s1.hash_hex()
    old = await rpc.call("getblockheader", old_tip)
    assert old["confirmations"] == -1
    assert from_display_hex(old_tip) != s3.hash() and display_hex(s3.hash()) == s3.hash_hex()


async def test_reorg_away_from_a_block_that_fails_to_connect(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    await mine_blocks(rpc, 2)
    tip = await rpc.call("getbestblockhash")
    header = await rpc.call("getblockheader", await rpc.call("getblockhash", 1))
    gbt = await rpc.call("getblocktemplate", GBT)
    base = {**gbt, "transactions": []}
    base.pop("default_witness_commitment")
    # A branch from height 1 whose second block spends a coin that does not exist: it passes the
    # context checks (stored) but fails when the node tries to connect it as the most-work chain.
    b2 = block_from_template(
        {**base, "previousblockhash": header["hash"], "height": 2}, OP_TRUE_P2WSH, time=header["time"] + 1
    )
    assert await rpc.submitblock(b2.hex()) == "inconclusive"
    bad_tx = spend_op_true(OutPoint(b"\x01" * 32, 0), 10_000_000)
    b3 = block_from_template(
        {**base, "previousblockhash": b2.hash_hex(), "height": 3},
        OP_TRUE_P2WSH,
        extra_txs=(bad_tx,),
        time=header["time"] + 2,
    )
    assert await rpc.submitblock(b3.hex()) == "bad-txns-inputs-missingorspent"
    assert await rpc.call("getbestblockhash") == tip  # the old chain was restored
    assert await rpc.submitblock(b3.hex()) == "duplicate-invalid"
    b4 = block_from_template(
        {**base, "previousblockhash": b3.hash_hex(), "height": 4}, OP_TRUE_P2WSH, time=header["time"] + 3
    )
    assert await rpc.submitblock(b4.hex()) == "bad-prevblk"


async def test_overweight_block_is_refused(chain101: RpcClient) -> None:
    rpc = chain101
    outpoint, value = await op_true_coin(rpc)
    # Witness bytes weigh 1 WU each: a 4 MB junk witness item pushes the block past 4,000,000 WU while its
    # stripped size stays tiny (so it is the weight rule, not the size rule, that refuses it).
    heavy = Transaction(
        2,
        (TxIn(outpoint, b"", 0xFFFFFFFF, (b"\x00" * 4_000_000, BARE_OP_TRUE)),),
        (TxOut(value - 10_000, OP_TRUE_P2WSH),),
    )
    gbt = await rpc.call("getblocktemplate", GBT)
    block = block_from_template(gbt, OP_TRUE_P2WSH, extra_txs=(heavy,))
    assert block.weight() > 4_000_000
    assert await rpc.submitblock(block.hex()) == "bad-blk-weight"


async def test_block_proposal_mode(chain101: RpcClient) -> None:
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    good = block_from_template(gbt, OP_TRUE_P2WSH)
    assert await rpc.call("getblocktemplate", {"mode": "proposal", "data": good.hex()}) is None
    bad = block_from_template({**gbt, "coinbasevalue": gbt["coinbasevalue"] + 1}, OP_TRUE_P2WSH)
    assert await rpc.call("getblocktemplate", {"mode": "proposal", "data": bad.hex()}) == "bad-cb-amount"
    assert await rpc.call("getblockcount") == 101  # proposals are never stored
    assert await rpc.submitblock(good.hex()) is None
    assert await rpc.call("getblocktemplate", {"mode": "proposal", "data": good.hex()}) == "duplicate"


async def test_transactions_of_a_block_reorganised_away_return_to_the_mempool(chain101: RpcClient) -> None:
    rpc = chain101
    txid = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 2})
    child = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 1})  # spends txid's change
    assert (await rpc.call("getmempoolentry", child))["depends"] == [txid]
    fork = await rpc.call("getbestblockhash")
    fork_header = await rpc.call("getblockheader", fork)
    (mined,) = await mine_blocks(rpc, 1)
    assert txid in (await rpc.call("getblock", mined))["tx"]
    assert await rpc.call("getrawmempool") == []
    gbt = await rpc.call("getblocktemplate", GBT)
    base = {**gbt, "transactions": [], "previousblockhash": fork, "height": 102}
    base.pop("default_witness_commitment")
    b1 = block_from_template(base, OP_TRUE_P2WSH, time=fork_header["time"] + 1)
    assert await rpc.submitblock(b1.hex()) == "inconclusive"
    b2 = block_from_template(
        {**base, "previousblockhash": b1.hash_hex(), "height": 103},
        OP_TRUE_P2WSH,
        time=fork_header["time"] + 2,
    )
    assert await rpc.submitblock(b2.hex()) is None
    assert await rpc.call("getrawmempool") == [txid, child]  # back, parent first, for the next block
    assert (await rpc.call("gettransaction", txid))["confirmations"] == 0


async def test_context_free_faults_are_reported_before_a_missing_parent(chain101: RpcClient) -> None:
    """Core runs CheckBlock before looking up the parent: an orphan with a bad merkle root is
    "bad-txnmrklroot", not "prev-blk-not-found"."""
    gbt = await chain101.call("getblocktemplate", GBT)
    orphan = block_from_template({**gbt, "previousblockhash": "22" * 32}, OP_TRUE_P2WSH)
    broken = solve_block(Block(replace(orphan.header, merkle_root=bytes(32)), orphan.txs))
    assert await chain101.submitblock(broken.hex()) == "bad-txnmrklroot"
    assert await chain101.submitblock(orphan.hex()) == "prev-blk-not-found"


# --- Core's block fix-up: the coinbase witness nonce (UpdateUncommittedBlockStructures) ----------------


def without_coinbase_witness(block: Block) -> Block:
    """The block as a pool that builds its coinbase from getblocktemplate's parts submits it: the
    witness commitment in an output, but no witness (so no reserved value) on the coinbase input."""
    cb = block.txs[0]
    bare = replace(cb, inputs=(replace(cb.inputs[0], witness=()), *cb.inputs[1:]))
    return Block(block.header, (bare, *block.txs[1:]))


def test_the_fix_up_turns_ckpools_block_into_the_block_core_stored() -> None:
    """Block 102 of the Core capture was mined by ckpool, which submits its coinbase without a witness;
    Core filled in the 32-byte reserved value and stored the result. Filling it in here gives Core's
    stored block byte for byte, and neither the hash nor the merkle root changes."""
    stored = Block.from_hex((CORE_FIXTURES / "block-102-ckpool-mined-core-regtest.hex").read_text().strip())
    submitted = without_coinbase_witness(stored)
    assert not submitted.txs[0].has_witness()
    filled = fill_witness_nonce(submitted)
    assert filled.serialize() == stored.serialize()
    assert filled.hash() == submitted.hash() == stored.hash()
    assert fill_witness_nonce(stored) is stored  # a coinbase with a witness is left as it is


async def test_submitblock_fills_in_the_witness_nonce_as_core_does(chain101: RpcClient) -> None:
    """Issue 19 (4): a segwit block whose coinbase has no witness was refused "bad-witness-nonce-size";
    Core accepts it byte for byte, storing it with the reserved value."""
    rpc = chain101
    outpoint, value = await op_true_coin(rpc)
    await rpc.call("sendrawtransaction", spend_op_true(outpoint, value).serialize().hex())  # a witness tx
    gbt = await rpc.call("getblocktemplate", GBT)
    complete = block_from_template(gbt, OP_TRUE_P2WSH)
    assert complete.txs[0].has_witness() and complete.txs[1].has_witness()
    as_ckpool_sends = without_coinbase_witness(complete)
    assert await rpc.submitblock(as_ckpool_sends.hex()) is None
    assert await rpc.call("getbestblockhash") == complete.hash_hex()
    assert await rpc.call("getblock", complete.hash_hex(), 0) == complete.hex()  # stored as Core stores it
    assert await rpc.submitblock(as_ckpool_sends.hex()) == "duplicate"


async def test_the_fix_up_needs_a_commitment_and_a_known_parent(chain101: RpcClient) -> None:
    """No commitment: nothing to fill in, and a witness-free block is simply valid. An unknown parent:
    Core leaves the block alone (it is an orphan either way)."""
    rpc = chain101
    gbt = await rpc.call("getblocktemplate", GBT)
    bare = block_from_template(gbt, OP_TRUE_P2WSH, commitment=None)
    assert not bare.txs[0].has_witness() and fill_witness_nonce(bare) is bare
    orphan_gbt = {**gbt, "previousblockhash": "22" * 32}
    orphan = without_coinbase_witness(block_from_template(orphan_gbt, OP_TRUE_P2WSH))
    assert await rpc.submitblock(orphan.hex()) == "prev-blk-not-found"
    assert await rpc.submitblock(bare.hex()) is None

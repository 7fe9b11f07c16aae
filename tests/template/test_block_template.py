"""The frozen BlockTemplate and parse_gbt on real Bitcoin Core v29.99 regtest answers
(tests/fixtures/bitcoin-core/), and the block a real pool (ckpool) built from the h102 template:
our coinbase builder, the template's transactions and that block's own coinbase reproduce it byte for byte.
Bad GBT answers raise TemplateError naming the field, never anything else."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pithead.chain.block import Block
from pithead.chain.coinbase import build_coinbase
from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import fold_branch, merkle_root
from pithead.chain.params import REGTEST
from pithead.chain.script import parse_bip34_height
from pithead.chain.tx import Transaction, TxOut
from pithead.chain.witness import commitment_script, find_commitment, witness_commitment
from pithead.template.block_template import BlockTemplate, TemplateError, parse_gbt

CORE: Path = Path(__file__).resolve().parents[1] / "fixtures" / "bitcoin-core"  # copied Core answers
GBT_FILES = ["gbt-core-regtest-h102-mempool7", "gbt-core-regtest-h105-mempool14"]


def gbt(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((CORE / f"{name}.json").read_text())
    return result


@pytest.fixture(scope="module")
def h102() -> BlockTemplate:
    return parse_gbt(gbt(GBT_FILES[0]))


@pytest.fixture(scope="module")
def ckpool_block() -> Block:
    return Block.from_hex((CORE / "block-102-ckpool-mined-core-regtest.hex").read_text().strip())


@pytest.mark.parametrize("name", GBT_FILES)
def test_parse_gbt_on_core_answers(name: str) -> None:
    raw = gbt(name)
    rpc = json.loads((CORE / f"{name}.rpc.json").read_text())
    assert rpc["error"] is None and rpc["result"] == raw  # the two captures agree
    tpl = parse_gbt(raw)
    assert tpl.height == raw["height"]
    assert display_hex(tpl.prev_hash) == raw["previousblockhash"]
    assert tpl.version == raw["version"]
    assert f"{tpl.bits:08x}" == raw["bits"]
    assert f"{tpl.target:064x}" == raw["target"] == f"{bits_to_target(tpl.bits):064x}"
    assert tpl.coinbase_value == raw["coinbasevalue"]
    assert tpl.curtime == raw["curtime"] and tpl.mintime == raw["mintime"]
    assert tpl.rules == tuple(raw["rules"]) and tpl.needs_witness_commitment()
    assert tpl.mutable == tuple(raw["mutable"])
    assert (tpl.sigoplimit, tpl.sizelimit, tpl.weightlimit) == (
        raw["sigoplimit"],
        raw["sizelimit"],
        raw["weightlimit"],
    )
    assert tpl.longpollid == raw["longpollid"]
    assert len(tpl.transactions) == len(raw["transactions"])
    for t, r in zip(tpl.transactions, raw["transactions"], strict=True):
        tx = Transaction.parse(t.data)
        assert t.data.hex() == r["data"] and tx.serialize() == t.data
        assert display_hex(t.txid) == r["txid"] == tx.txid_hex()
        assert display_hex(t.wtxid) == r["hash"] == tx.wtxid_hex()
        assert (t.fee, t.sigops, t.weight, t.depends) == (r["fee"], r["sigops"], r["weight"], tuple(r["depends"]))
        assert t.weight == tx.weight()
    assert tpl.fees() == sum(r["fee"] for r in raw["transactions"])
    assert tpl.coinbase_value == REGTEST.subsidy(tpl.height) + tpl.fees()
    assert any(t.depends for t in tpl.transactions)  # the fixtures include chains of unconfirmed spends
    # Derived values: the witness commitment Core computed, and a branch that folds to the tree's root.
    assert tpl.default_witness_commitment is not None
    assert commitment_script(tpl.witness_commitment()) == tpl.default_witness_commitment
    assert tpl.default_witness_commitment.hex() == raw["default_witness_commitment"]
    any_leaf = bytes(range(32))
    assert fold_branch(any_leaf, tpl.merkle_branch()) == merkle_root([any_leaf, *tpl.txids()])
    with pytest.raises(dataclasses.FrozenInstanceError):
        tpl.height = 1  # type: ignore[misc]


def test_core_error_answer_is_not_a_template() -> None:
    rpc = json.loads((CORE / "gbt-core-regtest-no-segwit-rule-error.rpc.json").read_text())
    with pytest.raises(TemplateError):
        parse_gbt(rpc["result"])  # null
    with pytest.raises(TemplateError):
        parse_gbt(rpc)  # the envelope is not a template either


# --- block 102: built by ckpool from the h102 template, solved, accepted by Core -----------------------


def test_ckpool_block_102_checks_out(h102: BlockTemplate, ckpool_block: Block) -> None:
    verbose = json.loads((CORE / "block-102-ckpool-mined-core-regtest.verbose2.json").read_text())
    raw_hex = (CORE / "block-102-ckpool-mined-core-regtest.hex").read_text().strip()
    block = ckpool_block
    assert block.hex() == raw_hex
    assert block.hash_hex() == verbose["hash"]
    assert block.header.check_pow()
    assert (len(block.serialize()), len(block.serialize(False)), block.weight()) == (
        verbose["size"],
        verbose["strippedsize"],
        verbose["weight"],
    )
    assert [tx.txid_hex() for tx in block.txs] == [t["txid"] for t in verbose["tx"]]
    assert [tx.wtxid_hex() for tx in block.txs] == [t["hash"] for t in verbose["tx"]]
    root, mutated = block.computed_merkle_root()
    assert not mutated and display_hex(root) == verbose["merkleroot"]
    cb = block.txs[0]
    assert parse_bip34_height(cb.inputs[0].script_sig) == verbose["height"] == h102.height
    assert cb.inputs[0].script_sig.hex() == verbose["tx"][0]["vin"][0]["coinbase"]
    found = find_commitment([o.script_pubkey for o in cb.outputs])
    assert found == witness_commitment([tx.wtxid() for tx in block.txs[1:]], cb.inputs[0].witness[0])
    assert found == h102.witness_commitment()
    assert sum(o.value for o in cb.outputs) == h102.coinbase_value
    # It is the template's block: same parent, bits, version and transactions in the same order.
    assert block.header.prev_hash == h102.prev_hash and block.header.bits == h102.bits
    assert block.header.version == h102.version
    assert [tx.serialize() for tx in block.txs[1:]] == [t.data for t in h102.transactions]


def test_template_transactions_plus_the_blocks_coinbase_reproduce_it(h102: BlockTemplate, ckpool_block: Block) -> None:
    cb = ckpool_block.txs[0]
    txs = (cb, *(Transaction.parse(t.data) for t in h102.transactions))
    root = fold_branch(cb.txid(), h102.merkle_branch())
    header = BlockHeader(
        h102.version, h102.prev_hash, root, ckpool_block.header.time, h102.bits, ckpool_block.header.nonce
    )
    assert Block(header, txs).serialize() == ckpool_block.serialize()
    assert h102.mintime <= header.time


def test_our_coinbase_builder_reproduces_ckpools_coinbase(h102: BlockTemplate, ckpool_block: Block) -> None:
    """ckpool's scriptSig is height push | its own aux data | extranonce1 (4) | extranonce2 (8) | tag. With
    those bytes as aux_flags/tag our builder gives its coinbase exactly, so the block hex matches too."""
    cb = ckpool_block.txs[0]
    script = cb.inputs[0].script_sig
    payout = cb.outputs[0]
    # ckpool pushes its 12 extranonce bytes with one 0x0c push; extranonce1 is the first four of them.
    en_at = script.index(bytes.fromhex("0c")) + 1
    head = len(b"\x01\x66")
    aux, en1, en2, tag = script[head:en_at], script[en_at : en_at + 4], script[en_at + 4 : en_at + 12], script[en_at + 12 :]
    parts = build_coinbase(
        height=h102.height,
        outputs=[TxOut(h102.coinbase_value, payout.script_pubkey)],
        extranonce1_size=4,
        extranonce2_size=8,
        aux_flags=h102.coinbase_aux_flags + aux,
        tag=tag,
        witness_commitment=h102.witness_commitment(),
        version=cb.version,
    )
    assert parts.serialize(en1, en2) == cb.serialize_legacy()
    built = parts.transaction(en1, en2)
    assert built == cb
    root = fold_branch(parts.txid(en1, en2), h102.merkle_branch())
    header = BlockHeader(
        h102.version, h102.prev_hash, root, ckpool_block.header.time, h102.bits, ckpool_block.header.nonce
    )
    block = Block(header, (built, *(Transaction.parse(t.data) for t in h102.transactions)))
    assert block.hex() == (CORE / "block-102-ckpool-mined-core-regtest.hex").read_text().strip()


def test_a_pithead_coinbase_for_h102(h102: BlockTemplate) -> None:
    spk = bytes.fromhex("00147ae8129f1551097a55f58a2fbd574570f16e9134")
    parts = build_coinbase(
        height=h102.height,
        outputs=[TxOut(h102.coinbase_value, spk)],
        aux_flags=h102.coinbase_aux_flags,
        witness_commitment=h102.witness_commitment(),
    )
    en1, en2 = bytes(4), bytes(8)
    cb = parts.transaction(en1, en2)
    assert cb.is_coinbase() and parse_bip34_height(cb.inputs[0].script_sig) == 102
    assert cb.outputs[-1].script_pubkey == h102.default_witness_commitment
    assert sum(o.value for o in cb.outputs) == h102.coinbase_value
    txs = (cb, *(Transaction.parse(t.data) for t in h102.transactions))
    header = BlockHeader(
        h102.version, h102.prev_hash, fold_branch(cb.txid(), h102.merkle_branch()), h102.curtime, h102.bits, 0
    )
    block = Block(header, txs)
    assert block.computed_merkle_root() == (header.merkle_root, False)
    assert find_commitment([o.script_pubkey for o in cb.outputs]) == witness_commitment(
        [tx.wtxid() for tx in txs[1:]], cb.inputs[0].witness[0]
    )
    assert Block.parse(block.serialize()) == block
    # Stay in weight: this block is far under the limit the template gave.
    assert block.weight() <= h102.weightlimit


# --- bad answers: TemplateError, naming the field -----------------------------------------------------

_BAD_FIELDS: list[tuple[str, Any]] = [
    ("version", "1"),
    ("version", -1),
    ("version", True),
    ("previousblockhash", "00" * 31),
    ("previousblockhash", "zz" * 32),
    ("height", 0),
    ("bits", "0x207fff"),
    ("bits", "207fff"),
    ("bits", " 207ffff"),
    ("bits", "20_7ffff"),
    ("bits", "00000000"),
    ("bits", "04923456"),
    ("target", "7fffff" + "00" * 28 + "01"),
    ("target", "0x7fffff"),
    ("curtime", -1),
    ("curtime", "now"),
    ("mintime", "x"),
    ("coinbasevalue", -1),
    ("coinbasevalue", 21_000_000 * 10**8 + 1),
    ("transactions", {}),
    ("rules", "segwit"),
    ("rules", [1]),
    ("mutable", 5),
    ("vbavailable", [1, 2]),
    ("vbavailable", {"x": "y"}),
    ("sigoplimit", []),
    ("sigoplimit", "80000"),
    ("sizelimit", -1),
    ("weightlimit", None),
    ("vbrequired", 1.5),
    ("coinbaseaux", []),
    ("coinbaseaux", {"flags": "zz"}),
    ("coinbaseaux", {"flags": 7}),
    ("default_witness_commitment", "6a24aa21a9ed" + "00" * 32),
    ("default_witness_commitment", 5),
    ("default_witness_commitment", ""),
]


@pytest.mark.parametrize(("field", "value"), _BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in _BAD_FIELDS])
def test_bad_fields_raise_template_error(field: str, value: Any) -> None:
    raw = gbt(GBT_FILES[0])
    raw[field] = value
    with pytest.raises(TemplateError) as err:
        parse_gbt(raw)
    assert "getblocktemplate" in str(err.value)


@pytest.mark.parametrize("field", ["version", "previousblockhash", "height", "bits", "curtime", "coinbasevalue", "transactions"])
def test_missing_required_fields(field: str) -> None:
    raw = gbt(GBT_FILES[0])
    del raw[field]
    with pytest.raises(TemplateError, match=field):
        parse_gbt(raw)


_BAD_TX: list[tuple[str, Any]] = [
    ("data", "00"),
    ("data", "zz"),
    ("data", None),
    ("txid", "00" * 32),
    ("txid", 5),
    ("hash", "00" * 32),
    ("hash", ["x"]),
    ("depends", [0]),
    ("depends", [1]),  # its own index (transactions[0] is index 1)
    ("depends", [True]),
    ("depends", "1"),
    ("fee", -1),
    ("fee", 1.5),
    ("sigops", None),
    ("weight", "561"),
]


@pytest.mark.parametrize(("field", "value"), _BAD_TX, ids=[f"{f}={v!r}"[:40] for f, v in _BAD_TX])
def test_bad_transactions_raise_template_error(field: str, value: Any) -> None:
    raw = gbt(GBT_FILES[0])
    raw["transactions"][0][field] = value
    with pytest.raises(TemplateError, match=r"transactions\[1\]"):
        parse_gbt(raw)


def test_a_coinbase_among_the_transactions_is_refused(ckpool_block: Block) -> None:
    raw = gbt(GBT_FILES[0])
    cb = ckpool_block.txs[0]
    raw["transactions"].insert(
        0, {"data": cb.serialize().hex(), "txid": cb.txid_hex(), "hash": cb.wtxid_hex(), "depends": []}
    )
    for t in raw["transactions"][1:]:
        t["depends"] = [d + 1 for d in t["depends"]]
    with pytest.raises(TemplateError):
        parse_gbt(raw)


def test_dependencies_must_point_backwards() -> None:
    raw = gbt(GBT_FILES[1])
    n = len(raw["transactions"])
    raw["transactions"][0]["depends"] = [n]
    with pytest.raises(TemplateError, match="depends"):
        parse_gbt(raw)


def test_unverified_mode_still_checks_the_hash() -> None:
    raw = gbt(GBT_FILES[1])
    tpl = parse_gbt(raw, verify_transactions=False)
    assert tpl == parse_gbt(raw)
    raw["transactions"][2]["data"] = raw["transactions"][3]["data"]
    with pytest.raises(TemplateError):
        parse_gbt(raw, verify_transactions=False)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_BASE = gbt(GBT_FILES[0])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(_BASE)),
    _json,
    st.integers(0, len(_BASE["transactions"]) - 1),
    st.sampled_from(["data", "txid", "hash", "depends", "fee", "sigops", "weight", None]),
)
def test_random_field_values_only_raise_template_error(field: str, value: Any, ti: int, tx_field: str | None) -> None:
    raw = copy.deepcopy(_BASE)
    if tx_field is None:
        raw[field] = value
    else:
        raw["transactions"][ti][tx_field] = value
    try:
        tpl = parse_gbt(raw)
    except TemplateError:
        return
    # Whatever was accepted is internally consistent.
    assert tpl.target == bits_to_target(tpl.bits)
    assert all(len(t.txid) == 32 and len(t.wtxid) == 32 for t in tpl.transactions)
    assert tpl.prev_hash == from_display_hex(_BASE["previousblockhash"]) or field == "previousblockhash"


@settings(max_examples=100, deadline=None)
@given(_json)
def test_random_json_is_never_a_template(value: Any) -> None:
    with pytest.raises(TemplateError):
        parse_gbt(value)

"""Real mainnet blocks (tests/vectors/blocks.json and raw_blocks/): headers rebuilt from their fields and
hashed, merkle roots from the listed txids and from the parsed transactions, every raw block and every
transaction parsed and re-serialized byte for byte, sizes/weights, BIP34 heights, witness commitments, and
block 881423's coinbase + Stratum branch → merkle root.

The tests read whatever entries the file holds (optional fields are checked when present), so the same
code runs unchanged on a held-out vector set with the same format.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chain_vectors import VECTORS, load_vector

from pithead.chain.block import Block
from pithead.chain.compact import bits_to_target, target_to_difficulty
from pithead.chain.hashes import display_hex, from_display_hex, sha256d
from pithead.chain.header import HEADER_SIZE, BlockHeader, hash_meets_target
from pithead.chain.merkle import coinbase_branch, fold_branch, merkle_root, merkle_root_mutated
from pithead.chain.script import parse_bip34_height
from pithead.chain.tx import Transaction
from pithead.chain.varint import Reader
from pithead.chain.witness import find_commitment, witness_commitment, witness_root

BLOCKS: list[dict[str, Any]] = load_vector("blocks.json")["vectors"]
FULL = [v for v in BLOCKS if v.get("raw_block_hex") or v.get("raw_block_file")]
WITH_TXIDS = [v for v in BLOCKS if v.get("txids") and v.get("tx_count") == len(v["txids"])]


def _id(v: dict[str, Any]) -> str:
    return f"h{v['height']}"


@pytest.fixture(scope="session")
def raw_blocks() -> dict[int, bytes]:
    """Every full block's bytes, read once per session (two of them are ~1 MB each)."""
    out: dict[int, bytes] = {}
    for v in FULL:
        if v.get("raw_block_hex"):
            out[v["height"]] = bytes.fromhex(v["raw_block_hex"])
        else:
            rec = json.loads((VECTORS / v["raw_block_file"]).read_text())
            assert rec["height"] == v["height"]
            out[v["height"]] = bytes.fromhex(rec["raw_block_hex"])
    return out


@pytest.fixture(scope="session")
def parsed_blocks(raw_blocks: dict[int, bytes]) -> dict[int, Block]:
    return {h: Block.parse(raw) for h, raw in raw_blocks.items()}


def test_vector_set_has_the_kinds_we_rely_on() -> None:
    assert len(FULL) >= 5
    assert any(v.get("wtxids") for v in FULL), "at least one segwit block with wtxids"
    assert any(v.get("merkle_branch_internal_hex") for v in BLOCKS), "a coinbase + Stratum branch block"


# --- headers: every entry ------------------------------------------------------------------------------


@pytest.mark.parametrize("v", BLOCKS, ids=_id)
def test_header_from_fields(v: dict[str, Any]) -> None:
    header = BlockHeader(
        version=v["version"],
        prev_hash=from_display_hex(v["prev_block_hash"]),
        merkle_root=from_display_hex(v["merkle_root"]),
        time=v["time"],
        bits=int(v["bits"], 16),
        nonce=v["nonce"],
    )
    assert header.bits == v["bits_int"]
    assert header.version & 0xFFFFFFFF == int(v["version_hex"], 16)
    raw = header.serialize()
    assert len(raw) == HEADER_SIZE
    assert raw.hex() == v["header_hex"]
    assert header.hash_hex() == v["block_hash"]
    assert display_hex(sha256d(bytes.fromhex(v["header_hex"]))) == v["block_hash"]
    if "sha256d_digest_unreversed_hex" in v:
        assert header.hash().hex() == v["sha256d_digest_unreversed_hex"]
    # Parsing the header bytes gives the same value back.
    assert BlockHeader.from_hex(v["header_hex"]) == header
    # Proof of work: the expected verdict is the vector's own (a held-out negative header must fail).
    expect_pow = v.get("verified", {}).get("hash_meets_target_from_bits", True)
    assert header.check_pow() is expect_pow
    assert header.meets_target(header.target()) is expect_pow
    if "difficulty_from_bits_derived" in v:
        assert target_to_difficulty(bits_to_target(header.bits)) == pytest.approx(
            v["difficulty_from_bits_derived"], rel=1e-12
        )


@pytest.mark.parametrize("v", BLOCKS, ids=_id)
def test_header_hash_equal_to_target_passes_and_one_below_fails(v: dict[str, Any]) -> None:
    header = BlockHeader.from_hex(v["header_hex"])
    as_int = int(v["block_hash"], 16)
    assert header.meets_target(as_int)
    assert not header.meets_target(as_int - 1)
    assert hash_meets_target(header.hash(), as_int)


# --- merkle roots from the listed txids --------------------------------------------------------------


@pytest.mark.parametrize("v", WITH_TXIDS, ids=_id)
def test_merkle_root_from_listed_txids(v: dict[str, Any]) -> None:
    txids = [from_display_hex(t) for t in v["txids"]]
    root, mutated = merkle_root_mutated(txids)
    assert not mutated
    assert display_hex(root) == v["merkle_root"]
    # The Stratum branch for the coinbase, folded from the coinbase txid, reaches the same root.
    assert fold_branch(txids[0], coinbase_branch(txids[1:])) == root


def test_block_881423_coinbase_and_stratum_branch_give_the_header_root() -> None:
    cases = [v for v in BLOCKS if v.get("merkle_branch_internal_hex")]
    assert cases
    for v in cases:
        full = Transaction.from_hex(v["coinbase_tx_hex"])
        assert full.is_coinbase()
        assert full.serialize().hex() == v["coinbase_tx_hex"]
        stripped = bytes.fromhex(v["coinbase_tx_stripped_hex"])
        assert full.serialize_legacy() == stripped
        assert full.txid_hex() == v["coinbase_txid"]
        if "coinbase_wtxid" in v:
            assert full.wtxid_hex() == v["coinbase_wtxid"]
        branch = [bytes.fromhex(b) for b in v["merkle_branch_internal_hex"]]
        root = fold_branch(sha256d(stripped), branch)
        header = BlockHeader.from_hex(v["header_hex"])
        assert root == header.merkle_root == bytes.fromhex(v["header_hex"])[36:68]
        assert display_hex(root) == v["merkle_root"]
        # A tree with tx_count leaves has a branch of ceil(log2(tx_count)) entries.
        if v.get("tx_count"):
            assert len(branch) == (v["tx_count"] - 1).bit_length()
        assert parse_bip34_height(full.inputs[0].script_sig) == v["height"]
        if "bip34_height_push_hex" in v:
            assert full.inputs[0].script_sig.hex().startswith(v["bip34_height_push_hex"])
        wc = v.get("witness_commitment") or {}
        if wc.get("commitment_in_coinbase"):
            assert find_commitment([o.script_pubkey for o in full.outputs]) == bytes.fromhex(
                wc["commitment_in_coinbase"]
            )


# --- full blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", FULL, ids=_id)
def test_raw_block_round_trip_and_fields(
    v: dict[str, Any], raw_blocks: dict[int, bytes], parsed_blocks: dict[int, Block]
) -> None:
    raw = raw_blocks[v["height"]]
    block = parsed_blocks[v["height"]]
    assert block.serialize() == raw
    assert block.hex() == raw.hex()
    assert block.header.serialize().hex() == v["header_hex"]
    assert block.hash_hex() == v["block_hash"]
    assert len(block.txs) == v["tx_count"]
    # Sizes (BIP141): total, stripped (no witness) and weight.
    if "size" in v:
        assert len(raw) == v["size"]
    if "stripped_size" in v:
        assert len(block.serialize(include_witness=False)) == v["stripped_size"]
    if "weight" in v:
        assert block.weight() == v["weight"]
    sg = v.get("source_given") or {}
    if "weight" in sg:
        assert (len(raw), len(block.serialize(include_witness=False)), block.weight()) == (
            sg["size"],
            sg["strippedSize"],
            sg["weight"],
        )
    # Merkle root from the parsed transactions.
    root, mutated = block.computed_merkle_root()
    assert not mutated
    assert root == block.header.merkle_root
    assert display_hex(root) == v["merkle_root"]


@pytest.mark.parametrize("v", FULL, ids=_id)
def test_every_transaction_round_trips_byte_for_byte(v: dict[str, Any], raw_blocks: dict[int, bytes]) -> None:
    raw = raw_blocks[v["height"]]
    r = Reader(raw, HEADER_SIZE)
    n = r.varint()
    txids, wtxids = [], []
    for _ in range(n):
        start = r.pos
        tx = Transaction.read(r)
        tx_bytes = raw[start : r.pos]
        assert tx.serialize() == tx_bytes
        again = Transaction.parse(tx_bytes)
        assert again == tx
        # Legacy serialization parses to the same transaction minus its witnesses.
        stripped = Transaction.parse(tx.serialize_legacy())
        assert stripped.txid() == tx.txid()
        assert not stripped.has_witness()
        assert tx.weight() == 3 * tx.base_size() + tx.total_size()
        txids.append(tx.txid_hex())
        wtxids.append(tx.wtxid_hex())
    r.expect_end("block")
    assert txids == v["txids"]
    if v.get("wtxids"):
        assert wtxids == v["wtxids"]
    else:
        assert wtxids == txids  # no witness data anywhere in the block


@pytest.mark.parametrize("v", FULL, ids=_id)
def test_coinbase_bip34_and_witness_commitment(v: dict[str, Any], parsed_blocks: dict[int, Block]) -> None:
    block = parsed_blocks[v["height"]]
    cb = block.txs[0]
    assert cb.is_coinbase()
    assert not any(tx.is_coinbase() for tx in block.txs[1:])
    if "coinbase_tx_hex" in v:
        assert cb.serialize().hex() == v["coinbase_tx_hex"]
    if "coinbase_scriptsig_hex" in v:
        assert cb.inputs[0].script_sig.hex() == v["coinbase_scriptsig_hex"]
    if "bip34_height_push_hex" in v:
        assert cb.inputs[0].script_sig.hex().startswith(v["bip34_height_push_hex"])
        assert parse_bip34_height(cb.inputs[0].script_sig) == v["height"]
    wc = v.get("witness_commitment")
    found = find_commitment([o.script_pubkey for o in cb.outputs])
    if not wc:
        # No commitment listed: then the block has no witness data for one to commit to.
        assert not any(tx.has_witness() for tx in block.txs)
        return
    assert found == bytes.fromhex(wc["commitment_in_coinbase"])
    assert cb.outputs[wc["commitment_output_index"]].script_pubkey.hex() == wc["commitment_script_hex"]
    wtxids = [tx.wtxid() for tx in block.txs[1:]]
    if "witness_merkle_root_internal_hex" in wc:
        assert witness_root(wtxids).hex() == wc["witness_merkle_root_internal_hex"]
        assert merkle_root([bytes(32), *wtxids]).hex() == wc["witness_merkle_root_internal_hex"]
    if wc.get("matches"):
        reserved = bytes.fromhex(wc["witness_reserved_value_hex"])
        assert cb.inputs[0].witness == (reserved,)
        assert witness_commitment(wtxids, reserved) == found
        assert wc["commitment_recomputed"] == found.hex()
    elif wc.get("matches") is None and not cb.has_witness():
        # Pre-activation: the output is there but the coinbase carries no reserved value to check it with.
        assert not any(tx.has_witness() for tx in block.txs)


def test_segwit_blocks_with_listed_wtxids_but_no_raw_bytes() -> None:
    """Blocks too big to inline (540107) still carry txids and wtxids: roots and commitments check out."""
    for v in BLOCKS:
        wc = v.get("witness_commitment") or {}
        if not v.get("wtxids") or not wc.get("matches"):
            continue
        wtxids = [from_display_hex(w) for w in v["wtxids"]]
        reserved = bytes.fromhex(wc["witness_reserved_value_hex"])
        assert witness_root(wtxids[1:]).hex() == wc["witness_merkle_root_internal_hex"]
        assert witness_commitment(wtxids[1:], reserved).hex() == wc["commitment_in_coinbase"]
        cb = Transaction.from_hex(v["coinbase_tx_hex"])
        assert cb.wtxid() == wtxids[0]
        assert cb.txid_hex() == v["txids"][0]
        assert find_commitment([o.script_pubkey for o in cb.outputs]) == bytes.fromhex(wc["commitment_in_coinbase"])


def test_coinbase_hex_of_every_entry_parses_and_round_trips() -> None:
    for v in BLOCKS:
        if "coinbase_tx_hex" not in v:
            continue
        cb = Transaction.from_hex(v["coinbase_tx_hex"])
        assert cb.serialize().hex() == v["coinbase_tx_hex"]
        assert cb.is_coinbase()
        if v.get("txids"):
            assert cb.txid_hex() == v["txids"][0]
        if "coinbase_scriptsig_hex" in v:
            assert cb.inputs[0].script_sig.hex() == v["coinbase_scriptsig_hex"]


def test_truncated_and_padded_blocks_are_refused(raw_blocks: dict[int, bytes]) -> None:
    from pithead.chain.errors import ChainDecodeError

    for raw in raw_blocks.values():
        if len(raw) > 200_000:
            continue
        with pytest.raises(ChainDecodeError):
            Block.parse(raw[:-1])
        with pytest.raises(ChainDecodeError):
            Block.parse(raw + b"\x00")

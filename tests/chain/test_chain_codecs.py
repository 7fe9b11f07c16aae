"""Hypothesis round trips for every codec in pithead.chain (varint, script numbers and pushes, tx with and
without witness, header, block, prevhash's Stratum encoding, merkle branch folds, SHA-256 midstate), and
fuzzing of every decoder with random and truncated bytes: only the typed errors may escape."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.block import Block
from pithead.chain.coinbase import CoinbaseError, CoinbaseParts
from pithead.chain.compact import set_compact
from pithead.chain.errors import ChainDecodeError, ChainError, CompactError
from pithead.chain.hashes import (
    SHA256_INITIAL_STATE,
    display_hex,
    from_display_hex,
    hash_to_int,
    prevhash_from_stratum,
    prevhash_to_stratum,
    sha256_compress,
    sha256_midstate,
    sha256d,
    unhex,
)
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import coinbase_branch, fold_branch, merkle_root, merkle_root_mutated
from pithead.chain.script import (
    parse_bip34_height,
    push_data,
    push_int,
    scriptnum_decode,
    scriptnum_encode,
)
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.chain.varint import Reader, decode_varint, encode_bytes, encode_varint
from pithead.chain.witness import find_commitment

FAST = settings(max_examples=150, deadline=None)
TYPED = (ChainDecodeError, CompactError, CoinbaseError)  # all ChainError subclasses

hash32 = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 0xFFFFFFFF)


# --- strategies ------------------------------------------------------------------------------------

witness_stack = st.lists(st.binary(max_size=80), min_size=1, max_size=4).map(tuple)


@st.composite
def transactions(draw: st.DrawFn, witness: bool | None = None) -> Transaction:
    n_in = draw(st.integers(1, 4))
    with_witness = draw(st.booleans()) if witness is None else witness
    inputs = []
    for k in range(n_in):
        w: tuple[bytes, ...] = ()
        if with_witness and (k == 0 or draw(st.booleans())):
            w = draw(witness_stack)
        inputs.append(TxIn(OutPoint(draw(hash32), draw(u32)), draw(st.binary(max_size=120)), draw(u32), w))
    outputs = draw(
        st.lists(st.builds(TxOut, st.integers(-(2**63), 2**63 - 1), st.binary(max_size=100)), max_size=4)
    )
    return Transaction(draw(st.integers(-(2**31), 2**31 - 1)), tuple(inputs), tuple(outputs), draw(u32))


headers = st.builds(BlockHeader, st.integers(-(2**31), 2**31 - 1), hash32, hash32, u32, u32, u32)


# --- varint -----------------------------------------------------------------------------------------


@FAST
@given(st.integers(0, 2**64 - 1), st.binary(max_size=8))
def test_varint_round_trip(n: int, tail: bytes) -> None:
    enc = encode_varint(n)
    assert len(enc) == (1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9)
    assert decode_varint(enc + tail) == (n, len(enc))


@pytest.mark.parametrize("raw", ["fdfc00", "fe ffff0000".replace(" ", ""), "ff ffffffff00000000".replace(" ", "")])
def test_non_canonical_varints_are_refused(raw: str) -> None:
    with pytest.raises(ChainDecodeError, match="non-canonical"):
        decode_varint(bytes.fromhex(raw))


def test_varint_out_of_range() -> None:
    for bad in (-1, 2**64):
        with pytest.raises(ChainDecodeError):
            encode_varint(bad)


@FAST
@given(st.binary(max_size=300))
def test_var_bytes_round_trip(b: bytes) -> None:
    r = Reader(encode_bytes(b) + b"rest")
    assert r.var_bytes() == b and r.remaining() == 4


# --- script numbers and pushes ----------------------------------------------------------------------


@FAST
@given(st.integers(-(2**63) + 1, 2**63 - 1))
def test_scriptnum_round_trip(n: int) -> None:
    enc = scriptnum_encode(n)
    assert scriptnum_decode(enc, max_size=9) == n
    # Minimal: no redundant top byte.
    if enc:
        assert enc[-1] & 0x7F or (len(enc) > 1 and enc[-2] & 0x80)


@FAST
@given(st.binary(max_size=70_000))
def test_push_data_round_trip(data: bytes) -> None:
    push = push_data(data)
    r = Reader(push)
    op = r.u8()
    n = op if op < 0x4C else r.u8() if op == 0x4C else r.u16() if op == 0x4D else r.u32()
    assert r.read(n) == data and r.remaining() == 0
    # Minimal push opcode for the size.
    assert (op < 0x4C) == (len(data) < 0x4C)


@FAST
@given(st.integers(-(2**40), 2**40))
def test_push_int_is_core_cscript(n: int) -> None:
    p = push_int(n)
    if n == 0:
        assert p == b"\x00"
    elif n == -1:
        assert p == b"\x4f"
    elif 1 <= n <= 16:
        assert p == bytes((0x50 + n,))
    else:
        assert p == push_data(scriptnum_encode(n))
    if n >= 0:
        assert parse_bip34_height(p) == n


# --- transactions -----------------------------------------------------------------------------------


@FAST
@given(transactions())
def test_tx_round_trip(tx: Transaction) -> None:
    raw = tx.serialize()
    again = Transaction.parse(raw)
    assert again == tx
    assert again.serialize() == raw
    assert Transaction.from_hex(raw.hex()) == tx
    legacy = Transaction.parse(tx.serialize_legacy())
    assert legacy.txid() == tx.txid() == sha256d(tx.serialize_legacy())
    assert tx.wtxid() == sha256d(raw)
    if tx.has_witness():
        assert raw[4:6] == b"\x00\x01" and tx.wtxid() != tx.txid()
        assert tx.weight() > 4 * tx.base_size() - 1 and tx.total_size() > tx.base_size()
    else:
        assert tx.wtxid() == tx.txid() and tx.weight() == 4 * tx.base_size()
    assert tx.vsize() == (tx.weight() + 3) // 4
    assert display_hex(tx.txid()) == tx.txid_hex()


@FAST
@given(transactions(witness=True))
def test_witness_tx_without_witness_is_the_legacy_tx(tx: Transaction) -> None:
    legacy = Transaction.parse(tx.serialize(include_witness=False))
    assert legacy == Transaction(
        tx.version, tuple(TxIn(i.prevout, i.script_sig, i.sequence) for i in tx.inputs), tx.outputs, tx.locktime
    )


def test_superfluous_witness_and_unknown_flag_are_refused() -> None:
    tx = Transaction(2, (TxIn(OutPoint(bytes(32), 0), b""),), (TxOut(1, b"\x51"),), 0)
    legacy = tx.serialize()
    extended_empty = legacy[:4] + b"\x00\x01" + legacy[4:-4] + b"\x00" + legacy[-4:]
    with pytest.raises(ChainDecodeError, match="superfluous"):
        Transaction.parse(extended_empty)
    with pytest.raises(ChainDecodeError, match="flag"):
        Transaction.parse(legacy[:4] + b"\x00\x02" + legacy[4:])


# --- headers, blocks --------------------------------------------------------------------------------


@FAST
@given(headers)
def test_header_round_trip(h: BlockHeader) -> None:
    raw = h.serialize()
    assert len(raw) == 80
    assert BlockHeader.parse(raw) == h
    assert BlockHeader.from_hex(raw.hex()) == h
    assert h.hash() == sha256d(raw)
    assert h.meets_target(hash_to_int(h.hash())) and not h.meets_target(hash_to_int(h.hash()) - 1)


@FAST
@given(headers, st.lists(transactions(), min_size=1, max_size=4))
def test_block_round_trip(h: BlockHeader, txs: list[Transaction]) -> None:
    block = Block(h, tuple(txs))
    raw = block.serialize()
    assert Block.parse(raw) == block
    assert Block.from_hex(block.hex()) == block
    assert block.weight() == 3 * len(block.serialize(False)) + len(raw)
    root, _ = block.computed_merkle_root()
    assert root == merkle_root([tx.txid() for tx in txs])


def test_header_refuses_values_it_cannot_encode() -> None:
    base = BlockHeader(1, bytes(32), bytes(32), 0, 0x1D00FFFF, 0)
    for bad in (
        BlockHeader(1 << 32, bytes(32), bytes(32), 0, 0, 0),
        BlockHeader(-(1 << 31) - 1, bytes(32), bytes(32), 0, 0, 0),
        BlockHeader(1, bytes(31), bytes(32), 0, 0, 0),
        BlockHeader(1, bytes(32), bytes(33), 0, 0, 0),
        BlockHeader(1, bytes(32), bytes(32), 1 << 32, 0, 0),
        BlockHeader(1, bytes(32), bytes(32), 0, 0, -1),
    ):
        with pytest.raises(ChainError):
            bad.serialize()
    # Unsigned and signed forms of the same 32-bit version serialize identically.
    assert BlockHeader(0xE0000000, *[getattr(base, f) for f in ("prev_hash", "merkle_root", "time", "bits", "nonce")]).serialize() == BlockHeader(
        -0x20000000, *[getattr(base, f) for f in ("prev_hash", "merkle_root", "time", "bits", "nonce")]
    ).serialize()
    assert not BlockHeader(1, bytes(32), bytes(32), 0, 0x04923456, 0).check_pow()  # negative nBits


# --- hashes: byte orders, Stratum prevhash, midstate --------------------------------------------------


@FAST
@given(hash32)
def test_prevhash_stratum_round_trip(prev: bytes) -> None:
    s = prevhash_to_stratum(prev)
    assert prevhash_from_stratum(s) == prev
    # Equivalently: display hex split into 8-hex-digit words, in reverse word order.
    disp = display_hex(prev)
    assert s == "".join(disp[i : i + 8] for i in range(56, -8, -8))
    assert from_display_hex(disp) == prev


@FAST
@given(st.binary(max_size=300))
def test_sha256_compress_is_sha256(msg: bytes) -> None:
    padded = msg + b"\x80" + bytes((55 - len(msg)) % 64) + struct.pack(">Q", 8 * len(msg))
    state = SHA256_INITIAL_STATE
    for i in range(0, len(padded), 64):
        state = sha256_compress(state, padded[i : i + 64])
    assert struct.pack(">8I", *state) == hashlib.sha256(msg).digest()


@FAST
@given(st.binary(min_size=64, max_size=64))
def test_midstate_is_the_first_compression(block: bytes) -> None:
    assert sha256_midstate(block) == struct.pack(">8I", *sha256_compress(SHA256_INITIAL_STATE, block))


def test_midstate_refuses_other_sizes() -> None:
    for n in (0, 63, 65, 80):
        with pytest.raises(ChainDecodeError):
            sha256_midstate(bytes(n))


# --- merkle -----------------------------------------------------------------------------------------


@FAST
@given(st.lists(hash32, min_size=1, max_size=40))
def test_branch_fold_is_the_root(leaves: list[bytes]) -> None:
    branch = coinbase_branch(leaves[1:])
    assert len(branch) == (len(leaves) - 1).bit_length()
    assert fold_branch(leaves[0], branch) == merkle_root(leaves)
    # The branch never depends on the coinbase leaf.
    assert fold_branch(sha256d(leaves[0]), branch) == merkle_root([sha256d(leaves[0]), *leaves[1:]])


@FAST
@given(st.lists(hash32, min_size=1, max_size=20, unique=True))
def test_cve_2012_2459_duplicated_tail_is_flagged(leaves: list[bytes]) -> None:
    root, mutated = merkle_root_mutated(leaves)
    assert not mutated
    if len(leaves) % 2 == 1 and len(leaves) > 1:
        # Repeating the last leaf gives the same root, and is reported as mutated.
        root2, mutated2 = merkle_root_mutated([*leaves, leaves[-1]])
        assert root2 == root and mutated2


def test_empty_tree_root() -> None:
    assert merkle_root([]) == bytes(32)
    assert coinbase_branch([]) == []


# --- fuzzing: random and truncated bytes into every decoder -------------------------------------------

_DECODERS = [
    ("Transaction.parse", Transaction.parse),
    ("Block.parse", Block.parse),
    ("BlockHeader.parse", BlockHeader.parse),
    ("decode_varint", decode_varint),
    ("parse_bip34_height", parse_bip34_height),
    ("scriptnum_decode", scriptnum_decode),
    ("sha256_midstate", sha256_midstate),
    ("find_commitment", lambda b: find_commitment([b])),
    ("Reader.var_bytes", lambda b: Reader(b).var_bytes(limit=len(b))),
]


def _only_typed(fn: object, arg: object) -> None:
    try:
        fn(arg)  # type: ignore[operator]
    except TYPED:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_DECODERS), st.binary(max_size=300))
def test_random_bytes_only_raise_typed_errors(dec: tuple[str, object], data: bytes) -> None:
    _only_typed(dec[1], data)


# Real structures cut at every length and with a byte flipped: the decoders must notice or decode cleanly.
_SEED_TX = Transaction(
    2,
    (TxIn(OutPoint(bytes(range(32)), 1), b"\x01\x02", 0xFFFFFFFD, (b"sig", b"\x02" * 33)),
     TxIn(OutPoint(bytes(32), 7), b"", 0, ())),
    (TxOut(5000, b"\x00\x14" + bytes(20)), TxOut(0, b"\x6a")),
    101,
)
_SEED_BLOCK = Block(BlockHeader(0x20000000, bytes(32), bytes(32), 1, 0x207FFFFF, 2), (_SEED_TX, _SEED_TX))


@pytest.mark.parametrize("seed", [_SEED_TX.serialize(), _SEED_TX.serialize_legacy(), _SEED_BLOCK.serialize()])
def test_every_truncation_is_refused(seed: bytes) -> None:
    parse = Block.parse if len(seed) > 200 else Transaction.parse
    assert parse(seed).serialize() == seed
    for cut in range(len(seed)):
        with pytest.raises(ChainDecodeError):
            parse(seed[:cut])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["tx", "legacy", "block"]))
def test_flipped_bytes_decode_cleanly_or_raise_typed(pos: int, value: int, which: str) -> None:
    seed = {"tx": _SEED_TX.serialize(), "legacy": _SEED_TX.serialize_legacy(), "block": _SEED_BLOCK.serialize()}[which]
    parse = Block.parse if which == "block" else Transaction.parse
    mutated = bytearray(seed)
    mutated[pos % len(seed)] = value
    try:
        out = parse(bytes(mutated))
    except ChainDecodeError:
        return
    # Whatever decodes re-encodes to exactly the bytes it came from (no silent reinterpretation).
    assert out.serialize() == bytes(mutated)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=40).map(bytes.hex), st.none(), st.integers()))
def test_hex_decoders_only_raise_typed_errors(s: object) -> None:
    for fn in (unhex, from_display_hex, prevhash_from_stratum, Transaction.from_hex, BlockHeader.from_hex, Block.from_hex):
        try:
            fn(s)  # type: ignore[arg-type]
        except TYPED:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**40), 2**40))
def test_set_compact_only_raises_compact_error(bits: int) -> None:
    try:
        set_compact(bits)
    except CompactError:
        assert not 0 <= bits <= 0xFFFFFFFF


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60), st.binary(max_size=60), st.binary(max_size=10), st.binary(max_size=10))
def test_coinbase_parts_from_untrusted_halves(coinb1: bytes, coinb2: bytes, en1: bytes, en2: bytes) -> None:
    parts = CoinbaseParts(coinb1, coinb2, 4, 8, True)
    try:
        tx = parts.transaction(en1, en2)
    except TYPED:
        return
    assert tx.txid() == sha256d(coinb1 + en1 + en2 + coinb2)


def test_coinbase_parts_that_are_not_a_coinbase_are_refused() -> None:
    raw = _SEED_TX.serialize_legacy()  # two inputs, not a coinbase
    for commit in (True, False):
        parts = CoinbaseParts(raw[:10], raw[22:], 4, 8, commit)
        assert parts.serialize(raw[10:14], raw[14:22]) == raw
        with pytest.raises(CoinbaseError, match="not a coinbase"):
            parts.transaction(raw[10:14], raw[14:22])


@pytest.mark.parametrize("bad", ["0", "zz", "00 11", " 00", "00\n", "0x00", "\u0660\u0660"])
def test_unhex_is_strict(bad: str) -> None:
    with pytest.raises(ChainDecodeError):
        unhex(bad)
    assert unhex("00Ff") == b"\x00\xff"

"""The coinbase transaction, split the way Stratum needs it: coinb1 | extranonce1 | extranonce2 | coinb2.

Layout of the legacy (txid) serialization that miners hash:

    version | 01 | 00…00 ffffffff | len(scriptSig) | BIP34 height push, aux flags,
    [extranonce1 | extranonce2], pool tag | sequence | outputs (payouts…, witness commitment) | locktime

coinb1 ends right before extranonce1, coinb2 starts right after extranonce2. The scriptSig is bounded to
2..100 bytes by consensus (Core's CheckTransaction, "bad-cb-length"), so the tag is what gives way: it is
truncated to fit and never the height or the extranonce. Miners never see the witness: the block's
coinbase gets its witness (the 32-byte reserved value, BIP141) only when the block is assembled, which
does not change the txid the miner hashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pithead.chain.errors import ChainError
from pithead.chain.hashes import sha256d
from pithead.chain.script import bip34_height_push
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.chain.varint import encode_bytes, encode_varint
from pithead.chain.witness import WITNESS_RESERVED_VALUE, commitment_script

MIN_EXTRANONCE_SIZE = 2
MAX_EXTRANONCE_SIZE = 8  # each side; miners (ESP-Miner, cgminer) assume extranonce2_size <= 8
MAX_COINBASE_SCRIPT = 100  # consensus: coinbase scriptSig length 2..100 (Core: "bad-cb-length")
MIN_COINBASE_SCRIPT = 2
MAX_MONEY = 21_000_000 * 100_000_000  # Core's MAX_MONEY (consensus/amount.h): no output may exceed it
_U32_MAX = 0xFFFFFFFF


class CoinbaseError(ChainError):
    """A coinbase that cannot be built as asked (sizes, values, too long a scriptSig)."""


@dataclass(frozen=True, slots=True)
class CoinbaseParts:
    """The two halves of a coinbase around the extranonce, plus what is needed to rebuild it."""

    coinb1: bytes
    coinb2: bytes
    extranonce1_size: int
    extranonce2_size: int
    has_witness_commitment: bool

    def serialize(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        """The coinbase's legacy serialization for these extranonces (what its txid hashes)."""
        if len(extranonce1) != self.extranonce1_size or len(extranonce2) != self.extranonce2_size:
            raise CoinbaseError(
                f"extranonce sizes {len(extranonce1)}+{len(extranonce2)} do not match "
                f"{self.extranonce1_size}+{self.extranonce2_size}"
            )
        return self.coinb1 + extranonce1 + extranonce2 + self.coinb2

    def txid(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        return sha256d(self.serialize(extranonce1, extranonce2))

    def transaction(self, extranonce1: bytes, extranonce2: bytes) -> Transaction:
        """The coinbase as it goes into the block: with the witness reserved value when committed."""
        tx = Transaction.parse(self.serialize(extranonce1, extranonce2))
        if not tx.is_coinbase():
            raise CoinbaseError("coinb1 + extranonces + coinb2 is not a coinbase transaction")
        if not self.has_witness_commitment:
            return tx
        (cb_in,) = tx.inputs
        with_witness = TxIn(cb_in.prevout, cb_in.script_sig, cb_in.sequence, (WITNESS_RESERVED_VALUE,))
        return Transaction(tx.version, (with_witness,), tx.outputs, tx.locktime)


def build_coinbase(
    *,
    height: int,
    outputs: Sequence[TxOut],
    extranonce1_size: int = 4,
    extranonce2_size: int = 8,
    tag: bytes = b"/pithead/",
    aux_flags: bytes = b"",
    witness_commitment: bytes | None = None,
    version: int = 2,
    sequence: int = 0xFFFFFFFF,
    locktime: int = 0,
) -> CoinbaseParts:
    """Build the Stratum split of a coinbase.

    `outputs` are the payouts (at least one; their values must sum to what the block may claim — the
    caller knows coinbasevalue). `witness_commitment` (32 bytes, or None) appends the BIP141 commitment
    output last. `aux_flags` is GBT's coinbaseaux.flags, placed after the height as Core's miner does.
    """
    return coinbase_layout(
        height=height, extranonce1_size=extranonce1_size, extranonce2_size=extranonce2_size, tag=tag,
        aux_flags=aux_flags, witness_commitment=witness_commitment, version=version, sequence=sequence,
        locktime=locktime,
    ).parts(outputs)


@dataclass(frozen=True, slots=True)
class CoinbaseLayout:
    """Everything of a coinbase but its payouts, serialized once: coinb1 whole, coinb2 around the payout
    outputs. Solo mode builds one coinbase per payout address from each template; with the layout, each
    is a few byte joins (`parts`) instead of a whole `build_coinbase`, and every one shares one coinb1."""

    coinb1: bytes
    coinb2_head: bytes  # the rest of the scriptSig (the tag) and the sequence
    trailing_outputs: bytes  # the outputs after the payouts (the witness commitment), serialized
    trailing_count: int
    locktime: bytes
    extranonce1_size: int
    extranonce2_size: int
    has_witness_commitment: bool

    def coinb2_around(self, value: int) -> tuple[bytes, bytes]:
        """coinb2 of a coinbase paying `value` to one script, around that script's length-prefixed bytes:
        (before, after). Unchecked: the caller checked `value` once (`parts` with the same value). Solo mode
        makes every miner's notify line from these."""
        return (self.coinb2_head + encode_varint(1 + self.trailing_count) + value.to_bytes(8, "little"),
                self.trailing_outputs + self.locktime)

    def parts(self, outputs: Sequence[TxOut]) -> CoinbaseParts:
        """The coinbase paying `outputs` (then the trailing outputs) in this layout."""
        if not outputs:
            raise CoinbaseError("a coinbase needs at least one payout output")
        total = 0
        serialized = [self.coinb2_head, encode_varint(len(outputs) + self.trailing_count)]
        for o in outputs:  # a plain loop: solo mode runs this once per miner on every new block
            if not 0 <= o.value <= MAX_MONEY:
                raise CoinbaseError("output value outside 0..MAX_MONEY")
            total += o.value
            serialized += (o.value.to_bytes(8, "little"), encode_varint(len(o.script_pubkey)), o.script_pubkey)
        if total > MAX_MONEY:
            raise CoinbaseError("outputs sum to more than MAX_MONEY")
        serialized += (self.trailing_outputs, self.locktime)
        return CoinbaseParts(self.coinb1, b"".join(serialized), self.extranonce1_size, self.extranonce2_size,
                             self.has_witness_commitment)


def coinbase_layout(
    *,
    height: int,
    extranonce1_size: int = 4,
    extranonce2_size: int = 8,
    tag: bytes = b"/pithead/",
    aux_flags: bytes = b"",
    witness_commitment: bytes | None = None,
    version: int = 2,
    sequence: int = 0xFFFFFFFF,
    locktime: int = 0,
) -> CoinbaseLayout:
    """The layout of a coinbase (see `build_coinbase` for the arguments), checked once; its `parts` pay."""
    for name, size in (("extranonce1", extranonce1_size), ("extranonce2", extranonce2_size)):
        if not MIN_EXTRANONCE_SIZE <= size <= MAX_EXTRANONCE_SIZE:
            raise CoinbaseError(f"{name} size {size} outside {MIN_EXTRANONCE_SIZE}..{MAX_EXTRANONCE_SIZE}")
    if height < 0:
        raise CoinbaseError(f"negative block height {height}")
    if not -(1 << 31) <= version <= 0x7FFFFFFF:
        raise CoinbaseError(f"transaction version {version} does not fit in an int32")
    if not 0 <= sequence <= _U32_MAX or not 0 <= locktime <= _U32_MAX:
        raise CoinbaseError("sequence and locktime must be unsigned 32-bit values")
    if witness_commitment is not None and len(witness_commitment) != 32:
        raise CoinbaseError("witness commitment must be 32 bytes")

    head = bip34_height_push(height) + aux_flags
    room = MAX_COINBASE_SCRIPT - len(head) - extranonce1_size - extranonce2_size
    if room < 0:
        raise CoinbaseError("height, aux flags and extranonces do not fit in a 100-byte coinbase scriptSig")
    tag = tag[:room]
    script_len = len(head) + extranonce1_size + extranonce2_size + len(tag)
    if script_len < MIN_COINBASE_SCRIPT:  # pragma: no cover - extranonces alone are >= 4 bytes
        raise CoinbaseError("coinbase scriptSig too short")

    trailing = [] if witness_commitment is None else [TxOut(0, commitment_script(witness_commitment))]
    coinb1 = b"".join(
        [
            version.to_bytes(4, "little", signed=True),
            b"\x01",
            bytes(32),
            b"\xff\xff\xff\xff",
            encode_varint(script_len),
            head,
        ]
    )
    return CoinbaseLayout(
        coinb1=coinb1,
        coinb2_head=tag + sequence.to_bytes(4, "little"),
        trailing_outputs=b"".join(o.value.to_bytes(8, "little", signed=True) + encode_bytes(o.script_pubkey)
                                  for o in trailing),
        trailing_count=len(trailing),
        locktime=locktime.to_bytes(4, "little"),
        extranonce1_size=extranonce1_size,
        extranonce2_size=extranonce2_size,
        has_witness_commitment=witness_commitment is not None,
    )


def split_payouts(total: int, weights: Sequence[tuple[bytes, int]]) -> list[TxOut]:
    """Split `total` satoshis over scripts by integer weights; the remainder goes to the first output so
    the outputs sum exactly to `total`."""
    if total < 0:
        raise CoinbaseError("negative total")
    wsum = sum(w for _, w in weights)
    if not weights or wsum <= 0 or any(w < 0 for _, w in weights):
        raise CoinbaseError("payout weights must be non-negative with a positive sum")
    values = [total * w // wsum for _, w in weights]
    values[0] += total - sum(values)
    return [TxOut(v, s) for (s, _), v in zip(weights, values, strict=True)]


COINBASE_PREVOUT = OutPoint(bytes(32), 0xFFFFFFFF)

"""Transactions: parse and serialize with and without witness data (BIP144), txid and wtxid.

A transaction is a frozen value; txid/wtxid are computed from its serialization on demand (never cached on
a mutable object). The BIP144 extended format is marker 0x00, flag 0x01 after the version, and one witness
stack per input after the outputs; txid hashes the legacy serialization, wtxid the full one (and the
coinbase's wtxid is defined as 32 zero bytes for the witness commitment, see witness.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pithead.chain.errors import ChainDecodeError
from pithead.chain.hashes import display_hex, sha256d, unhex
from pithead.chain.varint import Reader, encode_bytes, encode_varint

MAX_TX_IO = 200_000  # more inputs/outputs than fit in a 4 MWU block: a corrupt length, not a transaction
NULL_OUTPOINT_HASH = bytes(32)
WITNESS_SCALE_FACTOR = 4  # BIP141


@dataclass(frozen=True, slots=True)
class OutPoint:
    txid: bytes  # internal order
    index: int

    def is_null(self) -> bool:
        return self.txid == NULL_OUTPOINT_HASH and self.index == 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class TxIn:
    prevout: OutPoint
    script_sig: bytes
    sequence: int = 0xFFFFFFFF
    witness: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int  # satoshis
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class Transaction:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0

    # --- serialization ---
    def has_witness(self) -> bool:
        return any(i.witness for i in self.inputs)

    def serialize(self, include_witness: bool = True) -> bytes:
        witness = include_witness and self.has_witness()
        parts = [self.version.to_bytes(4, "little", signed=True)]
        if witness:
            parts.append(b"\x00\x01")
        parts.append(encode_varint(len(self.inputs)))
        for i in self.inputs:
            parts += [i.prevout.txid, i.prevout.index.to_bytes(4, "little"), encode_bytes(i.script_sig),
                      i.sequence.to_bytes(4, "little")]
        parts.append(encode_varint(len(self.outputs)))
        for o in self.outputs:
            parts += [o.value.to_bytes(8, "little", signed=True), encode_bytes(o.script_pubkey)]
        if witness:
            for i in self.inputs:
                parts.append(encode_varint(len(i.witness)))
                parts += [encode_bytes(item) for item in i.witness]
        parts.append(self.locktime.to_bytes(4, "little"))
        return b"".join(parts)

    def serialize_legacy(self) -> bytes:
        return self.serialize(include_witness=False)

    # --- identity ---
    def txid(self) -> bytes:
        """Internal-order txid (hash of the serialization without witness)."""
        return sha256d(self.serialize_legacy())

    def wtxid(self) -> bytes:
        return sha256d(self.serialize(include_witness=True))

    def txid_hex(self) -> str:
        return display_hex(self.txid())

    def wtxid_hex(self) -> str:
        return display_hex(self.wtxid())

    # --- sizes (BIP141) ---
    def base_size(self) -> int:
        return len(self.serialize_legacy())

    def total_size(self) -> int:
        return len(self.serialize())

    def weight(self) -> int:
        return self.base_size() * (WITNESS_SCALE_FACTOR - 1) + self.total_size()

    def vsize(self) -> int:
        return (self.weight() + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null()

    # --- parsing ---
    @classmethod
    def parse(cls, data: bytes) -> Transaction:
        r = Reader(data)
        tx = cls.read(r)
        r.expect_end("transaction")
        return tx

    @classmethod
    def from_hex(cls, s: str) -> Transaction:

        return cls.parse(unhex(s, "transaction"))

    @classmethod
    def read(cls, r: Reader) -> Transaction:
        version = r.i32()
        n_in = r.varint()
        flag = 0
        if n_in == 0:
            # BIP144: a zero input count here is the segwit marker; the next byte is the flag.
            flag = r.u8()
            if flag != 0x01:
                raise ChainDecodeError(f"unknown transaction flag {flag:#x}")
            n_in = r.varint()
            if n_in == 0:
                raise ChainDecodeError("transaction has no inputs")
        if n_in > MAX_TX_IO:
            raise ChainDecodeError(f"too many inputs ({n_in})")
        ins = []
        for _ in range(n_in):
            txid = r.read(32)
            index = r.u32()
            script_sig = r.var_bytes(limit=len(r.data))
            seq = r.u32()
            ins.append((OutPoint(txid, index), script_sig, seq))
        n_out = r.varint()
        if n_out > MAX_TX_IO:
            raise ChainDecodeError(f"too many outputs ({n_out})")
        outs = []
        for _ in range(n_out):
            value = r.i64()
            outs.append(TxOut(value, r.var_bytes(limit=len(r.data))))
        witnesses: list[tuple[bytes, ...]] = [() for _ in ins]
        if flag:
            for k in range(n_in):
                n_items = r.varint()
                if n_items > len(r.data):
                    raise ChainDecodeError("witness stack larger than the data")
                witnesses[k] = tuple(r.var_bytes(limit=len(r.data)) for _ in range(n_items))
            if not any(witnesses):
                # Core: "Superfluous witness record" — the extended format with all-empty witnesses.
                raise ChainDecodeError("superfluous witness record")
        locktime = r.u32()
        inputs = tuple(TxIn(op, ss, seq, w) for (op, ss, seq), w in zip(ins, witnesses, strict=True))
        return cls(version, inputs, tuple(outs), locktime)

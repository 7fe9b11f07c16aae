"""A whole block: header plus transactions; parse, serialize (for submitblock), merkle checks, weight."""

from __future__ import annotations

from dataclasses import dataclass

from pithead.chain.errors import ChainDecodeError
from pithead.chain.hashes import unhex
from pithead.chain.header import HEADER_SIZE, BlockHeader
from pithead.chain.merkle import merkle_root_mutated
from pithead.chain.tx import Transaction
from pithead.chain.varint import Reader, encode_varint

MAX_BLOCK_WEIGHT = 4_000_000  # BIP141 / Core consensus.h
MAX_BLOCK_TXS = MAX_BLOCK_WEIGHT // 60  # no transaction weighs under 60 WU: a larger count is corrupt


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...]

    def serialize(self, include_witness: bool = True) -> bytes:
        return b"".join(
            [self.header.serialize(), encode_varint(len(self.txs))]
            + [tx.serialize(include_witness) for tx in self.txs]
        )

    def hex(self) -> str:
        """The hex that `submitblock` takes."""
        return self.serialize().hex()

    def hash(self) -> bytes:
        return self.header.hash()

    def hash_hex(self) -> str:
        return self.header.hash_hex()

    def computed_merkle_root(self) -> tuple[bytes, bool]:
        """(root over txids, mutated) — see merkle.py on CVE-2012-2459."""
        return merkle_root_mutated([tx.txid() for tx in self.txs])

    def weight(self) -> int:
        base = len(self.serialize(include_witness=False))
        total = len(self.serialize(include_witness=True))
        return base * 3 + total

    @classmethod
    def parse(cls, data: bytes) -> Block:
        if len(data) < HEADER_SIZE + 1:
            raise ChainDecodeError("block shorter than a header and a transaction count")
        header = BlockHeader.parse(data[:HEADER_SIZE])
        r = Reader(data, HEADER_SIZE)
        n = r.varint()
        if n == 0 or n > MAX_BLOCK_TXS:
            raise ChainDecodeError(f"implausible transaction count {n}")
        txs = tuple(Transaction.read(r) for _ in range(n))
        r.expect_end("block")
        return cls(header, txs)

    @classmethod
    def from_hex(cls, s: str) -> Block:
        return cls.parse(unhex(s, "block"))

"""The 80-byte block header: version, prev hash, merkle root, time, bits, nonce (all little-endian).

Hashes inside are internal order (see hashes.py). The header's hash is sha256d of the 80 bytes; it meets a
target when, read as a little-endian 256-bit integer, it is <= the target (Core's CheckProofOfWork uses
`UintToArith256(hash) > bnTarget` to reject, so equality passes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pithead.chain.compact import bits_to_target
from pithead.chain.errors import ChainDecodeError
from pithead.chain.hashes import display_hex, hash_to_int, sha256d, unhex

HEADER_SIZE = 80
_FMT = struct.Struct("<i32s32sIII")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    prev_hash: bytes  # internal order
    merkle_root: bytes  # internal order
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return _FMT.pack(self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce)

    @classmethod
    def parse(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE:
            raise ChainDecodeError(f"header must be {HEADER_SIZE} bytes, got {len(data)}")
        return cls(*_FMT.unpack(data))

    @classmethod
    def from_hex(cls, s: str) -> BlockHeader:
        return cls.parse(unhex(s, "header"))

    def hash(self) -> bytes:
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        return display_hex(self.hash())

    def target(self) -> int:
        return bits_to_target(self.bits)

    def meets_target(self, target: int) -> bool:
        return hash_to_int(self.hash()) <= target

    def check_pow(self) -> bool:
        """Proof of work against the header's own nBits (invalid nBits → False)."""
        try:
            return self.meets_target(self.target())
        except ValueError:
            return False

"""The 80-byte block header: version, prev hash, merkle root, time, bits, nonce (all little-endian).

Hashes inside are internal order (see hashes.py). The header's hash is sha256d of the 80 bytes; it meets a
target when, read as a little-endian 256-bit integer, it is <= the target (Core's CheckProofOfWork uses
`UintToArith256(hash) > bnTarget` to reject, so equality passes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pithead.chain.compact import bits_to_target
from pithead.chain.errors import ChainDecodeError, ChainError
from pithead.chain.hashes import display_hex, hash_to_int, sha256d, unhex

HEADER_SIZE = 80
_FMT = struct.Struct("<I32s32sIII")
_I32_MIN = -(1 << 31)
_U32_MAX = 0xFFFFFFFF


def hash_meets_target(block_hash: bytes, target: int) -> bool:
    """Proof-of-work comparison: the internal-order hash read as a little-endian 256-bit integer is <= the
    target (Core's CheckProofOfWork rejects only `hash > target`, so a hash equal to the target passes)."""
    return hash_to_int(block_hash) <= target


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    prev_hash: bytes  # internal order
    merkle_root: bytes  # internal order
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        """The 80 bytes that are hashed. nVersion is Core's int32, but GBT and Stratum carry it as an
        unsigned 32-bit value, so both ranges are accepted and written as the same 4 bytes (`parse` gives
        the signed form back)."""
        if not _I32_MIN <= self.version <= _U32_MAX:
            raise ChainError(f"header version {self.version!r} does not fit in 32 bits")
        if len(self.prev_hash) != 32 or len(self.merkle_root) != 32:  # struct's "32s" would pad silently
            raise ChainError("header prev_hash and merkle_root must be 32 bytes each")
        try:
            return _FMT.pack(
                self.version & _U32_MAX, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
            )
        except struct.error as exc:
            raise ChainError(f"header field out of range: {exc}") from exc

    @classmethod
    def parse(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE:
            raise ChainDecodeError(f"header must be {HEADER_SIZE} bytes, got {len(data)}")
        version, prev, root, time, bits, nonce = _FMT.unpack(data)
        if version > 0x7FFFFFFF:  # nVersion is an int32 (Core: CBlockHeader::nVersion)
            version -= 1 << 32
        return cls(version, prev, root, time, bits, nonce)

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
        return hash_meets_target(self.hash(), target)

    def check_pow(self) -> bool:
        """Proof of work against the header's own nBits (invalid nBits → False)."""
        try:
            return self.meets_target(self.target())
        except ValueError:
            return False

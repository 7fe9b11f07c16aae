"""CompactSize integers ("varint" in the serialization of transactions and blocks) and a bounded reader.

CompactSize: < 0xfd one byte; 0xfd + u16; 0xfe + u32; 0xff + u64, little-endian. Non-canonical encodings
(a value encoded longer than needed) are rejected on read, as Bitcoin Core does ("non-canonical
ReadCompactSize()").
"""

from __future__ import annotations

from pithead.chain.errors import ChainDecodeError


def encode_varint(n: int) -> bytes:
    if n < 0:
        raise ChainDecodeError("varint cannot be negative")
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    if n <= 0xFFFFFFFFFFFFFFFF:
        return b"\xff" + n.to_bytes(8, "little")
    raise ChainDecodeError("varint too large")


def encode_bytes(b: bytes) -> bytes:
    """Length-prefixed byte string (varint length + bytes)."""
    return encode_varint(len(b)) + b


class Reader:
    """A cursor over bytes whose every read is bounds-checked and raises ChainDecodeError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = memoryview(data) if not isinstance(data, memoryview) else data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ChainDecodeError(f"truncated: need {n} bytes at offset {self.pos}, have {self.remaining()}")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def peek(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ChainDecodeError(f"truncated at offset {self.pos}")
        return bytes(self.data[self.pos : self.pos + n])

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.read(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "little")

    def i32(self) -> int:
        return int.from_bytes(self.read(4), "little", signed=True)

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "little")

    def i64(self) -> int:
        return int.from_bytes(self.read(8), "little", signed=True)

    def varint(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        if first == 0xFD:
            n, least = self.u16(), 0xFD
        elif first == 0xFE:
            n, least = self.u32(), 0x10000
        else:
            n, least = self.u64(), 0x100000000
        if n < least:
            raise ChainDecodeError("non-canonical varint")
        return n

    def var_bytes(self, limit: int | None = None) -> bytes:
        n = self.varint()
        if limit is not None and n > limit:
            raise ChainDecodeError(f"length {n} exceeds limit {limit}")
        return self.read(n)

    def expect_end(self, what: str) -> None:
        if self.remaining():
            raise ChainDecodeError(f"{what}: {self.remaining()} trailing bytes")


def decode_varint(data: bytes) -> tuple[int, int]:
    """(value, bytes consumed)."""
    r = Reader(data)
    return r.varint(), r.pos

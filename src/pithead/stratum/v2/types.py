"""Stratum V2's data types (spec `03-Protocol-Overview.md` §3.1, SRI `binary-sv2`): one codec per type.

What it is: a `Codec` per wire type with its length rules, reading from a byte string at an offset and
refusing anything short, over-long or out of range with a `DecodeError` (never reading past the end of
what it was given), and encoding a value or raising `EncodeError`:

    U8 U16 U24 U32 U64   little-endian unsigned integers (int)
    F32                  IEEE-754 single, little-endian (float; `nominal_hash_rate`)
    BOOL                 one byte; only bit 0 means anything, bits 1-7 are ignored on receipt (bool)
    U256 PUBKEY          32 raw bytes (bytes): hashes as SHA-256 gives them (header byte order, not the
                         RPC display order), targets as little-endian integers (`u256_from_int`)
    SIGNATURE            64 raw bytes (a BIP340 signature)
    STR0_255             U8 length + UTF-8, no NUL terminator (str)
    B0_32 B0_255         U8 length + at most 32 / 255 bytes (bytes)
    B0_64K B0_16M        U16 / U24 length + at most 65535 / 2^24-1 bytes (bytes)
    SEQ0_255[T]          U8 count + elements (tuple)
    SEQ0_64K[T]          U16 count + elements (tuple)
    OPTION[T]            a count byte of 0 or 1, then the value when 1 (value or None)

Each type also exists as an `Annotated` alias (`U32 = Annotated[int, u32]`), so a message is declared as
a dataclass whose field types *are* the spec's table (`channel_id: U32`) and `messages.base` finds each
field's codec in its annotation. Fixed-size codecs carry a `struct` format, so a message made only of
them encodes and decodes with one precompiled `struct.Struct`.

What it is not: framing (the 6-byte header is `framing`), TLV fields (`tlv`), or meaning: a U256 is 32
bytes here; whether it is a target or a hash is the message's business.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Generic, TypeVar

from pithead.stratum.v2.errors import DecodeError, EncodeError

T = TypeVar("T")

U24_MAX = (1 << 24) - 1
"""Largest U24: the frame length and B0_16M length field are three bytes."""


class Codec(Generic[T]):
    """One SV2 wire type: `read(data, pos) -> (value, next_pos)` and `encode(value) -> bytes`.

    `size` is the encoded size when fixed (else None); `fmt` is the `struct` format of a fixed-size type
    whose `struct` value is the Python value as is (ints, floats, bytes of exact length), else None."""

    __slots__ = ("fmt", "name", "size")

    def __init__(self, name: str, size: int | None, fmt: str | None) -> None:
        self.name = name
        self.size = size
        self.fmt = fmt

    def read(self, data: bytes, pos: int) -> tuple[T, int]:
        raise NotImplementedError

    def encode(self, value: T) -> bytes:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


def _short(name: str, need: int, have: int) -> DecodeError:
    return DecodeError(f"{name} needs {need} bytes, {max(have, 0)} left")


class UInt(Codec[int]):
    """U8/U16/U32/U64: little-endian unsigned integers of a `struct` format."""

    __slots__ = ("_struct", "maximum")

    def __init__(self, name: str, fmt: str) -> None:
        self._struct = struct.Struct("<" + fmt)
        super().__init__(name, self._struct.size, fmt)
        self.maximum = (1 << (8 * self._struct.size)) - 1

    def read(self, data: bytes, pos: int) -> tuple[int, int]:
        end = pos + self._struct.size
        if end > len(data):
            raise _short(self.name, self._struct.size, len(data) - pos)
        return self._struct.unpack_from(data, pos)[0], end

    def encode(self, value: int) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= self.maximum:
            raise EncodeError(f"{value!r} is not a {self.name} (0..{self.maximum})")
        return self._struct.pack(value)


class U24Codec(Codec[int]):
    """U24: three bytes, little-endian (no `struct` format has three bytes)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("U24", 3, None)

    def read(self, data: bytes, pos: int) -> tuple[int, int]:
        end = pos + 3
        if end > len(data):
            raise _short(self.name, 3, len(data) - pos)
        return int.from_bytes(data[pos:end], "little"), end

    def encode(self, value: int) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U24_MAX:
            raise EncodeError(f"{value!r} is not a U24 (0..{U24_MAX})")
        return value.to_bytes(3, "little")


class F32Codec(Codec[float]):
    """F32: IEEE-754 single precision, little-endian. Encoding rounds to the nearest single."""

    __slots__ = ()
    _struct = struct.Struct("<f")

    def __init__(self) -> None:
        super().__init__("F32", 4, "f")

    def read(self, data: bytes, pos: int) -> tuple[float, int]:
        end = pos + 4
        if end > len(data):
            raise _short(self.name, 4, len(data) - pos)
        return self._struct.unpack_from(data, pos)[0], end

    def encode(self, value: float) -> bytes:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise EncodeError(f"{value!r} is not an F32")
        try:
            return self._struct.pack(value)
        except OverflowError as exc:  # beyond the largest single
            raise EncodeError(f"{value!r} does not fit an F32") from exc


class BoolCodec(Codec[bool]):
    """BOOL: one byte; only bit 0 is meaningful and receivers MUST ignore bits 1-7 (spec §3.1)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("BOOL", 1, None)

    def read(self, data: bytes, pos: int) -> tuple[bool, int]:
        if pos >= len(data):
            raise _short(self.name, 1, len(data) - pos)
        return bool(data[pos] & 1), pos + 1

    def encode(self, value: bool) -> bytes:
        if type(value) is not bool:
            raise EncodeError(f"{value!r} is not a BOOL")
        return b"\x01" if value else b"\x00"


class FixedBytes(Codec[bytes]):
    """U256, PUBKEY, SIGNATURE: exactly `size` raw bytes."""

    __slots__ = ()

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name, size, f"{size}s")

    def read(self, data: bytes, pos: int) -> tuple[bytes, int]:
        size = self.size
        assert size is not None
        end = pos + size
        if end > len(data):
            raise _short(self.name, size, len(data) - pos)
        return bytes(data[pos:end]), end

    def encode(self, value: bytes) -> bytes:
        if not isinstance(value, bytes | bytearray) or len(value) != self.size:
            raise EncodeError(f"a {self.name} is {self.size} bytes, got {_describe(value)}")
        return bytes(value)


class Prefixed(Codec[bytes]):
    """B0_32, B0_255, B0_64K, B0_16M: a little-endian length of `prefix` bytes, at most `maximum`."""

    __slots__ = ("maximum", "prefix")

    def __init__(self, name: str, prefix: int, maximum: int) -> None:
        super().__init__(name, None, None)
        self.prefix = prefix
        self.maximum = maximum

    def read(self, data: bytes, pos: int) -> tuple[bytes, int]:
        start = pos + self.prefix
        if start > len(data):
            raise _short(f"{self.name} length", self.prefix, len(data) - pos)
        length = int.from_bytes(data[pos:start], "little")
        if length > self.maximum:
            raise DecodeError(f"{self.name} length {length} > {self.maximum}")
        end = start + length
        if end > len(data):
            raise _short(self.name, length, len(data) - start)
        return bytes(data[start:end]), end

    def encode(self, value: bytes) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(f"a {self.name} is bytes, got {type(value).__name__}")
        if len(value) > self.maximum:
            raise EncodeError(f"{self.name} length {len(value)} > {self.maximum}")
        return len(value).to_bytes(self.prefix, "little") + bytes(value)


class Str0To255(Codec[str]):
    """STR0_255: U8 byte length, then UTF-8 (spec: no NUL terminator; UTF-8 recommended, so required
    here: a string that does not decode is refused rather than guessed at)."""

    __slots__ = ()

    MAXIMUM = 255

    def __init__(self) -> None:
        super().__init__("STR0_255", None, None)

    def read(self, data: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(data):
            raise _short("STR0_255 length", 1, len(data) - pos)
        length = data[pos]
        end = pos + 1 + length
        if end > len(data):
            raise _short(self.name, length, len(data) - pos - 1)
        try:
            return bytes(data[pos + 1:end]).decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise DecodeError(f"STR0_255 is not UTF-8 ({exc.reason} at byte {exc.start})") from None

    def encode(self, value: str) -> bytes:
        if not isinstance(value, str):
            raise EncodeError(f"a STR0_255 is a str, got {type(value).__name__}")
        raw = value.encode("utf-8")
        if len(raw) > self.MAXIMUM:
            raise EncodeError(f"STR0_255 of {len(raw)} bytes > {self.MAXIMUM}")
        return bytes((len(raw),)) + raw


class Seq(Codec[tuple[Any, ...]]):
    """SEQ0_255[T] / SEQ0_64K[T]: a little-endian element count of `prefix` bytes, then the elements.

    A count is checked against the bytes left before anything is allocated (SRI's vector: a SEQ0_64K
    header of 0xffff with nothing after it must not make the reader build 65535 of anything)."""

    __slots__ = ("element", "maximum", "prefix")

    def __init__(self, name: str, prefix: int, element: Codec[Any]) -> None:
        super().__init__(f"{name}[{element.name}]", None, None)
        self.prefix = prefix
        self.maximum = (1 << (8 * prefix)) - 1
        self.element = element

    def read(self, data: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
        start = pos + self.prefix
        if start > len(data):
            raise _short(f"{self.name} count", self.prefix, len(data) - pos)
        count = int.from_bytes(data[pos:start], "little")
        element = self.element
        size = element.size
        if size is not None:
            end = start + count * size
            if end > len(data):
                raise DecodeError(f"{self.name} of {count} needs {count * size} bytes, "
                                  f"{len(data) - start} left")
            if isinstance(element, FixedBytes):  # the common case (merkle paths): plain slices
                return tuple(bytes(data[i:i + size]) for i in range(start, end, size)), end
        elif count > len(data) - start:  # every element is at least one byte
            raise DecodeError(f"{self.name} of {count} cannot fit in {len(data) - start} bytes")
        items = []
        pos = start
        for _ in range(count):
            item, pos = element.read(data, pos)
            items.append(item)
        return tuple(items), pos

    def encode(self, value: tuple[Any, ...]) -> bytes:
        if not isinstance(value, tuple | list):
            raise EncodeError(f"a {self.name} is a tuple, got {type(value).__name__}")
        if len(value) > self.maximum:
            raise EncodeError(f"{self.name} of {len(value)} elements > {self.maximum}")
        return len(value).to_bytes(self.prefix, "little") + b"".join(self.element.encode(v) for v in value)


class Option(Codec[Any]):
    """OPTION[T] (= SEQ0_1[T]): a count byte 0 (None) or 1 followed by the value."""

    __slots__ = ("element",)

    def __init__(self, element: Codec[Any]) -> None:
        super().__init__(f"OPTION[{element.name}]", None, None)
        self.element = element

    def read(self, data: bytes, pos: int) -> tuple[Any, int]:
        if pos >= len(data):
            raise _short(f"{self.name} count", 1, len(data) - pos)
        flag = data[pos]
        if flag == 0:
            return None, pos + 1
        if flag != 1:
            raise DecodeError(f"{self.name} count {flag} > 1")
        return self.element.read(data, pos + 1)

    def encode(self, value: Any) -> bytes:
        return b"\x00" if value is None else b"\x01" + self.element.encode(value)


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return type(value).__name__


# --- the codecs -----------------------------------------------------------------------------------------

u8 = UInt("U8", "B")
u16 = UInt("U16", "H")
u24 = U24Codec()
u32 = UInt("U32", "I")
u64 = UInt("U64", "Q")
f32 = F32Codec()
boolean = BoolCodec()
u256 = FixedBytes("U256", 32)
pubkey = FixedBytes("PUBKEY", 32)
signature = FixedBytes("SIGNATURE", 64)
str0_255 = Str0To255()
b0_32 = Prefixed("B0_32", 1, 32)
b0_255 = Prefixed("B0_255", 1, 255)
b0_64k = Prefixed("B0_64K", 2, 0xFFFF)
b0_16m = Prefixed("B0_16M", 3, U24_MAX)


def seq0_255(element: Codec[Any]) -> Seq:
    """SEQ0_255[element]."""
    return Seq("SEQ0_255", 1, element)


def seq0_64k(element: Codec[Any]) -> Seq:
    """SEQ0_64K[element]."""
    return Seq("SEQ0_64K", 2, element)


def option(element: Codec[Any]) -> Option:
    """OPTION[element]."""
    return Option(element)


# --- the field types messages are declared with ---------------------------------------------------------

U8 = Annotated[int, u8]
U16 = Annotated[int, u16]
U24 = Annotated[int, u24]
U32 = Annotated[int, u32]
U64 = Annotated[int, u64]
F32 = Annotated[float, f32]
BOOL = Annotated[bool, boolean]
U256 = Annotated[bytes, u256]
PUBKEY = Annotated[bytes, pubkey]
SIGNATURE = Annotated[bytes, signature]
STR0_255 = Annotated[str, str0_255]
B0_32 = Annotated[bytes, b0_32]
B0_255 = Annotated[bytes, b0_255]
B0_64K = Annotated[bytes, b0_64k]
B0_16M = Annotated[bytes, b0_16m]
SEQ0_255_U256 = Annotated[tuple[bytes, ...], seq0_255(u256)]
SEQ0_64K_U16 = Annotated[tuple[int, ...], seq0_64k(u16)]
SEQ0_64K_U32 = Annotated[tuple[int, ...], seq0_64k(u32)]
OPTION_U32 = Annotated[int | None, option(u32)]


# --- U256 as a number -------------------------------------------------------------------------------------


def u256_from_int(value: int) -> bytes:
    """A target (or any 256-bit number) as a U256: little-endian, byte 0 least significant. The
    difficulty-1 target 0x00000000FFFF0000…00 has its two 0xff bytes at offsets 26-27 (a pool that wrote
    targets big-endian made spec-conformant miners submit nothing: ESP-Miner #1758)."""
    return value.to_bytes(32, "little")


def int_from_u256(value: bytes) -> int:
    """A U256 read as a little-endian number (a target)."""
    return int.from_bytes(value, "little")

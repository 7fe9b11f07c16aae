"""Stratum V2 frames (spec `03-Protocol-Overview.md` §3.2; SRI `framing-sv2/src/header.rs`), sans-IO.

What it is: the 6-byte frame header — `extension_type U16 | msg_type U8 | msg_length U24`, all
little-endian, `msg_length` counting the payload only — with the **channel-message bit**, the most
significant bit of the U16 `extension_type` (mask 0x8000; on the wire bit 7 of the *second* byte, so a
NewMiningJob header starts `00 80 15`; the spec's prose calls it both "least" and "most significant",
both implementations use 0x8000). `FrameHeader` keeps the extension id (bit cleared) and the bit apart,
as extension lookup ignores the bit. `Frame` is a header's fields with the payload; `FrameReader` is fed
the bytes of an unencrypted stream and yields whole frames, refusing a header that announces more than
its bound before buffering any of it.

What it is not: encryption (`noise.NoiseTransport` reads encrypted frames and yields the same `Frame`s)
or the meaning of a payload (`messages`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pithead.stratum.v2.errors import EncodeError, FramingError
from pithead.stratum.v2.types import U24_MAX

HEADER_SIZE = 6
"""extension_type U16 + msg_type U8 + msg_length U24 (SRI `SV2_FRAME_HEADER_SIZE`)."""

CHANNEL_MSG_BIT = 0x8000
"""The channel-message bit of `extension_type` (SRI `Header::CHANNEL_MSG_MASK`)."""

EXTENSION_MASK = 0x7FFF
"""The extension id: `extension_type` without the channel-message bit."""

MAX_PAYLOAD = U24_MAX
"""The largest payload a header can announce (msg_length is a U24)."""

MAX_PAYLOAD_FROM_CLIENT = 128 * 1024
"""Largest Mining payload a server accepts from a client. The biggest client message is
SetCustomMiningJob: B0_255 token + B0_255 prefix + B0_64K outputs + SEQ0_255[U256] path + 40 bytes of
integers ≈ 74 KiB; a share is 24-60 bytes. 128 KiB bounds what one connection can make us buffer."""

MAX_PAYLOAD_FROM_SERVER = 256 * 1024
"""Largest Mining payload a client accepts from a server. The biggest is NewExtendedMiningJob: two
B0_64K coinbase halves + a SEQ0_255[U256] merkle path + 14 bytes ≈ 136 KiB. (Template Distribution's
RequestTransactionData.Success carries whole blocks; its step passes its own bound.)"""

# U16 extension_type, U8 msg_type, then the U24 length as its low U16 and high U8 (struct has no 3-byte
# integer): one precompiled pack/unpack for the hot path.
_HEADER = struct.Struct("<HBHB")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A decoded 6-byte header. `extension_type` is the extension id (0 for the core protocols), without
    the channel-message bit, which is `channel_msg`."""

    extension_type: int
    msg_type: int
    msg_length: int
    channel_msg: bool = False

    def encode(self) -> bytes:
        return encode_header(self.extension_type, self.channel_msg, self.msg_type, self.msg_length)

    @classmethod
    def decode(cls, data: bytes) -> FrameHeader:
        """Exactly 6 bytes to a header."""
        if len(data) != HEADER_SIZE:
            raise FramingError(f"a frame header is {HEADER_SIZE} bytes, got {len(data)}")
        ext, msg_type, low, high = _HEADER.unpack(data)
        return cls(ext & EXTENSION_MASK, msg_type, low | (high << 16), bool(ext & CHANNEL_MSG_BIT))


def encode_header(extension_type: int, channel_msg: bool, msg_type: int, msg_length: int) -> bytes:
    """The 6 header bytes for these fields (`extension_type` without the channel-message bit)."""
    if not 0 <= extension_type <= EXTENSION_MASK:
        raise EncodeError(f"extension_type 0x{extension_type:x} > 0x7fff (bit 15 is the channel-message bit)")
    if not 0 <= msg_type <= 0xFF:
        raise EncodeError(f"msg_type {msg_type} is not a U8")
    if not 0 <= msg_length <= MAX_PAYLOAD:
        raise EncodeError(f"payload of {msg_length} bytes > {MAX_PAYLOAD} (msg_length is a U24)")
    ext = extension_type | CHANNEL_MSG_BIT if channel_msg else extension_type
    return _HEADER.pack(ext, msg_type, msg_length & 0xFFFF, msg_length >> 16)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: the header's fields and the payload (`msg_length` is `len(payload)`)."""

    extension_type: int
    msg_type: int
    payload: bytes
    channel_msg: bool = False

    def encode(self) -> bytes:
        return encode_header(self.extension_type, self.channel_msg, self.msg_type, len(self.payload)) \
            + self.payload


class FrameReader:
    """Unencrypted SV2 stream → frames, bounded (sans-IO: feed bytes, get frames).

    A header announcing more than `max_payload` raises `FramingError` at once, before any of the payload
    is buffered; so the reader never holds more than one header and one bounded payload. After an error
    the stream is out of step and the reader refuses further input."""

    __slots__ = ("_buffer", "_failed", "max_payload")

    def __init__(self, max_payload: int) -> None:
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} outside 0..{MAX_PAYLOAD}")
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return every frame they complete (possibly none)."""
        if self._failed:
            raise FramingError("the stream is out of step after an earlier framing error")
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            ext, msg_type, low, high = _HEADER.unpack_from(buf, pos)
            length = low | (high << 16)
            if length > self.max_payload:
                self._failed = True
                raise FramingError(f"frame of {length} bytes (type 0x{msg_type:02x}) > the bound of "
                                   f"{self.max_payload}")
            start = pos + HEADER_SIZE
            if end - start < length:
                break
            frames.append(Frame(ext & EXTENSION_MASK, msg_type, bytes(buf[start:start + length]),
                                bool(ext & CHANNEL_MSG_BIT)))
            pos = start + length
        if pos:
            del buf[:pos]
        return frames

    def close(self) -> None:
        """The stream ended: anything still buffered is a frame cut off."""
        if self._buffer:
            held = len(self._buffer)
            self._buffer.clear()
            raise FramingError(f"stream ended inside a frame ({held} bytes held)")

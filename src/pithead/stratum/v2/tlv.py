"""Stratum V2 TLV extension fields (spec `03-Protocol-Overview.md` §3.4.3; SRI `parsers-sv2/src/tlv`).

What it is: the fields an extension adds to another message, appended after its base payload and
counted in the frame's `msg_length`:

    extension_type U16 | field_type U8 | length U16 | value (length bytes)

all **little-endian**, as SRI encodes and tests them (`02 00 01 04 00 …` for extension 0x0002, field 1,
length 4). The spec's worked example prints the integers big-endian (`00 02 01 00 0A`); we follow SRI,
the implementation every SV2 peer talks to, and record the discrepancy here. `Tlv` is one field;
`encode_tlvs`/`decode_tlvs` a list. Decoding is strict: a trailing partial header or a value cut short
is a `DecodeError` (SRI's iterator stops quietly at fewer than 5 trailing bytes; no encoder ever writes
that, so refusing it costs no interop and keeps "nothing unread"). TLVs of extensions that were not
negotiated are dropped by `messages.registry.decode_frame`, as the spec says (ignored, not an error).

Extension 0x0002 (worker-specific hashrate tracking) defines one field, `user_identity` (field 0x01, at
most 32 bytes of UTF-8, unpadded), appended to every SubmitSharesExtended once negotiated:
`user_identity_tlv` and `find_user_identity`.

What it is not: extension negotiation (RequestExtensions, extension 0x0001, is a message:
`messages.extensions`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pithead.stratum.v2.errors import DecodeError, EncodeError

TLV_HEADER_SIZE = 5
"""extension_type U16 + field_type U8 + length U16."""

MAX_TLV_VALUE = 0xFFFF
"""A TLV's length field is a U16."""

EXTENSION_WORKER_HASHRATE = 0x0002
"""Worker-specific hashrate tracking (`extensions/0x0002-worker-specific-hashrate-tracking.md`)."""

FIELD_USER_IDENTITY = 0x01
"""Extension 0x0002's one field: the worker behind a share of an aggregated extended channel."""

MAX_USER_IDENTITY = 32
"""user_identity is at most 32 bytes (SRI `MAX_USER_IDENTITY_LENGTH`); longer names are truncated by
senders (the translator), refused by our decoder."""

_HEADER = struct.Struct("<HBH")


@dataclass(frozen=True, slots=True)
class Tlv:
    """One extension field."""

    extension_type: int
    field_type: int
    value: bytes

    def encode(self) -> bytes:
        if not 0 <= self.extension_type <= 0xFFFF or not 0 <= self.field_type <= 0xFF:
            raise EncodeError(f"TLV type ({self.extension_type}, {self.field_type}) out of range")
        if len(self.value) > MAX_TLV_VALUE:
            raise EncodeError(f"TLV value of {len(self.value)} bytes > {MAX_TLV_VALUE}")
        return _HEADER.pack(self.extension_type, self.field_type, len(self.value)) + self.value


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    """The fields in order; the spec requires them ordered by extension type, so an unordered list is
    our bug and raises `EncodeError`."""
    out = []
    last = -1
    for tlv in tlvs:
        if tlv.extension_type < last:
            raise EncodeError(f"TLVs must be ordered by extension type: 0x{tlv.extension_type:04x} "
                              f"after 0x{last:04x}")
        last = tlv.extension_type
        out.append(tlv.encode())
    return b"".join(out)


def decode_tlvs(data: bytes) -> tuple[Tlv, ...]:
    """Every field in `data`, which must hold whole fields and nothing else."""
    tlvs = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < TLV_HEADER_SIZE:
            raise DecodeError(f"TLV header needs {TLV_HEADER_SIZE} bytes, {end - pos} left")
        ext, field, length = _HEADER.unpack_from(data, pos)
        start = pos + TLV_HEADER_SIZE
        if end - start < length:
            raise DecodeError(f"TLV (0x{ext:04x}, 0x{field:02x}) value of {length} bytes, {end - start} left")
        tlvs.append(Tlv(ext, field, bytes(data[start:start + length])))
        pos = start + length
    return tuple(tlvs)


def user_identity_tlv(name: str) -> Tlv:
    """Extension 0x0002's user_identity field for `name` (at most 32 bytes of UTF-8)."""
    raw = name.encode("utf-8")
    if len(raw) > MAX_USER_IDENTITY:
        raise EncodeError(f"user_identity of {len(raw)} bytes > {MAX_USER_IDENTITY}")
    return Tlv(EXTENSION_WORKER_HASHRATE, FIELD_USER_IDENTITY, raw)


def find_user_identity(tlvs: Iterable[Tlv]) -> str | None:
    """The user_identity among `tlvs`, or None when the sender added none (the extension is optional
    per share: a translator adds it only for named workers)."""
    for tlv in tlvs:
        if tlv.extension_type == EXTENSION_WORKER_HASHRATE and tlv.field_type == FIELD_USER_IDENTITY:
            if len(tlv.value) > MAX_USER_IDENTITY:
                raise DecodeError(f"user_identity of {len(tlv.value)} bytes > {MAX_USER_IDENTITY}",
                                  field="user_identity")
            try:
                return tlv.value.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("user_identity is not UTF-8", field="user_identity") from None
    return None

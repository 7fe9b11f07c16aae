"""SV2 data types: every codec round-trips its whole domain, and refuses short, over-long or out-of-range
input with a typed error (SRI binary-sv2 vectors included)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.chain.compact import DIFF1_TARGET
from pithead.stratum.v2 import types
from pithead.stratum.v2.errors import DecodeError, EncodeError
from pithead.stratum.v2.messages.common import MiningSetupFlags
from stratum.v2.vectors import for_codec, message_vectors

CODECS: list[types.Codec[Any]] = [
    types.u8, types.u16, types.u24, types.u32, types.u64, types.f32, types.boolean, types.u256, types.pubkey,
    types.signature, types.str0_255, types.b0_32, types.b0_255, types.b0_64k, types.b0_16m,
    types.seq0_255(types.u256), types.seq0_64k(types.u16), types.seq0_64k(types.u32),
    types.seq0_64k(types.b0_16m), types.seq0_255(types.str0_255), types.option(types.u32),
]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@given(data=st.data())
def test_every_codec_round_trips_and_reads_exactly_its_bytes(codec: types.Codec[Any], data: st.DataObject) -> None:
    value = data.draw(for_codec(codec))
    encoded = codec.encode(value)
    if codec.size is not None:
        assert len(encoded) == codec.size
    tail = data.draw(st.binary(max_size=8))
    decoded, end = codec.read(b"\xee" + encoded + tail, 1)  # an offset and bytes after it change nothing
    assert end == 1 + len(encoded)
    assert decoded == value
    for cut in range(len(encoded)):  # every truncation is a typed error, never an IndexError
        with pytest.raises(DecodeError):
            codec.read(encoded[:cut], 0)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@given(junk=st.binary(max_size=80))
def test_junk_is_a_value_or_a_decode_error(codec: types.Codec[Any], junk: bytes) -> None:
    try:
        _, end = codec.read(junk, 0)
    except DecodeError:
        return
    assert end <= len(junk)


def test_integers_are_little_endian() -> None:
    assert types.u16.encode(0x0102) == b"\x02\x01"
    assert types.u24.encode(0x060504) == b"\x04\x05\x06"
    assert types.u32.encode(0x01020304) == b"\x04\x03\x02\x01"
    assert types.u64.encode(1) == b"\x01" + bytes(7)
    assert types.f32.encode(1.0) == struct.pack("<f", 1.0)


@pytest.mark.parametrize(("codec", "bad"), [
    (types.u8, 256), (types.u16, -1), (types.u24, 1 << 24), (types.u32, 1 << 32), (types.u64, 1 << 64),
    (types.u32, True), (types.u32, 1.0), (types.f32, 1e300), (types.boolean, 1), (types.u256, bytes(31)),
    (types.signature, bytes(65)), (types.b0_32, bytes(33)), (types.b0_255, bytes(256)),
    (types.b0_64k, bytes(65536)), (types.str0_255, "é" * 128), (types.str0_255, b"bytes"),
    (types.seq0_255(types.u256), (bytes(32),) * 256), (types.option(types.u32), -1),
])
def test_values_a_field_cannot_carry_are_encode_errors(codec: types.Codec[Any], bad: Any) -> None:
    with pytest.raises(EncodeError):
        codec.encode(bad)


def test_length_maxima_are_exact() -> None:
    for codec, maximum in ((types.b0_32, 32), (types.b0_255, 255), (types.b0_64k, 65535)):
        value = bytes(range(256)) * (maximum // 256) + bytes(maximum % 256)
        assert codec.read(codec.encode(value), 0)[0] == value
    assert types.b0_16m.read(types.b0_16m.encode(bytes(70_000)), 0)[0] == bytes(70_000)
    assert types.str0_255.read(types.str0_255.encode("x" * 255), 0)[0] == "x" * 255


def test_bool_ignores_bits_1_to_7() -> None:
    """Spec §3.1: only bit 0 is meaningful; receivers MUST ignore the others."""
    assert types.boolean.read(b"\x02", 0) == (False, 1)
    assert types.boolean.read(b"\xff", 0) == (True, 1)
    assert types.boolean.encode(True) == b"\x01"


def test_option_count_above_one_is_refused() -> None:
    with pytest.raises(DecodeError, match="count 2"):
        types.option(types.u32).read(b"\x02\x00\x00\x00\x00", 0)


def test_str0_255_must_be_utf8() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        types.str0_255.read(b"\x02\xff\xfe", 0)


def test_a_sequence_count_is_checked_before_anything_is_built() -> None:
    """A count far above what the bytes can hold fails at once (no 65535-element allocation)."""
    with pytest.raises(DecodeError, match="65535"):
        types.seq0_64k(types.b0_16m).read(b"\xff\xff\x00", 0)
    with pytest.raises(DecodeError, match="255"):
        types.seq0_255(types.u256).read(b"\xff" + bytes(64), 0)


def _field_vectors() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in message_vectors() if v["wire_format"] == "binary_sv2_field"}


def test_sri_binary_sv2_field_vectors() -> None:
    vectors = _field_vectors()
    good = vectors["SRI binary-sv2 B0_64K [1,2,3]"]
    raw = bytes.fromhex(good["encoded_hex"])
    assert types.b0_64k.encode(bytes.fromhex(good["fields"]["value"])) == raw
    assert types.b0_64k.read(raw, 0) == (b"\x01\x02\x03", len(raw))
    with pytest.raises(DecodeError, match="B0_32 length 33 > 32"):  # 33 bytes follow, but 33 > 32
        types.b0_32.read(bytes.fromhex(vectors["SRI binary-sv2 B0_32 with length 33 (must be rejected)"]
                                       ["encoded_hex"]), 0)
    with pytest.raises(DecodeError):  # declares 65535 elements, holds none
        types.seq0_64k(types.u8).read(bytes.fromhex(
            vectors["SRI binary-sv2 SEQ0_64K header 0xffff with no elements (must not over-allocate)"]
            ["encoded_hex"]), 0)


def test_difficulty_1_target_sits_at_bytes_26_and_27() -> None:
    """Targets are U256 little-endian: diff-1 (0x00000000FFFF0000…) has its 0xff bytes at offsets 26-27
    (a pool that wrote them big-endian made ESP-Miner compute an absurd difficulty, #1758)."""
    wire = types.u256_from_int(DIFF1_TARGET)
    assert [i for i, b in enumerate(wire) if b] == [26, 27] and wire[26] == wire[27] == 0xFF
    assert types.int_from_u256(wire) == DIFF1_TARGET


def test_flag_enums_encode_as_their_integer() -> None:
    """SetupConnection.flags is built from `MiningSetupFlags` (an int subclass); a bool is still refused."""
    flags = MiningSetupFlags.REQUIRES_VERSION_ROLLING | MiningSetupFlags.REQUIRES_STANDARD_JOBS
    assert types.u32.encode(flags) == b"\x05\x00\x00\x00"
    with pytest.raises(EncodeError):
        types.u32.encode(True)

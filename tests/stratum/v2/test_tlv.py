"""TLV extension fields: little-endian as SRI encodes them (its vectors), strict lists, user_identity."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.stratum.v2.errors import DecodeError, EncodeError
from pithead.stratum.v2.tlv import (
    MAX_USER_IDENTITY,
    Tlv,
    decode_tlvs,
    encode_tlvs,
    find_user_identity,
    user_identity_tlv,
)
from stratum.v2.vectors import message_vectors


def _tlv_vectors() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in message_vectors() if v["wire_format"] == "tlv"}


def _value(v: str) -> bytes:
    return v.encode()


@pytest.mark.parametrize("name", [
    "SRI TLV (extension 0x0002, field 0x01, value 'test')",
    "SRI TLV user_identity 'Worker_001'",
])
def test_single_tlv_vectors(name: str) -> None:
    vector = _tlv_vectors()[name]
    raw = bytes.fromhex(vector["encoded_hex"])
    f = vector["fields"]
    tlv = Tlv(f["extension_type"], f["field_type"], _value(f["value"]))
    assert len(tlv.value) == f["length"]
    assert tlv.encode() == raw
    assert decode_tlvs(raw) == (tlv,)


def test_tlv_list_vectors() -> None:
    vectors = _tlv_vectors()
    pair = vectors["SRI TLV list: (0x0002,0x01,'worker1') + (0x0003,0x01,'data')"]
    expected = tuple(Tlv(t["extension_type"], t["field_type"], _value(t["value"])) for t in pair["fields"]["tlvs"])
    assert decode_tlvs(bytes.fromhex(pair["encoded_hex"])) == expected
    assert encode_tlvs(expected) == bytes.fromhex(pair["encoded_hex"])
    unordered = vectors["SRI TLV list filtered by negotiated extensions [0x0002]"]
    tlvs = decode_tlvs(bytes.fromhex(unordered["encoded_hex"]))  # (2, 3, 2): decoded as SRI does
    assert [t.extension_type for t in tlvs] == [2, 3, 2]
    assert find_user_identity(tlvs) == "worker1"
    with pytest.raises(EncodeError, match="ordered"):  # but we never send an unordered list
        encode_tlvs(tlvs)


@pytest.mark.parametrize("name", [
    "SRI TLV truncated header (must be rejected)",
    "SRI TLV value shorter than length (must be rejected)",
    # SRI's iterator stops quietly at fewer than 5 trailing bytes; ours refuses them (no encoder writes
    # them, and a strict decoder leaves nothing unread)
    "SRI TLV list with trailing incomplete header",
])
def test_malformed_tlv_lists_are_decode_errors(name: str) -> None:
    with pytest.raises(DecodeError):
        decode_tlvs(bytes.fromhex(_tlv_vectors()[name]["encoded_hex"]))


_tlv = st.builds(Tlv, st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=300))


@given(st.lists(_tlv, max_size=6).map(lambda ts: sorted(ts, key=lambda t: t.extension_type)))
def test_tlv_lists_round_trip(tlvs: list[Tlv]) -> None:
    raw = encode_tlvs(tlvs)
    assert decode_tlvs(raw) == tuple(tlvs)
    boundaries = {0}
    for tlv in tlvs:
        boundaries.add(max(boundaries) + len(tlv.encode()))
    for cut in range(len(raw)):  # a list cut between fields is shorter; cut inside one, refused
        if cut in boundaries:
            assert len(decode_tlvs(raw[:cut])) == sorted(boundaries).index(cut)
        else:
            with pytest.raises(DecodeError):
                decode_tlvs(raw[:cut])


def test_user_identity_is_at_most_32_bytes() -> None:
    assert user_identity_tlv("w" * MAX_USER_IDENTITY).encode()[:5] == bytes.fromhex("0200012000")
    with pytest.raises(EncodeError):
        user_identity_tlv("w" * (MAX_USER_IDENTITY + 1))
    with pytest.raises(DecodeError, match="user_identity"):
        find_user_identity([Tlv(2, 1, b"w" * 33)])
    with pytest.raises(DecodeError, match="UTF-8"):
        find_user_identity([Tlv(2, 1, b"\xff")])
    assert find_user_identity([Tlv(3, 1, b"x")]) is None


def test_tlv_value_longer_than_its_length_field() -> None:
    with pytest.raises(EncodeError):
        Tlv(2, 1, bytes(65536)).encode()

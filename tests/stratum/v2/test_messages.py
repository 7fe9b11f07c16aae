"""SV2 messages: the vectors of SRI and sv2-tp that apply, round trips of every message (hypothesis,
through payloads and whole frames), strict decoding (every truncation, trailing bytes, junk), the
registry against the constants of both implementations, and frames of the wrong subprotocol."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.stratum.v2 import types
from pithead.stratum.v2.errors import DecodeError, EncodeError, UnknownMessage, WrongSubprotocol
from pithead.stratum.v2.framing import MAX_PAYLOAD, Frame, FrameReader
from pithead.stratum.v2.messages.base import Message, Subprotocol, decode_by_table, encode_by_table
from pithead.stratum.v2.messages.common import SetupConnection, SetupConnectionSuccess
from pithead.stratum.v2.messages.mining import (
    NewExtendedMiningJob,
    NewMiningJob,
    SetTarget,
    SubmitSharesExtended,
    SubmitSharesStandard,
)
from pithead.stratum.v2.messages.registry import (
    MESSAGES,
    REGISTRY,
    SUBPROTOCOL_TYPES,
    decode_frame,
    encode_frame,
)
from pithead.stratum.v2.tlv import Tlv, user_identity_tlv
from stratum.v2.vectors import for_message, load_json, message_vectors

MINING = Subprotocol.MINING
TDP = Subprotocol.TEMPLATE_DISTRIBUTION

# --- the vectors ----------------------------------------------------------------------------------------

#: Vector field names that differ from the spec's (and so ours).
_ALIASES = {"mining_job_token": "token"}

#: How each vector of sv2-messages.json is used; a new vector must be placed here (test below).
_MESSAGE_VECTORS = {  # decoded and re-encoded as messages of this layer
    "sv2-tp SetupConnection (TDP client, decoded by TP)",
    "sv2-tp SetupConnection.Success (encode)",
    "sv2-tp SetupConnection.Error (encode)",
    "SRI NewMiningJob full frame",
    "SRI RequestExtensions (Extensions Negotiation 0x0001) full frame",
    "SRI SetCustomMiningJob full frame (channel_msg set)",
    "SRI SetCustomMiningJob.Success full frame (channel_msg set)",
    "SRI SetCustomMiningJob.Error full frame (channel_msg set)",
}
_OTHER_SUBPROTOCOL = {  # Template Distribution / Job Declaration: refused on a Mining connection, by name
    "sv2-tp NewTemplate (encode, one OP_RETURN output)",
    "sv2-tp NewTemplate (constructed from a coinbase tx; dummy output filtered)",
    "sv2-tp SetNewPrevHash (Template Distribution, encode)",
    "sv2-tp SubmitSolution (decode) - INCONSISTENT B0_64K length",
    "sv2-tp CoinbaseOutputConstraints (test client -> TP)",
    "sv2-tp CoinbaseOutputConstraints, legacy 4-byte form without sigops",
    "sv2-tp RequestTransactionData (test client -> TP)",
    "sv2-tp CoinbaseOutputConstraints{4000, 400} (transport test)",
    "SRI PushSolution (Job Declaration) full frame",
}
_ELSEWHERE = {  # test_framing (headers), test_types (single fields), test_tlv, or special below
    "sv2-tp frame header for SetupConnection (decode)",
    "sv2-tp frame header NewTemplate with msg_length 0 (encode)",
    "sv2-tp frame header SetNewPrevHash with msg_length 0 (encode)",
    "SRI frame header from_bytes (field order/endianness)",
    "SRI frame header with channel_msg bit, size_hint",
    "SRI frame header from_len(msg_length=0x1234, msg_type=0x56, extension_type=0x789a)",
    "SRI frame header from_len(msg_length=0x1234, msg_type=0x01, extension_type=0x0000)",
    "SRI binary-sv2 B0_64K [1,2,3]",
    "SRI binary-sv2 B0_32 with length 33 (must be rejected)",
    "SRI binary-sv2 SEQ0_64K header 0xffff with no elements (must not over-allocate)",
    "SRI TLV (extension 0x0002, field 0x01, value 'test')",
    "SRI TLV user_identity 'Worker_001'",
    "SRI TLV truncated header (must be rejected)",
    "SRI TLV value shorter than length (must be rejected)",
    "SRI TLV list: (0x0002,0x01,'worker1') + (0x0003,0x01,'data')",
    "SRI TLV list with trailing incomplete header",
    "SRI TLV list filtered by negotiated extensions [0x0002]",
    "sv2-tp internal Sv2NetMsg serialization of SetupConnection.Success",  # not SV2 wire: see below
    "sv2-tp SetupConnection with empty payload (must be rejected)",
}


def _by_name() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in message_vectors()}


def test_every_vector_is_used() -> None:
    names = set(_by_name())
    placed = _MESSAGE_VECTORS | _OTHER_SUBPROTOCOL | _ELSEWHERE
    assert names == placed, f"unplaced: {sorted(names - placed)}; gone: {sorted(placed - names)}"


def _field_value(codec: types.Codec[Any], raw: Any) -> Any:
    if isinstance(codec, types.FixedBytes | types.Prefixed):
        return bytes.fromhex(raw)
    if isinstance(codec, types.Seq):
        return tuple(_field_value(codec.element, r) for r in raw)
    return raw


def _message_from_vector(cls: type[Message], fields: dict[str, Any]) -> Message:
    return cls(*(_field_value(codec, fields[_ALIASES.get(name, name)]) for name, codec in cls.FIELDS))


@pytest.mark.parametrize("name", sorted(_MESSAGE_VECTORS))
def test_message_vectors(name: str) -> None:
    vector = _by_name()[name]
    raw = bytes.fromhex(vector["encoded_hex"])
    ext = vector["extension_type"] & 0x7FFF
    cls = REGISTRY[(ext, vector["message_type"])]
    expected = _message_from_vector(cls, vector["fields"])
    if vector["includes_frame_header"]:
        (frame,) = FrameReader(MAX_PAYLOAD).feed(raw)
        decoded, tlvs = decode_frame(frame, protocol=MINING)
        assert decoded == expected and tlvs == ()
        assert encode_frame(expected) == raw
    else:
        assert cls.decode(raw) == expected
        assert expected.encode() == raw


def test_sv2tp_internal_serialization_is_a_type_byte_and_the_payload() -> None:
    """Not an SV2 wire format (sv2-tp's CSerializedNetMsg carries a type byte, then the payload)."""
    raw = bytes.fromhex(_by_name()["sv2-tp internal Sv2NetMsg serialization of SetupConnection.Success"]
                        ["encoded_hex"])
    assert raw[0] == SetupConnectionSuccess.MSG_TYPE
    assert SetupConnectionSuccess.decode(raw[1:]) == SetupConnectionSuccess(2, 3)


def test_an_empty_setup_connection_is_refused() -> None:
    raw = bytes.fromhex(_by_name()["sv2-tp SetupConnection with empty payload (must be rejected)"]["encoded_hex"])
    with pytest.raises(DecodeError, match=r"SetupConnection\.protocol"):
        SetupConnection.decode(raw)


@pytest.mark.parametrize("name", sorted(_OTHER_SUBPROTOCOL))
def test_other_subprotocols_messages_are_refused_on_a_mining_connection(name: str) -> None:
    vector = _by_name()[name]
    raw = bytes.fromhex(vector["encoded_hex"])
    payload = raw[6:] if vector["includes_frame_header"] else raw
    frame = Frame(vector["extension_type"], vector["message_type"], payload)
    with pytest.raises(WrongSubprotocol) as exc:
        decode_frame(frame, protocol=MINING)
    assert "Mining" in str(exc.value) and exc.value.actual in ("Template Distribution", "Job Declaration")


def test_a_mining_message_on_a_template_distribution_connection_is_refused() -> None:
    frame = Frame(0, SubmitSharesStandard.MSG_TYPE, SubmitSharesStandard(1, 2, 3, 4, 5, 6).encode(), True)
    with pytest.raises(WrongSubprotocol, match="SubmitSharesStandard belongs to the Mining"):
        decode_frame(frame, protocol=TDP)


# --- the registry against both implementations' constants ------------------------------------------------


def test_registry_matches_the_constants_of_sri_and_sv2_tp() -> None:
    table = load_json("sv2-constants.json")["message_types"]
    seen = set()
    for group, ext in (("common", 0), ("mining", 0), ("extensions_negotiation_0x0001", 1)):
        for row in table[group]:
            if row["name"] == "(reserved)":
                assert (ext, row["value"]) not in REGISTRY
                continue
            cls = REGISTRY[(ext, row["value"])]
            assert cls.NAME == row["name"].removeprefix("Mining "), row
            assert cls.CHANNEL_MSG == row["channel_msg_bit"], row["name"]
            seen.add(cls)
    assert seen == set(MESSAGES), "a registered message the constants do not list"
    for group, protocol in (("job_declaration", Subprotocol.JOB_DECLARATION), ("template_distribution", TDP)):
        for row in table[group]:
            assert row["value"] in SUBPROTOCOL_TYPES[protocol]
            with pytest.raises(WrongSubprotocol, match=row["name"].removeprefix("TDP ").split(" ")[0]):
                decode_frame(Frame(0, row["value"], b""), protocol=MINING)


def test_unknown_and_reserved_types_are_unknown_messages() -> None:
    with pytest.raises(UnknownMessage) as exc:
        decode_frame(Frame(0, 0x1E, b"\x00" * 4, True), protocol=MINING)  # reserved in the Mining table
    assert exc.value.channel_msg and exc.value.msg_type == 0x1E
    with pytest.raises(UnknownMessage):
        decode_frame(Frame(0x0ABC, 0x01, b""), protocol=MINING)  # an extension we do not speak


def test_the_channel_bit_must_match_the_message() -> None:
    """NewMiningJob carries the bit since spec 875fe81: a peer of an older snapshot is refused, not misread."""
    payload = NewMiningJob(1, 2, None, 3, bytes(32)).encode()
    with pytest.raises(DecodeError, match="channel_msg"):
        decode_frame(Frame(0, NewMiningJob.MSG_TYPE, payload, False), protocol=MINING)


# --- every message, round trip and strictness ------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.NAME)
@settings(max_examples=40)
@given(data=st.data())
def test_every_message_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(for_message(cls))
    payload = message.encode()
    assert payload == encode_by_table(message)  # a fast path agrees with the codec table
    assert cls.decode(payload) == message
    assert decode_by_table(cls, payload) == message
    frame_bytes = encode_frame(message)
    (frame,) = FrameReader(MAX_PAYLOAD).feed(frame_bytes)
    assert frame.channel_msg == cls.CHANNEL_MSG and frame.extension_type == cls.EXTENSION_TYPE
    assert decode_frame(frame, protocol=MINING) == (message, ())


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.NAME)
@settings(max_examples=10)
@given(data=st.data())
def test_every_truncation_and_any_trailing_byte_is_a_decode_error(cls: type[Message], data: st.DataObject) -> None:
    payload = data.draw(for_message(cls)).encode()
    for cut in range(len(payload)):
        with pytest.raises(DecodeError) as exc:
            cls.decode(payload[:cut])
        assert exc.value.message == cls.NAME and exc.value.field in {n for n, _ in cls.FIELDS}
    with pytest.raises(DecodeError, match="after the last field"):
        cls.decode(payload + data.draw(st.binary(min_size=1, max_size=4)))


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.NAME)
@settings(max_examples=60)
@given(junk=st.binary(max_size=120))
def test_junk_decodes_or_is_a_decode_error(cls: type[Message], junk: bytes) -> None:
    try:
        cls.decode(junk)
    except DecodeError:
        pass


@pytest.mark.parametrize(("message", "field"), [
    (NewMiningJob(1, 2, None, 3, bytes(31)), "merkle_root"),
    (NewMiningJob(1, 2, -5, 3, bytes(32)), "min_ntime"),
    (SubmitSharesExtended(1, 2, 3, 4, 5, 6, bytes(33)), "extranonce"),
    (SubmitSharesExtended(1, 2, 3, 4, 5, 1 << 32, b""), "version"),
    (SubmitSharesStandard(1, 2, 3, 4, 5, -1), "version"),
    (SetTarget(1, bytes(33)), "maximum_target"),
    (NewExtendedMiningJob(1, 2, None, 3, True, (bytes(32),) * 256, b"", b""), "merkle_path"),
])
def test_encode_errors_name_the_message_and_field(message: Message, field: str) -> None:
    with pytest.raises(EncodeError) as exc:
        message.encode()
    assert exc.value.message == message.NAME and exc.value.field == field


def test_new_mining_job_optional_ntime_on_the_wire() -> None:
    """OPTION[U32]: 00 for a future job, 01 + U32 for an active one (SRI's vector has the latter)."""
    future = NewMiningJob(1, 2, None, 3, bytes(32)).encode()
    active = NewMiningJob(1, 2, 7, 3, bytes(32)).encode()
    assert len(future) == 45 and future[8] == 0
    assert len(active) == 49 and active[8:13] == b"\x01\x07\x00\x00\x00"
    with pytest.raises(DecodeError, match="count 2"):
        NewMiningJob.decode(active[:8] + b"\x02" + active[9:])


# --- TLV fields on a frame -------------------------------------------------------------------------------


def test_tlvs_after_a_message_need_a_negotiated_extension() -> None:
    share = SubmitSharesExtended(7, 1, 2, 3, 4, 0x20000000, b"\x01\x02\x03\x04")
    raw = encode_frame(share, [user_identity_tlv("rig-17"), Tlv(3, 1, b"other")])
    (frame,) = FrameReader(MAX_PAYLOAD).feed(raw)
    assert decode_frame(frame, protocol=MINING, extensions=frozenset({2})) == (
        share, (user_identity_tlv("rig-17"),))  # extension 3 not negotiated: dropped, as the spec says
    with pytest.raises(DecodeError, match="after the last field"):
        decode_frame(frame, protocol=MINING)  # nothing negotiated: trailing bytes are junk
    cut = Frame(frame.extension_type, frame.msg_type, frame.payload[:-1], frame.channel_msg)
    with pytest.raises(DecodeError, match=r"SubmitSharesExtended\.tlv"):
        decode_frame(cut, protocol=MINING, extensions=frozenset({2}))

"""SV2 framing: the 6-byte header with the channel-message bit (SRI and sv2-tp vectors), and the bounded
frame reader of unencrypted streams, however the bytes are split."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.stratum.v2.errors import EncodeError, FramingError
from pithead.stratum.v2.framing import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Frame,
    FrameHeader,
    FrameReader,
    encode_header,
)
from stratum.v2.vectors import load_json, message_vectors


def _header_vectors() -> list[dict[str, Any]]:
    """Every vector that is, or starts with, a frame header."""
    return [v for v in message_vectors() if v["wire_format"] == "frame_header" or v["includes_frame_header"]]


@pytest.mark.parametrize("vector", _header_vectors(), ids=lambda v: v["name"])
def test_header_vectors(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["encoded_hex"])
    fields = vector.get("frame_header") or vector["fields"]
    header = FrameHeader.decode(raw[:HEADER_SIZE])
    wire_ext = vector["extension_type"]
    assert header.extension_type == wire_ext & 0x7FFF
    assert header.channel_msg == bool(wire_ext & 0x8000) == fields.get("channel_msg", False)
    assert header.msg_type == (fields["msg_type"] if "msg_type" in fields else vector["message_type"])
    assert header.msg_length == fields["msg_length"]
    assert header.encode() == raw[:HEADER_SIZE]
    if vector["wire_format"] != "frame_header":  # a whole frame: the length is the payload's
        assert header.msg_length == len(raw) - HEADER_SIZE
        frames = FrameReader(MAX_PAYLOAD).feed(raw)
        assert len(frames) == 1 and frames[0].encode() == raw


def test_channel_bit_is_bit_7_of_the_second_byte() -> None:
    """0x8000 of the little-endian U16 (the spec's prose says both "least" and "most" significant)."""
    assert encode_header(0, True, 0x15, 49) == bytes.fromhex("008015310000")
    assert FrameHeader.decode(bytes.fromhex("00801e2e0000")) == FrameHeader(0, 0x1E, 46, True)
    assert FrameHeader.decode(bytes.fromhex("018000000000")) == FrameHeader(1, 0, 0, True)


def test_the_constants_file_agrees() -> None:
    frame = {row["name"]: row["value"] for row in load_json("sv2-constants.json")["frame"]}
    assert frame["frame_header_size"] == HEADER_SIZE
    assert frame["channel_msg_mask"] == 0x8000
    assert frame["max_msg_length"] == MAX_PAYLOAD


@pytest.mark.parametrize(("ext", "msg_type", "length"), [(0x8000, 0, 0), (0, 256, 0), (0, 0, MAX_PAYLOAD + 1),
                                                         (-1, 0, 0)])
def test_header_fields_out_of_range_are_encode_errors(ext: int, msg_type: int, length: int) -> None:
    with pytest.raises(EncodeError):
        encode_header(ext, False, msg_type, length)


_frames = st.lists(st.builds(Frame, st.integers(0, 0x7FFF), st.integers(0, 255), st.binary(max_size=200),
                             st.booleans()), max_size=8)


@given(frames=_frames, cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_reader_yields_the_frames_however_the_stream_is_split(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(f.encode() for f in frames)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reader = FrameReader(200)
    got: list[Frame] = []
    for start, end in itertools.pairwise(points):
        got += reader.feed(stream[start:end])
    assert got == frames
    assert reader.buffered == 0
    reader.close()


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    reader = FrameReader(1000)
    with pytest.raises(FramingError, match="1001 bytes"):
        reader.feed(encode_header(0, True, 0x1B, 1001))  # nothing of the payload sent yet
    with pytest.raises(FramingError, match="out of step"):
        reader.feed(b"\x00" * 10)


def test_a_stream_that_ends_inside_a_frame_is_a_framing_error() -> None:
    reader = FrameReader(100)
    assert reader.feed(encode_header(0, False, 1, 6) + b"\x02\x00") == []
    with pytest.raises(FramingError, match="inside a frame"):
        reader.close()


def test_header_of_the_wrong_size() -> None:
    with pytest.raises(FramingError):
        FrameHeader.decode(b"\x00" * 5)

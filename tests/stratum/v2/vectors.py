"""Where the SV2 vectors live (tests/vectors/sv2/, copied from shared/vectors/sv2/ with their
provenance) and how to read them; hypothesis strategies built from the wire layer's own codec tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from pithead.stratum.v2 import types
from pithead.stratum.v2.messages.base import Message

SV2_VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "sv2"


def load_json(name: str) -> Any:
    return json.loads((SV2_VECTORS / name).read_text())


def load_csv(name: str) -> list[dict[str, str]]:
    with (SV2_VECTORS / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def message_vectors() -> list[dict[str, Any]]:
    return list(load_json("sv2-messages.json"))


# Sizes drawn for variable-length fields: enough to cross every length-prefix byte boundary that matters
# (a U16 prefix above 255) without making every example 64 KiB; the exact maxima have their own tests.
_MAX_DRAWN_BYTES = 300
_MAX_DRAWN_ITEMS = 12


def for_codec(codec: types.Codec[Any]) -> st.SearchStrategy[Any]:
    """Every valid value of a codec's type (bounded in size)."""
    if isinstance(codec, types.UInt):
        return st.integers(0, codec.maximum)
    if isinstance(codec, types.U24Codec):
        return st.integers(0, types.U24_MAX)
    if isinstance(codec, types.F32Codec):
        return st.floats(width=32, allow_nan=False)
    if isinstance(codec, types.BoolCodec):
        return st.booleans()
    if isinstance(codec, types.FixedBytes):
        assert codec.size is not None
        return st.binary(min_size=codec.size, max_size=codec.size)
    if isinstance(codec, types.Prefixed):
        return st.binary(max_size=min(codec.maximum, _MAX_DRAWN_BYTES))
    if isinstance(codec, types.Str0To255):
        return st.text(max_size=63)  # at most 4 bytes a character: never above 255 bytes
    if isinstance(codec, types.Seq):
        return st.lists(for_codec(codec.element), max_size=_MAX_DRAWN_ITEMS).map(tuple)
    if isinstance(codec, types.Option):
        return st.none() | for_codec(codec.element)
    raise AssertionError(f"no strategy for {codec!r}")


def for_message(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Every valid instance of a message class, from its codec table."""
    return st.builds(cls, *(for_codec(codec) for _, codec in cls.FIELDS))

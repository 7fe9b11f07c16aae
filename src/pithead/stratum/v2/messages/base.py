"""The base of every Stratum V2 message: one frozen dataclass per message, its fields typed by the spec.

What it is: `Message`, whose subclasses are frozen, slotted dataclasses declared with the field types of
`pithead.stratum.v2.types` in the spec's order (`channel_id: U32`), and the `message(...)` decorator that
reads those annotations once, at import, into the class's codec table, with the frame identity: message
type, extension type, channel-message bit and subprotocol. Every message then has

- `encode() -> bytes`: the payload (no frame header); a value a field cannot carry raises `EncodeError`
  naming the message and field;
- `decode(payload) -> message`: strict — every length checked, a short or over-long field or any byte
  left over raises `DecodeError` naming the message and field;
- `read(data, pos) -> (message, next_pos)`: the same without the leftover check, for a payload that
  continues with TLV fields.

A message made only of fixed-size fields (SubmitSharesStandard, SubmitShares.Success, SetTarget,
SetNewPrevHash, …) encodes and decodes with one precompiled `struct.Struct`; the others walk their codec
table. A class may override `encode`/`decode` with a hand-written fast path (NewMiningJob does); the
tests check every override against the table (`encode_by_table`, `decode_by_table`).

What it is not: the registry from (extension, type) to class, or frames (`messages.registry`).
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import struct
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

from pithead.stratum.v2.errors import DecodeError, EncodeError
from pithead.stratum.v2.types import Codec, FixedBytes


class Subprotocol(enum.IntEnum):
    """`SetupConnection.protocol`: each subprotocol runs on its own connection (spec §3.6.1)."""

    MINING = 0
    JOB_DECLARATION = 1
    TEMPLATE_DISTRIBUTION = 2


class Message:
    """Base class of every SV2 message (see the module docstring)."""

    __slots__ = ()

    NAME: ClassVar[str]
    """The spec's name, e.g. "SubmitShares.Success"."""
    MSG_TYPE: ClassVar[int]
    EXTENSION_TYPE: ClassVar[int]
    """0 for the core protocols, else the id of the extension that defines the message."""
    CHANNEL_MSG: ClassVar[bool]
    """Whether the frame carries the channel-message bit (then the payload starts with channel_id)."""
    PROTOCOL: ClassVar[Subprotocol | None]
    """The subprotocol the message belongs to; None for Common messages and extension negotiation,
    which any connection may carry."""
    FIELDS: ClassVar[tuple[tuple[str, Codec[Any]], ...]]
    _FIXED: ClassVar[struct.Struct | None]
    _FIXED_BYTES: ClassVar[tuple[tuple[int, int], ...]]  # (field index, size) of fixed-size bytes fields
    _VALUES: ClassVar[Callable[[Any], tuple[Any, ...]]]

    def encode(self) -> bytes:
        fixed = self._FIXED
        if fixed is not None:
            values = type(self)._VALUES(self)
            for index, size in self._FIXED_BYTES:  # struct would pad or cut a wrong-sized bytes value
                value = values[index]
                if not isinstance(value, bytes | bytearray) or len(value) != size:
                    return encode_by_table(self)  # raises EncodeError naming the field
            try:
                return fixed.pack(*values)
            except (struct.error, TypeError, OverflowError):
                return encode_by_table(self)  # raises EncodeError naming the field
        return encode_by_table(self)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The message in `data`, which must hold it and nothing else."""
        fixed = cls._FIXED
        if fixed is not None and len(data) == fixed.size:
            return cls(*fixed.unpack(data))  # type: ignore[call-arg]  # the subclass's dataclass __init__
        return decode_by_table(cls, data)

    @classmethod
    def read(cls, data: bytes, pos: int) -> tuple[Self, int]:
        """The message starting at `pos`, and where it ends."""
        fixed = cls._FIXED
        if fixed is not None and len(data) - pos >= fixed.size:
            return cls(*fixed.unpack_from(data, pos)), pos + fixed.size  # type: ignore[call-arg]
        return read_by_table(cls, data, pos)


M = TypeVar("M", bound=Message)


def encode_by_table(message: Message) -> bytes:
    """`message`'s payload, field by field through its codec table (the reference for any fast path)."""
    parts = []
    for name, codec in message.FIELDS:
        try:
            parts.append(codec.encode(getattr(message, name)))
        except EncodeError as exc:
            raise EncodeError(exc.reason, message=message.NAME, field=name) from None
    return b"".join(parts)


def read_by_table(cls: type[M], data: bytes, pos: int) -> tuple[M, int]:
    """A `cls` read field by field from `data` at `pos` (the reference for any fast path)."""
    values = []
    for name, codec in cls.FIELDS:
        try:
            value, pos = codec.read(data, pos)
        except DecodeError as exc:
            raise DecodeError(exc.reason, message=cls.NAME, field=name) from None
        values.append(value)
    return cls(*values), pos  # type: ignore[call-arg]  # the subclass's dataclass __init__


def decode_by_table(cls: type[M], data: bytes) -> M:
    """A `cls` decoded field by field from `data`, which must hold it and nothing else."""
    decoded, end = read_by_table(cls, data, 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} bytes after the last field", message=cls.NAME)
    return decoded


def message(msg_type: int, name: str, *, channel_msg: bool, protocol: Subprotocol | None,
            extension_type: int = 0) -> Callable[[type[M]], type[M]]:
    """Class decorator (above `@dataclass(frozen=True, slots=True)`): the message's frame identity, and its
    codec table read from the field annotations."""

    def wrap(cls: type[M]) -> type[M]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__}: put @message above @dataclass(frozen=True, slots=True)")
        hints = typing.get_type_hints(cls, include_extras=True)
        table: list[tuple[str, Codec[Any]]] = []
        for f in dataclasses.fields(cls):
            codecs = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, Codec)]
            if len(codecs) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: declare it with a type of pithead.stratum.v2.types")
            table.append((f.name, codecs[0]))
        cls.NAME = name
        cls.MSG_TYPE = msg_type
        cls.EXTENSION_TYPE = extension_type
        cls.CHANNEL_MSG = channel_msg
        cls.PROTOCOL = protocol
        cls.FIELDS = tuple(table)
        fmts = [codec.fmt for _, codec in table]
        if table and all(fmts):
            cls._FIXED = struct.Struct("<" + "".join(typing.cast(list[str], fmts)))
            cls._FIXED_BYTES = tuple((i, codec.size or 0) for i, (_, codec) in enumerate(table)
                                     if isinstance(codec, FixedBytes))
            getter = operator.attrgetter(*(n for n, _ in table))
            cls._VALUES = getter if len(table) > 1 else staticmethod(lambda m: (getter(m),))  # type: ignore[assignment]
        else:
            cls._FIXED = None
            cls._FIXED_BYTES = ()
        return cls

    return wrap

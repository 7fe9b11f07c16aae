"""What every RPC method module shares, as Bitcoin Core's rpc/util.cpp: the command table's types and
the argument checks Core's RPCHelpMan makes.

`Command` names a method, its handler (a function taking the `NodeContext` first, so mypy checks each
handler against the node's interface) and its arguments (`Arg`: name, JSON kind, required), in Core's
order; each method module lists its commands in a `COMMANDS` tuple and the dispatcher (server.py) builds
its one table from them. The checks: JSON type errors (-3 "JSON value of type … is not of expected type
…"), ParseHashV, AmountFromValue, UniValue's getInt<int>, and the address decoding every method taking
an address does.

Not here: the dispatch itself (server.py), the methods, the JSON shapes of answers (format.py).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Concatenate, Literal, NamedTuple

from pithead.bitcoind import codes
from pithead.chain.address import AddressError, address_to_script
from pithead.chain.errors import ChainError
from pithead.chain.hashes import from_display_hex
from pithead.node.consensus import MAX_MONEY
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import COIN

INT32_RANGE = range(-(2**31), 2**31)  # UniValue getInt<int>: what fits a C++ int
BIP125_FINAL_SEQUENCE = 0xFFFFFFFE  # BIP125: an input with a lower nSequence signals replaceability

#: An argument's JSON kind: the JSON types it accepts (the first is the one named in a type error).
JsonKind = Literal["num", "str", "bool", "obj", "arr", "amount", "numbool", "any"]
ACCEPTS: dict[JsonKind, tuple[str, ...]] = {
    "num": ("number",),
    "str": ("string",),
    "bool": ("bool",),
    "obj": ("object",),
    "arr": ("array",),
    "amount": ("number", "string"),
    "numbool": ("number", "bool"),
    "any": (),  # anything, checked by the method itself
}

#: A method's handler: the node first, then the request's arguments by name.
Handler = Callable[Concatenate[NodeContext, ...], Awaitable[Any]]


class Arg(NamedTuple):
    """One argument of a method, in Core's position order."""

    name: str
    kind: JsonKind
    required: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """One method of the table (Core's CRPCCommand): its name, handler and arguments."""

    name: str
    handler: Handler
    args: tuple[Arg, ...] = ()

    def usage(self) -> str:
        """The one-line usage Core answers to a wrong argument count: `name "required" ( "optional" )`."""
        shown = (f'"{a.name}"' if a.required else f'( "{a.name}" )' for a in self.args)
        return f"{self.name} {' '.join(shown)}".strip()


def json_type(value: Any) -> str:
    """A JSON value's type as Core's UniValue names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_error(value: Any, expected: str) -> RPCError:
    return RPCError(
        codes.RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of expected type {expected}"
    )


def parse_hash(value: str, name: str) -> bytes:
    """Core's ParseHashV: 64 hex digits in display order → the internal hash."""
    if len(value) != 64:
        raise RPCError(
            codes.RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(value)}, for '{value}')"
        )
    try:
        return from_display_hex(value)
    except ChainError:
        raise RPCError(
            codes.RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')"
        ) from None


def parse_amount(value: Any) -> int:
    """Core's AmountFromValue: BTC as number or string → satoshis."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise type_error(value, "number")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise RPCError(codes.RPC_TYPE_ERROR, "Invalid amount") from None
    sats = d * COIN
    if sats != sats.to_integral_value():
        raise RPCError(codes.RPC_TYPE_ERROR, "Invalid amount")
    if sats < 0 or sats > MAX_MONEY:
        raise RPCError(codes.RPC_TYPE_ERROR, "Amount out of range")
    return int(sats)


def parse_int32(value: Any) -> int:
    """Core's UniValue getInt<int>: a JSON number that is a whole 32-bit integer, else -1 "JSON integer
    out of range"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RPCError(codes.RPC_MISC_ERROR, "JSON integer out of range")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise RPCError(codes.RPC_MISC_ERROR, "JSON integer out of range")
    if int(value) not in INT32_RANGE:
        raise RPCError(codes.RPC_MISC_ERROR, "JSON integer out of range")
    return int(value)


def script_for_address(node: NodeContext, address: str, error: str = "Error: Invalid address") -> bytes:
    """The scriptPubKey an address of the node's network pays, else -5 with `error` (Core's
    DecodeDestination check, whose message each method words its own way)."""
    try:
        return address_to_script(address, node.network)
    except AddressError:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, error) from None

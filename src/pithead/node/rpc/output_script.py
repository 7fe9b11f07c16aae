"""The embedded node's output-script RPC methods, as Bitcoin Core's src/rpc/output_script.cpp has them.

validateaddress (Core's `help` files it under "util"): whether an address is valid for the node's
network, with its scriptPubKey and witness program (Core's DescribeAddress). Not here: descriptors
(getdescriptorinfo, deriveaddresses) and createmultisig, which the node does not offer.
"""

from __future__ import annotations

from typing import Any

from pithead.chain.address import AddressError, address_to_script
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.util import Arg, Command

OP_0, OP_1, OP_16, OP_HASH160 = 0x00, 0x51, 0x60, 0xA9
WITNESS_32_OUTPUT_SIZE = 34  # version opcode + push of a 32-byte program: P2WSH (v0) or P2TR (v1)


async def validateaddress(node: NodeContext, address: str) -> Any:
    try:
        script = address_to_script(address, node.network)
    except AddressError as exc:
        return {"isvalid": False, "error_locations": [], "error": str(exc)}
    out: dict[str, Any] = {
        "isvalid": True,
        "address": address,
        "scriptPubKey": script.hex(),
        # Core's DescribeAddress: P2SH, P2WSH and P2TR are scripts
        "isscript": script[0] == OP_HASH160
        or (len(script) == WITNESS_32_OUTPUT_SIZE and script[0] in (OP_0, OP_1)),
        "iswitness": script[0] == OP_0 or OP_1 <= script[0] <= OP_16,
    }
    if out["iswitness"]:
        out["witness_version"] = 0 if script[0] == OP_0 else script[0] - (OP_1 - 1)
        out["witness_program"] = script[2:].hex()
    return out


COMMANDS: tuple[Command, ...] = (Command("validateaddress", validateaddress, (Arg("address", "str", True),)),)

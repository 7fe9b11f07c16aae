"""The embedded node's ZMQ RPC method, as Bitcoin Core's src/zmq/zmqrpc.cpp has it.

getzmqnotifications: every active publisher as Core lists them (type `pub<topic>`, address, high-water
mark), in Core's order (sorted by type), so a pool can find the node's hashblock/rawblock endpoints the
way it finds Core's. Not here: the publishers (pithead.node.zmqpub).
"""

from __future__ import annotations

from typing import Any

from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.util import Command

DEFAULT_ZMQ_SNDHWM = 1000  # Core's DEFAULT_ZMQ_SNDHWM, reported as each publisher's "hwm"


async def getzmqnotifications(node: NodeContext) -> Any:
    return [
        {"type": f"pub{topic}", "address": address, "hwm": DEFAULT_ZMQ_SNDHWM}
        for topic, address in sorted(node.zmq_endpoints.items())
    ]


COMMANDS: tuple[Command, ...] = (Command("getzmqnotifications", getzmqnotifications),)

"""pithead.node: the embedded regtest/demo node (Bitcoin Core's JSON-RPC and ZMQ dialect, SQLite chain).

`EmbeddedNode` runs in-process in any asyncio program; `pithead node` runs it from the command line. It is
a mining node, not a full validator: see `pithead.node.consensus` for what it checks.
"""

from pithead.node.node import EmbeddedNode, EmbeddedNodeError

__all__ = ["EmbeddedNode", "EmbeddedNodeError"]

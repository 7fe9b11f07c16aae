"""The embedded node's control RPC methods, as Bitcoin Core's src/rpc/server.cpp has them.

uptime (seconds since the node started), stop (the node stops once the answer is written) and getrpcinfo
(the calls in progress, with how long each has run, and the log's path; public-pool calls it to see that
the node answers). Not here: help, getmemoryinfo, logging (Core's; the embedded node does not offer
them), the dispatch table (server.py).
"""

from __future__ import annotations

from typing import Any

from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.util import Arg, Command

STOPPING = "pithead node stopping"  # stop's answer (Core's: "Bitcoin Core stopping")


async def uptime(node: NodeContext) -> Any:
    return node.uptime()


async def stop(node: NodeContext, wait: int | None = None) -> Any:
    node.request_stop()
    return STOPPING


async def getrpcinfo(node: NodeContext) -> Any:
    active = [{"method": method, "duration": micros} for method, micros in node.rpc_info.active()]
    return {"active_commands": active, "logpath": node.log_path}


COMMANDS: tuple[Command, ...] = (
    Command("uptime", uptime),
    Command("getrpcinfo", getrpcinfo),
    Command("stop", stop, (Arg("wait", "num"),)),
)

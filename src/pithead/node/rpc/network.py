"""The embedded node's network RPC methods, as Bitcoin Core's src/rpc/net.cpp has them.

getnetworkinfo, getpeerinfo and getconnectioncount, answered as a Core 29 regtest node with no peers
answers them: clients (and pithead's own template sources) read `version` and `subversion` from
getnetworkinfo, pools count peers with the other two (an empty list, 0). Not here: bans, addresses,
adding nodes (the embedded node has no P2P side).
"""

from __future__ import annotations

from typing import Any

from pithead import __version__
from pithead.node.mempool import MIN_RELAY_FEE_PER_KVB
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.format import btc
from pithead.node.rpc.util import Command

PROTOCOL_VERSION = 70016  # Core's PROTOCOL_VERSION (version.h)
NODE_VERSION = 290000  # reported like Core's CLIENT_VERSION (29.0.0): clients gate features on it
NETWORKS = ("ipv4", "ipv6", "onion", "i2p", "cjdns")  # Core's GetNetworksInfo, in Core's order
REACHABLE = ("ipv4", "ipv6")  # the networks a node without a proxy reaches


async def getnetworkinfo(node: NodeContext) -> Any:
    networks = [
        {
            "name": n,
            "limited": n not in REACHABLE,
            "reachable": n in REACHABLE,
            "proxy": "",
            "proxy_randomize_credentials": False,
        }
        for n in NETWORKS
    ]
    return {
        "version": NODE_VERSION,
        "subversion": f"/pithead:{__version__}/",
        "protocolversion": PROTOCOL_VERSION,
        "localservices": "0000000000000c08",
        "localservicesnames": ["WITNESS", "NETWORK_LIMITED"],
        "localrelay": True,
        "timeoffset": 0,
        "networkactive": True,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": networks,
        "relayfee": btc(MIN_RELAY_FEE_PER_KVB),
        "incrementalfee": btc(MIN_RELAY_FEE_PER_KVB),
        "localaddresses": [],
        "warnings": [],
    }


async def getpeerinfo(node: NodeContext) -> Any:
    return []


async def getconnectioncount(node: NodeContext) -> Any:
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("getnetworkinfo", getnetworkinfo),
    Command("getpeerinfo", getpeerinfo),
    Command("getconnectioncount", getconnectioncount),
)

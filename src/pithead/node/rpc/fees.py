"""The embedded node's fee estimation RPC method, as Bitcoin Core's src/rpc/fees.cpp has it.

estimatesmartfee with Core's argument checks and answer shape. The node keeps no fee estimator (Core's
CBlockPolicyEstimator needs many blocks of mempool history), so the answer is the one Core gives a node
without enough data: `{"errors": ["Insufficient data or no feerate found"], "blocks": 0}`; payout
software falls back to its own fee rate on it, as it must with a fresh Core node. Not here:
estimaterawfee (Core's hidden method), the wallet's fee rate (wallet.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.util import Arg, Command, parse_int32

MAX_CONF_TARGET = 1008  # Core: HighestTargetTracked(LONG_HALFLIFE), the longest horizon estimated
ESTIMATE_MODES = ("unset", "economical", "conservative")  # Core's FeeModes, case-insensitive
NO_ESTIMATE = "Insufficient data or no feerate found"


async def estimatesmartfee(node: NodeContext, conf_target: Any, estimate_mode: str = "unset") -> Any:
    target = parse_int32(conf_target)
    if not 1 <= target <= MAX_CONF_TARGET:
        raise RPCError(
            codes.RPC_INVALID_PARAMETER, f"Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}"
        )
    if estimate_mode.lower() not in ESTIMATE_MODES:
        raise RPCError(
            codes.RPC_INVALID_PARAMETER,
            'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"',
        )
    return {"errors": [NO_ESTIMATE], "blocks": 0}


COMMANDS: tuple[Command, ...] = (
    Command(
        "estimatesmartfee", estimatesmartfee, (Arg("conf_target", "num", True), Arg("estimate_mode", "str"))
    ),
)

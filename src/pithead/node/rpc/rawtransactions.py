"""The embedded node's raw-transaction RPC methods, as Bitcoin Core's src/rpc/rawtransaction.cpp has them.

getrawtransaction: a transaction from the mempool or, as with Core's -txindex, from the active chain,
as hex or as Core's decoded JSON with its block's hash, confirmations and time. Not here:
sendrawtransaction (Core's rpc/mempool.cpp: mempool.py here), the transaction JSON itself (format.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.chain.hashes import display_hex
from pithead.chain.tx import Transaction
from pithead.node.chainstate import IndexEntry
from pithead.node.rpc.context import NodeContext, ensure_chain
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import tx_json
from pithead.node.rpc.util import Arg, Command, parse_hash


async def getrawtransaction(
    node: NodeContext, txid: str, verbose: int | bool = 0, blockhash: str | None = None
) -> Any:
    chain = ensure_chain(node)
    h = parse_hash(txid, "txid")
    e = node.mempool.entries.get(h)
    tx: Transaction | None = e.tx if e else None
    block_entry: IndexEntry | None = None
    if tx is None:
        loc = chain.tx_location(h)
        if loc is not None:
            block_entry = chain.index[loc[0]]
            tx = chain.read_block(loc[0]).txs[loc[1]]
    if tx is None:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction.")
    if not verbose:
        return tx.serialize().hex()
    out = tx_json(tx, node.network)
    if block_entry is not None:
        out["blockhash"] = display_hex(block_entry.hash)
        out["confirmations"] = chain.confirmations(block_entry)
        out["time"] = out["blocktime"] = block_entry.header.time
    return out


COMMANDS: tuple[Command, ...] = (
    Command(
        "getrawtransaction",
        getrawtransaction,
        (Arg("txid", "str", True), Arg("verbose", "numbool"), Arg("blockhash", "str")),
    ),
)

"""The embedded node's mempool RPC methods, as Bitcoin Core's src/rpc/mempool.cpp has them.

getrawmempool (verbose, mempool_sequence), getmempoolinfo, getmempoolentry and sendrawtransaction, with
Core's field names, order and units (`help` files the first three under "blockchain" and
sendrawtransaction under "rawtransactions", as Core does). `broadcast` is Core's BroadcastTransaction
(node/transaction.cpp): into the mempool, its refusals turned into Core's RPC errors; the wallet's
sendmany uses it too. Not here: the pool itself (pithead.node.mempool), getrawtransaction
(rawtransactions.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.chain.errors import ChainError
from pithead.chain.hashes import display_hex
from pithead.chain.tx import Transaction
from pithead.node.mempool import MIN_RELAY_FEE_PER_KVB, MempoolReject
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import btc
from pithead.node.rpc.util import BIP125_FINAL_SEQUENCE, Arg, Command, parse_hash


def mempool_entry_json(node: NodeContext, txid: bytes) -> dict[str, Any]:
    """Core's entryToJSON: one mempool transaction with its in-mempool ancestors and descendants."""
    mp = node.mempool
    e = mp.entries[txid]
    ancestors: set[bytes] = set()
    stack = mp.parents(e)
    while stack:
        p = stack.pop()
        if p not in ancestors:
            ancestors.add(p)
            stack.extend(mp.parents(mp.entries[p]))
    descendants: set[bytes] = set()
    stack = mp.children(txid)
    while stack:
        c = stack.pop()
        if c not in descendants:
            descendants.add(c)
            stack.extend(mp.children(c))
    anc = [mp.entries[a] for a in ancestors]
    desc = [mp.entries[d] for d in descendants]
    return {
        "vsize": e.vsize,
        "weight": e.weight,
        "time": e.time,
        "height": e.height,
        "descendantcount": 1 + len(desc),
        "descendantsize": e.vsize + sum(d.vsize for d in desc),
        "ancestorcount": 1 + len(anc),
        "ancestorsize": e.vsize + sum(a.vsize for a in anc),
        "wtxid": display_hex(e.wtxid),
        "fees": {
            "base": btc(e.fee),
            "modified": btc(e.fee),
            "ancestor": btc(e.fee + sum(a.fee for a in anc)),
            "descendant": btc(e.fee + sum(d.fee for d in desc)),
        },
        "depends": [display_hex(p) for p in mp.parents(e)],
        "spentby": [display_hex(c) for c in mp.children(txid)],
        "bip125-replaceable": any(i.sequence < BIP125_FINAL_SEQUENCE for i in e.tx.inputs),
        "unbroadcast": False,
    }


def broadcast(node: NodeContext, tx: Transaction) -> bytes:
    """Core's BroadcastTransaction: into the mempool, or Core's RPC error for the refusal; the txid."""
    txid = tx.txid()
    if txid in node.mempool:
        return txid  # Core answers the txid again for a transaction it already has
    try:
        node.accept_transaction(tx)
    except MempoolReject as exc:
        if exc.reason == "txn-already-known":
            raise RPCError(codes.RPC_VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain") from None
        if exc.missing_inputs:
            raise RPCError(codes.RPC_VERIFY_ERROR, "bad-txns-inputs-missingorspent") from None
        raise RPCError(codes.RPC_VERIFY_REJECTED, exc.reason) from None
    return txid


async def getrawmempool(node: NodeContext, verbose: bool = False, mempool_sequence: bool = False) -> Any:
    if verbose:
        return {display_hex(t): mempool_entry_json(node, t) for t in node.mempool.entries}
    txids = [display_hex(t) for t in node.mempool.entries]
    if mempool_sequence:
        return {"txids": txids, "mempool_sequence": node.mempool.transactions_updated}
    return txids


async def getmempoolinfo(node: NodeContext) -> Any:
    mp = node.mempool
    return {
        "loaded": True,
        "size": len(mp),
        "bytes": sum(e.vsize for e in mp.entries.values()),
        "usage": sum(len(e.tx.serialize()) for e in mp.entries.values()),
        "total_fee": btc(sum(e.fee for e in mp.entries.values())),
        "maxmempool": 300_000_000,
        "mempoolminfee": btc(MIN_RELAY_FEE_PER_KVB),
        "minrelaytxfee": btc(MIN_RELAY_FEE_PER_KVB),
        "incrementalrelayfee": btc(MIN_RELAY_FEE_PER_KVB),
        "unbroadcastcount": 0,
        "fullrbf": True,
    }


async def getmempoolentry(node: NodeContext, txid: str) -> Any:
    h = parse_hash(txid, "txid")
    if h not in node.mempool:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return mempool_entry_json(node, h)


async def sendrawtransaction(
    node: NodeContext, hexstring: str, maxfeerate: Any = None, maxburnamount: Any = None
) -> Any:
    try:
        tx = Transaction.from_hex(hexstring)
    except ChainError:
        raise RPCError(
            codes.RPC_DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input."
        ) from None
    return display_hex(broadcast(node, tx))


COMMANDS: tuple[Command, ...] = (
    Command("getrawmempool", getrawmempool, (Arg("verbose", "bool"), Arg("mempool_sequence", "bool"))),
    Command("getmempoolinfo", getmempoolinfo),
    Command("getmempoolentry", getmempoolentry, (Arg("txid", "str", True),)),
    Command(
        "sendrawtransaction",
        sendrawtransaction,
        (Arg("hexstring", "str", True), Arg("maxfeerate", "amount"), Arg("maxburnamount", "amount")),
    ),
)

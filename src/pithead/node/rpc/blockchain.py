"""The embedded node's blockchain RPC methods, as Bitcoin Core's src/rpc/blockchain.cpp has them.

getblockchaininfo, getbestblockhash, getblockcount, getblockhash, getblockheader, getblock (verbosity
0/1/2), getdifficulty, getchaintips, preciousblock, gettxoutsetinfo (hash_type "none" only): Core's field
names, order, types and units, read from the chain state. Not here: the mempool's methods (Core's
rpc/mempool.cpp: mempool.py here), though `help` files both under "blockchain"; the JSON of headers and blocks (format.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.chain.compact import bits_to_difficulty, bits_to_target
from pithead.chain.hashes import display_hex
from pithead.node.chainstate import STATUS_FAILED, IndexEntry
from pithead.node.rpc.context import NodeContext, ensure_chain
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import block_json, btc, core_double, header_json
from pithead.node.rpc.util import Arg, Command, parse_hash


def lookup_block(node: NodeContext, blockhash: str) -> IndexEntry:
    """The block index entry for a display-hex hash (Core's LookupBlockIndex), else -5."""
    e = ensure_chain(node).index.get(parse_hash(blockhash, "blockhash"))
    if e is None:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    return e


async def getblockchaininfo(node: NodeContext) -> Any:
    chain = ensure_chain(node)
    tip = chain.tip
    return {
        "chain": chain.network.name,
        "blocks": tip.height,
        "headers": max((e.height for e in chain.index.values() if e.status != STATUS_FAILED), default=0),
        "bestblockhash": display_hex(tip.hash),
        "bits": f"{tip.header.bits:08x}",
        "target": f"{bits_to_target(tip.header.bits):064x}",
        "difficulty": core_double(bits_to_difficulty(tip.header.bits)),
        "time": tip.header.time,
        "mediantime": chain.median_time_past(tip),
        "verificationprogress": 1,
        "initialblockdownload": False,
        "chainwork": f"{tip.chainwork:064x}",
        "size_on_disk": chain.size_on_disk(),
        "pruned": False,
        "warnings": [],
    }


async def getbestblockhash(node: NodeContext) -> Any:
    return display_hex(ensure_chain(node).tip.hash)


async def getblockcount(node: NodeContext) -> Any:
    return ensure_chain(node).height


async def getblockhash(node: NodeContext, height: int) -> Any:
    chain = ensure_chain(node)
    if not isinstance(height, int) or not 0 <= height <= chain.height:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Block height out of range")
    return display_hex(chain.active[height])


async def getblockheader(node: NodeContext, blockhash: str, verbose: bool = True) -> Any:
    e = lookup_block(node, blockhash)
    if not verbose:
        return e.header.serialize().hex()
    return header_json(ensure_chain(node), e)


async def getblock(node: NodeContext, blockhash: str, verbosity: int | bool = 1) -> Any:
    e = lookup_block(node, blockhash)
    chain = ensure_chain(node)
    if not chain.has_data(e):  # a header from submitheader (Core's GetBlockChecked: ReadBlock fails)
        raise RPCError(codes.RPC_MISC_ERROR, "Block not found on disk")
    level = int(verbosity)
    if level <= 0:
        return chain.raw_block(e.hash).hex()
    return block_json(chain, e, min(level, 2))


async def getdifficulty(node: NodeContext) -> Any:
    return core_double(bits_to_difficulty(ensure_chain(node).tip.header.bits))


async def getchaintips(node: NodeContext) -> Any:
    chain = ensure_chain(node)
    out = []
    for e in chain.tips():
        out.append(
            {
                "height": e.height,
                "hash": display_hex(e.hash),
                "branchlen": e.height - chain.fork_point(e).height,
                "status": chain.branch_status(e),
            }
        )
    return out


async def preciousblock(node: NodeContext, blockhash: str) -> Any:
    e = lookup_block(node, blockhash)
    node.precious_block(e.hash)
    return None


async def gettxoutsetinfo(
    node: NodeContext, hash_type: str = "none", hash_or_height: Any = None, use_index: bool = True
) -> Any:
    """Core's UTXO set statistics for the tip (hash_type "none" only: no hash_serialized_3/muhash)."""
    if hash_type != "none":
        raise RPCError(codes.RPC_INVALID_PARAMETER, f"{hash_type} is not a valid hash_type (this node: none)")
    if hash_or_height is not None:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Querying specific block heights requires coinstatsindex")
    chain = ensure_chain(node)
    n, txs, total, bogo = chain.utxo_stats()
    return {
        "height": chain.height,
        "bestblock": display_hex(chain.tip.hash),
        "txouts": n,
        "bogosize": bogo,
        "total_amount": btc(total),
        "transactions": txs,
        "disk_size": chain.size_on_disk(),
    }


COMMANDS: tuple[Command, ...] = (
    Command("getblockchaininfo", getblockchaininfo),
    Command("getbestblockhash", getbestblockhash),
    Command("getblockcount", getblockcount),
    Command("getblockhash", getblockhash, (Arg("height", "num", True),)),
    Command("getblockheader", getblockheader, (Arg("blockhash", "str", True), Arg("verbose", "bool"))),
    Command("getblock", getblock, (Arg("blockhash", "str", True), Arg("verbosity", "numbool"))),
    Command("getdifficulty", getdifficulty),
    Command("getchaintips", getchaintips),
    Command("preciousblock", preciousblock, (Arg("blockhash", "str", True),)),
    Command(
        "gettxoutsetinfo",
        gettxoutsetinfo,
        (Arg("hash_type", "str"), Arg("hash_or_height", "any"), Arg("use_index", "bool")),
    ),
)

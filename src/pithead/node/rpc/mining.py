"""The embedded node's mining RPC methods, as Bitcoin Core's src/rpc/mining.cpp has them.

getblocktemplate (BIP22/23: template mode with long-poll, and proposal mode), submitblock (with Core's
block fix-up, UpdateUncommittedBlockStructures: the coinbase witness nonce, and Core's BIP22 verdicts),
submitheader, getmininginfo and getnetworkhashps (Core's GetNetworkHashPS), and the regtest generators
generatetoaddress and generateblock (descriptor `raw(…)`/`addr(…)` or a plain address; transactions by
mempool txid or raw hex). Not here: building the template and the blocks (pithead.node.mining,
assembler.py), validation (consensus.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.chain.block import Block
from pithead.chain.compact import bits_to_difficulty, bits_to_target
from pithead.chain.errors import ChainError
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.tx import Transaction
from pithead.node.chainstate import STATUS_FAILED, STATUS_VALID
from pithead.node.consensus import BlockInvalid
from pithead.node.mining import assemble_block, solve, template_result
from pithead.node.rpc.context import NodeContext, ensure_chain
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import core_double
from pithead.node.rpc.util import Arg, Command, parse_int32, script_for_address, type_error

DEFAULT_MAX_TRIES = 1_000_000  # Core's generatetoaddress default maxtries
MAX_GENERATE = 10_000  # blocks per generate call: bounds how long one call holds the event loop
NETWORK_HASHPS_LOOKUP = 120  # Core's getnetworkhashps default nblocks, as getmininginfo uses it
DIFFICULTY_ADJUSTMENT_INTERVAL = 2016  # regtest's DifficultyAdjustmentInterval (getnetworkhashps -1)
CURRENT_BLOCK_WEIGHT = 4000  # getmininginfo's currentblockweight as Core's regtest node reports it


async def getblocktemplate(node: NodeContext, template_request: dict[str, Any] | None = None) -> Any:
    chain = ensure_chain(node)
    req = template_request or {}
    mode = req.get("mode", "template")
    if mode == "proposal":
        data = req.get("data")
        if not isinstance(data, str):
            raise RPCError(codes.RPC_TYPE_ERROR, "Missing data String key for proposal")
        try:
            block = Block.from_hex(data)
        except ChainError:
            raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
        known = chain.index.get(block.hash())
        if known is not None:  # Core: fully valid, failed, or anything else it has seen
            if known.status == STATUS_VALID:
                return "duplicate"
            return "duplicate-invalid" if known.status == STATUS_FAILED else "duplicate-inconclusive"
        try:
            chain.test_block_validity(block, node.now())
        except BlockInvalid as exc:
            return exc.reason
        return None
    if mode != "template":
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Invalid mode")
    rules = req.get("rules")
    if not isinstance(rules, list) or "segwit" not in rules:
        raise RPCError(
            codes.RPC_INVALID_PARAMETER,
            'getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})',
        )
    if chain.kind == "signet" and "signet" not in rules:  # Core refuses, as here (rpc/mining.cpp)
        raise RPCError(
            codes.RPC_INVALID_PARAMETER,
            'getblocktemplate must be called with the signet rule set (call with {"rules": ["segwit", "signet"]})',
        )
    lpid = req.get("longpollid")
    if lpid is not None:
        if not isinstance(lpid, str):
            raise RPCError(codes.RPC_TYPE_ERROR, "Invalid longpollid")
        await node.wait_for_change(lpid)
    return template_result(chain, node.mempool, node.now())


async def submitblock(node: NodeContext, hexdata: str, dummy: str | None = None) -> Any:
    try:
        block = Block.from_hex(hexdata)
    except ChainError:
        raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
    if not block.txs or not block.txs[0].is_coinbase():
        raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    block = ensure_chain(node).update_uncommitted_block_structures(block)
    return node.submit_block(block).reason


async def submitheader(node: NodeContext, hexdata: str) -> Any:
    """Core's submitheader: null when the header is valid (it is then known, without its block)."""
    try:
        header = BlockHeader.from_hex(hexdata)
    except ChainError:
        raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "Block header decode failed") from None
    chain = ensure_chain(node)
    if header.prev_hash not in chain.index:
        raise RPCError(
            codes.RPC_VERIFY_ERROR, f"Must submit previous header ({display_hex(header.prev_hash)}) first"
        )
    reason = chain.accept_header(header, node.now())
    if reason is not None:
        raise RPCError(codes.RPC_VERIFY_ERROR, reason)
    return None


async def generatetoaddress(
    node: NodeContext, nblocks: int, address: str, maxtries: int = DEFAULT_MAX_TRIES
) -> Any:
    script = script_for_address(node, address)
    if not 0 <= nblocks <= MAX_GENERATE:
        raise RPCError(codes.RPC_INVALID_PARAMETER, f"nblocks must be between 0 and {MAX_GENERATE}")
    return [display_hex(h) for h in node.mine(script, int(nblocks), int(maxtries))]


async def generateblock(node: NodeContext, output: str, transactions: list[Any], submit: bool = True) -> Any:
    chain = ensure_chain(node)
    if output.startswith("raw(") and output.endswith(")"):
        try:
            script = bytes.fromhex(output[4:-1])
        except ValueError:
            raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor") from None
    else:
        addr = output[5:-1] if output.startswith("addr(") and output.endswith(")") else output
        script = script_for_address(node, addr, "Error: Invalid address or descriptor")
    txs: list[Transaction] = []
    for item in transactions:
        if not isinstance(item, str):
            raise type_error(item, "string")
        if len(item) == 64:
            try:
                txid = from_display_hex(item)
            except ChainError:
                txid = b""
            if txid:
                e = node.mempool.entries.get(txid)
                if e is None:
                    raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, f"Transaction {item} not in mempool.")
                txs.append(e.tx)
                continue
        try:
            txs.append(Transaction.from_hex(item))
        except ChainError:
            raise RPCError(
                codes.RPC_DESERIALIZATION_ERROR,
                f"Transaction decode failed for {item}. Make sure the tx has at least one input.",
            ) from None
    fees = sum(node.fee_of(tx) for tx in txs)
    block = assemble_block(chain, script, txs, node.now(), fees=fees)
    solved = solve(block, DEFAULT_MAX_TRIES)
    if solved is None:
        raise RPCError(codes.RPC_MISC_ERROR, "Failed to make block.")
    try:
        chain.test_block_validity(solved, node.now())
    except BlockInvalid as exc:
        raise RPCError(codes.RPC_VERIFY_ERROR, f"TestBlockValidity failed: {exc.reason}") from None
    if not submit:
        return {"hash": solved.hash_hex(), "hex": solved.hex()}
    result = node.submit_block(solved)
    if result.reason is not None:
        raise RPCError(codes.RPC_VERIFY_ERROR, f"ProcessNewBlock, block not accepted: {result.reason}")
    return {"hash": solved.hash_hex()}


async def getmininginfo(node: NodeContext) -> Any:
    chain = ensure_chain(node)
    tip = chain.tip
    nxt = chain.next_bits(tip)
    return {
        "blocks": tip.height,
        "currentblockweight": CURRENT_BLOCK_WEIGHT,
        "currentblocktx": 0,
        "bits": f"{tip.header.bits:08x}",
        "difficulty": core_double(bits_to_difficulty(tip.header.bits)),
        "target": f"{bits_to_target(tip.header.bits):064x}",
        "networkhashps": network_hashps(node),
        "pooledtx": len(node.mempool),
        "chain": chain.network.name,
        "next": {
            "height": tip.height + 1,
            "bits": f"{nxt:08x}",
            "difficulty": core_double(bits_to_difficulty(nxt)),
            "target": f"{bits_to_target(nxt):064x}",
        },
        **({"signet_challenge": chain.signet_challenge.hex()} if chain.kind == "signet" else {}),
        "warnings": [],
    }


def network_hashps(node: NodeContext, lookup: int = NETWORK_HASHPS_LOOKUP, height: int = -1) -> float:
    """Core's GetNetworkHashPS: the work of the `lookup` blocks ending at `height` (the tip for -1) over
    the span between the earliest and latest of their times; -1 blocks means since the last retarget."""
    chain = ensure_chain(node)
    if lookup < -1 or lookup == 0:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Invalid nblocks. Must be a positive number or -1.")
    if height < -1 or height > chain.height:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Block does not exist at specified height")
    last = chain.tip if height == -1 else chain.entry_at(height)
    if last.height == 0:
        return 0
    if lookup == -1:
        lookup = last.height % DIFFICULTY_ADJUSTMENT_INTERVAL + 1
    lookup = min(lookup, last.height)
    first = chain.entry_at(last.height - lookup)
    times = [chain.entry_at(h).header.time for h in range(first.height, last.height + 1)]
    span = max(times) - min(times)
    return core_double((last.chainwork - first.chainwork) / span) if span > 0 else 0


async def getnetworkhashps(node: NodeContext, nblocks: Any = NETWORK_HASHPS_LOOKUP, height: Any = -1) -> Any:
    return network_hashps(node, parse_int32(nblocks), parse_int32(height))


COMMANDS: tuple[Command, ...] = (
    Command("getblocktemplate", getblocktemplate, (Arg("template_request", "obj"),)),
    Command("submitblock", submitblock, (Arg("hexdata", "str", True), Arg("dummy", "str"))),
    Command("submitheader", submitheader, (Arg("hexdata", "str", True),)),
    Command("getmininginfo", getmininginfo),
    Command("getnetworkhashps", getnetworkhashps, (Arg("nblocks", "num"), Arg("height", "num"))),
    Command(
        "generatetoaddress",
        generatetoaddress,
        (Arg("nblocks", "num", True), Arg("address", "str", True), Arg("maxtries", "num")),
    ),
    Command(
        "generateblock",
        generateblock,
        (Arg("output", "str", True), Arg("transactions", "arr", True), Arg("submit", "bool")),
    ),
)

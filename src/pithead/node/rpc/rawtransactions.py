"""The embedded node's raw-transaction RPC methods, as Bitcoin Core's src/rpc/rawtransaction.cpp has them.

getrawtransaction: a transaction from the mempool or, as with Core's -txindex, from the active chain (or
from the block a `blockhash` names), as hex or as Core's decoded JSON with its block's hash,
confirmations and time. decoderawtransaction: Core's TxToUniv of any transaction (ckpool checks every
coinbase it builds with it). decodescript: a script's asm, descriptor, type and address, and the P2SH
and segwit forms it can be wrapped in, as Core's decodescript decides. Not here: sendrawtransaction (Core's
rpc/mempool.cpp: mempool.py here), verbosity 2's prevouts, the transaction JSON itself (format.py).
"""

from __future__ import annotations

from typing import Any

from pithead.bitcoind import codes
from pithead.chain.address import script_to_address
from pithead.chain.errors import ChainError
from pithead.chain.hashes import display_hex, hash160, sha256
from pithead.chain.script import MAX_SCRIPT_ELEMENT_SIZE, p2sh_script, witness_program_script
from pithead.chain.tx import Transaction
from pithead.node.chainstate import IndexEntry
from pithead.node.genesis import regtest_genesis
from pithead.node.rpc.context import NodeContext, ensure_chain
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import multisig_keys, script_pubkey_json, script_type, tx_json, with_checksum
from pithead.node.rpc.util import Arg, Command, parse_hash

NOT_FOUND_HINT = " Use gettransaction for wallet transactions."  # Core appends it to every "not found"
OP_RETURN, OP_CHECKSIGADD, MAX_OPCODE = 0x6A, 0xBA, 0xB9  # script.h (MAX_OPCODE = OP_NOP10)
OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4 = 0x4C, 0x4D, 0x4E
MAX_SCRIPT_SIZE = 10_000  # script.h: a larger script is unspendable
# Core's Solver types that decodescript may wrap in P2SH (if its opcodes allow), and in P2WSH/P2WPKH
WRAPPABLE = frozenset(
    {"multisig", "nonstandard", "pubkey", "pubkeyhash", "witness_v0_keyhash", "witness_v0_scripthash"}
)
SEGWIT_WRAPPABLE = frozenset({"multisig", "pubkey", "nonstandard", "pubkeyhash"})
GENESIS_COINBASE_TXID = regtest_genesis().txs[0].txid()  # Core refuses to return it (it is not spendable)
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


async def getrawtransaction(
    node: NodeContext, txid: str, verbose: int | bool = 0, blockhash: str | None = None
) -> Any:
    chain = ensure_chain(node)
    h = parse_hash(txid, "txid")
    if h == GENESIS_COINBASE_TXID:
        raise RPCError(
            codes.RPC_INVALID_ADDRESS_OR_KEY,
            "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",
        )
    tx: Transaction | None = None
    block_entry: IndexEntry | None = None
    if blockhash is not None:
        named = chain.index.get(parse_hash(blockhash, "parameter 3"))
        if named is None:
            raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
        if not chain.has_data(named):
            raise RPCError(codes.RPC_MISC_ERROR, "Block not available")
        tx = next((t for t in chain.read_block(named.hash).txs if t.txid() == h), None)
        if tx is None:
            raise RPCError(
                codes.RPC_INVALID_ADDRESS_OR_KEY,
                "No such transaction found in the provided block." + NOT_FOUND_HINT,
            )
        block_entry = named
    else:
        e = node.mempool.entries.get(h)
        tx = e.tx if e else None
        if tx is None:
            loc = chain.tx_location(h)
            if loc is not None:
                block_entry = chain.index[loc[0]]
                tx = chain.read_block(loc[0]).txs[loc[1]]
    if tx is None:
        raise RPCError(
            codes.RPC_INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction." + NOT_FOUND_HINT
        )
    if not verbose:
        return tx.serialize().hex()
    out: dict[str, Any] = {}
    if blockhash is not None and block_entry is not None:
        out["in_active_chain"] = chain.is_active(block_entry)
    out.update(tx_json(tx, node.network))
    if block_entry is not None:
        out["blockhash"] = display_hex(block_entry.hash)
        if chain.is_active(block_entry):
            out["confirmations"] = chain.confirmations(block_entry)
            out["time"] = out["blocktime"] = block_entry.header.time
        else:
            out["confirmations"] = 0
    return out


async def decoderawtransaction(node: NodeContext, hexstring: str, iswitness: bool | None = None) -> Any:
    try:
        tx = Transaction.from_hex(hexstring)
    except ChainError:
        raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
    if iswitness is False and tx.has_witness():  # asked to read it as a transaction without witness
        raise RPCError(codes.RPC_DESERIALIZATION_ERROR, "TX decode failed")
    return tx_json(tx, node.network, include_hex=False)


def _ops(script: bytes) -> list[int] | None:
    """The opcodes of a script (pushes as their push opcode), or None where a push runs past the end or
    exceeds MAX_SCRIPT_ELEMENT_SIZE (Core's GetOp failing)."""
    ops: list[int] = []
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        size = 0
        if op < OP_PUSHDATA1:
            size = op
        elif op in (OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4):
            width = {OP_PUSHDATA1: 1, OP_PUSHDATA2: 2, OP_PUSHDATA4: 4}[op]
            if i + width > len(script):
                return None
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        if i + size > len(script) or size > MAX_SCRIPT_ELEMENT_SIZE:
            return None
        i += size
        ops.append(op)
    return ops


def _is_op_success(op: int) -> bool:
    """BIP342's OP_SUCCESSx (Core's IsOpSuccess)."""
    return (
        op in (80, 98)
        or 126 <= op <= 129
        or 131 <= op <= 134
        or 137 <= op <= 138
        or 141 <= op <= 142
        or 149 <= op <= 153
        or 187 <= op <= 254
    )


def _can_wrap(script: bytes, kind: str) -> bool:
    """Core's decodescript: whether a script of this type may be wrapped in P2SH (valid opcodes, not
    unspendable, no OP_CHECKSIGADD or OP_SUCCESSx)."""
    if kind not in WRAPPABLE:
        return False
    ops = _ops(script)
    if ops is None or any(op > MAX_OPCODE for op in ops):
        return False
    if (script and script[0] == OP_RETURN) or len(script) > MAX_SCRIPT_SIZE:
        return False
    return not any(op == OP_CHECKSIGADD or _is_op_success(op) for op in ops)


def _can_wrap_segwit(script: bytes, kind: str) -> bool:
    """P2WSH/P2WPKH: never for scripts that are already P2SH or witness programs, and only with
    compressed keys (uncompressed keys are not allowed in segwit scripts)."""
    if kind not in SEGWIT_WRAPPABLE:
        return False
    if kind == "pubkey":
        return len(script) == 35
    if kind == "multisig":
        found = multisig_keys(script)
        return found is not None and all(len(k) == 33 for k in found[1])
    return True


async def decodescript(node: NodeContext, hexstring: str) -> Any:
    if len(hexstring) % 2 or not set(hexstring) <= HEX_DIGITS:  # Core's ParseHexV
        raise RPCError(
            codes.RPC_INVALID_PARAMETER, f"argument must be hexadecimal string (not '{hexstring}')"
        )
    script = bytes.fromhex(hexstring)
    net = node.network
    out = {k: v for k, v in script_pubkey_json(script, net).items() if k != "hex"}  # no hex, as Core
    kind = script_type(script)
    if not _can_wrap(script, kind):
        return out
    out["p2sh"] = script_to_address(p2sh_script(hash160(script)), net)
    if not _can_wrap_segwit(script, kind):
        return out
    if kind == "pubkey":
        segwit = witness_program_script(0, hash160(script[1:-1]))
    elif kind == "pubkeyhash":
        segwit = witness_program_script(0, script[3:23])
    else:
        segwit = witness_program_script(0, sha256(script))
    inner = script_pubkey_json(segwit, net)
    multisig = multisig_keys(script)
    if multisig is not None:  # Core infers the witness script it was given: wsh(multi(...))
        keys = ",".join(k.hex() for k in multisig[1])
        inner["desc"] = with_checksum(f"wsh(multi({multisig[0]},{keys}))")
    inner["p2sh-segwit"] = script_to_address(p2sh_script(hash160(segwit)), net)
    out["segwit"] = inner
    return out


COMMANDS: tuple[Command, ...] = (
    Command(
        "getrawtransaction",
        getrawtransaction,
        (Arg("txid", "str", True), Arg("verbose", "numbool"), Arg("blockhash", "str")),
    ),
    Command(
        "decoderawtransaction",
        decoderawtransaction,
        (Arg("hexstring", "str", True), Arg("iswitness", "bool")),
    ),
    Command("decodescript", decodescript, (Arg("hexstring", "str", True),)),
)

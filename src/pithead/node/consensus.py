"""The block and transaction rules the embedded node enforces, as pure functions (no I/O, no clock).

This is a *mining* node's rule set, not a full validator. It checks what a pool or a miner can get wrong:
proof of work against the expected nBits, the previous block, timestamps (above median-time-past, at most
two hours ahead), the merkle root including the CVE-2012-2459 duplicate-transaction mutation, the BIP34
height, the coinbase value (subsidy + fees), the BIP141 witness commitment, block weight, that inputs
exist and are unspent, and coinbase maturity. Scripts are checked only where no signature is involved
(scripts.py: P2SH/P2WSH spends must reveal the right script, the node's anyone-can-spend scripts must be
spent correctly). Signatures (ECDSA/Schnorr), sigop counts and relative time locks are NOT checked: a
block spending someone else's coins with a bad signature would be accepted by this node.

Each failure raises `BlockInvalid(reason)`; the reason is the BIP22 string Bitcoin Core's submitblock
returns for the same fault (validation.cpp: "high-hash", "bad-txnmrklroot", "bad-cb-height", ...), so a
client sees the same verdicts from this node as from Core. The checks run in Core's order (CheckBlockHeader,
ContextualCheckBlockHeader, CheckBlock, ContextualCheckBlock, ConnectBlock) so the first fault reported is
the one Core would report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pithead.chain.block import MAX_BLOCK_WEIGHT, Block
from pithead.chain.errors import ChainError
from pithead.chain.header import BlockHeader
from pithead.chain.script import parse_bip34_height
from pithead.chain.tx import WITNESS_SCALE_FACTOR, OutPoint, Transaction
from pithead.chain.witness import WITNESS_RESERVED_VALUE, find_commitment, witness_commitment
from pithead.node.scripts import ScriptCheckError, check_spend

MAX_MONEY = 21_000_000 * 100_000_000  # Core amount.h: no output or sum may exceed it
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60  # Core chain.h: a block may be at most 2 h ahead of the node's clock
MEDIAN_TIME_SPAN = 11  # Core chain.h: median-time-past over the last 11 blocks
LOCKTIME_THRESHOLD = 500_000_000  # Core script.h: below is a height, at or above a UNIX time
MIN_COINBASE_SCRIPT, MAX_COINBASE_SCRIPT = 2, 100  # Core CheckTransaction: "bad-cb-length"
MIN_BLOCK_VERSION = 4  # regtest activates BIP34/66/65 at height 1: versions < 4 are "bad-version"


class BlockInvalid(Exception):
    """A block (or transaction) that breaks a rule; `reason` is Core's BIP22 / reject string."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output as the UTXO set keeps it."""

    value: int
    script_pubkey: bytes
    height: int
    is_coinbase: bool


@dataclass(frozen=True, slots=True)
class BlockDelta:
    """What connecting a block does to the UTXO set: coins it spends (kept as undo data) and creates."""

    spent: tuple[tuple[OutPoint, Coin], ...]
    created: tuple[tuple[OutPoint, Coin], ...]
    fees: int


def median_time_past(times_newest_first: Sequence[int]) -> int:
    """Median of the last (up to) 11 block times (Core: CBlockIndex::GetMedianTimePast)."""
    window = sorted(times_newest_first[:MEDIAN_TIME_SPAN])
    return window[len(window) // 2] if window else 0


# --- CheckBlockHeader / ContextualCheckBlockHeader ---


def check_header_pow(header: BlockHeader) -> None:
    if not header.check_pow():
        raise BlockInvalid("high-hash", "proof of work failed")


def check_header_context(header: BlockHeader, *, height: int, expected_bits: int, mtp: int, now: int) -> None:
    if header.bits != expected_bits:
        raise BlockInvalid("bad-diffbits", f"incorrect proof of work: expected {expected_bits:08x}")
    if header.time <= mtp:
        raise BlockInvalid("time-too-old", "block's timestamp is too early")
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        raise BlockInvalid("time-too-new", "block timestamp too far in the future")
    if height >= 1 and header.version < MIN_BLOCK_VERSION:
        raise BlockInvalid(f"bad-version(0x{header.version & 0xFFFFFFFF:08x})", "rejected nVersion block")


# --- CheckTransaction / CheckBlock ---


def check_transaction(tx: Transaction) -> None:
    if not tx.inputs:
        raise BlockInvalid("bad-txns-vin-empty")
    if not tx.outputs:
        raise BlockInvalid("bad-txns-vout-empty")
    if tx.base_size() * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise BlockInvalid("bad-txns-oversize")
    total = 0
    for out in tx.outputs:
        if out.value < 0:
            raise BlockInvalid("bad-txns-vout-negative")
        if out.value > MAX_MONEY:
            raise BlockInvalid("bad-txns-vout-toolarge")
        total += out.value
        if total > MAX_MONEY:
            raise BlockInvalid("bad-txns-txouttotal-toolarge")
    if len({i.prevout for i in tx.inputs}) != len(tx.inputs):
        raise BlockInvalid("bad-txns-inputs-duplicate")
    if tx.is_coinbase():
        if not MIN_COINBASE_SCRIPT <= len(tx.inputs[0].script_sig) <= MAX_COINBASE_SCRIPT:
            raise BlockInvalid("bad-cb-length")
    elif any(i.prevout.is_null() for i in tx.inputs):
        raise BlockInvalid("bad-txns-prevout-null")


def check_block(block: Block) -> None:
    """Context-free checks (Core's CheckBlock, after the header)."""
    root, mutated = block.computed_merkle_root()
    if root != block.header.merkle_root:
        raise BlockInvalid("bad-txnmrklroot", "hashMerkleRoot mismatch")
    if mutated:
        # CVE-2012-2459: duplicated trailing transactions give the same root; such a block is invalid,
        # and a node must not remember its *hash* as invalid, since the honest block shares it.
        raise BlockInvalid("bad-txns-duplicate", "duplicate transaction")
    if not block.txs or len(block.serialize(include_witness=False)) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise BlockInvalid("bad-blk-length", "size limits failed")
    if not block.txs[0].is_coinbase():
        raise BlockInvalid("bad-cb-missing", "first tx is not coinbase")
    if any(tx.is_coinbase() for tx in block.txs[1:]):
        raise BlockInvalid("bad-cb-multiple", "more than one coinbase")
    for tx in block.txs:
        check_transaction(tx)


def is_final(tx: Transaction, height: int, mtp: int) -> bool:
    """Core's IsFinalTx with the block's height and median-time-past (BIP113)."""
    if tx.locktime == 0:
        return True
    cutoff = height if tx.locktime < LOCKTIME_THRESHOLD else mtp
    if tx.locktime < cutoff:
        return True
    return all(i.sequence == 0xFFFFFFFF for i in tx.inputs)


def check_block_context(
    block: Block, *, height: int, mtp: int, bip34_active: bool, segwit_active: bool
) -> None:
    """Core's ContextualCheckBlock: finality, BIP34 height, witness commitment, weight."""
    for tx in block.txs:
        if not is_final(tx, height, mtp):
            raise BlockInvalid("bad-txns-nonfinal", "non-final transaction")
    coinbase = block.txs[0]
    if bip34_active:
        try:
            cb_height = parse_bip34_height(coinbase.inputs[0].script_sig)
        except ChainError as exc:
            raise BlockInvalid("bad-cb-height", "block height mismatch in coinbase") from exc
        if cb_height != height:
            raise BlockInvalid("bad-cb-height", "block height mismatch in coinbase")
    has_commitment = False
    if segwit_active:
        commitment = find_commitment([o.script_pubkey for o in coinbase.outputs])
        if commitment is not None:
            has_commitment = True
            nonce = coinbase.inputs[0].witness
            if len(nonce) != 1 or len(nonce[0]) != 32:
                raise BlockInvalid("bad-witness-nonce-size", "invalid witness reserved value size")
            expected = witness_commitment([tx.wtxid() for tx in block.txs[1:]], nonce[0])
            if expected != commitment:
                raise BlockInvalid("bad-witness-merkle-match", "witness merkle commitment mismatch")
    if not has_commitment and any(tx.has_witness() for tx in block.txs):
        raise BlockInvalid("unexpected-witness", "unexpected witness data found")
    if block.weight() > MAX_BLOCK_WEIGHT:
        raise BlockInvalid("bad-blk-weight", "weight limit failed")


def fill_witness_nonce(block: Block) -> Block:
    """Core's UpdateUncommittedBlockStructures (validation.cpp), which submitblock applies before it
    validates: a block whose coinbase commits to its transactions' witnesses (BIP141) but carries no
    witness itself gets the 32-byte witness reserved value (all zeros) as its coinbase witness. Pools that
    build the coinbase from getblocktemplate's parts (ckpool) submit it that way. Only the coinbase's
    witness changes, so the block's hash and merkle root do not; any other block is returned as it is.
    The caller applies it only where segwit is active after the block's (known) parent, as Core does."""
    coinbase = block.txs[0] if block.txs else None
    if coinbase is None or coinbase.has_witness():
        return block
    if find_commitment([o.script_pubkey for o in coinbase.outputs]) is None:
        return block
    first = replace(coinbase.inputs[0], witness=(WITNESS_RESERVED_VALUE,))
    filled = replace(coinbase, inputs=(first, *coinbase.inputs[1:]))
    return replace(block, txs=(filled, *block.txs[1:]))


# --- ConnectBlock ---

CoinLookup = Callable[[OutPoint], "Coin | None"]


def spend_inputs(
    tx: Transaction, *, height: int, lookup: CoinLookup, maturity: int
) -> tuple[list[tuple[OutPoint, Coin]], int]:
    """Check one non-coinbase transaction's inputs against `lookup`: (coins spent, fee)."""
    spent: list[tuple[OutPoint, Coin]] = []
    value_in = 0
    for txin in tx.inputs:
        coin = lookup(txin.prevout)
        if coin is None:
            raise BlockInvalid("bad-txns-inputs-missingorspent", "inputs missing/spent")
        if coin.is_coinbase and height - coin.height < maturity:
            raise BlockInvalid(
                "bad-txns-premature-spend-of-coinbase",
                f"tried to spend coinbase at depth {height - coin.height}",
            )
        try:
            check_spend(coin.script_pubkey, txin)
        except ScriptCheckError as exc:
            raise BlockInvalid("mandatory-script-verify-flag-failed", str(exc)) from exc
        value_in += coin.value
        spent.append((txin.prevout, coin))
    value_out = sum(o.value for o in tx.outputs)
    if value_in < value_out:
        raise BlockInvalid("bad-txns-in-belowout", f"value in ({value_in}) < value out ({value_out})")
    return spent, value_in - value_out


def connect_block(
    block: Block, *, height: int, lookup: CoinLookup, subsidy: int, maturity: int
) -> BlockDelta:
    """Spend the block's inputs against the UTXO set given by `lookup` (Core's ConnectBlock)."""
    created: dict[OutPoint, Coin] = {}
    spent_all: list[tuple[OutPoint, Coin]] = []
    spent_in_block: set[OutPoint] = set()

    def view(op: OutPoint) -> Coin | None:
        if op in spent_in_block:
            return None
        if op in created:
            return created[op]
        return lookup(op)

    fees = 0
    for i, tx in enumerate(block.txs):
        txid = tx.txid()
        if i > 0:
            spent, fee = spend_inputs(tx, height=height, lookup=view, maturity=maturity)
            for op, coin in spent:
                spent_in_block.add(op)
                if created.pop(op, None) is None:
                    spent_all.append((op, coin))
            fees += fee
        for n, out in enumerate(tx.outputs):
            op = OutPoint(txid, n)
            if lookup(op) is not None or op in created:
                raise BlockInvalid("bad-txns-BIP30", "tried to overwrite transaction")
            if out.script_pubkey[:1] == b"\x6a":
                continue  # OP_RETURN outputs are provably unspendable: never enter the UTXO set
            coin = Coin(out.value, out.script_pubkey, height, i == 0)
            created[op] = coin
    claimed = sum(o.value for o in block.txs[0].outputs)
    if claimed > subsidy + fees:
        raise BlockInvalid(
            "bad-cb-amount", f"coinbase pays too much (actual={claimed} vs limit={subsidy + fees})"
        )
    return BlockDelta(tuple(spent_all), tuple(created.items()), fees)

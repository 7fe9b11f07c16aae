"""Block assembly for the embedded node: the getblocktemplate answer, and blocks for generate* RPCs.

`template_result` builds the BIP22/23/9/145 `getblocktemplate` result with Bitcoin Core's field names,
order and units (fixture: tests/fixtures/bitcoin-core/gbt-core-regtest-h102-mempool7.json).
`assemble_block`/`solve` make the blocks `generatetoaddress`/`generateblock` mine: a coinbase with the
BIP34 height and OP_0 (as Core's miner), the witness commitment whenever segwit is active, then a nonce
search; at regtest's nBits 0x207fffff about two hashes find a block. Pure: the time comes in as `now`.
Both take the mempool's transactions as Core's miner does, best ancestor-package fee rate first
(assembler.py), so `coinbasevalue` is the subsidy plus the fees of exactly the transactions listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pithead.chain.block import MAX_BLOCK_WEIGHT, Block
from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import merkle_root
from pithead.chain.script import bip34_height_push
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.chain.witness import WITNESS_RESERVED_VALUE, commitment_script, witness_commitment
from pithead.node.assembler import MAX_BLOCK_SIGOPS_COST, select_for_block
from pithead.node.chainstate import ChainState
from pithead.node.mempool import Mempool, MempoolEntry

BLOCK_VERSION = 0x20000000  # BIP9 top bits with no deployment signalled, as Core's regtest miner
GBT_RULES = ("csv", "!segwit", "taproot")  # what Core's regtest reports (fixture)
GBT_MUTABLE = ("time", "transactions", "prevblock")
NONCE_RANGE = "00000000ffffffff"


def next_block_time(chain: ChainState, now: int) -> int:
    """max(now, median-time-past + 1): Core's UpdateTime."""
    return max(now, chain.median_time_past(chain.tip) + 1)


def template_result(chain: ChainState, mempool: Mempool, now: int) -> dict[str, Any]:
    tip = chain.tip
    height = tip.height + 1
    entries = select_for_block(mempool)
    position = {e.txid: i + 1 for i, e in enumerate(entries)}
    txs = [
        {
            "data": e.tx.serialize().hex(),
            "txid": display_hex(e.txid),
            "hash": display_hex(e.wtxid),
            "depends": sorted(position[p] for p in mempool.parents(e)),
            "fee": e.fee,
            "sigops": e.sigops,
            "weight": e.weight,
        }
        for e in entries
    ]
    bits = chain.next_bits(tip)
    result: dict[str, Any] = {
        "capabilities": ["proposal"],
        "version": BLOCK_VERSION,
        # a signet's miner must understand its rule (Core adds "!signet" and the challenge)
        "rules": [*GBT_RULES, "!signet"] if chain.kind == "signet" else list(GBT_RULES),
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": display_hex(tip.hash),
        "transactions": txs,
        "coinbaseaux": {},
        "coinbasevalue": chain.network.subsidy(height) + sum(e.fee for e in entries),
        "longpollid": longpoll_id(chain, mempool),
        "target": f"{bits_to_target(bits):064x}",
        "mintime": chain.median_time_past(tip) + 1,
        "mutable": list(GBT_MUTABLE),
        "noncerange": NONCE_RANGE,
        "sigoplimit": MAX_BLOCK_SIGOPS_COST,
        "sizelimit": MAX_BLOCK_WEIGHT,
        "weightlimit": MAX_BLOCK_WEIGHT,
        "curtime": next_block_time(chain, now),
        "bits": f"{bits:08x}",
        "height": height,
    }
    if chain.kind == "signet":
        result["signet_challenge"] = chain.signet_challenge.hex()
    if height >= chain.network.segwit_height:
        result["default_witness_commitment"] = commitment_script(
            witness_commitment([e.wtxid for e in entries])
        ).hex()
    return result


def longpoll_id(chain: ChainState, mempool: Mempool) -> str:
    """Core's format: the tip's display hash followed by the mempool's transactions-updated counter."""
    return f"{display_hex(chain.tip.hash)}{mempool.transactions_updated}"


def coinbase_tx(
    height: int, value: int, script_pubkey: bytes, wtxids: Sequence[bytes], segwit: bool
) -> Transaction:
    outputs = [TxOut(value, script_pubkey)]
    witness: tuple[bytes, ...] = ()
    if segwit:
        outputs.append(TxOut(0, commitment_script(witness_commitment(wtxids))))
        witness = (WITNESS_RESERVED_VALUE,)
    cb_in = TxIn(OutPoint(bytes(32), 0xFFFFFFFF), bip34_height_push(height) + b"\x00", 0xFFFFFFFF, witness)
    return Transaction(2, (cb_in,), tuple(outputs), 0)


def assemble_block(
    chain: ChainState,
    script_pubkey: bytes,
    txs: Sequence[Transaction] | Sequence[MempoolEntry],
    now: int,
    *,
    fees: int = 0,
) -> Block:
    """An unsolved block on the tip paying subsidy + `fees` to `script_pubkey`, with `txs` in order."""
    tip = chain.tip
    height = tip.height + 1
    body = [t.tx if isinstance(t, MempoolEntry) else t for t in txs]
    segwit = height >= chain.network.segwit_height
    cb = coinbase_tx(
        height, chain.network.subsidy(height) + fees, script_pubkey, [t.wtxid() for t in body], segwit
    )
    all_txs = (cb, *body)
    header = BlockHeader(
        BLOCK_VERSION,
        tip.hash,
        merkle_root([t.txid() for t in all_txs]),
        next_block_time(chain, now),
        chain.next_bits(tip),
        0,
    )
    return Block(header, all_txs)


def solve(block: Block, max_tries: int) -> Block | None:
    """Search nonces for a header meeting its own target; None after `max_tries` (Core's maxtries)."""
    target = bits_to_target(block.header.bits)
    header = block.header
    for nonce in range(min(max_tries, 1 << 32)):
        candidate = BlockHeader(
            header.version, header.prev_hash, header.merkle_root, header.time, header.bits, nonce
        )
        if candidate.meets_target(target):
            return Block(candidate, block.txs)
    return None

"""Block maturity and orphan tracking against a node: pending -> confirmed (100 deep) or orphaned.

The node is seen through `ChainView`, three read-only calls in Bitcoin Core's RPC shapes
(`getblockcount`, `getblockhash(height)`, `getblockheader(hash)` with its `confirmations`, which Core
sets to -1 for a block off the best chain), which `pithead.ledger.service.RpcChainView` asks of a node
through `pithead.bitcoind.rpc.RpcClient`. Its failures are the client's: an `RpcError` with Core's code
for what the node refused (`RPC_INVALID_ADDRESS_OR_KEY` for a block it does not know), any other
`NodeError` (`NodeDownError` when nothing answered) for the caller to retry. The decision is a pure
function (`next_status`); `track` is the thin async shell that asks the node and writes the result
through the ledger's store.

A block's credits follow it: immature while pending, payable once confirmed, void once orphaned, and
back to immature if a reorganisation returns an orphan to the best chain. Confirmed is final: a reorg
deeper than 100 blocks is outside what any pool (or Bitcoin Core's wallet) plans for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pithead.bitcoind.codes import RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER
from pithead.bitcoind.rpc import RpcError
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BlockRecord, BlockStatus

log = logging.getLogger(__name__)

# Bitcoin Core's COINBASE_MATURITY (consensus/consensus.h): a coinbase output may be spent once it has
# 100 confirmations, so that is when a block's reward is really the pool's.
COINBASE_MATURITY = 100

# A block the node does not know at all (submitblock lost, node restarted without it) is given this many
# blocks of grace before it is declared orphaned, in case the node is still catching up.
NOT_FOUND_GRACE_BLOCKS = 6

# Orphans are re-checked (in case a reorg brings them back) only while they are this close to the tip.
ORPHAN_RECHECK_DEPTH = COINBASE_MATURITY

# Blocks looked at per pass, so one pass after a long outage stays a bounded number of RPC calls.
MAX_BLOCKS_PER_PASS = 500


class ChainView(Protocol):
    """Three of Core's read-only calls; a refusal is an `RpcError` with Core's code."""

    async def getblockcount(self) -> int: ...
    async def getblockhash(self, height: int) -> str: ...
    async def getblockheader(self, block_hash: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Observation:
    """What the node said about one block: None confirmations means it does not know the block."""

    confirmations: int | None
    in_best_chain: bool
    tip_height: int


def next_status(block: BlockRecord, seen: Observation) -> tuple[BlockStatus, int]:
    """The block's status and confirmation count after an observation (pure)."""
    if block.status in (BlockStatus.CONFIRMED, BlockStatus.REJECTED, BlockStatus.STALE):
        return block.status, max(block.confirmations, seen.confirmations or 0)
    if seen.confirmations is None:
        if seen.tip_height >= block.height + NOT_FOUND_GRACE_BLOCKS:
            return BlockStatus.ORPHANED, -1
        return block.status, block.confirmations
    if seen.confirmations < 0 or not seen.in_best_chain:
        return BlockStatus.ORPHANED, -1
    if seen.confirmations >= COINBASE_MATURITY:
        return BlockStatus.CONFIRMED, seen.confirmations
    return BlockStatus.PENDING, seen.confirmations


@dataclass(frozen=True, slots=True)
class Change:
    block_hash: str
    height: int
    old: BlockStatus
    new: BlockStatus
    confirmations: int


async def observe(node: ChainView, block: BlockRecord, tip: int) -> Observation:
    try:
        header = await node.getblockheader(block.hash)
    except RpcError as exc:
        if exc.code == RPC_INVALID_ADDRESS_OR_KEY:  # getblockheader's "Block not found"
            return Observation(None, False, tip)
        raise
    confirmations = int(header.get("confirmations", -1))
    height = int(header.get("height", block.height))  # the node's word over the pool's report
    in_best = confirmations >= 0
    if in_best and height <= tip:
        try:
            in_best = (await node.getblockhash(height)) == block.hash
        except RpcError as exc:
            # getblockhash's "Block height out of range" (the tip went back between the two calls)
            if exc.code not in (RPC_INVALID_PARAMETER, RPC_INVALID_ADDRESS_OR_KEY):
                raise
            in_best = False
    return Observation(confirmations, in_best, tip)


async def track(store: LedgerStore, node: ChainView, now: float) -> list[Change]:
    """One pass: ask the node about every pending block (and recent orphans); record what changed.

    A node that cannot be reached changes nothing (the exception propagates after any blocks already
    decided were written); the caller logs it and tries again on its next tick.
    """
    tip = await node.getblockcount()
    candidates = await asyncio.to_thread(
        store.blocks, MAX_BLOCKS_PER_PASS, [BlockStatus.PENDING, BlockStatus.ORPHANED]
    )
    changes: list[Change] = []
    for block in candidates:
        if block.status is BlockStatus.ORPHANED and block.height < tip - ORPHAN_RECHECK_DEPTH:
            continue
        seen = await observe(node, block, tip)
        status, confirmations = next_status(block, seen)
        if status is not block.status or confirmations != block.confirmations:
            await asyncio.to_thread(store.set_block_status, block.hash, status, confirmations, now)
            if status is not block.status:
                log.info("block %s at %d: %s -> %s", block.hash, block.height, block.status, status)
                changes.append(Change(block.hash, block.height, block.status, status, confirmations))
    return changes

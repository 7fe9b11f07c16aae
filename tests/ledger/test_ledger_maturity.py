"""Block maturity and orphan tracking, driven through the `ChainView` protocol.

These drive the tracker with `TinyChain` (tests/ledger/ledger_standins.py), a stand-in block tree that
makes every edge easy to reach: deep reorgs, blocks the node never saw, a node that is down. The same
tracker runs against pithead's real embedded node, with a real reorganisation, in test_ledger_with_node.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from ledger_standins import TinyChain

from pithead.bitcoind.codes import RPC_IN_WARMUP
from pithead.bitcoind.rpc import NodeDownError, NodeWarmingUpError
from pithead.events import BlockEvent
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.maturity import (
    COINBASE_MATURITY,
    NOT_FOUND_GRACE_BLOCKS,
    Observation,
    next_status,
    track,
)
from pithead.ledger.schemes import Scheme
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BlockRecord, BlockStatus, CreditStatus


def found(chain: TinyChain, height: int, address: str = "miner") -> BlockEvent:
    return BlockEvent(float(height), height, chain.best[height], f"{address}.rig", address, 5_000_000_000, 0, True)


def statuses(store: LedgerStore, h: str) -> tuple[BlockStatus, set[CreditStatus]]:
    b = store.get_block(h)
    assert b is not None
    return b.status, {c.status for c in store.credits(block_hash=h)}


async def test_pending_block_matures_at_100_confirmations(store: LedgerStore) -> None:
    chain = TinyChain(200)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ev = found(chain, 150)
    ledger.apply([ev])
    assert await track(store, chain, 1.0) == []  # 51 confirmations: still pending
    b = store.get_block(ev.block_hash)
    assert b is not None and b.confirmations == 51
    assert statuses(store, ev.block_hash) == (BlockStatus.PENDING, {CreditStatus.IMMATURE})
    assert next(x for x in store.balances() if x.address == "miner").payable_sat == 0
    chain.extend(COINBASE_MATURITY - 52)  # 99 confirmations
    assert await track(store, chain, 2.0) == []
    chain.extend(1)
    (change,) = await track(store, chain, 3.0)
    assert (change.old, change.new, change.confirmations) == (BlockStatus.PENDING, BlockStatus.CONFIRMED, 100)
    assert statuses(store, ev.block_hash) == (BlockStatus.CONFIRMED, {CreditStatus.MATURE})
    assert next(x for x in store.balances() if x.address == "miner").payable_sat == 5_000_000_000
    chain.reorg(140, 120, "attacker")  # deeper than any real reorg: confirmed stays final
    assert await track(store, chain, 4.0) == []


async def test_reorged_block_is_orphaned_and_can_come_back(store: LedgerStore) -> None:
    chain = TinyChain(100)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ev = found(chain, 98)
    ledger.apply([ev])
    ours = chain.best[95:]
    chain.reorg(95, 8, "rival")  # our block at 98 leaves the best chain
    (change,) = await track(store, chain, 1.0)
    assert change.new is BlockStatus.ORPHANED
    assert statuses(store, ev.block_hash) == (BlockStatus.ORPHANED, {CreditStatus.VOID})
    assert all(b.immature_sat == 0 and b.payable_sat == 0 for b in store.balances())
    chain.restore(ours)
    chain.extend(10)  # our branch wins again
    (back,) = await track(store, chain, 2.0)
    assert (back.old, back.new) == (BlockStatus.ORPHANED, BlockStatus.PENDING)
    assert statuses(store, ev.block_hash) == (BlockStatus.PENDING, {CreditStatus.IMMATURE})


async def test_block_the_node_never_saw_is_orphaned_after_grace(store: LedgerStore) -> None:
    chain = TinyChain(10)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ghost = BlockEvent(1.0, 11, "ff" * 32, "m.rig", "m", 5_000_000_000, 0, True)
    ledger.apply([ghost])
    chain.extend(NOT_FOUND_GRACE_BLOCKS)  # tip 16: grace runs until height 11 + grace
    assert await track(store, chain, 1.0) == []
    chain.extend(1)
    (change,) = await track(store, chain, 2.0)
    assert change.new is BlockStatus.ORPHANED


async def test_unreachable_node_changes_nothing(store: LedgerStore) -> None:
    chain = TinyChain(150)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ev = found(chain, 20)
    ledger.apply([ev])
    chain.down = True
    with pytest.raises(NodeDownError):
        await track(store, chain, 1.0)
    assert statuses(store, ev.block_hash) == (BlockStatus.PENDING, {CreditStatus.IMMATURE})


class WarmingChain(TinyChain):
    """A node that answers getblockcount but is still loading its block index for getblockheader."""

    async def getblockheader(self, block_hash: str) -> Mapping[str, Any]:
        raise NodeWarmingUpError(RPC_IN_WARMUP, "Loading block index…", "tinychain", "getblockheader")


async def test_only_not_found_means_not_found(store: LedgerStore) -> None:
    """An RPC error other than RPC_INVALID_ADDRESS_OR_KEY (here -28, warm-up) is not "the node does not know
    the block": it propagates, and nothing changes, however far past the grace the tip is."""
    chain = WarmingChain(150)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ev = found(chain, 20)
    ledger.apply([ev])
    with pytest.raises(NodeWarmingUpError):
        await track(store, chain, 1.0)
    assert statuses(store, ev.block_hash) == (BlockStatus.PENDING, {CreditStatus.IMMATURE})


def _rec(status: BlockStatus, height: int = 100, confirmations: int = 0) -> BlockRecord:
    return BlockRecord("h", height, 0.0, "w", "a", 1, 0, status, confirmations, "solo", 1.0, 0.0)


@pytest.mark.parametrize(
    ("status", "seen", "expected"),
    [
        (BlockStatus.PENDING, Observation(1, True, 100), BlockStatus.PENDING),
        (BlockStatus.PENDING, Observation(99, True, 198), BlockStatus.PENDING),
        (BlockStatus.PENDING, Observation(100, True, 199), BlockStatus.CONFIRMED),
        (BlockStatus.PENDING, Observation(-1, False, 105), BlockStatus.ORPHANED),
        (BlockStatus.PENDING, Observation(5, False, 105), BlockStatus.ORPHANED),  # header says yes, height says no
        (BlockStatus.PENDING, Observation(None, False, 100 + NOT_FOUND_GRACE_BLOCKS - 1), BlockStatus.PENDING),
        (BlockStatus.PENDING, Observation(None, False, 100 + NOT_FOUND_GRACE_BLOCKS), BlockStatus.ORPHANED),
        (BlockStatus.ORPHANED, Observation(3, True, 102), BlockStatus.PENDING),
        (BlockStatus.ORPHANED, Observation(120, True, 219), BlockStatus.CONFIRMED),
        (BlockStatus.CONFIRMED, Observation(-1, False, 300), BlockStatus.CONFIRMED),
        (BlockStatus.REJECTED, Observation(1, True, 100), BlockStatus.REJECTED),
    ],
)
def test_status_transition_table(status: BlockStatus, seen: Observation, expected: BlockStatus) -> None:
    assert next_status(_rec(status), seen)[0] is expected

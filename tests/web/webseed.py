"""Seed data for the web tests: a real SQLite ledger store with shares, blocks, credits, payouts, and the
block withholding evidence (worker A flagged, its payouts held by an operator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pithead.events import ShareEvent
from pithead.ledger.ledger import FINE_BUCKET_S
from pithead.ledger.payouts import hold_payouts
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import (
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
    OddsDelta,
    OddsKind,
)

BUCKET = FINE_BUCKET_S
ADDR_A = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
ADDR_B = "bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf3wm6"
BLOCK_HASH = "00" * 4 + "ab" * 28
# Worker A's share work was worth 14 blocks and it found 1: P(X <= 1) = 15 e^-14 = 1.2e-5, flagged.
A_EXPECTED, B_EXPECTED = 14.0, 0.5
HOLD_REASON = "14 blocks expected, 1 found"


@dataclass
class Seed:
    store: LedgerStore
    now: float
    a_shares: int  # accepted shares of worker A in the last hour
    a_diff: float


def seed_store(store: LedgerStore, now: float) -> Seed:
    """Worker A: one share at difficulty 2 every 5 s for two hours; worker B: 4 shares (too few)."""
    events = []
    diff = 2.0
    t = now - 7200.0
    i = 0
    while t < now - 1.0:
        events.append(ShareEvent(t, f"{ADDR_A}.rig1", ADDR_A, diff, f"j{i}", 100, True, None, diff * (1 + i % 7)))
        t += 5.0
        i += 1
    for k in range(4):
        events.append(ShareEvent(now - 100 - k, f"{ADDR_B}.cpu", ADDR_B, 1.0, "jb", 100, True, None, 1.5))
    for k in range(3):
        events.append(ShareEvent(now - 50 - k, f"{ADDR_A}.rig1", ADDR_A, diff, "old", 100, False, "job-not-found"))
    events.append(ShareEvent(now - 20, f"{ADDR_B}.cpu", ADDR_B, 1.0, "jb", 100, False, "low-difficulty"))
    store.add_shares(events, BUCKET)
    block = BlockRecord(
        BLOCK_HASH, 101, now - 600, f"{ADDR_A}.rig1", ADDR_A, 5_000_010_000, 10_000, BlockStatus.PENDING, 3,
        "pplns", 4.6e-10, now - 600, effort=1.25,
    )
    store.add_block(block)
    a, b = f"{ADDR_A}.rig1", f"{ADDR_B}.cpu"
    store.add_odds([
        OddsDelta(OddsKind.WORKER, a, now - 7200, A_EXPECTED, 1), OddsDelta(OddsKind.ADDRESS, ADDR_A, now - 7200, A_EXPECTED, 1),
        OddsDelta(OddsKind.WORKER, b, now - 103, B_EXPECTED), OddsDelta(OddsKind.ADDRESS, ADDR_B, now - 103, B_EXPECTED),
        OddsDelta(OddsKind.POOL, "", now - 7200, A_EXPECTED + B_EXPECTED, 1),
    ])
    store.reset_odds(OddsKind.ROUND, "", now - 600)
    store.add_round_work(2.0, 0, now - 600)
    store.set_odds_flags([(OddsKind.WORKER, a, now - 1200), (OddsKind.ADDRESS, ADDR_A, now - 1200)])
    hold_payouts(store, a, actor="alice", reason=HOLD_REASON, auth="cli", now=now - 900, mode="pool")
    store.add_credits(
        [
            CreditRecord(ADDR_A, 4_000_000_000, CreditKind.BLOCK, CreditStatus.IMMATURE, now - 600, BLOCK_HASH),
            CreditRecord(ADDR_B, 950_000_000, CreditKind.BLOCK, CreditStatus.IMMATURE, now - 600, BLOCK_HASH),
            CreditRecord(ADDR_B, 300_000, CreditKind.BLOCK, CreditStatus.MATURE, now - 9000, None),
        ]
    )
    store.create_batch({ADDR_B: 200_000}, now - 300)
    in_hour = sum(1 for e in events if e.accepted and e.worker.startswith(ADDR_A) and e.time >= now - 3600)
    return Seed(store, now, in_hour, diff)


def fixed_clock(t: float) -> Callable[[], float]:
    return lambda: t

"""The frozen rows the ledger store reads and writes, and the status vocabularies they use.

These are plain values shared by every backend (SQLite, PostgreSQL) and by the services above them
(ledger, web). They hold no behaviour beyond small derived properties; nothing here talks to a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BlockStatus(StrEnum):
    PENDING = "pending"  # accepted by the node, not yet 100 deep
    CONFIRMED = "confirmed"  # 100 confirmations: the coinbase is spendable, its credits are payable
    ORPHANED = "orphaned"  # left the best chain; its credits are void
    REJECTED = "rejected"  # the node refused it at submitblock as invalid; never credited
    # A valid block that lost a race: the node answered that it already had another block at this height
    # (BIP22 "inconclusive", "duplicate", "stale"). Not an invalid block, so not shown as one; never credited.
    STALE = "stale"


# BIP22 results (and Bitcoin Core's) that mean a valid block lost a race, not an invalid one.
RACE_RESULTS = ("inconclusive", "duplicate", "stale")


def lost_a_race(node_result: str | None) -> bool:
    """Whether a node's submitblock answer says the block was valid but lost a race (a `bad-...` reason
    naming "duplicate", as "bad-txns-inputs-duplicate" does, is an invalid block)."""
    result = (node_result or "").lower()
    return any(word in result for word in RACE_RESULTS) and not result.startswith("bad-")


class CreditStatus(StrEnum):
    IMMATURE = "immature"  # from a pending block
    MATURE = "mature"  # payable
    VOID = "void"  # from an orphaned block


class CreditKind(StrEnum):
    BLOCK = "block"  # a share of a found block (SOLO, PROP, PPLNS; the whole block to the pool under PPS)
    FEE = "fee"  # the pool fee of a found block
    PPS = "pps"  # a PPS payment for shares (and its matching debit of the pool account)


class BatchStatus(StrEnum):
    INTENT = "intent"  # recorded before the wallet call; the amounts are reserved
    SENT = "sent"  # the wallet returned (or we found) its txid
    # Sent, but its transaction left the mempool unconfirmed (evicted, lost with a node's mempool, an input
    # spent elsewhere not yet final): it might still confirm, so the amounts stay reserved, neither paid nor
    # payable, until it confirms after all (CONFIRMED) or can no longer confirm (FAILED). See payouts.py.
    STUCK = "stuck"
    CONFIRMED = "confirmed"  # the transaction has the confirmations we wait for
    FAILED = "failed"  # the wallet refused it, or it can no longer confirm; the amounts are released


@dataclass(frozen=True, slots=True)
class ShareRow:
    id: int
    time: float
    worker: str
    address: str
    difficulty: float
    share_difficulty: float
    job_id: str
    height: int
    remote: str | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker: str
    address: str
    first_seen: float
    last_share_time: float | None
    last_difficulty: float
    best_share: float
    best_share_time: float | None
    accepted: int
    rejected: int
    accepted_difficulty: float


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    """The workers table summed in one statement (what a pool summary needs, without a row per worker).

    `active`/`active_difficulty`: workers with a share at or after the `active_since` asked for, and the sum
    of their current difficulties. `rejected_unknown`: rejects of workers that never had an accepted share
    (never in the table; counted pool-wide, see `RemoteRejects`)."""

    workers: int
    active: int
    active_difficulty: float
    accepted: int
    rejected: int
    rejected_unknown: int
    accepted_difficulty: float
    best_share: float
    first_seen: float | None
    last_share_time: float | None


@dataclass(frozen=True, slots=True)
class RemoteRejects:
    """Rejected shares of workers that never had an accepted share, by remote and reason, over a span:
    bounded, expiring statistics in place of a row per worker name."""

    remote: str  # the peer's address; "" when unknown; OTHER_REMOTES beyond the per-bucket cap
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class WorkSums:
    """Accepted work in a span of stat buckets."""

    shares: int
    difficulty_sum: float
    best_share: float


@dataclass(frozen=True, slots=True)
class UptimeRun:
    """One run of the process that takes shares (the ledger in `pithead up`): up from `started` until at
    least `last_seen`, its latest heartbeat (its stop time after a clean stop)."""

    run: str  # unique per process start
    started: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class BlockRecord:
    hash: str
    height: int
    time: float
    worker: str
    address: str
    reward_sat: int
    fees_sat: int
    status: BlockStatus
    confirmations: int
    scheme: str
    network_difficulty: float
    updated: float
    node_result: str | None = None
    # The expected blocks of the pool's share work since the block before it (1.0: average; 2.0 took twice
    # the work): `pithead.ledger.withholding`. None for blocks recorded before the pool counted it.
    effort: float | None = None


class OddsKind(StrEnum):
    """Whose blocks expected and found a `BlockOdds` row counts."""

    WORKER = "worker"
    ADDRESS = "address"
    POOL = "pool"  # the whole pool, all time (name "")
    ROUND = "round"  # the pool since its last block (name ""): the next block's effort


@dataclass(frozen=True, slots=True)
class BlockOdds:
    """Blocks expected from share work and blocks found, for a worker, an address, the pool or the round:
    the evidence of block withholding (`pithead.ledger.withholding`)."""

    kind: OddsKind
    name: str
    since: float  # the first share (or block) counted
    expected: float  # lambda: sum of min(1, d/D) over accepted shares
    found: int  # k: blocks whose solution was submitted (any outcome at the node)
    unpriced: int  # accepted shares with no network difficulty known, left out of expected
    flagged_since: float | None = None  # when it was flagged (None: not flagged)


@dataclass(frozen=True, slots=True)
class OddsDelta:
    """What one batch adds to a `BlockOdds` row (created at `time` when new)."""

    kind: OddsKind
    name: str
    time: float
    expected: float = 0.0
    found: int = 0
    unpriced: int = 0


class HoldAction(StrEnum):
    HOLD = "hold"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class PayoutHold:
    """An address whose payouts an operator holds (never set automatically): its balance stays in the
    book, payable, and is left out of payout batches until released."""

    address: str
    since: float
    worker: str  # the flagged worker the hold was asked for (or the address itself)
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class HoldEntry:
    """One line of the payout holds' audit log: who held or released which address, when, why, on what
    authority, and the evidence at that moment (JSON)."""

    id: int
    time: float
    action: HoldAction
    address: str
    worker: str
    actor: str
    auth: str
    reason: str
    evidence: str


@dataclass(frozen=True, slots=True)
class CreditRecord:
    address: str
    amount_sat: int
    kind: CreditKind
    status: CreditStatus
    time: float
    block_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """An address's money in the ledger, in satoshis."""

    address: str
    immature_sat: int  # credited from blocks not yet confirmed
    mature_sat: int  # credited and confirmed, in total since the beginning
    reserved_sat: int  # in payout batches recorded but not yet sent, or stuck (sent, out of the mempool)
    paid_sat: int  # in payout batches sent or confirmed

    @property
    def payable_sat(self) -> int:
        return self.mature_sat - self.reserved_sat - self.paid_sat


@dataclass(frozen=True, slots=True)
class PayoutBatch:
    id: int
    created: float
    updated: float
    status: BatchStatus
    txid: str | None
    items: tuple[tuple[str, int], ...]  # (address, sat), sorted by address
    error: str | None = None
    stuck_since: float | None = None  # when the batch was first found STUCK (None unless it is)

    @property
    def total_sat(self) -> int:
        return sum(a for _, a in self.items)


"""The `LedgerStore` interface: everything the ledger keeps, behind one small protocol.

The ledger, and the web API through it, only ever talk to this protocol, so a backend can be swapped
(SQLite today for one machine, PostgreSQL at scale) without anything above it changing. Calls made
outside `transaction()` commit on their own; calls made inside one commit or roll back together.
`StoreReader` is its read half: what the web app and the ledger's queries need, usually over a second,
read-only connection.

This module holds no SQL and opens no connection; see `pithead.ledger.store.sql` for the shared implementation
and `pithead.ledger.store.sqlite` / `pithead.ledger.store.postgres` for the two backends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from pithead.events import ShareEvent
from pithead.ledger.store.records import (
    Balance,
    BatchStatus,
    BlockOdds,
    BlockRecord,
    BlockStatus,
    CreditRecord,
    HoldEntry,
    OddsDelta,
    OddsKind,
    PayoutBatch,
    PayoutHold,
    RemoteRejects,
    ShareRow,
    UptimeRun,
    WorkerRow,
    WorkerTotals,
    WorkSums,
)


class StoreError(RuntimeError):
    """The store cannot do what was asked (bad URL, unreachable database, broken invariant)."""


class StoreReader(Protocol):
    """The read half of `LedgerStore`: shares, statistics buckets, workers, blocks, credits and money."""

    # --- shares ----------------------------------------------------------------------------------
    def recent_shares(self, limit: int, worker: str | None = None, address: str | None = None) -> list[ShareRow]: ...
    def best_shares(self, limit: int) -> list[ShareRow]: ...
    def share_count(self) -> int: ...

    # --- statistics buckets ----------------------------------------------------------------------
    def work_since(self, since: float, worker: str | None = None, address: str | None = None) -> WorkSums: ...
    def work_windows(
        self, sinces: Sequence[float], worker: str | None = None, address: str | None = None
    ) -> list[WorkSums]:
        """`work_since` for each bound in `sinces` (in that order), in one statement."""
        ...
    def work_windows_by_worker(
        self, sinces: Sequence[float], workers: Sequence[str] | None = None, address: str | None = None
    ) -> dict[str, list[WorkSums]]:
        """`work_windows` per worker (all, those named, or those of `address`), in one grouped statement per
        chunk of names. A worker with no bucket since the earliest bound is absent."""
        ...
    def rejects_since(self, since: float, worker: str | None = None, address: str | None = None) -> dict[str, int]: ...
    def rejects_by_worker(self, since: float, address: str | None = None) -> dict[str, dict[str, int]]:
        """`rejects_since` per worker (all, or those of `address`) in one statement; workers without
        rejects are absent."""
        ...
    def rejects_by_remote(self, since: float, limit: int) -> list[RemoteRejects]:
        """Rejects of workers that never had an accepted share since `since`, by remote and reason, most
        first, at most `limit` rows (they are never in `rejects_by_worker`; `rejects_since` of the pool
        counts them)."""
        ...
    def work_history(
        self, since: float, width: int, worker: str | None = None, address: str | None = None
    ) -> list[tuple[float, WorkSums]]: ...
    def work_history_by_worker(
        self, since: float, width: int, address: str | None = None
    ) -> dict[str, list[tuple[float, WorkSums]]]:
        """`work_history` per worker (all, or those of `address`) in one grouped statement; each worker's
        steps oldest first, a step without work absent."""
        ...
    def active_history(self, since: float, width: int) -> list[tuple[float, int, int]]:
        """Per step of `width` seconds from `since` (aligned as `work_history` aligns them), oldest first:
        (step start, workers, addresses) with accepted work in the step; a step without any is absent."""
        ...
    def workers(self, address: str | None = None) -> list[WorkerRow]:
        """Workers that have had an accepted share (no other name is ever in the book)."""
        ...
    def worker(self, worker: str) -> WorkerRow | None: ...
    def worker_totals(self, active_since: float) -> WorkerTotals:
        """Every worker summed in one statement: counts, shares, best share, first and last share time."""
        ...

    # --- uptime: when the process that takes shares was running ----------------------------------
    def uptime_runs(self, since: float) -> list[UptimeRun]:
        """The runs up at or after `since` (last seen then or later), plus the earliest run ever recorded
        (where the record begins), oldest first; empty when no run was ever recorded (an older ledger)."""
        ...

    # --- blocks expected and found (`pithead.ledger.withholding`) ---------------------------------
    def block_odds(self, kind: OddsKind, names: Sequence[str] | None = None) -> list[BlockOdds]:
        """The rows of `kind` (all, or those named; a name never counted is absent), by name."""
        ...
    def odds_by_deficit(self, kind: OddsKind, limit: int) -> list[BlockOdds]:
        """At most `limit` rows of `kind`, most blocks short of expectation (expected - found) first: where
        the least likely ones are, without reading every row."""
        ...
    def flagged_counts(self) -> dict[OddsKind, int]:
        """How many rows of each kind are flagged (kinds with none are absent)."""
        ...
    def flagged_odds(self, limit: int) -> list[BlockOdds]:
        """Flagged rows (workers and addresses), longest flagged first, at most `limit`."""
        ...

    # --- payout holds ----------------------------------------------------------------------------
    def payout_holds(self) -> list[PayoutHold]: ...
    def payout_hold_log(self, limit: int, address: str | None = None) -> list[HoldEntry]:
        """The holds' audit log (all, or one address's), newest first."""
        ...

    # --- blocks, credits, balances and payouts ---------------------------------------------------
    def get_block(self, block_hash: str) -> BlockRecord | None: ...
    def blocks(self, limit: int, statuses: Sequence[BlockStatus] | None = None) -> list[BlockRecord]: ...
    def credits(self, block_hash: str | None = None, address: str | None = None, limit: int = 1000) -> list[CreditRecord]: ...
    def balances(self) -> list[Balance]: ...
    def batches(self, statuses: Sequence[BatchStatus] | None = None, limit: int = 1000) -> list[PayoutBatch]: ...


class LedgerStore(StoreReader, Protocol):
    """Everything the ledger keeps: `StoreReader` plus the writes and the ledger's own walks."""

    # --- lifecycle -------------------------------------------------------------------------------
    def migrate(self) -> None: ...
    def close(self) -> None: ...
    def transaction(self, write: bool = True) -> AbstractContextManager[None]: ...

    # --- small key/value state (stream cursors, PPS carry, the store's identity) -----------------
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    # --- leases: one holder at a time across processes (e.g. the payout run) ----------------------
    def try_lease(self, name: str, owner: str, now: float, until: float) -> bool: ...
    def release_lease(self, name: str, owner: str) -> None: ...
    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """(owner, until) of the lease, or None when it was never taken."""
        ...
    def take_over_lease(self, name: str, stale_owner: str, owner: str, until: float) -> bool:
        """Take the lease from `stale_owner` (known dead) whatever its expiry, if it still holds it."""
        ...

    # --- shares ----------------------------------------------------------------------------------
    def add_shares(self, events: Sequence[ShareEvent], bucket_width: int) -> None: ...
    def newest_shares(self, before_id: int | None, limit: int) -> list[ShareRow]: ...
    def newest_work(self, before_id: int | None, limit: int) -> list[tuple[int, str, float]]:
        """(id, address, difficulty) newest first: the narrow walk PPLNS and the rollup make."""
        ...
    def delete_shares_before(self, share_id: int, time_before: float) -> int: ...
    def round_work(self) -> dict[str, float]: ...
    def clear_round_work(self) -> None: ...

    # --- uptime ----------------------------------------------------------------------------------
    def record_uptime(self, run: str, started: float, now: float) -> None:
        """Run `run`, begun at `started`, was up at `now` (a heartbeat; its last seen never moves back)."""
        ...
    def delete_uptime_before(self, before: float) -> int:
        """Forget runs last seen before `before`; returns how many."""
        ...

    # --- statistics buckets ----------------------------------------------------------------------
    def coarsen_buckets(self, before: float, from_width: int, to_width: int) -> int: ...
    def delete_buckets_before(self, before: float, width: int) -> int: ...
    def delete_reject_stats_before(self, before: float) -> int:
        """Forget the rejects of never-accepted workers counted before `before`; returns the rows gone."""
        ...

    # --- blocks expected and found ----------------------------------------------------------------
    def add_odds(self, deltas: Sequence[OddsDelta]) -> None:
        """Add each delta to its row (created when new; `since` is the earliest time seen)."""
        ...
    def add_round_work(self, expected: float, unpriced: int, time: float) -> None:
        """Add to the round being counted (none before an older ledger's first block since it began
        counting: that round is not counted whole)."""
        ...
    def reset_odds(self, kind: OddsKind, name: str, since: float) -> None:
        """Start a row over from zero at `since` (the round, after a block)."""
        ...
    def set_odds_flags(self, flags: Sequence[tuple[OddsKind, str, float | None]]) -> None:
        """Set (a time) or clear (None) the flag of each (kind, name)."""
        ...

    # --- payout holds: set and lifted by an operator only, each with its audit line ---------------
    def add_payout_hold(self, hold: PayoutHold, entry: HoldEntry) -> HoldEntry | None:
        """Hold `hold.address` and log `entry` (its id is assigned), in one transaction; None (nothing
        written) when the address is held already."""
        ...
    def remove_payout_hold(self, entry: HoldEntry) -> HoldEntry | None:
        """Lift the hold of `entry.address` and log `entry`, in one transaction; None when not held."""
        ...

    # --- blocks and credits ----------------------------------------------------------------------
    def add_block(self, block: BlockRecord) -> bool: ...
    def set_block_status(self, block_hash: str, status: BlockStatus, confirmations: int, now: float) -> None: ...
    def add_credits(self, credits: Sequence[CreditRecord]) -> None: ...

    # --- payouts ---------------------------------------------------------------------------------
    def create_batch(self, items: Mapping[str, int], now: float) -> PayoutBatch: ...
    def update_batch(
        self, batch_id: int, status: BatchStatus, now: float, txid: str | None = None, error: str | None = None
    ) -> None: ...


def iter_newest(store: LedgerStore, page: int) -> Iterator[tuple[int, str, float]]:
    """Walk the raw shares newest first as (id, address, difficulty), `page` rows per query."""
    before: int | None = None
    while True:
        rows = store.newest_work(before, page)
        if not rows:
            return
        yield from rows
        before = rows[-1][0]

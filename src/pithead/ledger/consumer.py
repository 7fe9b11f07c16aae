"""The consumer loop that feeds a `Ledger` from an `EventSource`, exactly once (see `pithead.ledger.bus.source`).

Each batch is read, the entries the ledger has already applied (redelivered after a crash) are skipped,
the rest are applied in one transaction together with the new cursor (the cursor read and the apply both
in a worker thread, never on the event loop that serves miners), and only then acknowledged. A bus or
database that fails is retried; its entries stay unacknowledged meanwhile, so nothing is lost.

Durability, the promise (also in the README): a share is acknowledged to the miner before it is durable.
It becomes durable when the batch holding it commits. The loop commits continuously: it reads whatever
has arrived (at most CONSUME_BATCH), commits it, and reads again at once. So a kill -9 of the process
holding a volatile source (the in-memory bus) loses exactly the accepted shares not yet committed: the
batch being committed and what arrived behind it, i.e. while the ledger keeps up with the pool, the shares
accepted during the last two commits (a commit is as big as what arrived during the last one; a full batch
takes from 30 ms on an idle machine to a few hundred on a loaded one: `pithead bench ledger` prints it). When an applied share had waited longer than DURABILITY_WARN_S between acceptance and
commit, the ledger is behind the pool and says so (a WARNING, at most once a minute), so a longer window
never goes unnoticed. With the Redis bus, what Redis has acknowledged survives any crash of pithead (Redis
keeps it until the ledger has committed and acknowledged it); what a pool front-end had not yet written
is bounded by its flush interval (`pithead.ledger.bus.redis`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from pithead.events import Event
from pithead.ledger.bus.source import EventSource, position_key

log = logging.getLogger(__name__)

# Entries the consumer applies per transaction: large enough to amortise the commit, small enough to
# keep a transaction (and the write lock) short.
CONSUME_BATCH = 2000
CONSUME_BLOCK_S = 0.2  # how long one idle read waits for entries; also how fast the consumer notices a stop
# After a failed batch (database or Redis away) the consumer waits this long before trying again; the
# unacknowledged entries are redelivered, so nothing is lost meanwhile.
CONSUME_RETRY_S = 1.0
FAILURE_LOG_EVERY_S = 60.0
"""While the bus keeps failing, one log line this often (the first failure carries the traceback)."""
# The durability window the ledger promises with a volatile source (two commits: tens of milliseconds); an
# applied share that waited longer than this between acceptance and commit means the ledger is behind the
# pool, and a crash then loses more than promised: a WARNING says so (at most every FAILURE_LOG_EVERY_S).
DURABILITY_WARN_S = 1.0


@dataclass
class ConsumeCounters:
    applied: int = 0
    skipped_seen: int = 0  # redelivered entries the ledger had already applied
    undecodable: int = 0
    failures: int = 0  # batches that raised (and were retried)
    failing_since: float | None = None  # time.monotonic() the current run of failures began
    last_failure_log: float = 0.0
    # From a volatile source: the longest an applied event waited between acceptance (its time) and commit.
    max_wait_s: float = 0.0
    last_slow_log: float = 0.0  # time.monotonic() of the last "behind the pool" warning


def _apply_new(ledger: Any, source: str, entries: list[tuple[str, Event | None]]) -> tuple[list[Event], int, int]:
    """In a worker thread: the entries after the stored cursor applied, with the cursor, in one transaction.
    Returns (the events applied, redelivered ones skipped, undecodable ones)."""
    last = ledger.cursor(source)
    last_key = position_key(last) if last is not None else None
    fresh: list[Event] = []
    skipped = undecodable = 0
    for pos, ev in entries:
        if last_key is not None and position_key(pos) <= last_key:
            skipped += 1
        elif ev is None:
            undecodable += 1
        else:
            fresh.append(ev)
    newest = entries[-1][0]
    if last_key is None or position_key(newest) > last_key:
        ledger.apply(fresh, (source, newest))
    return fresh, skipped, undecodable


def _note_wait(counters: ConsumeCounters, applied: list[Event]) -> None:
    """How long the oldest just-committed event waited since the pool accepted it; warn past the promise."""
    waited = time.time() - min(ev.time for ev in applied)
    counters.max_wait_s = max(counters.max_wait_s, waited)
    mono = time.monotonic()
    if waited > DURABILITY_WARN_S and mono - counters.last_slow_log >= FAILURE_LOG_EVERY_S:
        counters.last_slow_log = mono
        log.warning("ledger behind the pool: accepted shares waited up to %.1f s before they were durable "
                    "(%d in this batch); a crash in that time loses them (promised: under %.1f s)",
                    waited, len(applied), DURABILITY_WARN_S)


async def consume_once(ledger: Any, source: EventSource, counters: ConsumeCounters, block_s: float = 0.0) -> int:
    """Read one batch from `source`, apply what the ledger has not seen, then acknowledge it all."""
    entries = await source.read(CONSUME_BATCH, block_s)
    if not entries:
        return 0
    fresh, skipped, undecodable = await asyncio.to_thread(_apply_new, ledger, source.name, entries)
    counters.skipped_seen += skipped
    counters.undecodable += undecodable
    counters.applied += len(fresh)
    await source.ack([p for p, _ in entries])
    if source.volatile and fresh:
        _note_wait(counters, fresh)
    return len(entries)


async def consume(ledger: Any, source: EventSource, stop: asyncio.Event) -> ConsumeCounters:
    """Feed `ledger` from `source` until `stop` is set."""
    counters = ConsumeCounters()
    while not stop.is_set():
        try:
            await consume_once(ledger, source, counters, CONSUME_BLOCK_S)
            if counters.failing_since is not None:
                log.warning("ledger consumer: working again after %.0f s", time.monotonic() - counters.failing_since)
                counters.failing_since = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            counters.failures += 1
            # The first failure of a run of them with its traceback, then one line a minute: a bus that is
            # down for an hour must not write 3,600 tracebacks.
            if counters.failing_since is None:
                log.exception("ledger consumer: batch failed, retrying every %.0f s (entries stay "
                              "unacknowledged)", CONSUME_RETRY_S)
                counters.failing_since = counters.last_failure_log = time.monotonic()
            elif time.monotonic() - counters.last_failure_log >= FAILURE_LOG_EVERY_S:
                counters.last_failure_log = time.monotonic()
                log.warning("ledger consumer: still failing for %.0f s: %s", time.monotonic() -
                            counters.failing_since, exc)
            try:
                await asyncio.wait_for(stop.wait(), CONSUME_RETRY_S)
            except TimeoutError:
                pass
    return counters

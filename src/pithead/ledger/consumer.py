"""The consumer loop that feeds a `Ledger` from an `EventSource`, exactly once (see `pithead.ledger.bus.source`).

Each batch is read, the entries the ledger has already applied (redelivered after a crash) are skipped,
the rest are applied in one transaction together with the new cursor, and only then acknowledged. A bus
or database that fails is retried; its entries stay unacknowledged meanwhile, so nothing is lost.
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


@dataclass
class ConsumeCounters:
    applied: int = 0
    skipped_seen: int = 0  # redelivered entries the ledger had already applied
    undecodable: int = 0
    failures: int = 0  # batches that raised (and were retried)
    failing_since: float | None = None  # time.monotonic() the current run of failures began
    last_failure_log: float = 0.0


async def consume_once(ledger: Any, source: EventSource, counters: ConsumeCounters, block_s: float = 0.0) -> int:
    """Read one batch from `source`, apply what the ledger has not seen, then acknowledge it all."""
    entries = await source.read(CONSUME_BATCH, block_s)
    if not entries:
        return 0
    last = ledger.cursor(source.name)
    last_key = position_key(last) if last is not None else None
    fresh: list[tuple[str, Event]] = []
    for pos, ev in entries:
        if last_key is not None and position_key(pos) <= last_key:
            counters.skipped_seen += 1
        elif ev is None:
            counters.undecodable += 1
        else:
            fresh.append((pos, ev))
    newest = entries[-1][0]
    if last_key is None or position_key(newest) > last_key:
        await asyncio.to_thread(ledger.apply, [ev for _, ev in fresh], (source.name, newest))
    counters.applied += len(fresh)
    await source.ack([p for p, _ in entries])
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

"""Moving events from the pool to the ledger: the `EventSource` protocol, an in-process bus, the codec
for events on a wire, and the consumer loop that feeds a `Ledger` exactly once.

Exactly once: a source delivers at least once (Redis redelivers what was not acknowledged); the ledger
stores the position of the last entry it applied in the same transaction as the entries, and skips
anything at or before it on redelivery; only then are the entries acknowledged. So a crash anywhere in
the loop neither loses nor double-counts a share. This needs positions that increase in delivery order
and one consumer per stream, which is how the ledger is deployed (it is the single writer of the book).

The in-process `MemoryBus` is the one-machine case: `put` never blocks and never waits on the ledger.
The Redis Streams bus is in `pithead.store.redis_bus`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson

from pithead.ledger.events import BlockEvent, InvalidEvent, ShareEvent, validate

log = logging.getLogger(__name__)

Event = ShareEvent | BlockEvent

# Events held in memory between the pool and the ledger. At a few thousand shares a second this is
# minutes of backlog; beyond it the oldest are dropped and counted rather than growing without bound.
MEMORY_BUS_MAX = 1_000_000
# Entries the consumer applies per transaction: large enough to amortise the commit, small enough to
# keep a transaction (and the write lock) short.
CONSUME_BATCH = 2000
CONSUME_BLOCK_S = 0.2  # how long one idle read waits for entries; also how fast the consumer notices a stop
# After a failed batch (database or Redis away) the consumer waits this long before trying again; the
# unacknowledged entries are redelivered, so nothing is lost meanwhile.
CONSUME_RETRY_S = 1.0
FAILURE_LOG_EVERY_S = 60.0
"""While the bus keeps failing, one log line this often (the first failure carries the traceback)."""


class EventDecodeError(InvalidEvent):
    """Bytes on the bus that are not a ledger event."""


class EventSource(Protocol):
    name: str

    async def read(self, max_count: int, block_s: float) -> list[tuple[str, Event | None]]:
        """Up to `max_count` (position, event) pairs in position order; event None for undecodable entries."""
        ...

    async def ack(self, positions: Sequence[str]) -> None: ...


def position_key(position: str) -> tuple[int, int]:
    """Order of a position "<major>-<minor>" (a Redis stream id, or the memory bus's id of the same form)."""
    major, _, minor = position.partition("-")
    return int(major), int(minor or 0)


# --- wire codec ------------------------------------------------------------------------------------
_KINDS: dict[str, type] = {"share": ShareEvent, "block": BlockEvent}
_SHARE_FIELDS = {f for f in ShareEvent.__dataclass_fields__}
_BLOCK_FIELDS = {f for f in BlockEvent.__dataclass_fields__}


def encode_event(event: Event) -> bytes:
    kind = "share" if isinstance(event, ShareEvent) else "block"
    return orjson.dumps({"kind": kind, **asdict(event)})


def decode_event(data: bytes | str) -> Event:
    """Parse one encoded event, checking every field's type; unknown fields are ignored (newer pools)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") not in _KINDS:
        raise EventDecodeError("missing or unknown event kind")
    cls = _KINDS[obj["kind"]]
    fields = _SHARE_FIELDS if cls is ShareEvent else _BLOCK_FIELDS
    kwargs = {k: v for k, v in obj.items() if k in fields}
    try:
        event = cls(**kwargs)
    except TypeError as exc:
        raise EventDecodeError(f"bad {obj['kind']} event: {exc}") from exc
    try:
        validate(event)
    except InvalidEvent as exc:
        raise EventDecodeError(str(exc)) from exc
    return event  # type: ignore[no-any-return]


# --- in-process bus --------------------------------------------------------------------------------
class _MonotonicIds:
    """Stream-style ids "<unix ms>-<seq>" that only ever grow, shared by every MemoryBus in the process.

    Across processes the millisecond part orders them (a restart takes far longer than a millisecond);
    within one process this single generator orders them even when two buses of the same name follow each
    other inside one millisecond, or the wall clock steps back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._seq = 0

    def next(self) -> str:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._ms:
                self._ms, self._seq = now_ms, 0
            else:
                self._seq += 1
            return f"{self._ms}-{self._seq}"


_ids = _MonotonicIds()


class MemoryBus:
    """A `ShareSink` and an `EventSource` in one process: a bounded deque and a wake-up event.

    Positions are "<unix ms>-<seq>", exactly like Redis stream ids, not a counter from 1: the ledger keeps
    each source's cursor across restarts, so a bus that restarted its numbering would have a resumed
    ledger skip the new run's first events as "already applied". Time-based ids only ever grow (the
    millisecond part never goes backwards, even if the wall clock does), so a new process's events always
    sort after the last run's cursor.
    """

    def __init__(self, name: str = "memory", maxlen: int = MEMORY_BUS_MAX) -> None:
        self.name = name
        self._queue: collections.deque[tuple[str, Event]] = collections.deque()
        self._maxlen = maxlen
        self._unacked: dict[str, Event] = {}
        self._wake: asyncio.Event | None = None
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((_ids.next(), event))
        if self._wake is not None:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def read(self, max_count: int, block_s: float) -> list[tuple[str, Event | None]]:
        if self._unacked:  # redeliver what was read but never acknowledged, like a stream's pending list
            return sorted(self._unacked.items(), key=lambda pe: position_key(pe[0]))[:max_count]  # type: ignore[return-value]
        if not self._queue and block_s > 0:
            self._wake = self._wake or asyncio.Event()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), block_s)
            except TimeoutError:
                return []
        out: list[tuple[str, Event | None]] = []
        while self._queue and len(out) < max_count:
            pos, ev = self._queue.popleft()
            self._unacked[pos] = ev
            out.append((pos, ev))
        return out

    async def ack(self, positions: Sequence[str]) -> None:
        for p in positions:
            self._unacked.pop(p, None)


# --- the consumer loop -----------------------------------------------------------------------------
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

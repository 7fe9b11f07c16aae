"""The in-process share bus: the pool and the ledger in one process (`MemoryBus`).

`put` never blocks and never waits on the ledger; reads and acknowledgements behave like a Redis stream's
(unacknowledged entries are redelivered), so the ledger's consumer (`pithead.ledger.consumer`) treats both
alike. The Redis Streams bus, for many pool front-ends, is `pithead.ledger.bus.redis`.

What it holds lives in this process only (`volatile`): a kill -9 loses the events the ledger has not yet
committed, the window `pithead.ledger.consumer` states and watches.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Sequence

from pithead.events import Event
from pithead.ledger.bus.source import position_key

# Events held in memory between the pool and the ledger. At a few thousand shares a second this is
# minutes of backlog; beyond it the oldest are dropped and counted rather than growing without bound.
MEMORY_BUS_MAX = 1_000_000


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

    # What it holds lives in this process only: a kill -9 loses what the ledger has not committed yet.
    volatile = True

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

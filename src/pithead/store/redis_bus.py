"""The Redis Streams share bus: many Stratum front-ends put events, one ledger consumes them.

`RedisShareSink` is a `ShareSink`: `put` only appends to a bounded in-memory buffer (it must never block
the pool) and `flush`/`run` pipeline the buffer into the stream with XADD. `RedisEventSource` is an
`EventSource` reading the stream through a consumer group: on start it first re-reads its own pending
entries (read before a crash, never acknowledged), then claims entries another consumer left pending for
too long, then reads new ones; entries are acknowledged (XACK) only after the ledger has committed them.
Together with the ledger's stored cursor (see `pithead.ledger.bus`) a crash neither loses nor double-counts.

Not here: the ledger itself, and trimming policy beyond the approximate MAXLEN bound below.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from pithead.ledger.bus import Event, EventDecodeError, decode_event, encode_event
from pithead.store.base import StoreError

log = logging.getLogger(__name__)

# Approximate length bound of the stream (XADD MAXLEN ~). Entries are ~300 bytes, so this caps Redis at
# a few hundred MB; at 1000 shares/s it is over 15 minutes of ledger downtime before the oldest unread
# entries would be trimmed.
STREAM_MAXLEN = 1_000_000
# Events buffered in the pool process while Redis is slow or away; beyond it the oldest are dropped
# (and counted), rather than the pool's memory growing without bound.
SINK_BUFFER_MAX = 200_000
FLUSH_BATCH = 1000  # XADDs per pipeline round trip
FLUSH_INTERVAL_S = 0.1  # how often `run` flushes: the share-to-ledger latency we accept
# A pending entry another consumer has held this long (ms) is presumed orphaned by a crash and claimed.
CLAIM_IDLE_MS = 60_000
EVENT_FIELD = b"e"


class RedisShareSink:
    """A `ShareSink` onto a Redis stream."""

    def __init__(self, client: aioredis.Redis, stream: str, maxlen: int = STREAM_MAXLEN) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self._buffer: collections.deque[bytes] = collections.deque()
        self._flushing = asyncio.Lock()  # two concurrent flushes would write the same events twice
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._buffer) >= SINK_BUFFER_MAX:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(encode_event(event))

    def __len__(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Write everything buffered; on a Redis error the unwritten events stay buffered."""
        written = 0
        async with self._flushing:
            while self._buffer:
                chunk = [self._buffer[i] for i in range(min(FLUSH_BATCH, len(self._buffer)))]
                # MULTI/EXEC: a chunk is written whole or not at all, so a retry after an error does not
                # duplicate part of it. (A connection lost after EXEC but before its reply still leaves
                # the outcome unknown; the chunk is then written again.)
                pipe = self.client.pipeline(transaction=True)
                for data in chunk:
                    pipe.xadd(self.stream, {EVENT_FIELD: data}, maxlen=self.maxlen, approximate=True)
                await pipe.execute()
                for _ in chunk:
                    self._buffer.popleft()
                written += len(chunk)
        return written

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.flush()
            except RedisError as exc:
                log.warning("share bus: Redis unavailable, %d events buffered: %s", len(self._buffer), exc)
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
        await self.flush()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventSource:
    """An `EventSource` over a Redis stream and consumer group."""

    def __init__(self, client: aioredis.Redis, stream: str, group: str = "ledger", consumer: str = "ledger-1") -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.name = f"redis:{stream}:{group}"
        self._ready = False
        self._own_pending_done = False
        self._claim_cursor = "0-0"
        # Entries handed out and not yet acknowledged. Until they are, every read hands them out again:
        # if the ledger failed to apply them, newer entries must not be applied first, or the stored
        # cursor would move past them and they would be skipped as already seen.
        self._unacked: list[tuple[str, Event | None]] = []

    async def _ensure_group(self) -> None:
        if self._ready:
            return
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreError(f"cannot create consumer group {self.group} on {self.stream}: {exc}") from exc
        self._ready = True

    def _decode(self, entries: Sequence[Any]) -> list[tuple[str, Event | None]]:
        out: list[tuple[str, Event | None]] = []
        for entry_id, fields in entries:
            pos = _s(entry_id)
            if not fields:  # pending entry trimmed away from the stream: nothing left to apply
                out.append((pos, None))
                continue
            data = fields.get(EVENT_FIELD) or fields.get(_s(EVENT_FIELD))
            try:
                if data is None:
                    raise EventDecodeError("no event field")
                out.append((pos, decode_event(data)))
            except EventDecodeError as exc:
                log.error("share bus: undecodable entry %s skipped: %s", pos, exc)
                out.append((pos, None))
        return out

    async def read(self, max_count: int, block_s: float) -> list[tuple[str, Event | None]]:
        if self._unacked:
            return list(self._unacked)
        self._unacked = await self._read_new(max_count, block_s)
        return list(self._unacked)

    async def _read_new(self, max_count: int, block_s: float) -> list[tuple[str, Event | None]]:
        await self._ensure_group()
        if not self._own_pending_done:
            # Entries delivered to this consumer before a crash and never acknowledged, oldest first.
            got: Any = await self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=max_count)
            entries = got[0][1] if got else []
            if entries:
                return self._decode(entries)
            self._own_pending_done = True
        claimed = await self.client.xautoclaim(
            self.stream, self.group, self.consumer, CLAIM_IDLE_MS, start_id=self._claim_cursor, count=max_count
        )
        self._claim_cursor = _s(claimed[0])
        if claimed[1]:
            return self._decode(sorted(claimed[1], key=lambda e: tuple(int(x) for x in _s(e[0]).split("-"))))
        block_ms = int(block_s * 1000) if block_s > 0 else None
        fresh: Any = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=max_count, block=block_ms
        )
        return self._decode(fresh[0][1]) if fresh else []

    async def ack(self, positions: Sequence[str]) -> None:
        if positions:
            await self.client.xack(self.stream, self.group, *positions)
            done = set(positions)
            self._unacked = [(p, e) for p, e in self._unacked if p not in done]

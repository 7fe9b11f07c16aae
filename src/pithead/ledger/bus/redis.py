"""The Redis Streams share bus: many Stratum front-ends put events, one ledger consumes them.

`RedisShareSink` is a `ShareSink`: `put` only appends to a bounded in-memory buffer (it must never block
the pool) and `flush`/`run` pipeline the buffer into the stream with XADD. `RedisEventSource` is an
`EventSource` reading the stream through a consumer group: on start it first re-reads its own pending
entries (read before a crash, never acknowledged), then claims entries another consumer left pending for
too long, then reads new ones; entries are acknowledged (XACK) only after the ledger has committed them.
Together with the ledger's stored cursor (see `pithead.ledger.bus.source`) a crash neither loses nor double-counts
what reached Redis. What a kill -9 of a pool front-end can lose is what it accepted and had not written yet:
the shares of its last FLUSH_INTERVAL_S (plus, while Redis is away, its buffer, which it logs).

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

from pithead.events import Event, EventDecodeError, decode_event, encode_event
from pithead.ledger.store.base import StoreError

log = logging.getLogger(__name__)

# Approximate length bound of the stream (XADD MAXLEN ~). Entries are ~300 bytes, so this caps Redis at
# a few hundred MB; at 1000 shares/s it is over 15 minutes of ledger downtime before the oldest unread
# entries would be trimmed.
STREAM_MAXLEN = 1_000_000
# Events buffered in the pool process while Redis is slow or away; beyond it the oldest are dropped
# (and counted), rather than the pool's memory growing without bound.
SINK_BUFFER_MAX = 200_000
FLUSH_BATCH = 1000  # XADDs per pipeline round trip
# How often `run` flushes: the share-to-ledger latency we accept, and what a kill -9 of a pool front-end can
# lose (the shares it accepted since its last flush; what Redis has is safe). Flushing four times as often
# as the 0.1 s it once was costs no more per event (~40 us each either way, measured with 5,000 events/s
# against a local Redis) and nothing when idle (an empty buffer makes no call).
FLUSH_INTERVAL_S = 0.025
# The last flush after `run` is asked to stop may take this long (s): a pool's stop must not hang on a Redis
# that has gone away; what is still buffered then is logged as lost.
FINAL_FLUSH_S = 5.0
UNAVAILABLE_LOG_S = 30.0  # while Redis stays away, "unavailable" is repeated this often, not on every try
# A pending entry another consumer has held this long (ms) is presumed orphaned by a crash and claimed.
CLAIM_IDLE_MS = 60_000
EVENT_FIELD = b"e"


class RedisShareSink:
    """A `ShareSink` onto a Redis stream.

    `put` never blocks and never raises: it appends to a buffer bounded by SINK_BUFFER_MAX (beyond it the
    oldest events are dropped and counted in `dropped`; a chunk being written, at most FLUSH_BATCH, is held
    apart from it). `run(stop)` writes the buffer out every
    FLUSH_INTERVAL_S; while Redis is away it keeps the events buffered, says so once (and again every
    UNAVAILABLE_LOG_S), says when Redis is back, and logs every drop; after `stop` it makes one last
    flush bounded by `final_flush_s`, so a pool's stop never hangs on a Redis that is gone.
    Counters: `written` (events in the stream), `dropped`, and `len(sink)` (still buffered)."""

    def __init__(self, client: aioredis.Redis, stream: str, maxlen: int = STREAM_MAXLEN) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self._buffer: collections.deque[bytes] = collections.deque()
        self._flushing = asyncio.Lock()  # two concurrent flushes would write the same events twice
        self.dropped = 0
        self.written = 0
        self._inflight = 0  # events taken from the buffer by a flush that is writing them
        self._dropped_said = 0  # drops already logged by `run`

    def put(self, event: Event) -> None:
        self._buffer.append(encode_event(event))
        self._trim()

    def _trim(self) -> None:
        while len(self._buffer) > SINK_BUFFER_MAX:
            self._buffer.popleft()
            self.dropped += 1

    def __len__(self) -> int:
        """Events not yet written: buffered, or being written right now."""
        return len(self._buffer) + self._inflight

    async def ping(self) -> None:
        """Raise `StoreError` unless Redis answers (a pool checks this before it starts)."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot use Redis: {exc}") from exc

    async def flush(self) -> int:
        """Write everything buffered; on a Redis error the unwritten events stay buffered (and it raises)."""
        written = 0
        async with self._flushing:
            while self._buffer:
                # The chunk leaves the buffer while it is written, so events `put` meanwhile (and the
                # oldest ones it may drop) never shift what this write removes.
                chunk = [self._buffer.popleft() for _ in range(min(FLUSH_BATCH, len(self._buffer)))]
                self._inflight = len(chunk)
                # MULTI/EXEC: a chunk is written whole or not at all, so a retry after an error does not
                # duplicate part of it. (A connection lost after EXEC but before its reply still leaves
                # the outcome unknown; the chunk is then written again.)
                pipe = self.client.pipeline(transaction=True)
                for data in chunk:
                    pipe.xadd(self.stream, {EVENT_FIELD: data}, maxlen=self.maxlen, approximate=True)
                try:
                    await pipe.execute()
                except BaseException:  # unwritten (or unknown): back in front, oldest first, still bounded
                    self._buffer.extendleft(reversed(chunk))
                    self._trim()
                    raise
                finally:
                    self._inflight = 0
                written += len(chunk)
                self.written += len(chunk)
        return written

    async def run(self, stop: asyncio.Event, final_flush_s: float = FINAL_FLUSH_S) -> None:
        down_since: float | None = None  # loop time Redis went away, None while it answers
        last_said = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await self.flush()
                if down_since is not None:
                    log.warning("share bus: Redis is back after %.1f s; the buffered events are written to %s",
                                loop.time() - down_since, self.stream)
                    down_since = None
            except (RedisError, OSError) as exc:
                now = loop.time()
                if down_since is None or now - last_said >= UNAVAILABLE_LOG_S:
                    log.warning("share bus: Redis unavailable (%s); %d events buffered in memory (at most %d, "
                                "then the oldest are dropped); the pool keeps serving", exc, len(self),
                                SINK_BUFFER_MAX)
                    last_said = now
                if down_since is None:
                    down_since = now
            if self.dropped != self._dropped_said:
                log.error("share bus: %d events dropped (buffer full while Redis is away), %d in all",
                          self.dropped - self._dropped_said, self.dropped)
                self._dropped_said = self.dropped
            try:
                await asyncio.wait_for(stop.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
        try:
            await asyncio.wait_for(self.flush(), final_flush_s)
        except (RedisError, OSError, TimeoutError) as exc:
            log.error("share bus: %d events not written to %s at stop (Redis: %s)", len(self), self.stream,
                      exc or "no answer")
        if self.dropped:
            log.error("share bus: %d events were dropped while Redis was away", self.dropped)
        log.info("share bus: %d events written to %s", self.written, self.stream)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventSource:
    """An `EventSource` over a Redis stream and consumer group."""

    volatile = False  # entries stay in Redis until the ledger has committed and acknowledged them

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

    async def backlog(self) -> int:
        """Entries of the stream this group has not acknowledged yet (read or not): 0 once the ledger has
        applied everything the front-ends have written so far. The stop sequence waits on it."""
        await self._ensure_group()
        groups: Any = await self.client.xinfo_groups(self.stream)
        mine = next((g for g in groups if _s(g.get("name")) == self.group), None)
        if mine is None:
            return 0
        pending = int(mine.get("pending") or 0)
        lag = mine.get("lag")
        if lag is not None:  # Redis >= 7
            return pending + int(lag)
        # No lag (older Redis, or entries deleted from the middle): behind while the group's last delivered
        # id is older than the stream's newest.
        info: Any = await self.client.xinfo_stream(self.stream)
        last = _s(info.get("last-generated-id") or "0-0")
        delivered = _s(mine.get("last-delivered-id") or "0-0")
        behind = tuple(int(x) for x in delivered.split("-")) < tuple(int(x) for x in last.split("-"))
        return pending + (1 if behind else 0)

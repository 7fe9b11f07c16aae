"""The Redis Streams share bus against the real Redis on 127.0.0.1:6379, one unique stream per test.

Crash scenarios: a ledger that dies after reading but before applying, and one that dies after
committing but before acknowledging; in both the restarted consumer ends with every share counted once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pithead.events import BlockEvent, ShareEvent, encode_event
from pithead.ledger.bus import redis as redis_bus
from pithead.ledger.bus.redis import RedisEventSource, RedisShareSink
from pithead.ledger.consumer import ConsumeCounters, consume, consume_once
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.service import open_bus
from pithead.ledger.store.base import LedgerStore
from skips import missing


@pytest.fixture
async def rclient() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        missing("redis", str(exc))
    stream = f"pithead-test:{uuid.uuid4().hex}"
    try:
        yield client, stream
    finally:
        await client.delete(stream)
        await client.aclose()


def share(i: int, address: str = "bcrt1qa") -> ShareEvent:
    return ShareEvent(1000.0 + i, f"{address}.rig", address, 1.0, f"j{i}", 300, True, share_difficulty=2.0)


async def fill(client: aioredis.Redis, stream: str, n: int, start: int = 0) -> None:
    sink = RedisShareSink(client, stream)
    for i in range(start, start + n):
        sink.put(share(i))
    assert len(sink) == n
    assert await sink.flush() == n
    assert len(sink) == 0


async def test_sink_to_ledger_with_acknowledgement(rclient: tuple[aioredis.Redis, str], store: LedgerStore) -> None:
    client, stream = rclient
    await fill(client, stream, 25)
    sink = RedisShareSink(client, stream)
    sink.put(BlockEvent(2000.0, 301, "ab" * 32, "bcrt1qa.rig", "bcrt1qa", 5_000_000_000, 0, True, network_difficulty=1.0))
    await sink.flush()
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=0, pplns_n=10.0))
    source = RedisEventSource(client, stream)
    counters = ConsumeCounters()
    while await consume_once(ledger, source, counters):
        pass
    assert counters.applied == 26 and store.share_count() == 25
    assert store.get_block("ab" * 32) is not None
    pending = await client.xpending(stream, "ledger")
    assert pending["pending"] == 0  # everything acknowledged
    assert ledger.cursor(source.name) == (await client.xrevrange(stream, count=1))[0][0].decode()


async def test_crash_before_apply_loses_nothing(rclient: tuple[aioredis.Redis, str], store: LedgerStore) -> None:
    client, stream = rclient
    await fill(client, stream, 10)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    crashed = RedisEventSource(client, stream, consumer="ledger-1")
    got = await crashed.read(6, 0)  # delivered, then the process dies: no apply, no ack
    assert len(got) == 6
    restarted = RedisEventSource(client, stream, consumer="ledger-1")
    counters = ConsumeCounters()
    while await consume_once(ledger, restarted, counters):
        pass
    assert store.share_count() == 10 and counters.applied == 10 and counters.skipped_seen == 0


async def test_crash_after_commit_before_ack_counts_once(rclient: tuple[aioredis.Redis, str], store: LedgerStore) -> None:
    client, stream = rclient
    await fill(client, stream, 10)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    crashed = RedisEventSource(client, stream, consumer="ledger-1")
    got = await crashed.read(7, 0)
    ledger.apply([e for _, e in got if e is not None], (crashed.name, got[-1][0]))  # committed, never acked
    assert (await client.xpending(stream, "ledger"))["pending"] == 7
    restarted = RedisEventSource(client, stream, consumer="ledger-1")
    counters = ConsumeCounters()
    while await consume_once(ledger, restarted, counters):
        pass
    assert store.share_count() == 10  # not 17
    assert counters.skipped_seen == 7 and counters.applied == 3
    assert (await client.xpending(stream, "ledger"))["pending"] == 0
    w = store.worker("bcrt1qa.rig")
    assert w is not None and w.accepted == 10


async def test_new_consumer_claims_entries_a_dead_one_left(
    rclient: tuple[aioredis.Redis, str], store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stream = rclient
    await fill(client, stream, 5)
    dead = RedisEventSource(client, stream, consumer="ledger-old")
    assert len(await dead.read(5, 0)) == 5  # read under another consumer name, then lost
    monkeypatch.setattr(redis_bus, "CLAIM_IDLE_MS", 0)  # do not wait a minute in a test
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    fresh = RedisEventSource(client, stream, consumer="ledger-new")
    counters = ConsumeCounters()
    while await consume_once(ledger, fresh, counters):
        pass
    assert store.share_count() == 5 and (await client.xpending(stream, "ledger"))["pending"] == 0


async def test_undecodable_entries_are_skipped_not_fatal(rclient: tuple[aioredis.Redis, str], store: LedgerStore) -> None:
    client, stream = rclient
    await client.xadd(stream, {b"e": b"{not json"})
    await client.xadd(stream, {b"e": b'{"kind":"share","time":"yesterday"}'})
    await client.xadd(stream, {b"e": encode_event(share(1))})
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    source = RedisEventSource(client, stream)
    counters = ConsumeCounters()
    while await consume_once(ledger, source, counters):
        pass
    assert counters.undecodable == 2 and store.share_count() == 1


async def test_running_sink_and_consumer_together(rclient: tuple[aioredis.Redis, str], store: LedgerStore) -> None:
    client, stream = rclient
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    sink = RedisShareSink(client, stream)
    source = RedisEventSource(client, stream)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sink.run(stop)), asyncio.create_task(consume(ledger, source, stop))]
    for i in range(300):
        sink.put(share(i, address=f"bcrt1q{i % 4}"))
    for _ in range(500):
        if store.share_count() == 300:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    assert store.share_count() == 300
    assert sum(w.accepted for w in store.workers()) == 300


async def test_sink_buffer_is_bounded_and_flushes_once(
    rclient: tuple[aioredis.Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stream = rclient
    monkeypatch.setattr(redis_bus, "SINK_BUFFER_MAX", 50)
    sink = RedisShareSink(client, stream)
    for i in range(80):
        sink.put(share(i))
    assert len(sink) == 50 and sink.dropped == 30
    await asyncio.gather(sink.flush(), sink.flush())  # concurrent flushes must not write twice
    assert await client.xlen(stream) == 50


async def test_failed_batch_is_retried_before_newer_entries(
    rclient: tuple[aioredis.Redis, str], tmp_path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    # The database refuses a batch (another process holds the write lock); newer entries arrive; once
    # the database is back, the refused batch must be applied, not skipped behind the newer ones.
    import sqlite3

    from pithead.ledger.store import StoreError, open_store

    client, stream = rclient
    path = tmp_path / "ledger.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store._conn.execute("PRAGMA busy_timeout = 50")  # type: ignore[attr-defined]
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    source = RedisEventSource(client, stream)
    counters = ConsumeCounters()
    await fill(client, stream, 10)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError):
        await consume_once(ledger, source, counters)
    await fill(client, stream, 5, start=10)
    blocker.execute("ROLLBACK")
    blocker.close()
    while await consume_once(ledger, source, counters):
        pass
    assert store.share_count() == 15 and counters.skipped_seen == 0
    assert (await client.xpending(stream, "ledger"))["pending"] == 0
    store.close()


async def test_sink_run_writes_what_is_buffered_at_stop(rclient: tuple[aioredis.Redis, str]) -> None:
    # A pool stops right after its last shares: `run`'s last flush, after the stop, writes them.
    client, stream = rclient
    sink = RedisShareSink(client, stream)
    stop = asyncio.Event()
    stop.set()
    for i in range(7):
        sink.put(share(i))
    await sink.run(stop)
    assert await client.xlen(stream) == 7 and len(sink) == 0 and sink.written == 7


async def test_events_put_during_a_flush_are_neither_lost_nor_duplicated(
    rclient: tuple[aioredis.Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stream = rclient
    monkeypatch.setattr(redis_bus, "SINK_BUFFER_MAX", 10)
    sink = RedisShareSink(client, stream)
    for i in range(10):
        sink.put(share(i))
    writing = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)  # the flush has taken its chunk and waits for Redis
    for i in range(10, 25):  # the pool goes on: 15 more, 5 over the bound (the oldest of them dropped)
        sink.put(share(i))
    assert await writing == 20  # its chunk, then the ten still buffered
    assert len(sink) == 0 and sink.dropped == 5
    jobs = [orjson.loads(fields[b"e"])["job_id"] for _, fields in await client.xrange(stream)]
    assert jobs == [f"j{i}" for i in [*range(10), *range(15, 25)]]


async def test_sink_with_redis_away_keeps_a_bounded_buffer_logs_drops_and_catches_up(
    rclient: tuple[aioredis.Redis, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client, stream = rclient
    monkeypatch.setattr(redis_bus, "SINK_BUFFER_MAX", 5)
    with socket.socket() as s:  # a port nobody listens on: Redis is away
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    sink, _ = open_bus(f"redis://127.0.0.1:{dead_port}/0?stream={stream}")  # as the pool gets it
    assert isinstance(sink, RedisShareSink)
    away = sink.client
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="pithead.ledger.bus.redis")
    writer = asyncio.create_task(sink.run(stop))
    try:
        for i in range(8):
            sink.put(share(i))  # never blocks, never raises
        for _ in range(500):
            if any("3 events dropped" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        assert sink.dropped == 3 and len(sink) == 5
        assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1  # said once, not per try
        sink.client = client  # Redis is back
        for _ in range(500):
            if not len(sink):
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await writer
        await away.aclose()
    jobs = [orjson.loads(fields[b"e"])["job_id"] for _, fields in await client.xrange(stream)]
    assert jobs == [f"j{i}" for i in range(3, 8)]  # the newest five, once each
    assert any("Redis is back" in r.getMessage() for r in caplog.records)


async def test_sink_stop_is_bounded_when_redis_does_not_answer(
    rclient: tuple[aioredis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, stream = rclient
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = aioredis.Redis(host="127.0.0.1", port=silent.getsockname()[1])
        sink = RedisShareSink(mute, stream)
        sink.put(share(1))
        stop = asyncio.Event()
        stop.set()
        try:
            await asyncio.wait_for(sink.run(stop, final_flush_s=0.2), 10)  # returns, does not hang
        finally:
            await mute.aclose()
    assert len(sink) == 1 and sink.written == 0  # kept, and said to be unwritten
    assert any("1 events not written" in r.getMessage() for r in caplog.records)


async def test_backlog_counts_what_the_ledger_has_not_acknowledged(
    rclient: tuple[aioredis.Redis, str], store: LedgerStore
) -> None:
    client, stream = rclient
    source = RedisEventSource(client, stream)
    assert await source.backlog() == 0
    await fill(client, stream, 6)
    assert await source.backlog() == 6
    got = await source.read(4, 0)  # read, not yet acknowledged: still to be applied
    assert len(got) == 4 and await source.backlog() == 6
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    counters = ConsumeCounters()
    while await consume_once(ledger, source, counters):
        pass
    assert await source.backlog() == 0 and store.share_count() == 6

"""The Ledger service on both backends: credits per scheme sum exactly, rounds, rollup, stats, the bus."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pithead.config import ConfigError, LedgerConfig
from pithead.events import BlockEvent, ShareEvent, decode_event, encode_event
from pithead.ledger import schemes
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.consumer import ConsumeCounters, consume, consume_once
from pithead.ledger.ledger import HASHRATE_WINDOWS_S, RAW_MIN_RETENTION_S, Ledger, LedgerError, LedgerSettings
from pithead.ledger.schemes import POOL_ACCOUNT, Scheme, Work
from pithead.ledger.stats import HASHES_PER_DIFF1
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BlockStatus, CreditStatus

REWARD = 312_500_000 + 12_345


def sh(t: float, address: str, d: float, worker: str | None = None, **kw: object) -> ShareEvent:
    fields: dict[str, object] = {"job_id": "j", "height": 200, "accepted": True, "share_difficulty": d}
    fields.update(kw)
    return ShareEvent(t, worker or f"{address}.rig", address, d, **fields)  # type: ignore[arg-type]


def blk(t: float, h: str, address: str = "finder", reward: int = REWARD, netdiff: float = 10.0, **kw: object) -> BlockEvent:
    fields: dict[str, object] = {"fees_sat": 12_345, "accepted_by_node": True, "network_difficulty": netdiff}
    fields.update(kw)
    return BlockEvent(t, 201, h, f"{address}.rig", address, reward, **fields)  # type: ignore[arg-type]


def block_credits(store: LedgerStore, h: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in store.credits(block_hash=h):
        out[c.address] = out.get(c.address, 0) + c.amount_sat
    return out


HISTORY = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.floats(min_value=0.01, max_value=50.0)), min_size=0, max_size=40
)


@pytest.mark.parametrize("scheme", [Scheme.SOLO, Scheme.PROP, Scheme.PPLNS, Scheme.PPS])
@given(history=HISTORY, fee=st.integers(0, 50_000), reward=st.integers(0, 10**10))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_block_credits_sum_to_the_reward_exactly(
    store: LedgerStore, scheme: Scheme, history: list[tuple[str, float]], fee: int, reward: int
) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=scheme, fee_ppm=fee, pplns_n=2.0))
    base = float(store.share_count() * 1000)  # hypothesis reuses the store: keep times and hashes unique
    h = f"blk{base}-{len(history)}-{reward}-{fee}-{scheme}"
    events: list[ShareEvent | BlockEvent] = [sh(base + i, a, d) for i, (a, d) in enumerate(history)]
    events.append(blk(base + 999, h, reward=reward))
    ledger.apply(events)
    credits = block_credits(store, h)
    assert sum(credits.values()) == reward
    if scheme is not Scheme.PPS:
        assert credits.get(POOL_ACCOUNT, 0) == reward * fee // 1_000_000


def test_pplns_through_the_ledger_matches_the_pure_function(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=10_000, pplns_n=0.5))
    history = [("a", 1.0), ("b", 2.0), ("a", 0.5), ("c", 3.0), ("b", 1.25), ("a", 2.0)]
    ledger.apply([sh(100 + i, a, d) for i, (a, d) in enumerate(history)])
    ledger.apply([blk(200, "h1", netdiff=10.0)])  # window = 0.5 x 10 = 5 of the newest difficulty
    expected = schemes.pplns(REWARD, [Work(a, d) for a, d in reversed(history)], 5.0, "finder", 10_000)
    assert block_credits(store, "h1") == {a: v for a, v in expected.credits.items() if v}
    assert "c" in expected.credits and expected.credits.get("finder") is None


def test_prop_round_resets_at_each_block(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PROP, fee_ppm=0))
    ledger.apply([sh(1, "a", 3.0), sh(2, "b", 1.0), blk(3, "h1"), sh(4, "b", 5.0), blk(5, "h2")])
    first, second = block_credits(store, "h1"), block_credits(store, "h2")
    assert set(first) == {"a", "b"} and first["a"] + first["b"] == REWARD
    assert REWARD * 3 // 4 <= first["a"] <= REWARD * 3 // 4 + 1
    assert second == {"b": REWARD}


def test_repeated_and_rejected_blocks_credit_nothing_more(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    r1 = ledger.apply([blk(1, "h1", address="x")])
    r2 = ledger.apply([blk(1, "h1", address="x")])
    assert r1.blocks == ("h1",) and r2.blocks == ()
    assert block_credits(store, "h1") == {"x": REWARD}
    ledger.apply([blk(2, "h2", accepted_by_node=False, node_result="high-hash")])
    got = store.get_block("h2")
    assert got is not None and got.status is BlockStatus.REJECTED and got.node_result == "high-hash"
    assert block_credits(store, "h2") == {}


def test_pps_pays_shares_from_the_pool_account_and_keeps_blocks(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPS, fee_ppm=20_000), network_difficulty=1000.0,
                    block_value_sat=5_000_000_000)
    result = ledger.apply([sh(1, "a", 1.0), sh(2, "a", 1.0), sh(3, "b", 0.5, network_difficulty=500.0)])
    # a: 2 x 1/1000 x 0.98 x 50 BTC; b: 0.5/500 x 0.98 x 50 BTC
    assert result.pps_credited_sat == 9_800_000 + 4_900_000
    bal = {b.address: b for b in store.balances()}
    assert bal["a"].payable_sat == 9_800_000 and bal["b"].payable_sat == 4_900_000
    assert bal[POOL_ACCOUNT].mature_sat == -(9_800_000 + 4_900_000)
    ledger.apply([blk(4, "h1", reward=5_000_000_000)])
    assert block_credits(store, "h1") == {POOL_ACCOUNT: 5_000_000_000}
    unpriced = Ledger(store, LedgerSettings(scheme=Scheme.PPS)).apply([sh(5, "c", 1.0)])
    assert unpriced.pps_unpriced == 1 and unpriced.pps_credited_sat == 0


def test_rollup_keeps_what_pplns_needs(store: LedgerStore) -> None:
    # A block split computed after rollup must equal the split computed before it.
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=0, pplns_n=1.0), network_difficulty=20.0)
    ledger.apply([sh(float(t), "abc"[t % 3], 1.0 + (t % 4)) for t in range(0, 3000, 10)])
    before = ledger.split_block(REWARD, "finder", 20.0)
    result = ledger.rollup(now=3000.0 + RAW_MIN_RETENTION_S + 1)
    assert result.shares_deleted > 200  # 300 shares, the window needs about 2 x 20 difficulty of them
    assert store.share_count() < 300
    assert ledger.split_block(REWARD, "finder", 20.0) == before
    # a non-PPLNS ledger keeps only the recent hour
    solo = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    solo.rollup(now=3000.0 + RAW_MIN_RETENTION_S + 1)
    assert store.share_count() == 0
    assert store.work_since(0.0).shares == 300  # statistics survive pruning


def test_worker_and_pool_statistics(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    now = 100_000.0
    events = [sh(now - 59 + i * 2, "addr1", 4.0, worker="addr1.big", share_difficulty=4.0 + i) for i in range(30)]
    events += [sh(now - 3000, "addr1", 1.0, worker="addr1.small")]
    events += [sh(now - 5, "addr1", 4.0, worker="addr1.big", accepted=False, reject_reason="stale")]
    ledger.apply(events)
    ws = ledger.worker_stats("addr1.big", now)
    assert ws is not None
    one_min = ws.stats.hashrate[60]
    assert one_min.shares == 30 and one_min.reliable
    assert 60 <= one_min.span_s < 70
    assert one_min.hashrate == pytest.approx(120.0 * HASHES_PER_DIFF1 / one_min.span_s)
    assert one_min.low < one_min.hashrate < one_min.high
    assert ws.stats.rejects == {"stale": 1}
    assert ws.stats.best_share == 33.0 and ws.stats.last_share_time == now - 1
    small = ledger.worker_stats("addr1.small", now)
    assert small is not None
    assert small.stats.hashrate[60].shares == 0 and not small.stats.hashrate[3600].reliable
    assert small.stats.hashrate[3600].shares == 1
    addr = ledger.address_stats("addr1", now)
    assert addr is not None and len(addr.workers) == 2
    assert addr.stats.hashrate[86400].shares == 31
    assert ledger.address_stats("nobody", now) is None
    assert ledger.worker_stats("nobody", now) is None
    summary = ledger.pool_summary(now)
    assert summary.workers == 2 and summary.workers_online == 1
    assert set(summary.stats.hashrate) == set(HASHRATE_WINDOWS_S)
    assert [s.share_difficulty for s in ledger.best_shares(2)] == [33.0, 32.0]
    assert len(ledger.recent_shares(5, worker="addr1.small")) == 1


def test_settings_from_config() -> None:
    s = LedgerSettings.from_config(LedgerConfig(scheme="pps", pool_fee_percent=2.5))
    assert s.scheme is Scheme.PPS and s.fee_ppm == 25_000
    with pytest.raises(ConfigError, match=r"ledger\.scheme"):
        LedgerSettings.from_config(LedgerConfig(scheme="fpps"))  # type: ignore[arg-type]


def test_events_round_trip_the_wire_codec() -> None:
    for ev in (sh(1.5, "a", 2.0, reject_reason=None, remote="127.0.0.1"), blk(2.0, "h", node_result=None)):
        assert decode_event(encode_event(ev)) == ev


async def test_memory_bus_consumer_applies_each_event_once(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    bus = MemoryBus()
    for i in range(10):
        bus.put(sh(float(i), "a", 1.0))
    counters = ConsumeCounters()
    # a ledger that crashes after committing but before acknowledging: entries come back, and are skipped
    entries = await bus.read(5, 0)
    ledger.apply([e for _, e in entries if e is not None], (bus.name, entries[-1][0]))
    assert await consume_once(ledger, bus, counters) == 5  # the redelivered five
    assert counters.skipped_seen == 5 and counters.applied == 0
    stop = asyncio.Event()
    task = asyncio.create_task(consume(ledger, bus, stop))
    for i in range(10, 15):
        bus.put(sh(float(i), "a", 1.0))
    for _ in range(100):
        if store.share_count() == 15:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert store.share_count() == 15
    assert store.worker("a.rig") is not None and store.worker("a.rig").accepted == 15  # type: ignore[union-attr]


def test_memory_bus_is_bounded() -> None:
    bus = MemoryBus(maxlen=3)
    for i in range(5):
        bus.put(sh(float(i), "a", 1.0))
    assert len(bus) == 3 and bus.dropped == 2


def test_credits_status_follows_block(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    ledger.apply([blk(1, "h1", address="x")])
    assert {c.status for c in store.credits(block_hash="h1")} == {CreditStatus.IMMATURE}


def test_invalid_events_are_skipped_not_fatal(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=0))
    bad: list[object] = [
        sh(1, "a", float("nan")),
        sh(2, "a", -1.0),
        sh(3, "a" * 1000, 1.0),
        sh(float("inf"), "a", 1.0),
        blk(4, "hbad", reward=-5),
        blk(5, "", address="x"),
        sh(5.5, "@pool", 1.0),  # the pool's own account is not a miner
        "not an event",
    ]
    result = ledger.apply([sh(0.5, "good", 1.0), *bad, blk(6, "hgood", address="good")])  # type: ignore[list-item]
    assert result.invalid == len(bad) and result.shares == 1 and result.blocks == ("hgood",)
    assert block_credits(store, "hgood") == {"good": REWARD}
    # a rejected share may carry difficulty 0 (the pool could not judge it)
    assert ledger.apply([sh(7, "a", 0.0, accepted=False, reject_reason="malformed")]).invalid == 0


class FlakySource:
    """An event source whose first read fails, as Redis does while it restarts."""

    def __init__(self, inner: MemoryBus) -> None:
        self.inner, self.name, self.failed = inner, inner.name, False
        self.volatile = inner.volatile

    async def read(self, max_count: int, block_s: float):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise ConnectionError("connection reset")
        return await self.inner.read(max_count, block_s)

    async def ack(self, positions):  # type: ignore[no-untyped-def]
        await self.inner.ack(positions)


async def test_consumer_survives_a_failing_source(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from pithead.ledger import consumer as bus_module

    monkeypatch.setattr(bus_module, "CONSUME_RETRY_S", 0.01)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    bus = MemoryBus()
    bus.put(sh(1.0, "a", 1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(consume(ledger, FlakySource(bus), stop))
    for _ in range(300):
        if store.share_count() == 1:
            break
        await asyncio.sleep(0.01)
    stop.set()
    counters = await task
    assert store.share_count() == 1 and counters.failures == 1


def test_hashrate_history_for_charts(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    # three 10-minute steps: 6, 0 and 3 shares of difficulty 2
    ledger.apply([sh(6000.0 + i * 100, "a", 2.0) for i in range(6)] + [sh(7200.0 + i * 100, "a", 2.0) for i in range(3)])
    hist = ledger.hashrate_history(now=7800.0, span_s=1800, step_s=600, address="a")
    assert [t for t, _ in hist] == [6000.0, 7200.0]
    assert hist[0][1] == pytest.approx(12.0 * HASHES_PER_DIFF1 / 600)
    assert hist[1][1] == pytest.approx(6.0 * HASHES_PER_DIFF1 / 600)
    assert ledger.hashrate_history(now=7800.0, span_s=1800, step_s=600, worker="nobody") == []
    with pytest.raises(LedgerError):
        ledger.hashrate_history(now=7800.0, step_s=7)
    with pytest.raises(LedgerError):
        ledger.hashrate_history(now=7800.0, span_s=10**9, step_s=600)


@given(
    history=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.1, 20.0), st.floats(0.0, 50.0)), max_size=60),
    netdiff=st.floats(1.0, 100.0),
)
@settings(max_examples=40, deadline=None)
def test_rollup_never_changes_what_a_block_would_pay(history: list[tuple[str, float, float]], netdiff: float) -> None:
    from pithead.ledger.store import open_store

    store = open_store("sqlite://:memory:")
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=0, pplns_n=1.5), network_difficulty=netdiff)
    t = 0.0
    for address, d, gap in history:
        t += gap
        ledger.apply([sh(t, address, d)])
    if not history:
        return
    before = ledger.split_block(REWARD, "finder", netdiff)
    ledger.rollup(now=t + RAW_MIN_RETENTION_S + 1)
    assert ledger.split_block(REWARD, "finder", netdiff) == before
    store.close()


async def test_a_bus_that_stays_down_logs_one_traceback_not_one_per_second(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    from pithead.ledger import consumer as bus_module

    monkeypatch.setattr(bus_module, "CONSUME_RETRY_S", 0.001)

    class DownSource:
        name = "down"
        volatile = False
        reads = 0

        async def read(self, max_count: int, block_s: float) -> list:  # type: ignore[type-arg]
            DownSource.reads += 1
            if DownSource.reads > 50:
                await asyncio.sleep(0.001)  # back: an empty read waits, as a real one blocks for block_s
                return []
            raise ConnectionError("redis is down")

        async def ack(self, positions: list) -> None:  # type: ignore[type-arg]
            return None

    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    stop = asyncio.Event()
    with caplog.at_level("WARNING", logger="pithead.ledger.consumer"):
        task = asyncio.create_task(consume(ledger, DownSource(), stop))  # type: ignore[arg-type]
        for _ in range(500):
            if DownSource.reads > 52:
                break
            await asyncio.sleep(0.005)
        stop.set()
        counters = await task
    assert counters.failures == 50
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "retrying" in tracebacks[0].getMessage()
    assert any("working again" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) <= 3

"""The ledger's asyncio shell end to end: shares and a block in, maturity on the chain, a payout out."""

from __future__ import annotations

import asyncio
import time

import pytest
from ledger_standins import StandInWallet, TinyChain

from pithead.config import LedgerConfig
from pithead.events import BlockEvent, ShareEvent
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.consumer import ConsumeCounters, consume_once
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.service import RpcChainView, Timers, open_bus, open_ledger, run_ledger, timers_from_config
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus, BlockStatus

FAST = Timers(rollup_s=0.02, maturity_s=0.02, payout_s=0.02)


async def wait_for(cond, limit_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_block_found_matures_and_is_paid(store: LedgerStore) -> None:
    chain = TinyChain(300)
    wallet = StandInWallet(10**10)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=10_000, pplns_n=2.0, payout_threshold_sat=100_000))
    bus = MemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(ledger, bus, stop, node=chain, wallet=wallet, timers=FAST))
    for i in range(40):
        addr = "bcrt1qalice" if i % 4 else "bcrt1qbob"
        bus.put(ShareEvent(1000.0 + i, f"{addr}.rig", addr, 1.0, "j", 301, True, share_difficulty=1.5))
    bus.put(ShareEvent(1041.0, "bcrt1qbob.rig", "bcrt1qbob", 1.0, "j", 301, False, "stale"))
    bus.put(BlockEvent(1042.0, 250, chain.best[250], "bcrt1qbob.rig", "bcrt1qbob", 5_000_000_000, 0, True,
                       network_difficulty=10.0))
    assert await wait_for(lambda: store.get_block(chain.best[250]) is not None)
    assert await wait_for(lambda: store.get_block(chain.best[250]).confirmations == 51)  # type: ignore[union-attr]
    assert wallet.paid() == {}  # immature: nothing payable yet
    chain.extend(49)
    assert await wait_for(lambda: store.get_block(chain.best[250]).status is BlockStatus.CONFIRMED)  # type: ignore[union-attr]
    assert await wait_for(lambda: bool(store.batches([BatchStatus.SENT])))
    stop.set()
    counters = await task
    assert counters.applied == 42
    paid = wallet.paid()
    # PPLNS over the last 20 difficulty: 15 of alice's shares and 5 of bob's; 1 % fee kept by the pool
    assert paid == {"bcrt1qalice": 3_712_500_000, "bcrt1qbob": 1_237_500_000}
    assert sum(paid.values()) == 5_000_000_000 - 50_000_000


async def test_periodic_failures_do_not_stop_the_consumer(store: LedgerStore) -> None:
    chain = TinyChain(10)
    chain.down = True  # every maturity pass fails
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    bus = MemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(ledger, bus, stop, node=chain, timers=FAST))
    await asyncio.sleep(0.1)
    bus.put(ShareEvent(time.time(), "a.rig", "a", 1.0, "j", 1, True))  # recent: rollup keeps it
    assert await wait_for(lambda: store.share_count() == 1)
    stop.set()
    await task


class RecordingClient:
    """Shaped like `RpcClient` (`call(method, *params)`), answering from a `TinyChain`."""

    def __init__(self, chain: TinyChain) -> None:
        self.chain = chain
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    async def call(self, method: str, *params: object, timeout_s: float | None = None) -> object:
        self.calls.append((method, params))
        if method == "getblockheader":
            return await self.chain.getblockheader(str(params[0]))
        return await getattr(self.chain, method)(*params)


async def test_rpc_chain_view_speaks_core_method_names() -> None:
    client = RecordingClient(TinyChain(5))
    view = RpcChainView(client)  # type: ignore[arg-type]
    assert await view.getblockcount() == 5
    h = await view.getblockhash(3)
    assert (await view.getblockheader(h))["confirmations"] == 3
    assert [c[0] for c in client.calls] == ["getblockcount", "getblockhash", "getblockheader"]
    assert client.calls[2][1] == (h, True)


def test_open_ledger_from_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = open_ledger(LedgerConfig(scheme="prop", database="sqlite:///ledger.sqlite3"), data_dir=tmp_path)
    assert ledger.settings.scheme is Scheme.PROP
    assert (tmp_path / "ledger.sqlite3").exists()
    ledger.store.close()


async def test_open_bus_from_config_urls() -> None:
    sink, source = open_bus("memory")
    assert sink is source
    sink, source = open_bus("redis://127.0.0.1:6379/0?stream=pithead-test:open-bus&group=g1")
    assert source.name == "redis:pithead-test:open-bus:g1"
    await sink.client.aclose()
    with pytest.raises(ValueError):
        open_bus("kafka://x")
    t = timers_from_config(LedgerConfig(payout_interval=60.0))
    assert t.payout_s == 60.0 and t.maturity_s == LedgerConfig().maturity_interval


async def test_a_resumed_ledger_applies_a_new_process_bus_from_its_first_event(store: LedgerStore) -> None:
    """The ledger keeps each source's cursor across restarts; a new process's in-memory bus of the same
    name must not have its first events skipped as already applied."""
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=0))
    counters = ConsumeCounters()
    first = MemoryBus("pool")
    for i in range(3):
        first.put(ShareEvent(time.time(), "w.a", "addr", 1.0, f"j{i}", 10, True))
    assert await consume_once(ledger, first, counters) == 3
    second = MemoryBus("pool")  # the next run of the same process
    for i in range(2):
        second.put(ShareEvent(time.time(), "w.a", "addr", 1.0, f"k{i}", 11, True))
    assert await consume_once(ledger, second, counters) == 2
    assert counters.applied == 5 and counters.skipped_seen == 0
    assert store.share_count() == 5

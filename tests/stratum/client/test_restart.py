"""A StratumClient (and a Miner mining through one) runs again after it stopped: start, stop, start.

Operator QA: the stop flag was never reset, so a second run() returned at once without connecting, and a
Miner could not be restarted. Against pithead's real pool server (as tests/miner/test_e2e_pool.py), fed a
regtest-shaped template by hand; shares are tiny, never blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.miner.runner import Miner, MinerOptions
from pithead.stratum.client.connection import (
    STOPPED_REASON,
    Connected,
    Disconnected,
    PoolAddress,
    StratumClient,
)
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.client import ClientConfig, NewWork
from pithead.stratum.v1.pool import PoolRules
from pithead.template.block_template import BlockTemplate
from pithead.template.sources.static import StaticTemplateSource

# A regtest address listed as valid in tests/vectors/addresses.json (P2WPKH on bcrt).
ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
USER = ADDRESS + ".restart"
HARD_BITS = 0x1D00FFFF  # difficulty-1 network target: our tiny shares are never blocks
#: Share difficulty asked of the pool: many shares a second on one thread.
EASY = 1e-4
#: Bounded waits only (a broken build fails instead of hanging); nothing here measures time.
WAIT = 30.0


class Sink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)

    def accepted(self) -> int:
        return sum(1 for e in self.events if isinstance(e, ShareEvent) and e.accepted)


@pytest.fixture
async def pool() -> AsyncIterator[tuple[PoolAddress, Sink]]:
    template = BlockTemplate(
        version=0x20000000, prev_hash=sha256d(b"restart"), height=101, bits=HARD_BITS,
        target=bits_to_target(HARD_BITS), curtime=int(time.time()), mintime=int(time.time()) - 600,
        coinbase_value=50 * 100_000_000, transactions=(), rules=("csv", "!segwit", "taproot"),
    )
    sink = Sink()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(5.0, 1e-6, 1e9), start_difficulty=EASY)
    server = PoolServer(rules=rules, source=StaticTemplateSource(template), sink=sink, refresh_interval=3600)
    _, port = await server.start("127.0.0.1", 0)
    try:
        yield PoolAddress("127.0.0.1", port), sink
    finally:
        await server.stop()


async def wait_for(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if cond():
                return
            await asyncio.sleep(0.02)


async def _one_run(client: StratumClient) -> list[Any]:
    """Run until the pool's first job arrives, then stop (from inside the run, as a miner would)."""
    events: list[Any] = []

    def on_event(ev: Any) -> None:
        events.append(ev)
        if isinstance(ev, NewWork):
            client.stop()

    await asyncio.wait_for(client.run(on_event), WAIT)
    return events


async def test_a_stopped_client_runs_again(pool: tuple[PoolAddress, Sink]) -> None:
    address, _ = pool
    client = StratumClient([address], ClientConfig(USER))
    for attempt in (1, 2, 3):
        events = await _one_run(client)
        assert client.connect_attempts == attempt  # each run really connected again
        assert isinstance(events[0], Connected) and any(isinstance(e, NewWork) for e in events)
        (gone,) = [e for e in events if isinstance(e, Disconnected)]
        assert gone.reason == STOPPED_REASON


async def test_a_stop_racing_the_start_of_a_run_still_stops_it(pool: tuple[PoolAddress, Sink]) -> None:
    address, _ = pool
    client = StratumClient([address], ClientConfig(USER))
    await _one_run(client)  # a first run, stopped: its stop must not carry over, but this one must count
    events: list[Any] = []
    task = asyncio.ensure_future(client.run(events.append))
    client.stop()  # before the task was ever scheduled
    await asyncio.wait_for(task, WAIT)
    assert events == [] and client.connect_attempts == 1
    # And after that stop, a new run mines again.
    events = await _one_run(client)
    assert client.connect_attempts == 2 and any(isinstance(e, NewWork) for e in events)


async def test_a_miner_mines_again_after_stopping(pool: tuple[PoolAddress, Sink]) -> None:
    address, sink = pool
    miner = Miner(MinerOptions(pools=(address,), username=USER, threads=1, suggest_difficulty=EASY))
    for _ in range(2):
        before_pool, target = sink.accepted(), miner.status.accepted + 3

        def mined_more(target: int = target) -> bool:
            return miner.status.accepted >= target

        task = asyncio.ensure_future(miner.run())
        try:
            await wait_for(mined_more)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert sink.accepted() >= before_pool + 3  # the pool saw this run's shares
        assert miner.status.accepted == sink.accepted()  # and agrees with the miner (nothing lost on stop)

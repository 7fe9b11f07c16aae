"""Stopping the hashing engine and the miner: no hashing thread outlives stop, in any ordering.

Real threads on the real native core throughout. Liveness is read from the engine's own thread handles
and from threading.enumerate(); nothing here measures time (a bounded wait only keeps a broken build
from hanging the suite).

The pool in the runner tests is NOT pithead's pool: it is a scripted loopback Stratum endpoint that
answers the handshake with fixed replies, sends one recorded notify at a tiny difficulty and accepts
every share, and notes what the miner's engine looked like at the moment the miner's connection closed.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from pithead.miner import core
from pithead.miner.engine import MIN_CHUNK, Engine
from pithead.miner.runner import Miner, MinerOptions
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.v1.work import FoundShare, MinerWork, NotifiedJob

#: Share difficulty so low that shares keep coming (about one per 2^18 hashes).
EASY = 2**-14
#: Share difficulty no hash will meet in these tests (no hits: the threads only scan).
HARD = 2.0**40
#: Upper bound on any single wait here: only there so a broken build fails instead of hanging.
WAIT = 20.0

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NOTIFY = next(
    v for v in json.loads((VECTORS / "stratum_shares.json").read_text())["vectors"] if "public-pool testnet3" in v["name"]
)["given"]["mining.notify_expected"]

NATIVE = [p for p in core.available_paths() if p != core.PATH_PYTHON]


def _work(difficulty: float, job_id: str = "j", generation: int = 1) -> MinerWork:
    job = NotifiedJob(job_id, bytes(range(32)), b"\x01\x00\x00\x00cb1", b"cb2", (bytes(32),), 0x20000000, 0x207FFFFF,
              1_700_000_000, True)
    return MinerWork(job, b"\xde\xad\xbe\xef", 4, difficulty, 0x1FFFE000, generation)


def _hash_threads_of(engine: Engine) -> list[threading.Thread]:
    """This engine's hashing threads that threading.enumerate() still lists (i.e. alive)."""
    mine = set(engine.threads)
    return [t for t in threading.enumerate() if t in mine]


def _wait_for_hashes(engine: Engine, more_than: int) -> None:
    ev = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if engine.total_hashes > more_than:
            return
        ev.wait(0.01)
    raise AssertionError("the engine never hashed")


def _assert_all_ended(engine: Engine) -> None:
    assert engine.alive_threads() == []
    assert _hash_threads_of(engine) == []
    assert not engine.running


@pytest.mark.parametrize("path", NATIVE)
def test_stop_during_large_scan_calls_ends_every_thread(path: str) -> None:
    engine = Engine(2, lambda s: None, path=path, chunk_seconds=0.5)  # long native calls, GIL released
    engine.start()
    engine.set_work(_work(HARD))
    _wait_for_hashes(engine, 64 * MIN_CHUNK)  # chunks have grown well past the first one
    assert len(_hash_threads_of(engine)) == 2
    assert engine.stop(WAIT) is True
    _assert_all_ended(engine)


def test_repeated_start_and_stop_on_one_engine() -> None:
    engine = Engine(2, lambda s: None)
    engine.set_work(_work(HARD))
    seen: set[threading.Thread] = set()
    for _ in range(5):
        engine.start()
        assert engine.running and len(_hash_threads_of(engine)) == 2
        before = engine.total_hashes
        _wait_for_hashes(engine, before)  # this run really hashes
        seen.update(engine.threads)
        assert engine.stop(WAIT) is True
        _assert_all_ended(engine)
    assert len(seen) == 10  # every run had its own threads
    assert not any(t.is_alive() for t in seen)


def test_start_twice_is_one_run() -> None:
    engine = Engine(1, lambda s: None)
    engine.start()
    first = engine.threads
    engine.start()
    assert engine.threads == first
    assert engine.stop(WAIT) is True
    _assert_all_ended(engine)


def test_stop_racing_set_work_leaves_no_thread() -> None:
    rng = random.Random(20261129)
    for round_ in range(8):
        engine = Engine(2, lambda s: None)
        engine.start()
        engine.set_work(_work(EASY, "j0", 1))
        go = threading.Barrier(2)
        done = threading.Event()

        def churn(engine: Engine = engine, go: threading.Barrier = go, done: threading.Event = done) -> None:
            go.wait()
            n = 0
            while not done.is_set():
                n += 1
                engine.set_work(_work(EASY, f"j{n}", n + 1) if n % 5 else None)

        churner = threading.Thread(target=churn, name="test-churn")
        churner.start()
        go.wait()
        threading.Event().wait(rng.random() * 0.05 * (round_ % 3))
        stopped = engine.stop(WAIT)
        try:
            assert stopped is True
            _assert_all_ended(engine)
            engine.set_work(_work(EASY, "late", 10_000))  # work after stop starts nothing
            _assert_all_ended(engine)
        finally:
            done.set()
            churner.join(WAIT)


def test_start_racing_stop_then_stop_leaves_no_thread() -> None:
    for _ in range(10):
        engine = Engine(2, lambda s: None)
        engine.set_work(_work(HARD))
        go = threading.Barrier(2)

        def starter(engine: Engine = engine, go: threading.Barrier = go) -> None:
            go.wait()
            engine.start()

        def stopper(engine: Engine = engine, go: threading.Barrier = go) -> None:
            go.wait()
            engine.stop(WAIT)

        a = threading.Thread(target=starter)
        b = threading.Thread(target=stopper)
        a.start()
        b.start()
        a.join(WAIT)
        b.join(WAIT)
        # Whichever came first, one more stop ends everything that start created.
        assert engine.stop(WAIT) is True
        _assert_all_ended(engine)


def test_stop_called_from_a_hashing_thread() -> None:
    holder: dict[str, Engine] = {}
    results: list[bool] = []
    lock = threading.Lock()
    returned = threading.Event()

    def on_share(share: FoundShare) -> None:
        with lock:
            if results:
                return
            results.append(False)
        results[0] = holder["engine"].stop(WAIT)  # from inside a hashing thread
        returned.set()

    engine = Engine(2, on_share)
    holder["engine"] = engine
    engine.start()
    engine.set_work(_work(EASY))
    assert returned.wait(WAIT)
    assert engine.join(WAIT) is True
    _assert_all_ended(engine)
    assert results == [True]  # it waited for the others, not for itself
    assert all(s.errors == 0 for s in engine.stats), [s.last_error for s in engine.stats]


# ---------------------------------------------------------------------------------------- the runner


async def test_cancel_benchmark_miner_at_random_points() -> None:
    rng = random.Random(7)
    for i in range(12):
        miner = Miner(MinerOptions(pools=(), username="bench", threads=2, benchmark=True))
        task = asyncio.create_task(miner.run())
        await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01, 0.05, rng.random() * 0.2]))
        task.cancel()
        if i % 3 == 0:  # and a second cancellation while it stops
            await asyncio.sleep(0)
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=WAIT)
        assert done and task.cancelled()
        _assert_all_ended(miner.engine)


async def test_benchmark_duration_ends_every_thread() -> None:
    miner = Miner(MinerOptions(pools=(), username="bench", threads=2, benchmark=True))
    status = await asyncio.wait_for(miner.run(0.2), WAIT)
    assert status is miner.status
    assert miner.engine.total_hashes > 0
    _assert_all_ended(miner.engine)


class Pool:
    """Scripted loopback Stratum endpoint; see the module docstring."""

    def __init__(self, answer_submits: bool = True) -> None:
        self.answer_submits = answer_submits  # False: shares stay unanswered, so a stopping miner drains
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.engine: Engine | None = None
        self.submits = 0
        self.submitted = asyncio.Event()
        self.alive_at_close: list[list[threading.Thread]] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Pool:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def address(self) -> PoolAddress:
        return PoolAddress("127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        engine = self.engine  # the engine of the miner connecting now
        assert engine is not None
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                req = orjson.loads(raw)
                result: Any = True
                if req["method"] == "mining.subscribe":
                    result = [[["mining.notify", "1"]], "00000001", 4]
                elif req["method"] == "mining.configure":
                    result = {"version-rolling": True, "version-rolling.mask": "1fffe000"}
                elif req["method"] == "mining.submit":
                    self.submits += 1
                    self.submitted.set()
                    if not self.answer_submits:
                        continue
                writer.write(orjson.dumps({"id": req["id"], "result": result, "error": None}) + b"\n")
                if req["method"] == "mining.authorize":
                    writer.write(orjson.dumps({"id": None, "method": "mining.set_difficulty",
                                               "params": [EASY]}) + b"\n")
                    writer.write(orjson.dumps(NOTIFY) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            # The miner closed its connection: was it still hashing?
            self.alive_at_close.append(engine.alive_threads())
            self.closed.set()
            writer.close()


@pytest.mark.parametrize(("second_cancel", "answer_submits"), [(False, True), (False, False), (True, False)])
async def test_cancelled_miner_stops_hashing_before_its_connection_and_leaves_nothing(
    second_cancel: bool, answer_submits: bool
) -> None:
    # Unanswered shares make the stopping client drain (up to STOP_DRAIN); a second cancellation then
    # cuts that short, and must still take the client task down with the miner.
    async with Pool(answer_submits) as pool:
        miner = Miner(MinerOptions(pools=(pool.address,), username="w", threads=2))
        pool.engine = miner.engine
        task = asyncio.create_task(miner.run(), name="test-miner")
        await asyncio.wait_for(pool.submitted.wait(), WAIT)  # mining for real
        assert len(_hash_threads_of(miner.engine)) == 2
        task.cancel()
        if second_cancel:
            await asyncio.sleep(0)
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=WAIT)
        assert done and task.cancelled()
        _assert_all_ended(miner.engine)
        # Nothing of the miner's is left running on the loop (the client task included).
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
                  and "_handle" not in repr(t.get_coro())]
        assert others == []
        await asyncio.wait_for(pool.closed.wait(), WAIT)
    # The hashing threads had ended before the miner's connection closed: no hashing while it drained.
    assert pool.alive_at_close and all(alive == [] for alive in pool.alive_at_close)
    assert miner.status.found > 0
    if answer_submits and not second_cancel:
        # Every share the threads found reached the pool before the client stopped (none was dropped as
        # stale), and the client waited for every answer: the miner's counts agree with the pool's.
        assert miner.status.stale == 0
        assert miner.status.accepted == pool.submits == miner.status.found


async def test_miner_with_a_duration_ends_every_thread() -> None:
    async with Pool() as pool:
        miner = Miner(MinerOptions(pools=(pool.address,), username="w", threads=1))
        pool.engine = miner.engine
        await asyncio.wait_for(miner.run(0.5), WAIT)
        _assert_all_ended(miner.engine)
        await asyncio.wait_for(pool.closed.wait(), WAIT)
    assert pool.alive_at_close == [[]]


async def test_cancel_pool_miner_at_random_points() -> None:
    rng = random.Random(11)
    async with Pool() as pool:
        for i in range(8):
            miner = Miner(MinerOptions(pools=(pool.address,), username="w", threads=2))
            pool.engine = miner.engine
            task = asyncio.create_task(miner.run())
            # From before the engine starts, through connecting and the handshake, to mining.
            await asyncio.sleep(rng.choice([0, 0.001, 0.005, 0.02, rng.random() * 0.3]))
            task.cancel()
            if i % 2:
                await asyncio.sleep(rng.choice([0, 0.001]))
                task.cancel()
            done, _ = await asyncio.wait({task}, timeout=WAIT)
            assert done and task.cancelled()
            _assert_all_ended(miner.engine)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
                      and "_handle" not in repr(t.get_coro())]
            assert others == []
    assert all(alive == [] for alive in pool.alive_at_close)

"""The reference miner: the Stratum client shell driving the hashing engine, plus a status snapshot.

What it is: :func:`run_miner` wires :class:`~pithead.stratum.client.connection.StratumClient` (pools,
failover, backoff) to :class:`~pithead.miner.engine.Engine` (threads, native core). New work from the pool
goes to every thread; hits come back from the threads through ``call_soon_threadsafe`` and are submitted
on the live session, unless a clean job made them stale. ``benchmark=True`` mines synthetic work with no
pool. :class:`MinerStatus` is the mutable snapshot the status line renders.

What it is not: the CLI (``cli.py``) or the protocol (``pithead.stratum.client``).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from pithead.miner import core
from pithead.miner.engine import Engine
from pithead.stratum.client.connection import (
    BackingOff,
    Connected,
    Disconnected,
    PoolAddress,
    StratumClient,
)
from pithead.stratum.client.session import (
    AuthorizationFailed,
    ClientConfig,
    ClientEvent,
    DifficultyChanged,
    NewWork,
    PoolMessage,
    ShareAccepted,
    ShareRejected,
)
from pithead.stratum.client.work import Job, Share, Work

#: Recent log lines kept for the status display.
MAX_LOG_LINES: Final = 20
#: Seconds the Stratum client gets to close cleanly when the miner stops.
STOP_GRACE: Final = 5.0
#: Synthetic benchmark work: nBits of difficulty 1 (never a block), BIP320 rolling mask.
BENCH_NBITS: Final = 0x1D00FFFF
BENCH_VERSION: Final = 0x20000000
BENCH_MASK: Final = 0x1FFFE000


@dataclass(frozen=True, slots=True)
class MinerOptions:
    pools: tuple[PoolAddress, ...]
    username: str
    password: str = "x"
    threads: int = 1
    path: str | None = None
    suggest_difficulty: float | None = None
    version_rolling: bool = True
    benchmark: bool = False
    benchmark_difficulty: float = 1.0
    user_agent: str = "pithead-miner"


@dataclass(slots=True)
class MinerStatus:
    pool: str = "-"
    connected: bool = False
    difficulty: float = 0.0
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    found: int = 0
    started: float = field(default_factory=time.monotonic)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")


def benchmark_work(difficulty: float = 1.0) -> Work:
    """Synthetic work with random prevhash and coinbase: what --benchmark hashes."""
    job = Job(
        job_id="bench",
        prevhash=os.urandom(32),
        coinb1=b"\x01\x00\x00\x00" + os.urandom(40),
        coinb2=os.urandom(40),
        merkle_branch=(),
        version=BENCH_VERSION,
        nbits=BENCH_NBITS,
        ntime=int(time.time()) & 0xFFFFFFFF,
        clean_jobs=True,
    )
    return Work(job, struct.pack(">I", 0), 4, difficulty, BENCH_MASK, 1)


class Miner:
    """One miner process: engine + (unless benchmarking) a Stratum client."""

    def __init__(self, options: MinerOptions, status: MinerStatus | None = None) -> None:
        self.options = options
        self.status = status or MinerStatus()
        self.engine = Engine(options.threads, self._on_share_threadsafe, path=options.path)
        self.client: StratumClient | None = None
        if not options.benchmark:
            config = ClientConfig(
                username=options.username,
                password=options.password,
                user_agent=options.user_agent,
                version_rolling=options.version_rolling,
                suggest_difficulty=options.suggest_difficulty,
            )
            self.client = StratumClient(options.pools, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clean_generation = 0
        self.on_share_found: Callable[[Share], None] | None = None

    @property
    def path(self) -> str:
        return self.engine.path

    def _on_share_threadsafe(self, share: Share) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._on_share, share)
            except RuntimeError:  # the loop closed between the check and the call: the miner is stopping
                pass

    def _on_share(self, share: Share) -> None:
        self.status.found += 1
        if self.on_share_found is not None:
            self.on_share_found(share)
        if self.client is None:
            return
        if share.work.generation < self._clean_generation or not self.client.submit(share):
            self.status.stale += 1

    def _on_event(self, event: ClientEvent | Connected | Disconnected | BackingOff) -> None:
        st = self.status
        if isinstance(event, NewWork):
            if event.clean:
                self._clean_generation = event.work.generation
            st.difficulty = event.work.difficulty
            self.engine.set_work(event.work)
        elif isinstance(event, ShareAccepted):
            st.accepted += 1
            st.note(f"share accepted (diff {event.share.difficulty:.4g})")
        elif isinstance(event, ShareRejected):
            st.rejected += 1
            st.note(f"share rejected: {event.reason}")
        elif isinstance(event, DifficultyChanged):
            st.note(f"difficulty {event.difficulty:g} from the next job")
        elif isinstance(event, Connected):
            # Work generations count per session: a new connection starts again from 1.
            self._clean_generation = 0
            st.pool, st.connected = str(event.pool), True
            st.note(f"connected to {event.pool}")
        elif isinstance(event, Disconnected):
            st.connected = False
            self.engine.set_work(None)  # idle, never hash for a pool we are not connected to
            st.note(f"{event.pool}: {event.reason}")
        elif isinstance(event, BackingOff):
            st.note(f"all pools down; retrying in {event.delay:.1f} s")
        elif isinstance(event, AuthorizationFailed):
            st.note(f"authorization failed for {event.worker}: {event.reason}")
        elif isinstance(event, PoolMessage):
            st.note(f"pool says: {event.text}")

    async def run(self, duration: float | None = None) -> MinerStatus:
        """Mine until cancelled or for ``duration`` seconds."""
        self._loop = asyncio.get_running_loop()
        self.engine.start()
        try:
            if self.client is None:
                work = benchmark_work(self.options.benchmark_difficulty)
                self.status.pool, self.status.difficulty = "benchmark (no pool)", work.difficulty
                self.engine.set_work(work)
                await (asyncio.sleep(duration) if duration is not None else asyncio.Event().wait())
            else:
                task = asyncio.ensure_future(self.client.run(self._on_event))
                try:
                    # asyncio.wait, not `await task`: cancelling us must not depend on the client task
                    # noticing its own cancellation; stop() below ends it either way.
                    await asyncio.wait({task}, timeout=duration)
                    if task.done() and not task.cancelled():
                        task.result()  # re-raise what ended the client, if anything
                finally:
                    self.client.stop()
                    await asyncio.wait({task}, timeout=STOP_GRACE)
                    if not task.done():
                        task.cancel()
        finally:
            self.engine.stop()
        return self.status


def path_summary() -> str:
    return f"hashing path {core.active_path()} (available: {', '.join(core.available_paths())})"

"""The reference miner: the Stratum client shell driving the hashing engine, plus a status snapshot.

What it is: :class:`Miner` wires a Stratum client shell (pools, failover, backoff) to
:class:`~pithead.miner.engine.Engine` (threads, native core): V1's
:class:`~pithead.stratum.client.connection.StratumClient` for ``stratum+tcp://`` pools, V2's
:class:`~pithead.stratum.client.v2.Sv2Client` for ``stratum2+tcp://HOST:PORT/AUTHORITY_KEY`` pools (a
standard channel by default, header-only mining; or an extended one, rolling the coinbase's extranonce);
both hand the engine the same work and take back the same shares. New work from the pool
goes to every thread; hits come back from the threads through ``call_soon_threadsafe`` and are submitted
on the live session, unless a clean job made them stale. ``benchmark=True`` mines synthetic work with no
pool. :class:`MinerStatus` is the mutable snapshot the status line renders.

What it is not: the CLI (``pithead.cli.miner``) or the protocols (``pithead.stratum.v1.client``,
``pithead.stratum.v2.client``).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pithead.miner import core
from pithead.miner.engine import STOP_TIMEOUT, Engine
from pithead.stratum.client.connection import (
    BackingOff,
    Connected,
    Disconnected,
    PoolAddress,
    StratumClient,
)
from pithead.stratum.client.v2 import Sv2Client, Sv2PoolAddress
from pithead.stratum.v1.client import (
    AuthorizationFailed,
    ClientConfig,
    ClientEvent,
    DifficultySet,
    NewWork,
    PoolMessage,
    ShareAccepted,
    ShareRejected,
)
from pithead.stratum.v1.work import FoundShare, MinerWork, NotifiedJob
from pithead.stratum.v2.channels import ChannelKind
from pithead.stratum.v2.client import MinerChannelConfig

#: Recent log lines kept for the status display.
MAX_LOG_LINES: Final = 20
#: Seconds the Stratum client gets to close cleanly when the miner stops (its own drain of answers to
#: shares already sent is bounded by STOP_DRAIN plus the close timeout, well inside this).
STOP_GRACE: Final = 5.0
#: Seconds a client task that outlived STOP_GRACE (or a second cancellation) gets to unwind once cancelled.
CANCEL_GRACE: Final = 1.0
#: Seconds a stopping miner waits for its hashing threads; each ends within one scan chunk (~0.1 s).
ENGINE_STOP_TIMEOUT: Final = STOP_TIMEOUT
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
    sv2_channel: ChannelKind = ChannelKind.STANDARD  # the channel a Stratum V2 pool is asked for
    nominal_hash_rate: float = 0.0  # H/s told to a Stratum V2 pool (its starting difficulty); 0: none


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


def benchmark_work(difficulty: float = 1.0) -> MinerWork:
    """Synthetic work with random prevhash and coinbase: what --benchmark hashes."""
    job = NotifiedJob(
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
    return MinerWork(job, struct.pack(">I", 0), 4, difficulty, BENCH_MASK, 1)


class Miner:
    """One miner process: engine + (unless benchmarking) a Stratum client."""

    def __init__(self, options: MinerOptions, status: MinerStatus | None = None) -> None:
        self.options = options
        self.status = status or MinerStatus()
        self.engine = Engine(options.threads, self._on_share_threadsafe, path=options.path)
        self.client: StratumClient | Sv2Client | None = None
        if not options.benchmark:
            sv2 = [p for p in options.pools if isinstance(p, Sv2PoolAddress)]
            if sv2 and len(sv2) != len(options.pools):
                raise ValueError("give Stratum V1 pools or Stratum V2 pools, not both")
            if sv2:
                self.client = Sv2Client(sv2, MinerChannelConfig(
                    user_identity=options.username, kind=options.sv2_channel,
                    nominal_hash_rate=options.nominal_hash_rate, firmware=options.user_agent))
            else:
                config = ClientConfig(
                    username=options.username,
                    password=options.password,
                    user_agent=options.user_agent,
                    version_rolling=options.version_rolling,
                    suggest_difficulty=options.suggest_difficulty,
                )
                # The miner gives up on a pool that refused its address for good (the CLI says why and
                # exits), rather than saying "all pools down" for ever.
                self.client = StratumClient(options.pools, config, give_up_on_refusal=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clean_generation = 0
        self.on_share_found: Callable[[FoundShare], None] | None = None

    @property
    def path(self) -> str:
        return self.engine.path

    def _on_share_threadsafe(self, share: FoundShare) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._on_share, share)
            except RuntimeError:  # the loop closed between the check and the call: the miner is stopping
                pass

    def _on_share(self, share: FoundShare) -> None:
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
        elif isinstance(event, DifficultySet):
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
        """Mine until cancelled or for ``duration`` seconds.

        However it ends (duration, the client failing, cancellation, even a second cancellation while it
        stops), the hashing threads have ended when this returns or raises, unless one outlived
        ENGINE_STOP_TIMEOUT (noted in the status log; see Engine.alive_threads)."""
        self._loop = asyncio.get_running_loop()
        task: asyncio.Future[None] | None = None
        try:
            self.engine.start()
            if self.client is None:
                work = benchmark_work(self.options.benchmark_difficulty)
                self.status.pool, self.status.difficulty = "benchmark (no pool)", work.difficulty
                self.engine.set_work(work)
                await (asyncio.sleep(duration) if duration is not None else asyncio.Event().wait())
            else:
                task = asyncio.ensure_future(self.client.run(self._on_event))
                # asyncio.wait, not `await task`: cancelling us must not depend on the client task
                # noticing its own cancellation; the shutdown below ends it either way.
                await asyncio.wait({task}, timeout=duration)
                if task.done() and not task.cancelled():
                    task.result()  # re-raise what ended the client, if anything
        finally:
            await self._shutdown(task)
        return self.status

    async def _shutdown(self, task: asyncio.Future[None] | None) -> None:
        """Stop hashing, then the client; finish even if cancelled meanwhile (every step is bounded), then
        let that cancellation through. A cancellation here also cuts the client's drain short."""
        # At once, before anything can be awaited: no thread starts another scan call from here on.
        self.engine.request_stop()
        hurry = asyncio.Event()
        steps = asyncio.ensure_future(self._stop_steps(task, hurry))
        cancelled = False
        while not steps.done():
            try:
                await asyncio.wait({steps})
            except asyncio.CancelledError:
                cancelled = True
                hurry.set()
        if cancelled:
            raise asyncio.CancelledError
        steps.result()

    async def _stop_steps(self, task: asyncio.Future[None] | None, hurry: asyncio.Event) -> None:
        # 1. The hashing threads, joined off the event loop (the loop keeps serving everything else, and
        #    the shares they found meanwhile reach the client before it stops, so none is counted stale).
        try:
            stopped = await asyncio.to_thread(self.engine.join, ENGINE_STOP_TIMEOUT)
        except RuntimeError:  # the loop's executor is already shut down (interpreter teardown)
            stopped = self.engine.join(ENGINE_STOP_TIMEOUT)
        if not stopped:
            self.status.note(f"{len(self.engine.alive_threads())} hashing thread(s) still busy after stop")
        if task is None or self.client is None:
            return
        # 2. The client: it waits (bounded by STOP_DRAIN) for answers to shares already sent, unless we
        #    are cancelled meanwhile; anything still running after STOP_GRACE is cancelled.
        self.client.stop()
        hurried = asyncio.ensure_future(hurry.wait())
        either: set[asyncio.Future[Any]] = {task, hurried}
        try:
            await asyncio.wait(either, timeout=STOP_GRACE, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurried.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved (it was raised above if it ended the run); never logged as lost


def path_summary() -> str:
    return f"hashing path {core.active_path()} (available: {', '.join(core.available_paths())})"

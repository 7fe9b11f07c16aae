"""The hashing engine: N threads scanning work units with the native core, reporting hits and hashrate.

What it is: :class:`Engine` owns worker threads. :meth:`Engine.set_work` switches every thread to a new
:class:`~pithead.stratum.v1.work.MinerWork` within one scan chunk; each thread takes distinct units from one
:class:`~pithead.stratum.v1.work.WorkRoller` (version bits, then extranonce2, then ntime, when a unit's
2^32 nonces are spent) and scans them in chunks sized to about :data:`CHUNK_SECONDS`, so a new job is
picked up quickly. The core releases the GIL while scanning, so threads scale across cores. Every hit
is re-hashed with hashlib (the reference) before it is handed to ``on_share``; a mismatch is counted as a
hardware error and never submitted.

Stopping. The native scan cannot be interrupted (it runs with the GIL released), so a thread notices
:meth:`Engine.stop` between scan calls: the stop latency is one chunk. Chunks are therefore bounded in
time (:data:`CHUNK_SECONDS`, grown at most :data:`MAX_CHUNK_GROWTH`-fold per call so one lucky measurement
cannot make the next call long) and in size (:data:`MAX_CHUNK`). :meth:`Engine.stop` sets the run's stop
flag, wakes idle threads, and waits for every thread under one overall deadline, returning whether all
of them ended; :meth:`Engine.alive_threads` names any that did not. Each :meth:`Engine.start` begins a
new run with its own threads and its own stop flag, so start and stop may be repeated, and a thread of an
earlier run can never be revived by a later start. ``start`` and ``stop`` are serialised, so a stop racing
a start (from another thread) always stops every thread that start created.

What it is not: Stratum (the engine never sees a socket) or a status display (it exposes counters).
``on_share`` is called from worker threads and must not block (a thread blocked in it cannot see stop);
the miner's asyncio side hops to its loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pithead.miner import core
from pithead.stratum.v1.errors import WorkExhausted
from pithead.stratum.v1.work import FoundShare, MinerWork, WorkRoller, WorkUnit

#: Target wall time of one scan call: short enough that a new job reaches every thread within about a
#: tenth of a second, long enough that the Python overhead per call (~10 us) is noise.
CHUNK_SECONDS: Final = 0.1
#: Scan-call bounds in nonces (the first call, before the rate is known, uses the minimum). The maximum is
#: a rate-independent cap on how long stop can go unnoticed: 2^24 nonces are about 0.5 s at the ~30 MH/s of
#: one SHA-NI thread, and the per-call overhead stays noise at any rate a CPU thread reaches.
MIN_CHUNK: Final = 1 << 14
MAX_CHUNK: Final = 1 << 24
#: A chunk grows at most this factor per call: the rate is re-measured before the chunk gets much longer.
MAX_CHUNK_GROWTH: Final = 2
#: How long Engine.stop waits for its threads by default. Each exits within one chunk (~CHUNK_SECONDS);
#: the rest is headroom for a loaded machine, where a chunk takes longer than it was sized for.
STOP_TIMEOUT: Final = 5.0
#: Idle threads re-check for work or stop this often.
IDLE_POLL: Final = 0.5
#: Hashrate is averaged over this window (seconds).
RATE_WINDOW: Final = 10.0
#: At most this many threads (far more than any CPU we run on; guards a typo like -t 10000).
MAX_THREADS: Final = 1024


@dataclass(slots=True)
class ThreadStats:
    hashes: int = 0
    hits: int = 0
    hw_errors: int = 0
    errors: int = 0  # unexpected exceptions in the worker (the thread carries on)
    last_error: str = ""
    # (monotonic time, cumulative hashes) samples for the windowed rate
    _samples: list[tuple[float, int]] | None = None

    def record(self, now: float) -> None:
        if self._samples is None:
            self._samples = []
        self._samples.append((now, self.hashes))
        while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW:
            self._samples.pop(0)

    def rate(self, now: float) -> float:
        """Hashes per second over the window up to ``now`` (so an idle thread decays towards zero)."""
        s = self._samples
        if not s or len(s) < 2:
            return 0.0
        t0, h0 = s[0]
        _t1, h1 = s[-1]
        return (h1 - h0) / (now - t0) if now > t0 else 0.0


class Engine:
    """Worker threads hashing the newest work; see the module docstring."""

    def __init__(
        self,
        threads: int,
        on_share: Callable[[FoundShare], None],
        *,
        path: str | None = None,
        chunk_seconds: float = CHUNK_SECONDS,
    ) -> None:
        if not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be in 1..{MAX_THREADS}")
        if not chunk_seconds > 0:
            raise ValueError("chunk_seconds must be positive")
        self.path = core.active_path() if path is None else core.check_path(path)
        self.on_share = on_share
        self.chunk_seconds = chunk_seconds
        self.thread_count = threads
        self.stats = [ThreadStats() for _ in range(threads)]
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._work: MinerWork | None = None
        self._roller: WorkRoller | None = None
        self._generation = 0
        # start/stop bookkeeping, under _control (never held while joining or hashing):
        self._control = threading.Lock()
        self._stop: threading.Event | None = None  # the current run's stop flag (None: never started)
        self._threads: tuple[threading.Thread, ...] = ()  # the current run's threads
        self._earlier: list[threading.Thread] = []  # earlier runs' threads that had not ended at their stop
        self.exhausted_jobs = 0

    # ------------------------------------------------------------------------------------ control

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        stop = self._stop
        return stop is not None and not stop.is_set()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The current (or last) run's thread handles."""
        return self._threads

    def alive_threads(self) -> list[threading.Thread]:
        """Every hashing thread of this engine, of any run, that has not ended yet."""
        with self._control:
            candidates = [*self._earlier, *self._threads]
        return [t for t in candidates if t.is_alive()]

    def start(self) -> None:
        """Start a run: ``threads`` new worker threads. A no-op while running; after stop(), a new run."""
        with self._control:
            if self.running:
                return
            self._earlier = [t for t in (*self._earlier, *self._threads) if t.is_alive()]
            stop = threading.Event()
            threads = tuple(
                threading.Thread(target=self._run, args=(i, stop), name=f"pithead-hash-{i}", daemon=True)
                for i in range(self.thread_count)
            )
            self._stop, self._threads = stop, threads
            try:
                for t in threads:
                    t.start()
            except BaseException:
                # Could not start them all (out of threads?): the ones that did start must not be left
                # hashing with nobody to stop them.
                stop.set()
                self._notify()
                raise

    def request_stop(self) -> None:
        """Tell every thread to stop after its current scan call; returns at once (see join)."""
        with self._control:
            if self._stop is not None:
                self._stop.set()
        self._notify()

    def join(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Wait, at most ``timeout`` seconds in all, for the threads of every stopped run to end.

        True when none is left (a thread calling this, from on_share, does not count itself)."""
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        with self._control:
            stopping = [t for t in (*self._earlier, *self._threads) if t is not me]
            if self.running:  # never wait for a run nobody asked to stop
                stopping = [t for t in stopping if t not in self._threads]
        for t in stopping:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in stopping)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the threads and wait for them (at most ``timeout`` seconds in all); True if all ended."""
        self.request_stop()
        return self.join(timeout)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def set_work(self, work: MinerWork | None) -> None:
        """Mine ``work`` from now on (None: idle)."""
        with self._wake:
            previous = self._roller
            start = 0
            if (
                work is not None
                and previous is not None
                and previous.work.extranonce1 == work.extranonce1
                and previous.work.extranonce2_size == work.extranonce2_size
                and previous.work.version_mask == work.version_mask
            ):
                # Same session context: continue the unit counter so a re-issued template (same
                # coinbase, new job id) never yields the same headers again (the pool calls those
                # duplicates).
                start = previous.handed_out
            self._work = work
            self._roller = WorkRoller(work, start=start) if work is not None else None
            self._generation += 1
            self._wake.notify_all()

    @property
    def work(self) -> MinerWork | None:
        return self._work

    # ------------------------------------------------------------------------------------ figures

    def rates(self) -> list[float]:
        now = time.monotonic()
        return [s.rate(now) for s in self.stats]

    def total_rate(self) -> float:
        return sum(self.rates())

    @property
    def total_hashes(self) -> int:
        return sum(s.hashes for s in self.stats)

    # ------------------------------------------------------------------------------------ workers

    def _next_unit(self, stop: threading.Event) -> tuple[WorkUnit, int] | None:
        with self._wake:
            while not stop.is_set():
                if self._roller is not None:
                    try:
                        return self._roller.next_unit(), self._generation
                    except WorkExhausted:
                        self.exhausted_jobs += 1
                        self._roller = None
                self._wake.wait(IDLE_POLL)
        return None

    def _run(self, index: int, stop: threading.Event) -> None:
        stats = self.stats[index]
        while not stop.is_set():
            try:
                self._mine(stats, stop)
            except Exception as exc:  # a bug must not kill the thread silently, nor spin
                stats.errors += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"
                stop.wait(IDLE_POLL)

    def _mine(self, stats: ThreadStats, stop: threading.Event) -> None:
        stats.record(time.monotonic())
        chunk = MIN_CHUNK
        while not stop.is_set():
            got = self._next_unit(stop)
            if got is None:
                return
            unit, generation = got
            prepared = core.prepare(unit.header76, unit.work.share_target, self.path)
            nonce = 0
            while nonce < core.NONCE_SPACE and generation == self._generation and not stop.is_set():
                n = min(chunk, core.NONCE_SPACE - nonce)
                t0 = time.perf_counter()
                hits = prepared.scan(nonce, n)
                elapsed = time.perf_counter() - t0
                stats.hashes += n
                stats.record(time.monotonic())
                if elapsed > 0:
                    sized = n * self.chunk_seconds / elapsed
                    chunk = int(min(MAX_CHUNK, chunk * MAX_CHUNK_GROWTH, max(MIN_CHUNK, sized)))
                for h in hits:
                    self._report(stats, unit, h)
                nonce += n

    def _report(self, stats: ThreadStats, unit: WorkUnit, nonce: int) -> None:
        share = unit.share(nonce)  # recomputed with hashlib
        if int.from_bytes(share.hash, "little") > unit.work.share_target:
            stats.hw_errors += 1  # the fast path and the reference disagree: never submit it
            return
        stats.hits += 1
        self.on_share(share)

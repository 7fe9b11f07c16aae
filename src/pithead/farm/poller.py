"""The fleet poller: read every device once per interval with truly bounded concurrency.

How a sweep works. A sweep starts exactly `min(max_concurrency, devices)` worker tasks -- never one task
per device -- and they pull device indices from one shared iterator, so at most `max_concurrency` polls
are ever in flight (the sweep report measures the peak, and a test asserts it). Each poll runs under
`asyncio.timeout(deadline_s)`: a device that accepts TCP and then never answers is cancelled at its
deadline, becomes a `PollResult` in state TIMEOUT (an error state, never an empty reading), and its worker
moves on; the rest of the sweep is not held up. Starts are paced evenly over `spread_s` (most of the
interval), so 24,000 devices at 60 s become a steady ~400 polls/s rather than a burst of 24,000
connections, which real farm switches and the miners' tiny TCP stacks would drop. Results are handed to a
sink in batches, so storage cost is per batch, not per device. A sink (and `run`'s device source and
after-sweep hook) may be a coroutine function, which the poller awaits: the farm service's sink writes
through `AsyncFarmStore`, off the event loop, and the worker that filled a batch waits for its write
(so a slow store slows that worker, never the loop); a plain function (`FarmStore.write_results` in the
CLI, a list in tests) is called in place.

Driver failures are mapped once, here: DeviceUnreachable/OSError -> UNREACHABLE, timeout -> TIMEOUT,
protocol/codec/refusal errors -> ERROR; an unexpected exception from a driver bug is also ERROR (with its
type name) so one bad reply can never end a sweep.

Scaling past one process (500,000 devices). Measured with `pithead bench farm` on this 2-core machine
(simulator in a second process): one collector polls 24,000 devices every 60 s using 0.31-0.41
CPU-seconds per 1,000 devices polled (store writes included), i.e. 13-17 % of one core, with up to 500
polls in flight; in a burst the simulator, not the poller, is the limit (520-910 replies/s depending on
what else the machine runs; when it was near 520/s, 0.1-0.2 % of the paced polls timed out there). 500,000 devices at one poll a minute is ~8,300 polls/s, ~3 cores of
poller CPU at that cost for our own cgminer/AxeOS codecs (one connection per poll) -- and several times
more through pyasic, where a stock Antminer read is 10-15 TCP connections (RPC plus digest-auth HTTP).
So the work is spread over collector processes and hosts: each collector owns a disjoint shard of the
fleet, chosen by a stable key (`shard_of`: CRC32 of the device id modulo the shard count; better, an
explicit site/subnet assignment so a collector sits on the same LAN as its racks, as MiningOS runs one
worker per rack and Braiins/Foreman run on-site agents). A reasonable layout is one collector per core
at ~25,000-50,000 devices each (keeping each well under half a core, leaving headroom for the slow tail
and pyasic devices), so 500,000 devices need 10-20 collectors on a handful of hosts near the racks, each
with its own file-descriptor budget (500-1,000 polls in flight). Collectors (`FarmService` in the
COLLECTOR role, `pithead farm collect`) forward their results in gzipped batches through a bounded spool
(`pithead.farm.forward`) to the central service's ingest endpoint (`pithead.farm.ingest`, `central`), which
keeps latest status, rollups and alerts; alert evaluation runs centrally, where the pool ledger is
reachable, over the latest status of every shard. Measured with `pithead bench farm --collectors 2|3` at
24,000 devices on this 2-core machine: the central ingests 8,800-10,100 readings/s at 0.08-0.10 CPU-s per
1,000 readings, and one evaluation tick over 24,000 devices (stale marks, alerts, rollups) costs 1.3-1.7
CPU-s; 6-7 % of one core in all at one poll a minute. 500,000 devices (~8,300 readings/s) would need
~0.75 core of ingest plus ~0.5 core of evaluation -- more than the central's one event loop has, so past
~300,000 devices the evaluation tick belongs in its own process over the same SQLite file (or the interval
grows). Discovery (CIDR
scans, minutes to hours) runs apart from polling (every minute), so a /16 scan never delays readings;
and a collector that dies blinds only its own shard, which the central marks unreachable after three
intervals without a reading (then OFFLINE), not as a stalled fleet.

This module is NOT where vendors are parsed (drivers) or what alerts mean (alerts); it has no storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pithead.farm.drivers.base import DeviceUnreachable, Driver, DriverError
from pithead.farm.model import Device, DeviceState, DriverKind, FarmError, PollResult
from pithead.farm.protocol.errors import CodecError

log = logging.getLogger(__name__)

# Default cap on polls in flight: the MiningOS default is 500 per worker, Braiins Farm Monitor goes far
# higher; 500 keeps one process under its file-descriptor budget (ulimit 1024) with room for the store,
# the web server and webhooks, and is plenty for 400 polls/s with per-poll latencies under a second.
DEFAULT_MAX_CONCURRENCY = 500
# Per-device deadline: a LAN miner answers in milliseconds; Braiins Farm Monitor scrapes with a 5 s
# timeout. A frozen device costs one worker for this long, never the sweep.
DEFAULT_DEADLINE_S = 5.0
# Fraction of the poll interval over which a sweep's starts are spread, leaving the rest as slack for the
# slow tail (deadline) so sweeps do not overlap.
SPREAD_FRACTION = 0.8
# Results are handed to the sink in batches of this many (one storage transaction per batch).
RESULT_BATCH = 2000

T = TypeVar("T")
# Where a batch of results goes; a coroutine function is awaited (see the module docstring).
ResultSink = Callable[[Sequence[PollResult]], Awaitable[None] | None]
# What `run` polls each sweep, read again every time.
DeviceSource = Callable[[], Sequence[Device] | Awaitable[Sequence[Device]]]
# Called after every complete sweep of `run`.
AfterSweep = Callable[["SweepReport"], Awaitable[None] | None]


async def _settled(value: T | Awaitable[T]) -> T:
    """The value a hook returned, awaited if the hook was a coroutine function."""
    if inspect.isawaitable(value):
        return await value
    return value


class PollerError(FarmError):
    """A poller misconfiguration (no driver for a device kind, bad bound)."""


def shard_of(device_id: str, shards: int) -> int:
    """A stable shard number for a device (CRC32 is stable across processes, unlike hash())."""
    return zlib.crc32(device_id.encode()) % shards


def select_shard(devices: Sequence[Device], index: int, count: int) -> list[Device]:
    if count < 1 or not 0 <= index < count:
        raise PollerError(f"bad shard {index}/{count}")
    return [d for d in devices if shard_of(d.id, count) == index]


@dataclass(frozen=True, slots=True)
class SweepReport:
    started: float
    finished: float
    devices: int
    ok: int
    timeouts: int
    unreachable: int
    errors: int
    max_in_flight: int
    cpu_s: float  # process CPU time spent during the sweep (all of it: poller, store, anything else)
    # True when a stop cut the sweep short: `devices` then counts only the devices actually polled (their
    # results were written); the rest of the sweep's devices were never started.
    stopped: bool = False

    @property
    def wall_s(self) -> float:
        return self.finished - self.started


class Poller:
    """Polls devices through their drivers. One Poller can run many sweeps, one at a time."""

    def __init__(self, drivers: Mapping[DriverKind, Driver], max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 deadline_s: float = DEFAULT_DEADLINE_S, clock: Callable[[], float] = time.time) -> None:
        if max_concurrency < 1 or deadline_s <= 0:
            raise PollerError("max_concurrency must be >= 1 and deadline_s > 0")
        self.drivers = dict(drivers)
        self.max_concurrency = max_concurrency
        self.deadline_s = deadline_s
        self.clock = clock
        self.in_flight = 0
        self.max_in_flight = 0
        # Every poll of this poller takes a slot, so sweeps that overlap (the periodic sweep and the first
        # read of newly discovered devices) share max_concurrency instead of adding up. Made per event
        # loop, on first use (an asyncio primitive belongs to one loop).
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    def _slots_here(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self.max_concurrency), loop
        return self._slots

    async def poll_one(self, device: Device) -> PollResult:
        """One poll with its deadline; every outcome becomes a PollResult (nothing is raised but
        cancellation of the caller). At most max_concurrency polls of this poller are in flight at once,
        whichever sweeps they belong to; the deadline counts from when the poll gets its slot."""
        async with self._slots_here():
            return await self._poll_one(device)

    async def _poll_one(self, device: Device) -> PollResult:
        driver = self.drivers.get(device.address.driver)
        now = self.clock()
        if driver is None:
            return PollResult(device.id, now, DeviceState.ERROR, error=f"no driver for {device.address.driver}")
        t0 = time.perf_counter()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with asyncio.timeout(self.deadline_s):
                reading = await driver.read(device.id, device.address, now)
        except TimeoutError:
            return PollResult(device.id, now, DeviceState.TIMEOUT, error=f"no answer within {self.deadline_s:g} s",
                              latency_s=time.perf_counter() - t0)
        except (DeviceUnreachable, OSError) as exc:
            return PollResult(device.id, now, DeviceState.UNREACHABLE, error=_describe(exc),
                              latency_s=time.perf_counter() - t0)
        except (DriverError, CodecError, FarmError) as exc:
            return PollResult(device.id, now, DeviceState.ERROR, error=_describe(exc),
                              latency_s=time.perf_counter() - t0)
        except Exception as exc:  # a driver bug must not end the sweep; it is logged and recorded
            log.exception("driver %s failed on %s", device.address.driver, device.id)
            return PollResult(device.id, now, DeviceState.ERROR, error=f"driver bug: {_describe(exc)}",
                              latency_s=time.perf_counter() - t0)
        finally:
            self.in_flight -= 1
        return PollResult(device.id, now, DeviceState.OK, reading=reading, latency_s=time.perf_counter() - t0)

    async def sweep(self, devices: Sequence[Device], sink: ResultSink | None = None, spread_s: float = 0.0,
                    batch: int = RESULT_BATCH,
                    stop: asyncio.Event | None = None) -> tuple[SweepReport, list[PollResult]]:
        """Poll every device once. Returns the report and, when no sink is given, every result.
        (Sweeps may overlap; the report's max_in_flight is then the poller's peak while this one ran.)

        When `stop` is set the sweep ends promptly: a worker pacing its next start wakes at once, no poll
        is started after it, polls already in flight finish (each within the per-device deadline), and
        every result taken is handed to the sink before returning (report.stopped is then True)."""
        started, cpu0 = self.clock(), time.process_time()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = len(devices)
        step = spread_s / n if n and spread_s > 0 else 0.0
        self.max_in_flight = 0
        indices = iter(range(n))
        pending: list[PollResult] = []
        kept: list[PollResult] = []
        counts = dict.fromkeys(DeviceState, 0)

        async def flush() -> None:
            if not pending:
                return
            out = pending.copy()
            pending.clear()
            if sink is None:
                kept.extend(out)
                return
            try:
                await _settled(sink(out))
            except Exception:  # storage trouble must not stop polling; it is loud in the log
                log.exception("poll result sink failed; %d results lost", len(out))

        async def paced(delay: float) -> bool:
            """Sleep until the next start is due; False when a stop came first (or had come already)."""
            if stop is None:
                await asyncio.sleep(delay)
                return True
            if stop.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            return not stop.is_set()

        async def worker() -> None:
            for i in indices:
                if stop is not None and stop.is_set():
                    return
                if step:
                    delay = t0 + i * step - loop.time()
                    if delay > 0 and not await paced(delay):
                        return
                async with self._slots_here():
                    if stop is not None and stop.is_set():  # stopped while waiting for a slot
                        return
                    res = await self._poll_one(devices[i])
                counts[res.state] += 1
                pending.append(res)
                if len(pending) >= batch:
                    await flush()

        workers = min(self.max_concurrency, n)
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(workers):
                    tg.create_task(worker())
        finally:
            await flush()  # also when the sweep is cancelled: readings already taken are never dropped
        polled = sum(counts.values())
        report = SweepReport(
            started=started, finished=self.clock(), devices=polled, ok=counts[DeviceState.OK],
            timeouts=counts[DeviceState.TIMEOUT], unreachable=counts[DeviceState.UNREACHABLE],
            errors=counts[DeviceState.ERROR], max_in_flight=self.max_in_flight,
            cpu_s=time.process_time() - cpu0, stopped=polled < n,
        )
        return report, kept

    async def run(self, devices: DeviceSource, interval_s: float, sink: ResultSink,
                  after_sweep: AfterSweep | None = None, stop: asyncio.Event | None = None) -> None:
        """Sweep every `interval_s` until `stop` is set. The device list is re-read each sweep, so the
        inventory (re-scanned separately) changes what is polled without a restart. A sweep that runs
        over its interval is followed at once by the next (missed ticks are not queued up).

        A stop also cuts short the sweep in progress (see `sweep`): it returns within the per-device
        deadline, with every reading taken written; `after_sweep` is not called for a sweep cut short
        (alerts and rollups over half a sweep would judge the devices never reached)."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            tick = loop.time()
            listed = await _settled(devices())
            report, _ = await self.sweep(listed, sink, spread_s=interval_s * SPREAD_FRACTION, stop=stop)
            if report.stopped:
                break
            if after_sweep is not None:
                try:
                    await _settled(after_sweep(report))
                except Exception:
                    log.exception("after-sweep hook failed")
            wait = tick + interval_s - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await stop.wait()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

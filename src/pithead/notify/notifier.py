"""The `Notifier`: a `NoticeSink` that routes, deduplicates and delivers notices, never blocking anyone.

How a notice travels:
1. `notify(notice)` (from the event loop or any thread: the ledger raises from its worker threads) puts it
   on a bounded queue and returns at once. Beyond MAX_PENDING_NOTICES the oldest is dropped and counted.
2. The notifier's dispatch task takes it, finds the destinations of the routes it matches (`routing`),
   folds it when it repeats a kind and key within the window (`dedup`), and puts the message on each
   destination's own bounded queue (oldest dropped and counted beyond MAX_PENDING_PER_DESTINATION).
3. Each destination has its own task and its own thread: one attempt at a time, bounded by the delivery
   timeout, retried DELIVERY_ATTEMPTS times in all with a doubling backoff. A destination that hangs or
   refuses holds only its own queue: the others, the caller and the event loop go on.
Failures are counted per destination and logged once per destination per FAILURE_LOG_INTERVAL_S (the first
at once, with the destination's answer; then how many more; and when it works again).

`run()` is the notifier's life: started as a part of the operation, it ends after `stop()` once what is
queued is delivered or STOP_DRAIN_S has passed, whichever is first. `send_test` sends one message to every
URL of every route, for `pithead notify test`.

What it is not: what to say (the parts build their notices), or apprise's plugins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pithead import config as config_mod
from pithead.events import Notice, NoticeSeverity
from pithead.notify.dedup import Admitted, Deduplicator
from pithead.notify.deliver import DELIVERY_TIMEOUT_S, Destination, NoticeMessage, Outcome, render, utc_text
from pithead.notify.routing import NoticeRoute, destinations_for, routes_from_config

log = logging.getLogger(__name__)

MAX_PENDING_NOTICES = 1_000
"""Notices raised and not yet routed. Routing takes microseconds, so this only fills when the event loop
is starved or a part raises a flood (a farm's every machine at once); the oldest go first, counted."""
MAX_PENDING_PER_DESTINATION = 200
"""Messages waiting for one destination. A dead destination retries each for about a minute, so a queue
this long covers hours of ordinary notices; beyond it the oldest are dropped (counted), never the pool's
memory."""
DELIVERY_ATTEMPTS = 4
"""Attempts per message and destination (the first and three retries): past a restart of a chat relay or
a mail server, not hours of hammering a dead one."""
RETRY_BACKOFF_S = 2.0
"""Wait before the first retry; it doubles before each next one (2, 4, 8 s)."""
RETRY_BACKOFF_MAX_S = 60.0
"""Longest wait between two attempts, whatever the doubling says."""
HANG_GRACE_S = 5.0
"""Beyond apprise's own deadline, how long an attempt's thread may take before the attempt counts as
failed; that destination's next attempt waits for the hung one to end (it has one thread), no one else's."""
FAILURE_LOG_INTERVAL_S = 300.0
"""A failing destination is logged at most this often (the first failure at once): one dead webhook must
not fill the log with a line per notice."""
DROP_LOG_INTERVAL_S = 60.0
"""Drops (a full queue) are logged at most this often, with how many."""
STOP_DRAIN_S = 8.0
"""At stop, how long what is queued may take to go out. Shorter than the lifecycle's per-part stop bound
(pithead.app.lifecycle.STOP_TIMEOUT_S, 10 s), so the notifier ends on its own, in order."""
DRAIN_POLL_S = 0.05
"""How often a drain looks whether everything went out."""

OUTCOMES = ("sent", "failed", "retried", "dropped")
"""What the notifier counts per destination (see `counts`)."""


@dataclass
class DestinationStats:
    sent: int = 0  # messages delivered
    failed: int = 0  # messages given up on after every attempt
    retried: int = 0  # attempts that failed and were tried again
    dropped: int = 0  # messages dropped from a full queue
    last_answer: str = ""
    failing_since: float | None = None  # time.monotonic() of the first failure of the current run of them
    last_log: float = 0.0
    failed_unlogged: int = 0


@dataclass
class _Slot:
    """One destination: its queue, its task's wakeup, its one thread and what it counted."""

    destination: Destination
    queue: deque[Admitted]
    executor: concurrent.futures.ThreadPoolExecutor
    stats: DestinationStats = field(default_factory=DestinationStats)
    wakeup: asyncio.Event | None = None
    inflight: concurrent.futures.Future[Outcome] | None = None
    busy: bool = False


class Notifier:
    """Routes, deduplicates and delivers notices; a `NoticeSink` that never blocks (see the module)."""

    def __init__(
        self,
        routes: Sequence[NoticeRoute],
        *,
        window_s: float = config_mod.NotifyConfig.dedup_window,
        max_pending: int = MAX_PENDING_NOTICES,
        max_pending_per_destination: int = MAX_PENDING_PER_DESTINATION,
        attempts: int = DELIVERY_ATTEMPTS,
        backoff_s: float = RETRY_BACKOFF_S,
        timeout_s: float = DELIVERY_TIMEOUT_S,
        drain_s: float = STOP_DRAIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if attempts < 1 or max_pending < 1 or max_pending_per_destination < 1:
            raise ValueError("attempts and queue sizes must be at least 1")
        self.routes = tuple(routes)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.drain_s = drain_s
        self.clock = clock
        self.dedup = Deduplicator(window_s)
        self._slots: dict[str, _Slot] = {}
        labels: set[str] = set()
        for i, route in enumerate(self.routes):
            for url in route.urls:
                if url in self._slots:
                    continue
                dest = Destination(url, f"notify.routes[{i}]", timeout_s)
                if dest.label in labels:  # two URLs whose secrets differ look alike once elided
                    dest.label = f"{dest.label} #{len(self._slots) + 1}"
                labels.add(dest.label)
                executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pithead-notify")
                self._slots[url] = _Slot(dest, deque(maxlen=max_pending_per_destination), executor)
        self._pending: deque[tuple[Notice, float]] = deque(maxlen=max_pending)  # with when it was raised
        self._lock = threading.Lock()  # `_pending` and the drop counter: notify() comes from any thread
        self.dropped = 0  # notices dropped from the full queue before routing
        self.unrouted = 0  # notices no route takes
        self._last_drop_log = 0.0
        self._drops_unlogged = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wakeup: asyncio.Event | None = None
        self._stop = asyncio.Event()  # stop() may come before run() has begun

    @classmethod
    def from_config(cls, cfg: config_mod.NotifyConfig, **options: Any) -> Notifier:
        """The notifier of `[notify]`: its routes (each kind pattern and URL checked now: a `ConfigError`)
        and its dedup window."""
        return cls(routes_from_config(cfg), window_s=cfg.dedup_window, **options)

    # --- the sink ----------------------------------------------------------------------------------------

    def notify(self, notice: Notice) -> None:
        """Queue `notice` and return at once, from any thread; beyond the bound the oldest is dropped."""
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
                self._drops_unlogged += 1
            self._pending.append((notice, self.clock()))  # a full deque drops its oldest
            loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None:
            return  # not running yet: run() takes what waits
        if threading.get_ident() == self._loop_thread:
            wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing will deliver it
                loop.call_soon_threadsafe(wakeup.set)

    # --- the life ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Route and deliver until `stop()`, then drain what is queued (bounded by `drain_s`) and end."""
        if self._loop is not None:
            raise RuntimeError("this notifier is already running")
        with self._lock:
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
            self._wakeup = asyncio.Event()
        self._wakeup.set()  # what was raised before the start
        for slot in self._slots.values():
            slot.wakeup = asyncio.Event()
        tasks = [asyncio.create_task(self._dispatch(), name="notify dispatch")]
        tasks += [asyncio.create_task(self._serve(s), name=f"notify {s.destination.label}")
                  for s in self._slots.values()]
        try:
            await self._stop.wait()
            await self.flush(self.drain_s)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for slot in self._slots.values():
                slot.executor.shutdown(wait=False, cancel_futures=True)
            left = len(self._pending) + sum(len(s.queue) + s.busy for s in self._slots.values())
            if left:
                log.warning("notify: stopped with %d message(s) not delivered", left)

    def stop(self) -> None:
        """Ask `run()` to deliver what is queued (for at most `drain_s`) and end."""
        self._stop.set()

    def idle(self) -> bool:
        """Nothing waits to be routed or delivered, and no delivery is under way."""
        return not self._pending and all(not s.queue and not s.busy for s in self._slots.values())

    async def flush(self, timeout_s: float) -> bool:
        """Wait until `idle()` (True) or `timeout_s` has passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.idle():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(DRAIN_POLL_S)
        return True

    # --- what it counted -------------------------------------------------------------------------------------

    def stats(self) -> dict[str, DestinationStats]:
        """Each destination's counts, by its label."""
        return {s.destination.label: s.stats for s in self._slots.values()}

    def counts(self) -> list[tuple[str, str, int]]:
        """(destination label, outcome, count) for every destination and OUTCOMES; the notifier's own
        drops, folds and unrouted notices under the label "" (outcomes dropped, folded, unrouted)."""
        out = [("", "dropped", self.dropped), ("", "folded", self.dedup.folded), ("", "unrouted", self.unrouted)]
        for label, st in self.stats().items():
            out += [(label, name, int(getattr(st, name))) for name in OUTCOMES]
        return out

    # --- the tasks -------------------------------------------------------------------------------------------

    def _pop(self) -> tuple[Notice, float] | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    async def _dispatch(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._log_drops()
            while (popped := self._pop()) is not None:
                notice, raised_at = popped
                try:
                    self._route(notice, raised_at)
                except Exception:  # a bug here must cost one notice, never the notifier
                    log.exception("notify: could not route %s %r", notice.kind, notice.title)

    def _route(self, notice: Notice, raised_at: float) -> None:
        urls = destinations_for(notice, self.routes)
        if not urls:
            self.unrouted += 1
            return
        admitted = self.dedup.admit(notice, raised_at)
        if admitted is None:
            return
        for url in urls:
            slot = self._slots[url]
            if len(slot.queue) == slot.queue.maxlen:
                slot.stats.dropped += 1
                with self._lock:
                    self._drops_unlogged += 1
            slot.queue.append(admitted)
            if slot.wakeup is not None:
                slot.wakeup.set()

    def _log_drops(self) -> None:
        now = time.monotonic()
        with self._lock:
            n = self._drops_unlogged
            if not n or now - self._last_drop_log < DROP_LOG_INTERVAL_S:
                return
            self._drops_unlogged, self._last_drop_log = 0, now
        log.warning("notify: %d notice(s) dropped, oldest first: more were raised than could be sent "
                    "(queues of %d, and %d per destination)", n, self._pending.maxlen or 0,
                    next(iter(self._slots.values())).queue.maxlen or 0 if self._slots else 0)

    async def _serve(self, slot: _Slot) -> None:
        assert slot.wakeup is not None
        while True:
            await slot.wakeup.wait()
            slot.wakeup.clear()
            while slot.queue:
                item = slot.queue.popleft()
                slot.busy = True
                try:
                    await self._deliver(slot, render(item))
                except Exception:  # a bug here must cost one message, never the destination's task
                    log.exception("notify: %s: delivery failed unexpectedly", slot.destination.label)
                finally:
                    slot.busy = False
                self._log_drops()

    async def _deliver(self, slot: _Slot, message: NoticeMessage) -> None:
        st = slot.stats
        outcome = Outcome(False, "not tried")
        for attempt in range(1, self.attempts + 1):
            outcome = await self._attempt(slot, message)
            st.last_answer = outcome.answer
            if outcome.ok:
                st.sent += 1
                if st.failing_since is not None:
                    log.warning("notify: %s delivers again (it had failed for %.0f s)", slot.destination.label,
                                time.monotonic() - st.failing_since)
                    st.failing_since, st.failed_unlogged = None, 0
                return
            if attempt < self.attempts:
                st.retried += 1
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), RETRY_BACKOFF_MAX_S))
        st.failed += 1
        self._log_failure(slot, message, outcome.answer)

    async def _attempt(self, slot: _Slot, message: NoticeMessage) -> Outcome:
        if slot.inflight is not None and not slot.inflight.done():
            return Outcome(False, "its previous delivery is still hanging")
        slot.inflight = future = slot.executor.submit(slot.destination.send, message)
        waiter = asyncio.wrap_future(future)
        done, _ = await asyncio.wait({waiter}, timeout=self.timeout_s + HANG_GRACE_S)
        if not done:
            return Outcome(False, f"no answer within {self.timeout_s + HANG_GRACE_S:.0f} s")
        return waiter.result()

    def _log_failure(self, slot: _Slot, message: NoticeMessage, answer: str) -> None:
        st, now, label = slot.stats, time.monotonic(), slot.destination.label
        if st.failing_since is None:
            st.failing_since, st.last_log, st.failed_unlogged = now, now, 0
            log.warning("notify: %s failed %d times, giving up on %r: %s (its next failures are logged at most "
                        "every %.0f s)", label, self.attempts, message.title, answer, FAILURE_LOG_INTERVAL_S)
            return
        st.failed_unlogged += 1
        if now - st.last_log >= FAILURE_LOG_INTERVAL_S:
            log.warning("notify: %s still failing for %.0f s: %d more message(s) not delivered; last answer: %s",
                        label, now - st.failing_since, st.failed_unlogged, answer)
            st.last_log, st.failed_unlogged = now, 0


# --- `pithead notify test` ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestAnswer:
    route: int  # index in [[notify.routes]]
    destination: str  # the destination's label (secrets elided)
    ok: bool
    answer: str


async def send_test(cfg: config_mod.NotifyConfig, now: float, severity: NoticeSeverity = "info") -> list[TestAnswer]:
    """One test message to every URL of every route, all at once, one attempt each; what each answered.
    Raises `ConfigError` for a route or URL that cannot be used."""
    routes = routes_from_config(cfg)
    targets = [(i, Destination(url, f"notify.routes[{i}]")) for i, r in enumerate(routes) for url in r.urls]

    async def one(i: int, dest: Destination) -> TestAnswer:
        route = routes[i]
        body = (f"A test from `pithead notify test`: this destination gets the notices of route {i + 1} "
                f"({', '.join(route.kinds)}; {route.min_severity} and above).\n\ntest · {severity} · "
                f"{utc_text(now)}")
        outcome = await asyncio.to_thread(dest.send, NoticeMessage("pithead test notice", body, severity))
        return TestAnswer(i, dest.label, outcome.ok, outcome.answer)

    return list(await asyncio.gather(*(one(i, d) for i, d in targets)))

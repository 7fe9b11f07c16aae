"""The life of a running pithead, the same for every command that runs until stopped.

What it is:
- `Running`: what an operation started (its URLs, its parts as typed fields, what it skipped and why) and
  how to stop it: parts register a stopper (`on_stop`) and run their background work as supervised tasks
  (`spawn`) in one `asyncio.TaskGroup`. A part whose task fails stops the whole operation in order and
  makes the command end with status 1, naming the part: a pool whose ledger died must not go on accepting
  shares that nobody records.
- `run_parts`: start the parts (Ctrl-C while starting stops what has started), announce, wait for the stop
  request or `duration`, then stop every part — the ones named in `first` in that order (the pool before
  the ledger, so the ledger records every share), then the rest in reverse start order, each bounded by
  STOP_TIMEOUT_S — and cancel whatever task is still running.
- `run_command`: a command's process: logging, the event loop (uvloop through
  `pithead.stratum.server.loop`), SIGINT/SIGTERM (the first stops cleanly, a second stops at once with
  status 130) and the exit statuses (EXIT_CONFIG for a config the operator must fix, EXIT_FAILED for a start
  or a part that failed), each with one line on stderr and no traceback.

What it is not: any part's own logic, or which parts a command runs (`pithead.app.demo`, `production`,
`pool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pithead.config import ConfigError
from pithead.stratum.server.loop import run as run_loop

if TYPE_CHECKING:  # the parts' types, for `Running`'s fields only: a command imports the parts it runs
    from pithead.bitcoind.rpc import RpcClient
    from pithead.events import ShareSink
    from pithead.farm.service import FarmService
    from pithead.fleetsim.fleet import Fleet
    from pithead.fleetsim.mining import MiningBridge
    from pithead.ledger.bus.source import EventSource
    from pithead.ledger.ledger import Ledger
    from pithead.ledger.store.base import LedgerStore
    from pithead.miner.runner import Miner
    from pithead.node.node import EmbeddedNode
    from pithead.notify.notifier import Notifier
    from pithead.proxy.proxy import FarmProxy
    from pithead.stratum.server.pool import PoolServer
    from pithead.stratum.server.workers import WorkerPool
    from pithead.template.interface import TemplateSource
    from pithead.web.adapters import PoolServerLive

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1  # could not start (a node, a port, the data directory), or a part failed while running
EXIT_CONFIG = 2  # a config the operator must fix (as a usage error)
EXIT_FORCED = 130  # a second Ctrl-C: the shell's code for "interrupted" (128 + SIGINT)

STOP_TIMEOUT_S = 10.0
"""Seconds each part gets to stop before the next one's turn (a part that hangs never holds the rest)."""
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class StartError(RuntimeError):
    """A part could not start (a port is taken, a node does not answer, the data directory is unusable), or
    failed while running; the message says which and why, in one line."""


Stopper = Callable[[], Awaitable[Any]]


@dataclass
class Running:
    """What an operation started, for the ready hook (tests), the banner and the stop sequence."""

    data_dir: Path
    node_url: str | None = None
    stratum_url: str | None = None
    sv2_url: str | None = None  # stratum2+tcp://HOST:PORT/AUTHORITY_KEY when the pool serves Stratum V2
    web_url: str | None = None
    pool_address: str | None = None
    miner_addresses: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # what started, in order
    skipped: dict[str, str] = field(default_factory=dict)  # what did not, and why
    last_template_time: float | None = None  # the dashboard's template age
    # --- the parts, as they started (None: not part of this operation) ---
    node: EmbeddedNode | None = None
    rpc: RpcClient | None = None
    ledger: Ledger | None = None
    store: LedgerStore | None = None
    sink: ShareSink | None = None  # where the pool puts its events
    bus_source: EventSource | None = None  # what the ledger consumes
    source: TemplateSource | None = None
    pool: PoolServer | WorkerPool | None = None
    pool_live: PoolServerLive | None = None
    farm: FarmService | None = None
    fleet: Fleet | None = None
    sim_mining: MiningBridge | None = None  # the simulated devices that really mine (`up`: through the proxy)
    notifier: Notifier | None = None  # the parts' NoticeSink (None: [notify] names no routes)
    miners: list[Miner] = field(default_factory=list)
    proxy: FarmProxy | None = None
    # --- the machinery ---
    stoppers: list[tuple[str, Stopper]] = field(default_factory=list)
    failed: tuple[str, BaseException] | None = None  # the first part whose task failed
    stop_requested: asyncio.Event | None = None
    _group: asyncio.TaskGroup | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def on_stop(self, name: str, stop: Stopper) -> None:
        """Run `stop` when the operation stops (in reverse start order, unless `name` is stopped first)."""
        self.stoppers.append((name, stop))

    def on_stop_sync(self, name: str, stop: Callable[[], Any]) -> None:
        async def run() -> None:
            stop()

        self.on_stop(name, run)

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a part's background task in the operation's task group. If it fails, the failure is
        logged with its traceback, recorded (`failed`) and the whole operation stops in order."""
        if self._group is None:
            raise RuntimeError("spawn() is for parts started inside run_parts")
        task = self._group.create_task(self._supervise(name, coro), name=f"pithead-{name}")
        self._tasks.append(task)
        return task

    async def _supervise(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s failed; stopping everything", name)
            if self.failed is None:
                self.failed = (name, exc)
            if self.stop_requested is not None:
                self.stop_requested.set()

    async def cancel_leftovers(self) -> None:
        """Cancel the tasks still running once every stopper has run (bounded), so the group can close."""
        await cancel_all([t for t in self._tasks if not t.done()])


def prepare_dir(path: str | Path) -> Path:
    data_dir = Path(path).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot use data directory {data_dir}: {exc}") from exc
    return data_dir


def check_port(what: str, host: str, port: int, hint: str = "Set other ports with --config") -> None:
    """Fail fast, before anything starts, when a port a part needs is taken (e.g. by another pithead)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartError(f"{what}: cannot listen on {host}:{port} ({exc.strerror}); "
                             f"is another pithead running? {hint}") from exc


async def bounded(task: asyncio.Task[Any]) -> None:
    """Let `task` finish for STOP_TIMEOUT_S, then cancel it and give it as long again; never hang here.

    (Waiting with `asyncio.wait` rather than awaiting the task keeps our own cancellation, by the stop
    sequence's timeout, from being swallowed along with the task's.)
    """
    await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
    if not task.done():
        log.warning("%s did not stop", task.get_name())


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait (bounded) for them to end; a task that ignores cancellation is reported."""
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for t in tasks:
        if not t.done():
            log.warning("%s did not stop when cancelled", t.get_name())


async def stop_all(running: Running, first: Sequence[str] = ()) -> None:
    """Stop every part, the ones named in `first` in that order, then the rest in reverse start order."""
    ahead = [s for name in first for s in running.stoppers if s[0] == name]
    rest = [s for s in reversed(running.stoppers) if s[0] not in first]
    for name, stop in ahead + rest:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(stop(), STOP_TIMEOUT_S)
            log.info("stopped %s in %.2f s", name, time.perf_counter() - started)
        except (TimeoutError, Exception) as exc:
            log.warning("stopping %s: %s", name, exc or type(exc).__name__)
    running.stoppers.clear()


async def run_parts(running: Running, start: Callable[[], Awaitable[None]], stop: asyncio.Event, *,
                    started: Callable[[], None], on_ready: Callable[[Running], None] | None,
                    duration: float | None, first: Sequence[str] = ()) -> Running:
    """The life of an operation: run `start` (which starts the parts into `running`); then `started()` and
    `on_ready`; wait for `stop` (or `duration`, or a part that fails); always stop every part that started
    (`first` ahead of the rest, see `stop_all`). Raises `StartError` when a part failed while running."""
    running.stop_requested = stop
    error: Exception | None = None
    async with asyncio.TaskGroup() as group:
        running._group = group
        try:
            # Ctrl-C while parts are still starting stops what has started instead of waiting for the rest.
            starting = asyncio.ensure_future(start())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                await asyncio.wait({starting}, timeout=STOP_TIMEOUT_S)
            else:
                stopped.cancel()
                starting.result()  # raises what went wrong
                if running.failed is None:
                    started()
                    if on_ready is not None:
                        on_ready(running)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), duration)
        except Exception as exc:  # re-raised as it is below (the task group would wrap it in a group)
            error = exc
        finally:
            await stop_all(running, first=first)
            await running.cancel_leftovers()
    if error is not None:
        raise error
    if running.failed is not None:
        name, cause = running.failed
        raise StartError(f"{name} failed: {cause or type(cause).__name__}") from cause
    return running


def print_line(line: str) -> None:
    print(line, flush=True)


def print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_command(prog: str, main: Callable[[asyncio.Event], Awaitable[Any]], *,
                print_fn: Callable[[str], None] = print_line, err_fn: Callable[[str], None] = print_error,
                log_level: int = logging.WARNING, quiet_stop: bool = False) -> None:
    """Run `main(stop)` as the command `prog`, until it returns: on uvloop, SIGINT and SIGTERM setting
    `stop` (a second one exits at once with EXIT_FORCED), and every error an operator can fix ending the
    command with one line and its status (SystemExit): EXIT_CONFIG for a `ConfigError`, EXIT_FAILED for a
    `StartError`. `quiet_stop` leaves out the "stopping" / "stopped" lines (for commands whose output is
    data)."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT)

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: the operator does not want to wait for a clean stop
                print_fn(f"{prog}: stopping now, without waiting for every part.")
                os._exit(EXIT_FORCED)
            if not quiet_stop:
                print_fn(f"{prog}: stopping (Ctrl-C again to stop at once)...")
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        try:
            await main(stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        if not quiet_stop:
            print_fn("pithead stopped.")

    try:
        run_loop(body())
    except ConfigError as exc:
        err_fn(f"{prog}: {exc}")
        raise SystemExit(EXIT_CONFIG) from exc
    except StartError as exc:
        err_fn(f"{prog}: {exc}")
        raise SystemExit(EXIT_FAILED) from exc

"""The parts of a running operation and their life, shared by `pithead up` (the demo on its own chain) and
`pithead serve` (the production operation against your own nodes): the `Running` record of what started
and how to stop it, the lifecycle (`run_parts`: start, announce, wait, stop in order), and the starters of
the parts both commands run the same way — the ledger on its share bus, the pool (one process or worker
processes), the web dashboard and the farm service. What differs (the demo node, miners and fleet; the
production checks of the config and the node) stays in `up` and `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pithead import config as config_mod

log = logging.getLogger("pithead.app.parts")

# How often the ledger learns the network difficulty from the node (it changes every demo block).
NETWORK_INTERVAL_S = 5.0
# Seconds between the one-line status `up` prints.
STATUS_INTERVAL_S = 30.0
# How often the stop sequence looks whether the ledger has drained the share bus.
DRAIN_POLL_S = 0.05
# Seconds each part gets to stop before we move on to the next.
STOP_TIMEOUT_S = 10.0


class UpError(RuntimeError):
    """`pithead up` (or `serve`, whose ServeError is one) cannot start: a port is taken, the data
    directory is unusable, a part failed to start."""


@dataclass
class Running:
    """What `up` or `serve` started, for the ready hook (tests) and the stop sequence."""

    data_dir: Path
    node_url: str | None = None
    stratum_url: str | None = None
    web_url: str | None = None
    pool_address: str | None = None
    miner_addresses: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    # (name, stop coroutine factory), stopped in reverse order
    stoppers: list[tuple[str, Callable[[], Awaitable[Any]]]] = field(default_factory=list)
    last_template_time: float | None = None
    objects: dict[str, Any] = field(default_factory=dict)


def prepare_dir(path: str) -> Path:
    data_dir = Path(path).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpError(f"cannot use data directory {data_dir}: {exc}") from exc
    return data_dir


async def run_parts(running: Running, start: Awaitable[None], stop: asyncio.Event, *, started: Callable[[], None],
                    on_ready: Callable[[Running], None] | None, duration: float | None,
                    print_fn: Callable[[str], None], first: Sequence[str] = ()) -> Running:
    """The life of `up` and `serve`: run `start`; then `started()` and `on_ready`; wait for `stop` (or
    `duration`); always stop every part that started (`first` ahead of the rest, see `stop_all`)."""
    try:
        # Ctrl-C while parts are still starting stops what has started instead of waiting for the rest.
        starting = asyncio.ensure_future(start)
        stopped = asyncio.create_task(stop.wait(), name="pithead-stop-request")
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.wait({starting}, timeout=STOP_TIMEOUT_S)
            return running
        stopped.cancel()
        starting.result()  # raises what went wrong
        started()
        if on_ready is not None:
            on_ready(running)
        if duration is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        else:
            await stop.wait()
    finally:
        await stop_all(running, print_fn, first=first)
    return running


async def start_ledger(
    cfg: config_mod.Config, running: Running, rpc: Any, network: Any, *, pay: bool,
    bus: tuple[Any, Any] | None = None, left: Callable[[], Awaitable[int]] | None = None,
    drain_s: float = STOP_TIMEOUT_S,
) -> tuple[Any, Any]:
    """The ledger on `[ledger] database` (relative to the data directory) consuming `bus` = (sink, source)
    (by default one in-memory bus), maturity tracking against `rpc` (anything with Core's `call(method,
    params)`), payouts from `rpc`'s wallet only when `pay`, and a task keeping its network difficulty
    current. Returns (settings, sink): the pool puts its events in the sink. Stoppers are added to `running`;
    the ledger's first applies what the source still holds (`left()` counts it) for at most `drain_s`."""
    from pithead.ledger.bus.memory import MemoryBus
    from pithead.ledger.ledger import Ledger, LedgerError, LedgerSettings
    from pithead.ledger.payouts import RpcWallet
    from pithead.ledger.service import RpcChainView, run_ledger, timers_from_config
    from pithead.ledger.store import open_store
    from pithead.ledger.store.base import StoreError

    try:
        settings = LedgerSettings.from_config(cfg.ledger)
        timers = timers_from_config(cfg.ledger)
        store = open_store(cfg.ledger.database, data_dir=running.data_dir)
    except (StoreError, LedgerError, ValueError) as exc:
        raise UpError(f"ledger: {exc}") from exc
    running.stoppers.append(("ledger store", stopper(store.close)))
    ledger = Ledger(store, settings)
    if bus is None:
        # One process: the in-memory bus (Redis is for many pool front-ends). Its positions are time-based
        # like stream ids, so the ledger's cursor from the last run never hides this run's first events.
        memory = MemoryBus("pool")
        bus = (memory, memory)

        async def queued() -> int:
            return len(memory)

        left = queued
    sink, source = bus
    ledger_stop = asyncio.Event()
    ledger_task = asyncio.create_task(
        run_ledger(ledger, source, ledger_stop, node=RpcChainView(rpc.call),
                   wallet=RpcWallet(rpc.call) if pay else None, timers=timers, network=network),
        name="pithead-ledger",
    )

    async def stop_ledger() -> None:
        # The pool has stopped by now: let the ledger apply what is left before stopping it. There is no
        # "drained" event to wait on; a short poll for a bounded time is all we need.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while left is not None and not ledger_task.done() and loop.time() < deadline:
            try:
                if await left() == 0:
                    break
            except Exception as exc:  # e.g. Redis gone: what is left waits in the stream for the next run
                log.warning("ledger: cannot see what is left to apply: %s", exc)
                break
            await asyncio.sleep(DRAIN_POLL_S)
        ledger_stop.set()
        await bounded(ledger_task)

    running.stoppers.append(("ledger", stop_ledger))
    running.parts.append("ledger")
    running.objects.update(ledger=ledger, bus=sink, bus_source=source, store=store)
    difficulty = asyncio.create_task(follow_network(ledger, rpc), name="pithead-ledger-network")
    running.stoppers.append(("ledger network", lambda: cancel_all([difficulty])))
    return settings, sink


async def start_web(
    cfg: config_mod.Config, running: Running, rpc: Any, info: Any, farm_router: Any, port: int,
    print_fn: Callable[[str], None],
) -> None:
    """The dashboard, REST API and metrics on `[web] bind` and `port`, reading the ledger's store (its own
    connection), the node through `rpc`, the live pool from `running.objects["pool_live"]` and mounting
    `farm_router` when given; then the one-line status every STATUS_INTERVAL_S through `print_fn`."""
    from pithead.ledger.store import open_store
    from pithead.web.app import create_app
    from pithead.web.server import WebServer, WebServerError
    from pithead.web.services import Services

    web_store = open_store(cfg.ledger.database, data_dir=running.data_dir, migrate=False)
    running.stoppers.append(("web ledger connection", stopper(web_store.close)))
    services = Services(
        store=web_store,
        node=rpc,
        pool=running.objects.get("pool_live"),
        last_template_time=lambda: running.last_template_time,
        farm_router=farm_router,
        info=info,
    )
    web = WebServer(create_app(services), cfg.web.bind, port)
    try:
        await web.start()
    except WebServerError as exc:
        raise UpError(f"web: {exc}") from exc
    running.stoppers.append(("web", web.stop))
    running.parts.append("web")
    running.web_url = web.url
    status = asyncio.create_task(status_loop(print_fn, web_store, rpc), name="pithead-status")
    running.stoppers.append(("status", lambda: cancel_all([status])))


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("", "k", "M", "G", "T", "P", "E"):
        if abs(value) < 1000:
            return f"{value:.3g} {unit}H/s"
        value /= 1000
    return f"{value:.3g} ZH/s"


async def status_loop(print_fn: Callable[[str], None], store: Any, rpc: Any) -> None:
    """One plain line every STATUS_INTERVAL_S: height, pool hashrate with its interval, blocks, shares."""
    from pithead.web import queries
    from pithead.web.services import Services

    services = Services(store=store)
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        try:
            summary = await asyncio.to_thread(queries.pool_summary, services, store, time.time(), None)
            height = (await rpc.call("getblockcount", [])) if rpc is not None else None
        except Exception as exc:  # a status line is never worth stopping for
            log.warning("status: %s", exc)
            continue
        five = next(h for h in summary.hashrate if h.window == "5m")
        rate = (
            f"{_si(five.hashrate_hps)} [{_si(five.low_hps)} - {_si(five.high_hps)}]"
            if five.enough_shares else "too few shares to estimate"
        )
        if five.observed_s < five.span_s:  # the pool is younger than the window, or was down in it
            rate += f" over {five.observed_s:.0f} s observed"
        print_fn(
            f"{time.strftime('%H:%M:%S')} height {height} | pool 5m {rate} | blocks {summary.blocks_found} | "
            f"shares {summary.accepted_shares} accepted, {summary.rejected_shares} rejected | "
            f"workers {summary.active_workers}"
        )


def check_port(what: str, host: str, port: int, hint: str = "Set other ports with --config") -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UpError(f"{what}: cannot listen on {host}:{port} ({exc.strerror}); "
                          f"is another pithead running? {hint}") from exc


def stopper(fn: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()

    return run


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


async def follow_network(ledger: Any, rpc: Any) -> None:
    """Keep the ledger's network difficulty current (PPLNS window, PPS price) from the node."""
    while True:
        try:
            info = await rpc.call("getmininginfo", [])
            if isinstance(info, dict):
                ledger.set_network(float(info.get("difficulty") or 0.0), 0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the node may be busy; the next pass will do
            log.warning("network difficulty: %s", exc)
        await asyncio.sleep(NETWORK_INTERVAL_S)


def track_templates(running: Running, source: Any) -> None:
    """Keep `running.last_template_time` (the dashboard's template age) current from a started `source`."""
    running.last_template_time = time.time()

    async def track() -> None:
        async for update in source.updates():
            running.last_template_time = update.received_at

    tracker = asyncio.create_task(track(), name="pithead-template-age")
    running.stoppers.append(("template tracker", lambda: cancel_all([tracker])))


async def start_pool_server(pool_cfg: Any, running: Running, source: Any, bus: Any, port: int) -> None:
    """The Stratum pool for `pool_cfg` on its bind and `port`, taking templates from the started `source`
    and putting shares and blocks on `bus`: one server, or `[pool] workers` processes (`WorkerPool`, its
    supervisor feeding the bus). Sets `running.stratum_url` and `running.objects["pool_live"]` (the web's
    live view)."""
    from pithead.app.pool import make_pool
    from pithead.stratum.server.build import PoolConfigError
    from pithead.web.adapters import PoolServerLive

    try:
        server = make_pool(pool_cfg, source, bus)
        host, port = await server.start(pool_cfg.bind, port)
    except (PoolConfigError, OSError, RuntimeError) as exc:  # RuntimeError: a worker that could not start
        raise UpError(f"pool: {exc}") from exc
    running.stoppers.append(("pool", server.stop))
    running.stratum_url = f"stratum+tcp://{host}:{port}"
    running.objects["pool"] = server
    running.objects["pool_live"] = PoolServerLive(server, running.stratum_url)


def run_farm_service(service: Any, running: Running, notes: Mapping[str, str] | None = None) -> Any:
    """Start `service` (a `FarmService`) as a task stopped with the rest, and return its web router; a bad
    `[farm] api_token` setting is a clear `UpError`, not a traceback."""
    from pithead.web.farm import FarmAuthError, service_router

    try:
        router = service_router(service, notes=notes)
    except FarmAuthError as exc:
        raise UpError(f"farm: {exc}") from exc
    task = asyncio.create_task(service.run(), name="pithead-farm")

    async def stop_farm() -> None:
        service.stop()
        await bounded(task)

    running.stoppers.append(("farm", stop_farm))
    running.objects["farm"] = service
    return router


async def stop_all(running: Running, print_fn: Callable[[str], None], first: Sequence[str] = ()) -> None:
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

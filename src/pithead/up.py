"""`pithead up`: the whole operation in one process, on pithead's own `demo` chain.

It starts, in order: the embedded node on the `demo` chain in `<data_dir>/node/` (with the transaction
generator), the ledger on `<data_dir>/ledger.sqlite3` with its consumer, maturity and payout loops, the
Stratum pool in pool mode (PPLNS by default) taking templates from the node, a couple of reference
miners on local threads, a small simulated ASIC fleet with the farm's poller when the farm simulator is
present, and the web dashboard. It prints the URLs and runs until Ctrl-C (SIGINT/SIGTERM) or for
`duration` seconds, then stops everything in reverse order. A second run on the same data directory
resumes the same chain and ledger; the miners keep their payout addresses (kept in `up.json`).

Each part is optional at import time: a part whose module is not built in this tree is reported and
skipped, so `pithead up` serves whatever exists. This module only wires parts together; it holds no
mining, ledger or HTTP logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pithead import config as config_mod

log = logging.getLogger("pithead.up")

# Local reference miners started by `up`, and hashing threads each: enough to find demo blocks and show
# several workers, few enough to leave the machine usable.
DEFAULT_MINERS = 2
DEFAULT_MINER_THREADS = 1
# The difficulty our CPU miners ask for (mining.suggest_difficulty): a CPU thread does some MH/s, so a
# share at difficulty 1 (2**32 hashes) would take minutes; this gives a share every second or so.
MINER_SUGGEST_DIFFICULTY = 0.002
# Transactions per second the node generates when the config leaves it at 0 (templates with real fees).
DEMO_TX_RATE = 0.5
# Simulated ASICs served on loopback when the farm simulator is present (a small fleet for the page).
DEFAULT_SIM_DEVICES = 12
# How often the ledger learns the network difficulty from the node (it changes every demo block).
NETWORK_INTERVAL_S = 5.0
# The simulated fleet: a mix of Antminers and Bitaxes on its own loopback range (away from the farm
# simulator's default range, which its own tests use), the same devices on every run.
SIM_MIX = "s19xp:4,s19:3,s21:2,bitaxe-gamma:1"
SIM_NETWORK = "127.77.0.0/16"
SIM_SEED = 7
# Where the simulated devices stand: two racks of eight addresses (the farm's usual CIDR-per-rack plan).
SIM_RACKS = "cidr,site,rack\n127.77.0.0/29,demo,rack-1\n127.77.0.8/29,demo,rack-2\n"
# The farm polls the (small, local) simulated fleet often so the page fills quickly; rescans are rare.
FARM_POLL_S = 10.0
FARM_RESCAN_S = 600.0
# The farm's energy panel in the demo: a flat example electricity price (USD/MWh, a typical industrial
# rate), shown as "demo price" on the page; no tariff is fetched.
DEMO_PRICE_PER_MWH = 60.0
# Hashprice inputs for the demo: the demo chain's own difficulty says nothing about real revenue, so the page
# uses the worked mainnet-like example from the farm field notes (difficulty 1e14, 3.125 BTC subsidy, no fees,
# BTC at 100,000 USD -> about 62.8 USD per PH/s per day), labelled as example figures; nothing is fetched.
DEMO_NET_DIFFICULTY = 1e14
DEMO_NET_SUBSIDY_BTC = 3.125
DEMO_NET_FEES_BTC = 0.0
DEMO_BTC_PRICE_USD = 100_000.0
# Seconds between the one-line status `up` prints.
STATUS_INTERVAL_S = 30.0
# How often the stop sequence looks whether the ledger has drained the share bus.
DRAIN_POLL_S = 0.05
# Seconds each part gets to stop before we move on to the next.
STOP_TIMEOUT_S = 10.0

STATE_FILE = "up.json"
EXIT_FORCED = 130  # the shell's code for "interrupted" (128 + SIGINT), used by a second Ctrl-C


class UpError(RuntimeError):
    """`pithead up` cannot start (a port is taken, the data directory is unusable)."""


@dataclass(frozen=True)
class UpOptions:
    data_dir: str
    config_path: str | None = None
    duration: float | None = None  # stop after this many seconds (tests); None = until Ctrl-C
    miners: int = DEFAULT_MINERS
    miner_threads: int = DEFAULT_MINER_THREADS
    # Simulated devices. None: the config's farm.sim_devices, whose default 0 means DEFAULT_SIM_DEVICES
    # here (`up` is the demo; `pithead farm` never simulates unless asked). 0 in UpOptions: no fleet.
    sim_devices: int | None = None
    # Port overrides (0 = any free port, for tests); None keeps the config's port.
    node_port: int | None = None
    pool_port: int | None = None
    web_port: int | None = None
    block_interval: float | None = None  # demo chain's target spacing; None keeps the config's
    miner_difficulty: float = MINER_SUGGEST_DIFFICULTY  # what the local miners ask the pool for
    print_fn: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


@dataclass
class Running:
    """What `up` started, for the ready hook (tests) and the stop sequence."""

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


def _prepare_dir(path: str) -> Path:
    data_dir = Path(path).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpError(f"cannot use data directory {data_dir}: {exc}") from exc
    return data_dir


def _load_state(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((data_dir / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(data_dir: Path, state: Mapping[str, Any]) -> None:
    tmp = data_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, data_dir / STATE_FILE)


def _random_address(network: Any) -> str:
    """A fresh P2WPKH address nobody holds the key of: a demo miner's payout address."""
    from pithead.chain.address import script_to_address
    from pithead.chain.script import witness_program_script

    addr = script_to_address(witness_program_script(0, os.urandom(20)), network)
    if addr is None:  # pragma: no cover - a v0 20-byte program always has an address
        raise UpError("cannot make a demo address")
    return addr


async def _skip_missing(running: Running, name: str, start: Callable[[], Awaitable[None]]) -> bool:
    """Run `start`; a part whose module is not in this tree is skipped with a note, not an error."""
    try:
        await start()
    except ImportError as exc:
        if exc.name and exc.name.startswith("pithead"):
            running.skipped[name] = f"not built in this tree ({exc.name})"
            log.warning("%s skipped: %s", name, running.skipped[name])
            return False
        raise
    running.parts.append(name)
    return True


async def serve_up(opts: UpOptions, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None) -> Running:
    """Start everything, call `on_ready`, wait for `stop` (or the duration), stop everything."""
    data_dir = await asyncio.to_thread(_prepare_dir, opts.data_dir)
    cfg = config_mod.load(opts.config_path, data_dir=str(data_dir))
    running = Running(data_dir)
    state = _load_state(data_dir)

    def started() -> None:
        _save_state(data_dir, state)
        _print_banner(opts, running)

    return await run_parts(running, _start_all(opts, cfg, running, state), stop, started=started,
                           on_ready=on_ready, duration=opts.duration, print_fn=opts.print_fn)


async def run_parts(running: Running, start: Awaitable[None], stop: asyncio.Event, *, started: Callable[[], None],
                    on_ready: Callable[[Running], None] | None, duration: float | None,
                    print_fn: Callable[[str], None], first: Sequence[str] = ()) -> Running:
    """The life of `up` and `serve`: run `start`; then `started()` and `on_ready`; wait for `stop` (or
    `duration`); always stop every part that started (`first` ahead of the rest, see `_stop_all`)."""
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
        await _stop_all(running, print_fn, first=first)
    return running


async def _start_all(opts: UpOptions, cfg: config_mod.Config, running: Running, state: dict[str, Any]) -> None:
    # Fail fast, before anything starts mining, when a port we need is taken (e.g. another pithead).
    for what, host, port in (
        ("node RPC", cfg.node.rpc_bind, cfg.node.rpc_port if opts.node_port is None else opts.node_port),
        ("stratum", cfg.pool.bind, cfg.pool.port if opts.pool_port is None else opts.pool_port),
        ("web", cfg.web.bind, cfg.web.port if opts.web_port is None else opts.web_port),
    ):
        _check_port(what, host, port)

    # --- node ------------------------------------------------------------------------------------
    from pithead.node.node import EmbeddedNode, NodeError
    from pithead.web.network import HttpNodeRpc

    node_cfg = cfg.node
    node = EmbeddedNode(
        running.data_dir / "node",
        chain="demo",
        rpc_bind=node_cfg.rpc_bind,
        rpc_port=node_cfg.rpc_port if opts.node_port is None else opts.node_port,
        tx_rate=node_cfg.tx_rate or DEMO_TX_RATE,
        block_interval=opts.block_interval or node_cfg.demo_block_interval,
    )
    try:
        await node.start()
    except NodeError as exc:
        raise UpError(f"node: {exc}") from exc
    running.stoppers.append(("node", node.stop))
    running.parts.append("node")
    running.node_url = node.rpc_url
    running.objects["node"] = node
    user, password = node.auth
    rpc = HttpNodeRpc(node.rpc_url, user, password)
    running.stoppers.append(("node rpc client", rpc.aclose))
    running.objects["rpc"] = rpc

    # --- addresses -------------------------------------------------------------------------------
    network = node.network
    pool_address = state.get("pool_address")
    if not isinstance(pool_address, str):
        try:
            pool_address = str(await rpc.call("getnewaddress", ["pool"]))
        except Exception:  # a node without a wallet: the pool's fees go to an address of its own
            pool_address = _random_address(network)
        state["pool_address"] = pool_address
    miners = state.get("miner_addresses")
    if not isinstance(miners, list) or len(miners) < opts.miners:
        miners = list(miners or [])
        while len(miners) < opts.miners:
            miners.append(_random_address(network))
        state["miner_addresses"] = miners
    running.pool_address = pool_address
    running.miner_addresses = list(miners[: opts.miners])

    # --- ledger ----------------------------------------------------------------------------------
    # The demo chain's coins are worth nothing: `up` always pays out (the [ledger] payouts switch is for
    # `pithead serve`, on a real chain).
    settings, bus = await start_ledger(cfg, running, rpc, network, pay=True)

    # --- pool ------------------------------------------------------------------------------------
    async def start_pool() -> None:
        await _start_pool(opts, cfg, running, node, bus, pool_address)

    await _skip_missing(running, "pool", start_pool)

    # --- miners ----------------------------------------------------------------------------------
    if running.stratum_url is not None and opts.miners > 0:

        async def start_miners() -> None:
            await _start_miners(opts, running)

        await _skip_missing(running, "miners", start_miners)

    # --- farm (simulated fleet) ------------------------------------------------------------------
    farm_router: Any = None

    async def start_farm() -> None:
        nonlocal farm_router
        farm_router = await _start_farm(opts, cfg, running)

    await _skip_missing(running, "farm", start_farm)

    # --- web -------------------------------------------------------------------------------------
    from pithead.web.services import PoolInfo

    info = PoolInfo(
        name="pithead demo", mode="pool", scheme=str(settings.scheme), fee_percent=cfg.ledger.pool_fee_percent,
        network=f"demo ({network.name})", stratum_url=running.stratum_url,
    )
    await start_web(cfg, running, rpc, info, farm_router, cfg.web.port if opts.web_port is None else opts.web_port,
                    opts.print_fn)


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
    from pithead.ledger.bus import MemoryBus
    from pithead.ledger.ledger import Ledger, LedgerError, LedgerSettings
    from pithead.ledger.payouts import RpcWallet
    from pithead.ledger.service import RpcChainView, run_ledger, timers_from_config
    from pithead.store import open_store
    from pithead.store.base import StoreError

    try:
        settings = LedgerSettings.from_config(cfg.ledger)
        timers = timers_from_config(cfg.ledger)
        store = open_store(cfg.ledger.database, data_dir=running.data_dir)
    except (StoreError, LedgerError, ValueError) as exc:
        raise UpError(f"ledger: {exc}") from exc
    running.stoppers.append(("ledger store", _async(store.close)))
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
        await _bounded(ledger_task)

    running.stoppers.append(("ledger", stop_ledger))
    running.parts.append("ledger")
    running.objects.update(ledger=ledger, bus=sink, bus_source=source, store=store)
    difficulty = asyncio.create_task(_follow_network(ledger, rpc), name="pithead-ledger-network")
    running.stoppers.append(("ledger network", lambda: _cancel_all([difficulty])))
    return settings, sink


async def start_web(
    cfg: config_mod.Config, running: Running, rpc: Any, info: Any, farm_router: Any, port: int,
    print_fn: Callable[[str], None],
) -> None:
    """The dashboard, REST API and metrics on `[web] bind` and `port`, reading the ledger's store (its own
    connection), the node through `rpc`, the live pool from `running.objects["pool_live"]` and mounting
    `farm_router` when given; then the one-line status every STATUS_INTERVAL_S through `print_fn`."""
    from pithead.store import open_store
    from pithead.web.app import create_app
    from pithead.web.server import WebServer, WebServerError
    from pithead.web.services import Services

    web_store = open_store(cfg.ledger.database, data_dir=running.data_dir, migrate=False)
    running.stoppers.append(("web ledger connection", _async(web_store.close)))
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
    status = asyncio.create_task(_status_loop(print_fn, web_store, rpc), name="pithead-status")
    running.stoppers.append(("status", lambda: _cancel_all([status])))


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("", "k", "M", "G", "T", "P", "E"):
        if abs(value) < 1000:
            return f"{value:.3g} {unit}H/s"
        value /= 1000
    return f"{value:.3g} ZH/s"


async def _status_loop(print_fn: Callable[[str], None], store: Any, rpc: Any) -> None:
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


def _check_port(what: str, host: str, port: int, hint: str = "Set other ports with --config") -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UpError(f"{what}: cannot listen on {host}:{port} ({exc.strerror}); "
                          f"is another pithead running? {hint}") from exc


def _async(fn: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()

    return run


async def _bounded(task: asyncio.Task[Any]) -> None:
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


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait (bounded) for them to end; a task that ignores cancellation is reported."""
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for t in tasks:
        if not t.done():
            log.warning("%s did not stop when cancelled", t.get_name())


async def _follow_network(ledger: Any, rpc: Any) -> None:
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


async def _start_pool(
    opts: UpOptions, cfg: config_mod.Config, running: Running, node: Any, bus: Any, pool_address: str,
) -> None:
    from pithead.template.rpc import RpcClient
    from pithead.template.source import NodeSource

    user, password = node.auth
    source = NodeSource(
        RpcClient(node.rpc_url, user=user, password=password, name="demo-node"),
        chain="regtest",  # the demo chain answers as regtest (same genesis and addresses)
        refresh_interval=cfg.pool.refresh_interval,
    )
    await source.start()
    running.stoppers.append(("template source", source.stop))
    track_templates(running, source)
    pool_cfg = dataclasses.replace(cfg.pool, mode="pool", network="regtest", pool_address=pool_address)
    await start_pool_server(pool_cfg, running, source, bus, pool_cfg.port if opts.pool_port is None else opts.pool_port)


def track_templates(running: Running, source: Any) -> None:
    """Keep `running.last_template_time` (the dashboard's template age) current from a started `source`."""
    running.last_template_time = time.time()

    async def track() -> None:
        async for update in source.updates():
            running.last_template_time = update.received_at

    tracker = asyncio.create_task(track(), name="pithead-template-age")
    running.stoppers.append(("template tracker", lambda: _cancel_all([tracker])))


async def start_pool_server(pool_cfg: Any, running: Running, source: Any, bus: Any, port: int) -> None:
    """The Stratum pool for `pool_cfg` on its bind and `port`, taking templates from the started `source`
    and putting shares and blocks on `bus`: one server, or `[pool] workers` processes (`WorkerPool`, its
    supervisor feeding the bus). Sets `running.stratum_url` and `running.objects["pool_live"]` (the web's
    live view)."""
    from pithead.stratum.server.run import PoolConfigError, build_server, pool_workers
    from pithead.web.adapters import PoolServerLive

    server: Any
    try:
        workers = pool_workers(pool_cfg)
        if workers > 1:  # [pool] workers: the multi-core pool, its supervisor feeding this ledger's bus
            from pithead.stratum.server.workers import WorkerPool

            server = WorkerPool(pool_cfg, source, bus, workers)
        else:
            server = build_server(pool_cfg, source, bus)
        host, port = await server.start(pool_cfg.bind, port)
    except (PoolConfigError, OSError, RuntimeError) as exc:  # RuntimeError: a worker that could not start
        raise UpError(f"pool: {exc}") from exc
    running.stoppers.append(("pool", server.stop))
    running.stratum_url = f"stratum+tcp://{host}:{port}"
    running.objects["pool"] = server
    running.objects["pool_live"] = PoolServerLive(server, running.stratum_url)


async def _start_miners(opts: UpOptions, running: Running) -> None:
    from pithead.miner.runner import Miner, MinerOptions
    from pithead.stratum.client.connection import parse_pool_url

    assert running.stratum_url is not None
    pool = parse_pool_url(running.stratum_url)
    tasks: list[asyncio.Task[Any]] = []
    miners: list[Any] = []
    for i in range(opts.miners):
        address = running.miner_addresses[i]
        miner = Miner(MinerOptions(pools=(pool,), username=f"{address}.cpu{i + 1}", threads=opts.miner_threads,
                                   suggest_difficulty=opts.miner_difficulty, user_agent="pithead-up-miner"))
        miners.append(miner)
        tasks.append(asyncio.create_task(miner.run(), name=f"pithead-miner-{i + 1}"))
    running.objects["miners"] = miners

    async def stop_miners() -> None:
        await _cancel_all(tasks)
        # Whatever state a miner's client was left in, its hashing threads stop with it.
        for m in miners:
            await asyncio.to_thread(m.engine.stop)

    running.stoppers.append(("miners", stop_miners))


async def _start_farm(opts: UpOptions, cfg: config_mod.Config, running: Running) -> Any:
    """The fleet manager on `<data_dir>/farm.sqlite3`, its web router, and a simulated fleet to manage."""
    from pithead.farm.service import FarmService, FarmServiceConfig
    from pithead.farm.store import FarmStore

    farm_store = await asyncio.to_thread(FarmStore, running.data_dir / "farm.sqlite3")
    running.stoppers.append(("farm store", _async(farm_store.close)))
    cidrs: tuple[str, ...] = ()
    ports: dict[Any, tuple[int, ...]] | None = None
    wanted = opts.sim_devices if opts.sim_devices is not None else (cfg.farm.sim_devices or DEFAULT_SIM_DEVICES)
    if wanted > 0:
        try:
            cidrs, ports = await _start_sim_fleet(wanted, running)
        except ImportError as exc:
            if not (exc.name and exc.name.startswith("pithead")):
                raise
            running.skipped["simulated fleet"] = f"not built in this tree ({exc.name})"
    svc_cfg = FarmServiceConfig(
        scan_cidrs=cidrs, rescan_interval_s=FARM_RESCAN_S, poll_interval_s=min(cfg.farm.poll_interval, FARM_POLL_S),
        max_concurrency=cfg.farm.max_concurrent_polls,
        api_token=cfg.farm.api_token, api_token_file=cfg.farm.api_token_file,
    )
    if ports:
        svc_cfg = dataclasses.replace(svc_cfg, scan_ports=ports)
    from pithead.farm.energy import PriceSchedule, hashprice_per_th_day
    from pithead.farm.inventory import Labeler

    hashprice = hashprice_per_th_day(DEMO_NET_DIFFICULTY, DEMO_NET_SUBSIDY_BTC, DEMO_NET_FEES_BTC, DEMO_BTC_PRICE_USD)
    service = FarmService(farm_store, svc_cfg, labeler=Labeler.from_csv(SIM_RACKS, "demo"),
                          prices=PriceSchedule.flat(DEMO_PRICE_PER_MWH), hashprice=lambda: hashprice)
    # Labels the farm page shows next to the figures, so nobody takes the demo's prices for real ones.
    notes = {"price": f"demo price: a flat example of {DEMO_PRICE_PER_MWH:g} USD/MWh, not a real tariff",
             "hashprice": f"example mainnet figures: difficulty {DEMO_NET_DIFFICULTY:g}, {DEMO_NET_SUBSIDY_BTC:g} BTC"
                          f" subsidy, BTC at {DEMO_BTC_PRICE_USD:,.0f} USD (not live, not the demo chain)"}
    return run_farm_service(service, running, notes)


def run_farm_service(service: Any, running: Running, notes: Mapping[str, str] | None = None) -> Any:
    """Start `service` (a `FarmService`) as a task stopped with the rest, and return its web router; a bad
    `[farm] api_token` setting is a clear `UpError`, not a traceback."""
    from pithead.farm.web import FarmAuthError

    try:
        router = service.router(notes=notes) if notes is not None else service.router()
    except FarmAuthError as exc:
        raise UpError(f"farm: {exc}") from exc
    task = asyncio.create_task(service.run(), name="pithead-farm")

    async def stop_farm() -> None:
        service.stop()
        await _bounded(task)

    running.stoppers.append(("farm", stop_farm))
    running.objects["farm"] = service
    return router


async def _start_sim_fleet(count: int, running: Running) -> tuple[tuple[str, ...], dict[Any, tuple[int, ...]]]:
    """Serve `count` simulated devices on loopback; returns the addresses and ports the farm should scan.

    The shared bind mode listens once per port (on free ports here, so a second pithead or a test fleet
    never collides) and answers only connections to the fleet's loopback addresses.
    """
    from pithead.farm.model import DriverKind
    from pithead.farm.sim.clock import SimClock
    from pithead.farm.sim.fleet import Fleet
    from pithead.farm.sim.server import FleetServer, SimServerError

    fleet = Fleet.build(count, SIM_MIX, seed=SIM_SEED, network=SIM_NETWORK, clock=SimClock())
    server = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    try:
        await server.start()
    except SimServerError as exc:
        raise UpError(f"simulated fleet: {exc}") from exc
    running.stoppers.append(("simulated fleet", server.close))
    running.parts.append("simulated fleet")
    running.objects["fleet"] = fleet
    api_port, web_port = server.bound_ports()
    return tuple(d.ip for d in fleet), {DriverKind.CGMINER: (api_port,), DriverKind.AXEOS: (web_port,)}


def _print_banner(opts: UpOptions, running: Running) -> None:
    p = opts.print_fn
    p("pithead is up (demo chain). Ctrl-C stops everything.")
    if running.web_url:
        p(f"  dashboard    {running.web_url}/")
        p(f"  REST API     {running.web_url}/docs   (OpenAPI: {running.web_url}/openapi.json)")
        p(f"  metrics      {running.web_url}/metrics")
        if "farm" in running.parts:
            fleet = running.objects.get("fleet")
            where = f" ({len(fleet)} simulated devices on {SIM_NETWORK})" if fleet is not None else ""
            p(f"  farm         {running.web_url}/farm/{where}")
            p(f"               (demo price {DEMO_PRICE_PER_MWH:g} USD/MWh, example mainnet hashprice figures)")
    if running.stratum_url:
        p(f"  stratum      {running.stratum_url}   (user: <your regtest address>.<worker>, any password)")
    if running.node_url:
        p(f"  node RPC     {running.node_url}   (cookie in {running.data_dir / 'node' / 'demo' / '.cookie'})")
    for addr in running.miner_addresses:
        if running.web_url:
            p(f"  miner        {running.web_url}/address/{addr}")
    for name, why in running.skipped.items():
        p(f"  ({name}: {why})")
    p(f"  data         {running.data_dir}")


async def _stop_all(running: Running, print_fn: Callable[[str], None], first: Sequence[str] = ()) -> None:
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


def run_up(
    data_dir: str,
    config_path: str | None,
    *,
    duration: float | None = None,
    on_ready: Callable[[Running], None] | None = None,
    **overrides: Any,
) -> None:
    """The `pithead up` command: run until Ctrl-C (or `duration` seconds), then stop cleanly."""
    opts = UpOptions(data_dir=data_dir, config_path=config_path, duration=duration, **overrides)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The pool logs every block at WARNING; on the demo chain that is every few seconds, and the status
    # line and the dashboard already show blocks. Keep its errors.
    logging.getLogger("pithead.stratum.server.pool").setLevel(logging.ERROR)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: the user does not want to wait for a clean stop
                opts.print_fn("pithead up: stopping now, without waiting for every part.")
                os._exit(EXIT_FORCED)
            opts.print_fn("pithead up: stopping (Ctrl-C again to stop at once)...")
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        try:
            await serve_up(opts, stop, on_ready)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        opts.print_fn("pithead stopped.")

    try:
        asyncio.run(main())
    except UpError as exc:
        opts.print_fn(f"pithead up: {exc}")
        raise SystemExit(1) from exc
    except config_mod.ConfigError as exc:
        opts.print_fn(f"pithead up: {exc}")
        raise SystemExit(2) from exc


__all__ = ["Running", "UpError", "UpOptions", "run_up", "serve_up"]

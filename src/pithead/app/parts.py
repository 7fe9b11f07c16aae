"""The parts of an operation, each started from the config the same way by every profile.

One starter per part, each taking its config section and the `Running` record it adds itself to (its
stopper, its background tasks, its typed field): the node's RPC client (`connect_node`), the notifier
(`start_notifier`: `[notify]`'s routes; its sink, `running.notifier`, is handed to the ledger, the template
source and the farm), the ledger on its share bus (`start_ledger`: the in-memory bus, or the Redis stream of
`[ledger] share_bus`), the pool with its template source (`start_pool`: one process or `[pool] workers`
processes), the web dashboard (`start_web`) and the farm's service (`run_farm_service`). The profiles
(`pithead.app.demo` for `up`, `pithead.app.production` for `serve`, `pithead.app.pool` for `pool`) choose
which parts run and with what; none of them builds a part by hand.

What it is not: any part's own logic (that is the part's package), or the life of the whole
(`pithead.app.lifecycle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pithead import config as config_mod
from pithead.app.lifecycle import Running, StartError, bounded
from pithead.bitcoind.rpc import NodeError, RpcClient
from pithead.chain.params import Network
from pithead.events import ShareSink
from pithead.farm.alerts import AlertSink, NoticeAlertSink
from pithead.farm.service import FarmService
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.bus.redis import RedisEventSource, RedisShareSink
from pithead.ledger.bus.source import EventSource
from pithead.ledger.ledger import Ledger, LedgerError, LedgerSettings
from pithead.ledger.payouts import RpcWallet
from pithead.ledger.quiet import QuietWatcher
from pithead.ledger.service import RpcChainView, bus_label, open_bus, run_ledger, timers_from_config
from pithead.ledger.store import open_store
from pithead.ledger.store.base import StoreError
from pithead.notify.metrics import NotifierCollector
from pithead.notify.notifier import Notifier
from pithead.stratum.server.build import build_server, pool_workers
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.server.v2 import Sv2Endpoint, read_authority_secret
from pithead.stratum.server.workers import WorkerPool
from pithead.stratum.v2.cert import encode_public_key
from pithead.stratum.v2.errors import KeyEncodingError
from pithead.stratum.v2.secp256k1 import xonly_public
from pithead.template.interface import TemplateSource
from pithead.template.sources.failover import source_from_config
from pithead.web import queries
from pithead.web.adapters import PoolServerLive
from pithead.web.app import create_app
from pithead.web.farm import FarmAuthError, service_router
from pithead.web.server import WebServer, WebServerError
from pithead.web.services import PoolInfo, Services

log = logging.getLogger(__name__)

NETWORK_INTERVAL_S = 5.0
"""How often the ledger learns the network difficulty from the node (it changes every demo block)."""
STATUS_INTERVAL_S = 30.0
"""Seconds between the one-line status an operation prints."""
DRAIN_POLL_S = 0.05
"""How often the stop sequence looks whether the ledger has drained the share bus."""
BUS_DRAIN_S = 6.0
"""At stop, the ledger applies what is still in a Redis stream for at most this long (s): front-ends
elsewhere may still be publishing, so "empty" may never come; the in-memory bus gets the same bound. Within
lifecycle.STOP_TIMEOUT_S, which bounds the whole ledger stop."""
STOP_FIRST = ("pool", "share bus", "ledger")
"""Stop order ahead of the rest: the pool first (no new shares), then the Redis bus writer (its last events
into the stream), then the ledger (it drains the bus of what the pool put there)."""


# --- the node ------------------------------------------------------------------------------------------


async def connect_node(node: config_mod.UpstreamNode, running: Running, network: Network | None) -> RpcClient:
    """The RPC client of `node` (the ledger's chain view and wallet, the dashboard's node status): it must
    answer, and be on `network` when one is given."""
    rpc = RpcClient.from_config(node)
    running.on_stop("node rpc client", rpc.close)
    running.node_url = node.url
    running.rpc = rpc
    try:
        info = await rpc.call("getblockchaininfo")
    except NodeError as exc:
        raise StartError(f"node {node.url} is not answering: {exc}") from exc
    chain = info.get("chain") if isinstance(info, dict) else None
    if network is not None and isinstance(chain, str) and chain != network.name:
        raise config_mod.ConfigError(f"node {node.url} is on {chain} but pool.network is {network.name!r}")
    return rpc


# --- the notifier --------------------------------------------------------------------------------------


async def start_notifier(cfg: config_mod.NotifyConfig, running: Running) -> None:
    """The notifier of `[notify]` when it names routes (each URL and kind checked now: a `ConfigError`),
    else skipped, and said so. Started before the parts that raise notices, so that, stopped in reverse
    start order, it stops after them and delivers their last notices (for at most its drain time, within
    the stop bound). Sets `running.notifier`, the sink those parts are handed."""
    if not cfg.routes:
        running.skipped["notify"] = "not started: [notify] names no routes"
        return
    notifier = Notifier.from_config(cfg)
    task = running.spawn("notifier", notifier.run())

    async def stop_notifier() -> None:
        notifier.stop()
        await bounded(task)

    running.on_stop("notifier", stop_notifier)
    running.parts.append("notify")
    running.notifier = notifier


def farm_sinks(running: Running) -> list[AlertSink]:
    """Where the farm's alert manager hands its changes besides the store: the notifier, when one runs."""
    return [NoticeAlertSink(running.notifier)] if running.notifier is not None else []


# --- the ledger ----------------------------------------------------------------------------------------


async def open_share_bus(url: str, running: Running) -> tuple[ShareSink, EventSource, Callable[[], Awaitable[int]],
                                                                float]:
    """(sink for the pool, source for the ledger, what is left to apply, how long to drain it at stop) for
    `[ledger] share_bus`: one in-memory bus, or a Redis stream (which must answer now)."""
    if url == "memory":
        # One process: the in-memory bus. Its positions are time-based like stream ids, so the ledger's
        # cursor from the last run never hides this run's first events.
        memory = MemoryBus("pool")

        async def queued() -> int:
            return len(memory)

        return memory, memory, queued, BUS_DRAIN_S
    sink, source = open_bus(url)
    assert isinstance(sink, RedisShareSink) and isinstance(source, RedisEventSource)
    try:
        await sink.ping()
    except StoreError as exc:
        await sink.client.aclose()
        raise StartError(f"share bus {bus_label(url)}: {exc}") from exc
    running.on_stop("share bus connection", sink.client.aclose)
    return sink, source, source.backlog, BUS_DRAIN_S


async def start_ledger(cfg: config_mod.Config, running: Running, rpc: RpcClient, network: Network, *,
                       pay: bool) -> LedgerSettings:
    """The ledger on `[ledger] database` (relative to the data directory) consuming `[ledger] share_bus`,
    maturity tracking against `rpc`, payouts from `rpc`'s wallet only when `pay`, and a task keeping its
    network difficulty current. Sets `running.sink` (where the pool puts its events). At stop, the ledger
    first applies what the bus still holds (see BUS_DRAIN_S)."""
    try:
        settings = LedgerSettings.from_config(cfg.ledger)
        timers = timers_from_config(cfg.ledger)
        store = open_store(cfg.ledger.database, data_dir=running.data_dir)
    except (StoreError, LedgerError) as exc:
        raise StartError(f"ledger: {exc}") from exc
    running.on_stop_sync("ledger store", store.close)
    sink, source, left, drain_s = await open_share_bus(cfg.ledger.share_bus, running)
    ledger = Ledger(store, settings, notices=running.notifier)
    ledger_stop = asyncio.Event()
    quiet_s = cfg.notify.worker_quiet_minutes * 60
    quiet = QuietWatcher(quiet_s) if running.notifier is not None and quiet_s > 0 else None
    ledger_task = running.spawn("ledger", run_ledger(
        ledger, source, ledger_stop, node=RpcChainView(rpc), wallet=RpcWallet(rpc) if pay else None, timers=timers,
        network=network, notices=running.notifier, quiet=quiet))

    async def stop_ledger() -> None:
        # The pool has stopped by now: let the ledger apply what is left before stopping it. There is no
        # "drained" event to wait on; a short poll for a bounded time is all we need.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while not ledger_task.done() and loop.time() < deadline:
            try:
                if await left() == 0:
                    break
            except Exception as exc:  # e.g. Redis gone: what is left waits in the stream for the next run
                log.warning("ledger: cannot see what is left to apply: %s", exc)
                break
            await asyncio.sleep(DRAIN_POLL_S)
        ledger_stop.set()
        await bounded(ledger_task)

    running.on_stop("ledger", stop_ledger)
    running.parts.append("ledger")
    running.ledger, running.store, running.sink, running.bus_source = ledger, store, sink, source
    running.spawn("ledger network", follow_network(ledger, rpc))
    return settings


async def follow_network(ledger: Ledger, rpc: RpcClient) -> None:
    """Keep the ledger's network difficulty current (PPLNS window, PPS price) from the node."""
    while True:
        try:
            info = await rpc.call("getmininginfo")
            if isinstance(info, dict):
                ledger.set_network(float(info.get("difficulty") or 0.0), 0)
        except Exception as exc:  # the node may be busy or odd; the next pass will do (never stop for this)
            log.warning("network difficulty: %s", exc)
        await asyncio.sleep(NETWORK_INTERVAL_S)


# --- the pool ------------------------------------------------------------------------------------------


def make_pool(cfg: config_mod.PoolConfig, source: TemplateSource, sink: ShareSink | None, *,
              own_process: bool = False) -> PoolServer | WorkerPool:
    """The pool `cfg` asks for, not started: one `PoolServer` in this process, or a `WorkerPool` of `[pool]
    workers` processes (its supervisor feeding `sink`). Both have the same `start(host, port)` and `stop()`.

    `own_process`: the pool shares this process with other parts (the web, the ledger, the farm), so it runs
    in worker processes even when `[pool] workers` is 1: a dashboard read by many clients, a ledger commit
    or a farm sweep then costs the pool some CPU at most, never its event loop or the GIL (finding: 32 API
    readers on the pool's own loop made share replies 105x slower)."""
    workers = pool_workers(cfg)
    if workers > 1 or own_process:
        return WorkerPool(cfg, source, sink, workers, sv2_authority=read_sv2_authority(cfg))
    return build_server(cfg, source, sink)


async def start_source(cfg: config_mod.PoolConfig, running: Running,
                       source: TemplateSource | None = None) -> TemplateSource:
    """Templates from `[pool] nodes` (failover by chain and priority; blocks submitted to every node), or
    the given `source`; started, and its updates tracked for the dashboard's template age."""
    if source is None:
        source = source_from_config(cfg.nodes, chain=cfg.network, refresh_interval=cfg.refresh_interval,
                                    notices=running.notifier)
    try:
        await source.start()
    except NodeError as exc:
        with contextlib.suppress(Exception):
            await source.stop()
        raise StartError(f"no template from the configured node(s): {exc}") from exc
    running.on_stop("template source", source.stop)
    running.source = source
    running.last_template_time = time.time()

    async def track() -> None:
        async for update in source.updates():
            running.last_template_time = update.received_at

    running.spawn("template tracker", track())
    return source


async def start_pool(cfg: config_mod.PoolConfig, running: Running, sink: ShareSink | None, *,
                     source: TemplateSource | None = None, own_process: bool = False) -> None:
    """The Stratum pool for `cfg` on its bind and port, taking templates from `[pool] nodes` (or `source`)
    and putting shares and blocks on `sink`: the ledger's bus, or a Redis stream whose writer starts here
    and stops right after the pool (its last events go into the stream); in worker processes when
    `own_process` (see `make_pool`). With `[pool] sv2_port`, the Stratum V2 endpoint beside it (the same jobs,
    share check, ledger events, bans and limits). Sets `running.stratum_url` (and `running.sv2_url`),
    `running.pool` and `running.pool_live` (the web's live view)."""
    authority = read_sv2_authority(cfg)  # a bad key file stops the start before any node is asked
    started = await start_source(cfg, running, source)
    if isinstance(sink, RedisShareSink):
        writer_stop = asyncio.Event()
        writer = running.spawn("share bus", sink.run(writer_stop))

        async def stop_writer() -> None:  # after the pool: its last events go into the stream
            writer_stop.set()
            await bounded(writer)

        running.on_stop("share bus", stop_writer)
    try:
        server = make_pool(cfg, started, sink, own_process=own_process)
        host, port = await server.start(cfg.bind, cfg.port)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a worker process that could not start
        raise StartError(f"pool: cannot listen on {cfg.bind}:{cfg.port}: {exc}") from exc
    sv2: Sv2Endpoint | None = None

    async def stop_pool() -> None:  # both endpoints, V2 first: then nothing judges shares any more
        if sv2 is not None:
            await sv2.stop()
        await server.stop()

    running.on_stop("pool", stop_pool)
    if authority is not None and cfg.sv2_port is not None:
        if isinstance(server, PoolServer):
            sv2 = Sv2Endpoint(server, authority, cert_validity=cfg.sv2_cert_validity)
            try:
                sv2_host, sv2_port = await sv2.start(cfg.bind, cfg.sv2_port)
            except OSError as exc:
                raise StartError(f"pool: cannot listen for Stratum V2 on {cfg.bind}:{cfg.sv2_port}: {exc}") from exc
        else:  # each worker process serves V2 beside V1, on the port the supervisor reserved
            assert server.sv2_port is not None
            sv2_host, sv2_port = host, server.sv2_port
        running.sv2_url = f"stratum2+tcp://{sv2_host}:{sv2_port}/{encode_public_key(xonly_public(authority))}"
    scheme = "stratum+ssl" if cfg.tls_cert_file else "stratum+tcp"
    running.stratum_url = f"{scheme}://{host}:{port}"
    running.pool = server
    running.pool_live = PoolServerLive(server, running.stratum_url)
    running.parts.append("pool")


def read_sv2_authority(cfg: config_mod.PoolConfig) -> bytes | None:
    """The authority secret of `[pool] sv2_authority_secret_key_file` when the SV2 endpoint is on (None
    when it is off); a file that cannot be read or holds no key is a `ConfigError` naming the key."""
    if cfg.sv2_port is None:
        return None
    path = cfg.sv2_authority_secret_key_file or ""
    try:
        return read_authority_secret(path)
    except OSError as exc:
        raise config_mod.ConfigError(f"pool.sv2_authority_secret_key_file: cannot read {path}: "
                                     f"{exc.strerror or exc}") from exc
    except KeyEncodingError as exc:
        raise config_mod.ConfigError(f"pool.sv2_authority_secret_key_file: {exc}") from exc


# --- the web -------------------------------------------------------------------------------------------


async def start_web(cfg: config_mod.Config, running: Running, info: PoolInfo, farm_router: Any,
                    print_fn: Callable[[str], None], *, proxy_router: Any = None, collectors: Sequence[Any] = ()) -> None:
    """The dashboard, REST API and metrics on `[web] bind` and `port`, reading the ledger's store (its own
    connection), the node through `running.rpc`, the live pool from `running.pool_live` and mounting
    `farm_router` when given (and `proxy_router`, with the proxy's Prometheus `collectors`); then the one-line
    status every STATUS_INTERVAL_S through `print_fn`."""
    try:
        web_store = open_store(cfg.ledger.database, data_dir=running.data_dir, migrate=False)
    except StoreError as exc:
        raise StartError(f"web: {exc}") from exc
    running.on_stop_sync("web ledger connection", web_store.close)
    services = Services(store=web_store, node=running.rpc, pool=running.pool_live,
                        last_template_time=lambda: running.last_template_time, farm_router=farm_router, info=info,
                        proxy_router=proxy_router)
    app = create_app(services)
    for collector in collectors:
        app.state.metrics.registry.register(collector)
    if running.notifier is not None:  # the notifier's counts on /metrics
        app.state.metrics.registry.register(NotifierCollector(running.notifier))
    web = WebServer(app, cfg.web.bind, cfg.web.port)
    try:
        await web.start()
    except WebServerError as exc:
        raise StartError(f"web: {exc}") from exc
    running.on_stop("web", web.stop)
    running.parts.append("web")
    running.web_url = web.url
    running.spawn("status", status_loop(print_fn, web_store, running.rpc))


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("", "k", "M", "G", "T", "P", "E"):
        if abs(value) < 1000:
            return f"{value:.3g} {unit}H/s"
        value /= 1000
    return f"{value:.3g} ZH/s"


async def status_loop(print_fn: Callable[[str], None], store: Any, rpc: RpcClient | None) -> None:
    """One plain line every STATUS_INTERVAL_S: height, pool hashrate with its interval, blocks, shares."""
    services = Services(store=store)
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        try:
            summary = await asyncio.to_thread(queries.pool_summary, services, store, time.time(), None)
            height = (await rpc.call("getblockcount")) if rpc is not None else None
        except Exception as exc:  # a status line is never worth stopping the operation for
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


# --- the farm ------------------------------------------------------------------------------------------


def run_farm_service(service: FarmService, running: Running, notes: Mapping[str, str] | None = None) -> Any:
    """Start `service` as a part stopped with the rest, and return its web router; a bad `[farm]
    api_token` setting is a clear `StartError`, not a traceback."""
    try:
        router = service_router(service, notes=notes)
    except FarmAuthError as exc:
        raise StartError(f"farm: {exc}") from exc
    task = running.spawn("farm", service.run())

    async def stop_farm() -> None:
        service.stop()
        await bounded(task)

    running.on_stop("farm", stop_farm)
    running.farm = service
    return router


def pool_info(name: str, pool: config_mod.PoolConfig, ledger: config_mod.LedgerConfig, network: str,
              running: Running, *, pays: bool, pool_id: str) -> PoolInfo:
    """What the dashboard (and the Miningcore-compatible API, where the pool is `pool_id`: `[web]
    miningcore_pool_id`) says about this pool; `pays`: whether the ledger sends payouts (as `start_ledger`
    was told)."""
    return PoolInfo(name=name, mode=pool.mode, scheme=ledger.scheme, fee_percent=ledger.pool_fee_percent,
                    network=network, stratum_url=running.stratum_url, pool_id=pool_id,
                    pool_address=pool.pool_address if pool.mode == "pool" else None,
                    start_difficulty=pool.start_difficulty, min_difficulty=pool.min_difficulty,
                    max_difficulty=pool.max_difficulty, share_interval_s=pool.share_interval,
                    refresh_interval_s=pool.refresh_interval, idle_timeout_s=pool.idle_timeout,
                    payout_threshold_sat=ledger.payout_threshold_sat, payouts_enabled=pays,
                    withholding_level=ledger.withholding_level)


def demo_pool_config(cfg: config_mod.PoolConfig, *, node_url: str, user: str, password: str, pool_address: str,
                     port: int) -> config_mod.PoolConfig:
    """`[pool]` as `pithead up` runs it: pool mode on its own node (the demo chain answers as regtest)."""
    node = config_mod.UpstreamNode(url=node_url, rpc_user=user, rpc_password=password)
    return dataclasses.replace(cfg, mode="pool", network="regtest", pool_address=pool_address, nodes=(node,),
                               port=port)

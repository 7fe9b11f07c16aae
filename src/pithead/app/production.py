"""`pithead serve`: the operation for real, against the Bitcoin nodes of `[pool] nodes`.

It runs, in one process: the Stratum pool in the configured mode (`[pool] workers` processes when asked),
taking templates from the configured nodes (Bitcoin Core, or any node speaking its JSON-RPC: ZMQ,
long-poll or polling per node, failover across them, blocks submitted to all); the ledger on
`[ledger] database` (relative to the data directory) with its consumer, maturity tracking and network
difficulty from the first configured node; the web dashboard, REST API and metrics on `[web]`; and the
farm's fleet manager only when `[farm] scan` names networks to manage. There is no embedded node, no demo
miner and no simulated fleet: that is `pithead up`.

Payouts send real money, so they are off unless `[ledger] payouts = "wallet"`: with "off" the ledger still
records shares and blocks, credits balances and tracks maturity, and nothing is ever sent. With "wallet"
the balances over the threshold are paid from the first node's wallet, which must then hold the pool
address (so the rewards land where the payouts come from); solo mode refuses it, since its coinbase pays
the finder directly.

Beyond one machine: with `[ledger] share_bus = "redis://HOST:PORT/DB?stream=NAME"` this pool publishes its
share and block events to that Redis stream and the ledger consumes the stream (through a consumer group,
exactly once), so it also credits the shares of every `pithead pool --share-bus` front-end publishing there,
on this machine or others. `no_pool` (`pithead serve --no-pool`) starts no Stratum pool and no template
source at all: a central machine running the ledger, payouts and dashboard for the front-ends. At stop the
pool stops first, then the bus writer writes its last events, then the ledger applies what is left in the
stream (for at most BUS_DRAIN_S) and stops.

Errors an operator can fix (no node answering, a port taken, a bad or missing pool address) end the
command with one line and no traceback: status 2 for the config, 1 for the rest. The wiring is shared with
`pithead up` (`pithead.app.demo`'s starters); this module holds no pool, ledger or HTTP logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pithead import config as config_mod
from pithead.app.parts import (
    Running,
    UpError,
    bounded,
    check_port,
    prepare_dir,
    run_farm_service,
    run_parts,
    start_ledger,
    start_pool_server,
    start_web,
    stopper,
    track_templates,
)

log = logging.getLogger("pithead.app.production")

PAYOUT_MODES = ("off", "wallet")
EXIT_CONFIG = 2  # a config the operator must fix (as a usage error)
EXIT_FAILED = 1  # could not start: the node, a port, the data directory
EXIT_FORCED = 130  # a second Ctrl-C (128 + SIGINT)
# Stop order: the pool first (no new shares), then the Redis bus writer (its last events into the stream),
# then the ledger (it drains the bus of what the pool put there), then everything else in reverse start order.
STOP_FIRST = ("pool", "share bus", "ledger")
# At stop, the ledger applies what is still in the Redis stream for at most this long (s): front-ends
# elsewhere may still be publishing, so "empty" may never come. Within parts.STOP_TIMEOUT_S, which bounds the
# whole ledger stop.
BUS_DRAIN_S = 6.0


class ServeError(UpError):
    """`pithead serve` cannot start (a node does not answer, a port is taken, the wallet is missing)."""


def _print(line: str) -> None:
    print(line, flush=True)


def _print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ServeOptions:
    config_path: str | None
    data_dir: str | None = None  # None: the config's data_dir
    duration: float | None = None  # stop after this many seconds; None = until Ctrl-C / SIGTERM
    print_fn: Callable[[str], None] = field(default=_print)
    # No Stratum pool here: only the ledger (on a Redis [ledger] share_bus, fed by `pithead pool
    # --share-bus` front-ends), payouts and the web.
    no_pool: bool = False


class NodeCall:
    """Bitcoin Core's JSON-RPC as `call(method, params)` (what the ledger, its wallet and the web expect)
    over the template layer's `RpcClient`, which re-reads the node's cookie after a restart."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        return await self.client.call(method, *(params or []))

    async def aclose(self) -> None:
        await self.client.close()


def check_config(cfg: config_mod.Config, no_pool: bool = False) -> Any:
    """Refuse, before touching any node, what cannot run; returns the pool's network."""
    from pithead.chain.address import address_to_script
    from pithead.ledger.service import bus_label
    from pithead.stratum.server.build import PoolConfigError, pool_workers, rules_from_config

    pool = cfg.pool
    bus = cfg.ledger.share_bus
    if bus != "memory" and urlsplit(bus).scheme not in ("redis", "rediss", "unix"):
        raise config_mod.ConfigError(f"[ledger] share_bus must be \"memory\" or redis://HOST:PORT/DB?stream=NAME, "
                                     f"not {bus_label(bus)!r}")
    if no_pool and bus == "memory":
        raise config_mod.ConfigError("--no-pool runs only the ledger: it needs [ledger] share_bus = "
                                     "\"redis://...\", the stream `pithead pool --share-bus` front-ends publish to")
    if cfg.ledger.payouts not in PAYOUT_MODES:
        raise config_mod.ConfigError(f"[ledger] payouts must be {' or '.join(PAYOUT_MODES)}, not {cfg.ledger.payouts!r}")
    if not pool.nodes:
        raise config_mod.ConfigError("[pool] nodes is empty: give at least one node (url and cookie_file or "
                                     "rpc_user/rpc_password)")
    for i, n in enumerate(pool.nodes):
        if n.cookie_file is None and (n.rpc_user is None or n.rpc_password is None):
            raise config_mod.ConfigError(f"[pool] nodes[{i}] ({n.url}): give cookie_file, or rpc_user and "
                                         f"rpc_password")
    try:
        rules = rules_from_config(pool)
        pool_workers(pool)
    except (PoolConfigError, ValueError) as exc:  # ValueError: an unknown network name
        raise config_mod.ConfigError(f"[pool] {exc}") from exc
    if pool.mode == "pool":
        if not pool.pool_address:
            raise config_mod.ConfigError(
                "pool mode needs [pool] pool_address: the address the blocks' rewards go to (an address of "
                "the node's wallet, so the ledger's payouts can come from it)")
        try:
            address_to_script(pool.pool_address, rules.network)
        except ValueError as exc:
            raise config_mod.ConfigError(
                f"[pool] pool_address {pool.pool_address!r} is not a {rules.network.name} address: {exc}") from exc
    elif cfg.ledger.payouts == "wallet":
        raise config_mod.ConfigError(
            "solo mode pays the block's finder in the coinbase: the ledger keeps records only, so "
            "[ledger] payouts must be \"off\"")
    return rules.network


async def serve(opts: ServeOptions, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None) -> Running:
    """Start everything, call `on_ready`, wait for `stop` (or the duration), stop everything.

    Raises `config.ConfigError` for a config that cannot run and `UpError` (`ServeError`) for a start that
    failed; what had started is stopped either way."""
    cfg = config_mod.load(opts.config_path)
    data_dir = await asyncio.to_thread(prepare_dir, opts.data_dir or cfg.data_dir)
    cfg = config_mod.load(opts.config_path, data_dir=str(data_dir))
    network = check_config(cfg, no_pool=opts.no_pool)
    running = Running(data_dir)
    return await run_parts(running, _start_all(opts, cfg, running, network), stop,
                           started=lambda: _print_banner(opts, cfg, running, network), on_ready=on_ready,
                           duration=opts.duration, print_fn=opts.print_fn, first=STOP_FIRST)


async def _start_all(opts: ServeOptions, cfg: config_mod.Config, running: Running, network: Any) -> None:
    from pithead.bitcoind.rpc import NodeError, RpcClient
    from pithead.web.services import PoolInfo

    # Fail fast, before anything starts, when a port we need is taken (e.g. another pithead).
    ports = [("web", cfg.web.bind, cfg.web.port)]
    if not opts.no_pool:
        ports.insert(0, ("stratum", cfg.pool.bind, cfg.pool.port))
    for what, host, port in ports:
        check_port(what, host, port, hint=f"Set other ports in {opts.config_path}")

    # --- the first node: the ledger's chain view and wallet, the dashboard's node status -------------
    first = cfg.pool.nodes[0]
    rpc = NodeCall(RpcClient(first.url, user=first.rpc_user, password=first.rpc_password,
                             cookie_file=first.cookie_file, name=first.url))
    running.stoppers.append(("node rpc client", rpc.aclose))
    running.node_url = first.url
    running.objects["rpc"] = rpc
    try:
        info = await rpc.call("getblockchaininfo", [])
    except NodeError as exc:
        raise ServeError(f"node {first.url} is not answering: {exc}") from exc
    chain = info.get("chain") if isinstance(info, dict) else None
    if isinstance(chain, str):
        from pithead.chain.params import network_by_name

        try:
            node_network = network_by_name(chain)
        except ValueError:
            node_network = None
        if node_network is not None and node_network.name != network.name:
            raise config_mod.ConfigError(
                f"node {first.url} is on {chain} but [pool] network is {cfg.pool.network!r}")
    pay = cfg.ledger.payouts == "wallet"
    if pay:
        await _check_wallet(rpc, first.url, cfg.pool.pool_address)

    # --- ledger ----------------------------------------------------------------------------------
    if cfg.ledger.share_bus == "memory":  # one process: the pool feeds the ledger in memory
        settings, bus = await start_ledger(cfg, running, rpc, network, pay=pay)
    else:  # the Redis stream: this pool and any front-end elsewhere publish, the ledger consumes
        settings, bus = await _start_stream_ledger(cfg, running, rpc, network, pay=pay)

    # --- templates from the configured nodes, and the pool -------------------------------------
    if opts.no_pool:
        running.skipped["pool"] = ("not started (--no-pool): the ledger credits what `pithead pool --share-bus` "
                                   "front-ends publish")
    else:
        await _start_pool(cfg, running, network, bus)

    # --- farm, when there is a fleet to manage -------------------------------------------------------
    farm_router: Any = None
    if cfg.farm.scan:
        farm_router = await _start_farm(cfg, running)
        running.parts.append("farm")
    else:
        running.skipped["farm"] = "not started: [farm] scan names no network to manage"

    # --- web -------------------------------------------------------------------------------------
    info_out = PoolInfo(name="pithead", mode=cfg.pool.mode, scheme=str(settings.scheme),
                        fee_percent=cfg.ledger.pool_fee_percent, network=network.name,
                        stratum_url=running.stratum_url)
    await start_web(cfg, running, rpc, info_out, farm_router, cfg.web.port, opts.print_fn)


async def _start_pool(cfg: config_mod.Config, running: Running, network: Any, bus: Any) -> None:
    """Templates from the configured nodes and the Stratum pool, its events on `bus`: the ledger's
    `MemoryBus`, or the `RedisShareSink` whose writer starts here and stops right after the pool."""
    from pithead.bitcoind.rpc import NodeError
    from pithead.ledger.bus.redis import RedisShareSink
    from pithead.template.sources.failover import source_from_config

    source = source_from_config(cfg.pool.nodes, chain=network.name, refresh_interval=cfg.pool.refresh_interval)
    try:
        await source.start()
    except NodeError as exc:
        with contextlib.suppress(Exception):
            await source.stop()
        raise ServeError(f"no template from the configured node(s): {exc}") from exc
    running.stoppers.append(("template source", source.stop))
    running.objects["source"] = source
    track_templates(running, source)
    if isinstance(bus, RedisShareSink):
        writer_stop = asyncio.Event()
        writer = asyncio.create_task(bus.run(writer_stop), name="pithead-share-bus")

        async def stop_writer() -> None:  # after the pool: its last events go into the stream
            writer_stop.set()
            await bounded(writer)

        running.stoppers.append(("share bus", stop_writer))
    await start_pool_server(cfg.pool, running, source, bus, cfg.pool.port)
    running.parts.append("pool")


async def _start_stream_ledger(
    cfg: config_mod.Config, running: Running, rpc: Any, network: Any, *, pay: bool,
) -> tuple[Any, Any]:
    """`up.start_ledger` over the Redis share bus of `[ledger] share_bus` instead of memory: the ledger
    consumes the stream through its consumer group (exactly once; see `pithead.ledger.bus.redis`). Returns
    (settings, the bus's `RedisShareSink` for this process's pool); at stop the ledger first applies what
    the stream still holds, for at most BUS_DRAIN_S."""
    from pithead.ledger.bus.redis import RedisEventSource, RedisShareSink
    from pithead.ledger.service import bus_label, open_bus
    from pithead.ledger.store.base import StoreError

    url = cfg.ledger.share_bus
    try:
        sink, source = open_bus(url)
    except ValueError as exc:
        raise config_mod.ConfigError(f"[ledger] share_bus: {exc}") from exc
    assert isinstance(sink, RedisShareSink) and isinstance(source, RedisEventSource)
    try:
        await sink.ping()
    except StoreError as exc:
        await sink.client.aclose()
        raise ServeError(f"share bus {bus_label(url)}: {exc}") from exc
    running.stoppers.append(("share bus connection", sink.client.aclose))
    return await start_ledger(cfg, running, rpc, network, pay=pay, bus=(sink, source), left=source.backlog,
                              drain_s=BUS_DRAIN_S)


async def _check_wallet(rpc: NodeCall, url: str, pool_address: str | None) -> None:
    """Payouts come from the first node's wallet: it must have one, and hold the pool address (else the
    blocks' rewards would go elsewhere while the payouts drain whatever else the wallet holds)."""
    try:
        await rpc.call("getbalance", [])
    except Exception as exc:
        raise ServeError(f"[ledger] payouts = \"wallet\" needs a wallet on node {url}: {exc}") from exc
    try:
        about = await rpc.call("getaddressinfo", [pool_address])
    except Exception as exc:  # a node without getaddressinfo: nothing more to check
        log.warning("cannot check that the pool address is the wallet's: %s", exc)
        return
    if isinstance(about, dict) and about.get("ismine") is False:
        raise ServeError(f"[ledger] payouts = \"wallet\": the pool address {pool_address} is not in the wallet "
                         f"of node {url}, which would pay the miners")


async def _start_farm(cfg: config_mod.Config, running: Running) -> Any:
    """The farm's fleet manager for `[farm]` (as `pithead farm run` builds it) on `<data_dir>/farm.sqlite3`;
    returns its web router, which the dashboard mounts at /farm/."""
    from pithead.farm.service import FarmConfigError, FarmService, FarmSetup
    from pithead.farm.store import FarmStore

    try:
        setup = await asyncio.to_thread(FarmSetup.from_config, cfg.farm)
    except FarmConfigError as exc:
        raise config_mod.ConfigError(f"[farm]: {exc}") from exc
    farm_store = await asyncio.to_thread(FarmStore, running.data_dir / "farm.sqlite3")
    running.stoppers.append(("farm store", stopper(farm_store.close)))
    return run_farm_service(FarmService(farm_store, setup.config, prices=setup.prices, labeler=setup.labeler), running)


def _print_banner(opts: ServeOptions, cfg: config_mod.Config, running: Running, network: Any) -> None:
    p = opts.print_fn
    pool = cfg.pool
    from pithead.stratum.server.build import pool_workers

    procs = pool_workers(pool)
    only = "; ledger only, no pool here" if opts.no_pool else ""
    p(f"pithead is serving ({pool.mode} mode, {network.name}{only}). Ctrl-C or SIGTERM stops it.")
    if ledger_bus := _bus_line(cfg, running):
        p(ledger_bus)
    if running.stratum_url:
        user = "<your payout address>.<worker>" if pool.user_rule == "address" else "<any name>.<worker>"
        extra = f", {procs} worker processes" if procs > 1 else ""
        p(f"  stratum      {running.stratum_url}   (user: {user}, any password{extra})")
    if opts.no_pool:
        p(f"  node         {running.node_url}   (the ledger's maturity checks, and payouts when on)")
    else:
        nodes = ", ".join(n.url for n in sorted(pool.nodes, key=lambda n: n.priority))
        p(f"  nodes        {nodes}   (templates, with failover by priority; the ledger asks {running.node_url})")
    if pool.mode == "pool":
        p(f"  pool address {pool.pool_address}")
    else:
        p("  solo         each block's coinbase pays its finder; the ledger's balances are records only")
    ledger = cfg.ledger
    p(f"  ledger       {ledger.scheme}, fee {ledger.pool_fee_percent:g}%, {_without_password(ledger.database)}")
    if ledger.payouts == "wallet":
        p(f"  payouts      ON: balances over {ledger.payout_threshold_sat} sat are paid from the wallet of "
          f"{running.node_url} every {ledger.payout_interval:g} s")
    else:
        p("  payouts      off: balances are kept and nothing is sent ([ledger] payouts = \"wallet\" to pay)")
    if running.web_url:
        p(f"  dashboard    {running.web_url}/")
        p(f"  REST API     {running.web_url}/docs   (OpenAPI: {running.web_url}/openapi.json)")
        p(f"  metrics      {running.web_url}/metrics")
        if "farm" in running.parts:
            p(f"  farm         {running.web_url}/farm/   (scanning {', '.join(cfg.farm.scan)})")
    for name, why in running.skipped.items():
        p(f"  ({name}: {why})")
    p(f"  data         {running.data_dir}")


def _bus_line(cfg: config_mod.Config, running: Running) -> str | None:
    """The banner's share bus line, None on the in-memory bus (nothing to say)."""
    from pithead.ledger.service import bus_label

    if cfg.ledger.share_bus == "memory":
        return None
    who = "this pool and every" if "pool" in running.parts else "every"
    return (f"  share bus    {bus_label(cfg.ledger.share_bus)}   ({who} `pithead pool --share-bus` front-end "
            f"publishing there; the ledger credits them all)")


def _without_password(url: str) -> str:
    """A database URL fit for a banner: the password, if any, left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def run_serve(config_path: str | None, data_dir: str | None = None, *, duration: float | None = None,
              print_fn: Callable[[str], None] = _print, err_fn: Callable[[str], None] = _print_err,
              no_pool: bool = False) -> None:
    """The `pithead serve` command: run until Ctrl-C/SIGTERM (or `duration` seconds), then stop cleanly."""
    opts = ServeOptions(config_path=config_path, data_dir=data_dir, duration=duration, print_fn=print_fn,
                        no_pool=no_pool)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: the operator does not want to wait for a clean stop
                print_fn("pithead serve: stopping now, without waiting for every part.")
                os._exit(EXIT_FORCED)
            print_fn("pithead serve: stopping (Ctrl-C again to stop at once)...")
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        try:
            await serve(opts, stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        print_fn("pithead stopped.")

    try:
        asyncio.run(main())
    except config_mod.ConfigError as exc:
        err_fn(f"pithead serve: {exc}")
        raise SystemExit(EXIT_CONFIG) from exc
    except UpError as exc:
        err_fn(f"pithead serve: {exc}")
        raise SystemExit(EXIT_FAILED) from exc


__all__ = ["NodeCall", "ServeError", "ServeOptions", "check_config", "run_serve", "serve"]

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
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pithead import config as config_mod
from pithead.app.lifecycle import (
    Running,
    StartError,
    check_port,
    prepare_dir,
    print_error,
    print_line,
    run_command,
    run_parts,
)
from pithead.app.parts import (
    STOP_FIRST,
    connect_node,
    farm_sinks,
    pool_info,
    run_farm_service,
    start_ledger,
    start_notifier,
    start_pool,
    start_web,
)
from pithead.bitcoind.rpc import NodeError, RpcClient
from pithead.chain.params import Network
from pithead.farm.service import FarmConfigError, FarmService, FarmSetup
from pithead.farm.store import open_farm_store
from pithead.ledger.service import bus_label
from pithead.stratum.server.build import pool_workers, rules_from_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    config_path: str | None
    data_dir: str | None = None  # None: the config's data_dir
    duration: float | None = None  # stop after this many seconds; None = until Ctrl-C / SIGTERM
    print_fn: Callable[[str], None] = field(default=print_line)
    # No Stratum pool here: only the ledger (on a Redis [ledger] share_bus, fed by `pithead pool
    # --share-bus` front-ends), payouts and the web.
    no_pool: bool = False


def check_config(cfg: config_mod.Config, no_pool: bool = False) -> Network:
    """What the production profile needs beyond a valid config (`config.validate` ran at load), refused
    before touching any node; returns the pool's network."""
    if no_pool and cfg.ledger.share_bus == "memory":
        raise config_mod.ConfigError("--no-pool runs only the ledger: it needs [ledger] share_bus = "
                                     "\"redis://...\", the stream `pithead pool --share-bus` front-ends publish to")
    for i, n in enumerate(cfg.pool.nodes):
        if n.cookie_file is None and (n.rpc_user is None or n.rpc_password is None):
            raise config_mod.ConfigError(f"pool.nodes[{i}] ({n.url}): give cookie_file, or rpc_user and "
                                         f"rpc_password")
    return rules_from_config(cfg.pool).network  # and the pool address is one of that network


async def serve(opts: ServeOptions, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None) -> Running:
    """Start everything, call `on_ready`, wait for `stop` (or the duration), stop everything.

    Raises `config.ConfigError` for a config that cannot run and `StartError` for a start that failed (or
    a part that failed while running); what had started is stopped either way."""
    cfg = config_mod.load(opts.config_path)
    data_dir = await asyncio.to_thread(prepare_dir, opts.data_dir or cfg.data_dir)
    cfg = config_mod.load(opts.config_path, overrides={"data_dir": str(data_dir)})
    network = check_config(cfg, no_pool=opts.no_pool)
    running = Running(data_dir)
    return await run_parts(running, lambda: _start_all(opts, cfg, running, network), stop,
                           started=lambda: _print_banner(opts, cfg, running, network), on_ready=on_ready,
                           duration=opts.duration, first=STOP_FIRST)


async def _start_all(opts: ServeOptions, cfg: config_mod.Config, running: Running, network: Network) -> None:
    # Fail fast, before anything starts, when a port we need is taken (e.g. another pithead).
    ports = [("web", cfg.web.bind, cfg.web.port)]
    if not opts.no_pool:
        ports.insert(0, ("stratum", cfg.pool.bind, cfg.pool.port))
    for what, host, port in ports:
        check_port(what, host, port, hint=f"Set other ports in {opts.config_path}")

    # --- the first node: the ledger's chain view and wallet, the dashboard's node status -------------
    first = cfg.pool.nodes[0]
    rpc = await connect_node(first, running, network)
    pay = cfg.ledger.payouts == "wallet"
    if pay:
        await _check_wallet(rpc, first.url, cfg.pool.pool_address)

    # --- the notifier, before the parts that raise notices (so it stops after them) -------------------
    await start_notifier(cfg.notify, running)

    # --- the ledger on its share bus, then the pool feeding it -------------------------------------
    await start_ledger(cfg, running, rpc, network, pay=pay)
    if opts.no_pool:
        running.skipped["pool"] = ("not started (--no-pool): the ledger credits what `pithead pool --share-bus` "
                                   "front-ends publish")
    else:
        await start_pool(cfg.pool, running, running.sink, own_process=True)  # beside the web: see make_pool

    # --- farm, when there is a fleet to manage -------------------------------------------------------
    farm_router: Any = None
    if cfg.farm.scan:
        farm_router = await _start_farm(cfg, running)
        running.parts.append("farm")
    else:
        running.skipped["farm"] = "not started: [farm] scan names no network to manage"

    # --- web -------------------------------------------------------------------------------------
    info = pool_info("pithead", cfg.pool, cfg.ledger, network.name, running, pays=pay,
                     pool_id=cfg.web.miningcore_pool_id)
    await start_web(cfg, running, info, farm_router, opts.print_fn)


async def _check_wallet(rpc: RpcClient, url: str, pool_address: str | None) -> None:
    """Payouts come from the first node's wallet: it must have one, and hold the pool address (else the
    blocks' rewards would go elsewhere while the payouts drain whatever else the wallet holds). What cannot
    be checked is refused too, never a warning: a start that pays from the wrong wallet cannot be undone."""
    try:
        await rpc.call("getbalance")
    except NodeError as exc:
        raise StartError(f"[ledger] payouts = \"wallet\" needs a wallet on node {url}: {exc}") from exc
    if not pool_address:
        raise StartError("[ledger] payouts = \"wallet\" needs [pool] pool_address, held by the wallet of node "
                         f"{url}")
    try:
        about = await rpc.call("getaddressinfo", pool_address)
    except NodeError as exc:
        raise StartError(f"[ledger] payouts = \"wallet\": cannot check that the wallet of node {url} holds the "
                         f"pool address {pool_address} ({exc}); refusing to pay from it") from exc
    if not isinstance(about, dict) or about.get("ismine") is not True:
        raise StartError(f"[ledger] payouts = \"wallet\": the pool address {pool_address} is not in the wallet "
                         f"of node {url}, which would pay the miners (import its key there, or set payouts = "
                         "\"off\")")


async def _start_farm(cfg: config_mod.Config, running: Running) -> Any:
    """The farm's fleet manager for `[farm]` (as `pithead farm run` builds it) on `[farm] database` (by
    default `<data_dir>/farm.sqlite3`);
    returns its web router, which the dashboard mounts at /farm/."""
    try:
        setup = await asyncio.to_thread(FarmSetup.from_config, cfg.farm)
    except FarmConfigError as exc:
        raise config_mod.ConfigError(f"[farm]: {exc}") from exc
    farm_store = await asyncio.to_thread(open_farm_store, cfg.farm.database, running.data_dir, cfg.farm.status_cache)
    running.on_stop_sync("farm store", farm_store.close)
    service = FarmService(farm_store, setup.config, prices=setup.prices, labeler=setup.labeler,
                          sinks=farm_sinks(running))
    return run_farm_service(service, running)


def _print_banner(opts: ServeOptions, cfg: config_mod.Config, running: Running, network: Network) -> None:
    p = opts.print_fn
    pool = cfg.pool

    procs = pool_workers(pool)
    only = "; ledger only, no pool here" if opts.no_pool else ""
    p(f"pithead is serving ({pool.mode} mode, {network.name}{only}). Ctrl-C or SIGTERM stops it.")
    if ledger_bus := _bus_line(cfg, running):
        p(ledger_bus)
    if running.stratum_url:
        user = "<your payout address>.<worker>" if pool.user_rule == "address" else "<any name>.<worker>"
        extra = f", {procs} worker processes" if procs > 1 else ""
        p(f"  stratum      {running.stratum_url}   (user: {user}, any password{extra})")
    if running.sv2_url:
        p(f"  stratum v2   {running.sv2_url}")
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
    if running.notifier is not None:  # destinations as their labels: tokens and passwords elided
        p(f"  notify       {', '.join(running.notifier.stats())}   (`pithead notify test` to try them)")
    for name, why in running.skipped.items():
        p(f"  ({name}: {why})")
    p(f"  data         {running.data_dir}")


def _bus_line(cfg: config_mod.Config, running: Running) -> str | None:
    """The banner's share bus line, None on the in-memory bus (nothing to say)."""

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
              print_fn: Callable[[str], None] = print_line, err_fn: Callable[[str], None] = print_error,
              no_pool: bool = False) -> None:
    """The `pithead serve` command: run until Ctrl-C/SIGTERM (or `duration` seconds), then stop cleanly."""
    opts = ServeOptions(config_path=config_path, data_dir=data_dir, duration=duration, print_fn=print_fn,
                        no_pool=no_pool)

    async def main(stop: asyncio.Event) -> None:
        await serve(opts, stop)

    run_command("pithead serve", main, print_fn=print_fn, err_fn=err_fn)


__all__ = ["ServeOptions", "check_config", "run_serve", "serve"]

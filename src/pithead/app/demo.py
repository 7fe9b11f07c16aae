"""`pithead up`: the demo profile — the whole operation in one process, on pithead's own `demo` chain.

It starts, in order: the embedded node on the `demo` chain in `<data_dir>/node/` (with the transaction
generator), the ledger on `[ledger] database` consuming `[ledger] share_bus`, the Stratum pool in pool mode
(PPLNS by default) taking templates from the node, a couple of reference miners on local threads, a farm
proxy (`[proxy] bind`/`port`) mining into that pool, a small simulated ASIC fleet configured to mine to the
proxy (half of it really mines, from its own loopback addresses) with the farm's service managing it (its
"hashing but no shares" alert judged on the proxy's figures), and the web dashboard with the farm's and the
proxy's pages (the proxy's machines placed in the farm's racks). It prints the URLs and
runs until Ctrl-C (SIGINT/SIGTERM) or for `duration` seconds, then stops everything in order. A second run
on the same data directory resumes the same chain and ledger; the miners keep their payout addresses (kept
in `up.json`). The parts are started by `pithead.app.parts`, exactly as `pithead serve` starts them; what
only the demo has is the node, the miners and the simulated fleet. This module holds no mining, ledger or
HTTP logic of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pithead import config as config_mod
from pithead.app.lifecycle import (
    Running,
    StartError,
    cancel_all,
    check_port,
    prepare_dir,
    run_command,
    run_parts,
)
from pithead.app.parts import (
    demo_pool_config,
    farm_sinks,
    pool_info,
    run_farm_service,
    start_ledger,
    start_notifier,
    start_pool,
    start_web,
)
from pithead.app.proxy import LocalProxyCredits
from pithead.bitcoind.rpc import NodeError, RpcClient
from pithead.chain.address import script_to_address
from pithead.chain.params import Network
from pithead.chain.script import witness_program_script
from pithead.farm.drivers import default_drivers
from pithead.farm.energy import PriceSchedule, hashprice_per_th_day
from pithead.farm.inventory import Labeler
from pithead.farm.model import DriverKind
from pithead.farm.proxy_shares import ProxyShareActivity
from pithead.farm.service import FarmService, FarmSetup
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import SimClock
from pithead.fleetsim.device import PoolConf
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.mining import MiningBridge
from pithead.fleetsim.server import FleetServer, SimServerError
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.node import EmbeddedNode, EmbeddedNodeError
from pithead.proxy.build import settings_from_config
from pithead.proxy.proxy import FarmProxy, UpstreamSpec
from pithead.stratum.client.connection import parse_pool_url
from pithead.web.proxy import FarmLabels, ProxyCollector, farm_store_rows, proxy_router

log = logging.getLogger(__name__)

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

# The farm proxy in the demo: the simulated devices ask it for this share difficulty (their CPU hashing does a
# few MH/s), and it asks the pool for the same, so their shares reach the pool every second or so.
DEMO_PROXY_DIFFICULTY = 0.001
# The part of the simulated fleet that really mines (through the proxy); the rest only says it does.
SIM_MINING_FRACTION = 0.5

STATE_FILE = "up.json"


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
    proxy_port: int | None = None
    block_interval: float | None = None  # demo chain's target spacing; None keeps the config's
    miner_difficulty: float = MINER_SUGGEST_DIFFICULTY  # what the local miners ask the pool for
    print_fn: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    def overrides(self, data_dir: Path) -> dict[str, Any]:
        """These options as config overrides (checked like the file)."""
        return {"data_dir": str(data_dir), "node": {"rpc_port": self.node_port,
                                                    "demo_block_interval": self.block_interval},
                "pool": {"port": self.pool_port}, "web": {"port": self.web_port},
                "proxy": {"port": self.proxy_port}}


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


def _random_address(network: Network) -> str:
    """A fresh P2WPKH address nobody holds the key of: a demo miner's payout address."""
    addr = script_to_address(witness_program_script(0, os.urandom(20)), network)
    if addr is None:  # pragma: no cover - a v0 20-byte program always has an address
        raise StartError("cannot make a demo address")
    return addr


async def serve_up(opts: UpOptions, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None) -> Running:
    """Start everything, call `on_ready`, wait for `stop` (or the duration), stop everything."""
    data_dir = await asyncio.to_thread(prepare_dir, opts.data_dir)
    cfg = config_mod.load(opts.config_path, overrides=opts.overrides(data_dir))
    running = Running(data_dir)
    state = _load_state(data_dir)

    def started() -> None:
        _save_state(data_dir, state)
        _print_banner(opts, running)

    return await run_parts(running, lambda: _start_all(opts, cfg, running, state), stop, started=started,
                           on_ready=on_ready, duration=opts.duration)


async def _start_all(opts: UpOptions, cfg: config_mod.Config, running: Running, state: dict[str, Any]) -> None:
    # Fail fast, before anything starts mining, when a port we need is taken (e.g. another pithead).
    for what, host, port in (("node RPC", cfg.node.rpc_bind, cfg.node.rpc_port), ("stratum", cfg.pool.bind,
                             cfg.pool.port), ("web", cfg.web.bind, cfg.web.port),
                             ("proxy", cfg.proxy.bind, cfg.proxy.port)):
        check_port(what, host, port)

    # --- node ------------------------------------------------------------------------------------
    node = EmbeddedNode(running.data_dir / "node", chain="demo", rpc_bind=cfg.node.rpc_bind,
                        rpc_port=cfg.node.rpc_port, tx_rate=cfg.node.tx_rate or DEMO_TX_RATE,
                        block_interval=cfg.node.demo_block_interval)
    try:
        await node.start()
    except EmbeddedNodeError as exc:
        raise StartError(f"node: {exc}") from exc
    running.on_stop("node", node.stop)
    running.parts.append("node")
    running.node_url = node.rpc_url
    running.node = node
    user, password = node.auth
    rpc = RpcClient(node.rpc_url, user=user, password=password, name="demo-node")
    running.on_stop("node rpc client", rpc.close)
    running.rpc = rpc

    # --- the notifier, before the parts that raise notices (so it stops after them) -------------------
    await start_notifier(cfg.notify, running)

    # --- addresses -------------------------------------------------------------------------------
    network = node.network
    pool_address = state.get("pool_address")
    if not isinstance(pool_address, str):
        try:
            pool_address = str(await rpc.call("getnewaddress", "pool"))
        except NodeError:  # a node without a wallet: the pool's fees go to an address of its own
            pool_address = _random_address(network)
        state["pool_address"] = pool_address
    miners = state.get("miner_addresses")
    if not isinstance(miners, list) or len(miners) < opts.miners:
        miners = list(miners or [])
        while len(miners) < opts.miners:
            miners.append(_random_address(network))
        state["miner_addresses"] = miners
    proxy_address = state.get("proxy_address")
    if not isinstance(proxy_address, str):
        proxy_address = state["proxy_address"] = _random_address(network)
    running.pool_address = pool_address
    running.miner_addresses = list(miners[: opts.miners])

    # --- ledger and pool: as `serve` starts them -------------------------------------------------
    # The demo chain's coins are worth nothing: `up` always pays out (the [ledger] payouts switch is for
    # `pithead serve`, on a real chain).
    await start_ledger(cfg, running, rpc, network, pay=True)
    pool_cfg = demo_pool_config(cfg.pool, node_url=node.rpc_url, user=user, password=password,
                                pool_address=pool_address, port=cfg.pool.port)
    await start_pool(pool_cfg, running, running.sink, own_process=True)  # beside the web: see make_pool

    # --- miners, the farm proxy, the simulated fleet and the farm ----------------------------------
    if opts.miners > 0:
        _start_miners(opts, running)
    proxy = await _start_proxy(cfg, running, proxy_address)
    farm_router = await _start_farm(opts, cfg, running, state, proxy)
    running.parts.append("farm")

    # --- web -------------------------------------------------------------------------------------
    info = pool_info("pithead demo", pool_cfg, cfg.ledger, f"demo ({network.name})", running, pays=True,
                     pool_id=cfg.web.miningcore_pool_id)
    labels = None
    if running.farm is not None:  # the proxy's machines placed in the farm's racks
        farm_store = running.farm.store
        labels = FarmLabels(lambda: farm_store.call(farm_store_rows))
        running.spawn("proxy labels", labels.run())
    await start_web(cfg, running, info, farm_router, opts.print_fn,
                    proxy_router=proxy_router(proxy, labels=labels, dashboard=True),
                    collectors=[ProxyCollector(proxy, labels, per_machine=cfg.proxy.metrics_per_machine)])


def _start_miners(opts: UpOptions, running: Running) -> None:
    assert running.stratum_url is not None
    pool = parse_pool_url(running.stratum_url)
    tasks: list[asyncio.Task[Any]] = []
    for i in range(opts.miners):
        address = running.miner_addresses[i]
        miner = Miner(MinerOptions(pools=(pool,), username=f"{address}.cpu{i + 1}", threads=opts.miner_threads,
                                   suggest_difficulty=opts.miner_difficulty, user_agent="pithead-up-miner"))
        running.miners.append(miner)
        tasks.append(running.spawn(f"miner {i + 1}", miner.run()))

    async def stop_miners() -> None:
        await cancel_all(tasks)
        # Whatever state a miner's client was left in, its hashing threads stop with it.
        for m in running.miners:
            await asyncio.to_thread(m.engine.stop)

    running.on_stop("miners", stop_miners)
    running.parts.append("miners")


async def _start_proxy(cfg: config_mod.Config, running: Running, address: str) -> FarmProxy:
    """The farm proxy on `[proxy] bind`/`port`, mining into the demo's own pool as `<address>.proxy`."""
    assert running.stratum_url is not None
    settings = dataclasses.replace(settings_from_config(cfg.proxy), upstream_suggest_difficulty=DEMO_PROXY_DIFFICULTY,
                                   start_difficulty=DEMO_PROXY_DIFFICULTY)
    upstream = UpstreamSpec("demo pool", parse_pool_url(running.stratum_url), f"{address}.proxy")
    proxy = FarmProxy(settings, [upstream])
    try:
        await proxy.start(cfg.proxy.bind, cfg.proxy.port)
    except OSError as exc:
        raise StartError(f"proxy: cannot listen on {cfg.proxy.bind}:{cfg.proxy.port}: {exc}") from exc
    running.on_stop("proxy", proxy.stop)
    running.parts.append("proxy")
    running.proxy = proxy
    return proxy


async def _start_farm(opts: UpOptions, cfg: config_mod.Config, running: Running, state: dict[str, Any],
                      proxy: FarmProxy | None = None) -> Any:
    """The fleet manager on `<data_dir>/farm.sqlite3`, its web router, and a simulated fleet to manage (with
    a `proxy`: its devices configured to mine to it, and the farm's share check asks it).

    The simulated devices keep their ids (`cgminer://127.77.0.1:PORT`) from run to run: the fleet listens
    on the ports of the last run (kept in `up.json`) when they are free. Devices of an earlier run that
    this fleet does not serve (its ports were taken, or `sim_devices` shrank) are forgotten before the
    farm starts, so they neither pile up in the inventory nor raise alerts for machines that do not exist."""
    farm_store = await asyncio.to_thread(FarmStore, running.data_dir / "farm.sqlite3")
    running.on_stop_sync("farm store", farm_store.close)
    cidrs: tuple[str, ...] = ()
    ports: dict[Any, tuple[int, ...]] | None = None
    wanted = opts.sim_devices if opts.sim_devices is not None else (cfg.farm.sim_devices or DEFAULT_SIM_DEVICES)
    if wanted > 0:
        cidrs, ports = await _start_sim_fleet(wanted, running, proxy.stratum_url if proxy else None, state)
    served = {(host, port) for host in cidrs for each in (ports or {}).values() for port in each}
    forgotten = await asyncio.to_thread(forget_stale_sim_devices, farm_store, served)
    if forgotten:
        log.info("forgot %d simulated devices of earlier runs that this run does not serve", forgotten)
    setup = FarmSetup.from_config(
        cfg.farm, scan_cidrs=cidrs, scan_ports=ports or None, rescan_interval_s=FARM_RESCAN_S,
        poll_interval_s=min(cfg.farm.poll_interval, FARM_POLL_S), labeler=Labeler.from_csv(SIM_RACKS, "demo"),
        prices=PriceSchedule.flat(DEMO_PRICE_PER_MWH),
    )
    hashprice = hashprice_per_th_day(DEMO_NET_DIFFICULTY, DEMO_NET_SUBSIDY_BTC, DEMO_NET_FEES_BTC, DEMO_BTC_PRICE_USD)
    shares = None
    if proxy is not None:  # "hashing but no shares", for the machines behind the proxy
        shares = ProxyShareActivity(LocalProxyCredits(proxy))
        running.spawn("proxy share snapshot", shares.run())
    # The simulated Antminers serve their stock web interface (where sleep/wake go) on the fleet's web port.
    web_port = (ports or {}).get(DriverKind.AXEOS, ())
    drivers = default_drivers(antminer_web_port=web_port[0]) if web_port else None
    farm_cfg = setup.config
    if proxy is not None and not any(p.name == "proxy" for p in farm_cfg.pool_presets):
        # the pool action's "proxy" preset points a machine at this proxy (each keeps its worker name)
        farm_cfg = dataclasses.replace(farm_cfg, pool_presets=(
            *farm_cfg.pool_presets, config_mod.PoolPreset("proxy", (proxy.stratum_url,))))
    service = FarmService(farm_store, farm_cfg, drivers=drivers, labeler=setup.labeler, prices=setup.prices,
                          hashprice=lambda: hashprice, sinks=farm_sinks(running), shares=shares)
    # Labels the farm page shows next to the figures, so nobody takes the demo's prices for real ones.
    notes = {"price": f"demo price: a flat example of {DEMO_PRICE_PER_MWH:g} USD/MWh, not a real tariff",
             "hashprice": f"example mainnet figures: difficulty {DEMO_NET_DIFFICULTY:g}, {DEMO_NET_SUBSIDY_BTC:g} BTC"
                          f" subsidy, BTC at {DEMO_BTC_PRICE_USD:,.0f} USD (not live, not the demo chain)"}
    return run_farm_service(service, running, notes)


def forget_stale_sim_devices(store: FarmStore, served: set[tuple[str, int]]) -> int:
    """Forget the inventory's devices on the demo's simulated network (`SIM_NETWORK`) whose address and
    port this run's fleet does not serve; how many. Devices elsewhere (real ones) are never touched."""
    net = ipaddress.ip_network(SIM_NETWORK)
    stale = []
    for dev in store.devices():
        try:
            inside = ipaddress.ip_address(dev.address.host) in net
        except ValueError:  # a host name: not one of ours
            inside = False
        if inside and (dev.address.host, dev.address.port) not in served:
            stale.append(dev.id)
    for device_id in stale:
        store.remove_device(device_id)
    return len(stale)


async def _start_sim_fleet(count: int, running: Running, proxy_url: str | None,
                           state: dict[str, Any]) -> tuple[tuple[str, ...], dict[Any, tuple[int, ...]]]:
    """Serve `count` simulated devices on loopback, configured to mine to `proxy_url` (worker
    `sim.<hostname>`), SIM_MINING_FRACTION of them (at least one) really mining there; returns the addresses
    and ports the farm should scan.

    The shared bind mode listens once per port and answers only connections to the fleet's loopback
    addresses. The ports are the last run's (`state["sim_ports"]`) when they are free, so the devices keep
    their ids; otherwise (another pithead holds them, or the first run) free ports, remembered for next time.
    """
    fleet = Fleet.build(count, SIM_MIX, seed=SIM_SEED, network=SIM_NETWORK, clock=SimClock(),
                        pools=(PoolConf(proxy_url, "sim"),) if proxy_url else None)
    last = state.get("sim_ports")
    tries: list[tuple[int, int]] = [(0, 0)]
    if (isinstance(last, list) and len(last) == 2 and all(isinstance(p, int) and 0 < p < 65536 for p in last)):
        tries.insert(0, (last[0], last[1]))
    server: FleetServer | None = None
    for api, web in tries:
        server = FleetServer(fleet, api_port=api, web_port=web, bind="shared")
        try:
            await server.start()
            break
        except SimServerError as exc:
            if (api, web) == tries[-1]:
                raise StartError(f"simulated fleet: {exc}") from exc
            log.info("simulated fleet: the last run's ports are taken (%s); new ports, new device ids", exc)
    assert server is not None
    running.on_stop("simulated fleet", server.close)
    running.parts.append("simulated fleet")
    running.fleet = fleet
    if proxy_url:  # part of the fleet really mines, through the proxy
        mining = fleet.devices[: max(1, round(len(fleet) * SIM_MINING_FRACTION))]
        bridge = MiningBridge(fleet, mining, share_difficulty=DEMO_PROXY_DIFFICULTY)
        await bridge.start()
        running.on_stop("simulated mining", bridge.close)
        running.parts.append("simulated mining")
        running.sim_mining = bridge
    api_port, web_port = server.bound_ports()
    state["sim_ports"] = [api_port, web_port]
    return tuple(d.ip for d in fleet), {DriverKind.CGMINER: (api_port,), DriverKind.AXEOS: (web_port,)}


def _print_banner(opts: UpOptions, running: Running) -> None:
    p = opts.print_fn
    p("pithead is up (demo chain). Ctrl-C stops everything.")
    if running.web_url:
        p(f"  dashboard    {running.web_url}/")
        p(f"  REST API     {running.web_url}/docs   (OpenAPI: {running.web_url}/openapi.json)")
        p(f"  metrics      {running.web_url}/metrics")
        if "farm" in running.parts:
            fleet = running.fleet
            where = f" ({len(fleet)} simulated devices on {SIM_NETWORK})" if fleet is not None else ""
            p(f"  farm         {running.web_url}/farm/{where}")
            p(f"               (demo price {DEMO_PRICE_PER_MWH:g} USD/MWh, example mainnet hashprice figures)")
    if running.stratum_url:
        p(f"  stratum      {running.stratum_url}   (user: <your regtest address>.<worker>, any password)")
    if running.proxy is not None:
        bridge = running.sim_mining
        who = f"{len(bridge.stats.miners)} simulated devices mine through it" if bridge is not None else "no device"
        page = f"; page {running.web_url}/proxy/" if running.web_url else ""
        p(f"  proxy        {running.proxy.stratum_url}   (farm proxy into this pool: {who}{page})")
    if running.node_url:
        p(f"  node RPC     {running.node_url}   (cookie in {running.data_dir / 'node' / 'demo' / '.cookie'})")
    for addr in running.miner_addresses:
        if running.web_url:
            p(f"  miner        {running.web_url}/address/{addr}")
    for name, why in running.skipped.items():
        p(f"  ({name}: {why})")
    p(f"  data         {running.data_dir}")


def run_up(data_dir: str, config_path: str | None, *, duration: float | None = None,
           on_ready: Callable[[Running], None] | None = None, **overrides: Any) -> None:
    """The `pithead up` command: run until Ctrl-C (or `duration` seconds), then stop cleanly."""
    opts = UpOptions(data_dir=data_dir, config_path=config_path, duration=duration, **overrides)
    # The pool logs every block at WARNING; on the demo chain that is every few seconds, and the status
    # line and the dashboard already show blocks. Keep its errors.
    logging.getLogger("pithead.stratum.server.pool").setLevel(logging.ERROR)

    async def main(stop: asyncio.Event) -> None:
        await serve_up(opts, stop, on_ready)

    run_command("pithead up", main, print_fn=opts.print_fn, err_fn=opts.print_fn)


__all__ = ["Running", "StartError", "UpOptions", "run_up", "serve_up"]

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pithead import config as config_mod
from pithead.app.parts import (
    Running,
    UpError,
    cancel_all,
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

log = logging.getLogger("pithead.app.demo")

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

STATE_FILE = "up.json"
EXIT_FORCED = 130  # the shell's code for "interrupted" (128 + SIGINT), used by a second Ctrl-C


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
    data_dir = await asyncio.to_thread(prepare_dir, opts.data_dir)
    cfg = config_mod.load(opts.config_path, data_dir=str(data_dir))
    running = Running(data_dir)
    state = _load_state(data_dir)

    def started() -> None:
        _save_state(data_dir, state)
        _print_banner(opts, running)

    return await run_parts(running, _start_all(opts, cfg, running, state), stop, started=started,
                           on_ready=on_ready, duration=opts.duration, print_fn=opts.print_fn)


async def _start_all(opts: UpOptions, cfg: config_mod.Config, running: Running, state: dict[str, Any]) -> None:
    # Fail fast, before anything starts mining, when a port we need is taken (e.g. another pithead).
    for what, host, port in (
        ("node RPC", cfg.node.rpc_bind, cfg.node.rpc_port if opts.node_port is None else opts.node_port),
        ("stratum", cfg.pool.bind, cfg.pool.port if opts.pool_port is None else opts.pool_port),
        ("web", cfg.web.bind, cfg.web.port if opts.web_port is None else opts.web_port),
    ):
        check_port(what, host, port)

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


async def _start_pool(
    opts: UpOptions, cfg: config_mod.Config, running: Running, node: Any, bus: Any, pool_address: str,
) -> None:
    from pithead.bitcoind.rpc import RpcClient
    from pithead.template.sources.node import NodeSource

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
        await cancel_all(tasks)
        # Whatever state a miner's client was left in, its hashing threads stop with it.
        for m in miners:
            await asyncio.to_thread(m.engine.stop)

    running.stoppers.append(("miners", stop_miners))


async def _start_farm(opts: UpOptions, cfg: config_mod.Config, running: Running) -> Any:
    """The fleet manager on `<data_dir>/farm.sqlite3`, its web router, and a simulated fleet to manage."""
    from pithead.farm.service import FarmService, FarmSetup
    from pithead.farm.store import FarmStore

    farm_store = await asyncio.to_thread(FarmStore, running.data_dir / "farm.sqlite3")
    running.stoppers.append(("farm store", stopper(farm_store.close)))
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
    from pithead.farm.energy import PriceSchedule, hashprice_per_th_day
    from pithead.farm.inventory import Labeler

    setup = FarmSetup.from_config(
        cfg.farm, scan_cidrs=cidrs, scan_ports=ports or None, rescan_interval_s=FARM_RESCAN_S,
        poll_interval_s=min(cfg.farm.poll_interval, FARM_POLL_S), labeler=Labeler.from_csv(SIM_RACKS, "demo"),
        prices=PriceSchedule.flat(DEMO_PRICE_PER_MWH),
    )
    hashprice = hashprice_per_th_day(DEMO_NET_DIFFICULTY, DEMO_NET_SUBSIDY_BTC, DEMO_NET_FEES_BTC, DEMO_BTC_PRICE_USD)
    service = FarmService(farm_store, setup.config, labeler=setup.labeler, prices=setup.prices,
                          hashprice=lambda: hashprice)
    # Labels the farm page shows next to the figures, so nobody takes the demo's prices for real ones.
    notes = {"price": f"demo price: a flat example of {DEMO_PRICE_PER_MWH:g} USD/MWh, not a real tariff",
             "hashprice": f"example mainnet figures: difficulty {DEMO_NET_DIFFICULTY:g}, {DEMO_NET_SUBSIDY_BTC:g} BTC"
                          f" subsidy, BTC at {DEMO_BTC_PRICE_USD:,.0f} USD (not live, not the demo chain)"}
    return run_farm_service(service, running, notes)


async def _start_sim_fleet(count: int, running: Running) -> tuple[tuple[str, ...], dict[Any, tuple[int, ...]]]:
    """Serve `count` simulated devices on loopback; returns the addresses and ports the farm should scan.

    The shared bind mode listens once per port (on free ports here, so a second pithead or a test fleet
    never collides) and answers only connections to the fleet's loopback addresses.
    """
    from pithead.farm.model import DriverKind
    from pithead.fleetsim.clock import SimClock
    from pithead.fleetsim.fleet import Fleet
    from pithead.fleetsim.server import FleetServer, SimServerError

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

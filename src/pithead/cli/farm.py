"""`pithead farm ...`: the fleet manager's commands, plus the simulated fleet as `pithead farm sim`.

- scan       discover devices in CIDR ranges and add them to the inventory (with labels)
- poll       poll the inventory once or every interval; store readings, raise alerts, roll up history
- run        the whole fleet manager as a service from the [farm] config (re-scan, poll, alerts, curtail);
             with --web HOST:PORT it also serves the farm page and API, whose action endpoints take the
             token from --token-file, PITHEAD_FARM_TOKEN or [farm] api_token_file / api_token (none:
             actions on loopback connections only, see pithead.web.farm)
- collect    a collector: scan and poll shard i/n like `run`, but forward readings and inventory to a
             central service (`--forward URL`, bearer token from --token-file / PITHEAD_FARM_TOKEN /
             [farm] api_token_file), through a bounded spool that rides out central outages
- run --central   the central service: polls nothing, ingests the collectors' batches on its web API
             (POST /farm/api/ingest) and runs alerts, rollups, energy and curtailment over the whole fleet
- status     the latest status of every device
- alerts     open (or all recent) alerts
- label      set site/rack/position of a device; forget removes one from the inventory
- reboot / switch-pool / set-pools    audited actions through the device's own API (audited as auth "cli":
             whoever can open the database may act)
- audit      the action audit log
- energy     power, J/TH, cost and revenue per site/rack at a price
- hashprice  revenue per TH/s per day from difficulty, subsidy, fees and BTC price
- curtail    show (and with --apply, execute) one curtailment decision at a price
Each command opens the farm database (`--db`, default pithead-data/farm.sqlite3). A device is named by its
id (`cgminer://10.1.0.5:4028`), or by its IP or IP:port when that names one device. The long-running
commands (`run`, `collect`; `sim run` too) have the app lifecycle (`pithead.app.lifecycle.run_command`):
Ctrl-C or SIGTERM stops them cleanly, a second Ctrl-C at once (130); a start that fails is one line and
status 1. Their flags are the `[farm]` keys spelled with dashes (`--poll-interval` is `poll_interval`),
checked like the file; the older spellings (--webhook, --token-file, --forward, --spool-max, --interval)
still work. This module holds no logic of its own beyond argument parsing and printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from pithead.app.lifecycle import StartError, run_command
from pithead.cli import farm_power
from pithead.config import ConfigError, PoolPreset, load
from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.alerts import AlertManager, WebhookSink
from pithead.farm.curtailment import CurtailmentPolicy, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import DriverError, PoolSpec
from pithead.farm.energy import (
    SAT_PER_BTC,
    PriceSchedule,
    block_subsidy_sat,
    energy_report,
    hashprice_per_th_day,
)
from pithead.farm.forward import SPOOL_MAX_ITEMS, Forwarder, ForwardError, Spool
from pithead.farm.inventory import PROBE_TIMEOUT_S, InventoryError, Labeler, Scanner
from pithead.farm.lookup import DeviceLookupError, resolve_device, status_sort_key
from pithead.farm.model import DriverKind, Labels
from pithead.farm.poller import Poller, select_shard
from pithead.farm.service import FarmService, FarmSetup, Role
from pithead.farm.store import FarmStore, FarmStoreError, open_farm_store
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import HOW_TO_CONFIGURE, FarmAuth, FarmAuthError, load_token, service_router
from pithead.web.server import WebServer, WebServerError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pithead.farm.inventory import ScanReport
    from pithead.farm.poller import SweepReport

app = typer.Typer(no_args_is_help=True, help="The fleet manager and the simulated fleet.")
console = Console(soft_wrap=True)  # a line is never broken by us: a terminal wraps it, a pipe keeps it whole

#: Width of a table written to a pipe or a file: wide enough that no device id is ever cut (a script or an
#: operator's `> status.txt` reads the ids back), whatever width the terminal it does not have would give.
PIPE_TABLE_WIDTH = 240


def _print_table(t: Table) -> None:
    if console.is_terminal:
        console.print(t)
    else:
        Console(width=max(console.width, PIPE_TABLE_WIDTH)).print(t)  # sys.stdout now, whatever it is

DEFAULT_DB = "pithead-data/farm.sqlite3"
DbOpt = typer.Option(DEFAULT_DB, "--db", help="Farm database: a SQLite path or postgresql://USER@HOST/DB?schema=S.")


def _mount_sim() -> None:
    try:
        sim = importlib.import_module("pithead.cli.fleetsim")
    except ImportError as exc:
        if exc.name and exc.name.startswith("pithead.fleetsim"):
            return  # the simulator is not built in this tree
        raise
    if isinstance(getattr(sim, "app", None), typer.Typer):
        app.add_typer(sim.app, name="sim", help="The simulated fleet (cgminer API and AxeOS devices).")


def _store(db: str):  # type: ignore[no-untyped-def]
    return open_farm_store(db)  # a path (SQLite) or a database URL (postgresql://...)


def _shard(text: str) -> tuple[int, int]:
    idx, _, count = text.partition("/")
    try:
        i, n = int(idx), int(count or 1)
    except ValueError:
        raise typer.BadParameter(f"shard must look like 0/4, not {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise typer.BadParameter(f"shard {text!r}: need 0 <= i < n")
    return i, n


def _ports(spec: list[str]) -> tuple[int, ...]:
    out: list[int] = []
    for s in spec:
        for part in s.split(","):
            lo, _, hi = part.partition("-")
            try:
                a, b = int(lo), int(hi or lo)
            except ValueError:
                raise typer.BadParameter(f"bad port {part!r}") from None
            if not 0 < a <= b < 65536 or b - a > 65535:
                raise typer.BadParameter(f"bad port range {part!r}")
            out.extend(range(a, b + 1))
    return tuple(out)


@app.command()
def scan(
    cidrs: list[str] = typer.Argument(..., help="CIDR ranges or addresses, e.g. 10.1.0.0/22."),
    db: str = DbOpt,
    cgminer_port: list[str] = typer.Option(["4028"], "--cgminer-port", help="API ports (list/range: 4028,40000-40100)."),
    axeos_port: list[str] = typer.Option(["80"], "--axeos-port", help="AxeOS web ports."),
    labels: Path | None = typer.Option(None, "--labels", help="CSV cidr,site,rack."),
    site: str = typer.Option("", "--site", help="Site label for devices no rule matches."),
    use_pyasic: bool = typer.Option(False, "--pyasic", help="Identify other makes through pyasic."),
    probe_timeout: float = typer.Option(PROBE_TIMEOUT_S, "--probe-timeout", min=0.01, max=60.0,
                                        help="Seconds a port has to accept (raise it on a slow or busy network)."),
) -> None:
    """Discover devices and add them to the inventory."""

    try:
        labeler = Labeler.from_csv(labels.read_text(), site) if labels else Labeler((), site)
        scanner = Scanner(default_drivers(), {DriverKind.CGMINER: _ports(cgminer_port),
                                              DriverKind.AXEOS: _ports(axeos_port)},
                          labeler=labeler, use_pyasic=use_pyasic, probe_timeout_s=probe_timeout)
        report = asyncio.run(scanner.scan(cidrs))
    except (InventoryError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    with _store(db) as store:
        new = store.upsert_devices(report.found)
    console.print(f"scanned {report.hosts} hosts ({report.probes} probes) in {report.finished - report.started:.1f} s: "
                  f"{report.open_ports} open, {len(report.found)} devices ({new} new), "
                  f"{len(report.failures)} unidentified")


@app.command()
def poll(
    db: str = DbOpt,
    once: bool = typer.Option(False, "--once", help="One sweep, then exit."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between sweeps."),
    concurrency: int = typer.Option(500, "--concurrency", help="Polls in flight at most."),
    deadline: float = typer.Option(5.0, "--deadline", help="Per-device deadline, seconds."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST alert changes here."),
    shard: str = typer.Option("0/1", "--shard", help="Poll only shard i of n (several collectors)."),
) -> None:
    """Poll the inventory, store readings, raise alerts and roll up history."""

    shard_i, shard_n = _shard(shard)

    async def main() -> None:
        with _store(db) as store:
            sinks = []
            hook = None
            if webhook:
                hook = WebhookSink(webhook)
                hook.start()
                sinks.append(hook)
            alerts = AlertManager(sinks=sinks)
            poller = Poller(default_drivers(), max_concurrency=concurrency, deadline_s=deadline)

            def devices():  # type: ignore[no-untyped-def]
                return select_shard(store.devices(), shard_i, shard_n)

            def after(rep):  # type: ignore[no-untyped-def]
                now = time.time()
                events = alerts.run_once(store, now)
                store.rollup(now)
                console.print(f"{rep.devices} devices in {rep.wall_s:.1f} s: {rep.ok} ok, {rep.timeouts} timeout, "
                              f"{rep.unreachable} unreachable, {rep.errors} error; peak {rep.max_in_flight} "
                              f"in flight; {len(events)} alert changes")

            try:
                if once:
                    rep, _ = await poller.sweep(devices(), store.write_results)
                    after(rep)
                else:
                    await poller.run(devices, interval, store.write_results, after)
            finally:
                if hook is not None:
                    await hook.aclose()

    asyncio.run(main())


def _web_address(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:8081)."""
    host, sep, port_s = text.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port < 65536:
        raise typer.BadParameter(f"--web must look like 127.0.0.1:8081, not {text!r}")
    return host, port


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve_web(svc: FarmService, addr: tuple[str, int], auth: FarmAuth, reuse_port: bool = False) -> WebServer:
    """Serve the farm page and API (actions guarded by `auth`) beside the service, in its loop."""
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse


    api = FastAPI(title="pithead farm")
    api.include_router(service_router(svc, auth=auth))

    @api.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/farm/")

    server = WebServer(api, *addr, reuse_port=reuse_port)
    try:
        await server.start()
    except WebServerError as exc:
        raise StartError(f"farm web: {exc}") from exc
    if auth.token is not None:
        mode = "actions need the bearer token"
    elif _is_loopback_host(addr[0]):
        mode = "no API token: actions allowed on loopback connections only"
    else:
        mode = f"no API token: actions from other hosts are refused (403); to allow them, {HOW_TO_CONFIGURE}"
    console.print(f"farm web on {server.url}/farm/ ({mode})", markup=False)
    return server


def sweep_line(rep: SweepReport, open_alerts: int, waiting_for_scan: bool) -> str:
    """The status line after a periodic sweep. A sweep of an empty inventory is not reported as a sweep
    of "0 devices": polling does not wait for discovery (a long scan must never delay the readings of
    known devices), so before the first scan has found anything the line says that instead."""
    if rep.devices == 0:
        if waiting_for_scan:
            return "no devices to poll yet: waiting for the first scan to discover some"
        return "no devices to poll: the inventory is empty (discover devices with --scan or `pithead farm scan`)"
    return (f"{rep.devices} devices in {rep.wall_s:.1f} s: {rep.ok} ok, {rep.timeouts} timeout, "
            f"{rep.unreachable} unreachable, {rep.errors} error; {open_alerts} open alerts")


def scan_line(rep: ScanReport, first_read: SweepReport | None) -> str:
    """The status line after a scan (and the first read of what it discovered)."""
    line = f"scan of {rep.hosts} hosts: {len(rep.found)} devices, {len(rep.failures)} unidentified"
    if first_read is not None and first_read.finished >= rep.finished:
        line += (f"; first read of {first_read.devices} new: {first_read.ok} ok, {first_read.timeouts} timeout, "
                 f"{first_read.unreachable} unreachable, {first_read.errors} error")
    return line


# Flags of the long-running commands are the [farm] config's keys spelled with dashes (`--poll-interval` is
# `[farm] poll_interval`), override the file and are checked like it, so a bad flag names its key; the
# older spellings (--webhook, --token-file, --forward, --spool-max, --interval) stay as aliases.
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config (\\[farm] section).")


def _poll_options(poll_interval: float | None, max_concurrent_polls: int | None, poll_deadline: float | None,
                  scan_cidr: list[str], rescan_interval: float | None, labels: str | None,
                  site: str | None) -> dict[str, object]:
    return {"poll_interval": poll_interval, "max_concurrent_polls": max_concurrent_polls,
            "poll_deadline": poll_deadline, "scan": scan_cidr or None, "rescan_interval": rescan_interval,
            "labels": labels, "site": site}


PollIntervalOpt = typer.Option(None, "--poll-interval", help="Seconds between sweeps (\\[farm] poll_interval).")
MaxPollsOpt = typer.Option(None, "--max-concurrent-polls", help="Polls in flight at most (max_concurrent_polls).")
DeadlineOpt = typer.Option(None, "--poll-deadline", help="Per-device deadline, seconds (poll_deadline).")
ScanOpt = typer.Option([], "--scan", help="CIDR to discover devices in (repeatable; \\[farm] scan).")
RescanOpt = typer.Option(None, "--rescan-interval", help="Seconds between discovery runs (rescan_interval).")
LabelsOpt = typer.Option(None, "--labels", help="CSV cidr,site,rack (\\[farm] labels).")
SiteOpt = typer.Option(None, "--site", help="Site label for devices no rule matches (\\[farm] site).")


async def _wait_progress(svc: FarmService, stop: asyncio.Event, task: asyncio.Task[None], end: float | None,
                         events: tuple[asyncio.Event, ...]) -> bool:
    """Wait for one of `events` (progress to print), the service's end, `stop` (a signal) or `end`; whether
    there is progress to print (False: time to stop)."""
    loop = asyncio.get_running_loop()
    waits = [asyncio.ensure_future(e.wait()) for e in (*events, stop)]
    try:
        await asyncio.wait({*waits, task}, timeout=None if end is None else max(0.0, end - loop.time()),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return not stop.is_set() and any(e.is_set() for e in events)


@app.command()
def run(
    config: Path | None = ConfigOpt,
    db: str = DbOpt,
    scan_cidr: list[str] = ScanOpt,
    webhook_url: str | None = typer.Option(None, "--webhook-url", "--webhook",
                                           help="POST alert changes here (\\[farm] webhook_url)."),
    shard: str = typer.Option("0/1", "--shard", help="Poll only shard i of n (several collectors)."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    web: str | None = typer.Option(None, "--web", help="Also serve the farm page and API on HOST:PORT, "
                                   "e.g. 127.0.0.1:8081 (0.0.0.0:8081 for the LAN: give it a token)."),
    token_file: Path | None = typer.Option(None, "--api-token-file", "--token-file",
                                           help="File holding the bearer token the web actions need (else "
                                           "PITHEAD_FARM_TOKEN or \\[farm] api_token_file)."),
    central: bool = typer.Option(False, "--central", help="Poll nothing: take readings from collectors "
                                 "(`pithead farm collect --forward-url`) on the web API; needs --web."),
    poll_interval: float | None = PollIntervalOpt,
    max_concurrent_polls: int | None = MaxPollsOpt,
    poll_deadline: float | None = DeadlineOpt,
    rescan_interval: float | None = RescanOpt,
    labels: str | None = LabelsOpt,
    site: str | None = SiteOpt,
    price_schedule: str | None = typer.Option(None, "--price-schedule", help="CSV start,price_per_mwh "
                                              "(\\[farm] price_schedule)."),
    strike_price: float | None = typer.Option(None, "--strike-price", help="Curtail above this price per MWh "
                                              "(with a price schedule; \\[farm] strike_price)."),
    partition: str = typer.Option("0/1", "--partition", help="Central at scale: one of N processes on one "
                                  "database (PostgreSQL --db) and one --web port (SO_REUSEPORT): each takes the "
                                  "ingest that reaches it and evaluates the racks of partition i of N."),
    proxy_url: str | None = typer.Option(None, "--proxy-url", help="The farm proxy's API, e.g. "
                                         "http://10.0.0.2:8090: \"hashing but no shares\" from its figures "
                                         "(\\[farm] proxy_url)."),
) -> None:
    """The fleet manager as a service: re-scan, poll, alert, roll up and (with a strike price) curtail.
    Ctrl-C (or SIGTERM) stops it cleanly: the polls in flight finish and are written."""

    web_addr = _web_address(web) if web is not None else None
    if token_file is not None and web_addr is None:
        raise typer.BadParameter("--token-file guards the web endpoints: add --web HOST:PORT")
    try:
        cfg = load(config, overrides={"farm": {
            **_poll_options(poll_interval, max_concurrent_polls, poll_deadline, scan_cidr, rescan_interval, labels,
                            site),
            "webhook_url": webhook_url, "price_schedule": price_schedule, "strike_price": strike_price,
            "central": central or None, "proxy_url": proxy_url}}).farm
        auth = FarmAuth(load_token(token_file=token_file, environ=os.environ, config_token=cfg.api_token,
                                   config_token_file=cfg.api_token_file)) if web_addr else None
    except (ConfigError, FarmAuthError, OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    central = cfg.central
    if central and (web_addr is None or scan_cidr or shard != "0/1"):
        raise typer.BadParameter("--central takes readings from collectors on its web API: give --web HOST:PORT, "
                                 "and scan and shard on the collectors (`pithead farm collect`), not here")
    shard_i, shard_n = _shard(shard)
    part = _shard(partition)
    if part[1] > 1 and not central:
        raise typer.BadParameter("--partition splits a central's work: add --central")
    try:
        setup = FarmSetup.from_config(cfg, role=Role.CENTRAL if central else Role.STANDALONE,
                                      shard=(shard_i, shard_n), partition=part)
    except ValueError as exc:  # FarmConfigError: a label or price file that cannot be used
        raise typer.BadParameter(str(exc)) from exc
    svc_cfg = setup.config

    async def main(stop: asyncio.Event) -> None:
        with _store(db) as store:
            svc = FarmService(store, svc_cfg, prices=setup.prices, labeler=setup.labeler)
            server = (await _serve_web(svc, web_addr, auth, reuse_port=part[1] > 1)
                      if web_addr is not None and auth is not None else None)
            task = asyncio.create_task(svc.run())
            loop = asyncio.get_running_loop()
            end = loop.time() + duration if duration is not None else None
            try:
                while not task.done():
                    if not await _wait_progress(svc, stop, task, end, (svc.swept, svc.scanned, svc.evaluated)):
                        break  # --duration is up, a signal came (or the service ended)
                    if svc.evaluated.is_set():
                        svc.evaluated.clear()
                        console.print(await central_line(svc), markup=False)
                    if svc.scanned.is_set():
                        svc.scanned.clear()
                        if svc.last_scan is not None:
                            console.print(scan_line(svc.last_scan, svc.last_first_poll))
                    if svc.swept.is_set():
                        svc.swept.clear()
                        if svc.last_sweep is not None:
                            waiting = bool(svc_cfg.scan_cidrs) and svc.last_scan is None  # before the await below
                            open_alerts = len(await svc.store.call(FarmStore.open_alerts))
                            console.print(sweep_line(svc.last_sweep, open_alerts, waiting_for_scan=waiting))
            finally:
                svc.stop()
                try:
                    await task
                finally:
                    if server is not None:
                        await server.stop()

    with _farm_logging() if central else contextlib.nullcontext():
        run_command("pithead farm run", main, quiet_stop=True)


async def central_line(svc: FarmService) -> str:
    """The central service's status line after each evaluation tick."""

    tot = svc.ingest.total
    states: dict[str, int] = {}
    for st in await svc.store.call(FarmStore.statuses):
        states[st.state.value] = states.get(st.state.value, 0) + 1
    by_state = ", ".join(f"{v} {k}" for k, v in sorted(states.items())) or "no devices yet"
    return (f"fleet: {by_state}; from {len(svc.ingest.collectors)} collectors: {tot.batches} batches, "
            f"{tot.written} readings written, {tot.duplicates} duplicates and {tot.duplicate_batches} resent "
            f"batches ignored, {tot.refused} refused; {len(await svc.store.call(FarmStore.open_alerts))} open alerts")


class _ConsoleLog(logging.Handler):
    """Log records of the farm's modules as console lines (so the forwarder's warnings reach the operator
    of `pithead farm collect` and `run --central`, and tests see them in the command's output)."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(f"{record.levelname.lower()}: {record.getMessage()}", markup=False)


@contextlib.contextmanager
def _farm_logging() -> Iterator[None]:
    logger = logging.getLogger("pithead.farm")
    handler = _ConsoleLog(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # run_command's root handler would print every line a second time
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def collector_line(rep: SweepReport, fwd_line: str) -> str:
    return (f"{rep.devices} devices in {rep.wall_s:.1f} s: {rep.ok} ok, {rep.timeouts} timeout, "
            f"{rep.unreachable} unreachable, {rep.errors} error; {fwd_line}")


@app.command()
def collect(
    forward: str | None = typer.Option(None, "--forward-url", "--forward", help="The central service's URL, e.g. "
                                       "http://central:8081 (`pithead farm run --central --web ...` there); "
                                       "else \\[farm] forward_url."),
    shard: str = typer.Option("0/1", "--shard", help="Poll shard i of n (each collector its own)."),
    token_file: Path | None = typer.Option(None, "--api-token-file", "--token-file",
                                           help="File holding the central's bearer token "
                                           "(else PITHEAD_FARM_TOKEN or \\[farm] api_token_file / api_token)."),
    config: Path | None = ConfigOpt,
    db: str = typer.Option(DEFAULT_DB, "--db", help="This collector's inventory (SQLite; readings are not kept)."),
    spool: str | None = typer.Option(None, "--spool", help="Spool file for batches the central has not taken "
                                     "yet (default: <db>.spool; ':memory:' keeps it in memory only)."),
    spool_max: int | None = typer.Option(None, "--spool-max-items", "--spool-max", help="Spool bound in readings "
                                         "(oldest dropped beyond it; default 1,500,000: an hour of 25,000 "
                                         "devices; \\[farm] spool_max_items)."),
    scan_cidr: list[str] = ScanOpt,
    interval: float | None = typer.Option(None, "--poll-interval", "--interval",
                                          help="Seconds between sweeps (\\[farm] poll_interval)."),
    max_concurrent_polls: int | None = MaxPollsOpt,
    poll_deadline: float | None = DeadlineOpt,
    rescan_interval: float | None = RescanOpt,
    labels: str | None = LabelsOpt,
    site: str | None = SiteOpt,
    name: str | None = typer.Option(None, "--name", help="Collector name the central shows (default host/iofn)."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
) -> None:
    """A collector: poll shard i/n and forward the readings to a central service (spooled while it is down).
    Ctrl-C (or SIGTERM) stops it cleanly: what was read is spooled, and sent at the next start if the central
    has not taken it."""

    shard_i, shard_n = _shard(shard)
    try:
        cfg = load(config, overrides={"farm": {
            **_poll_options(interval, max_concurrent_polls, poll_deadline, scan_cidr, rescan_interval, labels, site),
            "forward_url": forward, "spool": spool, "spool_max_items": spool_max}}).farm
        setup = FarmSetup.from_config(cfg, role=Role.COLLECTOR, shard=(shard_i, shard_n))
        token = load_token(token_file=token_file, environ=os.environ, config_token=cfg.api_token,
                           config_token_file=cfg.api_token_file)
    except (ConfigError, FarmAuthError, OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    forward = cfg.forward_url
    if not forward:
        raise typer.BadParameter("where to forward: give --forward URL or [farm] forward_url (--forward-url)")
    spool = cfg.spool
    spool_max = cfg.spool_max_items
    who = name or f"{socket.gethostname()[:40]}/{shard_i}of{shard_n}"
    if not 0 < len(who) <= 64 or not who.isprintable():
        raise typer.BadParameter("--name must be 1-64 printable characters")
    spool_path = spool if spool is not None else (db + ".spool" if db != ":memory:" else ":memory:")

    async def main(stop: asyncio.Event) -> None:
        with _store(db) as store:
            try:
                if spool_path != ":memory:":
                    Path(spool_path).parent.mkdir(parents=True, exist_ok=True)
                queue = Spool(spool_path, spool_max if spool_max is not None else SPOOL_MAX_ITEMS)
                fwd = Forwarder(forward, token, queue, who)
            except (ForwardError, OSError) as exc:
                raise typer.BadParameter(str(exc)) from exc
            try:
                svc = FarmService(store, setup.config, labeler=setup.labeler, forwarder=fwd)
                if queue.batches:
                    console.print(f"spool {spool_path}: {queue.batches} batches ({queue.items} items) left from "
                                  "the last run; sending them first", markup=False)
                console.print(f"collector {who}: shard {shard_i}/{shard_n} of {len(store.devices())} devices in "
                              f"{db}, forwarding to {fwd.url} ({'with a token' if token else 'no token'}), "
                              f"spool {spool_path} (bound {queue.max_items} items)", markup=False)
                task = asyncio.create_task(svc.run())
                loop = asyncio.get_running_loop()
                end = loop.time() + duration if duration is not None else None
                try:
                    while not task.done():
                        if not await _wait_progress(svc, stop, task, end, (svc.swept, svc.scanned)):
                            break  # --duration is up, a signal came (or the service ended)
                        if svc.scanned.is_set():
                            svc.scanned.clear()
                            if svc.last_scan is not None:
                                console.print(scan_line(svc.last_scan, svc.last_first_poll), markup=False)
                        if svc.swept.is_set():
                            svc.swept.clear()
                            if svc.last_sweep is not None:
                                console.print(collector_line(svc.last_sweep, fwd.status().line()), markup=False)
                finally:
                    svc.stop()
                    try:
                        await task
                    finally:
                        console.print(f"stopped: {fwd.status().line()}", markup=False)
            finally:
                queue.close()

    with _farm_logging():
        run_command("pithead farm collect", main, quiet_stop=True)


@app.command()
def status(db: str = DbOpt) -> None:
    """Latest status of every device, in site, rack, position and address order (naturally: 2 before 10)."""
    with _store(db) as store:
        t = Table("device", "site", "rack", "pos", "model", "state", "TH/s", "W", "J/TH", "chip °C", "error")
        for st in sorted(store.statuses(), key=status_sort_key):
            r = st.reading
            lab = st.device.labels
            t.add_row(st.device.id, lab.site or "-", lab.rack or "-", lab.position or "-", st.device.identity.model,
                      st.state.value, f"{r.hashrate_ths:.2f}" if r else "-",
                      f"{r.power_w:.0f}" if r and r.power_w is not None else "-",
                      f"{r.efficiency_j_per_th:.1f}" if r and r.efficiency_j_per_th else "-",
                      f"{r.max_chip_temp_c:.0f}" if r and r.max_chip_temp_c is not None else "-",
                      st.error or "")
        _print_table(t)


def _device_id(store: FarmStore, ref: str) -> str:
    """The id of the device `ref` names (its id, IP or IP:port), or a usage error saying why not."""
    try:
        return resolve_device(ref, store.devices())
    except DeviceLookupError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def alerts(db: str = DbOpt, all_: bool = typer.Option(False, "--all", help="Include resolved alerts.")) -> None:
    """Open alerts (or all recent ones)."""
    with _store(db) as store:
        rows = store.alerts() if all_ else store.open_alerts()
        t = Table("id", "opened", "device", "kind", "severity", "message", "resolved")
        for a in rows:
            t.add_row(str(a.id), time.strftime("%H:%M:%S", time.localtime(a.opened_at)), a.device_id, a.kind,
                      a.severity, a.message,
                      time.strftime("%H:%M:%S", time.localtime(a.resolved_at)) if a.resolved_at else "")
        _print_table(t)


@app.command()
def label(device: str, site: str = "", rack: str = "", position: str = "", db: str = DbOpt) -> None:
    """Set the site/rack/position of a device."""

    with _store(db) as store:
        try:
            store.set_labels(_device_id(store, device), Labels(site, rack, position))
        except FarmStoreError as exc:
            raise typer.BadParameter(str(exc)) from exc


@app.command()
def forget(device: str, db: str = DbOpt) -> None:
    """Remove a device from the inventory (a re-scan that finds it again adds it back)."""

    with _store(db) as store:
        store.remove_device(_device_id(store, device))


def _act(db: str, device: str, fn, presets: tuple[PoolPreset, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    """Run the action `fn(service, device_id)` on the device `device` names (its id, IP or IP:port)."""
    with _store(db) as store:
        device_id = _device_id(store, device)
        res = asyncio.run(fn(ActionService(AsyncFarmStore(store), default_drivers(), presets=presets), device_id))
    console.print(f"{res.action} {res.device_id}: {'ok' if res.ok else 'FAILED: ' + str(res.error)} (audit #{res.audit_id})")
    if not res.ok:
        raise typer.Exit(1)


@app.command()
def reboot(device: str, actor: str = typer.Option("cli", "--actor"), db: str = DbOpt) -> None:
    """Reboot a device (audited). DEVICE: its id, IP, or IP:port."""
    _act(db, device, lambda svc, dev: svc.reboot(dev, actor, auth="cli"))


@app.command("switch-pool")
def switch_pool(device: str, index: int | None = typer.Argument(None, help="The device's pool number."),
                preset: str | None = typer.Option(None, "--preset", help="Put this \\[[farm.pool_presets]] on "
                                                  "the device instead (e.g. proxy)."),
                config: Path | None = ConfigOpt, actor: str = typer.Option("cli", "--actor"),
                db: str = DbOpt) -> None:
    """Switch a device (its id, IP, or IP:port) to its pool number INDEX, or to the pools of a named preset
    (`--preset proxy`: the farm proxy, each device keeping its worker name). Audited."""
    if (index is None) == (preset is None):
        raise typer.BadParameter("give the pool number INDEX or --preset NAME (one of them)")
    if preset is not None:
        try:
            presets = load(config).farm.pool_presets
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from exc
        _act(db, device, lambda svc, dev: svc.set_preset(dev, preset, actor, auth="cli"), presets)
        return
    _act(db, device, lambda svc, dev: svc.switch_pool(dev, index, actor, auth="cli"))


@app.command("set-pools")
def set_pools(device: str, pools: list[str] = typer.Argument(..., help="URL,USER[,PASS] per pool."),
              actor: str = typer.Option("cli", "--actor"), db: str = DbOpt) -> None:
    """Replace a device's pool list (audited). DEVICE: its id, IP, or IP:port."""

    try:
        specs = [PoolSpec(*p.split(",", 2)) for p in pools]
    except (DriverError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    _act(db, device, lambda svc, dev: svc.set_pools(dev, specs, actor, auth="cli"))


@app.command()
def audit(db: str = DbOpt, device: str | None = None) -> None:
    """The action audit log (of one device with --device: its id, IP, or IP:port)."""
    with _store(db) as store:
        t = Table("id", "time", "actor", "device", "action", "params", "outcome", "error")
        for a in store.audit_log(_device_id(store, device) if device is not None else None):
            t.add_row(str(a.id), time.strftime("%H:%M:%S", time.localtime(a.time)), a.actor, a.device_id,
                      a.action, str(a.params), a.outcome, a.error or "")
        _print_table(t)


@app.command()
def hashprice(difficulty: float = typer.Option(..., "--difficulty"), btc_price: float = typer.Option(..., "--btc-price"),
              height: int = typer.Option(840_000, "--height"), fees_btc: float = typer.Option(0.0, "--fees-btc")) -> None:
    """Revenue per TH/s per day."""

    hp = hashprice_per_th_day(difficulty, block_subsidy_sat(height) / SAT_PER_BTC, fees_btc, btc_price)
    console.print(f"hashprice {hp:.6f} per TH/s per day ({hp * 1000:.2f} per PH/s per day)")


def _price_now(prices: Path | None, price: float | None) -> float:

    if prices is not None:
        return PriceSchedule.from_csv(prices.read_text()).price_at(time.time())
    if price is None:
        raise typer.BadParameter("give --price or --prices")
    return price


@app.command()
def energy(db: str = DbOpt, price: float | None = typer.Option(None, "--price", help="Price per MWh."),
           prices: Path | None = typer.Option(None, "--prices", help="Price schedule CSV (start,price_per_mwh)."),
           hashprice_th: float | None = typer.Option(None, "--hashprice", help="Revenue per TH/s per day.")) -> None:
    """Power, J/TH, cost and revenue per site and rack."""

    p = _price_now(prices, price)
    with _store(db) as store:
        rep = energy_report(store.statuses(), time.time(), p, hashprice_th)
    # "metered": devices that report power. Stock Antminer firmware does not, so kW, J/TH, cost and profit
    # cover only the metered devices; the column (and the note below) keeps that from passing unseen.
    t = Table("group", "devices", "metered", "TH/s", "kW", "J/TH", "cost/day", "profit/day")
    for line in (rep.fleet, *rep.sites, *rep.racks):
        t.add_row(line.key, str(line.devices), str(line.metered_devices), f"{line.hashrate_ths:.1f}",
                  f"{line.power_w / 1000:.2f}",
                  f"{line.efficiency_j_per_th:.1f}" if line.efficiency_j_per_th else "-",
                  f"{line.cost_per_day:.2f}", f"{line.profit_per_day:.2f}" if line.profit_per_day is not None else "-")
    console.print(f"price {p:.2f}/MWh")
    _print_table(t)
    if rep.fleet.metered_devices < rep.fleet.hashing:
        console.print(f"note: only {rep.fleet.metered_devices} of {rep.fleet.hashing} hashing devices report power; "
                      "kW, J/TH, cost/day and profit/day count those devices only")


@app.command()
def curtail(strike: float = typer.Option(..., "--strike", help="Strike price per MWh."),
            db: str = DbOpt, price: float | None = typer.Option(None, "--price"),
            prices: Path | None = typer.Option(None, "--prices"),
            hashprice_th: float | None = typer.Option(None, "--hashprice"),
            target_kw: float | None = typer.Option(None, "--target-kw"),
            apply: bool = typer.Option(False, "--apply", help="Execute the decision (audited).")) -> None:
    """One curtailment decision at the current price (dry run unless --apply)."""

    p = _price_now(prices, price)
    with _store(db) as store:
        machines = machines_from_statuses(store.statuses(), store.curtailment())
        d = decide(machines, p, time.time(), CurtailmentPolicy(strike, target_kw=target_kw), hashprice_th)
        console.print(f"{d.reason}: power down {len(d.power_down)}, bring back {len(d.power_up)}")
        for dev in d.power_down:
            console.print(f"  down {dev}")
        for dev in d.power_up:
            console.print(f"  up   {dev}")
        if apply and (d.power_down or d.power_up):
            results = asyncio.run(apply_decision(d, ActionService(AsyncFarmStore(store), default_drivers())))
            failed = [r for r in results if not r.ok]
            console.print(f"applied: {len(results) - len(failed)} ok, {len(failed)} failed")


_mount_sim()
app.add_typer(farm_power.app, name="power", help="Power levels per device and site power control (kW).")

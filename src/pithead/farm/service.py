"""The fleet manager as one long-running service: periodic re-scan, polling, alerts, rollups, curtailment.

`FarmService` wires the parts together for `pithead up` and `pithead farm poll`-style daemons:
- discovery: `Scanner.run_periodic` over the configured CIDRs every `rescan_interval_s` (apart from polling);
- polling: `Poller.run` every `poll_interval_s`, results written to the store in batches;
- first read: devices a scan discovers are polled at once (only those -- new to the inventory, back
  after removal, or known but never read -- through the same poller, so its concurrency cap and
  per-device deadline hold across both), so a new device's status is known right after discovery
  instead of "unknown" until the next sweep;
- after each sweep: alert evaluation (with the pool's `ShareActivity` when given, or a farm proxy's figures
  read over its API with `proxy_url`: `pithead.farm.proxy_shares`; webhook sink when given),
  rollups, pruning of old raw readings, and one curtailment step: on/off (`cfg.curtailment`, with a price
  schedule: sleep/wake machines by price), or by power (`cfg.site_power`: `SitePower.step`, a plan towards
  the site's budget -- lowering power targets first -- from the sweep's readings). `site_power` is also
  what the API's site requests go through (one lock: never two at once); while an operator's request
  holds, the service's step keeps the operator's budget (and the on/off step pauses) until it is released
  or expires, then the site comes back up in steps.
The web router over the service is built by the web layer (`pithead.web.farm.service_router`), which
reads the token settings of `FarmServiceConfig`; the service knows nothing of HTTP.
Storage: every store call goes through `self.store`, an `AsyncFarmStore` over the `FarmStore` given,
so SQLite never runs on the event loop (which in `pithead serve` also runs the pool), and the writes of
polling, discovery, actions, ingest and evaluation keep the order they were made in. The caller keeps
the `FarmStore` and closes it once the service (and the web router over it) has stopped.
Settings: `FarmSetup.from_config` maps pithead's `[farm]` config (and the few things a command line or
the demo decides) to the service's settings and reads the label and price files it names -- the one
place that mapping is written.
Roles (`FarmServiceConfig.role`), for fleets spread over several collector processes (see `poller`):
- STANDALONE (default): all of the above against its own store -- one process, or one shard with its own
  database.
- COLLECTOR: scans and polls its shard (`shard`) as above but keeps no readings: every flush of results,
  and every new or changed device of its shard, goes to a `Forwarder` (`pithead.farm.forward`), which
  spools and sends them in order to the central service. Its store holds the inventory only. Alerts,
  rollups and curtailment are the central's job.
- CENTRAL: polls and scans nothing; collectors' batches arrive through `POST /farm/api/ingest` (the
  router's `IngestService`). Every `poll_interval_s` it marks devices no collector has reported for
  `stale_after_s` as unreachable (so a dead collector's shard raises OFFLINE alerts instead of staying
  green; not in the first `stale_after_s` after a start, while collectors drain their spools), evaluates alerts, rolls up (re-rolling buckets that got late readings from a drained spool),
  prunes, and takes a curtailment step -- over the whole fleet. At scale a central is N processes on one
  PostgreSQL database (`partition` i/N, `pithead farm run --central --partition i/N`, one web port shared
  with SO_REUSEPORT): each ingests what reaches it and evaluates the alerts of its partition of the racks;
  partition 0 also marks stale, rolls up, prunes and curtails for the whole fleet (another partition rolls
  up only the buckets of late readings it took).
Every loop runs in one TaskGroup; `stop()` ends them all promptly: a sweep (or first read) in progress
starts no further poll, the polls in flight finish within the per-device deadline and their readings are
written. The service owns no policy of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pithead.config import FarmConfig, PoolPreset
from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.alerts import (
    AlertEvent,
    AlertManager,
    AlertSink,
    AlertThresholds,
    ShareActivity,
    WebhookSink,
)
from pithead.farm.central import IngestService
from pithead.farm.curtailment import CurtailmentPolicy, Machine, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import Driver
from pithead.farm.energy import PriceSchedule
from pithead.farm.forward import Forwarder
from pithead.farm.inventory import DEFAULT_PORTS, PROBE_TIMEOUT_S, Labeler, Scanner, ScanReport
from pithead.farm.model import Device, DeviceState, DriverKind, FarmError, PollResult
from pithead.farm.poller import DEFAULT_DEADLINE_S, DEFAULT_MAX_CONCURRENCY, Poller, SweepReport, select_shard
from pithead.farm.power import PowerController, SiteBudget, SitePower
from pithead.farm.proxy_shares import REMOTE_SNAPSHOT_S, ProxyApiCredits, ProxyShareActivity
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore

log = logging.getLogger(__name__)


# Central: a device none of the collectors has reported for this many poll intervals is marked
# unreachable (its collector is down or cut off). Three intervals: one late sweep is not an outage.
STALE_INTERVALS = 3.0


class Role(enum.StrEnum):
    STANDALONE = "standalone"
    COLLECTOR = "collector"
    CENTRAL = "central"


class ServiceError(FarmError):
    """A service set up in a way that cannot work (a collector without a forwarder, a central that scans)."""


class FarmConfigError(FarmError, ValueError):
    """A label or price file that `[farm]` names cannot be read or used."""


@dataclass(frozen=True)
class FarmServiceConfig:
    scan_cidrs: tuple[str, ...] = ()
    scan_ports: dict[DriverKind, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    rescan_interval_s: float = 900.0  # discovery every 15 min; polling every minute
    poll_interval_s: float = 60.0
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    deadline_s: float = DEFAULT_DEADLINE_S
    shard: tuple[int, int] = (0, 1)
    webhook_url: str | None = None
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    curtailment: CurtailmentPolicy | None = None  # on/off curtailment (`[farm] curtailment = "onoff"`)
    site_power: SiteBudget | None = None  # curtailment by power (`[farm] curtailment = "power"`)
    use_pyasic: bool = False
    # discovery's TCP probe budget per (host, port): a LAN answers a connect in milliseconds (asic-rs settled
    # on 0.5 s); a simulator sharing a loaded machine's event loop may need the identify step's budget
    probe_timeout_s: float = PROBE_TIMEOUT_S
    api_token: str | None = field(default=None, repr=False)  # for the web router's action endpoints
    api_token_file: str | None = None
    role: Role = Role.STANDALONE
    stale_after_s: float | None = None  # central only; None: STALE_INTERVALS x poll_interval_s
    # Alerts for a big site (`pithead.farm.alert_groups`); the defaults judge each machine alone, at once
    alert_group_min: int = 0
    alert_open_after_s: float = 0.0
    alert_clear_after_s: float = 0.0
    # Central at scale: this process evaluates the racks of partition i of n (`rack_partition`); partition 0
    # also marks silent shards stale, rolls up, prunes and curtails for the whole fleet
    partition: tuple[int, int] = (0, 1)
    metrics_per_machine: bool = False  # Prometheus: a series per machine too (the web router reads it)
    # a farm proxy in another process (`pithead proxy run`'s API): "hashing but no shares" from its figures
    proxy_url: str | None = None
    proxy_read_interval_s: float = REMOTE_SNAPSHOT_S
    pool_presets: tuple[PoolPreset, ...] = ()  # named pool lists the pool action can put on a device


@dataclass(frozen=True)
class FarmSetup:
    """What `[farm]` sets up: the service's settings, and the inputs read from the files it names."""

    config: FarmServiceConfig
    labeler: Labeler
    prices: PriceSchedule | None

    @classmethod
    def from_config(cls, fc: FarmConfig, *, role: Role = Role.STANDALONE, scan_cidrs: Sequence[str] | None = None,
                    scan_ports: Mapping[DriverKind, tuple[int, ...]] | None = None, shard: tuple[int, int] = (0, 1),
                    poll_interval_s: float | None = None, rescan_interval_s: float | None = None,
                    webhook_url: str | None = None, labeler: Labeler | None = None,
                    prices: PriceSchedule | None = None, partition: tuple[int, int] = (0, 1)) -> FarmSetup:
        """The service's settings from pithead's `[farm]` config; the keyword arguments are what a command
        line or the demo decides instead (None: the config's). Reads `fc.labels` and `fc.price_schedule`
        unless `labeler` / `prices` are given: blocking file I/O, so async callers run this in a thread.

        By role: a CENTRAL scans nothing (collectors do); a COLLECTOR evaluates nothing, so it gets no
        webhook, no prices and no curtailment. On/off curtailment needs both `strike_price` and a price
        schedule; curtailment by power (`curtailment = "power"`) takes its budgets as they are given.
        Raises `FarmConfigError` for a label or price file that cannot be read or used."""
        try:
            if labeler is None:
                labeler = Labeler.from_csv(Path(fc.labels).read_text(), fc.site) if fc.labels else Labeler((), fc.site)
            if prices is None and fc.price_schedule and role is not Role.COLLECTOR:
                prices = PriceSchedule.from_csv(Path(fc.price_schedule).read_text())
        except (OSError, ValueError) as exc:  # EnergyError and InventoryError are ValueErrors
            raise FarmConfigError(str(exc)) from exc
        evaluates = role is not Role.COLLECTOR
        config = FarmServiceConfig(
            scan_cidrs=() if role is Role.CENTRAL else tuple(fc.scan if scan_cidrs is None else scan_cidrs),
            scan_ports=dict(DEFAULT_PORTS if scan_ports is None else scan_ports),
            rescan_interval_s=fc.rescan_interval if rescan_interval_s is None else rescan_interval_s,
            poll_interval_s=fc.poll_interval if poll_interval_s is None else poll_interval_s,
            max_concurrency=fc.max_concurrent_polls,
            deadline_s=fc.poll_deadline,
            shard=shard,
            webhook_url=(webhook_url or fc.webhook_url) if evaluates else None,
            curtailment=CurtailmentPolicy(fc.strike_price)
            if evaluates and fc.curtailment == "onoff" and fc.strike_price is not None and prices is not None
            else None,
            site_power=SiteBudget(fc.power_budget_kw,
                                  fc.strike_price if fc.strike_budget_kw is not None else None,
                                  fc.strike_budget_kw, fc.power_step_up_kw, fc.power_hold_s)
            if evaluates and fc.curtailment == "power" else None,
            api_token=fc.api_token,
            api_token_file=fc.api_token_file,
            role=role,
            alert_group_min=fc.alert_group_min,
            alert_open_after_s=fc.alert_open_after,
            alert_clear_after_s=fc.alert_clear_after,
            partition=partition,
            metrics_per_machine=fc.metrics_per_machine,
            proxy_url=fc.proxy_url if evaluates else None,
            proxy_read_interval_s=fc.proxy_read_interval,
            pool_presets=fc.pool_presets,
        )
        return cls(config, labeler, prices if evaluates else None)


class FarmService:
    """The fleet manager's loops over one farm database (see the module docstring)."""

    def __init__(self, store: FarmStore, cfg: FarmServiceConfig = FarmServiceConfig(),
                 drivers: dict[DriverKind, Driver] | None = None, shares: ShareActivity | None = None,
                 prices: PriceSchedule | None = None, hashprice: Callable[[], float | None] | None = None,
                 labeler: Labeler = Labeler(), sinks: Sequence[AlertSink] = (),
                 clock: Callable[[], float] = time.time, forwarder: Forwarder | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if (cfg.role is Role.COLLECTOR) != (forwarder is not None):
            raise ServiceError("a collector needs a forwarder, and only a collector has one")
        if cfg.role is Role.CENTRAL and cfg.scan_cidrs:
            raise ServiceError("the central service polls and scans nothing: scan on the collectors")
        self.store = AsyncFarmStore(store)
        self.forwarder = forwarder
        if forwarder is not None:
            forwarder.on_unknown = self._resend_devices
        self.ingest = IngestService(self.store, clock)
        # collector: the inventory last handed to the forwarder, by id -> (address, identity, labels)
        self._sent: dict[str, tuple[object, ...]] = {}
        self._read: set[str] = set()  # collector: devices whose results it has forwarded
        self.cfg = cfg
        self.drivers = drivers or default_drivers()
        self.prices = prices
        self.hashprice = hashprice
        self.clock = clock
        self.poller = Poller(self.drivers, cfg.max_concurrency, cfg.deadline_s, clock)
        self.scanner = Scanner(self.drivers, cfg.scan_ports, labeler, use_pyasic=cfg.use_pyasic, clock=clock,
                               probe_timeout_s=cfg.probe_timeout_s)
        self.actions = ActionService(self.store, self.drivers, clock=clock, presets=cfg.pool_presets)
        # the site's power: the API's site requests and the curtailment step share this (one lock)
        self.site_power = SitePower(PowerController(self.actions, clock=clock, sleep=sleep), cfg.site_power, prices)
        self._webhook = WebhookSink(cfg.webhook_url) if cfg.webhook_url else None
        all_sinks = list(sinks) + ([self._webhook] if self._webhook else [])
        i, n = cfg.partition
        if not 0 <= i < n:
            raise ServiceError(f"partition {i}/{n}: want 0 <= i < n")
        # a proxy in another process: its figures are read in the background by this service (`run`); a
        # reader given by the caller (`pithead up`'s proxy in this process) is run by the caller
        self._own_reader = shares is None and cfg.proxy_url is not None and cfg.role is not Role.COLLECTOR
        if self._own_reader and cfg.proxy_url is not None:
            shares = ProxyShareActivity(ProxyApiCredits(cfg.proxy_url), cfg.proxy_read_interval_s, clock)
        self.share_reader = shares if isinstance(shares, ProxyShareActivity) else None
        self.alerts = AlertManager(cfg.thresholds, shares, all_sinks, group_min=cfg.alert_group_min,
                                   open_after_s=cfg.alert_open_after_s, clear_after_s=cfg.alert_clear_after_s)
        self._stop = asyncio.Event()
        self.last_sweep: SweepReport | None = None
        self.last_scan: ScanReport | None = None
        self.last_first_poll: SweepReport | None = None  # the read of the devices the last scan discovered
        self.swept = asyncio.Event()  # set after every sweep (for callers that wait on progress)
        self.scanned = asyncio.Event()  # set after every scan, once its new devices have been read
        self.first_polled = asyncio.Event()  # set after every read of newly discovered devices
        self.evaluated = asyncio.Event()  # central: set after every evaluation tick
        self.power_stepped = asyncio.Event()  # set after every step of curtailment by power (run or skipped)
        self._up_since: float | None = None  # central: when run() started (no stale marks before a grace)
        self._curtail_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self._stop.set()

    def shares_status(self) -> dict[str, object]:
        """Where "hashing but no shares" comes from, and why it cannot be judged now (None: it can)."""
        reader = self.share_reader
        return {"configured": self.alerts.shares is not None,
                "source": reader.source.where if reader is not None else None,
                "problem": self.alerts.shares_problem or (reader.problem if reader is not None else None),
                "read_at": reader.read_at if reader is not None else None,
                "machines": reader.status()["machines"] if reader is not None else None}

    async def _sink(self, results: Sequence[PollResult]) -> None:
        """Where poll results go: the forwarder (collector) or the store."""
        if self.forwarder is not None:
            self.forwarder.submit_results(results)
            self._read.update(r.device_id for r in results)
        else:
            await self.store.call(FarmStore.write_results, results)

    async def shard_devices(self) -> list[Device]:
        """This service's shard of the inventory; a collector first forwards what changed in it."""
        i, n = self.cfg.shard
        devices = select_shard(await self.store.call(FarmStore.devices), i, n)
        if self.forwarder is not None:
            self._forward_inventory(devices)
        return devices

    def _forward_inventory(self, devices: Sequence[Device]) -> None:
        """Hand new devices, and known ones whose identity or labels changed, to the forwarder (before the
        readings of the sweep that follows, so the central knows a device before its first reading)."""
        assert self.forwarder is not None
        changed = [d for d in devices if self._sent.get(d.id) != (d.address, d.identity, d.labels)]
        if changed:
            self.forwarder.submit_devices(changed)
            self._sent.update((d.id, (d.address, d.identity, d.labels)) for d in changed)

    def _resend_devices(self, ids: Sequence[str]) -> None:
        """The central said it does not know these devices (e.g. its database was replaced): send them again
        (their readings in that batch were refused; the next sweep's arrive after the devices). The
        forwarder calls this in its loop; the inventory is read from the store in a task of its own."""
        want = set(ids)
        for device_id in want:
            self._sent.pop(device_id, None)
        log.warning("central does not know %d of our devices; sending them again", len(want))
        self._spawn(self._resend(want))

    async def _resend(self, want: set[str]) -> None:
        i, n = self.cfg.shard
        devices = await self.store.call(FarmStore.devices)
        self._forward_inventory([d for d in select_shard(devices, i, n) if d.id in want])

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until done (the loop only holds weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _on_scan(self, rep: ScanReport) -> None:
        # Read at once: devices new to the inventory (or back after removal), and known ones never read
        # yet (e.g. a first read cut short by a stop). (statuses() is served from the store's cache.)
        # (A collector keeps no statuses: it remembers which devices it has read.)
        read = self._read if self.forwarder is not None else {
            st.device.id for st in await self.store.call(FarmStore.statuses) if st.state is not DeviceState.UNKNOWN}
        new = await self.store.call(FarmStore.upsert_devices, rep.found)
        log.info("scan: %d devices (%d new), %d unidentified", len(rep.found), new, len(rep.failures))
        i, n = self.cfg.shard
        discovered = [d for d in select_shard(rep.found, i, n) if d.id not in read]
        if self.forwarder is not None:
            await self.shard_devices()  # forward the scan's new and changed devices before their first read
        if discovered:
            await self._first_poll(discovered)
        self.last_scan = rep  # set with `scanned`: a scan counts once its devices are in the inventory
        self.scanned.set()

    async def _first_poll(self, devices: Sequence[Device]) -> None:
        """Read just-discovered devices now (not a sweep of the fleet: only these, unpaced, each under the
        poller's deadline and sharing its concurrency cap with a periodic sweep that may be running)."""
        report, _ = await self.poller.sweep(devices, self._sink, stop=self._stop)
        self.last_first_poll = report
        self.first_polled.set()
        log.info("first read of %d new devices: %d ok, %d timeouts, %d unreachable, %d errors",
                 report.devices, report.ok, report.timeouts, report.unreachable, report.errors)

    async def _after_sweep(self, rep: SweepReport) -> None:
        self.last_sweep = rep
        self.swept.set()
        if self.forwarder is None:  # a collector leaves alerts, history and curtailment to the central
            await self._evaluate(self.clock())

    async def _evaluate(self, now: float, redo_since: float | None = None) -> None:
        """Alerts, rollups and pruning in one call on the store's thread; then the alert changes go to the
        sinks, and (with a policy and prices) a curtailment step starts."""
        self.alerts.deliver(await self.store.call(self._evaluate_store, now, redo_since))
        if self._curtail_lock.locked() or self.cfg.partition[0] != 0:
            return  # the last step is still being carried out, or another partition curtails
        if self.site_power.active:  # by power, or an operator's site request holding (or being released)
            self._spawn(self.power_step())
        elif self.cfg.curtailment is not None and self.prices is not None:
            self._spawn(self.curtail_step(now))

    def _evaluate_store(self, store: FarmStore, now: float, redo_since: float | None) -> list[AlertEvent]:
        i, n = self.cfg.partition
        events = self.alerts.evaluate(store, now, store.partition_statuses(i, n) if n > 1 else None)
        if i == 0 or redo_since is not None:  # another partition rolls up only the late readings it took
            store.rollup(now, redo_since=redo_since)
        if i == 0:
            store.prune(now)
        return events

    async def power_step(self) -> None:
        """One step of curtailment by power (`SitePower.step`: an operator's hold, else the service's own
        budget), applied through audited actions; skipped while an operator's request is running."""
        async with self._curtail_lock:
            try:
                await self.site_power.step()
            except Exception:
                log.exception("site power step failed")
            finally:
                self.power_stepped.set()

    async def curtail_step(self, now: float) -> None:
        """One on/off curtailment decision at the scheduled price, applied through audited actions (not
        while an operator's site power request holds: it would undo it)."""
        if self.cfg.curtailment is None or self.prices is None or self.site_power.active:
            return
        async with self._curtail_lock:
            machines = await self.store.call(_curtailment_inputs)
            hp = self.hashprice() if self.hashprice is not None else None
            d = decide(machines, self.prices.price_at(now), now, self.cfg.curtailment, hp)
            if d.power_down or d.power_up:
                log.info("curtailment: %s: down %d, up %d", d.reason, len(d.power_down), len(d.power_up))
                await apply_decision(d, self.actions)

    async def central_tick(self) -> list[str]:
        """Central: one evaluation over the whole fleet (stale marks, alerts, rollups, pruning, curtailment).
        Returns the devices newly marked stale."""
        now = self.clock()
        stale_after = self.cfg.stale_after_s or STALE_INTERVALS * self.cfg.poll_interval_s
        marked: list[str] = []
        # Just after a (re)start every stored status is as old as the central's own outage: the collectors
        # get stale_after to deliver their spools before anyone is judged silent (no alert storm).
        if self.cfg.partition[0] == 0 and (self._up_since is None or now - self._up_since >= stale_after):
            marked = await self.store.call(FarmStore.mark_stale, now - stale_after,
                                           f"no reading forwarded for {stale_after:.0f} s "
                                           "(its collector is down or cut off)")
        if marked:
            log.warning("%d devices have had no reading forwarded for %.0f s: marked unreachable", len(marked),
                        stale_after)
        await self._evaluate(now, redo_since=self.ingest.take_redo_since())
        self.evaluated.set()
        return marked

    async def _central_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            tick = loop.time()
            try:
                await self.central_tick()
            except Exception:
                log.exception("central evaluation failed")
            wait = tick + self.cfg.poll_interval_s - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._stop.wait()

    async def run(self) -> None:
        """Run until stop(): scanning (if CIDRs are configured) and polling, each on its own schedule; or,
        central, the evaluation tick; a collector's forwarder beside them, stopped last so the results
        of the polls in flight at the stop are spooled and sent too."""
        if self._webhook is not None:
            self._webhook.start()
        forwarding = asyncio.Event()  # set: the forwarder stops (after the poller has flushed)
        self._up_since = self.clock()
        try:
            async with asyncio.TaskGroup() as outer:
                if self.forwarder is not None:
                    outer.create_task(self.forwarder.run(forwarding))
                try:
                    async with asyncio.TaskGroup() as tg:
                        if self.cfg.role is Role.CENTRAL:
                            tg.create_task(self._central_loop())
                        else:
                            if self.cfg.scan_cidrs:
                                tg.create_task(self.scanner.run_periodic(
                                    self.cfg.scan_cidrs, self.cfg.rescan_interval_s, self._on_scan, self._stop))
                            tg.create_task(self.poller.run(self.shard_devices, self.cfg.poll_interval_s,
                                                           self._sink, self._after_sweep, self._stop))
                        if self._own_reader and self.share_reader is not None:
                            tg.create_task(self.share_reader.run(self._stop))
                finally:
                    forwarding.set()
        finally:
            if self._webhook is not None:
                await self._webhook.aclose()


def _curtailment_inputs(store: FarmStore) -> list[Machine]:
    return machines_from_statuses(store.statuses(), store.curtailment())

"""The fleet manager as one long-running service: periodic re-scan, polling, alerts, rollups, curtailment.

`FarmService` wires the parts together for `pithead up` and `pithead farm poll`-style daemons:
- discovery: `Scanner.run_periodic` over the configured CIDRs every `rescan_interval_s` (apart from polling);
- polling: `Poller.run` every `poll_interval_s`, results written to the store in batches;
- first read: devices a scan discovers are polled at once (only those -- new to the inventory, back
  after removal, or known but never read -- through the same poller, so its concurrency cap and
  per-device deadline hold across both), so a new device's status is known right after discovery
  instead of "unknown" until the next sweep;
- after each sweep: alert evaluation (with the pool's `ShareActivity` when given; webhook sink when given),
  rollups, pruning of old raw readings, and -- with a policy and a price schedule -- one curtailment step;
- `router()` gives the web router for the main app to mount; who may use its action endpoints comes from
  PITHEAD_FARM_TOKEN (read here, as `pithead up` builds the router through this method) or else the
  config's `api_token_file` / `api_token`; with none, actions are allowed on loopback connections only
  (see `pithead.web.farm`).
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
  prunes, and takes a curtailment step -- over the whole fleet.
Every loop runs in one TaskGroup; `stop()` ends them all promptly: a sweep (or first read) in progress
starts no further poll, the polls in flight finish within the per-device deadline and their readings are
written. The service owns no policy of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.alerts import AlertManager, AlertSink, AlertThresholds, ShareActivity, WebhookSink
from pithead.farm.central import IngestService
from pithead.farm.curtailment import CurtailmentPolicy, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import Driver
from pithead.farm.energy import PriceSchedule
from pithead.farm.forward import Forwarder
from pithead.farm.inventory import DEFAULT_PORTS, Labeler, Scanner, ScanReport
from pithead.farm.model import Device, DeviceState, DriverKind, FarmError, PollResult
from pithead.farm.poller import DEFAULT_DEADLINE_S, DEFAULT_MAX_CONCURRENCY, Poller, SweepReport, select_shard
from pithead.farm.store import FarmStore

if TYPE_CHECKING:
    from fastapi import APIRouter

    from pithead.web.farm import FarmAuth

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
    curtailment: CurtailmentPolicy | None = None
    use_pyasic: bool = False
    api_token: str | None = field(default=None, repr=False)  # for the web router's action endpoints
    api_token_file: str | None = None
    role: Role = Role.STANDALONE
    stale_after_s: float | None = None  # central only; None: STALE_INTERVALS x poll_interval_s


class FarmService:
    def __init__(self, store: FarmStore, cfg: FarmServiceConfig = FarmServiceConfig(),
                 drivers: dict[DriverKind, Driver] | None = None, shares: ShareActivity | None = None,
                 prices: PriceSchedule | None = None, hashprice: Callable[[], float | None] | None = None,
                 labeler: Labeler = Labeler(), sinks: Sequence[AlertSink] = (),
                 clock: Callable[[], float] = time.time, forwarder: Forwarder | None = None) -> None:
        if (cfg.role is Role.COLLECTOR) != (forwarder is not None):
            raise ServiceError("a collector needs a forwarder, and only a collector has one")
        if cfg.role is Role.CENTRAL and cfg.scan_cidrs:
            raise ServiceError("the central service polls and scans nothing: scan on the collectors")
        self.store = store
        self.forwarder = forwarder
        if forwarder is not None:
            forwarder.on_unknown = self._resend_devices
        self.ingest = IngestService(store, clock)
        # collector: the inventory last handed to the forwarder, by id -> (address, identity, labels)
        self._sent: dict[str, tuple[object, ...]] = {}
        self._read: set[str] = set()  # collector: devices whose results it has forwarded
        self.cfg = cfg
        self.drivers = drivers or default_drivers()
        self.prices = prices
        self.hashprice = hashprice
        self.clock = clock
        self.poller = Poller(self.drivers, cfg.max_concurrency, cfg.deadline_s, clock)
        self.scanner = Scanner(self.drivers, cfg.scan_ports, labeler, use_pyasic=cfg.use_pyasic, clock=clock)
        self.actions = ActionService(store, self.drivers, clock=clock)
        self._webhook = WebhookSink(cfg.webhook_url) if cfg.webhook_url else None
        all_sinks = list(sinks) + ([self._webhook] if self._webhook else [])
        self.alerts = AlertManager(store, cfg.thresholds, shares, all_sinks)
        self._stop = asyncio.Event()
        self.last_sweep: SweepReport | None = None
        self.last_scan: ScanReport | None = None
        self.last_first_poll: SweepReport | None = None  # the read of the devices the last scan discovered
        self.swept = asyncio.Event()  # set after every sweep (for callers that wait on progress)
        self.scanned = asyncio.Event()  # set after every scan, once its new devices have been read
        self.first_polled = asyncio.Event()  # set after every read of newly discovered devices
        self.evaluated = asyncio.Event()  # central: set after every evaluation tick
        self._up_since: float | None = None  # central: when run() started (no stale marks before a grace)
        self._curtail_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def router(self, notes: Mapping[str, str] | None = None, auth: FarmAuth | None = None) -> APIRouter:
        """The web router. Without `auth`, the token comes from the environment (PITHEAD_FARM_TOKEN) or
        the config's token settings; a bad one raises `FarmAuthError` here, before anything is served."""
        from pithead.web.farm import FarmAuth, load_token, make_router

        if auth is None:
            auth = FarmAuth(load_token(environ=os.environ, config_token=self.cfg.api_token,
                                       config_token_file=self.cfg.api_token_file))
        return make_router(self.store, self.actions, self.prices, self.hashprice, self.clock, notes=notes, auth=auth,
                           ingest=self.ingest)

    def stop(self) -> None:
        self._stop.set()

    def _sink(self, results: Sequence[PollResult]) -> None:
        """Where poll results go: the forwarder (collector) or the store."""
        if self.forwarder is not None:
            self.forwarder.submit_results(results)
            self._read.update(r.device_id for r in results)
        else:
            self.store.write_results(results)

    def shard_devices(self) -> list[Device]:
        """This service's shard of the inventory; a collector first forwards what changed in it."""
        i, n = self.cfg.shard
        devices = select_shard(self.store.devices(), i, n)
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
        (their readings in that batch were refused; the next sweep's arrive after the devices)."""
        want = set(ids)
        for device_id in want:
            self._sent.pop(device_id, None)
        log.warning("central does not know %d of our devices; sending them again", len(want))
        i, n = self.cfg.shard
        self._forward_inventory([d for d in select_shard(self.store.devices(), i, n) if d.id in want])

    async def _on_scan(self, rep: ScanReport) -> None:
        self.last_scan = rep
        # Read at once: devices new to the inventory (or back after removal), and known ones never read
        # yet (e.g. a first read cut short by a stop). (statuses() is served from the store's cache.)
        # (A collector keeps no statuses: it remembers which devices it has read.)
        read = self._read if self.forwarder is not None else {
            st.device.id for st in self.store.statuses() if st.state is not DeviceState.UNKNOWN}
        new = self.store.upsert_devices(rep.found)
        log.info("scan: %d devices (%d new), %d unidentified", len(rep.found), new, len(rep.failures))
        i, n = self.cfg.shard
        discovered = [d for d in select_shard(rep.found, i, n) if d.id not in read]
        if self.forwarder is not None:
            self.shard_devices()  # forward the scan's new and changed devices before their first read
        if discovered:
            await self._first_poll(discovered)
        self.scanned.set()

    async def _first_poll(self, devices: Sequence[Device]) -> None:
        """Read just-discovered devices now (not a sweep of the fleet: only these, unpaced, each under the
        poller's deadline and sharing its concurrency cap with a periodic sweep that may be running)."""
        report, _ = await self.poller.sweep(devices, self._sink, stop=self._stop)
        self.last_first_poll = report
        self.first_polled.set()
        log.info("first read of %d new devices: %d ok, %d timeouts, %d unreachable, %d errors",
                 report.devices, report.ok, report.timeouts, report.unreachable, report.errors)

    def _after_sweep(self, rep: SweepReport) -> None:
        self.last_sweep = rep
        self.swept.set()
        if self.forwarder is None:  # a collector leaves alerts, history and curtailment to the central
            self._evaluate(self.clock())

    def _evaluate(self, now: float, redo_since: float | None = None) -> None:
        self.alerts.run_once(now)
        self.store.rollup(now, redo_since=redo_since)
        self.store.prune(now)
        if self.cfg.curtailment is not None and self.prices is not None and not self._curtail_lock.locked():
            task = asyncio.get_running_loop().create_task(self.curtail_step(now))
            self._tasks.add(task)  # keep a reference until done (the loop only holds weak ones)
            task.add_done_callback(self._tasks.discard)

    async def curtail_step(self, now: float) -> None:
        """One curtailment decision at the scheduled price, applied through audited actions."""
        if self.cfg.curtailment is None or self.prices is None:
            return
        async with self._curtail_lock:
            machines = machines_from_statuses(self.store.statuses(), self.store.curtailment())
            hp = self.hashprice() if self.hashprice is not None else None
            d = decide(machines, self.prices.price_at(now), now, self.cfg.curtailment, hp)
            if d.power_down or d.power_up:
                log.info("curtailment: %s: down %d, up %d", d.reason, len(d.power_down), len(d.power_up))
                await apply_decision(d, self.actions)

    def central_tick(self) -> list[str]:
        """Central: one evaluation over the whole fleet (stale marks, alerts, rollups, pruning, curtailment).
        Returns the devices newly marked stale."""
        now = self.clock()
        stale_after = self.cfg.stale_after_s or STALE_INTERVALS * self.cfg.poll_interval_s
        marked: list[str] = []
        # Just after a (re)start every stored status is as old as the central's own outage: the collectors
        # get stale_after to deliver their spools before anyone is judged silent (no alert storm).
        if self._up_since is None or now - self._up_since >= stale_after:
            marked = self.store.mark_stale(now - stale_after, f"no reading forwarded for {stale_after:.0f} s "
                                                              "(its collector is down or cut off)")
        if marked:
            log.warning("%d devices have had no reading forwarded for %.0f s: marked unreachable", len(marked),
                        stale_after)
        self._evaluate(now, redo_since=self.ingest.take_redo_since())
        self.evaluated.set()
        return marked

    async def _central_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            tick = loop.time()
            try:
                self.central_tick()
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
                finally:
                    forwarding.set()
        finally:
            if self._webhook is not None:
                await self._webhook.aclose()

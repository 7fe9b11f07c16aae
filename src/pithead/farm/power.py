"""Site power control: the asyncio shell around `curtailment.plan_power`.

`PowerController` turns the store's latest statuses and each device's power capability (asked through
its driver once and kept) into the policy's inputs, executes a plan through the audited `ActionService`
(set a level, sleep, wake; sleep state recorded with `FarmStore.set_curtailed`), and runs "bring the site
to X kW within Y s": plan, act, re-read the site's devices (a poll through the same drivers), and plan
again from fresh readings until the site is at or under the budget or the time is up. Going down is
done at once; coming back up goes in steps of the policy's `max_step_up_w`, one per re-read.

`SitePower` is the one authority over a site's power inside a running service: the operator's requests
("bring the site to X kW within Y s", from the API) and the service's own curtailment step (a standing
budget, and/or a budget while the price is above the strike) share one lock and one controller, so two
site requests never run at once. An operator's request *holds*: until it is released (`release`, the
API's DELETE) or its hold expires, the service's step keeps the site at the operator's budget instead of
its own; after that, the service's budget applies again and the site comes back up in steps
(`SiteBudget.step_up_kw` per step). Each service step is one plan from the latest readings (the poller's
sweep), executed through the audited actions; a device whose command failed is not commanded again for
`RETRY_FAILED_S`. The request and its release are audit rows of their own (device id `site:NAME`,
`site:*` for every device).

Time and waiting are parameters (`clock`, `sleep`), so a simulated fleet can be driven in simulated
time. This module decides nothing itself (`curtailment`) and has no HTTP/CLI surface (`web.farm_power`,
`cli.farm_power`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pithead.farm.actions import MAX_PARALLEL_ACTIONS, ActionResult, ActionService
from pithead.farm.curtailment import (
    CurtailmentError,
    PowerMachine,
    PowerPlan,
    PowerPolicy,
    PowerStep,
    plan_power,
)
from pithead.farm.drivers.base import DriverError
from pithead.farm.energy import PriceSchedule
from pithead.farm.model import Device, DeviceState, PowerCapability
from pithead.farm.poller import Poller
from pithead.farm.protocol.errors import CodecError
from pithead.farm.store import DeviceStatus, FarmStore

log = logging.getLogger(__name__)

# One capability query (a few API requests) must answer within this.
CAPABILITY_TIMEOUT_S = 10.0
# Capabilities kept (one per device); a device's range does not change between firmware updates.
MAX_CACHED_CAPABILITIES = 1_000_000
# How often "bring the site to X kW" re-reads the site while it waits for the firmware to settle.
SETTLE_POLL_S = 5.0
# "Within Y s" is bounded: a grid program's event lasts minutes to hours, not days.
MAX_WITHIN_S = 3600.0
# The draw of a sleeping unit (control board and fans; fleetsim's MULTI_BOARD_BEHAVIOUR).
SLEEP_IDLE_W = 25.0
# After we set a level, the firmware takes time to get there (LuxOS ramps, a Whatsminer or a Bitaxe
# restarts: up to ~3.6 min). Within this grace a unit reading away from its new level, or not answering,
# is counted at the level it was given -- re-planning from the old reading would command it again and, on
# LuxOS, restart its ramp for ever.
COMMAND_GRACE_S = 300.0
# A reading this far from the level set still counts as "there" (fans, PSU losses, noise).
LEVEL_TOLERANCE = 0.03
# An operator's site request holds against the service's own budget this long unless released (a grid
# event lasts an hour or a few), and at most MAX_HOLD_S: a forgotten hold must not curtail a site for ever.
DEFAULT_HOLD_S = 3600.0
MAX_HOLD_S = 7 * 86_400.0
# Largest site budget (10 GW): anything bigger is a unit mistake.
MAX_SITE_KW = 10_000_000.0
# The service's step: a device whose command failed is left alone this long (a locked Whatsminer, a stock
# unit that cannot sleep would otherwise be re-asked, and audited as failed, every sweep).
RETRY_FAILED_S = 900.0
# Prices hover around a strike; the budget above it lifts only once the price is this far below (as the
# on/off policy's default hysteresis), so a site does not go down and up every sweep.
PRICE_HYSTERESIS_PER_MWH = 5.0


class PowerControlError(ValueError):
    """A site power request that cannot be carried out as asked (bad kW, bad time, unknown site)."""


class SiteBusy(PowerControlError):
    """An operator's site request is already running (one at a time)."""


@dataclass(frozen=True, slots=True)
class SiteReport:
    budget_kw: float | None
    site: str
    reached: bool
    elapsed_s: float  # from the first command until the site read at or under the budget (or gave up)
    site_kw: float  # as last read
    rounds: int
    plans: tuple[PowerPlan, ...]
    failed: tuple[ActionResult, ...]


class PowerController:
    def __init__(self, actions: ActionService, policy: PowerPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 parallel: int = MAX_PARALLEL_ACTIONS, idle_w: float = SLEEP_IDLE_W) -> None:
        self.actions = actions
        self.store = actions.store
        self.policy = policy or PowerPolicy()
        self.clock = clock
        self.sleep = sleep
        self.parallel = parallel
        self.idle_w = idle_w
        self._caps: OrderedDict[str, PowerCapability] = OrderedDict()
        self._levels: dict[str, float] = {}  # levels we set (absent: the top of the range)
        self._set_at: dict[str, float] = {}  # when we set them
        self.pending: set[str] = set()  # after `machines`: units not yet at the level we gave them

    async def capability(self, device: Device) -> PowerCapability | None:
        """The device's power range (asked once); None when it cannot say (unreachable, no driver)."""
        cap = self._caps.get(device.id)
        if cap is not None:
            return cap
        driver = self.actions.drivers.get(device.address.driver)
        if driver is None:
            return None
        try:
            async with asyncio.timeout(CAPABILITY_TIMEOUT_S):
                cap = await driver.power_capability(device.address)
        except (TimeoutError, DriverError, CodecError, OSError):
            return None
        self._caps[device.id] = cap
        while len(self._caps) > MAX_CACHED_CAPABILITIES:
            self._caps.popitem(last=False)
        return cap

    async def _site_statuses(self, site: str) -> list[DeviceStatus]:
        statuses = await self.store.call(FarmStore.statuses)
        return [s for s in statuses if not site or s.device.labels.site == site]

    async def machines(self, site: str = "") -> list[PowerMachine]:
        """The policy's inputs for a site ("" = every device): devices that are up or asleep by our hand."""
        statuses = await self._site_statuses(site)
        curtailed = await self.store.call(FarmStore.curtailment)
        sem = asyncio.Semaphore(self.parallel)

        now = self.clock()
        pending: set[str] = set()

        async def one(st: DeviceStatus) -> PowerMachine | None:
            dev = st.device.id
            asleep = curtailed.get(dev, (False, 0.0))[0]
            level = self._levels.get(dev)
            settling = level is not None and now - self._set_at.get(dev, -COMMAND_GRACE_S) < COMMAND_GRACE_S
            r = st.reading
            power = None if asleep or r is None else r.power_w
            if not asleep and st.state is not DeviceState.OK:
                if not settling:
                    return None  # a failing device is the alerts' business, not a curtailment lever
                pending.add(dev)  # restarting to apply our level (Whatsminer, AxeOS): it comes back there
                power = level
            elif settling and level is not None and power is not None and abs(power - level) > level * LEVEL_TOLERANCE:
                pending.add(dev)  # still ramping to it (down or up)
                power = level
            async with sem:
                cap = await self.capability(st.device)
            if cap is None:
                return None
            return PowerMachine(dev, cap, power, r.efficiency_j_per_th if r else None, asleep, level, self.idle_w)

        got = await asyncio.gather(*(one(s) for s in statuses))
        self.pending = pending
        return [m for m in got if m is not None]

    async def plan(self, budget_kw: float | None, site: str = "", fixed: frozenset[str] = frozenset(),
                   policy: PowerPolicy | None = None) -> PowerPlan:
        return plan_power(await self.machines(site), budget_kw, policy or self.policy, fixed)

    async def apply(self, plan: PowerPlan, actor: str, auth: str | None = None) -> list[ActionResult]:
        """Execute a plan's steps (bounded parallelism), each audited; returns every action's result."""
        sem = asyncio.Semaphore(self.parallel)
        results: list[ActionResult] = []

        async def one(step: PowerStep) -> None:
            async with sem:
                if step.action == "set":
                    res = await self.actions.set_power(step.device_id, step.watts, actor, auth)
                    if res.ok and res.power is not None:
                        self._levels[step.device_id] = res.power.expected_w
                        self._set_at[step.device_id] = self.clock()
                    results.append(res)
                    return
                on = step.action == "wake"
                res = await self.actions.set_mining(step.device_id, on, actor, auth)
                results.append(res)
                if res.ok:
                    await self.store.call(FarmStore.set_curtailed, step.device_id, not on, self.clock())
                    cap = self._caps.get(step.device_id)
                    if on and cap is not None and cap.adjustable and step.watts < cap.max_w \
                            and self._levels.get(step.device_id) != step.watts:
                        res = await self.actions.set_power(step.device_id, step.watts, actor, auth)
                        results.append(res)
                        if res.ok and res.power is not None:
                            self._levels[step.device_id] = res.power.expected_w
                            self._set_at[step.device_id] = self.clock()

        async with asyncio.TaskGroup() as tg:
            for step in plan.steps:
                tg.create_task(one(step))
        return results

    async def refresh(self, site: str = "") -> None:
        """Re-read the site's devices through their drivers, into the store."""
        devices = [s.device for s in await self._site_statuses(site)]
        await Poller(self.actions.drivers).sweep(devices, lambda rs: self.store.call(FarmStore.write_results, rs))

    async def bring_to(self, budget_kw: float | None, within_s: float, actor: str, auth: str | None = None,
                       site: str = "", settle_poll_s: float = SETTLE_POLL_S,
                       policy: PowerPolicy | None = None) -> SiteReport:
        """Bring the site to `budget_kw` (None: back to full power) within `within_s` seconds (`policy`:
        this request's, e.g. its step-up pace; default the controller's)."""
        if budget_kw is not None and not (0 <= budget_kw < 10_000_000):
            raise PowerControlError(f"bad site power {budget_kw!r} kW")
        if not (0 < within_s <= MAX_WITHIN_S):
            raise PowerControlError(f"'within' must be in (0, {MAX_WITHIN_S:g}] s, got {within_s!r}")
        if site and not await self._site_statuses(site):
            raise PowerControlError(f"no device is labelled with site {site!r}")
        start = self.clock()
        plans: list[PowerPlan] = []
        failed: list[ActionResult] = []
        rounds = 0
        stuck: set[str] = set()  # devices whose command failed in this request: not commanded again
        while True:
            plan = await self.plan(budget_kw, site, frozenset(stuck), policy)
            plans.append(plan)
            settled = not plan.steps and not self.pending
            done = settled and (budget_kw is None or plan.site_w <= budget_kw * 1000.0)
            elapsed = self.clock() - start
            if done or elapsed >= within_s:
                return SiteReport(budget_kw, site, done, elapsed, plan.site_w / 1000.0, rounds, tuple(plans),
                                  tuple(failed))
            if plan.steps:
                rounds += 1
                bad = [r for r in await self.apply(plan, actor, auth) if not r.ok]
                failed.extend(bad)
                stuck.update(r.device_id for r in bad)
            await self.sleep(min(settle_poll_s, max(0.0, within_s - (self.clock() - start))))
            await self.refresh(site)


def site_machines_report(machines: Sequence[PowerMachine]) -> dict[str, float]:
    """Site figures from the policy's inputs: draw (kW) and the range it could be brought down to."""
    draw = sum(m.idle_w if m.asleep else (m.power_w if m.power_w is not None else m.capability.max_w)
               for m in machines)
    floor = sum(m.capability.min_w if m.capability.adjustable else m.capability.max_w for m in machines)
    return {"machines": float(len(machines)), "site_kw": draw / 1000.0, "floor_kw": floor / 1000.0,
            "asleep": float(sum(m.asleep for m in machines))}


# ---------------------------------------------------------------------------------------------------
# The site's power inside a running service


@dataclass(frozen=True, slots=True)
class SiteBudget:
    """The service's own budget (`[farm] curtailment = "power"`): a standing budget, and/or a budget while
    the price is above `strike_price_per_mwh`; the lower applies. Neither: full power (an operator's
    request still holds). `step_up_kw`: coming back up, at most this much per step (None: at once)."""

    budget_kw: float | None = None
    strike_price_per_mwh: float | None = None
    strike_budget_kw: float | None = None
    step_up_kw: float | None = None
    hold_s: float = DEFAULT_HOLD_S

    def __post_init__(self) -> None:
        for name in ("budget_kw", "strike_budget_kw"):
            kw = getattr(self, name)
            if kw is not None and not 0 <= kw <= MAX_SITE_KW:
                raise PowerControlError(f"{name} must be from 0 to {MAX_SITE_KW:g} kW, not {kw!r}")
        if self.step_up_kw is not None and not 0 < self.step_up_kw <= MAX_SITE_KW:
            raise PowerControlError(f"step_up_kw must be more than 0, not {self.step_up_kw!r}")
        if not 0 < self.hold_s <= MAX_HOLD_S:
            raise PowerControlError(f"hold_s must be in (0, {MAX_HOLD_S:g}] s, not {self.hold_s!r}")
        if (self.strike_budget_kw is None) != (self.strike_price_per_mwh is None):
            raise PowerControlError("strike_budget_kw and strike_price_per_mwh go together")


@dataclass(frozen=True, slots=True)
class Hold:
    """An operator's site request, holding until `until` (or a release)."""

    budget_kw: float | None
    site: str
    actor: str
    auth: str | None
    since: float
    until: float
    step_up_kw: float | None
    within_s: float


Source = Literal["hold", "budget", "price", "none"]


@dataclass(frozen=True, slots=True)
class SiteState:
    """The site as the last step (the service's or an operator's request) saw it, and what it planned."""

    time: float
    budget_kw: float | None
    source: Source  # whose budget: an operator's hold, the standing budget, the price's, or none
    price_per_mwh: float | None
    machines: int
    site_kw: float  # measured (stand-ins where a machine reports no power) before the plan's steps
    planned_kw: float
    lowered: int  # machines below the top of their range, once the plan is carried out
    asleep: int  # machines asleep by our hand, once the plan is carried out
    settling: int  # machines still on their way to a level they were given
    plan: PowerPlan
    failed: int  # commands of this step that failed


def _counts(machines: Sequence[PowerMachine], plan: PowerPlan) -> tuple[int, int]:
    """(lowered, asleep) once the plan's steps are carried out."""
    level = {m.device_id: m.level_w for m in machines}
    asleep = {m.device_id for m in machines if m.asleep}
    for s in plan.steps:
        if s.action == "sleep":
            asleep.add(s.device_id)
        else:
            asleep.discard(s.device_id)
            level[s.device_id] = s.watts
    lowered = sum(1 for m in machines if m.device_id not in asleep and m.capability.adjustable
                  and (lv := level[m.device_id]) is not None and lv < m.capability.max_w)
    return lowered, len(asleep)


class SitePower:
    """One authority over the site's power (see the module docstring): the operator's requests and the
    service's own step, under one lock, through one `PowerController`.

    `budget` None, or one with no kW of its own: the service does not curtail by power itself (on/off
    mode, or power mode for operators' requests only); it still drives the site while an operator's
    request holds and, once released, until the site is back at full power."""

    def __init__(self, controller: PowerController, budget: SiteBudget | None = None,
                 prices: PriceSchedule | None = None, actor: str = "curtailment") -> None:
        self.controller = controller
        self.budget = budget
        self.prices = prices
        self.actor = actor
        self.lock = asyncio.Lock()  # one site request at a time: an operator's, or the service's step
        self.hold: Hold | None = None
        self.task: asyncio.Task[None] | None = None  # an operator's request being carried out
        self.request: dict[str, object] | None = None  # that request as asked (for the API)
        self.report: SiteReport | str | None = None  # its outcome (a string: why it could not run)
        self.state: SiteState | None = None
        self.released: tuple[str, float] | None = None  # (who, when) the last hold was released
        self._restoring = False  # a hold was released: drive the site back (on/off mode too)
        self._above_strike = False
        self._failed: dict[str, float] = {}  # device -> when its last command failed

    @property
    def clock(self) -> Callable[[], float]:
        return self.controller.clock

    @property
    def drives(self) -> bool:
        """Whether the service has a budget of its own (a standing one, or one above the strike)."""
        b = self.budget
        return b is not None and (b.budget_kw is not None or b.strike_budget_kw is not None)

    @property
    def active(self) -> bool:
        """Whether the service's step has anything to do: its own budget, a hold, or a release to finish."""
        return self.drives or self.hold is not None or self._restoring

    def policy(self, step_up_kw: float | None) -> PowerPolicy:
        return replace(self.controller.policy, max_step_up_w=step_up_kw * 1000.0 if step_up_kw else None)

    def own_budget(self, now: float) -> tuple[float | None, Source, float | None]:
        """The service's budget at `now`: (kW or None, its source, the price then)."""
        b = self.budget
        price = self.prices.price_at(now) if self.prices is not None else None
        if b is None:
            return None, "none", price
        kw = b.budget_kw
        src: Source = "budget" if b.budget_kw is not None else "none"
        if b.strike_budget_kw is not None and b.strike_price_per_mwh is not None and price is not None:
            if price > b.strike_price_per_mwh:
                self._above_strike = True
            elif price <= b.strike_price_per_mwh - PRICE_HYSTERESIS_PER_MWH:
                self._above_strike = False
            if self._above_strike and (kw is None or b.strike_budget_kw < kw):
                kw, src = b.strike_budget_kw, "price"
        return kw, src, price

    def _expire(self, now: float) -> None:
        if self.hold is not None and now >= self.hold.until and (self.task is None or self.task.done()):
            self.hold = None
            self.released = ("expiry", now)
            self._restoring = True

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start_request(self, budget_kw: float | None, within_s: float, actor: str, auth: str | None = None,
                            site: str = "", step_up_kw: float | None = None,
                            hold_s: float | None = None) -> PowerPlan:
        """An operator's "bring the site to X kW within Y s" (None: full power), holding for `hold_s`
        (default the budget's, else DEFAULT_HOLD_S) unless released. Plans before it returns (the first
        plan), then carries it out in a task of its own; raises `SiteBusy` while another request runs,
        `PowerControlError` for a bad request (nothing is then audited or sent)."""
        if self.running:
            raise SiteBusy("a site power request is already running: release it first (DELETE) or wait")
        hold_s = hold_s if hold_s is not None else (self.budget.hold_s if self.budget else DEFAULT_HOLD_S)
        if not 0 < hold_s <= MAX_HOLD_S:
            raise PowerControlError(f"hold_s must be in (0, {MAX_HOLD_S:g}] s, got {hold_s!r}")
        if not 0 < within_s <= MAX_WITHIN_S:
            raise PowerControlError(f"'within' must be in (0, {MAX_WITHIN_S:g}] s, got {within_s!r}")
        if step_up_kw is not None and not 0 < step_up_kw <= MAX_SITE_KW:
            raise PowerControlError(f"step_up_kw must be more than 0, got {step_up_kw!r}")
        policy = self.policy(step_up_kw)
        machines = await self.controller.machines(site)
        if site and not machines:
            raise PowerControlError(f"no device is labelled with site {site!r}")
        try:
            first = plan_power(machines, budget_kw, policy)
        except CurtailmentError as exc:
            raise PowerControlError(str(exc)) from exc
        now = self.clock()
        store = self.controller.store
        params: dict[str, object] = {"kw": budget_kw, "within_s": within_s, "hold_s": hold_s, "site": site,
                                     "step_up_kw": step_up_kw, **({"auth": auth} if auth is not None else {})}
        audit_id = await store.call(FarmStore.audit_begin, actor, site_audit_id(site), "site_power", params, now)
        self.hold = Hold(budget_kw, site, actor, auth, now, now + hold_s, step_up_kw, within_s)
        self._restoring = False
        self.request = params
        self.report = None
        started = asyncio.Event()

        async def run() -> None:
            started.set()
            outcome: str = "failed"
            error: str | None = "released before the site got there"
            try:
                async with self.lock:
                    rep = await self.controller.bring_to(budget_kw, within_s, actor, auth, site=site, policy=policy)
                    self.report = rep
                    outcome, error = ("ok", None) if rep.reached else (
                        "failed", f"the site read {rep.site_kw:.2f} kW after {rep.elapsed_s:.0f} s")
                    self._record(await self.controller.machines(site), rep.plans[-1], "hold", None,
                                 len(rep.failed), budget_kw)
            except PowerControlError as exc:
                self.report = str(exc)
                outcome, error = "invalid", str(exc)
            except Exception as exc:  # a store or driver fault: said in the report and the audit, not lost
                log.exception("site power request failed")
                self.report = f"{type(exc).__name__}: {exc}"
                error = self.report
            finally:
                await asyncio.shield(store.call(FarmStore.audit_end, audit_id, outcome, error, self.clock()))

        self.task = asyncio.get_running_loop().create_task(run())
        await started.wait()
        return first

    async def release(self, actor: str, auth: str | None = None) -> Hold | None:
        """End the operator's hold now (stopping its request if it is still running); the service's own
        budget applies again at its next step, and the site comes back up in steps. Audited. Returns the
        hold released (None: there was none)."""
        task, hold = self.task, self.hold
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if hold is None:
            return None
        now = self.clock()
        self.hold = None
        self.released = (actor, now)
        self._restoring = True
        params: dict[str, object] = {"kw": hold.budget_kw, "site": hold.site, "held_by": hold.actor,
                                     **({"auth": auth} if auth is not None else {})}
        store = self.controller.store
        audit_id = await store.call(FarmStore.audit_begin, actor, site_audit_id(hold.site), "site_release", params, now)
        await store.call(FarmStore.audit_end, audit_id, "ok", None, now)
        return hold

    async def step(self) -> PowerPlan | None:
        """The service's step: one plan towards the budget that applies now (an operator's hold, else
        the service's own), carried out through the audited actions. Skipped (None) while an operator's
        request runs, and when there is nothing to drive."""
        if self.lock.locked() or self.running:
            return None
        async with self.lock:
            now = self.clock()
            self._expire(now)
            site = ""
            src: Source
            if self.hold is not None:
                kw, src, price = self.hold.budget_kw, "hold", None
                if self.prices is not None:
                    price = self.prices.price_at(now)
                policy, site = self.policy(self.hold.step_up_kw), self.hold.site
            elif self.drives or self._restoring:
                kw, src, price = self.own_budget(now)
                policy = self.policy(self.budget.step_up_kw if self.budget else None)
            else:
                return None
            fixed = frozenset(d for d, t in self._failed.items() if now - t < RETRY_FAILED_S)
            ctl = self.controller
            machines = await ctl.machines(site)
            plan = plan_power(machines, kw, policy, fixed)
            failed = 0
            if plan.steps:
                log_steps = {s.action for s in plan.steps}
                log.info("site power: %s (%d steps: %s)", plan.reason, len(plan.steps), ", ".join(sorted(log_steps)))
                for res in await ctl.apply(plan, self.actor):
                    if not res.ok:
                        failed += 1
                        self._failed[res.device_id] = now
            for d in [d for d, t in self._failed.items() if now - t >= RETRY_FAILED_S]:
                del self._failed[d]
            if self._restoring and self.hold is None and (self.drives or (not plan.steps and not ctl.pending)):
                # the service's own budget drives the site from here; or, with none, it is back at full
                # power (on/off mode: the on/off step decides again)
                self._restoring = False
            self._record(machines, plan, src, price, failed, kw)
            return plan

    def _record(self, machines: Sequence[PowerMachine], plan: PowerPlan, src: Source, price: float | None,
                failed: int, kw: float | None) -> None:
        lowered, asleep = _counts(machines, plan)
        self.state = SiteState(self.clock(), kw, src, price, len(machines), plan.site_w / 1000.0, plan.planned_w / 1000.0,
                               lowered, asleep, len(self.controller.pending), plan, failed)


def site_audit_id(site: str) -> str:
    """The audit log's device id for a site request: `site:NAME`, `site:*` for every device."""
    return f"site:{site or '*'}"

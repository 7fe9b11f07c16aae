"""Site power control: the asyncio shell around `curtailment.plan_power`.

`PowerController` turns the store's latest statuses and each device's power capability (asked through
its driver once and kept) into the policy's inputs, executes a plan through the audited `ActionService`
(set a level, sleep, wake; sleep state recorded with `FarmStore.set_curtailed`), and runs "bring the site
to X kW within Y s": plan, act, re-read the site's devices (a poll through the same drivers), and plan
again from fresh readings until the site is at or under the budget or the time is up. Going down is
done at once; coming back up goes in steps of the policy's `max_step_up_w`, one per re-read.

Time and waiting are parameters (`clock`, `sleep`), so a simulated fleet can be driven in simulated
time. This module decides nothing itself (`curtailment`) and has no HTTP/CLI surface (`web.farm_power`,
`cli.farm_power`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pithead.farm.actions import MAX_PARALLEL_ACTIONS, ActionResult, ActionService
from pithead.farm.curtailment import PowerMachine, PowerPlan, PowerPolicy, PowerStep, plan_power
from pithead.farm.drivers.base import DriverError
from pithead.farm.model import Device, DeviceState, PowerCapability
from pithead.farm.poller import Poller
from pithead.farm.protocol.errors import CodecError
from pithead.farm.store import DeviceStatus, FarmStore

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


class PowerControlError(ValueError):
    """A site power request that cannot be carried out as asked (bad kW, bad time, unknown site)."""


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

    async def plan(self, budget_kw: float | None, site: str = "", fixed: frozenset[str] = frozenset()) -> PowerPlan:
        return plan_power(await self.machines(site), budget_kw, self.policy, fixed)

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
                       site: str = "", settle_poll_s: float = SETTLE_POLL_S) -> SiteReport:
        """Bring the site to `budget_kw` (None: back to full power) within `within_s` seconds."""
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
            plan = await self.plan(budget_kw, site, frozenset(stuck))
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

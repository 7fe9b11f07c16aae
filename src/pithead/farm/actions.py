"""Audited device actions: reboot, switch pool, set pool list (or a named preset of one, e.g. the farm
proxy: `set_preset`), sleep/wake -- and applying curtailment.

Every action is written to the audit log *before* it is sent (outcome "pending"), then completed with
"ok", "failed" (device said no, timed out, unreachable) or "invalid" (refused before sending). So a
crash mid-action still leaves a trace, and the log answers "who rebooted rack 7 at 03:12". Each action
runs under its own deadline through the device's own API (the driver), never through a side channel.
The actor is whatever name the caller gives; `auth`, when the caller passes it, says what let the action
through (the web router passes "token" or "loopback", the CLI "cli") and is kept in the row's params
under "auth", so the log also answers "on what authority".

`set_power` sets a power level through the firmware's own API (LuxOS profile, Whatsminer power limit,
AxeOS frequency/voltage, pyasic's set_power_limit); the audit row's params keep the watts asked, and the
result carries the level the firmware took.

`apply_decision` executes a curtailment `Decision` with bounded parallelism; a device that cannot sleep
over its API (stock cgminer, AxeOS) is recorded as failed and left running, never marked curtailed.

This module does NOT decide anything (see `curtailment`), and has no HTTP/CLI surface of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pithead.config import PoolPreset
from pithead.farm.curtailment import Decision, Machine
from pithead.farm.drivers.base import Driver, DriverError, PoolSpec, check_pool_list
from pithead.farm.model import DriverKind, FarmError, PowerTarget
from pithead.farm.protocol.errors import CodecError
from pithead.farm.store import DeviceStatus, FarmStore, FarmStoreError
from pithead.farm.store_async import AsyncFarmStore

# Deadline per action: a reboot/switch is one or a few requests; set_pools on cgminer is ~2N+2 requests.
ACTION_DEADLINE_S = 15.0
# Devices commanded at once when applying a curtailment step (each is a few connections).
MAX_PARALLEL_ACTIONS = 64
# Actor names are shown in the audit log; bounded like labels.
MAX_ACTOR_LEN = 64
# No single machine draws more than this; a bigger figure is a typo (kW for W), refused before sending.
MAX_DEVICE_WATTS = 100_000.0


class ActionError(FarmError):
    """An action request that is invalid before anything is sent."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    audit_id: int
    device_id: str
    action: str
    ok: bool
    error: str | None = None
    power: PowerTarget | None = None  # set_power: the level the firmware took


class ActionService:
    """Audited actions; the audit rows are written through `store` (off the event loop, in order)."""

    def __init__(self, store: AsyncFarmStore, drivers: Mapping[DriverKind, Driver],
                 deadline_s: float = ACTION_DEADLINE_S, clock: Callable[[], float] = time.time,
                 presets: Sequence[PoolPreset] = ()) -> None:
        self.store = store
        self.drivers = drivers
        self.deadline_s = deadline_s
        self.clock = clock
        self.presets = {p.name: p for p in presets}

    async def _run(self, actor: str, device_id: str, action: str, params: dict[str, Any],
                   fn: Callable[[Driver, Any], Any], check: Callable[[], None] | None = None,
                   auth: str | None = None) -> ActionResult:
        if not actor or len(actor) > MAX_ACTOR_LEN or any(ord(c) < 32 for c in actor):
            raise ActionError(f"bad actor {actor!r}")
        if auth is not None:
            if not auth or len(auth) > MAX_ACTOR_LEN or any(ord(c) < 32 for c in auth):
                raise ActionError(f"bad auth {auth!r}")
            params = {**params, "auth": auth}
        audit_id = await self.store.call(FarmStore.audit_begin, actor, device_id, action, params, self.clock())
        try:
            device = await self.store.call(FarmStore.device, device_id)
            if check is not None:
                check()
            driver = self.drivers.get(device.address.driver)
            if driver is None:
                raise ActionError(f"no driver for {device.address.driver}")
        except (FarmStoreError, ActionError, DriverError) as exc:
            await self.store.call(FarmStore.audit_end, audit_id, "invalid", str(exc), self.clock())
            return ActionResult(audit_id, device_id, action, False, str(exc))
        try:
            async with asyncio.timeout(self.deadline_s):
                await fn(driver, device.address)
        except TimeoutError:
            err = f"no answer within {self.deadline_s:g} s"
        except (DriverError, CodecError, OSError) as exc:
            err = f"{type(exc).__name__}: {exc}"
        else:
            await self.store.call(FarmStore.audit_end, audit_id, "ok", None, self.clock())
            return ActionResult(audit_id, device_id, action, True)
        await self.store.call(FarmStore.audit_end, audit_id, "failed", err, self.clock())
        return ActionResult(audit_id, device_id, action, False, err)

    async def reboot(self, device_id: str, actor: str, auth: str | None = None) -> ActionResult:
        return await self._run(actor, device_id, "reboot", {}, lambda d, a: d.reboot(a), auth=auth)

    async def switch_pool(self, device_id: str, index: int, actor: str, auth: str | None = None) -> ActionResult:
        def check() -> None:
            if index < 0:
                raise ActionError(f"bad pool index {index}")

        return await self._run(actor, device_id, "switch_pool", {"index": index},
                               lambda d, a: d.switch_pool(a, index), check, auth)

    async def set_pools(self, device_id: str, pools: Sequence[PoolSpec], actor: str,
                        auth: str | None = None) -> ActionResult:
        # Passwords are not written to the audit log.
        params = {"pools": [{"url": p.url, "user": p.user} for p in pools]}
        def check() -> None:
            check_pool_list(pools)

        return await self._run(actor, device_id, "set_pools", params, lambda d, a: d.set_pools(a, pools), check,
                               auth)

    async def set_preset(self, device_id: str, name: str, actor: str, auth: str | None = None) -> ActionResult:
        """Put the pool list of preset `name` (`[[farm.pool_presets]]`) on a device: audited as set_pools
        with the preset's name. Its `{worker}` is the device's own current worker name (from its latest
        reading), so a farm proxy knows each machine by the name the farm knows it by. An unknown preset, or
        `{worker}` on a device whose worker is not known, is refused before anything is sent (and audited)."""
        preset = self.presets.get(name)
        worker = await self.store.call(_worker_of, device_id)
        pools: list[PoolSpec] = []
        problem: str | None = None
        if preset is None:
            known = ", ".join(sorted(self.presets)) or "none configured: [[farm.pool_presets]]"
            problem = f"no pool preset named {name!r} (known: {known})"
        elif "{worker}" in preset.user and not worker:
            problem = (f"preset {name!r} keeps each device's worker name ({preset.user!r}), and this device's is "
                       "not known yet (no reading with a pool): give the preset a user, or poll the device first")
        else:
            try:
                user = preset.user.replace("{worker}", worker or "")
                pools = [PoolSpec(url, user, preset.password) for url in preset.urls]
            except DriverError as exc:
                problem = f"preset {name!r}: {exc}"
        params = {"preset": name, "pools": [{"url": p.url, "user": p.user} for p in pools]}

        def check() -> None:
            if problem is not None:
                raise ActionError(problem)
            check_pool_list(pools)

        return await self._run(actor, device_id, "set_pools", params, lambda d, a: d.set_pools(a, pools), check,
                               auth)

    async def set_power(self, device_id: str, watts: float, actor: str, auth: str | None = None) -> ActionResult:
        """Set a device's power level (the highest its firmware offers at or below `watts`), audited."""
        got: list[PowerTarget] = []

        def check() -> None:
            if not (0 < watts <= MAX_DEVICE_WATTS):  # NaN fails this too
                raise ActionError(f"bad power target {watts!r} W (want 0 < W <= {MAX_DEVICE_WATTS:g})")

        async def go(d: Driver, a: Any) -> None:
            got.append(await d.set_power(a, watts))

        res = await self._run(actor, device_id, "set_power", {"watts": watts}, go, check, auth)
        return dataclasses.replace(res, power=got[0]) if res.ok and got else res

    async def set_mining(self, device_id: str, on: bool, actor: str, auth: str | None = None) -> ActionResult:
        return await self._run(actor, device_id, "wake" if on else "sleep", {},
                               lambda d, a: d.set_mining(a, on), auth=auth)


def _worker_of(store: FarmStore, device_id: str) -> str | None:
    """The worker name a device mines as now (its latest reading's), if known."""
    for st in store.statuses():
        if st.device.id == device_id:
            return st.reading.worker if st.reading is not None else None
    return None


def machines_from_statuses(statuses: Sequence[DeviceStatus], curtailed: Mapping[str, tuple[bool, float]]) -> list[Machine]:
    """Policy inputs from the store: devices that are up (or curtailed by us), with last known power."""
    out = []
    for st in statuses:
        is_off, since = curtailed.get(st.device.id, (False, 0.0))
        if not is_off and st.state.value != "ok":
            continue  # a failing device is not a curtailment candidate; alerts deal with it
        r = st.reading
        out.append(Machine(st.device.id, r.efficiency_j_per_th if r else None, r.power_w if r else None,
                           is_off, since))
    return out


async def apply_decision(decision: Decision, actions: ActionService, actor: str = "curtailment",
                         parallel: int = MAX_PARALLEL_ACTIONS) -> list[ActionResult]:
    """Sleep/wake the machines of a decision; record curtailment state for those that obeyed."""
    sem = asyncio.Semaphore(parallel)
    results: list[ActionResult] = []

    async def one(device_id: str, on: bool) -> None:
        async with sem:
            res = await actions.set_mining(device_id, on, actor)
        results.append(res)
        if res.ok:
            await actions.store.call(FarmStore.set_curtailed, device_id, not on, actions.clock())

    async with asyncio.TaskGroup() as tg:
        for d in decision.power_down:
            tg.create_task(one(d, False))
        for d in decision.power_up:
            tg.create_task(one(d, True))
    return results

"""`pithead bench curtail`: curtailment by power targets against curtailment by on/off, on a simulated site.

Two identical simulated fleets (same seed and mix), each served on loopback and driven through the farm's
own drivers and audited actions, are asked to shed the same load: to `--fraction` of the site's draw.
- power targets: `PowerController.bring_to` (levels lowered on the least efficient machines first, sleep
  only past the bottom of a range), then back to full power in steps of `--step-up-kw`;
- on/off: the existing price policy (`curtailment.decide` with a demand-response target), executed with
  `apply_decision` (sleep/wake).
The simulator's clock is manual: firmware delays (a LuxOS profile ramps 5 MHz/s, a Bitaxe restarts to
apply a frequency, sleep is immediate here, waking takes 10–20 s) pass in simulated seconds, sampled
each second from the simulator's own meter (`Fleet.totals`). Printed per approach: the simulated
seconds until the site's draw is at or under the asked level, the wall time the commands took, the kW
reached and the hashrate kept (TH/s and % of full). Figures only; nothing here asserts a speed.

Whatsminers are left out of the default mix: our cgminer driver does not read them and pyasic needs
ports 80/4028 per address (their power limit is tested with pyasic in tests/fleetsim).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from pithead.farm.actions import ActionService, apply_decision, machines_from_statuses
from pithead.farm.curtailment import CurtailmentPolicy, PowerPolicy, decide
from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.poller import Poller
from pithead.farm.power import PowerController
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family
from pithead.fleetsim.server import FleetServer

DEFAULT_MIX = "s19jpro-lux:3,s19xp-lux:2,s19xp:3,s21:1,bitaxe-gamma:1"
SAMPLE_S = 1.0  # the site meter is read every simulated second


class Site:
    """One simulated fleet, served, with a farm store and actions over it, and a site meter."""

    def __init__(self, n: int, mix: str, seed: int) -> None:
        self.clock = ManualClock()
        self.fleet = Fleet.build(n, mix=mix, seed=seed, clock=self.clock)
        self.srv = FleetServer(self.fleet, api_port=0, web_port=0, bind="shared")
        self.store = FarmStore(":memory:")
        self.samples: list[tuple[float, float, float]] = []  # (sim t, kW, TH/s)

    async def start(self) -> None:
        await self.srv.start()
        api, web = self.srv.bound_ports()
        self.devices = [
            Device(DeviceAddress(d.ip, web if d.spec.family is Family.BITAXE else api,
                                 DriverKind.AXEOS if d.spec.family is Family.BITAXE else DriverKind.CGMINER),
                   Identity("sim", d.spec.key), Labels(site="bench"))
            for d in self.fleet]
        self.store.upsert_devices(self.devices)
        self.shared = AsyncFarmStore(self.store)
        self.actions = ActionService(self.shared, default_drivers(antminer_web_port=web), clock=self.fleet.now)
        await self.poll()

    async def poll(self) -> None:
        await Poller(self.actions.drivers).sweep(self.devices, lambda rs: self.shared.call(FarmStore.write_results, rs))

    def meter(self) -> tuple[float, float]:
        t = self.fleet.totals()
        self.samples.append((self.fleet.now(), t["power_kw"], t["hashrate_ths"]))
        return t["power_kw"], t["hashrate_ths"]

    async def sim_sleep(self, dt: float) -> None:
        """Let simulated time pass, reading the site meter every simulated second."""
        left = dt
        while left > 0:
            step = min(SAMPLE_S, left)
            self.clock.advance(step)
            self.meter()
            left -= step
        await asyncio.sleep(0)

    async def close(self) -> None:
        await self.srv.close()
        self.store.close()


def first_at_or_under(samples: list[tuple[float, float, float]], t0: float, kw: float) -> float | None:
    for t, p, _ in samples:
        if t >= t0 and p <= kw:
            return t - t0
    return None


def first_within(samples: list[tuple[float, float, float]], t0: float, kw: float, rel: float) -> float | None:
    for t, p, _ in samples:
        if t >= t0 and abs(p - kw) <= kw * rel:
            return t - t0
    return None


async def _timed(coro: Awaitable[object]) -> float:
    t = time.perf_counter()
    await coro
    return time.perf_counter() - t


async def run(n: int, mix: str, seed: int, fraction: float, within_s: float, hold_s: float,
              step_up_kw: float, out: Callable[[str], None]) -> None:
    # --- power targets
    a = Site(n, mix, seed)
    await a.start()
    try:
        full_kw, full_ths = a.meter()
        target = round(full_kw * fraction, 1)
        out(f"site: {n} machines ({mix}), full draw {full_kw:.1f} kW, {full_ths:.1f} TH/s; "
            f"asked: {target:.1f} kW ({fraction:.0%}) within {within_s:.0f} s")
        ctl = PowerController(a.actions, PowerPolicy(max_step_up_w=step_up_kw * 1000.0), clock=a.fleet.now,
                              sleep=a.sim_sleep)
        t0 = a.fleet.now()
        wall = time.perf_counter()
        rep = await ctl.bring_to(target, within_s, "bench", auth="bench", site="bench")
        wall = time.perf_counter() - wall
        await a.sim_sleep(hold_s)
        kw_a, ths_a = a.meter()
        reach_a = first_at_or_under(a.samples, t0, target)
        cmds = sum(len(p.steps) for p in rep.plans)
        sleeps = sum(1 for p in rep.plans for s in p.steps if s.action == "sleep")
        out(f"power targets: at or under {target:.1f} kW after {reach_a if reach_a is not None else float('nan'):.0f} s "
            f"simulated ({rep.rounds} rounds, {cmds} commands of which {sleeps} sleeps, {len(rep.failed)} failed; "
            f"{wall:.2f} s wall); holds {kw_a:.1f} kW, {ths_a:.1f} TH/s = {ths_a / full_ths:.1%} of full "
            f"({kw_a * 1000 / max(ths_a, 1e-9):.1f} J/TH)")
        t1 = a.fleet.now()
        up = await ctl.bring_to(None, 1800.0, "bench", auth="bench", site="bench")
        await a.sim_sleep(30.0)
        back = first_within(a.samples, t1, full_kw, 0.02)
        out(f"back up in steps of {step_up_kw:g} kW: within 2 % of full after "
            f"{back if back is not None else float('nan'):.0f} s simulated ({up.rounds} rounds)")
    finally:
        await a.close()

    # --- on/off, the same kW
    b = Site(n, mix, seed)
    await b.start()
    try:
        full_b, full_ths_b = b.meter()
        # the price policy sheds by the machines' last readings (stock units count at its stand-in draw), so
        # it is run like the power controller: decide, act, read the meter, shed the shortfall, up to 5 times
        shed_kw = full_b - target
        t0 = b.fleet.now()
        wall = 0.0
        asleep = 0
        for _ in range(5):
            await b.poll()
            machines = machines_from_statuses(b.store.statuses(), b.store.curtailment())
            decision = decide(machines, 1000.0, b.fleet.now(), CurtailmentPolicy(
                strike_price_per_mwh=50.0, target_kw=shed_kw, min_on_s=0.0, max_switches_per_step=10 * n))
            if not decision.power_down:
                break
            wall += await _timed(apply_decision(decision, b.actions, actor="bench"))
            asleep += len(decision.power_down)
            await b.sim_sleep(5.0)
            over = b.meter()[0] - target
            if over <= 0:
                break
            shed_kw += over
        results_failed = sum(1 for a_ in b.store.audit_log() if a_.outcome != "ok")
        await b.sim_sleep(hold_s)
        kw_b, ths_b = b.meter()
        reach_b = first_at_or_under(b.samples, t0, target)
        out(f"on/off: {asleep} machines asleep ({results_failed} could not sleep: AxeOS has no "
            f"sleep); at or under {target:.1f} kW after "
            f"{reach_b if reach_b is not None else float('nan'):.0f} s simulated ({wall:.2f} s wall); holds "
            f"{kw_b:.1f} kW, {ths_b:.1f} TH/s = {ths_b / full_ths_b:.1%} of full")
        if ths_b > 0:
            out(f"power targets keep {ths_a / ths_b:.2f}x the hashrate of on/off at {kw_a:.1f} vs {kw_b:.1f} kW "
                f"({ths_a / kw_a:.2f} vs {ths_b / kw_b:.2f} TH/s per kW)")
    finally:
        await b.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench curtail", description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--mix", default=DEFAULT_MIX)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=0.6, help="asked level as a fraction of the site's draw")
    ap.add_argument("--within", type=float, default=300.0, help="seconds the power-target request is given")
    ap.add_argument("--hold", type=float, default=60.0, help="simulated seconds to hold before reading the result")
    ap.add_argument("--step-up-kw", type=float, default=100.0, help="coming back up: kW per step")
    args = ap.parse_args(argv)
    if not 0 < args.fraction < 1:
        raise SystemExit("--fraction must be between 0 and 1")
    asyncio.run(run(args.devices, args.mix, args.seed, args.fraction, args.within, args.hold, args.step_up_kw,
                    print))

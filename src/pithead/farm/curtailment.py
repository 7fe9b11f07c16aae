"""Curtailment policy: which machines to power down when electricity is dear, and which to bring back.

Pure: `decide(machines, price, now, policy, hashprice)` returns a `Decision`; nothing here touches a
device (the audited shell is `pithead.farm.actions.apply_decision`).

The rule, in order:
1. Price above the strike price -> power down running machines, least efficient (highest J/TH) first.
   - With a hashprice, only machines that lose money at this price (break-even below it) go down.
   - With a demand-response target (`target_kw`), stop once that much load is shed (already curtailed
     machines count towards it).
   - A machine started less than `min_on_s` ago is left alone (no flapping).
2. Price at or below the resume price (strike minus hysteresis) -> bring curtailed machines back, most
   efficient first, each only after `min_off_s` off.
3. In between -> hold.
Every step changes at most `max_switches_per_step` machines: a site does not drop or add megawatts in one
step (utility ramp limits, PSU inrush), and a mistake is bounded.

Machines that report no power (stock S19/S19 XP) have no measured J/TH; they are ranked with
`unknown_efficiency_j_per_th` (an S19-class figure by default) and `unknown_power_w`, so they are neither
spared nor shed first by accident.

Curtailment by power (`plan_power`), the other policy here: keep a site at or under a power budget by
lowering power targets (LuxOS profiles, Whatsminer power limits, AxeOS frequency/voltage; see
`pithead.farm.model.PowerCapability`), sleeping a machine only past the bottom of its range, and bring it
back up in bounded steps. See `plan_power` for the order.

Field experience worth knowing: some S19 XP units did not come back after curtailment (chips not found
on restart). The resume path therefore goes through the normal poller, which will raise BOARD_MISSING.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pithead.farm.energy import breakeven_price_per_mwh
from pithead.farm.model import FarmError, PowerCapability


class CurtailmentError(FarmError, ValueError):
    """A policy that cannot be applied (resume price above strike, ...)."""


@dataclass(frozen=True, slots=True)
class Machine:
    """What the policy needs to know about one machine."""

    device_id: str
    efficiency_j_per_th: float | None
    power_w: float | None  # last known draw (for a curtailed machine: the draw before it went down)
    curtailed: bool
    since: float  # when it last changed between running and curtailed (0 = never)


@dataclass(frozen=True, slots=True)
class CurtailmentPolicy:
    strike_price_per_mwh: float
    # Resume only once the price is this far below the strike: prices hover around a strike, machines
    # should not.
    hysteresis_per_mwh: float = 5.0
    # Ramp limit per decision step (see module docstring).
    max_switches_per_step: int = 500
    # Anti-flapping: a machine stays off / on at least this long after a change (pool change and wake
    # from sleep take 10 s - 3 min on real firmware).
    min_off_s: float = 300.0
    min_on_s: float = 300.0
    # Demand response: shed at least this many kW when above strike (None: shed every candidate).
    target_kw: float | None = None
    # Ranking stand-ins for machines that report no power (S19 class: ~34 J/TH, 3250 W).
    unknown_efficiency_j_per_th: float = 34.0
    unknown_power_w: float = 3250.0

    def __post_init__(self) -> None:
        if self.hysteresis_per_mwh < 0 or self.max_switches_per_step < 1:
            raise CurtailmentError("hysteresis must be >= 0 and max_switches_per_step >= 1")
        if self.target_kw is not None and self.target_kw <= 0:
            raise CurtailmentError("target_kw must be positive")

    @property
    def resume_price_per_mwh(self) -> float:
        return self.strike_price_per_mwh - self.hysteresis_per_mwh


@dataclass(frozen=True, slots=True)
class Decision:
    power_down: tuple[str, ...]
    power_up: tuple[str, ...]
    reason: str


def _eff(m: Machine, p: CurtailmentPolicy) -> float:
    return m.efficiency_j_per_th if m.efficiency_j_per_th is not None else p.unknown_efficiency_j_per_th


def _power(m: Machine, p: CurtailmentPolicy) -> float:
    return m.power_w if m.power_w is not None else p.unknown_power_w


def decide(machines: Sequence[Machine], price_per_mwh: float, now: float, policy: CurtailmentPolicy,
           hashprice: float | None = None) -> Decision:
    """One decision step. Ties in efficiency are broken by device id, so the result is deterministic."""
    if price_per_mwh > policy.strike_price_per_mwh:
        shed_w = sum(_power(m, policy) for m in machines if m.curtailed)
        running = [m for m in machines if not m.curtailed and now - m.since >= policy.min_on_s]
        running.sort(key=lambda m: (-_eff(m, policy), m.device_id))
        down: list[str] = []
        for m in running:
            if len(down) >= policy.max_switches_per_step:
                break
            if policy.target_kw is not None and shed_w >= policy.target_kw * 1000.0:
                break
            if hashprice is not None and policy.target_kw is None:
                if breakeven_price_per_mwh(_eff(m, policy), hashprice) >= price_per_mwh:
                    continue  # still profitable at this price: keep it hashing
            down.append(m.device_id)
            shed_w += _power(m, policy)
        return Decision(tuple(down), (), f"price {price_per_mwh:.2f} > strike {policy.strike_price_per_mwh:.2f}")
    if price_per_mwh <= policy.resume_price_per_mwh:
        off = [m for m in machines if m.curtailed and now - m.since >= policy.min_off_s]
        off.sort(key=lambda m: (_eff(m, policy), m.device_id))
        up = tuple(m.device_id for m in off[: policy.max_switches_per_step])
        return Decision((), up, f"price {price_per_mwh:.2f} <= resume {policy.resume_price_per_mwh:.2f}")
    return Decision((), (), f"price {price_per_mwh:.2f} within hysteresis band: hold")


# ---------------------------------------------------------------------------------------------------
# Curtailment by power


@dataclass(frozen=True, slots=True)
class PowerMachine:
    """What the power policy needs to know about one machine.

    `power_w` is its measured draw (None: the firmware reports none, as stock S19s; the top of its range
    stands in), `level_w` the level set on it now (None: the top of its range), `asleep` whether we put it
    to sleep (it then draws `idle_w`, and wakes at `level_w`)."""

    device_id: str
    capability: PowerCapability
    power_w: float | None
    efficiency_j_per_th: float | None
    asleep: bool = False
    level_w: float | None = None
    idle_w: float = 25.0


@dataclass(frozen=True, slots=True)
class PowerPolicy:
    # Hashrate ∝ power^k below nominal (pithead.fleetsim.models: k ≈ 0.78 from LuxOS's f/V steps): what
    # lowering a level costs in hashrate per watt, compared with sleeping.
    curve_k: float = 0.78
    # Stand-in efficiency for machines that report no power (S19 class).
    unknown_efficiency_j_per_th: float = 34.0
    # At most this many machines change per step, down or up (ramp limits, PSU inrush, a bounded mistake).
    max_changes_per_step: int = 500
    # Coming back up, add at most this much load per step (None: up to the budget at once). Going down is
    # never limited: a grid program asks for the reduction now.
    max_step_up_w: float | None = None
    # Do not raise unless the headroom under the budget exceeds this, and shed to half of it under the
    # budget (no chasing noise around the budget: fans, PSU losses and 5 s figures wobble by ~1 %).
    deadband_w: float = 200.0
    # ... or this fraction of the budget, whichever is more: machines that report no power are counted at
    # their nameplate, which real units (and their fans) miss by a percent or two.
    margin_fraction: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.margin_fraction < 0.5:
            raise CurtailmentError("margin_fraction must be in [0, 0.5)")
        if not 0 < self.curve_k <= 1 or self.max_changes_per_step < 1 or self.deadband_w < 0:
            raise CurtailmentError("curve_k must be in (0, 1], max_changes_per_step >= 1, deadband_w >= 0")
        if self.max_step_up_w is not None and self.max_step_up_w <= 0:
            raise CurtailmentError("max_step_up_w must be positive")


@dataclass(frozen=True, slots=True)
class PowerStep:
    """One change: set a level, sleep, or wake (at `watts`, its level). `expected_w`: its draw after."""

    device_id: str
    action: Literal["set", "sleep", "wake"]
    watts: float
    expected_w: float


@dataclass(frozen=True, slots=True)
class PowerPlan:
    steps: tuple[PowerStep, ...]
    site_w: float  # the site's draw now (measured, stand-ins where a machine reports none)
    planned_w: float  # what the steps should bring it to
    budget_w: float | None
    reason: str


def _draw(m: PowerMachine) -> float:
    if m.asleep:
        return m.idle_w
    if m.power_w is not None:
        return m.power_w
    return m.level_w if m.level_w is not None else m.capability.max_w


def _level(m: PowerMachine) -> float:
    return m.level_w if m.level_w is not None else m.capability.max_w


def _ths(m: PowerMachine, p: PowerPolicy) -> float:
    eff = m.efficiency_j_per_th if m.efficiency_j_per_th and m.efficiency_j_per_th > 0 else p.unknown_efficiency_j_per_th
    return _draw(m) / eff


def plan_power(machines: Sequence[PowerMachine], budget_kw: float | None, policy: PowerPolicy,
               fixed: frozenset[str] = frozenset()) -> PowerPlan:
    """One step towards the budget (`None`: no budget, back to full power).

    Over the budget, shed the difference at once, cheapest hashrate first: each possible move (lower a
    machine within its range, sleep a machine) costs hashrate per watt shed -- lowering about k·H/P
    (the marginal cost on hashrate ∝ power^k), sleeping H/P at the level it sleeps from. The cheapest
    go first, so the least efficient machines (highest J/TH) are lowered first, a machine sleeps only
    once it is at the bottom of its range (sleeping it always costs more per watt than lowering it), and a
    stock unit that can only sleep goes down when sleeping it costs less hashrate per watt than lowering a
    more efficient one. The last lowering is partial: the highest level that still meets the budget.

    Shedding aims a margin under the budget (half the dead band, or `margin_fraction` of the budget);
    under the budget by more than twice that, come back up, most hashrate per watt first (waking the
    most efficient sleeping machines, raising levels), never past the budget and at most
    `max_step_up_w` per step. Machines in `fixed` count towards the site's draw but are not moved (their
    last command failed: re-sending it every step would only fill the audit log). Ties are broken by
    device id, so the plan is deterministic."""
    if budget_kw is not None and (not math.isfinite(budget_kw) or budget_kw < 0):
        raise CurtailmentError(f"bad power budget {budget_kw!r} kW")
    site = sum(_draw(m) for m in machines)
    budget = None if budget_kw is None else budget_kw * 1000.0
    margin = max(policy.deadband_w / 2, policy.margin_fraction * (budget or 0.0))
    movable = [m for m in machines if m.device_id not in fixed] if fixed else machines
    if budget is not None and site > budget:
        return _shed(movable, site, budget, budget - margin, policy)
    headroom = math.inf if budget is None else budget - site
    if headroom <= 2 * margin:
        return PowerPlan((), site, site, budget, f"site {site / 1000:.1f} kW within the budget's dead band: hold")
    return _restore(movable, site, budget, headroom - margin, policy)


def _shed(machines: Sequence[PowerMachine], site: float, budget: float, aim: float, p: PowerPolicy) -> PowerPlan:
    # (cost in TH/s per W, tie-break, machine, kind)
    moves: list[tuple[float, float, str, PowerMachine, str]] = []
    for m in machines:
        if m.asleep:
            continue
        draw, ths = _draw(m), _ths(m, p)
        if draw <= 0:
            continue
        cap = m.capability
        floor = cap.min_w if cap.adjustable else draw
        eff = draw / ths if ths > 0 else p.unknown_efficiency_j_per_th
        if cap.adjustable and draw > floor:
            moves.append((p.curve_k * ths / draw, -eff, m.device_id, m, "set"))
        ths_floor = ths * (floor / draw) ** p.curve_k if cap.adjustable and draw > floor else ths
        if floor > m.idle_w:
            moves.append((ths_floor / (floor - m.idle_w), -eff, m.device_id, m, "sleep"))
    moves.sort(key=lambda x: (x[0], x[1], x[2], x[4]))
    need = site - max(aim, 0.0)
    steps: dict[str, PowerStep] = {}
    for _cost, _eff, dev, m, kind in moves:
        if need <= 0:
            break
        if dev not in steps and len(steps) >= p.max_changes_per_step:
            continue
        now = steps[dev].expected_w if dev in steps else _draw(m)
        if kind == "set":
            level = m.capability.settable(max(now - need, m.capability.min_w))
            if level is None or level >= now:
                continue
            steps[dev] = PowerStep(dev, "set", level, level)
            need -= now - level
        else:
            steps[dev] = PowerStep(dev, "sleep", steps[dev].watts if dev in steps else _level(m), m.idle_w)
            need -= now - m.idle_w
    # The last move usually overshoots (a unit that can only sleep sheds 3 kW at once): hand the surplus
    # back to the units lowered in this plan, most efficient first, within their range and their draw now.
    surplus = -need
    by_id = {m.device_id: m for m in machines}
    lowered = sorted((s for s in steps.values() if s.action == "set"),
                     key=lambda s: (_draw(by_id[s.device_id]) / max(_ths(by_id[s.device_id], p), 1e-12), s.device_id))
    for s in lowered:
        if surplus <= 0:
            break
        m = by_id[s.device_id]
        up = m.capability.settable(min(_draw(m), s.watts + surplus))
        if up is not None and up > s.watts:
            steps[s.device_id] = PowerStep(s.device_id, "set", up, up)
            surplus -= up - s.watts
    for dev in [d for d, s in steps.items() if s.action == "set" and s.watts >= _level(by_id[d])]:
        del steps[dev]  # handed all the way back: no change
    planned = site - sum(_draw(m) - steps[m.device_id].expected_w for m in machines if m.device_id in steps)
    short = " (cannot reach it: every machine asleep or at its floor)" if planned > budget else ""
    return PowerPlan(tuple(steps.values()), site, planned, budget,
                     f"site {site / 1000:.1f} kW over the budget {budget / 1000:.1f} kW: shed "
                     f"{(site - planned) / 1000:.1f} kW{short}")


def _restore(machines: Sequence[PowerMachine], site: float, budget: float | None, headroom: float,
             p: PowerPolicy) -> PowerPlan:
    room = min(headroom, p.max_step_up_w if p.max_step_up_w is not None else math.inf)
    # (gain in TH/s per W, machine, kind): the most hashrate per watt comes back first
    moves: list[tuple[float, str, PowerMachine, str]] = []
    for m in machines:
        cap = m.capability
        eff = m.efficiency_j_per_th if m.efficiency_j_per_th and m.efficiency_j_per_th > 0 else p.unknown_efficiency_j_per_th
        if m.asleep:
            moves.append((1.0 / eff, m.device_id, m, "wake"))
        elif cap.adjustable and _level(m) < cap.max_w:
            moves.append((p.curve_k / eff, m.device_id, m, "set"))
    moves.sort(key=lambda x: (-x[0], x[1]))
    steps: list[PowerStep] = []
    added = 0.0
    for _gain, dev, m, kind in moves:
        if len(steps) >= p.max_changes_per_step or room - added <= 0:
            break
        if kind == "wake":
            level = _level(m)
            extra = level - m.idle_w
            if extra > room - added:
                # wake it at a lower level when its range allows; a sleep-only unit waits for more room
                if not m.capability.adjustable:
                    continue
                lower = m.capability.settable(m.idle_w + room - added)
                if lower is None:
                    continue
                level = lower
                extra = lower - m.idle_w
            steps.append(PowerStep(dev, "wake", level, level))
            added += extra
        else:
            now = _draw(m)
            up = m.capability.settable(min(m.capability.max_w, now + room - added))
            if up is None or up <= now:
                continue
            steps.append(PowerStep(dev, "set", up, up))
            added += up - now
    target = "full power" if budget is None else f"the budget {budget / 1000:.1f} kW"
    return PowerPlan(tuple(steps), site, site + added, budget,
                     f"site {site / 1000:.1f} kW under {target}: bring back {added / 1000:.1f} kW")


def budget_for_price(price_per_mwh: float, tiers: Sequence[tuple[float, float]]) -> float | None:
    """A price schedule's budget: `tiers` are (price at or above which, budget kW); the highest tier the
    price reaches applies, and below every tier there is no budget (None: full power). E.g.
    ((80, 500), (150, 100)): 500 kW from 80/MWh, 100 kW from 150/MWh."""
    chosen: float | None = None
    for floor, kw in sorted(tiers):
        if not (math.isfinite(floor) and math.isfinite(kw) and kw >= 0):
            raise CurtailmentError(f"bad price tier ({floor!r}, {kw!r})")
        if price_per_mwh >= floor:
            chosen = kw
    return chosen

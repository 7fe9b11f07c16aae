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

Field experience worth knowing: some S19 XP units did not come back after curtailment (chips not found
on restart). The resume path therefore goes through the normal poller, which will raise BOARD_MISSING.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pithead.farm.energy import breakeven_price_per_mwh
from pithead.farm.model import FarmError


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

"""`pithead farm power ...`: power levels per device and site power control (registered from cli.farm).

- set DEVICE WATTS     set one device's power level through its firmware (LuxOS profile, Whatsminer
                       power limit, AxeOS frequency/voltage, pyasic's set_power_limit), audited
- show                 each device's power mechanism and range (asked through its driver)
- site --kw X --within Y [--site S]    bring a site to X kW within Y s: lower levels on the least
                       efficient machines first, sleep only past the bottom of a range; re-reads the
                       site until it is there. `--full` brings it back to full power, in steps of
                       `--step-up-kw`. `--prices CSV --tier PRICE:KW ...` takes the budget from the
                       price now (a price schedule), `--dry-run` prints the plan only.
- follow --prices CSV --tier PRICE:KW ... [--every S]    follow a price schedule: every S seconds, the
                       budget of the price then (no tier reached: full power, in steps).
Every action is audited as auth "cli" (whoever can open the database may act). This module holds no
logic beyond argument parsing and printing (farm.power, farm.curtailment).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pithead.farm.actions import ActionService
from pithead.farm.curtailment import CurtailmentError, PowerPolicy, budget_for_price, plan_power
from pithead.farm.drivers import default_drivers
from pithead.farm.energy import EnergyError, PriceSchedule
from pithead.farm.power import PowerControlError, PowerController
from pithead.farm.store import FarmStore, FarmStoreError
from pithead.farm.store_async import AsyncFarmStore

app = typer.Typer(no_args_is_help=True, help="Power levels per device and site power control.")
console = Console()

DEFAULT_DB = "pithead-data/farm.sqlite3"
DbOpt = typer.Option(DEFAULT_DB, "--db", help="Farm database (SQLite).")
ActorOpt = typer.Option("cli", "--actor")


def _open(db: str) -> FarmStore:
    if db != ":memory:":
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    return FarmStore(db)


def _budget_now(prices: Path, tiers: list[str], now: float) -> tuple[float, float | None]:
    try:
        price = PriceSchedule.from_csv(prices.read_text()).price_at(now)
        return price, budget_for_price(price, [parse_tier(t) for t in tiers])
    except (EnergyError, CurtailmentError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _controller(store: FarmStore, policy: PowerPolicy | None = None) -> PowerController:
    return PowerController(ActionService(AsyncFarmStore(store), default_drivers()), policy)


def parse_tier(text: str) -> tuple[float, float]:
    price, sep, kw = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(price), float(kw)
    except ValueError:
        raise typer.BadParameter(f"bad tier {text!r}: want PRICE:KW, e.g. 150:400") from None


@app.command("set")
def set_power(device: str, watts: float, actor: str = ActorOpt, db: str = DbOpt) -> None:
    """Set DEVICE's power level to the highest its firmware offers at or below WATTS (audited)."""
    with _open(db) as store:
        res = asyncio.run(ActionService(AsyncFarmStore(store), default_drivers()).set_power(device, watts, actor,
                                                                                            auth="cli"))
    level = f" -> {res.power.level} ({res.power.expected_w:.0f} W)" if res.power else ""
    console.print(f"set_power {res.device_id} {watts:g} W: {'ok' if res.ok else 'FAILED: ' + str(res.error)}"
                  f"{level} (audit #{res.audit_id})", markup=False)
    if not res.ok:
        raise typer.Exit(1)


@app.command()
def show(site: str = typer.Option("", "--site"), db: str = DbOpt) -> None:
    """Each device's power mechanism and range, and its draw now."""
    with _open(db) as store:
        machines = asyncio.run(_controller(store).machines(site))
    t = Table("device", "mechanism", "range W", "levels", "draw W", "J/TH", "asleep")
    for m in sorted(machines, key=lambda m: m.device_id):
        c = m.capability
        t.add_row(m.device_id, c.mechanism.value, f"{c.min_w:.0f}-{c.max_w:.0f}", str(len(c.levels) or "-"),
                  f"{m.power_w:.0f}" if m.power_w is not None else "-",
                  f"{m.efficiency_j_per_th:.1f}" if m.efficiency_j_per_th else "-", "yes" if m.asleep else "")
    console.print(t)


@app.command()
def site(kw: float | None = typer.Option(None, "--kw", help="The site's power budget in kW."),
         full: bool = typer.Option(False, "--full", help="Back to full power (in steps of --step-up-kw)."),
         prices: Path | None = typer.Option(None, "--prices", help="Price schedule CSV (start,price_per_mwh)."),
         tier: list[str] = typer.Option([], "--tier", help="PRICE:KW: from this price on, this budget."),
         within: float = typer.Option(300.0, "--within", help="Seconds to get there."),
         site_name: str = typer.Option("", "--site", help="Site label (default: every device)."),
         step_up_kw: float | None = typer.Option(None, "--step-up-kw", help="Coming back up: kW per step."),
         dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, change nothing."),
         actor: str = ActorOpt, db: str = DbOpt) -> None:
    """Bring a site to --kw within --within seconds (or --full, or the budget of the price now)."""
    if sum((kw is not None, full, prices is not None)) != 1:
        raise typer.BadParameter("give exactly one of --kw, --full or --prices with --tier")
    budget = kw
    if prices is not None:
        if not tier:
            raise typer.BadParameter("--prices needs at least one --tier PRICE:KW")
        price, budget = _budget_now(prices, tier, time.time())
        console.print(f"price now {price:.2f}/MWh: budget {'none (full power)' if budget is None else f'{budget:g} kW'}")
    policy = PowerPolicy(max_step_up_w=step_up_kw * 1000.0 if step_up_kw else None)
    with _open(db) as store:
        ctl = _controller(store, policy)
        try:
            if dry_run:
                plan = plan_power(asyncio.run(ctl.machines(site_name)), budget, policy)
                console.print(plan.reason, markup=False)
                for s in plan.steps:
                    console.print(f"  {s.action:5} {s.device_id} {s.watts:.0f} W", markup=False)
                return
            rep = asyncio.run(ctl.bring_to(budget, within, actor, auth="cli", site=site_name))
        except (PowerControlError, CurtailmentError, FarmStoreError) as exc:
            raise typer.BadParameter(str(exc)) from exc
    steps = sum(len(p.steps) for p in rep.plans)
    what = "full power" if budget is None else f"{budget:g} kW"
    console.print(f"site {site_name or '(all)'} {'reached' if rep.reached else 'did NOT reach'} {what}: "
                  f"{rep.site_kw:.2f} kW after {rep.elapsed_s:.0f} s, {rep.rounds} rounds, {steps} commands, "
                  f"{len(rep.failed)} failed", markup=False)
    for r in rep.failed:
        console.print(f"  failed {r.action} {r.device_id}: {r.error}", markup=False)
    if not rep.reached:
        raise typer.Exit(1)


@app.command()
def follow(prices: Path = typer.Option(..., "--prices", help="Price schedule CSV (start,price_per_mwh)."),
           tier: list[str] = typer.Option(..., "--tier", help="PRICE:KW: from this price on, this budget."),
           every: float = typer.Option(300.0, "--every", help="Seconds between decisions (and to reach each)."),
           site_name: str = typer.Option("", "--site", help="Site label (default: every device)."),
           step_up_kw: float | None = typer.Option(None, "--step-up-kw", help="Coming back up: kW per step."),
           rounds: int = typer.Option(0, "--rounds", help="Stop after this many decisions (0: run until stopped)."),
           actor: str = ActorOpt, db: str = DbOpt) -> None:
    """Follow a price schedule: every --every seconds, bring the site to the budget of the price then."""
    if not 10.0 <= every <= 3600.0 and rounds != 1:
        raise typer.BadParameter("--every must be within 10..3600 s")
    _budget_now(prices, tier, time.time())  # a bad file or tier fails before anything is sent
    policy = PowerPolicy(max_step_up_w=step_up_kw * 1000.0 if step_up_kw else None)

    async def main() -> None:
        with _open(db) as store:
            ctl = _controller(store, policy)
            n = 0
            while rounds == 0 or n < rounds:
                started = time.monotonic()
                price, budget = _budget_now(prices, tier, time.time())
                try:
                    rep = await ctl.bring_to(budget, every, actor, auth="cli", site=site_name)
                except PowerControlError as exc:
                    raise typer.BadParameter(str(exc)) from exc
                what = "full power" if budget is None else f"{budget:g} kW"
                console.print(f"{time.strftime('%H:%M:%S')} price {price:.2f}/MWh -> {what}: "
                              f"{'reached' if rep.reached else 'not yet'} ({rep.site_kw:.2f} kW, "
                              f"{sum(len(p.steps) for p in rep.plans)} commands, {len(rep.failed)} failed)",
                              markup=False)
                n += 1
                if rounds == 0 or n < rounds:
                    await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    asyncio.run(main())

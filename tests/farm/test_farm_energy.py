"""Energy: hashprice, price schedules (CSV/JSON), J/TH, costs and per-site/rack sums; curtailment policy."""

from __future__ import annotations

import pytest

from pithead.farm.curtailment import CurtailmentError, CurtailmentPolicy, Machine, decide
from pithead.farm.energy import (
    EnergyError,
    PriceSchedule,
    block_subsidy_sat,
    breakeven_price_per_mwh,
    energy_cost,
    energy_report,
    hashprice_per_th_day,
    mean_fees,
)
from pithead.farm.model import Device, DeviceAddress, DeviceState, DriverKind, Identity, Labels, Reading
from pithead.farm.store import DeviceStatus


def test_hashprice_worked_example() -> None:
    # field notes: D = 1e14, 3.125 BTC, $100k -> about $62.8 per PH/s per day
    hp = hashprice_per_th_day(1e14, 3.125, 0.0, 100_000.0)
    assert hp * 1000 == pytest.approx(62.86, abs=0.01)
    assert hashprice_per_th_day(2e14, 3.125, 0.0, 100_000.0) == pytest.approx(hp / 2)
    assert hashprice_per_th_day(1e14, 3.125, 3.125, 100_000.0) == pytest.approx(2 * hp)
    with pytest.raises(EnergyError):
        hashprice_per_th_day(0.0, 3.125, 0.0, 1.0)


def test_subsidy_and_fees() -> None:
    assert block_subsidy_sat(0) == 5_000_000_000
    assert block_subsidy_sat(209_999) == 5_000_000_000
    assert block_subsidy_sat(210_000) == 2_500_000_000
    assert block_subsidy_sat(840_000) == 312_500_000
    assert block_subsidy_sat(64 * 210_000) == 0
    assert mean_fees([10] * 200 + [1000] * 144) == 1000.0
    assert mean_fees([]) == 0.0


def test_price_schedule_csv_and_cost_across_steps() -> None:
    csv_text = "start,price_per_mwh\n2026-01-01T00:00:00Z,40\n2026-01-01T01:00:00Z,120\n2026-01-01T02:00:00+00:00,-5\n"
    s = PriceSchedule.from_csv(csv_text)
    t0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert s.price_at(t0 - 10) == 40.0  # before the first point: the first price
    assert s.price_at(t0 + 1800) == 40.0 and s.price_at(t0 + 3600) == 120.0 and s.price_at(t0 + 9000) == -5.0
    # 1 MW for 30 min at 40, then 60 min at 120, then 30 min at -5
    assert s.cost(1e6, t0 + 1800, t0 + 9000) == pytest.approx(0.5 * 40 + 1 * 120 + 0.5 * -5)
    kwh = PriceSchedule.from_csv("start,price_per_kwh\n0,0.05\n")
    assert kwh.price_at(5.0) == pytest.approx(50.0)
    with pytest.raises(EnergyError, match="line 2"):
        PriceSchedule.from_csv("start,price_per_mwh\nyesterday,40\n")
    with pytest.raises(EnergyError):
        PriceSchedule.from_csv("when,price\n0,1\n")
    with pytest.raises(EnergyError):
        PriceSchedule.from_csv("start,price_per_mwh\n2026-01-01T00:00:00,40\n")  # no timezone
    js = PriceSchedule.from_json([{"start": 0, "price_per_mwh": 10}, {"start": 100, "price_per_mwh": 20}])
    assert js.price_at(150) == 20.0


def test_cost_and_breakeven() -> None:
    assert energy_cost(3000.0, 86_400, 50.0) == pytest.approx(3.6)  # 72 kWh at $50/MWh
    hp = 0.05  # $ per TH/s per day
    be = breakeven_price_per_mwh(20.0, hp)
    # at the break-even price, one TH/s at 20 J/TH costs exactly its revenue
    assert energy_cost(20.0, 86_400, be) == pytest.approx(hp)


def _st(i: int, site: str, rack: str, ths: float, power: float | None, state: DeviceState = DeviceState.OK) -> DeviceStatus:
    d = Device(DeviceAddress(f"10.0.0.{i}", 4028, DriverKind.CGMINER), Identity("A", "M"), Labels(site, rack, str(i)))
    r = Reading(d.id, 0.0, ths, None, power_w=power)
    return DeviceStatus(d, state, 0.0, 0.0, 0, 0.0, None if state is DeviceState.OK else "x", r)


def test_energy_report_groups_by_site_and_rack() -> None:
    sts = [_st(1, "north", "A", 100.0, 3000.0), _st(2, "north", "A", 200.0, 3500.0),
           _st(3, "north", "B", 140.0, None), _st(4, "south", "C", 100.0, 3000.0, DeviceState.TIMEOUT)]
    rep = energy_report(sts, 0.0, 50.0, hashprice=0.05)
    assert rep.fleet.devices == 4 and rep.fleet.hashing == 3
    assert rep.fleet.hashrate_ths == 440.0 and rep.fleet.power_w == 6500.0
    assert rep.fleet.efficiency_j_per_th == pytest.approx(6500.0 / 300.0)  # metered devices only
    racks = {r.key: r for r in rep.racks}
    assert racks["north/A"].efficiency_j_per_th == pytest.approx(6500.0 / 300.0)
    assert racks["north/B"].efficiency_j_per_th is None and racks["south/C"].hashrate_ths == 0.0
    assert racks["north/A"].cost_per_day == pytest.approx(energy_cost(6500.0, 86_400, 50.0))
    assert racks["north/A"].profit_per_day == pytest.approx(300 * 0.05 - energy_cost(6500.0, 86_400, 50.0))
    # revenue counts every hashing device; profit only those whose power (cost) is known
    assert rep.fleet.revenue_per_day == pytest.approx(440 * 0.05)
    assert rep.fleet.profit_per_day == pytest.approx(300 * 0.05 - energy_cost(6500.0, 86_400, 50.0))
    assert rep.fleet.metered_devices == 2 and racks["north/B"].profit_per_day == pytest.approx(0.0)
    assert {s.key for s in rep.sites} == {"north", "south"}


# ---- curtailment on seeded scenarios --------------------------------------------------------------

FLEET = [
    Machine("s21", 17.5, 3500.0, False, 0.0),
    Machine("xp", 21.5, 3010.0, False, 0.0),
    Machine("s19", 34.0, 3250.0, False, 0.0),
    Machine("old", 45.0, 3300.0, False, 0.0),
]


def test_below_strike_nothing_happens() -> None:
    d = decide(FLEET, 40.0, 10_000.0, CurtailmentPolicy(strike_price_per_mwh=80.0))
    assert d.power_down == () and d.power_up == ()


def test_above_strike_least_efficient_first_with_ramp_limit() -> None:
    d = decide(FLEET, 200.0, 10_000.0, CurtailmentPolicy(80.0, max_switches_per_step=2))
    assert d.power_down == ("old", "s19")
    d = decide(FLEET, 200.0, 10_000.0, CurtailmentPolicy(80.0))
    assert d.power_down == ("old", "s19", "xp", "s21")


def test_target_kw_stops_when_enough_is_shed() -> None:
    d = decide(FLEET, 200.0, 10_000.0, CurtailmentPolicy(80.0, target_kw=5.0))
    assert d.power_down == ("old", "s19")  # 3.3 + 3.25 kW >= 5 kW
    already = [*FLEET[:3], Machine("old", 45.0, 3300.0, True, 9000.0)]
    d = decide(already, 200.0, 10_000.0, CurtailmentPolicy(80.0, target_kw=5.0))
    assert d.power_down == ("s19",)  # the curtailed machine counts towards the target


def test_hashprice_keeps_profitable_machines_running() -> None:
    hp = 0.05
    price = 90.0
    # break-even: 17.5 J/TH -> 119 $/MWh, 21.5 -> 97, 34 -> 61, 45 -> 46
    d = decide(FLEET, price, 10_000.0, CurtailmentPolicy(80.0), hashprice=hp)
    assert d.power_down == ("old", "s19")
    assert all(breakeven_price_per_mwh(m.efficiency_j_per_th or 0, hp) >= price for m in FLEET if m.device_id in ("xp", "s21"))


def test_resume_after_price_falls_most_efficient_first_with_hysteresis() -> None:
    off = [Machine("s19", 34.0, 3250.0, True, 9000.0), Machine("old", 45.0, 3300.0, True, 9000.0),
           Machine("xp", 21.5, 3010.0, True, 9900.0), Machine("s21", 17.5, 3500.0, False, 0.0)]
    pol = CurtailmentPolicy(80.0, hysteresis_per_mwh=5.0, min_off_s=300.0)
    assert decide(off, 78.0, 10_000.0, pol).power_up == ()  # inside the hysteresis band: hold
    d = decide(off, 70.0, 10_000.0, pol)
    assert d.power_up == ("s19", "old")  # xp went down 100 s ago: min_off not yet elapsed
    d = decide(off, 70.0, 10_300.0, pol)
    assert d.power_up == ("xp", "s19", "old")


def test_min_on_time_and_unknown_power() -> None:
    just_started = [Machine("old", 45.0, 3300.0, False, 9_900.0), Machine("nopower", None, None, False, 0.0),
                    Machine("good", 17.0, 3500.0, False, 0.0)]
    d = decide(just_started, 200.0, 10_000.0, CurtailmentPolicy(80.0, min_on_s=300.0, max_switches_per_step=1))
    assert d.power_down == ("nopower",)  # ranked at the S19-class stand-in (34 J/TH); "old" is protected
    with pytest.raises(CurtailmentError):
        CurtailmentPolicy(80.0, max_switches_per_step=0)


async def test_price_schedule_from_a_loopback_api(servers) -> None:  # type: ignore[no-untyped-def]
    from pithead.farm.energy import fetch_price_schedule

    async def api(method: str, path: str, body: bytes) -> tuple[int, object]:
        if path == "/prices":
            return 200, [{"start": "2026-01-01T00:00:00Z", "price_per_mwh": 33.5}, {"start": 1_767_229_200, "price_per_mwh": 90}]
        return 404, {"error": "no"}

    port = await servers.http(api)
    s = await fetch_price_schedule(f"http://127.0.0.1:{port}/prices")
    assert s.price_at(1_767_225_600 + 60) == 33.5 and s.price_at(1_767_229_200) == 90.0
    with pytest.raises(EnergyError, match="404"):
        await fetch_price_schedule(f"http://127.0.0.1:{port}/nope")

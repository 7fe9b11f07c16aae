"""Device behaviour from the realistic models, and replay: the same seed and actions give the same run."""

from __future__ import annotations

import dataclasses

import pytest

from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.device import FleetContext, PoolConf, SimDevice
from pithead.fleetsim.fleet import Action, Fleet, FleetConfigError, allocate_ips, parse_mix
from pithead.fleetsim.models import BITAXE_BEHAVIOUR, MODELS, MULTI_BOARD_BEHAVIOUR, FailureRates, Family

T0 = 1_760_000_000.0


def _fleet(
    n: int = 40,
    *,
    seed: int = 3,
    speedup: float = 1.0,
    mix: str = "s19xp:4,s19:3,s21:2,bitaxe-gamma:1",
    base_ambient_c: float = 25.0,
) -> Fleet:
    return Fleet.build(
        n,
        mix=mix,
        seed=seed,
        clock=ManualClock(T0),
        rates=FailureRates(speedup=speedup),
        base_ambient_c=base_ambient_c,
    )


def _trace(fleet: Fleet, times: list[float]) -> list[tuple[object, ...]]:
    out = []
    for t in times:
        for d in fleet:
            s = d.snapshot(fleet.ctx, t)
            out.append((d.ip, dataclasses.astuple(s)))
    return out


SCRIPT = [
    Action(T0 + 600, "*", "ambient", (41.0,)),
    Action(T0 + 1800, "127.16.0.2", "restart", ()),
    Action(T0 + 2400, "127.16.0.3", "sleep", (True,)),
    Action(T0 + 4000, "127.16.0.3", "sleep", (False,)),
    Action(T0 + 5000, "127.16.0.5", "set_pools", ((PoolConf("stratum+tcp://127.0.0.9:3333", "w.1"),), True)),
    Action(T0 + 6000, "127.16.0.6", "addpool", ("stratum+tcp://127.0.0.9:3334", "w.2", "x")),
    Action(T0 + 6001, "127.16.0.6", "switchpool", (1,)),
    Action(T0 + 7200, "*", "ambient", (25.0,)),
]


def test_replay_is_identical_from_the_seed_whatever_the_query_pattern() -> None:
    ends = [T0 + 3 * 3600, T0 + 6 * 3600, T0 + 12 * 3600]
    a = _fleet(seed=42, speedup=3000)
    a.replay(SCRIPT)
    ta = _trace(a, ends)  # fleet a is looked at only at the checkpoints
    # fleet b is polled every 7 minutes all along (state only moves forward, so the checkpoints are
    # taken as the polling passes them)
    b = _fleet(seed=42, speedup=3000)
    tb: list[tuple[object, ...]] = []
    t = T0
    pending = list(SCRIPT)
    todo = list(ends)
    while todo:
        while pending and pending[0].t <= t:
            b.replay([pending.pop(0)])
        while todo and todo[0] <= t:
            tb += _trace(b, [todo.pop(0)])
        for d in b:
            d.snapshot(b.ctx, t)
        t = min([t + 420, *(x for x in todo if x > t)])
    assert ta == tb
    # the scenario had failures in it (speedup 3000: a year of hazard in ~3 hours)
    assert any(d.dead_boards or d.failed_fans or d.lost_chips for d in a)
    assert list(a.log) == SCRIPT


def test_different_seeds_give_different_runs() -> None:
    a, b = _fleet(seed=1, speedup=3000), _fleet(seed=2, speedup=3000)
    t = T0 + 24 * 3600
    assert _trace(a, [t]) != _trace(b, [t])


def test_failure_rates_match_the_model_over_a_year() -> None:
    """~5 %/year hashboard deaths and ~8 %/year fan failures per unit at speedup 1 (Bitmain's "normal")."""
    n = 2000
    fleet = _fleet(n, seed=9, mix="s19:1")
    t = T0 + 365.25 * 86400
    for d in fleet:
        d.advance(fleet.ctx, t)
    dead = sum(1 for d in fleet if d.dead_boards) / n
    fans = sum(1 for d in fleet if d.failed_fans) / n
    reboots = sum(d.restarts for d in fleet) / n
    assert 0.03 < dead < 0.075
    assert 0.05 < fans < 0.11
    assert 3.0 < reboots < 5.0


def test_s21_derates_above_40c_and_shuts_down_above_47c() -> None:
    fleet = _fleet(1, mix="s21:1", base_ambient_c=20.0)
    dev = fleet.devices[0]
    cool = dev.snapshot(fleet.ctx, T0 + 10)
    offset = cool.ambient_c - fleet.ctx.ambient(T0 + 10, 0.0)
    t = T0 + 100
    fleet.set_ambient(42.0 - offset + 6.0, t)  # ≥ 42 °C intake whatever the time of day
    hot = dev.snapshot(fleet.ctx, t + 1)
    assert 40.0 < hot.ambient_c <= 47.0 or hot.ambient_c > 47.0
    if hot.ambient_c <= 47.0:
        assert hot.freq_mhz == 440
        assert hot.rate_avg_ghs == pytest.approx(cool.rate_avg_ghs * 440 / 490, rel=1e-6)
    fleet.set_ambient(60.0, t + 10)
    cooked = dev.snapshot(fleet.ctx, t + 11)
    assert cooked.rate_avg_ghs == 0.0 and "P:1" in cooked.errors and cooked.online
    assert cooked.fans_rpm != (0, 0, 0, 0)


def test_board_and_fan_failures() -> None:
    fleet = _fleet(3, mix="s19:1,s19xp:1,bitaxe-gamma:1")
    s19, xp, axe = fleet.devices
    t = T0 + 5
    before = s19.snapshot(fleet.ctx, t)
    s19.dead_boards = 0b100
    after = s19.snapshot(fleet.ctx, t)
    assert after.rate_avg_ghs == pytest.approx(before.rate_avg_ghs * 2 / 3)
    assert [b.chips for b in after.boards] == [76, 76, 0] and "J2:8" in after.errors
    xp.dead_boards = 0b001
    assert xp.snapshot(fleet.ctx, t).rate_avg_ghs == 0.0  # one bad board takes an XP down [FA3]
    assert "J0:8" in xp.snapshot(fleet.ctx, t).errors
    s19.dead_boards = 0
    s19.failed_fans = 0b10
    fan = s19.snapshot(fleet.ctx, t)
    assert fan.fans_rpm[1] == 0 and fan.rate_avg_ghs == 0.0 and "F:1" in fan.errors  # "fan lost"
    axe.failed_fans = 1
    hot = axe.snapshot(fleet.ctx, t)
    # with its fan stopped the chip would pass the 75 °C protection: ESP-Miner stops it (overheat mode)
    assert axe.spec.chip_protect_c == MODELS["bitaxe-gamma"].chip_protect_c
    assert "P:1" in hot.errors and hot.rate_avg_ghs == 0.0 and hot.online


def test_pool_change_reboots_for_two_to_three_minutes() -> None:
    fleet = _fleet(1, mix="s19xp:1")
    dev = fleet.devices[0]
    t = T0 + 60
    new = (PoolConf("stratum+tcp://127.0.0.9:3333", "farm.w1"),)
    fleet.set_pools(dev.ip, new, reboot=True, t=t)
    assert not dev.snapshot(fleet.ctx, t + 1).online
    assert 120.0 <= dev.down_until - t <= 180.0
    back = dev.snapshot(fleet.ctx, dev.down_until + 1)
    assert back.online and back.pools[0].url == new[0].url and back.elapsed_s == 1
    assert back.pools[0].accepted == 0


def test_sleep_and_wake_take_ten_to_twenty_seconds() -> None:
    fleet = _fleet(1, mix="s19:1")
    dev = fleet.devices[0]
    fleet.sleep(dev.ip, True, T0 + 10)
    s = dev.snapshot(fleet.ctx, T0 + 11)
    assert s.sleeping and s.rate_avg_ghs == 0.0 and s.power_w < 50
    fleet.sleep(dev.ip, False, T0 + 100)
    assert dev.snapshot(fleet.ctx, T0 + 105).rate_avg_ghs == 0.0
    assert 10.0 <= dev.wake_at - (T0 + 100) <= 20.0
    assert dev.snapshot(fleet.ctx, dev.wake_at + 0.5).rate_avg_ghs > 0


def test_accepted_shares_follow_the_hashrate() -> None:
    fleet = _fleet(1, mix="s19xp:1")
    dev = fleet.devices[0]
    s = dev.snapshot(fleet.ctx, T0 + 60)
    b = dev.snapshot(fleet.ctx, T0 + 60 + 3600).accepted
    # shares at the pool difficulty the unit's hashrate calls for (a power of two near 20 shares/min)
    expect = s.rate_avg_ghs * 1e9 * 3600 / (s.pool_diff * 2**32)
    assert abs((b - s.accepted) - expect) <= 1
    assert 10 * 60 < expect < 25 * 60


def test_fleet_layout_and_config_errors() -> None:
    fleet = _fleet(10, mix="s19:1,bitaxe-gamma:1")
    assert sum(d.spec.key == "s19" for d in fleet) == 5
    assert len({d.ip for d in fleet}) == 10
    assert all(d.ip.startswith("127.") for d in fleet)
    ips = allocate_ips("127.50.0.0/16", 600)
    assert not any(ip.endswith((".0", ".255")) for ip in ips)
    with pytest.raises(FleetConfigError):
        allocate_ips("10.0.0.0/24", 1)
    with pytest.raises(FleetConfigError):
        allocate_ips("127.50.0.0/30", 10)
    with pytest.raises(FleetConfigError):
        parse_mix("s99:1")
    with pytest.raises(FleetConfigError):
        Fleet.build(0)


def test_blocked_airflow_overheats_a_unit_until_repaired() -> None:
    fleet = _fleet(2, mix="s19:1,s21:1")
    s19, s21 = fleet.devices
    t = T0 + 5
    cool = s21.snapshot(fleet.ctx, t)
    s19.hot_c = s21.hot_c = 25
    hot19, hot21 = s19.snapshot(fleet.ctx, t), s21.snapshot(fleet.ctx, t)
    assert hot21.ambient_c == pytest.approx(cool.ambient_c + 25)
    assert hot21.ambient_c > 47.0 and "P:1" in hot21.errors and hot21.rate_avg_ghs == 0.0
    if hot19.ambient_c > 50.0:
        assert "P:1" in hot19.errors
    else:
        assert hot19.freq_mhz == MODELS["s19"].derated_freq_mhz
    fleet.repair(s21.ip, t)
    back = s21.snapshot(fleet.ctx, s21.down_until + 1)
    assert back.hashing and back.errors == () and s21.hot_c == 0


def test_every_failure_kind_happens_at_speed() -> None:
    fleet = _fleet(200, seed=5, speedup=20_000, mix="s19:1,bitaxe-gamma:1")
    t = T0 + 6 * 3600  # ~14 years of hazard per unit
    for d in fleet:
        d.advance(fleet.ctx, t)
    assert any(d.dead_boards for d in fleet)
    assert any(d.failed_fans for d in fleet)
    assert any(d.lost_chips for d in fleet)
    assert any(d.throttled for d in fleet)
    assert any(d.hot_c for d in fleet)
    assert sum(d.restarts for d in fleet) > 100


# ---------------------------------------------------------------- vendor behaviour is model data


def test_the_device_logic_has_no_vendor_branches() -> None:
    """What differs between families is `Behaviour` data on the model, not branches on `Family`."""
    import ast
    from pathlib import Path

    from pithead.fleetsim import device

    names = {n.id for n in ast.walk(ast.parse(Path(device.__file__).read_text())) if isinstance(n, ast.Name)}
    assert "Family" not in names
    assert {m.behaviour for m in MODELS.values()} == {MULTI_BOARD_BEHAVIOUR, BITAXE_BEHAVIOUR}
    assert all((m.behaviour is BITAXE_BEHAVIOUR) == (m.family is Family.BITAXE) for m in MODELS.values())


def test_behaviour_data_drives_the_device() -> None:
    """The same Antminer model given a Bitaxe's behaviour behaves like one: it idles at the Bitaxe's
    power and fan duty, keeps hashing (hotter) with a dead fan, and never loses a board on wake."""
    stock = MODELS["s19"]
    odd = dataclasses.replace(stock, behaviour=BITAXE_BEHAVIOUR)
    ctx = FleetContext(seed=1)
    for spec, idle_w, pwm in ((stock, 25.0, 30), (odd, 3.0, 25)):
        dev = SimDevice(0, spec, "127.16.0.1", ctx, T0)
        dev.set_sleep(ctx, T0, True)
        snap = dev.snapshot(ctx, T0 + 1)
        assert (snap.power_w, snap.fan_pwm) == (idle_w, pwm)
    cool = FleetContext(seed=1, base_ambient_c=0.0)  # so the hotter chip stays under its protection limit
    for spec, stops in ((stock, True), (odd, False)):
        dev = SimDevice(0, spec, "127.16.0.1", cool, T0)
        healthy = dev.snapshot(cool, T0 + 1)
        dev.failed_fans = 1
        snap = dev.snapshot(cool, T0 + 2)
        assert ("F:1" in snap.errors) is stops and snap.hashing is not stops
        if not stops:
            assert snap.chip_temp_c == pytest.approx(healthy.chip_temp_c + BITAXE_BEHAVIOUR.fan_lost_heat_c, abs=1)
    always = FleetContext(seed=1, rates=FailureRates(wake_failure=1.0))  # every wake loses a board, if it can
    for spec, loses in ((stock, True), (odd, False)):
        dev = SimDevice(0, spec, "127.16.0.1", always, T0)
        dev.restart(always, T0 + 1)
        assert (dev.dead_boards != 0) is loses


def test_every_family_has_its_surfaces() -> None:
    from pithead.fleetsim.server import API_FAMILIES
    from pithead.fleetsim.surfaces import SURFACES

    assert set(SURFACES) == set(Family)
    assert API_FAMILIES == {Family.ANTMINER, Family.WHATSMINER, Family.LUXOS}  # a Bitaxe has nothing on 4028
    assert [f for f, s in SURFACES.items() if s.web_digest] == [Family.ANTMINER]

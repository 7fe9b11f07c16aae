"""Power targets on the simulated fleet, through each vendor's own API on real loopback sockets: LuxOS
profiles (session-guarded), the Whatsminer power limit (token flow, AES), AxeOS frequency/voltage, stock
Antminer sleep/normal only -- with our drivers through the audited ActionService, and with pyasic's
`set_power_limit` where pyasic drives the make. The clock is manual, so "after the firmware's delay" is
an exact simulated time and readings are compared with the device's own state."""

from __future__ import annotations

import pyasic
import pytest

from pithead.farm.actions import ActionService
from pithead.farm.curtailment import PowerPolicy
from pithead.farm.drivers import default_drivers
from pithead.farm.drivers.base import UnsupportedAction
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels, PowerMechanism
from pithead.farm.power import PowerControlError, PowerController
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import MODELS
from pithead.fleetsim.server import FleetServer, SimServerError
from pithead.fleetsim.surfaces.luxos import profiles

pytestmark = pytest.mark.timeout(120)


async def _serve(subnet: str, mix: str, n: int, *, writable: bool = True) -> tuple[Fleet, FleetServer]:
    fleet = Fleet.build(n, mix=mix, seed=5, network=subnet, clock=ManualClock(), api_write_allowed=writable)
    srv = FleetServer(fleet, bind="per-device")
    try:
        await srv.start()
    except SimServerError as exc:  # another process took 80/4028 on this subnet meanwhile
        pytest.skip(str(exc))
    return fleet, srv


def _address(fleet: Fleet, key: str) -> tuple[str, DeviceAddress]:
    dev = next(d for d in fleet if d.spec.key == key)
    kind = DriverKind.AXEOS if key.startswith("bitaxe") else DriverKind.CGMINER
    return dev.ip, DeviceAddress(dev.ip, 80 if kind is DriverKind.AXEOS else 4028, kind)


def _advance(fleet: Fleet, seconds: float) -> None:
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


async def test_power_targets_through_each_vendor_api(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "s19jpro-lux:1,m30s:1,bitaxe-gamma:1,s19xp:1", 4)
    store = FarmStore(":memory:")
    try:
        drivers = default_drivers()
        devices = {}
        for key in ("s19jpro-lux", "m30s", "bitaxe-gamma", "s19xp"):
            ip, addr = _address(fleet, key)
            devices[key] = (ip, Device(addr, Identity("x", key)))
        store.upsert_devices([d for _, d in devices.values()])
        svc = ActionService(AsyncFarmStore(store), drivers, clock=fleet.now)

        # LuxOS: the range is the profiles up to the default one; the pick is the highest at or below
        ip, dev = devices["s19jpro-lux"]
        cap = await drivers[DriverKind.CGMINER].power_capability(dev.address)
        spec = MODELS["s19jpro-lux"]
        assert cap.mechanism is PowerMechanism.PROFILE and cap.max_w == pytest.approx(spec.power_w, abs=1)
        assert len(cap.levels) == 17 and cap.min_w < spec.power_w * 0.25
        res = await svc.set_power(dev.id, 2500.0, "ops", auth="cli")
        assert res.ok and res.power is not None, res.error
        best = max((p for p in profiles(spec) if p.watts <= 2500.0), key=lambda p: p.watts)
        assert res.power.level == best.name == "445MHz" and res.power.expected_w == pytest.approx(round(best.watts))
        assert fleet.sessions == {}  # the driver logged off: the next actor can act
        before = fleet.snapshot(ip)
        assert before.power_w > 3000  # the profile ramps in 5 MHz steps (20 of them, 1 s each) before it holds
        _advance(fleet, 19.0)
        assert fleet.snapshot(ip).power_w > 3000
        _advance(fleet, 1.5)
        after = fleet.snapshot(ip)
        assert after.power_w == pytest.approx(best.watts + 4 * 4.0, rel=0.02)  # + the four fans
        assert after.rate_5s_ghs / 1000 == pytest.approx(best.hashrate_ths * 0.985, rel=0.02)
        assert after.power_w / (after.rate_5s_ghs / 1000) < before.power_w / (before.rate_5s_ghs / 1000)
        reading = await drivers[DriverKind.CGMINER].read(dev.id, dev.address, fleet.now())
        assert reading.power_w == pytest.approx(after.power_w, rel=0.01)
        # sleep/wake on LuxOS is its session-guarded `curtail`
        assert (await svc.set_mining(dev.id, False, "ops")).ok and fleet.device(ip).sleeping

        # Whatsminer: a power limit through the token flow; the unit restarts to apply it
        ip, dev = devices["m30s"]
        cap = await drivers[DriverKind.CGMINER].power_capability(dev.address)
        assert cap.mechanism is PowerMechanism.POWER_LIMIT and (cap.min_w, cap.max_w) == (2006, 3344.0)
        res = await svc.set_power(dev.id, 2600.4, "ops")
        assert res.ok and res.power is not None and res.power.level == "2600W", res.error
        assert not fleet.snapshot(ip).online  # restarting
        _advance(fleet, MODELS["m30s"].boot_s * 1.2 + 1)
        snap = fleet.snapshot(ip)
        k = MODELS["m30s"].power_k
        assert snap.power_w == pytest.approx(2600 + 2 * 4.0, rel=0.02)
        assert snap.rate_5s_ghs / 1000 == pytest.approx(88.0 * (2600 / 3344) ** k * 0.985, rel=0.02)
        below = await svc.set_power(dev.id, 1000.0, "ops")
        assert not below.ok and "below" in (below.error or "")

        # AxeOS: frequency and core voltage from the device's own options, applied at the restart
        ip, dev = devices["bitaxe-gamma"]
        cap = await drivers[DriverKind.AXEOS].power_capability(dev.address)
        assert cap.mechanism is PowerMechanism.FREQUENCY_VOLTAGE and len(cap.levels) >= 2
        res = await svc.set_power(dev.id, cap.levels[0] + 0.01, "ops")
        assert res.ok and res.power is not None, res.error
        # 425 MHz needs 1150 x (1 - 0.16 x 100/525) = 1115 mV: the lowest voltage option at or above is 1150
        assert res.power.level == "425MHz/1150mV"
        _advance(fleet, MODELS["bitaxe-gamma"].boot_s * 1.2 + 1)
        snap = fleet.snapshot(ip)
        assert snap.freq_mhz == 425 and snap.op is not None and snap.op.voltage_mv == 1150
        assert snap.power_w == pytest.approx(res.power.expected_w, rel=0.03)

        # stock Antminer: sleep/normal only -- refused, audited as failed, the unit untouched
        ip, dev = devices["s19xp"]
        cap = await drivers[DriverKind.CGMINER].power_capability(dev.address)
        assert cap.mechanism is PowerMechanism.SLEEP_ONLY and not cap.adjustable
        with pytest.raises(UnsupportedAction):
            await drivers[DriverKind.CGMINER].set_power(dev.address, 2500.0)
        res = await svc.set_power(dev.id, 2500.0, "ops")
        assert not res.ok and "sleep/normal only" in (res.error or "")
        assert fleet.snapshot(ip).op is not None and fleet.snapshot(ip).op.label == "default"  # type: ignore[union-attr]

        # every attempt is in the audit log with the watts asked and its outcome
        log = [(a.device_id, a.action, a.params.get("watts"), a.outcome) for a in store.audit_log()]
        assert (devices["s19xp"][1].id, "set_power", 2500.0, "failed") in log
        assert (devices["m30s"][1].id, "set_power", 2600.4, "ok") in log
        assert sum(1 for a in log if a[1] == "set_power") == 5
    finally:
        store.close()
        await srv.close()


async def test_locked_whatsminer_refuses_power_limit(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "m30s:1", 1, writable=False)
    try:
        _, addr = _address(fleet, "m30s")
        with pytest.raises(Exception, match="can't access write cmd"):
            await default_drivers()[DriverKind.CGMINER].set_power(addr, 3000.0)
        assert fleet.snapshot(addr.host).op.label == "default"  # type: ignore[union-attr]
    finally:
        await srv.close()


async def test_pyasic_set_power_limit_on_simulated_whatsminer(subnet: str) -> None:
    """pyasic 0.79 drives a Whatsminer's power limit through its own token/AES code against the
    simulator; our pyasic driver does the same through `set_power_limit`."""
    fleet, srv = await _serve(subnet, "m30s:1", 1)
    try:
        dev = next(iter(fleet))
        miner = await pyasic.get_miner(dev.ip)
        assert miner is not None and "BTMiner" in type(miner).__name__
        assert await miner.set_power_limit(3000) is True
        _advance(fleet, MODELS["m30s"].boot_s * 1.2 + 1)
        assert fleet.snapshot(dev.ip).op.label == "3000W"  # type: ignore[union-attr]
        drivers = default_drivers()
        addr = DeviceAddress(dev.ip, 4028, DriverKind.PYASIC)
        cap = await drivers[DriverKind.PYASIC].power_capability(addr)
        assert cap.mechanism is PowerMechanism.POWER_LIMIT and cap.max_w == 3344.0
        target = await drivers[DriverKind.PYASIC].set_power(addr, 2700.0)
        assert target.level == "2700W"
        _advance(fleet, MODELS["m30s"].boot_s * 1.2 + 1)
        snap = fleet.snapshot(dev.ip)
        assert snap.op is not None and snap.op.label == "2700W"
        assert snap.power_w == pytest.approx(2700 + 8.0, rel=0.02)
    finally:
        await srv.close()


async def _site(n: int, mix: str) -> tuple[Fleet, FleetServer, FarmStore, ActionService, list[Device]]:
    fleet = Fleet.build(n, mix=mix, seed=9, clock=ManualClock())
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    await srv.start()
    api, web = srv.bound_ports()
    store = FarmStore(":memory:")
    devices = [Device(DeviceAddress(d.ip, web if d.spec.key.startswith("bitaxe") else api,
                                    DriverKind.AXEOS if d.spec.key.startswith("bitaxe") else DriverKind.CGMINER),
                      Identity("x", d.spec.key), Labels(site="s1")) for d in fleet]
    store.upsert_devices(devices)
    svc = ActionService(AsyncFarmStore(store), default_drivers(antminer_web_port=web), clock=fleet.now)
    return fleet, srv, store, svc, devices


async def test_bring_the_site_to_a_power_level_and_back_up_in_steps() -> None:
    # (Whatsminers are read through pyasic, which wants ports 80/4028 per address: their power limit is
    # tested above; this site is served on shared ephemeral ports)
    fleet, srv, store, svc, _ = await _site(8, "s19jpro-lux:3,s19xp:3,bitaxe-gamma:2")

    async def sim_sleep(dt: float) -> None:
        _advance(fleet, dt)

    try:
        ctl = PowerController(svc, PowerPolicy(max_step_up_w=4000.0), clock=fleet.now, sleep=sim_sleep)
        await ctl.refresh("s1")
        full = fleet.totals()
        budget = round(full["power_kw"] * 0.6, 1)
        rep = await ctl.bring_to(budget, 600.0, "grid", auth="test", site="s1")
        assert rep.reached, rep
        now = fleet.totals()
        assert now["power_kw"] <= budget * 1.01  # the site meter (the simulator's own draw) agrees
        # the cheapest hashrate per watt first: a LuxOS unit is lowered before anything sleeps
        first = rep.plans[0].steps
        assert {s.action for s in first} <= {"set", "sleep"} and first[0].action == "set"
        assert any(s.action == "set" for s in first)
        assert now["hashrate_ths"] > full["hashrate_ths"] * 0.6  # better than proportional
        log = store.audit_log()
        assert all(a.actor == "grid" and a.params.get("auth") == "test" for a in log)
        # back to full power, in steps of at most 4 kW
        up = await ctl.bring_to(None, 1800.0, "grid", site="s1")
        assert up.reached and up.rounds >= 2, up
        for p in up.plans:
            assert p.planned_w - p.site_w <= 4000.0 + 1e-6
        assert fleet.totals()["power_kw"] == pytest.approx(full["power_kw"], rel=0.03)
    finally:
        store.close()
        await srv.close()


async def test_bring_to_refuses_bad_requests() -> None:
    fleet, srv, store, svc, _ = await _site(2, "s19xp:1,m30s:1")
    try:
        ctl = PowerController(svc, clock=fleet.now)
        with pytest.raises(PowerControlError):
            await ctl.bring_to(-5.0, 60.0, "x")
        with pytest.raises(PowerControlError):
            await ctl.bring_to(5.0, 0.0, "x")
        with pytest.raises(PowerControlError, match="no device is labelled"):
            await ctl.bring_to(5.0, 60.0, "x", site="nowhere")
        assert store.audit_log() == []
    finally:
        store.close()
        await srv.close()


async def test_pyasic_set_power_limit_on_simulated_luxos(subnet: str) -> None:
    """pyasic 0.79 identifies the simulated LuxOS unit (socket probe: LUXminer), reads it and its config
    (profiles as presets), and its `set_power_limit` picks the highest profile at or below, through its own
    session handling; our pyasic driver offers the profiles as levels."""
    fleet, srv = await _serve(subnet, "s19jpro-lux:1", 1)
    try:
        dev = next(iter(fleet))
        miner = await pyasic.get_miner(dev.ip)
        assert miner is not None and "LUXMiner" in type(miner).__name__
        data = await miner.get_data()
        assert data.wattage == round(fleet.snapshot(dev.ip).power_w)
        cfg = await miner.get_config()
        assert cfg.mining_mode.active_preset.name == "default"  # type: ignore[union-attr]
        assert await miner.set_power_limit(2500) is True
        assert fleet.device(dev.ip).op_next.label == "445MHz"
        fleet.sessions.clear()  # pyasic keeps its session open; LuxOS would expire it after a minute
        drivers = default_drivers()
        addr = DeviceAddress(dev.ip, 4028, DriverKind.PYASIC)
        cap = await drivers[DriverKind.PYASIC].power_capability(addr)
        assert cap.mechanism is PowerMechanism.PROFILE and cap.max_w == 3068.0 and len(cap.levels) == 17
        target = await drivers[DriverKind.PYASIC].set_power(addr, 2000.0)
        assert (target.level, target.expected_w) == ("370MHz", 1871.0)
        assert fleet.device(dev.ip).op_next.label == "370MHz"
    finally:
        await srv.close()

"""FarmService: re-scan, poll, alert and roll up on their own schedules, end to end on loopback devices."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from farm_devices import Antminer, Servers, chain

from pithead.config import FarmConfig
from pithead.farm.curtailment import CurtailmentPolicy
from pithead.farm.energy import PriceSchedule
from pithead.farm.inventory import Labeler
from pithead.farm.model import DeviceAddress, DeviceState, DriverKind, Labels
from pithead.farm.power import SiteBudget
from pithead.farm.service import FarmConfigError, FarmService, FarmServiceConfig, FarmSetup, Role
from pithead.farm.store import FarmStore
from pithead.web.farm import service_router


async def test_service_discovers_polls_and_alerts(servers: Servers, store: FarmStore) -> None:
    hot = Antminer(chains=[chain(0, chip=99), chain(1), chain(2)])
    p1, p2 = await servers.antminer(Antminer()), await servers.antminer(hot)
    cfg = FarmServiceConfig(scan_cidrs=("127.0.0.1/32",), scan_ports={DriverKind.CGMINER: (p1, p2)},
                            rescan_interval_s=3600, poll_interval_s=0.2, deadline_s=2.0)
    svc = FarmService(store, cfg)
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(20):
            while not (svc.last_sweep and svc.last_sweep.devices == 2):
                await svc.swept.wait()
                svc.swept.clear()
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    states = {s.device.address.port: s.state for s in store.statuses()}
    assert states == {p1: DeviceState.OK, p2: DeviceState.OK}
    assert [(a.kind, a.device_id.endswith(f":{p2}")) for a in store.open_alerts()] == [("overheat", True)]
    assert service_router(svc).prefix == "/farm"


async def test_service_curtails_when_the_price_is_above_strike(servers: Servers, store: FarmStore) -> None:
    from farm_devices import Antminer as A

    from pithead.farm.curtailment import CurtailmentPolicy
    from pithead.farm.drivers import default_drivers
    from pithead.farm.energy import PriceSchedule

    with socket.socket() as s:  # no web interface on the fake devices: sleep goes through the API
        s.bind(("127.0.0.1", 0))
        no_web = int(s.getsockname()[1])
    hungry, lean = A(power_w=6000.0), A(power_w=2500.0)
    p1, p2 = await servers.antminer(hungry), await servers.antminer(lean)
    cfg = FarmServiceConfig(scan_cidrs=("127.0.0.1/32",), scan_ports={DriverKind.CGMINER: (p1, p2)},
                            poll_interval_s=0.2, deadline_s=2.0,
                            curtailment=CurtailmentPolicy(80.0, min_on_s=0.0, max_switches_per_step=1))
    svc = FarmService(store, cfg, drivers=default_drivers(antminer_web_port=no_web),
                      prices=PriceSchedule.flat(300.0))
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(20):
            while not hungry.sleeping:
                await svc.swept.wait()
                svc.swept.clear()
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    assert hungry.sleeping  # least efficient first; one per step
    sleep_audit = [a for a in store.audit_log() if a.action == "sleep" and a.outcome == "ok"]
    first = min(sleep_audit, key=lambda a: a.id)
    assert first.device_id.endswith(f":{p1}") and first.actor == "curtailment"


# ---- [farm] -> the service's settings, written once ------------------------------------------------------


def _farm_config(tmp_path: Path, **kw: object) -> FarmConfig:
    labels = tmp_path / "labels.csv"
    labels.write_text("cidr,site,rack\n10.1.2.0/24,north,A7\n")
    prices = tmp_path / "prices.csv"
    prices.write_text("start,price_per_mwh\n0,42.5\n")
    base: dict[str, object] = dict(
        scan=("10.1.0.0/16",), poll_interval=30.0, max_concurrent_polls=100, poll_deadline=3.0,
        rescan_interval=600.0, labels=str(labels), site="yard", webhook_url="http://hooks.example/farm",
        price_schedule=str(prices), strike_price=50.0, api_token_file="/etc/pithead/farm.token")
    return FarmConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_farm_setup_maps_the_config_and_reads_its_files(tmp_path: Path) -> None:
    setup = FarmSetup.from_config(_farm_config(tmp_path))
    assert setup.config == FarmServiceConfig(
        scan_cidrs=("10.1.0.0/16",), rescan_interval_s=600.0, poll_interval_s=30.0, max_concurrency=100,
        deadline_s=3.0, webhook_url="http://hooks.example/farm", curtailment=CurtailmentPolicy(50.0),
        api_token_file="/etc/pithead/farm.token", alert_group_min=5, alert_open_after_s=120.0,
        alert_clear_after_s=300.0, metrics_per_machine=False)  # [farm]'s defaults for a big site's alerts
    assert setup.prices is not None and setup.prices.price_at(1e9) == 42.5
    assert setup.labeler.labels_for(DeviceAddress("10.1.2.9", 4028, DriverKind.CGMINER)) == Labels("north", "A7", "9")
    assert setup.labeler.labels_for(DeviceAddress("10.9.0.1", 4028, DriverKind.CGMINER)).site == "yard"
    # curtailment needs both a strike price and a schedule
    assert FarmSetup.from_config(_farm_config(tmp_path, strike_price=None)).config.curtailment is None
    assert FarmSetup.from_config(_farm_config(tmp_path, price_schedule=None)).config.curtailment is None


def test_farm_setup_maps_curtailment_by_power(tmp_path: Path) -> None:
    fc = _farm_config(tmp_path, curtailment="power", power_budget_kw=500.0, strike_budget_kw=200.0,
                      power_step_up_kw=25.0, power_hold_s=1800.0)
    setup = FarmSetup.from_config(fc)
    assert setup.config.curtailment is None  # not on/off
    assert setup.config.site_power == SiteBudget(500.0, 50.0, 200.0, 25.0, 1800.0)
    assert FarmSetup.from_config(fc, role=Role.CENTRAL).config.site_power == setup.config.site_power
    assert FarmSetup.from_config(fc, role=Role.COLLECTOR).config.site_power is None  # the central's job
    # power mode with no budget of its own: operators' requests only (the strike price then sets nothing)
    plain = FarmSetup.from_config(_farm_config(tmp_path, curtailment="power")).config.site_power
    assert plain == SiteBudget() and FarmSetup.from_config(_farm_config(tmp_path)).config.site_power is None


def test_farm_setup_by_role_and_with_what_a_command_line_or_the_demo_decides(tmp_path: Path) -> None:
    fc = _farm_config(tmp_path)
    central = FarmSetup.from_config(fc, role=Role.CENTRAL)
    assert central.config.scan_cidrs == () and central.config.role is Role.CENTRAL  # collectors scan
    assert central.config.curtailment == CurtailmentPolicy(50.0) and central.prices is not None
    collector = FarmSetup.from_config(fc, role=Role.COLLECTOR, shard=(1, 3), poll_interval_s=5.0,
                                      scan_cidrs=("10.1.2.0/24",))
    c = collector.config
    assert (c.role, c.shard, c.poll_interval_s, c.scan_cidrs) == (Role.COLLECTOR, (1, 3), 5.0, ("10.1.2.0/24",))
    assert c.webhook_url is None and c.curtailment is None and collector.prices is None  # the central's job
    cli = FarmSetup.from_config(fc, webhook_url="http://other.example/")
    assert cli.config.webhook_url == "http://other.example/" and cli.config.scan_cidrs == ("10.1.0.0/16",)
    # the demo brings its own labels and prices (the files named are then not read) and its own scan
    missing = _farm_config(tmp_path, labels=str(tmp_path / "nope.csv"), price_schedule=str(tmp_path / "no.csv"))
    demo = FarmSetup.from_config(missing, scan_cidrs=(), scan_ports={DriverKind.AXEOS: (8080,)},
                                 rescan_interval_s=5.0, labeler=Labeler((), "demo"),
                                 prices=PriceSchedule.flat(60.0))
    assert demo.config.scan_cidrs == () and demo.config.scan_ports == {DriverKind.AXEOS: (8080,)}
    assert demo.config.rescan_interval_s == 5.0 and demo.labeler == Labeler((), "demo")
    assert demo.prices is not None and demo.prices.price_at(0.0) == 60.0


@pytest.mark.parametrize(("field", "text"), [("labels", "cidr,site\n"), ("price_schedule", "when,what\n1,2\n")])
def test_farm_setup_refuses_a_file_it_cannot_use(tmp_path: Path, field: str, text: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(FarmConfigError):
        FarmSetup.from_config(_farm_config(tmp_path, **{field: str(bad)}))
    with pytest.raises(FarmConfigError, match="No such file"):
        FarmSetup.from_config(_farm_config(tmp_path, **{field: str(tmp_path / "missing.csv")}))
    assert issubclass(FarmConfigError, ValueError)  # the shells' `except ValueError` keeps catching it

"""GET /farm/metrics: the farm's Prometheus series by site, rack, model and state; per machine only if asked."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from test_farm_store import fail

from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Identity,
    Labels,
    PollResult,
    Reading,
)
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import make_router


def machine(i: int, rack: str, model: str) -> Device:
    return Device(DeviceAddress(f"10.0.1.{i}", 4028, DriverKind.CGMINER), Identity("Antminer", model),
                  Labels("north", rack, str(i)), 0.0, 0.0)


def reading(d: Device, t: float, ths: float, power: float | None, chip: float) -> PollResult:
    board = Board(0, ths, 100, 100, chip - 15.0, chip)
    return PollResult(d.id, t, DeviceState.OK, Reading(d.id, t, ths, ths, (board,), (), power))


async def scrape(store: FarmStore, per_machine: bool = False) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    app = FastAPI()
    app.include_router(make_router(AsyncFarmStore(store), clock=lambda: 1000.0, metrics_per_machine=per_machine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://farm") as c:
        r = await c.get("/farm/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def lab(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


@pytest.fixture
def farm(store: FarmStore) -> FarmStore:
    a1, a2, a3 = machine(1, "A", "S19"), machine(2, "A", "S19"), machine(3, "A", "S19")
    b1, b2 = machine(4, "B", "S21"), machine(5, "B", "S21")
    store.upsert_devices([a1, a2, a3, b1, b2])
    store.write_results([reading(a1, 10.0, 100.0, 3000.0, 70.0), reading(a2, 10.0, 110.0, 3100.0, 75.0),
                         reading(a3, 10.0, 90.0, None, 66.0), reading(b1, 10.0, 200.0, 3500.0, 60.0),
                         reading(b2, 10.0, 190.0, 3400.0, 92.0)])
    store.write_results([fail(b2, 70.0, DeviceState.UNREACHABLE)])  # its last reading must not count
    store.open_alert(b2.id, "offline", "critical", "down", 200.0)
    store.open_alert("rack:north/A", "overheat", "critical", "3 of 3 machines", 200.0, machines=3)
    store.add_silence("rack:north/B", None, 5000.0, "ops", "", now=900.0)
    return store


async def test_series_by_site_rack_model_and_state(farm: FarmStore) -> None:
    m = await scrape(farm)
    a, b = lab(site="north", rack="A", model="S19"), lab(site="north", rack="B", model="S21")
    assert m["pithead_farm_machines"] == {lab(site="north", rack="A", model="S19", state="ok"): 3,
                                          lab(site="north", rack="B", model="S21", state="ok"): 1,
                                          lab(site="north", rack="B", model="S21", state="unreachable"): 1}
    assert m["pithead_farm_hashrate_hashes_per_second"] == {a: 300e12, b: 200e12}  # not b2's stale 190
    assert m["pithead_farm_power_watts"] == {a: 6100.0, b: 3500.0}
    # J/TH over the machines that report both (a3 reports no power)
    assert m["pithead_farm_efficiency_joules_per_terahash"][a] == pytest.approx(6100.0 / 210.0)
    assert m["pithead_farm_efficiency_joules_per_terahash"][b] == pytest.approx(17.5)
    assert m["pithead_farm_chip_temperature_max_celsius"] == {a: 75.0, b: 60.0}
    assert m["pithead_farm_board_temperature_max_celsius"] == {a: 60.0, b: 45.0}
    assert m["pithead_farm_alerts_open"] == {lab(kind="offline", severity="critical"): 1,
                                             lab(kind="overheat", severity="critical"): 1}
    assert m["pithead_farm_alerts_open_machines"] == {lab(kind="offline"): 1, lab(kind="overheat"): 3}
    assert m["pithead_farm_silences"] == {(): 1}
    assert not any(name.startswith("pithead_farm_machine_") for name in m)  # no per-machine series unasked


async def test_per_machine_series_only_when_asked(farm: FarmStore) -> None:
    m = await scrape(farm, per_machine=True)
    a1 = lab(machine="cgminer://10.0.1.1:4028", site="north", rack="A", model="S19")
    b2 = lab(machine="cgminer://10.0.1.5:4028", site="north", rack="B", model="S21")
    assert m["pithead_farm_machine_hashrate_hashes_per_second"][a1] == 100e12
    assert m["pithead_farm_machine_up"][a1] == 1.0 and m["pithead_farm_machine_up"][b2] == 0.0
    assert b2 not in m["pithead_farm_machine_hashrate_hashes_per_second"]
    assert len(m["pithead_farm_machine_up"]) == 5

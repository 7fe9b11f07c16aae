"""The farm page's read endpoints over a real store: rack totals that count only fresh readings of machines
that answer (issue 15: rack-1 "3194 TH/s" while the fleet said 1455), the device table (filter, search,
natural sort, server-side paging), the device page's data, and what the page may offer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from pithead.farm.energy import PriceSchedule
from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    Identity,
    Labels,
    PollResult,
    PoolEntry,
    Reading,
)
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import FarmAuth, make_router

NOW = 1_800_000_000.0
STALE_AFTER_S = 180.0
POOL_A = "stratum+tcp://pool-a:3333"
POOL_B = "stratum+tcp://pool-b:3333"


def _reading(dev: Device, t: float, ths: float, *, pool: str = POOL_A, power: float | None = 3000.0,
             temp: float = 65.0) -> Reading:
    return Reading(dev.id, t, ths, ths, (Board(0, ths, 100, 100, 55.0, temp),), (Fan(0, 4000), Fan(1, 4100)), power,
                   (PoolEntry(0, pool, "acct.w", True, True, 10, 0),), uptime_s=7200.0)


@pytest.fixture
def fleet_store() -> Iterator[FarmStore]:
    """rack-1: two answering machines (100 + 200 TH/s), one that answered 3000 TH/s and is now unreachable,
    one whose last good reading is older than the staleness bound; rack-2 and rack-10: eight more, for the
    table (positions 1..8, two models, two pools, two firmwares)."""
    store = FarmStore(":memory:")
    mk = lambda host, rack, pos, model="Antminer S19", fw="2023-01": Device(  # noqa: E731
        DeviceAddress(host, 4028, DriverKind.CGMINER), Identity("Antminer", model, fw), Labels("north", rack, pos))
    r1 = [mk(f"10.0.1.{n}", "rack-1", str(n)) for n in range(1, 5)]
    others = [mk(f"10.0.{2 if n <= 4 else 10}.{n}", "rack-2" if n <= 4 else "rack-10", str(n),
                 "Antminer S21" if n % 2 else "Antminer S19", "2024-05" if n % 2 else "2023-01") for n in range(1, 9)]
    store.upsert_devices(r1 + others)
    store.write_results([PollResult(r1[2].id, NOW - 600, DeviceState.OK, _reading(r1[2], NOW - 600, 3000.0))])
    store.write_results([
        PollResult(r1[0].id, NOW - 10, DeviceState.OK, _reading(r1[0], NOW - 10, 100.0)),
        PollResult(r1[1].id, NOW - 10, DeviceState.OK, _reading(r1[1], NOW - 10, 200.0)),
        PollResult(r1[2].id, NOW - 10, DeviceState.UNREACHABLE, error="connection refused"),
        PollResult(r1[3].id, NOW - 900, DeviceState.OK, _reading(r1[3], NOW - 900, 150.0)),
        *[PollResult(d.id, NOW - 5, DeviceState.OK,
                     _reading(d, NOW - 5, 10.0 * n, pool=POOL_B if n > 6 else POOL_A, temp=60.0 + n))
          for n, d in enumerate(others, start=1)],
    ])
    store.open_alert(others[0].id, "overheat", "critical", "chip 97 °C > 90 °C", NOW - 30)
    store.audit_begin("ops", others[0].id, "reboot", {"auth": "token"}, NOW - 20)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
async def client(fleet_store: FarmStore) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(make_router(AsyncFarmStore(fleet_store), None, PriceSchedule.flat(50.0), lambda: 0.05,
                                   clock=lambda: NOW, stale_after_s=STALE_AFTER_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        yield c


async def test_rack_totals_count_only_fresh_readings_of_answering_machines(client: httpx.AsyncClient) -> None:
    racks = (await client.get("/farm/api/racks")).json()
    total = racks["totals"]["north"]["rack-1"]
    assert total == {"devices": 4, "hashing": 2, "hashrate_ths": 300.0}  # not 3450 (+3000 unreachable, +150 stale)
    cells = {c["id"]: c for c in racks["sites"]["north"]["rack-1"]}
    assert cells["cgminer://10.0.1.3:4028"]["hashrate_ths"] is None  # unreachable: its old figure is not shown
    assert cells["cgminer://10.0.1.3:4028"]["colour"] == "error"
    assert cells["cgminer://10.0.1.4:4028"]["hashrate_ths"] is None  # stale
    assert list(racks["sites"]["north"]) == ["rack-1", "rack-2", "rack-10"]  # natural order
    # the fleet's figure (energy) agrees with the sum of the racks
    energy = (await client.get("/farm/api/energy")).json()
    rack_sum = sum(t["hashrate_ths"] for t in racks["totals"]["north"].values())
    assert energy["fleet"]["hashrate_ths"] == pytest.approx(rack_sum) == pytest.approx(300.0 + 360.0)


async def test_table_filters_searches_sorts_and_pages(client: httpx.AsyncClient) -> None:
    page = (await client.get("/farm/api/table", params={"facets": "true"})).json()
    assert page["total"] == page["fleet"] == 12 and len(page["rows"]) == 12
    # default order: site, rack, position, naturally (rack-2 before rack-10)
    assert [r["rack"] for r in page["rows"]] == ["rack-1"] * 4 + ["rack-2"] * 4 + ["rack-10"] * 4
    assert page["facets"]["rack"] == ["rack-1", "rack-2", "rack-10"]
    assert page["facets"]["pool"] == [POOL_A, POOL_B]
    assert page["facets"]["model"] == ["Antminer S19", "Antminer S21"]
    assert set(page["facets"]["state"]) == {"ok", "unreachable"}
    stale = next(r for r in page["rows"] if r["id"] == "cgminer://10.0.1.3:4028")
    assert stale["state"] == "unreachable" and not stale["fresh"] and stale["hashrate_ths"] == 3000.0
    assert stale["error"] == "connection refused"
    row = next(r for r in page["rows"] if r["id"] == "cgminer://10.0.2.1:4028")
    assert row["fresh"] and row["fans_rpm"] == [4000, 4100] and row["pool"] == POOL_A and row["uptime_s"] == 7200.0
    assert row["colour"] == "alert" and row["firmware"] == "2024-05" and row["worker"] == "acct.w"

    async def ids(**params: str) -> list[str]:
        return [r["id"].split("//")[1] for r in (await client.get("/farm/api/table", params=params)).json()["rows"]]

    assert await ids(model="Antminer S21", rack="rack-10") == ["10.0.10.5:4028", "10.0.10.7:4028"]
    assert await ids(pool=POOL_B) == ["10.0.10.7:4028", "10.0.10.8:4028"]
    assert await ids(firmware="2024-05", state="ok") == [f"10.0.{r}.{n}:4028" for r, n in
                                                          ((2, 1), (2, 3), (10, 5), (10, 7))]
    assert await ids(state="unreachable") == ["10.0.1.3:4028"]
    assert await ids(q="10.0.10.") == [f"10.0.10.{n}:4028" for n in (5, 6, 7, 8)]
    assert await ids(q="POOL-B") == ["10.0.10.7:4028", "10.0.10.8:4028"]  # case-insensitive
    # sort by hashrate: only counted readings have a value; the unreachable and the stale come last
    by_rate = await ids(sort="hashrate", desc="true")
    assert by_rate[:2] == ["10.0.1.2:4028", "10.0.1.1:4028"] and set(by_rate[-2:]) == {"10.0.1.3:4028", "10.0.1.4:4028"}
    assert (await ids(sort="hashrate"))[:3] == ["10.0.2.1:4028", "10.0.2.2:4028", "10.0.2.3:4028"]
    assert (await ids(sort="temp", desc="true"))[0] == "10.0.10.8:4028"
    assert (await ids(sort="id"))[:4] == ["10.0.1.1:4028", "10.0.1.2:4028", "10.0.1.3:4028", "10.0.1.4:4028"]
    # server-side paging
    p2 = (await client.get("/farm/api/table", params={"limit": "5", "offset": "5"})).json()
    assert p2["total"] == 12 and [r["rack"] for r in p2["rows"]] == ["rack-2"] * 3 + ["rack-10"] * 2
    assert p2["facets"] is None
    # bad input is a clear 422, never a 500
    for bad in ({"sort": "nope"}, {"limit": "0"}, {"limit": "501"}, {"offset": "-1"}, {"q": "x" * 101}):
        r = await client.get("/farm/api/table", params=bad)
        assert r.status_code == 422, (bad, r.text)


async def test_device_detail_and_page_info(client: httpx.AsyncClient) -> None:
    dev = "cgminer://10.0.2.1:4028"
    d = (await client.get(f"/farm/api/devices/{quote(dev, safe='')}/detail")).json()
    assert d["device"]["id"] == dev and d["identity"]["firmware"] == "2024-05"
    assert d["reading"]["boards"][0]["chips"] == 100 and d["reading"]["pools"][0]["url"] == POOL_A
    assert [a["kind"] for a in d["alerts"]] == ["overheat"]
    assert [(a["actor"], a["action"]) for a in d["audit"]] == [("ops", "reboot")]
    missing = await client.get(f"/farm/api/devices/{quote('cgminer://10.9.9.9:4028', safe='')}/detail")
    assert missing.status_code == 404 and "unknown device" in missing.json()["detail"]
    info = (await client.get("/farm/api/page")).json()
    assert info["token_required"] is False and info["power"] is True  # web.farm_power mounts POST .../power
    assert info["colours"]["ok"].startswith("#")
    page = await client.get("/farm/")
    assert page.status_code == 200 and 'src="assets/farm.js"' in page.text
    js = await client.get("/farm/assets/farm.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in js.text and "Authorization" in js.text
    assert (await client.get("/farm/assets/uPlot.iife.min.js")).status_code == 200
    for bad in ("../farm.py", "%2e%2e%2fapp.js", "index.html"):
        assert (await client.get(f"/farm/assets/{bad}")).status_code == 404


async def test_page_info_says_when_a_token_is_required(fleet_store: FarmStore) -> None:
    app = FastAPI()
    app.include_router(make_router(AsyncFarmStore(fleet_store), auth=FarmAuth("t" * 20)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        assert (await c.get("/farm/api/page")).json()["token_required"] is True

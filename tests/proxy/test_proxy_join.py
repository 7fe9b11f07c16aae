"""The proxy's figures joined with the farm: machines per rack (the farm inventory's labels, by the IP a
machine connects from or its worker name), in the REST API and Prometheus (per rack; per machine only when
asked); the farm's "hashing but no shares" alert judged on the proxy's figures; the proxy's page in
headless Chromium (switch and drain buttons against a real proxy, two real pithead pools upstream).

Machines are raw Stratum clients connecting from distinct loopback addresses (127.0.0.2, .3, .4), so the
proxy sees three IPs as it would see three ASICs; the farm is a real `FarmStore` behind the farm's own web
router, read over HTTP as `pithead proxy run` with `[proxy] farm_url` reads it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pithead.app.proxy import LocalProxyCredits
from pithead.config import PoolConfig
from pithead.farm.alerts import AlertManager, AlertThresholds
from pithead.farm.model import (
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Identity,
    Labels,
    PollResult,
    PoolEntry,
    Reading,
)
from pithead.farm.proxy_shares import ProxyShareActivity
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.proxy.figures import WindowCount, sum_windows
from pithead.proxy.proxy import FarmProxy
from pithead.template.sources.static import StaticTemplateSource
from pithead.web.farm import make_router
from pithead.web.proxy import FarmLabels, create_proxy_app, farm_devices_over_http
from pithead.web.server import WebServer
from stratum.helpers import regtest_template
from stratum.rawclient import RawClient

from .harness import WAIT_S, Upstream, start_proxy, stop_all, wait_for

pytestmark = pytest.mark.timeout(120)

IDENT = Identity("Antminer", "Antminer S19 XP", expected_ths=140.0)


def pool(name: str) -> Upstream:
    cfg = PoolConfig(port=0, mode="solo", start_difficulty=1e-6, min_difficulty=1e-9)
    return Upstream(name, cfg, lambda: StaticTemplateSource(regtest_template(bits=0x1D00FFFF, curtime=int(time.time()))))


async def machine(proxy: FarmProxy, ip: str, worker: str) -> RawClient:
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port, local_addr=(ip, 0))
    m = RawClient(r, w)
    await m.handshake(worker)
    await wait_for(lambda: m.job is not None, f"a job for {worker}")
    return m


def farm_rows() -> list[dict[str, Any]]:
    return [
        # known by IP (its worker name in the farm differs: the IP wins)
        {"id": "cgminer://127.0.0.2:4028", "host": "127.0.0.2", "site": "s1", "rack": "A", "position": "1",
         "worker": "renamed.m1"},
        # behind a NAT the farm sees another address: known by its worker name
        {"id": "cgminer://10.9.9.9:4028", "host": "10.9.9.9", "site": "s1", "rack": "B", "position": "2",
         "worker": "rackB.m2"},
    ]


def test_labels_by_ip_then_worker_and_behind_one_nat() -> None:
    labels = FarmLabels(lambda: asyncio.sleep(0, []))
    rows = [*farm_rows(),
            {"id": "d3", "host": "10.0.0.50", "site": "s2", "rack": "C", "worker": "nat.a"},
            {"id": "d4", "host": "10.0.0.50", "site": "s2", "rack": "D", "worker": "nat.b"}]
    labels.load(rows)
    assert labels.place("anything", ["127.0.0.2"]).rack == "A"  # type: ignore[union-attr]
    assert labels.place("rackB.m2", ["127.0.0.3"]).rack == "B"  # type: ignore[union-attr]
    assert labels.place("nat.b", ["10.0.0.50"]).rack == "D"  # type: ignore[union-attr]
    assert labels.place("nat.a", ["10.0.0.50"]).rack == "C"  # type: ignore[union-attr]
    assert labels.place("stranger", ["10.0.0.50"]) is None  # two machines at that IP, neither by this name
    assert labels.place("stranger", ["127.0.0.9"]) is None


async def test_a_failing_farm_keeps_the_last_labels_and_says_why() -> None:
    calls = 0

    async def fetch() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionRefusedError("farm down")
        return farm_rows()

    labels = FarmLabels(fetch, max_age_s=3600.0)
    await labels.refresh()
    await labels.refresh()  # fresh: not read again
    assert calls == 1 and labels.devices == 2 and labels.error is None
    await labels.refresh(force=True)
    assert calls == 2 and labels.error is not None and "farm down" in labels.error
    assert labels.place("x", ["127.0.0.2"]).rack == "A"  # type: ignore[union-attr]


def test_a_racks_windows_add_up() -> None:
    a = [WindowCount("5m", 300.0, 100.0, 3, 3e-6), WindowCount("1h", 3600.0, 100.0, 3, 3e-6)]
    b = [WindowCount("5m", 300.0, 300.0, 2, 4e-6), WindowCount("1h", 3600.0, 2000.0, 5, 9e-6)]
    five, hour = sum_windows([a, b])
    assert (five.shares, five.difficulty_sum, five.observed_s) == (5, 7e-6, 300.0)
    assert (hour.shares, hour.difficulty_sum, hour.observed_s) == (8, 12e-6, 2000.0)
    assert [w.shares for w in sum_windows([])] == [0, 0]


async def test_racks_metrics_and_the_farms_no_shares_alert(tmp_path: Path) -> None:
    up = pool("main")
    await up.start()
    # the farm: its store and web router over HTTP, as a separate `pithead farm run` serves them
    store = FarmStore(tmp_path / "farm.sqlite3")
    t0 = time.time()
    devices = [Device(DeviceAddress(ip, 4028, DriverKind.CGMINER), IDENT, Labels("s1", rack, str(i)))
               for i, (ip, rack) in enumerate((("127.0.0.2", "A"), ("127.0.0.3", "B"), ("127.0.0.4", "B"),
                                               ("127.0.0.5", "C")))]
    workers = ["rackA.m1", "rackB.m2", "rackB.m3", "elsewhere.m4"]
    store.upsert_devices(devices)
    store.write_results([PollResult(d.id, t0, DeviceState.OK, Reading(
        d.id, t0, 140.0, 140.0, pools=(PoolEntry(0, "stratum+tcp://proxy:3334", w, True, True),), uptime_s=86_400.0))
        for d, w in zip(devices, workers, strict=True)])
    farm_web = WebServer(_farm_app(AsyncFarmStore(store)), "127.0.0.1", 0)
    await farm_web.start()
    proxy = await start_proxy([up.spec(0)])
    ms: list[RawClient] = []
    try:
        ms = [await machine(proxy, "127.0.0.2", "rackA.m1"), await machine(proxy, "127.0.0.3", "rackB.m2"),
              await machine(proxy, "127.0.0.4", "rackB.m3"), await machine(proxy, "127.0.0.6", "stray.m5")]
        for m, w in ((ms[0], "rackA.m1"), (ms[1], "rackB.m2"), (ms[3], "stray.m5")):
            reply = await m.submit_one(w, m.job)  # type: ignore[arg-type]
            assert reply["result"] is True, reply
        await wait_for(lambda: proxy.figures["main"].counts.accepted == 3, "three shares credited upstream")

        labels = FarmLabels(farm_devices_over_http(farm_web.url))
        app = create_proxy_app(proxy, labels=labels)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            got = (await c.get("/proxy/api/racks")).json()
            assert got["labels"]["devices"] == 4 and got["labels"]["error"] is None
            by = {(r["site"], r["rack"]): r for r in got["racks"]}
            assert set(by) == {("s1", "A"), ("s1", "B"), ("", "")}
            assert (by["s1", "A"]["machines"], by["s1", "A"]["accepted"]) == (1, 1)
            assert (by["s1", "B"]["machines"], by["s1", "B"]["accepted"], by["s1", "B"]["mining"]) == (2, 1, 2)
            assert sorted(by["s1", "B"]["workers"]) == ["rackB.m2", "rackB.m3"]
            assert by["", ""]["workers"] == ["stray.m5"]  # the farm does not know it: unlabelled
            five = next(h for h in by["s1", "B"]["hashrate"] if h["window"] == "5m")
            assert five["shares"] == 1 and five["low_hps"] < five["hashrate_hps"] < five["high_hps"]
            mach = {m["worker"]: m for m in (await c.get("/proxy/api/machines")).json()}
            assert mach["rackA.m1"]["place"]["rack"] == "A" and mach["stray.m5"]["place"] is None
            metrics = (await c.get("/metrics")).text
            assert 'pithead_proxy_rack_shares_total{rack="A",result="accepted",site="s1"} 1.0' in metrics
            assert 'pithead_proxy_rack_machines{rack="B",site="s1",state="known"} 2.0' in metrics
            assert 'pithead_proxy_rack_hashrate_hashes_per_second{rack="B",site="s1",window="5m"}' in metrics
            assert "pithead_proxy_machine_" not in metrics  # per machine only when asked
            page = await c.get("/proxy/")
            assert page.status_code == 200 and "/proxy/proxy.js" in page.text
            assert (await c.get("/proxy/proxy.js")).status_code == 200
        per = create_proxy_app(proxy, labels=labels, per_machine=True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=per), base_url="http://t") as c:
            metrics = (await c.get("/metrics")).text
            assert 'pithead_proxy_machine_shares_total{result="accepted",worker="rackA.m1"} 1.0' in metrics

        # The farm's alert from the proxy's figures: m3 is connected and hashing but nothing was credited;
        # m1 and m2 were; m4 never came to the proxy (the proxy says nothing of it: not judged on its word).
        shares = ProxyShareActivity(LocalProxyCredits(proxy))
        await shares.take()
        times = shares.last_share_times([*workers, "stray.m5"])
        assert set(times) == {"rackA.m1", "rackB.m2", "rackB.m3", "stray.m5"}
        m3_seen = times["rackB.m3"]  # never credited: since when the proxy has seen it
        assert t0 - 1 <= m3_seen <= time.time() and proxy.machines.machines.get("rackB.m3") is None
        th = AlertThresholds()
        mgr = AlertManager(th, shares)
        assert mgr.evaluate(store, time.time()) == []  # a machine that just came is given the whole window
        # A window later with no new credit: m1, m2 (credited once, long ago) and m3 (never) are alerted;
        # m4, hashing on its own page, never came to the proxy: it says nothing of m4, so m4 is not judged.
        later = max(times.values()) + th.no_shares_after_s + 60
        events = mgr.evaluate(store, later)
        assert {(e.device_id, e.kind) for e in events} == {(d.id, "no_shares") for d in devices[:3]}
        assert "rackB.m3" in next(e.message for e in events if e.device_id == devices[2].id)
        # the credits come from the proxy's figures: m1's is the time its share was answered
        assert times["rackA.m1"] == proxy.machines.machines["rackA.m1"].credited.last_at
    finally:
        for m in ms:
            await m.close()
        await stop_all(proxy, up, farm_web)
        store.close()


def _farm_app(store: AsyncFarmStore) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(make_router(store))
    return app


async def test_the_proxy_page_in_a_browser(tmp_path: Path) -> None:
    """The page over a live proxy: upstreams with their credited shares, racks, the switch and drain buttons
    (loopback without a token: allowed), console clean."""
    from web.cdp import ARTIFACTS, Browser, find_chromium, require_chromium

    if find_chromium() is None:
        require_chromium()  # fails in CI, skips elsewhere
    ups = [pool("main"), pool("spare")]
    for u in ups:
        await u.start()
    proxy = await start_proxy([ups[0].spec(0), ups[1].spec(1)])
    labels = FarmLabels(lambda: asyncio.sleep(0, farm_rows()))
    web = WebServer(create_proxy_app(proxy, labels=labels), "127.0.0.1", 0)
    await web.start()
    m: RawClient | None = None
    try:
        m = await machine(proxy, "127.0.0.2", "rackA.m1")
        reply = await m.submit_one("rackA.m1", m.job)  # type: ignore[arg-type]
        assert reply["result"] is True
        await wait_for(lambda: proxy.figures["main"].counts.accepted == 1, "the share credited")
        async with Browser(require_chromium()) as b:
            await b.navigate(web.url + "/proxy/")
            await b.wait_for("document.body?.dataset.ready === '1'")
            row = "document.querySelector('#upstreams tr[data-upstream=\"main\"]')"
            assert await b.evaluate(f"{row}.querySelector('td.accepted').innerText") == "1"
            assert "active" in await b.evaluate(f"{row}.innerText")
            assert await b.evaluate("document.querySelector('#racks tr[data-rack=\"A\"]').innerText.includes('s1')")
            await b.screenshot(ARTIFACTS / "proxy-page.png")
            await b.evaluate("document.querySelector('#upstreams tr[data-upstream=\"main\"] "
                             "button[data-kind=\"drain\"]').click()")
            await b.wait_for("document.getElementById('msg').innerText.includes('mining on spare')")
            assert proxy.book.active == "spare" and "main" in proxy.failover.draining
            await b.wait_for("!!document.querySelector('#upstreams tr[data-upstream=\"main\"] "
                             "button[data-kind=\"resume\"]')")
            await b.evaluate("document.querySelector('#upstreams tr[data-upstream=\"main\"] "
                             "button[data-kind=\"resume\"]').click()")
            await b.wait_for("document.getElementById('msg').innerText.includes('resume main: done')")
            assert "main" not in proxy.failover.draining
            await b.evaluate("document.querySelector('#upstreams tr[data-upstream=\"main\"] "
                             "button[data-kind=\"switch\"]').click()")
            await b.wait_for("document.getElementById('msg').innerText.includes('switch main: done')")
            assert proxy.failover.pinned == "main"
            await wait_for(lambda: proxy.book.active == "main", "back on main", WAIT_S)
            await b.screenshot(ARTIFACTS / "proxy-page-after.png")
            assert b.console_errors == [], b.console_errors
    finally:
        if m is not None:
            await m.close()
        await stop_all(proxy, *ups, web)

"""The farm's "hashing but no shares" alert from a farm proxy in another process, read over its HTTP API.

A real proxy (in front of a real pithead pool) serves its API on loopback as `pithead proxy run` does; the
farm reads `/proxy/api/credited` (`ProxyApiCredits`) through the same `ProxyShareActivity` that reads a
proxy in-process, and its `AlertManager` judges a real `FarmStore`'s devices on it. Then the proxy's API
goes away: no alert is opened or resolved on that (the open ones stay), and the reason is shown — on the
alert manager, and on the farm's `/farm/api/shares` of a `FarmService` configured with `[farm] proxy_url`.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pithead.config import ConfigError, FarmConfig, validate
from pithead.farm.alerts import AlertManager, AlertThresholds, ShareSourceDown
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
from pithead.farm.proxy_shares import ProxyApiCredits, ProxyShareActivity, parse_credited
from pithead.farm.service import FarmService, FarmSetup
from pithead.farm.store import FarmStore
from pithead.web.farm import service_router
from pithead.web.proxy import create_proxy_app
from pithead.web.server import WebServer
from stratum.rawclient import RawClient

from .harness import start_proxy, stop_all, wait_for
from .test_proxy_join import machine, pool

pytestmark = pytest.mark.timeout(120)

IDENT = Identity("Antminer", "Antminer S19 XP", expected_ths=140.0)


def farm_with(store: FarmStore, workers: list[str], now: float) -> list[Device]:
    devices = [Device(DeviceAddress(f"127.0.1.{i + 1}", 4028, DriverKind.CGMINER), IDENT, Labels("s1", "A", str(i)))
               for i in range(len(workers))]
    store.upsert_devices(devices)
    store.write_results([PollResult(d.id, now, DeviceState.OK, Reading(
        d.id, now, 140.0, 140.0, pools=(PoolEntry(0, "stratum+tcp://proxy:3334", w, True, True),), uptime_s=86_400.0))
        for d, w in zip(devices, workers, strict=True)])
    return devices


async def test_the_alert_from_a_proxy_in_another_process_and_no_false_alert_when_it_is_down(tmp_path: Path) -> None:
    up = pool("main")
    await up.start()
    proxy = await start_proxy([up.spec(0)])
    web = WebServer(create_proxy_app(proxy), "127.0.0.1", 0)
    await web.start()
    store = FarmStore(tmp_path / "farm.sqlite3")
    t0 = time.time()
    workers = ["rackA.m1", "rackA.m2", "elsewhere.m3"]
    devices = farm_with(store, workers, t0)
    ms: list[RawClient] = []
    try:
        # m1 gets a share credited; m2 is connected and hashing with nothing credited; m3 never comes
        ms = [await machine(proxy, "127.0.0.2", "rackA.m1"), await machine(proxy, "127.0.0.3", "rackA.m2")]
        reply = await ms[0].submit_one("rackA.m1", ms[0].job)  # type: ignore[arg-type]
        assert reply["result"] is True, reply
        await wait_for(lambda: proxy.figures["main"].counts.accepted == 1, "m1's share credited")

        async with httpx.AsyncClient(base_url=web.url) as c:
            body = (await c.get("/proxy/api/credited")).json()
        assert set(body["machines"]) == {"rackA.m1", "rackA.m2"}
        assert all(age >= 0 for age in body["machines"].values())

        shares = ProxyShareActivity(ProxyApiCredits(web.url))
        with pytest.raises(ShareSourceDown, match="not read yet"):
            shares.last_share_times(workers)
        await shares.take()
        assert shares.problem is None and shares.status()["machines"] == 2
        times = shares.last_share_times(workers)
        assert set(times) == {"rackA.m1", "rackA.m2"}  # the proxy says nothing of m3: not judged on its word
        credit = proxy.machines.machines["rackA.m1"].credited.last_at
        assert credit is not None and abs(times["rackA.m1"] - credit) < 5.0  # an age, turned into a farm time

        th = AlertThresholds()
        mgr = AlertManager(th, shares)
        assert mgr.evaluate(store, time.time()) == []  # a machine that just came has the whole window
        later = max(v for v in times.values() if v is not None) + th.no_shares_after_s + 60
        opened = mgr.evaluate(store, later)
        assert {(e.device_id, e.action, e.kind) for e in opened} == {
            (devices[0].id, "opened", "no_shares"), (devices[1].id, "opened", "no_shares")}
        assert mgr.shares_problem is None

        # the proxy's API goes away: no read, no judgement — nothing opened, nothing resolved, the reason shown
        await web.stop()
        await shares.take()
        assert shares.problem is not None and web.url in shares.problem
        with pytest.raises(ShareSourceDown):
            shares.last_share_times(workers)
        assert mgr.evaluate(store, later + 3600) == []
        assert mgr.shares_problem is not None and "cannot read the proxy at" in mgr.shares_problem
        assert {a.device_id for a in store.open_alerts() if a.kind == "no_shares"} == {devices[0].id, devices[1].id}
    finally:
        for m in ms:
            await m.close()
        await stop_all(proxy, up)
        store.close()


async def test_a_farm_service_with_proxy_url_reads_the_proxy_and_shows_why_it_cannot(tmp_path: Path) -> None:
    """`[farm] proxy_url`: the service reads the proxy by itself; an unreachable one is shown on
    /farm/api/shares (a port nobody listens on: refused at once)."""
    cfg = FarmConfig(proxy_url="http://127.0.0.1:9", proxy_read_interval=0.05)
    validate(cfg)
    setup = FarmSetup.from_config(cfg)
    assert setup.config.proxy_url == "http://127.0.0.1:9"
    store = FarmStore(tmp_path / "farm.sqlite3")
    svc = FarmService(store, setup.config)
    try:
        assert svc.share_reader is not None
        await svc.share_reader.take()
        app = FastAPI()
        app.include_router(service_router(svc))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            got = (await c.get("/farm/api/shares")).json()
        assert got["configured"] is True and got["source"] == "the proxy at http://127.0.0.1:9"
        assert "cannot read the proxy at http://127.0.0.1:9" in got["problem"]
    finally:
        store.close()


async def test_the_farm_page_says_why_no_shares_cannot_be_judged(tmp_path: Path) -> None:
    """The farm's page, in headless Chromium: with `[farm] proxy_url` on a proxy that does not answer, the
    alerts panel says "no shares" is not judged, and why."""
    from web.cdp import Browser, find_chromium, require_chromium

    if find_chromium() is None:
        require_chromium()  # fails in CI, skips elsewhere
    store = FarmStore(tmp_path / "farm.sqlite3")
    svc = FarmService(store, FarmSetup.from_config(FarmConfig(proxy_url="http://127.0.0.1:9")).config)
    assert svc.share_reader is not None
    await svc.share_reader.take()
    app = FastAPI()
    app.include_router(service_router(svc))
    web = WebServer(app, "127.0.0.1", 0)
    await web.start()
    try:
        async with Browser(require_chromium()) as b:
            await b.navigate(web.url + "/farm/")
            await b.wait_for("document.body?.dataset.ready === '1'")
            text = await b.wait_for("!document.getElementById('shares-source').hidden && "
                                    "document.getElementById('shares-source').innerText")
            assert "not judged" in text and "cannot read the proxy at http://127.0.0.1:9" in text, text
            assert b.console_errors == [], b.console_errors
    finally:
        await web.stop()
        store.close()


def test_the_proxy_url_and_its_answer_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"farm\.proxy_url"):
        validate(FarmConfig(proxy_url="stratum+tcp://10.0.0.2:3334"))
    with pytest.raises(ConfigError, match=r"farm\.proxy_read_interval"):
        validate(FarmConfig(proxy_read_interval=0))
    assert parse_credited({"now": 1.0, "machines": {"a.b": 3, "c": 0.5}}) == {"a.b": 3.0, "c": 0.5}
    for bad in ([], {"machines": []}, {"machines": {"a": -1}}, {"machines": {"a": "3"}}, {"machines": {"a": True}},
                {"machines": {"": 1}}, {"machines": {"a": float("nan")}}):
        with pytest.raises(ValueError):
            parse_credited(bad)

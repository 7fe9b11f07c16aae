"""The farm page in headless Chromium (driven over the DevTools Protocol) against a simulated fleet that the
farm service discovers and polls: the device table fills, a filter and a search narrow it, a rack-map slot
opens its device page (charts with readings, audit log), and the reboot button, refused until the operator
enters the farm token, reboots the simulated machine and lands in the audit log. Screenshots are kept
under test-artifacts/."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from pithead.farm.drivers import default_drivers
from pithead.farm.inventory import Labeler
from pithead.farm.model import DeviceState, DriverKind
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import SimClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer
from pithead.web.farm import FarmAuth, service_router
from pithead.web.server import WebServer
from web.cdp import ARTIFACTS, Browser, require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

TOKEN = "page-test-token-0123456789abcdef"
DEVICES = 10
MIX = "s19xp:2,s19:2,s21:1,bitaxe-gamma:1"
WAIT_S = 60.0  # generous: two busy cores


@dataclass
class Site:
    url: str
    fleet: Fleet
    store: FarmStore
    service: FarmService


@pytest.fixture
async def site(tmp_path) -> AsyncIterator[Site]:  # type: ignore[no-untyped-def]
    net = f"127.{os.getpid() % 50 + 150}.{os.getpid() % 200 + 20}.0/28"
    fleet = Fleet.build(DEVICES, MIX, seed=3, network=net, clock=SimClock())
    sim = FleetServer(fleet, api_port=0, web_port=0)
    await sim.start()
    api, web = sim.bound_ports()
    store = FarmStore(tmp_path / "farm.sqlite3")
    first = fleet.devices[0].ip.rsplit(".", 1)[0]
    racks = Labeler.from_csv(f"cidr,site,rack\n{first}.0/29,lab,rack-2\n{first}.8/29,lab,rack-10\n", "lab")
    cfg = FarmServiceConfig(scan_cidrs=(net,), scan_ports={DriverKind.CGMINER: (api,), DriverKind.AXEOS: (web,)},
                            poll_interval_s=1.0, rescan_interval_s=3600.0, deadline_s=5.0, probe_timeout_s=5.0)
    # the simulated Antminers' stock web interface (sleep/wake) is on the fleet's web port
    service = FarmService(store, cfg, drivers=default_drivers(antminer_web_port=web), labeler=racks)
    task = asyncio.create_task(service.run())
    server = WebServer(_app(service), "127.0.0.1", 0)
    await server.start()
    try:
        async with asyncio.timeout(WAIT_S):  # discovered, and read twice (the charts have two points)
            while True:
                sts = await service.store.call(FarmStore.statuses)
                if len(sts) == DEVICES and all(s.state is DeviceState.OK for s in sts) and service.last_sweep and \
                        service.last_sweep.devices == DEVICES:
                    break
                await asyncio.sleep(0.2)
        yield Site(server.url, fleet, store, service)
    finally:
        await server.stop()
        service.stop()
        await asyncio.wait_for(task, 30)
        await sim.close()
        store.close()


def _app(service: FarmService) -> FastAPI:
    app = FastAPI()
    app.include_router(service_router(service, auth=FarmAuth(TOKEN)))
    return app


async def test_table_filter_device_page_and_an_action(site: Site) -> None:
    chromium = require_chromium()
    async with Browser(chromium) as b:
        await b.navigate(site.url + "/farm/")
        await b.wait_for("document.body?.dataset.ready === '1'")
        rows = "document.querySelectorAll('#devices tbody tr[data-id]').length"
        assert await b.wait_for(f"{rows} === {DEVICES} && {rows}") == DEVICES
        assert await b.evaluate("document.getElementById('devices-count').innerText") == f"{DEVICES} devices"
        # racks in natural order, each with its total
        assert await b.evaluate("[...document.querySelectorAll('.rack')].map(r => r.dataset.rack).join()") \
            == "rack-2,rack-10"
        await b.screenshot(ARTIFACTS / "farm-table.png")

        # filter by model: the select lists the fleet's models; choosing one narrows the table to it
        models = await b.evaluate("[...document.getElementById('f-model').options].map(o => o.value).filter(Boolean)")
        assert "Antminer S19 XP" in models and "BM1370" in models
        await b.evaluate("(s => { s.value = 'Antminer S19 XP'; s.dispatchEvent(new Event('change')); })"
                         "(document.getElementById('f-model'))")
        want = sum(1 for d in site.fleet if d.spec.type_string == "Antminer S19 XP")
        await b.wait_for(f"{rows} === {want} && [...document.querySelectorAll('#devices tbody tr')]"
                         ".every(r => r.innerText.includes('S19 XP'))")
        assert await b.evaluate("document.getElementById('devices-count').innerText") \
            == f"{want} of {DEVICES} devices match"
        # clear it, search by the last device's address instead
        await b.evaluate("(s => { s.value = ''; s.dispatchEvent(new Event('change')); })"
                         "(document.getElementById('f-model'))")
        await b.wait_for(f"{rows} === {DEVICES}")
        last_ip = site.fleet.devices[-1].ip
        await b.evaluate(f"(q => {{ q.value = '{last_ip}:'; q.dispatchEvent(new Event('input')); }})"
                         "(document.getElementById('q'))")
        await b.wait_for(f"{rows} === 1")
        # sort by hashrate, descending (click twice on the header)
        await b.evaluate("document.querySelector('th[data-sort=hashrate]').click()")
        await b.wait_for("document.querySelector('th[data-sort=hashrate]').dataset.dir === 'asc'")

        # the rack map's first slot opens its device page: its charts, its (empty) audit log
        target = await b.evaluate("document.querySelector('#racks a.cell').dataset.id")
        await b.evaluate("document.querySelector('#racks a.cell').click()")
        await b.wait_for(f"document.getElementById('device-view').dataset.ready === {target!r}")
        assert await b.evaluate("document.getElementById('fleet-view').hidden") is True
        assert target in await b.evaluate("document.getElementById('device-title').innerText")
        points = await b.wait_for("window.__farm.charts.hashrate && window.__farm.charts.hashrate.data[0].length")
        assert points >= 1
        assert "no actions yet" in await b.evaluate("document.getElementById('device-audit').innerText")
        # the power-target endpoint is mounted (web.farm_power): the control is enabled
        assert await b.evaluate("document.getElementById('act-power').disabled") is False
        assert "not available" not in await b.evaluate("document.getElementById('power-note').innerText")

        # reboot without the token: two clicks (arm, confirm), refused with 401, nothing done
        sim = site.fleet.device(target.split("//")[1].rsplit(":", 1)[0])
        before = sim.restarts
        await b.evaluate("document.getElementById('act-reboot').click()")
        assert "confirm" in await b.evaluate("document.getElementById('act-reboot').innerText")
        await b.evaluate("document.getElementById('act-reboot').click()")
        await b.wait_for("document.getElementById('action-result').innerText.includes('refused (401)')")
        assert sim.restarts == before
        # enter the token (kept in sessionStorage, sent as the bearer header), press again: rebooted, audited
        await b.evaluate(f"document.getElementById('token').value = {TOKEN!r}")
        await b.evaluate("document.getElementById('token-save').click()")
        assert await b.evaluate("sessionStorage.getItem('pithead.farm.token')") == TOKEN
        # sleep, through the machine's own web interface (the token is now sent): it stops hashing, audited
        await b.evaluate("document.getElementById('act-sleep').click()")
        await b.evaluate("document.getElementById('act-sleep').click()")
        await b.wait_for("document.getElementById('action-result').innerText.includes('sleep: ok')"
                         " || document.getElementById('action-result').innerText.includes('failed')")
        assert 'sleep: ok' in await b.evaluate("document.getElementById('action-result').innerText"), \
            await b.evaluate("document.getElementById('action-result').innerText")
        assert sim.sleeping
        # then reboot it
        await b.evaluate("document.getElementById('act-reboot').click()")
        await b.evaluate("document.getElementById('act-reboot').click()")
        await b.wait_for("document.getElementById('action-result').innerText.includes('reboot: ok')")
        assert sim.restarts == before + 1
        await b.wait_for("document.getElementById('device-audit').innerText.includes('reboot')")
        audit = await b.evaluate("document.getElementById('device-audit').innerText")
        assert "web" in audit and "ok" in audit and '"auth":"token"' in audit
        await b.screenshot(ARTIFACTS / "farm-device.png")
        # the one refusal above is logged by Chromium as a failed request; nothing else may be
        expected = [e for e in b.console_errors if "status of 401" in e and e.endswith("/reboot")]
        assert len(expected) == 1 and b.console_errors == expected, b.console_errors
    rows_audit = [(a.actor, a.action, a.outcome, a.params.get("auth")) for a in site.store.audit_log(target)]
    assert rows_audit == [("web", "reboot", "ok", "token"), ("web", "sleep", "ok", "token")]

"""The farm page in a real headless Chromium: its script fetches the JSON API and draws the rack map,
the alerts and the energy table (no external assets, so it works on an air-gapped farm LAN)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from pithead.farm.actions import ActionService
from pithead.farm.curtailment import PowerPlan, PowerStep
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
    Reading,
)
from pithead.farm.power import Hold, PowerController, SiteBudget, SitePower, SiteState
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import COLOURS, make_router

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def farm_url(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    store = FarmStore(tmp_path / "farm.sqlite3")
    devices = [Device(DeviceAddress(f"10.0.{r}.{i}", 4028, DriverKind.CGMINER), Identity("Antminer", "Antminer S21"),
                      Labels("north", f"R{r}", f"{i:02d}")) for r in (1, 2) for i in range(1, 7)]
    store.upsert_devices(devices)
    results = []
    for n, d in enumerate(devices):
        if n == 3:
            results.append(PollResult(d.id, 1.0, DeviceState.TIMEOUT, error="no answer"))
        else:
            r = Reading(d.id, 1.0, 200.0, 200.0, (Board(0, 200.0, 108, 108, 50.0, 65.0),), (Fan(0, 3000),), 3500.0)
            results.append(PollResult(d.id, 1.0, DeviceState.OK, r))
    store.write_results(results)
    store.open_alert(devices[5].id, "overheat", "critical", "chip 97 °C > 90 °C", 1.0)
    store.set_curtailed(devices[7].id, True, 1.0)
    # the site power panel: what the service's last power step saw and planned, and an operator's hold
    shared = AsyncFarmStore(store)
    site_power = SitePower(PowerController(ActionService(shared, {})), SiteBudget(budget_kw=40.0))
    plan = PowerPlan((PowerStep(devices[0].id, "set", 3000.0, 3000.0),), 38_500.0, 38_000.0, 36_000.0,
                     "site 38.5 kW over the budget 36.0 kW: shed 0.5 kW")
    site_power.state = SiteState(1.0, 36.0, "hold", 45.0, 12, 38.5, 38.0, 3, 1, 2, plan, 0)
    site_power.hold = Hold(36.0, "", "grid-op", "token", 1.0, 7201.0, None, 300.0)
    app = FastAPI()
    app.include_router(make_router(shared, None, PriceSchedule.flat(45.0), lambda: 0.05, site_power=site_power))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}/farm/"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_page_draws_rack_map_alerts_and_energy(farm_url: str) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine")
    out = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         farm_url],
        capture_output=True, text=True, timeout=60,
    )
    dom = out.stdout.split("<script>")[0]  # the rendered document, without the script's own source
    assert "R1 (6)" in dom and "R2 (6)" in dom  # two racks of six
    assert dom.count('class="cell"') == 12
    for name, count in (("ok", 9), ("alert", 1), ("error", 1), ("curtailed", 1)):
        assert dom.count(f"background:{COLOURS[name]}\"></a>") == count, name
    assert "chip 97 °C &gt; 90 °C" in dom or "chip 97 °C > 90 °C" in dom
    assert "price 45.00/MWh" in dom and "north/R1" in dom
    assert "curtailment by power" in dom and "36.0 kW" in dom and "an operator's request" in dom
    assert "<span>site now</span><b>38.50 kW</b>" in dom and "<span>machines lowered</span><b>3</b>" in dom
    assert "<span>asleep</span><b>1</b>" in dom and "held by grid-op" in dom and "shed 0.5 kW" in dom

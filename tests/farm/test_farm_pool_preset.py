"""The farm's pool action with a named preset (`[[farm.pool_presets]]`): machines pointed at the farm proxy.

A simulated Antminer (the farm's cgminer API on loopback) is polled, so the farm knows the worker it mines
as; the preset "proxy" then puts the proxy's URL on it with that same worker name (`{worker}`), through the
API (`POST /farm/api/devices/{id}/pools {"preset": "proxy"}`) and the CLI (`pithead farm switch-pool DEVICE
--preset proxy`). Each is audited with the preset's name; an unknown preset, or `{worker}` on a device never
read, is refused before anything is sent, and audited too.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from farm_devices import Antminer, Servers
from fastapi import FastAPI
from test_farm_cli import device_port  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from pithead.cli.farm import app as farm_cli
from pithead.config import ConfigError, FarmConfig, PoolPreset, validate
from pithead.farm.actions import ActionService
from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity
from pithead.farm.poller import Poller
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import make_router

PROXY_URL = "stratum+tcp://10.0.0.2:3334"
PRESETS = (PoolPreset("proxy", (PROXY_URL,)),
           PoolPreset("direct", ("stratum+tcp://pool.example:3333", "stratum+tcp://backup.example:3333"), "acct.farm"))


async def test_the_proxy_preset_over_the_api_keeps_each_devices_worker(servers: Servers, store: FarmStore) -> None:
    dev = Antminer(privileged=True)
    port = await servers.antminer(dev)
    d = Device(DeviceAddress("127.0.0.1", port, DriverKind.CGMINER), Identity("Antminer", "Antminer S19 XP"))
    never_read = Device(DeviceAddress("127.0.0.1", port + 1 if port < 65535 else port - 1, DriverKind.CGMINER),
                        Identity("Antminer", "Antminer S19"))
    store.upsert_devices([d, never_read])
    drivers = default_drivers()
    await Poller(drivers, deadline_s=5.0).sweep([d], store.write_results)
    shared = AsyncFarmStore(store)
    app = FastAPI()
    app.include_router(make_router(shared, ActionService(shared, drivers, presets=PRESETS)))
    # no token: actions are allowed on a loopback connection (the client's address says so)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        r = await c.post(f"/farm/api/devices/{d.id}/pools", json={"actor": "ops", "preset": "proxy"})
        assert r.status_code == 200, r.text
        assert r.json()["ok"], r.json()
        assert dev.pools == [(PROXY_URL, "addr.rig1")]  # the proxy's URL, the device's own worker name
        r = await c.post(f"/farm/api/devices/{d.id}/pools", json={"actor": "ops", "preset": "direct"})
        assert r.json()["ok"] and dev.pools == [("stratum+tcp://pool.example:3333", "acct.farm"),
                                                ("stratum+tcp://backup.example:3333", "acct.farm")]
        unknown = (await c.post(f"/farm/api/devices/{d.id}/pools", json={"actor": "ops", "preset": "nope"})).json()
        assert not unknown["ok"] and "no pool preset named 'nope'" in unknown["error"] and "proxy" in unknown["error"]
        unread = (await c.post(f"/farm/api/devices/{never_read.id}/pools",
                               json={"actor": "ops", "preset": "proxy"})).json()
        assert not unread["ok"] and "not known yet" in unread["error"]
        both = await c.post(f"/farm/api/devices/{d.id}/pools",
                            json={"actor": "ops", "preset": "proxy", "pools": [{"url": PROXY_URL, "user": "u"}]})
        assert both.status_code == 422 and "either pools" in both.text
        assert (await c.post(f"/farm/api/devices/{d.id}/pools", json={"actor": "ops"})).status_code == 422
    assert dev.pools[0][0] == "stratum+tcp://pool.example:3333"  # the refused ones sent nothing
    log = sorted(store.audit_log(), key=lambda a: a.id)
    assert [(a.action, a.params.get("preset"), a.outcome) for a in log] == [
        ("set_pools", "proxy", "ok"), ("set_pools", "direct", "ok"), ("set_pools", "nope", "invalid"),
        ("set_pools", "proxy", "invalid")]
    assert log[0].params["pools"] == [{"url": PROXY_URL, "user": "addr.rig1"}]
    assert log[0].params["auth"] == "loopback"


def test_switch_pool_preset_from_the_cli(tmp_path: Path, device_port: tuple[int, Antminer]) -> None:  # noqa: F811
    port, dev = device_port
    db = str(tmp_path / "farm.sqlite3")
    cfg = tmp_path / "pithead.toml"
    cfg.write_text(f'[[farm.pool_presets]]\nname = "proxy"\nurls = ["{PROXY_URL}"]\n')
    runner = CliRunner()
    r = runner.invoke(farm_cli, ["scan", "127.0.0.1/32", "--db", db, "--cgminer-port", str(port), "--axeos-port", "1",
                                 "--probe-timeout", "5"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(farm_cli, ["poll", "--once", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(farm_cli, ["switch-pool", f"127.0.0.1:{port}", "--preset", "proxy", "--config", str(cfg),
                                 "--db", db])
    assert r.exit_code == 0, r.output
    assert dev.pools == [(PROXY_URL, "addr.rig1")]
    r = runner.invoke(farm_cli, ["switch-pool", f"127.0.0.1:{port}", "--preset", "other", "--config", str(cfg),
                                 "--db", db])
    assert r.exit_code == 1 and "no pool preset named 'other'" in r.output
    r = runner.invoke(farm_cli, ["switch-pool", f"127.0.0.1:{port}", "--db", db])
    assert r.exit_code != 0 and "INDEX or --preset" in r.output
    with FarmStore(db) as s:
        assert [(a.params.get("preset"), a.outcome, a.params.get("auth")) for a in reversed(s.audit_log())] == [
            ("proxy", "ok", "cli"), ("other", "invalid", "cli")]


def test_presets_are_checked() -> None:
    validate(FarmConfig(pool_presets=PRESETS))
    for bad, key in ((PoolPreset("", (PROXY_URL,)), "name"), (PoolPreset("p", ()), "urls"),
                     (PoolPreset("p", ("http://x:1",)), "urls"), (PoolPreset("p", (PROXY_URL,) * 4), "urls"),
                     (PoolPreset("p", (PROXY_URL,), "{host}"), "user")):
        with pytest.raises(ConfigError, match=rf"farm\.pool_presets\[0\]\.{key}"):
            validate(FarmConfig(pool_presets=(bad,)))
    with pytest.raises(ConfigError, match="names two presets"):
        validate(FarmConfig(pool_presets=(PRESETS[0], PRESETS[0])))

"""Who may use the farm's action endpoints: bearer token when one is configured, else loopback only.

Actions run against the real simulated fleet (`pithead.fleetsim`) on its own loopback addresses: an action
that is let through really reboots or repoints a simulated Antminer, and one that is refused leaves it
untouched and writes nothing to the audit log. Loopback requests go through a real uvicorn on 127.0.0.1
(the connection's own addresses are what the rule looks at); non-local ones through httpx's ASGI
transport with a LAN client address, which is what uvicorn would put in the scope for a LAN caller.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

pytest.importorskip("pithead.fleetsim.server")

from pithead.config import load
from pithead.farm.actions import ActionService
from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer
from pithead.web.farm import TOKEN_ENV, FarmAuth, FarmAuthError, load_token, make_router, service_router
from pithead.web.server import WebServer

TOKEN = "s3cret-token-for-the-farm-0123456789"
NETWORK = "127.83.0.0/29"  # the simulated devices' own loopback addresses
LAN_CLIENT = ("192.168.1.50", 40_000)  # a caller elsewhere on the farm LAN
LAN_SERVER = "http://10.1.0.5"  # the farm manager's LAN address, as that caller reaches it


@dataclass
class Farm:
    fleet: Fleet
    clock: ManualClock
    store: FarmStore
    actions: ActionService
    device: Device

    @property
    def sim_device(self):  # type: ignore[no-untyped-def]
        return self.fleet.device(self.device.address.host)

    def settle(self) -> None:
        """Let simulated time pass so a device that was just rebooted answers again."""
        self.clock.advance(600.0)

    def router(self, auth: FarmAuth | None = None) -> APIRouter:
        return make_router(self.actions.store, self.actions, auth=auth)

    def app(self, auth: FarmAuth | None = None, router: APIRouter | None = None) -> FastAPI:
        app = FastAPI()
        app.include_router(router or self.router(auth))
        return app


@pytest.fixture
async def farm() -> AsyncIterator[Farm]:
    clock = ManualClock()
    fleet = Fleet.build(1, "s19xp:1", seed=5, network=NETWORK, clock=clock)
    clock.advance(600.0)
    server = FleetServer(fleet, api_port=0, web_port=0)
    await server.start()
    api_port, _web_port = server.bound_ports()
    sim = next(iter(fleet))
    device = Device(DeviceAddress(sim.ip, api_port, DriverKind.CGMINER), Identity("Antminer", sim.spec.type_string),
                    Labels("north", "A1", "01"))
    store = FarmStore(":memory:")
    store.upsert_devices([device])
    try:
        yield Farm(fleet, clock, store, ActionService(AsyncFarmStore(store), default_drivers(), clock=clock.now),
                   device)
    finally:
        store.close()
        await server.close()


def lan_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=LAN_CLIENT), base_url=LAN_SERVER)


def action_url(device_id: str, action: str) -> str:
    return f"/farm/api/devices/{quote(device_id, safe='')}/{action}"


Serve = Callable[[FarmAuth | None], Awaitable[str]]


@pytest.fixture
async def serve(farm: Farm) -> AsyncIterator[Serve]:
    """Serves the farm router with a real uvicorn on 127.0.0.1 (port 0: a free one); returns its URL."""
    servers: list[WebServer] = []

    async def start(auth: FarmAuth | None) -> str:
        web = WebServer(farm.app(auth), "127.0.0.1", 0)
        await web.start()
        servers.append(web)
        return web.url

    try:
        yield start
    finally:
        for web in servers:
            await web.stop()


@pytest.fixture
async def loopback_server(serve: Serve) -> str:
    """The router with no token configured, on 127.0.0.1."""
    return await serve(None)


# ---- a token is configured ----------------------------------------------------------------------------


async def test_token_missing_or_wrong_is_401_and_nothing_happens(farm: Farm) -> None:
    url = action_url(farm.device.id, "reboot")
    async with lan_client(farm.app(FarmAuth(TOKEN))) as c:
        missing = await c.post(url, json={"actor": "mallory"})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in missing.json()["detail"]
        wrong = await c.post(url, json={"actor": "mallory"}, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong farm API token"
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = await c.post(url, json={"actor": "mallory"}, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        prefix = await c.post(url, json={"actor": "mallory"}, headers={"Authorization": f"Bearer {TOKEN[:-1]}"})
        assert prefix.status_code == 401
        # authorisation comes before body validation and before the device lookup
        assert (await c.post(url, json={})).status_code == 401
        assert (await c.post(action_url("cgminer://10.9.9.9:4028", "reboot"), json={"actor": "m"})).status_code == 401
    assert farm.sim_device.restarts == 0
    assert farm.store.audit_log() == []


async def test_right_token_runs_the_action_on_the_simulated_device(farm: Farm) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with lan_client(farm.app(FarmAuth(TOKEN))) as c:
        r = await c.post(action_url(farm.device.id, "reboot"), json={"actor": "alice"}, headers=auth)
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert farm.sim_device.restarts == 1
        farm.settle()
        # the scheme is case-insensitive (RFC 7235)
        pools = {"actor": "bob", "pools": [{"url": "stratum+tcp://10.9.8.7:3333", "user": "ops.a1", "password": "pw"}]}
        r2 = await c.post(action_url(farm.device.id, "pools"), json=pools,
                          headers={"Authorization": f"bearer {TOKEN}"})
        assert r2.status_code == 200 and r2.json()["ok"], r2.text
        assert [p.user for p in farm.sim_device.configured_pools(farm.fleet.ctx)] == ["ops.a1"]
        # an authorised request still gets its body validated and its device looked up
        assert (await c.post(action_url(farm.device.id, "reboot"), json={}, headers=auth)).status_code == 422
        missing = await c.post(action_url("cgminer://10.9.9.9:4028", "reboot"), json={"actor": "x"}, headers=auth)
        assert missing.status_code == 404
        audit = (await c.get("/farm/api/audit")).json()  # a GET: no token needed
    assert [(a["actor"], a["action"], a["params"].get("auth"), a["outcome"]) for a in reversed(audit)] == [
        ("alice", "reboot", "token", "ok"), ("bob", "set_pools", "token", "ok")]
    assert "pw" not in str(audit)


async def test_every_mutating_route_needs_the_token(farm: Farm) -> None:
    """Any route that is not a GET (today's three actions, and any added later) is refused without it."""
    router = farm.router(FarmAuth(TOKEN))
    routes = [(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in (r.methods or set()) - {"GET", "HEAD"}]
    assert {p.rsplit("/", 1)[1] for _, p in routes} >= {"reboot", "switch-pool", "pools"}
    async with lan_client(farm.app(router=router)) as c:
        for method, path in routes:
            url = path.replace("{device_id:path}", quote(farm.device.id, safe=""))
            r = await c.request(method, url, json={"actor": "mallory", "index": 1})
            assert r.status_code == 401, (method, path, r.status_code)
    assert farm.sim_device.restarts == 0 and farm.store.audit_log() == []


async def test_gets_never_need_a_token(farm: Farm) -> None:
    for auth in (FarmAuth(TOKEN), FarmAuth()):
        router = farm.router(auth)
        gets = [r.path for r in router.routes if isinstance(r, APIRoute) and "GET" in (r.methods or set())]
        async with lan_client(farm.app(router=router)) as c:
            for path in gets:
                r = await c.get(path.replace("{device_id:path}", quote(farm.device.id, safe=""))
                                .replace("{name}", "farm.js"))
                assert r.status_code == 200, (path, r.status_code, r.text)
    assert len(gets) >= 9


async def test_a_configured_token_is_needed_on_loopback_too(farm: Farm, serve: Serve) -> None:
    url = await serve(FarmAuth(TOKEN)) + action_url(farm.device.id, "switch-pool")
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, json={"actor": "local", "index": 0})).status_code == 401
        ok = await c.post(url, json={"actor": "local", "index": 0}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["ok"], ok.text
    [row] = farm.store.audit_log()
    assert (row.action, row.params, row.outcome) == ("switch_pool", {"index": 0, "auth": "token"}, "ok")


# ---- no token is configured ---------------------------------------------------------------------------


async def test_no_token_and_not_local_is_403_saying_how_to_configure_one(farm: Farm) -> None:
    async with lan_client(farm.app()) as c:
        r = await c.post(action_url(farm.device.id, "reboot"), json={"actor": "mallory"})
        assert r.status_code == 403
        assert TOKEN_ENV in r.json()["detail"] and "api_token_file" in r.json()["detail"]
        # a bearer header does not help when there is no token to compare it with
        r2 = await c.post(action_url(farm.device.id, "reboot"), json={"actor": "m"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert r2.status_code == 403
        assert (await c.get("/farm/api/devices")).status_code == 200
    # a local client reaching a non-loopback address of the server (bound to 0.0.0.0) is not "loopback" either
    transport = httpx.ASGITransport(app=farm.app(), client=("127.0.0.1", 40_000))
    async with httpx.AsyncClient(transport=transport, base_url=LAN_SERVER) as c:
        assert (await c.post(action_url(farm.device.id, "reboot"), json={"actor": "m"})).status_code == 403
    assert farm.sim_device.restarts == 0 and farm.store.audit_log() == []


async def test_no_token_on_loopback_acts_and_is_audited_as_loopback(farm: Farm, loopback_server: str) -> None:
    url = loopback_server + action_url(farm.device.id, "reboot")
    async with httpx.AsyncClient() as c:
        assert (await c.get(loopback_server + "/farm/api/devices")).status_code == 200
        r = await c.post(url, json={"actor": "demo"})
        assert r.status_code == 200 and r.json()["ok"], r.text
        farm.settle()
        # the page itself, served from the same origin, may act too (browsers send Origin on POST)
        same_origin = await c.post(loopback_server + action_url(farm.device.id, "switch-pool"),
                                   json={"actor": "page", "index": 0}, headers={"Origin": loopback_server})
        assert same_origin.status_code == 200 and same_origin.json()["ok"], same_origin.text
    assert farm.sim_device.restarts == 1
    assert [(a.actor, a.params.get("auth")) for a in reversed(farm.store.audit_log())] == [
        ("demo", "loopback"), ("page", "loopback")]


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-For": "192.168.1.50"},  # a reverse proxy on this host relaying a LAN client
    {"Forwarded": "for=192.168.1.50"},
    {"X-Real-IP": "192.168.1.50"},
    {"Host": "evil.example"},  # DNS rebinding: another site's name resolved to 127.0.0.1
    {"Origin": "http://evil.example"},  # another site's page in the operator's browser
    {"Origin": "null"},
], ids=["x-forwarded-for", "forwarded", "x-real-ip", "rebinding-host", "cross-origin", "null-origin"])
async def test_loopback_requests_that_are_not_really_local_are_refused(
        farm: Farm, loopback_server: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(loopback_server + action_url(farm.device.id, "reboot"), json={"actor": "x"}, headers=headers)
    assert r.status_code == 403, r.text
    assert farm.sim_device.restarts == 0 and farm.store.audit_log() == []


async def test_localhost_by_name_counts_as_loopback(farm: Farm, loopback_server: str) -> None:
    port = loopback_server.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as c:
        r = await c.post(loopback_server + action_url(farm.device.id, "reboot"), json={"actor": "demo"},
                         headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
    assert r.status_code == 200, r.text


# ---- where the token comes from -----------------------------------------------------------------------


def test_load_token_sources_and_precedence(tmp_path: Path) -> None:
    f = tmp_path / "farm.token"
    f.write_text(TOKEN + "\n")
    other = "another-token-of-enough-length"
    assert load_token() is None and load_token(environ={}) is None
    assert load_token(config_token=other) == other
    assert load_token(config_token_file=str(f)) == TOKEN  # the final newline is not part of it
    assert load_token(environ={TOKEN_ENV: other}, config_token_file=str(f)) == other  # env beats the config
    assert load_token(token_file=f, environ={TOKEN_ENV: other}) == TOKEN  # a command-line file beats env
    assert load_token(environ={TOKEN_ENV: ""}, config_token=other) == other  # an empty variable is unset


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"config_token": "short"}, "16-256 visible ASCII"),
    ({"config_token": "has a space in the middle of it"}, "no spaces"),
    ({"environ": {TOKEN_ENV: "x" * 300}}, TOKEN_ENV),
    ({"config_token": TOKEN, "config_token_file": "/x"}, "both api_token and api_token_file"),
    ({"config_token_file": "/nonexistent/farm.token"}, "/nonexistent/farm.token"),
])
def test_bad_token_settings_are_clear_errors(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(FarmAuthError, match=message):
        load_token(**kwargs)


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "empty.token"
    f.write_text("\n")
    with pytest.raises(FarmAuthError, match="got 0 characters"):
        load_token(token_file=f)
    with pytest.raises(FarmAuthError):
        FarmAuth("")


def test_the_token_never_shows_in_reprs(tmp_path: Path) -> None:
    cfg_file = tmp_path / "pithead.toml"
    cfg_file.write_text(f'[farm]\napi_token = "{TOKEN}"\n')
    cfg = load(cfg_file)
    assert cfg.farm.api_token == TOKEN
    assert TOKEN not in repr(cfg) and TOKEN not in repr(FarmAuth(TOKEN))
    assert TOKEN not in repr(FarmServiceConfig(api_token=TOKEN))


async def test_service_router_takes_the_token_from_env_or_config(
        farm: Farm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pithead up` builds the router through service_router(): PITHEAD_FARM_TOKEN reaches it there."""
    url = action_url(farm.device.id, "reboot")

    async def post(svc: FarmService, token: str | None) -> int:
        app = FastAPI()
        app.include_router(service_router(svc))
        async with lan_client(app) as c:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return (await c.post(url, json={"actor": "ops"}, headers=headers)).status_code

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    plain = FarmService(farm.store)
    assert await post(plain, None) == 403  # nothing configured: LAN callers are refused
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert await post(plain, None) == 401
    assert await post(plain, "wrong-token-but-long-enough") == 401
    assert await post(plain, TOKEN) == 200
    farm.settle()
    monkeypatch.delenv(TOKEN_ENV)
    token_file = tmp_path / "farm.token"
    token_file.write_text("file-token-0123456789abcdef\n")
    from_file = FarmService(farm.store, FarmServiceConfig(api_token_file=str(token_file)))
    assert await post(from_file, TOKEN) == 401
    assert await post(from_file, "file-token-0123456789abcdef") == 200
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(FarmAuthError, match=TOKEN_ENV):
        service_router(plain)
    assert farm.sim_device.restarts == 2


# ---- `pithead farm run --web` ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_farm_run_serves_the_page_with_token_guarded_actions(farm: Farm, tmp_path: Path) -> None:
    """`pithead farm run --web ... --token-file ...` in its own process, acting on the simulated device."""
    db = tmp_path / "farm.sqlite3"
    with FarmStore(db) as s:
        s.upsert_devices([farm.device])
    token_file = tmp_path / "farm.token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "farm", "run", "--db", str(db), "--web", f"127.0.0.1:{port}",
        "--token-file", str(token_file), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as c:
            for _ in range(300):  # wait for it to listen (the sim answers from this loop meanwhile)
                try:
                    page = await c.get("/farm/")
                    break
                except httpx.TransportError:
                    assert proc.returncode is None, "farm run exited"
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("farm run --web did not start listening")
            assert page.status_code == 200 and "rack map" in page.text.lower()
            assert (await c.get("/")).headers["location"] == "/farm/"
            url = action_url(farm.device.id, "reboot")
            refused = await c.post(url, json={"actor": "ops"})
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            ok = await c.post(url, json={"actor": "ops"}, headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200 and ok.json()["ok"], ok.text
            audit = (await c.get("/farm/api/audit")).json()
        assert farm.sim_device.restarts == 1
        assert [(a["actor"], a["params"]) for a in audit] == [("ops", {"auth": "token"})]
    finally:
        proc.terminate()
        out, _ = await proc.communicate()
    assert f"farm web on {base}/farm/ (actions need the bearer token)" in out.decode()
    assert TOKEN not in out.decode()


def test_farm_run_web_options_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pithead.cli.farm import app

    runner = CliRunner()
    db = str(tmp_path / "farm.sqlite3")
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    r = runner.invoke(app, ["run", "--db", db, "--token-file", str(short)])
    assert r.exit_code == 2 and "--web" in r.output
    r = runner.invoke(app, ["run", "--db", db, "--web", "nonsense"])
    assert r.exit_code == 2 and "127.0.0.1:8081" in r.output
    r = runner.invoke(app, ["run", "--db", db, "--web", f"127.0.0.1:{_free_port()}", "--token-file", str(short)],
                      env={TOKEN_ENV: ""})
    assert r.exit_code == 2 and "16-256" in r.output

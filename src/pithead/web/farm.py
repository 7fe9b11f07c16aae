"""The farm's HTTP surface: a FastAPI `APIRouter` (JSON endpoints) plus the farm page.

`service_router(service)` returns the router over a running `FarmService` (its store, actions, ingest,
prices and token settings) with prefix `/farm`, for the main web app to mount; `make_router(store, ...)`
builds the same from the parts:
- GET  /farm/                              the page: fleet, rack map, device table, alerts, energy, and a
                                           device page per device with its charts, audit and action buttons
                                           (the page, its table and device endpoints: `pithead.web.farm_page`)
- GET  /farm/api/devices                   latest status per device (filters site/rack/state, offset/limit)
- GET  /farm/api/devices/{id}/history      raw readings since `since` (UNIX seconds)
- GET  /farm/api/racks                     the rack map: site -> rack -> positions with a status colour
- GET  /farm/api/alerts                    open alerts (and recent resolved ones with `all=true`), with a
                                           group alert's machines, acks and silences (`web.farm_alerts`,
                                           which also serves ack and silences)
- GET  /farm/api/energy                    power, J/TH, cost and revenue per site/rack/fleet (devices=true
                                           adds one line per device)
- GET  /farm/api/rollups                   history rollups (bucket_s 300 or 3600, since, device_id)
- GET  /farm/api/audit                     the action audit log
- GET  /farm/api/shares                    where "hashing but no shares" comes from (a farm proxy's figures),
                                           and why it cannot be judged now (`problem`: the proxy is down...)
- POST /farm/api/devices/{id}/reboot       audited actions (JSON body: actor, and index / pools)
- POST /farm/api/devices/{id}/switch-pool
- POST /farm/api/devices/{id}/pools        {"pools": [...]} or {"preset": NAME} (`[[farm.pool_presets]]`, e.g.
                                           the farm proxy: each device keeps its own worker name)
- POST /farm/api/devices/{id}/sleep        stop hashing / hash again (the audited action curtailment uses)
- POST /farm/api/devices/{id}/wake
- POST /farm/api/ingest                    a batch of readings and inventory from a collector (`pithead farm
                                           collect`; format and validation in `pithead.farm.ingest`); a write,
                                           so guarded exactly like the actions
- GET  /farm/api/ingest                    per-collector ingest counts and when each was last heard from
- GET  /farm/metrics                       Prometheus series by site, rack, model and state (`web.farm_metrics`)
Device ids contain "://" and ":", so they travel URL-encoded in the path.

Who may act (the POST routes; every GET stays open, read-only):
- A token is configured (`FarmAuth(token)`; the shells take it from `pithead farm run --web ...
  --token-file`, PITHEAD_FARM_TOKEN, `[farm] api_token_file` or `api_token`, in that order, see
  `load_token`; `pithead up` through `service_router`): every action needs `Authorization: Bearer <token>`,
  from anywhere, loopback included. Missing or malformed -> 401, wrong -> 401, both with
  `WWW-Authenticate: Bearer` and a JSON `detail` saying which. The token is compared in constant time
  (`hmac.compare_digest` over SHA-256 digests, so not even its length leaks).
- No token is configured: actions are allowed only for a request that is local beyond doubt, so that
  `pithead up` (web on 127.0.0.1) and local demos work with no setup; anything else -> 403 saying how to
  configure a token. "Local" is judged per request on the connection itself, not on a bind setting: the
  client's and the server's socket addresses are both loopback (always so on a server bound to 127.0.0.1;
  on one bound to 0.0.0.0, LAN clients are refused), there is no proxy header (Forwarded,
  X-Forwarded-For, X-Forwarded-Host, X-Real-IP: a reverse proxy on this host relays other people),
  the Host header names a loopback host (a DNS-rebinding page sends its own name) and an Origin header,
  if any, is a loopback origin too (another site's page open in the operator's browser is refused).
  A relay that adds none of those headers (socat, an SSH tunnel) makes remote callers look local: put a
  token on any server reachable that way.
Authorisation comes first: an unauthorised caller gets 401/403 whatever its body or device id.
Each action is audited with the body's `actor` (a name the caller chooses) and, in its params, `auth`:
"token" or "loopback", what actually let it through.

The page has no external assets (no CDN): static files in `web/static/farm/` and the vendored chart
library. Its action buttons send the token the operator typed into it (kept in sessionStorage) as the
bearer header; with no token configured they work on loopback connections only, like every caller.
Every store read runs on the store's own thread (`AsyncFarmStore.call`), together with the work of
turning 24,000 statuses into JSON rows, so a dashboard refresh never holds the event loop.
This module is NOT the main web app and holds no policy of its own beyond who may act: it reads the
store and calls `ActionService`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from pithead.farm.actions import ActionResult, ActionService
from pithead.farm.central import IngestService
from pithead.farm.drivers.base import DriverError, PoolSpec
from pithead.farm.energy import EnergyLine, PriceSchedule, energy_report
from pithead.farm.ingest import MAX_BODY_BYTES, IngestError
from pithead.farm.model import FarmError
from pithead.farm.power import SitePower
from pithead.farm.service import STALE_INTERVALS, FarmService
from pithead.farm.store import ROLLUP_BUCKETS_S, DeviceStatus, FarmStore, FarmStoreError
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm_alerts import alert_routes, alerts_json
from pithead.web.farm_metrics import FarmMetrics, farm_metrics_text
from pithead.web.farm_page import COLOURS as COLOURS  # re-exported: the page's colours, as before
from pithead.web.farm_page import add_page_routes, alerted, colour_of, racks_json
from pithead.web.farm_power import add_power_routes

# History queries may span at most this long (a week of 1-min rows per device is ~10k rows).
MAX_HISTORY_SPAN_S = 7 * 86_400.0

# Device rows per /api/devices response (page with offset): a whole 24,000-device fleet is ~10 MB of JSON.
MAX_DEVICE_ROWS = 5000
# Rollup rows per response: a day of 5-min buckets for ~30 devices, or a month of hourly ones for one.
MAX_ROLLUP_ROWS = 10_000

# ---- who may act ----------------------------------------------------------------------------------
# The environment variable the shells read the action token from (it overrides the config file).
TOKEN_ENV = "PITHEAD_FARM_TOKEN"
# Shortest token accepted: guessing it over HTTP must be hopeless. A good one:
#   python -c "import secrets; print(secrets.token_urlsafe(32))"
MIN_TOKEN_LEN = 16
# Longest token (bounded like every input; also the most a token file may hold).
MAX_TOKEN_LEN = 256
# Headers by which a reverse proxy says it relays someone else: such a request is never "local".
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
# Host names that always mean this machine (besides loopback addresses).
LOOPBACK_NAMES = frozenset({"localhost"})
REALM = "pithead farm"
HOW_TO_CONFIGURE = (f"set {TOKEN_ENV}, or api_token_file (or api_token) in the [farm] section of the config, "
                    "restart, and send `Authorization: Bearer <token>`")


class FarmAuthError(FarmError):
    """A token setting that cannot be used (unreadable file, too short, bad characters)."""


def check_token(token: str, source: str) -> str:
    """A usable token (16-256 visible ASCII characters, so it fits in a header as it is), or an error."""
    if not MIN_TOKEN_LEN <= len(token) <= MAX_TOKEN_LEN or not all(33 <= ord(c) <= 126 for c in token):
        raise FarmAuthError(f"the farm API token from {source} must be {MIN_TOKEN_LEN}-{MAX_TOKEN_LEN} visible "
                            f"ASCII characters with no spaces (got {len(token)} characters); make one with "
                            "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return token


def _read_token_file(path: str | Path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TOKEN_LEN + 2)
    except (OSError, UnicodeDecodeError) as exc:
        raise FarmAuthError(f"cannot read the farm API token file {path}: {exc}") from exc
    return check_token(text.strip(), f"file {path}")


def load_token(*, token_file: str | Path | None = None, environ: Mapping[str, str] | None = None,
               config_token: str | None = None, config_token_file: str | None = None) -> str | None:
    """The action token from the first source that has one: `token_file` (a command-line option), then
    `environ[PITHEAD_FARM_TOKEN]`, then the config's `api_token_file`, then its `api_token`; None when
    none does. The config may name one of its two, not both. A file holds only the token (surrounding
    whitespace and the final newline are ignored)."""
    if token_file is not None:
        return _read_token_file(token_file)
    env = (environ or {}).get(TOKEN_ENV)
    if env:
        return check_token(env.strip(), TOKEN_ENV)
    if config_token is not None and config_token_file is not None:
        raise FarmAuthError("[farm] has both api_token and api_token_file: keep one")
    if config_token_file is not None:
        return _read_token_file(config_token_file)
    if config_token is not None:
        return check_token(config_token, "[farm] api_token")
    return None


@dataclass(frozen=True)
class FarmAuth:
    """Who may use the action endpoints: holders of `token`, or (with no token) local requests only."""

    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token, "FarmAuth")

    def authorise(self, request: Request, presented: str | None) -> str:
        """What lets this request act ("token" or "loopback"), or the HTTPException refusing it.
        `presented` is the bearer token of the request's Authorization header, if it has one."""
        if self.token is not None:
            if presented is None:
                raise HTTPException(401, "this action needs the farm API token: send `Authorization: Bearer "
                                         "<token>`", headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
            want = hashlib.sha256(self.token.encode()).digest()
            got = hashlib.sha256(presented.encode()).digest()
            if not hmac.compare_digest(want, got):
                raise HTTPException(401, "wrong farm API token", headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'})
            return "token"
        if is_local_request(request):
            return "loopback"
        raise HTTPException(403, "actions are refused: no farm API token is configured, and without one they are "
                                 "allowed only on a loopback connection. To act from elsewhere, "
                                 + HOW_TO_CONFIGURE)


def _loopback_ip(host: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def _loopback_host(authority: str) -> bool:
    """Does a Host header value or an origin ("scheme://host:port") name this machine?"""
    try:
        host = urlsplit(authority if "://" in authority else "//" + authority).hostname
    except ValueError:
        return False
    return host is not None and (host in LOOPBACK_NAMES or _loopback_ip(host))


def is_local_request(request: Request) -> bool:
    """A request made on this machine to this machine, by a client that is not a web page of another
    site (see the module docstring for why each check is there)."""
    client = request.client
    server = request.scope.get("server")
    if client is None or not server or not _loopback_ip(client.host) or not _loopback_ip(str(server[0])):
        return False
    headers = request.headers
    if any(h in headers for h in PROXY_HEADERS):
        return False
    if not _loopback_host(headers.get("host", "")):
        return False
    origin = headers.get("origin")
    return origin is None or _loopback_host(origin)


class ActionBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)


class SwitchPoolBody(ActionBody):
    index: int = Field(ge=0, le=16)


class PoolBody(BaseModel):
    url: str = Field(max_length=256)
    user: str = Field(max_length=256)
    password: str = Field(default="x", max_length=256)


class SetPoolsBody(ActionBody):
    """Either `pools` (1-3), or `preset`: the name of a `[[farm.pool_presets]]` (e.g. "proxy")."""

    pools: list[PoolBody] | None = Field(default=None, min_length=1, max_length=3)
    preset: str | None = Field(default=None, min_length=1, max_length=64)


def _status_json(st: DeviceStatus, alerted: set[str]) -> dict[str, Any]:
    r = st.reading
    d = st.device
    return {
        "id": d.id, "host": d.address.host, "port": d.address.port, "driver": d.address.driver.value,
        "make": d.identity.make, "model": d.identity.model, "firmware": d.identity.firmware,
        "site": d.labels.site, "rack": d.labels.rack, "position": d.labels.position,
        "state": st.state.value, "colour": colour_of(st, alerted), "since": st.state_since,
        "last_poll": st.time, "error": st.error, "failures": st.failures,
        "hashrate_ths": r.hashrate_ths if r else None, "expected_ths": r.expected_ths if r else None,
        "power_w": r.power_w if r else None, "efficiency_j_per_th": r.efficiency_j_per_th if r else None,
        "max_chip_temp_c": r.max_chip_temp_c if r else None, "min_fan_rpm": r.min_fan_rpm if r else None,
        "worker": r.worker if r else None, "boards": len(r.boards) if r else None,
    }


def _line_json(line: EnergyLine) -> dict[str, Any]:
    return {"key": line.key, "devices": line.devices, "hashing": line.hashing,
            "hashrate_ths": line.hashrate_ths, "power_w": line.power_w,
            "efficiency_j_per_th": line.efficiency_j_per_th, "cost_per_day": line.cost_per_day,
            "revenue_per_day": line.revenue_per_day, "profit_per_day": line.profit_per_day,
            "metered_devices": line.metered_devices}


def _result_json(res: ActionResult) -> dict[str, Any]:
    return {"audit_id": res.audit_id, "device_id": res.device_id, "action": res.action, "ok": res.ok,
            "error": res.error}


def service_router(service: FarmService, notes: Mapping[str, str] | None = None,
                   auth: FarmAuth | None = None) -> APIRouter:
    """The router over a `FarmService`. Without `auth`, the token comes from the environment
    (PITHEAD_FARM_TOKEN) or the service config's token settings; a bad one raises `FarmAuthError` here,
    before anything is served."""
    if auth is None:
        auth = FarmAuth(load_token(environ=os.environ, config_token=service.cfg.api_token,
                                   config_token_file=service.cfg.api_token_file))
    stale_after = service.cfg.stale_after_s or STALE_INTERVALS * service.cfg.poll_interval_s
    return make_router(service.store, service.actions, service.prices, service.hashprice, service.clock,
                       notes=notes, auth=auth, ingest=service.ingest, stale_after_s=stale_after,
                       metrics_per_machine=service.cfg.metrics_per_machine,
                       site_power=service.site_power, shares_status=service.shares_status)


def make_router(store: AsyncFarmStore, actions: ActionService | None = None, prices: PriceSchedule | None = None,
                hashprice: Callable[[], float | None] | None = None,
                clock: Callable[[], float] = time.time, notes: Mapping[str, str] | None = None,
                auth: FarmAuth | None = None, ingest: IngestService | None = None,
                stale_after_s: float | None = None, metrics_per_machine: bool = False,
                site_power: SitePower | None = None,
                shares_status: Callable[[], Mapping[str, object]] | None = None) -> APIRouter:
    """`ingest` receives collectors' batches (default: a fresh `IngestService` over `store`).
    `stale_after_s`: a good reading older than this is not counted in totals (the rack map's, the device
    table's figures); None counts every reading of a device that answered its last poll.
    `notes` are labels the page shows beside the price and hashprice (keys "price", "hashprice"), e.g.
    `pithead up` marks its demo figures; without them the endpoint answers an empty object.
    `auth` says who may act (default: no token, so local requests only); this function reads no
    environment: the caller resolves the token (`load_token`). `site_power`: the service's site power
    authority, which the power endpoints share with its curtailment step (default: one of their own).
    `shares_status` says where the pool-side share times come from and what stops them
    (`FarmService.shares_status`)."""
    router = APIRouter(prefix="/farm", tags=["farm"])
    page_notes = dict(notes or {})
    gate = auth if auth is not None else FarmAuth()
    # HTTPBearer (without auto_error) only reads the header, and makes /docs offer an "Authorize" button.
    bearer = HTTPBearer(auto_error=False, scheme_name="farm token",
                        description=f"The farm API token ({TOKEN_ENV} or [farm] api_token_file). Without "
                                    "one configured, actions are allowed on loopback connections only.")

    def authorised(request: Request,
                   creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        return gate.authorise(request, creds.credentials if creds is not None else None)

    @router.get("/api/notes", summary="Labels shown beside the farm's price and hashprice")
    def notes_endpoint() -> dict[str, str]:
        return page_notes

    # ---- the page, the device table and the device page (read side: pithead.web.farm_page) ----------
    add_page_routes(router, store, clock, token_required=gate.token is not None, stale_after_s=stale_after_s)

    @router.get("/api/devices")
    async def devices(site: str | None = None, rack: str | None = None, state: str | None = None,
                      offset: int = Query(0, ge=0), limit: int = Query(MAX_DEVICE_ROWS, ge=1, le=MAX_DEVICE_ROWS),
                      ) -> list[dict[str, Any]]:
        def rows(s: FarmStore) -> list[dict[str, Any]]:
            al = alerted(s)
            sts = [st for st in s.statuses()
                   if (site is None or st.device.labels.site == site) and (rack is None or st.device.labels.rack == rack)
                   and (state is None or st.state.value == state)]
            return [_status_json(st, al) for st in sts[offset: offset + limit]]

        return await store.call(rows)

    @router.get("/api/devices/{device_id:path}/history")
    async def history(device_id: str, since: float = Query(0.0), until: float | None = None) -> list[dict[str, Any]]:
        end = until if until is not None else clock()
        start = max(since, end - MAX_HISTORY_SPAN_S)
        return await store.call(FarmStore.history, device_id, start, end)

    @router.get("/api/racks")
    async def racks() -> dict[str, Any]:
        return await store.call(racks_json, clock(), stale_after_s)

    @router.get("/api/alerts")
    async def alerts(all: bool = False, since: float = 0.0) -> list[dict[str, Any]]:
        rows = await (store.call(FarmStore.alerts, since) if all else store.call(FarmStore.open_alerts))
        return await store.call(alerts_json, rows, clock())

    router.include_router(alert_routes(store, authorised, clock))  # ack, silences (web.farm_alerts)
    farm_metrics = FarmMetrics(metrics_per_machine, clock)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus series by site, rack, model and state (`web.farm_metrics`)."""
        body = await store.call(farm_metrics_text, farm_metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @router.get("/api/energy")
    async def energy(devices: bool = False) -> dict[str, Any]:
        now = clock()
        price = prices.price_at(now) if prices is not None else 0.0
        hp = hashprice() if hashprice is not None else None

        def report(s: FarmStore) -> dict[str, Any]:
            rep = energy_report(s.statuses(), now, price, hp, stale_after_s)
            return {"time": rep.time, "price_per_mwh": rep.price_per_mwh, "hashprice_per_th_day": rep.hashprice,
                    "fleet": _line_json(rep.fleet), "sites": [_line_json(x) for x in rep.sites],
                    "racks": [_line_json(x) for x in rep.racks],
                    **({"devices": [_line_json(x) for x in rep.devices]} if devices else {})}

        return await store.call(report)

    @router.get("/api/rollups")
    async def rollups(bucket_s: int = Query(300), since: float = Query(0.0),
                      device_id: str | None = None) -> list[dict[str, Any]]:
        if bucket_s not in ROLLUP_BUCKETS_S:
            raise HTTPException(422, f"bucket_s must be one of {list(ROLLUP_BUCKETS_S)}")
        rows = (await store.call(FarmStore.rollups, bucket_s, since, device_id))[-MAX_ROLLUP_ROWS:]
        return [{"device_id": r.device_id, "bucket": r.bucket, "samples": r.samples, "ok_samples": r.ok_samples,
                 "avg_hashrate_ths": r.avg_hashrate_ths, "max_hashrate_ths": r.max_hashrate_ths,
                 "avg_power_w": r.avg_power_w, "max_chip_temp": r.max_chip_temp, "energy_wh": r.energy_wh}
                for r in rows]

    @router.get("/api/audit")
    async def audit(device_id: str | None = None,
                    limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return [{"id": a.id, "time": a.time, "actor": a.actor, "device_id": a.device_id, "action": a.action,
                 "params": a.params, "outcome": a.outcome, "error": a.error, "finished": a.finished}
                for a in await store.call(FarmStore.audit_log, device_id, limit)]

    @router.get("/api/shares")
    async def shares() -> Mapping[str, object]:
        if shares_status is None:
            return {"configured": False, "source": None, "problem": None, "read_at": None, "machines": None}
        return shares_status()

    def need_actions() -> ActionService:
        if actions is None:
            raise HTTPException(503, "actions are not enabled on this server")
        return actions

    async def known(device_id: str) -> None:
        try:
            await store.call(FarmStore.device, device_id)
        except FarmStoreError as exc:
            raise HTTPException(404, str(exc)) from exc

    refusals: dict[int | str, dict[str, Any]] = {401: {"description": "no or wrong token (a token is configured)"},
                403: {"description": "no token is configured and the request is not local"}}

    @router.post("/api/devices/{device_id:path}/reboot", responses=refusals)
    async def reboot(device_id: str, body: ActionBody, how: str = Depends(authorised)) -> dict[str, Any]:
        svc = need_actions()
        await known(device_id)
        return _result_json(await svc.reboot(device_id, body.actor, auth=how))

    @router.post("/api/devices/{device_id:path}/switch-pool", responses=refusals)
    async def switch_pool(device_id: str, body: SwitchPoolBody, how: str = Depends(authorised)) -> dict[str, Any]:
        svc = need_actions()
        await known(device_id)
        return _result_json(await svc.switch_pool(device_id, body.index, body.actor, auth=how))

    @router.post("/api/devices/{device_id:path}/pools", responses=refusals)
    async def set_pools(device_id: str, body: SetPoolsBody, how: str = Depends(authorised)) -> dict[str, Any]:
        svc = need_actions()
        await known(device_id)
        if (body.pools is None) == (body.preset is None):
            raise HTTPException(422, "give either pools (a list of url, user, password) or preset (a name of "
                                "[[farm.pool_presets]]), not both or neither")
        if body.preset is not None:
            return _result_json(await svc.set_preset(device_id, body.preset, body.actor, auth=how))
        assert body.pools is not None
        try:
            specs = [PoolSpec(p.url, p.user, p.password) for p in body.pools]
        except DriverError as exc:
            raise HTTPException(422, str(exc)) from exc
        return _result_json(await svc.set_pools(device_id, specs, body.actor, auth=how))

    # sleep / wake: the page's buttons (curtailment uses the same audited action)
    @router.post("/api/devices/{device_id:path}/sleep", responses=refusals)
    async def sleep(device_id: str, body: ActionBody, how: str = Depends(authorised)) -> dict[str, Any]:
        svc = need_actions()
        await known(device_id)
        return _result_json(await svc.set_mining(device_id, False, body.actor, auth=how))

    @router.post("/api/devices/{device_id:path}/wake", responses=refusals)
    async def wake(device_id: str, body: ActionBody, how: str = Depends(authorised)) -> dict[str, Any]:
        svc = need_actions()
        await known(device_id)
        return _result_json(await svc.set_mining(device_id, True, body.actor, auth=how))
    add_power_routes(router, actions, authorised, known, refusals, site_power)  # power targets, site power (web.farm_power)

    sink = ingest if ingest is not None else IngestService(store, clock)
    bad_batch: dict[int | str, dict[str, Any]] = {
        400: {"description": "not JSON / not gzip"}, 413: {"description": "too large"},
        415: {"description": "unsupported Content-Encoding"}, 422: {"description": "a batch field is wrong"}}

    @router.post("/api/ingest", responses=refusals | bad_batch)
    async def ingest_batch(request: Request, how: str = Depends(authorised)) -> dict[str, Any]:
        """One collector batch (see `pithead.farm.ingest`); bad items are refused one by one, by index."""
        body = await _bounded_body(request, MAX_BODY_BYTES)
        try:
            return await sink.handle(body, request.headers.get("content-encoding"))
        except IngestError as exc:
            raise HTTPException(exc.status, exc.message) from exc

    @router.get("/api/ingest", summary="Per-collector ingest counts")
    def ingest_status() -> dict[str, Any]:
        return sink.status()

    return router


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (never read in full)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is larger than {limit} bytes; send smaller batches")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than {limit} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)

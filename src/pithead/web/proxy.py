"""The farm proxy's HTTP API and Prometheus metrics: what `pithead proxy status|switch|drain|resume` talks to.

`create_proxy_app(proxy, token=None)` is a small FastAPI app over a running `pithead.proxy.proxy.FarmProxy`:

- `GET /proxy/api/status`: the pool the machines mine on and why, the operator's pin and drains, each
  upstream (state, problem, connections with their extranonce and difficulty, shares forwarded / accepted /
  rejected by reason / stale / lost / in flight, the submit round trip's median and 99th percentile, and
  the hashrate the pool credits over 5 minutes and 1 hour with its 90 % Poisson interval), the machines in
  total and the aggregation;
- `GET /proxy/api/machines`: each machine (worker name): its sessions, tags, difficulty, the upstream and
  connection it mines on, its own shares as the proxy judged them, and what the pool credited of them,
  with the hashrate the pool credits and its interval (the window and the 90 % interval, as the pool
  dashboard gives them: `pithead.ledger.stats`);
- `POST /proxy/api/switch` `{"upstream": NAME | "auto"}`, `POST /proxy/api/drain` and `/proxy/api/resume`
  `{"upstream": NAME}`: the operator's actions; they answer the new status. With a token configured they
  need `Authorization: Bearer <token>`; without one they are allowed on a loopback connection only (the
  checks of `pithead.web.farm.is_local_request`);
- `GET /proxy/api/credited`: compact, for the farm's "hashing but no shares" alert in another process
  (`pithead.farm.proxy_shares.ProxyApiCredits`): `{"now": T, "machines": {worker: age_s}}`, each machine's
  seconds since the pool last credited a share of it (never credited: since the proxy first saw it), as ages
  so the farm's clock need not agree with the proxy's;
- `GET /proxy/api/racks`: the machines per rack (the farm inventory's site and rack, joined by the machine's
  IP, else its worker name; `FarmLabels`), each rack's pool-side figures and credited hashrate with its
  interval; machines the farm does not know are one "unlabelled" row;
- `GET /proxy/api/page`: whether the actions need the token (what the page asks its user for), its links;
- `GET /proxy/`: the proxy's page (static `proxy.html` and `proxy.js`): upstreams, switch and drain buttons,
  machines per rack;
- `GET /metrics`: Prometheus, `pithead_proxy_*`, read from the proxy at scrape time: per upstream and per
  rack; per machine only when asked (`per_machine`: a farm of 24,000 machines is 24,000 series per metric).

`proxy_router` is the same routes as an `APIRouter`, so a dashboard (`pithead up`) mounts the proxy beside
the pool; `ProxyCollector` is registered on whichever registry serves /metrics.

What it is not: the proxy (`pithead.proxy`) or the farm's inventory (`pithead.farm`): the labels come from
the farm's store in-process or over the farm's HTTP API (`farm_devices_over_http`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from pithead import __version__
from pithead.farm.store import FarmStore
from pithead.ledger.stats import estimate
from pithead.proxy.figures import WindowCount, sum_windows
from pithead.proxy.proxy import FarmProxy
from pithead.web.farm import MAX_DEVICE_ROWS, is_local_request

log = logging.getLogger(__name__)

STATIC_DIR = resources.files("pithead.web") / "static"

MAX_NAME = 128
"""Longest upstream name accepted in an action (names come from the config)."""
REALM = "pithead-proxy"
MIN_TOKEN_LEN = 16
"""Shortest API token accepted: guessing it over HTTP must be hopeless."""
MAX_TOKEN_LEN = 256
"""Longest token (it goes in a header; also the most a token file may hold)."""
LABELS_MAX_AGE_S = 30.0
"""How old the farm's labels may be before they are read again (machines change racks rarely; a new one is
labelled within this of the farm's scan finding it)."""
LABELS_FETCH_TIMEOUT_S = 10.0
"""Longest wait for the farm's inventory; past it the labels last read are kept (and the error shown)."""
MAX_LABEL_PAGES = 200
"""Pages of the farm's /farm/api/devices read at most (200 x 5,000 = a million machines)."""
UNLABELLED = ""
"""The site and rack of machines the farm does not know (one row, shown as "unlabelled")."""


class ProxyTokenError(ValueError):
    """An API token file that cannot be used."""


def load_token(path: str) -> str:
    """The token in `path` (the file holds only the token; surrounding whitespace is ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read(MAX_TOKEN_LEN + 2).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProxyTokenError(f"cannot read the proxy's API token file {path}: {exc}") from exc
    if not MIN_TOKEN_LEN <= len(token) <= MAX_TOKEN_LEN or not all(33 <= ord(c) <= 126 for c in token):
        raise ProxyTokenError(f"the API token in {path} must be {MIN_TOKEN_LEN}-{MAX_TOKEN_LEN} visible ASCII "
                              "characters; make one with python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return token


class UpstreamBody(BaseModel):
    upstream: str = Field(min_length=1, max_length=MAX_NAME)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the farm's inventory puts a machine."""

    device_id: str
    site: str
    rack: str
    position: str


FetchDevices = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]
"""The farm's devices as rows with `id`, `host`, `site`, `rack`, `position` and `worker` (the shape of the
farm's `GET /farm/api/devices`)."""


class FarmLabels:
    """The farm inventory's labels for the proxy's machines: by the IP a machine connects from when one
    device has it (or the device among those with that IP whose worker name matches: several machines
    behind one NAT), else by worker name. `refresh()` re-reads the farm when its copy is older than
    `max_age_s` (a failing read keeps the last labels and says why in `error`); lookups never wait."""

    def __init__(self, fetch: FetchDevices, max_age_s: float = LABELS_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.max_age_s = max_age_s
        self.clock = clock
        self.fetched_at: float | None = None
        self.error: str | None = None
        self.devices = 0
        self._by_ip: dict[str, list[tuple[str | None, Place]]] = {}
        self._by_worker: dict[str, Place] = {}
        self._lock = asyncio.Lock()

    def load(self, rows: Sequence[Mapping[str, Any]]) -> None:
        by_ip: dict[str, list[tuple[str | None, Place]]] = {}
        by_worker: dict[str, Place] = {}
        for r in rows:
            place = Place(str(r.get("id", "")), str(r.get("site") or ""), str(r.get("rack") or ""),
                          str(r.get("position") or ""))
            worker = r.get("worker")
            worker = str(worker) if worker else None
            if r.get("host"):
                by_ip.setdefault(str(r["host"]), []).append((worker, place))
            if worker is not None:
                by_worker[worker] = place
        self._by_ip, self._by_worker, self.devices = by_ip, by_worker, len(rows)

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            now = self.clock()
            if not force and self.fetched_at is not None and now - self.fetched_at < self.max_age_s:
                return
            self.fetched_at = now  # a failure is retried after max_age_s too, not on every request
            try:
                rows = await asyncio.wait_for(self.fetch(), LABELS_FETCH_TIMEOUT_S)
            except Exception as exc:  # the farm down or slow: keep the labels we have, say why
                if self.error is None:
                    log.warning("proxy: cannot read the farm's labels: %s", exc)
                self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                return
            self.load(rows)
            self.error = None

    async def run(self) -> None:
        """Keep the labels fresh (for /metrics, which must not wait on the farm while scraped)."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.max_age_s)

    def place(self, worker: str, ips: Sequence[str]) -> Place | None:
        for ip in ips:
            found = self._by_ip.get(ip)
            if found:
                if len(found) == 1:
                    return found[0][1]
                for w, place in found:
                    if w == worker:
                        return place
        return self._by_worker.get(worker)


def farm_store_rows(store: FarmStore) -> list[Mapping[str, Any]]:
    """The farm's devices from its store, as `FarmLabels` reads them (run it on the store's thread)."""
    return [{"id": st.device.id, "host": st.device.address.host, "site": st.device.labels.site,
             "rack": st.device.labels.rack, "position": st.device.labels.position,
             "worker": st.reading.worker if st.reading is not None else None} for st in store.statuses()]


def farm_devices_over_http(url: str, token: str | None = None) -> FetchDevices:
    """The farm's devices read from its HTTP API at `url` (where `pithead farm run` serves /farm/...)."""
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def fetch() -> list[Mapping[str, Any]]:
        rows: list[Mapping[str, Any]] = []
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=LABELS_FETCH_TIMEOUT_S) as c:
            for page in range(MAX_LABEL_PAGES):
                r = await c.get("/farm/api/devices", params={"offset": page * MAX_DEVICE_ROWS,
                                                             "limit": MAX_DEVICE_ROWS})
                r.raise_for_status()
                got = r.json()
                if not isinstance(got, list) or not all(isinstance(x, dict) for x in got):
                    raise ValueError(f"{base}/farm/api/devices answered something other than a list of devices")
                rows.extend(got)
                if len(got) < MAX_DEVICE_ROWS:
                    break
        return rows

    return fetch


def _hashrate(windows: list[dict[str, Any]], last_difficulty: float) -> list[dict[str, Any]]:
    """Credited-work windows → hashrate (H/s) with its 90 % interval, over the observed part of each."""
    out = []
    for w in windows:
        e = estimate(int(w["shares"]), float(w["difficulty_sum"]), float(w["span_s"]), float(w["span_s"]),
                     last_difficulty, float(w["observed_s"]))
        out.append({"window": w["window"], "span_s": e.span_s, "observed_s": e.observed_s, "shares": e.shares,
                    "hashrate_hps": e.hashrate, "low_hps": e.low, "high_hps": e.high, "reliable": e.reliable})
    return out


def status(proxy: FarmProxy) -> dict[str, Any]:
    snap = proxy.snapshot()
    for up in snap["upstreams"]:
        up["hashrate"] = _hashrate(up.pop("credited"), float(up["difficulty"] or 0.0))
    return snap


def machines(proxy: FarmProxy, labels: FarmLabels | None = None) -> list[dict[str, Any]]:
    """Each machine, with its place in the farm (`place`: None when the farm does not know it, or no farm)."""
    out = proxy.machine_snapshot(proxy.clock())
    for m in out:
        pool = m["pool"]
        if isinstance(pool, dict):
            pool["credited_windows"] = pool["credited"]
            pool["hashrate"] = _hashrate(pool.pop("credited"), float(m["difficulty"] or 0.0))
        place = labels.place(m["worker"], m["remote"]) if labels is not None else None
        m["place"] = None if place is None else asdict(place)
    return out


def credited(proxy: FarmProxy) -> dict[str, Any]:
    """`/proxy/api/credited`'s answer (see the module docstring)."""
    now = proxy.clock()
    return {"now": now, "machines": {w: max(0.0, now - t) for w, t in proxy.last_credited().items()}}


def racks(proxy: FarmProxy, labels: FarmLabels | None = None,
          machine_list: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The machines per (site, rack), each rack's pool-side counts and the hashrate the pool credits it, with
    its interval; machines the farm does not place are one row with empty site and rack."""
    ms = machines(proxy, labels) if machine_list is None else machine_list
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in ms:
        place = m["place"]
        key = (place["site"], place["rack"]) if place is not None else (UNLABELLED, UNLABELLED)
        groups.setdefault(key, []).append(m)
    out = []
    for (site, rack), members in sorted(groups.items()):
        pools = [m["pool"] for m in members if m["pool"] is not None]
        windows = sum_windows([[WindowCount(**w) for w in p["credited_windows"]] for p in pools])
        rejected: dict[str, int] = {}
        lost: dict[str, int] = {}
        for p in pools:
            for k, n in p["rejected"].items():
                rejected[k] = rejected.get(k, 0) + n
            for k, n in p["lost"].items():
                lost[k] = lost.get(k, 0) + n
        last_diff = max((float(m["difficulty"] or 0.0) for m in members), default=0.0)
        out.append({
            "site": site, "rack": rack, "machines": len(members),
            "mining": sum(1 for m in members if m["sessions"] > 0),
            "workers": [m["worker"] for m in members],
            "forwarded": sum(p["forwarded"] for p in pools), "accepted": sum(p["accepted"] for p in pools),
            "stale": sum(p["stale"] for p in pools), "rejected": rejected, "lost": lost,
            "hashrate": _hashrate([asdict(w) for w in windows], last_diff),
        })
    return out


class ProxyCollector(Collector):
    """`pithead_proxy_*` from the proxy's snapshot at scrape time."""

    def __init__(self, proxy: FarmProxy, labels: FarmLabels | None = None, per_machine: bool = False) -> None:
        self.proxy = proxy
        self.labels = labels
        self.per_machine = per_machine

    def collect(self) -> Iterator[Metric]:
        snap = status(self.proxy)
        ups: list[dict[str, Any]] = snap["upstreams"]
        state = GaugeMetricFamily("pithead_proxy_upstream_state", "1 for each upstream's current state",
                                  labels=["upstream", "state"])
        conns = GaugeMetricFamily("pithead_proxy_upstream_connections", "Ready connections to each upstream",
                                  labels=["upstream"])
        shares = CounterMetricFamily("pithead_proxy_upstream_shares", "Machines' shares by what became of them "
                                     "upstream (forwarded; accepted, rejected, lost once answered or gone)",
                                     labels=["upstream", "result"])
        rejected = CounterMetricFamily("pithead_proxy_upstream_rejected", "Shares the pool rejected, by its reason",
                                       labels=["upstream", "reason"])
        lost = CounterMetricFamily("pithead_proxy_upstream_lost", "Shares with no answer from the pool, by why",
                                   labels=["upstream", "reason"])
        credited = CounterMetricFamily("pithead_proxy_upstream_accepted_difficulty",
                                       "Sum of the difficulty of the shares the pool accepted", labels=["upstream"])
        latency = GaugeMetricFamily("pithead_proxy_upstream_submit_seconds",
                                    "Submit round trip to the pool (last 1024 shares)", labels=["upstream", "quantile"])
        rate = GaugeMetricFamily("pithead_proxy_upstream_hashrate_hashes_per_second",
                                 "Hashrate the pool credits (accepted share difficulty)", labels=["upstream", "window"])
        low = GaugeMetricFamily("pithead_proxy_upstream_hashrate_low_hashes_per_second",
                                "Lower bound of the 90% interval", labels=["upstream", "window"])
        high = GaugeMetricFamily("pithead_proxy_upstream_hashrate_high_hashes_per_second",
                                 "Upper bound of the 90% interval", labels=["upstream", "window"])
        diff = GaugeMetricFamily("pithead_proxy_upstream_difficulty", "The pool's share difficulty on its latest job",
                                 labels=["upstream"])
        for up in ups:
            name = up["name"]
            state.add_metric([name, up["state"]], 1)
            conns.add_metric([name], sum(1 for c in up["connections"] if c["ready"]))
            s = up["shares"]
            for result in ("forwarded", "accepted", "stale", "blocks"):
                shares.add_metric([name, result], s[result])
            shares.add_metric([name, "rejected"], sum(s["rejected"].values()))
            shares.add_metric([name, "lost"], sum(s["lost"].values()))
            for reason, n in sorted(s["rejected"].items()):
                rejected.add_metric([name, reason], n)
            for reason, n in sorted(s["lost"].items()):
                lost.add_metric([name, reason], n)
            credited.add_metric([name], s["accepted_difficulty"])
            for q, key in (("0.5", "p50_s"), ("0.99", "p99_s")):
                if up["latency"][key] is not None:
                    latency.add_metric([name, q], up["latency"][key])
            for h in up["hashrate"]:
                rate.add_metric([name, h["window"]], h["hashrate_hps"])
                low.add_metric([name, h["window"]], h["low_hps"])
                high.add_metric([name, h["window"]], h["high_hps"])
            if up["difficulty"] is not None:
                diff.add_metric([name], up["difficulty"])
        yield from (state, conns, shares, rejected, lost, credited, latency, rate, low, high, diff)
        active = GaugeMetricFamily("pithead_proxy_active_upstream", "1 for the upstream the machines mine on",
                                   labels=["upstream"])
        for up in ups:
            active.add_metric([up["name"]], 1 if up["name"] == snap["active"] else 0)
        yield active
        yield CounterMetricFamily("pithead_proxy_failovers", "Switches of the machines from one pool to another",
                                  value=snap["failovers"])
        m = GaugeMetricFamily("pithead_proxy_machines", "Machine connections, and those mining (subscribed and "
                              "authorized)", labels=["state"])
        m.add_metric(["connected"], snap["machines"]["connected"])
        m.add_metric(["ready"], snap["machines"]["ready"])
        yield m
        yield CounterMetricFamily("pithead_proxy_shares_judged", "Machines' shares judged by the proxy",
                                  value=snap["machines"]["shares_judged"])
        ms = machines(self.proxy, self.labels)
        rk = ["site", "rack"]
        rack_rate = GaugeMetricFamily("pithead_proxy_rack_hashrate_hashes_per_second",
                                      "Hashrate the pool credits each rack (the farm's labels; empty: unlabelled)",
                                      labels=[*rk, "window"])
        rack_low = GaugeMetricFamily("pithead_proxy_rack_hashrate_low_hashes_per_second",
                                     "Lower bound of the 90% interval", labels=[*rk, "window"])
        rack_high = GaugeMetricFamily("pithead_proxy_rack_hashrate_high_hashes_per_second",
                                      "Upper bound of the 90% interval", labels=[*rk, "window"])
        rack_machines = GaugeMetricFamily("pithead_proxy_rack_machines", "Machines known to the proxy per rack, "
                                          "and those connected now", labels=[*rk, "state"])
        rack_shares = CounterMetricFamily("pithead_proxy_rack_shares", "Each rack's shares upstream",
                                          labels=[*rk, "result"])
        for r in racks(self.proxy, self.labels, ms):
            where = [str(r["site"]), str(r["rack"])]
            for h in r["hashrate"]:
                rack_rate.add_metric([*where, h["window"]], h["hashrate_hps"])
                rack_low.add_metric([*where, h["window"]], h["low_hps"])
                rack_high.add_metric([*where, h["window"]], h["high_hps"])
            rack_machines.add_metric([*where, "known"], r["machines"])
            rack_machines.add_metric([*where, "connected"], r["mining"])
            for result in ("forwarded", "accepted", "stale"):
                rack_shares.add_metric([*where, result], r[result])
            rack_shares.add_metric([*where, "rejected"], sum(r["rejected"].values()))
            rack_shares.add_metric([*where, "lost"], sum(r["lost"].values()))
        yield from (rack_rate, rack_low, rack_high, rack_machines, rack_shares)
        if not self.per_machine:
            return
        per = GaugeMetricFamily("pithead_proxy_machine_hashrate_hashes_per_second",
                                "Hashrate the pool credits each machine (worker name)", labels=["worker", "window"])
        per_low = GaugeMetricFamily("pithead_proxy_machine_hashrate_low_hashes_per_second",
                                    "Lower bound of the 90% interval", labels=["worker", "window"])
        per_high = GaugeMetricFamily("pithead_proxy_machine_hashrate_high_hashes_per_second",
                                     "Upper bound of the 90% interval", labels=["worker", "window"])
        per_shares = CounterMetricFamily("pithead_proxy_machine_shares", "Each machine's shares upstream",
                                         labels=["worker", "result"])
        for mach in ms:
            pool = mach["pool"]
            if pool is None:
                continue
            w = mach["worker"]
            for h in pool["hashrate"]:
                per.add_metric([w, h["window"]], h["hashrate_hps"])
                per_low.add_metric([w, h["window"]], h["low_hps"])
                per_high.add_metric([w, h["window"]], h["high_hps"])
            for result in ("forwarded", "accepted"):
                per_shares.add_metric([w, result], pool[result])
            per_shares.add_metric([w, "rejected"], sum(pool["rejected"].values()))
            per_shares.add_metric([w, "lost"], sum(pool["lost"].values()))
        yield from (per, per_low, per_high, per_shares)


def proxy_router(proxy: FarmProxy, token: str | None = None, labels: FarmLabels | None = None,
                 dashboard: bool = False) -> APIRouter:
    """The proxy's routes under /proxy (API and page; see the module docstring); `token` guards the actions,
    `labels` places the machines in the farm's racks; `dashboard`: mounted in pithead's dashboard app (the
    page then links it, and the farm's page when `labels` come from a farm)."""
    router = APIRouter(prefix="/proxy", tags=["proxy"])
    bearer = HTTPBearer(auto_error=False)
    want = hashlib.sha256(token.encode()).digest() if token is not None else None

    def authorise(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if want is not None:
            got = hashlib.sha256((cred.credentials if cred is not None else "").encode()).digest()
            if cred is None or not hmac.compare_digest(want, got):
                raise HTTPException(401, "this action needs the proxy's API token: send `Authorization: Bearer "
                                    "<token>`", headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
            return
        if not is_local_request(request):
            raise HTTPException(403, "actions are refused: no API token is configured ([proxy] api_token_file), "
                                "and without one they are allowed only on a loopback connection")

    async def fresh_labels() -> None:
        if labels is not None:
            await labels.refresh()

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "proxy.html"), media_type="text/html")

    @router.get("/proxy.js", include_in_schema=False)
    async def page_script() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "proxy.js"), media_type="text/javascript")

    @router.get("/api/status")
    async def get_status() -> dict[str, Any]:
        return status(proxy)

    @router.get("/api/machines")
    async def get_machines() -> list[dict[str, Any]]:
        await fresh_labels()
        return machines(proxy, labels)

    @router.get("/api/credited", summary="Each machine's seconds since the pool last credited it (the farm's alert)")
    async def get_credited() -> dict[str, Any]:
        return credited(proxy)

    @router.get("/api/racks")
    async def get_racks() -> dict[str, Any]:
        await fresh_labels()
        return {"labels": None if labels is None else {"devices": labels.devices, "error": labels.error,
                                                        "read_at_age_s": None if labels.fetched_at is None
                                                        else labels.clock() - labels.fetched_at},
                "racks": racks(proxy, labels)}

    @router.get("/api/page", summary="What the page needs: whether actions need the API token, its links")
    async def get_page(request: Request) -> dict[str, Any]:
        return {"token_required": want is not None, "local": is_local_request(request), "dashboard": dashboard,
                "farm": dashboard and labels is not None}

    def act(kind: str, name: str) -> dict[str, Any]:
        try:
            if kind == "switch":
                proxy.switch(name)
            elif kind == "drain":
                proxy.drain(name)
            else:
                proxy.resume(name)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0]) if exc.args else "no such upstream") from None
        return status(proxy)

    @router.post("/api/switch", dependencies=[Depends(authorise)])
    async def post_switch(body: UpstreamBody) -> dict[str, Any]:
        return act("switch", body.upstream)

    @router.post("/api/drain", dependencies=[Depends(authorise)])
    async def post_drain(body: UpstreamBody) -> dict[str, Any]:
        return act("drain", body.upstream)

    @router.post("/api/resume", dependencies=[Depends(authorise)])
    async def post_resume(body: UpstreamBody) -> dict[str, Any]:
        return act("resume", body.upstream)

    return router


def create_proxy_app(proxy: FarmProxy, token: str | None = None, labels: FarmLabels | None = None,
                     per_machine: bool = False) -> FastAPI:
    """The proxy's API (see the module docstring); `token` guards the actions, `labels` joins the farm's
    racks, `per_machine` adds one Prometheus series per machine."""
    app = FastAPI(title="pithead proxy", version=__version__, docs_url="/docs", redoc_url=None,
                  description="The farm proxy: upstream pools, failover, the machines and what each pool credits.")
    registry = CollectorRegistry()
    registry.register(ProxyCollector(proxy, labels, per_machine))
    app.include_router(proxy_router(proxy, token, labels))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if labels is not None:
            await labels.refresh()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app

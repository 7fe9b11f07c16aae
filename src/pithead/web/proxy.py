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
- `GET /metrics`: Prometheus, `pithead_proxy_*`, read from the proxy at scrape time.

What it is not: the proxy (`pithead.proxy`) or its dashboard page (next step).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from pithead import __version__
from pithead.ledger.stats import estimate
from pithead.proxy.proxy import FarmProxy
from pithead.web.farm import is_local_request

MAX_NAME = 128
"""Longest upstream name accepted in an action (names come from the config)."""
REALM = "pithead-proxy"
MIN_TOKEN_LEN = 16
"""Shortest API token accepted: guessing it over HTTP must be hopeless."""
MAX_TOKEN_LEN = 256
"""Longest token (it goes in a header; also the most a token file may hold)."""


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


def machines(proxy: FarmProxy) -> list[dict[str, Any]]:
    out = proxy.machine_snapshot(proxy.clock())
    for m in out:
        pool = m["pool"]
        if isinstance(pool, dict):
            pool["hashrate"] = _hashrate(pool.pop("credited"), float(m["difficulty"] or 0.0))
    return out


class ProxyCollector(Collector):
    """`pithead_proxy_*` from the proxy's snapshot at scrape time."""

    def __init__(self, proxy: FarmProxy) -> None:
        self.proxy = proxy

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
        per = GaugeMetricFamily("pithead_proxy_machine_hashrate_hashes_per_second",
                                "Hashrate the pool credits each machine (worker name)", labels=["worker", "window"])
        per_low = GaugeMetricFamily("pithead_proxy_machine_hashrate_low_hashes_per_second",
                                    "Lower bound of the 90% interval", labels=["worker", "window"])
        per_high = GaugeMetricFamily("pithead_proxy_machine_hashrate_high_hashes_per_second",
                                     "Upper bound of the 90% interval", labels=["worker", "window"])
        per_shares = CounterMetricFamily("pithead_proxy_machine_shares", "Each machine's shares upstream",
                                         labels=["worker", "result"])
        for mach in machines(self.proxy):
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


def create_proxy_app(proxy: FarmProxy, token: str | None = None) -> FastAPI:
    """The proxy's API (see the module docstring); `token` guards the actions."""
    app = FastAPI(title="pithead proxy", version=__version__, docs_url="/docs", redoc_url=None,
                  description="The farm proxy: upstream pools, failover, the machines and what each pool credits.")
    registry = CollectorRegistry()
    registry.register(ProxyCollector(proxy))
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

    @app.get("/proxy/api/status")
    async def get_status() -> dict[str, Any]:
        return status(proxy)

    @app.get("/proxy/api/machines")
    async def get_machines() -> list[dict[str, Any]]:
        return machines(proxy)

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

    @app.post("/proxy/api/switch", dependencies=[Depends(authorise)])
    async def post_switch(body: UpstreamBody) -> dict[str, Any]:
        return act("switch", body.upstream)

    @app.post("/proxy/api/drain", dependencies=[Depends(authorise)])
    async def post_drain(body: UpstreamBody) -> dict[str, Any]:
        return act("drain", body.upstream)

    @app.post("/proxy/api/resume", dependencies=[Depends(authorise)])
    async def post_resume(body: UpstreamBody) -> dict[str, Any]:
        return act("resume", body.upstream)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app

"""`create_app(services)`: the FastAPI application serving the API, /metrics and the dashboard.

The dashboard is static HTML/JS/CSS from `pithead/web/static/` (no front-end build; the chart library is
vendored under `static/vendor/`), reading the JSON API and the `/api/stream` Server-Sent Events. `/` is
the pool dashboard and `/address/{address}` the same page opened on one miner's address, as on
public-pool. The Miningcore-compatible read API (`pithead.web.miningcore`) is served beside pithead's
own, so Miningcore front ends work unchanged. When the farm's web module is present its router is mounted
too (under /farm unless it names its own prefix), and the farm proxy's (under /proxy) when one runs.

The app owns no services: it reads what `Services` gives it, and whoever built them stops them.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from pithead import __version__
from pithead.ledger.store.base import StoreError
from pithead.web.api import ADDRESS_RE, build_router
from pithead.web.metrics import Metrics
from pithead.web.miningcore.router import mount as mount_miningcore
from pithead.web.network import NodeMonitor
from pithead.web.services import Services

STATIC_DIR = resources.files("pithead.web") / "static"


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        docs_url=None,  # served below from the vendored Swagger UI: the stock page loads it from a CDN
        redoc_url=None,
        title="pithead",
        version=__version__,
        description=(
            "REST API of a pithead mining operation: pool summary, network, workers and addresses with "
            "hashrate windows (90% confidence intervals), shares, blocks, balances and payouts. "
            "Hashrates are in hashes per second, amounts in satoshis, times in UNIX seconds."
        ),
    )
    metrics: Metrics | None = None

    def on_latency(method: str, seconds: float) -> None:
        if metrics is not None:
            metrics.observe_latency(method, seconds)

    monitor = NodeMonitor(services.node, services.last_template_time, services.clock, on_latency)
    metrics = Metrics(services, monitor)
    app.state.services = services
    app.state.monitor = monitor
    app.state.metrics = metrics

    # Set by `WebServer.stop()` (or whoever serves the app) so live streams end before the server does.
    app.state.shutdown = asyncio.Event()
    app.include_router(build_router(services, monitor, app.state.shutdown))
    mount_miningcore(app, services, monitor)

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"ledger unavailable: {exc}"}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        metrics.collector.last_network = await monitor.status()
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="pithead API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="data:,",
            swagger_ui_parameters={"validatorUrl": None},  # never call out to a validator service
        )

    @app.get("/healthz", tags=["meta"], summary="Liveness: 200 while the web app runs")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "ledger": services.store is not None,
                "node": services.node is not None, "pool": services.pool is not None,
                "farm": services.farm_router is not None, "proxy": services.proxy_router is not None}

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        # Pages that name no icon (the farm's) make browsers ask for this; answer instead of a 404.
        return Response(status_code=204)

    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(index), media_type="text/html")

    @app.get("/address/{address}", include_in_schema=False)
    async def address_page(address: str) -> FileResponse:
        if not ADDRESS_RE.match(address):
            raise HTTPException(400, "not a Bitcoin address")
        return FileResponse(str(index), media_type="text/html")

    @app.get("/address", include_in_schema=False)
    async def address_lookup(q: str = "") -> RedirectResponse:
        q = q.strip()
        if not ADDRESS_RE.match(q):
            raise HTTPException(400, "not a Bitcoin address")
        return RedirectResponse(f"/address/{q}", status_code=303)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    farm = services.farm_router
    if farm is not None:
        app.include_router(farm, prefix="" if getattr(farm, "prefix", "") else "/farm", tags=["farm"])
    if services.proxy_router is not None:  # the farm proxy's page and API (`pithead up` runs one)
        app.include_router(services.proxy_router)
    return app

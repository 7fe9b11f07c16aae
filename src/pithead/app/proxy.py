"""`pithead proxy run`: the farm proxy profile — the proxy (`pithead.proxy`) and its HTTP API
(`pithead.web.proxy`: status, the operator's switch / drain / resume, Prometheus), nothing else.

`serve(cfg)` builds the proxy from `[proxy]` (a config the operator must fix is refused before anything
starts), starts it as every profile starts its parts (`pithead.app.lifecycle.run_parts`: one supervised
life, ordered stop), and runs until `stop`. At stop the proxy goes first — no more machines or shares, then
its upstream connections, each waiting briefly for the answers to the shares in flight — then the API.
`on_listening`, when given, gets the start banner (where machines connect, where the API is, the pools).
With `[proxy] farm_url`, the machines are placed in the farm's racks by its inventory (read over its API).
`LocalProxyCredits` is the proxy's figures as the source of the farm's pool-side share activity
(`pithead.farm.proxy_shares.ProxyShareActivity`) when both run in one process (`pithead up`): the farm's
"hashing but no shares" alert for the machines behind the proxy (in another process the farm reads the
proxy's `/proxy/api/credited` instead: `ProxyApiCredits`, the other source).
What it is not: the proxy's logic or its HTTP routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from pithead.app.lifecycle import Running, StartError, check_port, run_parts
from pithead.config import ConfigError, ProxyConfig
from pithead.proxy.build import build_proxy
from pithead.proxy.proxy import FarmProxy
from pithead.web.proxy import (
    FarmLabels,
    ProxyTokenError,
    create_proxy_app,
    farm_devices_over_http,
    load_token,
)
from pithead.web.server import WebServer, WebServerError

log = logging.getLogger(__name__)

STOP_FIRST = ("proxy", "proxy api")
"""The proxy stops first (its last answers are counted while the API still shows them), then the API."""


class LocalProxyCredits:
    """A `CreditSource` over a proxy in this process (`FarmProxy.last_credited`: read on the event loop, as
    `ProxyShareActivity.take` runs there)."""

    def __init__(self, proxy: FarmProxy) -> None:
        self.proxy = proxy

    @property
    def where(self) -> str:
        return "the proxy in this process"

    async def read(self) -> Mapping[str, float]:
        return self.proxy.last_credited()


async def serve(cfg: ProxyConfig, *, on_listening: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None, on_ready: Callable[[Running], None] | None = None,
                duration: float | None = None) -> Running:
    """Run the proxy until `stop` is set (or `duration` passes)."""
    proxy = build_proxy(cfg)
    try:
        token = load_token(cfg.api_token_file) if cfg.api_token_file is not None else None
    except ProxyTokenError as exc:
        raise ConfigError(f"proxy.api_token_file: {exc}") from None
    running = Running(data_dir=Path.cwd())  # the proxy keeps nothing on disk

    async def start() -> None:
        check_port("proxy", cfg.bind, cfg.port, "Set another [proxy] port")
        check_port("proxy API", cfg.api_bind, cfg.api_port, "Set another [proxy] api_port")
        if cfg.sv2_port:
            check_port("proxy SV2", cfg.bind, cfg.sv2_port, "Set another [proxy] sv2_port")
        try:
            await proxy.start(cfg.bind, cfg.port, cfg.sv2_port)
        except OSError as exc:
            raise StartError(f"proxy: cannot listen on {cfg.bind}:{cfg.port} (or sv2_port {cfg.sv2_port}): "
                             f"{exc}") from exc
        running.on_stop("proxy", proxy.stop)
        running.parts.append("proxy")
        running.proxy = proxy
        running.stratum_url = proxy.stratum_url
        labels = FarmLabels(farm_devices_over_http(cfg.farm_url)) if cfg.farm_url is not None else None
        web = WebServer(create_proxy_app(proxy, token, labels, per_machine=cfg.metrics_per_machine),
                        cfg.api_bind, cfg.api_port)
        try:
            await web.start()
        except WebServerError as exc:
            raise StartError(f"proxy API: {exc}") from exc
        running.on_stop("proxy api", web.stop)
        running.parts.append("proxy api")
        running.web_url = web.url

    def started() -> None:
        pools = ", ".join(f"{u.name} ({u.address})" for u in proxy.upstreams.values())
        sv2 = f", Stratum V2 on {proxy.sv2_url}" if proxy.sv2_url else ""
        banner = (f"pithead proxy listening on {proxy.host}:{proxy.port} ({proxy.stratum_url}{sv2}); "
                  f"API {running.web_url}; upstreams: {pools}")
        log.info("%s", banner)
        if on_listening is not None:
            on_listening(banner)

    try:
        return await run_parts(running, start, stop or asyncio.Event(), started=started, on_ready=on_ready,
                               duration=duration, first=STOP_FIRST)
    finally:
        log.info("proxy stopped")

"""A `FarmProxy` from the typed config: `[proxy]` and its `[[proxy.upstreams]]`.

`build_proxy(cfg)` checks the section (`pithead.config.validate`), insists on at least one upstream, parses
each upstream's URL (stratum+tcp or stratum+ssl, with its CA file when it names one) and the machines' TLS
certificate, and returns an unstarted proxy. Problems are `pithead.config.ConfigError`, naming the key.
What it is not: the process around it (`pithead.app.proxy`).
"""

from __future__ import annotations

from pithead.config import ConfigError, ProxyConfig, validate
from pithead.proxy.proxy import FarmProxy, ProxySettings, UpstreamSpec
from pithead.stratum.client.connection import parse_pool_url, tls_context
from pithead.stratum.server.build import tls_from_config
from pithead.stratum.server.pool import ServerLimits
from pithead.stratum.v1.errors import InvalidPoolUrl


def settings_from_config(cfg: ProxyConfig) -> ProxySettings:
    validate(cfg)
    return ProxySettings(
        connections_per_upstream=cfg.connections_per_upstream, tag_bytes=cfg.tag_bytes,
        extranonce2_size=cfg.extranonce2_size, start_difficulty=cfg.start_difficulty,
        min_difficulty=cfg.min_difficulty, share_interval=cfg.share_interval,
        version_mask=cfg.version_mask_bits(), keepalive_interval=cfg.keepalive_interval,
        failback_after=cfg.failback_after, stale_after=cfg.stale_after, answer_timeout=cfg.answer_timeout,
        upstream_timeout=cfg.upstream_timeout,
        limits=ServerLimits(max_connections_per_ip=cfg.max_connections_per_ip,
                            handshake_timeout=cfg.handshake_timeout, idle_timeout=cfg.idle_timeout,
                            ban_seconds=cfg.ban_seconds, ban_ipv6_prefix=cfg.ban_ipv6_prefix),
    )


def upstreams_from_config(cfg: ProxyConfig) -> list[UpstreamSpec]:
    validate(cfg)
    if not cfg.upstreams:
        raise ConfigError("proxy.upstreams: the proxy needs at least one pool ([[proxy.upstreams]] url, user)")
    specs = []
    for i, up in enumerate(cfg.upstreams):
        try:
            address = parse_pool_url(up.url)
            ctx = tls_context(up.tls_ca_file) if address.tls and up.tls_ca_file else None
        except InvalidPoolUrl as exc:
            raise ConfigError(f"proxy.upstreams[{i}]: {exc}") from None
        specs.append(UpstreamSpec(up.label(), address, up.user, up.password, up.priority, ctx))
    return specs


def build_proxy(cfg: ProxyConfig) -> FarmProxy:
    """An unstarted `FarmProxy` for `cfg` (start it with `start(cfg.bind, cfg.port)`)."""
    return FarmProxy(settings_from_config(cfg), upstreams_from_config(cfg),
                     ssl_context=tls_from_config(cfg.tls_cert_file, cfg.tls_key_file, "proxy"))

"""A `FarmProxy` from the typed config: `[proxy]` and its `[[proxy.upstreams]]`.

`build_proxy(cfg)` checks the section (`pithead.config.validate`), insists on at least one upstream, parses
each upstream's URL (stratum+tcp or stratum+ssl, with its CA file when it names one; stratum2+tcp with the
pool's authority key) and, with `sv2_port`, the proxy's own SV2 authority key and the machines' TLS
certificate, and returns an unstarted proxy. Problems are `pithead.config.ConfigError`, naming the key.
What it is not: the process around it (`pithead.app.proxy`).
"""

from __future__ import annotations

from pithead.config import ConfigError, ProxyConfig, validate
from pithead.proxy.proxy import FarmProxy, ProxySettings, UpstreamSpec
from pithead.stratum.client.connection import parse_pool_url, tls_context
from pithead.stratum.client.v2 import SCHEME as SV2_SCHEME
from pithead.stratum.client.v2 import parse_sv2_url
from pithead.stratum.server.build import tls_from_config
from pithead.stratum.server.pool import ServerLimits
from pithead.stratum.server.v2 import read_authority_secret
from pithead.stratum.v1.errors import InvalidPoolUrl
from pithead.stratum.v2.errors import KeyEncodingError


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
            address = (parse_sv2_url(up.url) if up.url.strip().startswith(SV2_SCHEME + "://")
                       else parse_pool_url(up.url))
            ctx = tls_context(up.tls_ca_file) if address.tls and up.tls_ca_file else None
        except InvalidPoolUrl as exc:
            raise ConfigError(f"proxy.upstreams[{i}]: {exc}") from None
        specs.append(UpstreamSpec(up.label(), address, up.user, up.password, up.priority, ctx))
    return specs


def sv2_authority_from_config(cfg: ProxyConfig) -> bytes | None:
    """The proxy's SV2 authority secret when `sv2_port` is set (None: V1 only); `ConfigError` naming the key
    for a file that cannot be read or is not a key."""
    if cfg.sv2_port is None:
        return None
    path = cfg.sv2_authority_secret_key_file or ""
    try:
        return read_authority_secret(path)
    except OSError as exc:
        raise ConfigError(f"proxy.sv2_authority_secret_key_file: cannot read {path}: {exc.strerror or exc}") from None
    except KeyEncodingError as exc:
        raise ConfigError(f"proxy.sv2_authority_secret_key_file: {exc}") from None


def build_proxy(cfg: ProxyConfig) -> FarmProxy:
    """An unstarted `FarmProxy` for `cfg` (start it with `start(cfg.bind, cfg.port, cfg.sv2_port)`)."""
    settings = settings_from_config(cfg)
    return FarmProxy(settings, upstreams_from_config(cfg),
                     ssl_context=tls_from_config(cfg.tls_cert_file, cfg.tls_key_file, "proxy"),
                     sv2_authority=sv2_authority_from_config(cfg), sv2_cert_validity=cfg.sv2_cert_validity)

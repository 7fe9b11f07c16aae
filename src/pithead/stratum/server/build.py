"""A `PoolServer` from the typed config: the pool's rules, its extranonce slice, its limits.

`rules_from_config` checks the pool's settings (`pithead.config.validate`) and builds the `PoolRules` the sessions share;
`build_server(cfg, source, sink)` makes one (unstarted) server; `front_end_shard` and `pool_workers` read
`[pool] front_end` and `[pool] workers`; `[pool] tls_cert_file`/`tls_key_file` serve stratum+ssl
(`tls_from_config`). Config problems are `pithead.config.ConfigError`, naming the key. What it is not: the choice between one process and worker
processes, the template source or the ledger sink (`pithead.app.pool` assembles those).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from pithead.chain.address import AddressError, address_to_script
from pithead.chain.params import network_by_name
from pithead.config import ConfigError, PoolConfig, validate
from pithead.events import ShareSink
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.server.tls import TlsError, server_context
from pithead.stratum.v1.pool import PoolRules
from pithead.template.interface import TemplateSource


def rules_from_config(cfg: PoolConfig) -> PoolRules:
    """The rules every session of this pool shares; the section is checked first (`config.validate`),
    and the pool address, when there is one, must be an address of the configured network."""
    validate(cfg)
    network = network_by_name(cfg.network)
    if cfg.pool_address:
        try:
            address_to_script(cfg.pool_address, network)
        except AddressError as exc:
            raise ConfigError(f"pool.pool_address: {cfg.pool_address!r} is not a {network.name} address: {exc}") \
                from None
    return PoolRules(
        mode=cfg.mode,
        network=network,
        vardiff=VarDiffConfig(cfg.share_interval, cfg.min_difficulty, cfg.max_difficulty),
        start_difficulty=cfg.start_difficulty,
        version_mask=cfg.version_mask_bits(),
        extranonce2_size=cfg.extranonce2_size,
        user_rule=cfg.user_rule,
    )


def pool_workers(cfg: PoolConfig) -> int:
    """How many pool processes `cfg` asks for (`[pool] workers`; 0 = one per CPU core)."""
    validate(cfg)
    return cfg.workers or (os.cpu_count() or 1)


def front_end_shard(cfg: PoolConfig) -> tuple[int, int]:
    """(I, N) from `[pool] front_end = "I/N"`: this pool's slice of the extranonce1 space among the N
    front-ends that publish to one share bus. Disjoint slices mean no miner can hold the same extranonce1
    (hence the same coinbase and the same share hashes) on two front-ends and be credited twice."""
    validate(cfg)
    return cfg.front_end_shard()


def tls_from_config(cert_file: str | None, key_file: str | None, section: str = "pool") -> ssl.SSLContext | None:
    """The TLS context of `[SECTION] tls_cert_file`/`tls_key_file` (None when neither is set: plain TCP); a
    file that cannot be used is a `ConfigError` naming the key."""
    if cert_file is None or key_file is None:
        return None
    try:
        return server_context(cert_file, key_file)
    except TlsError as exc:
        raise ConfigError(f"{section}.tls_cert_file: {exc}") from None


def build_server(cfg: PoolConfig, source: TemplateSource, sink: ShareSink | None = None, *,
                 extranonce_shard: tuple[int, int] | None = None,
                 on_ban: Callable[[str, float], None] | None = None,
                 broadcast_threads: int | None = None) -> PoolServer:
    rules = rules_from_config(cfg)
    if extranonce_shard is None:  # one process: its front-end's slice (all of it for a lone pool)
        extranonce_shard = front_end_shard(cfg)
    # checked by rules_from_config: pool mode has an address, and it is one of the network
    pool_script = address_to_script(cfg.pool_address, rules.network) if cfg.mode == "pool" and cfg.pool_address \
        else None
    limits = ServerLimits(
        max_connections_per_ip=cfg.max_connections_per_ip,
        handshake_timeout=cfg.handshake_timeout,
        idle_timeout=cfg.idle_timeout,
        ban_seconds=cfg.ban_seconds,
        ban_ipv6_prefix=cfg.ban_ipv6_prefix,
    )
    return PoolServer(
        rules=rules, source=source, sink=sink, pool_script=pool_script, tag=cfg.coinbase_tag.encode(),
        refresh_interval=cfg.refresh_interval, limits=limits, extranonce_shard=extranonce_shard, on_ban=on_ban,
        broadcast_threads=broadcast_threads, ssl=tls_from_config(cfg.tls_cert_file, cfg.tls_key_file),
    )

"""A `PoolServer` from the typed config: the pool's rules, its extranonce slice, its limits.

`rules_from_config` checks every pool setting and builds the `PoolRules` the sessions share;
`build_server(cfg, source, sink)` makes one (unstarted) server; `front_end_shard` and `pool_workers` read
`[pool] front_end` and `[pool] workers`. What it is not: the choice between one process and worker
processes, the template source or the ledger sink (`pithead.app.pool` assembles those).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pithead.chain.address import address_to_script
from pithead.chain.params import network_by_name
from pithead.config import PoolConfig
from pithead.events import ShareSink
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v1.wire import parse_hex32
from pithead.template.interface import TemplateSource


class PoolConfigError(ValueError):
    """A pool configuration that cannot run (bad mode, address, mask, sizes)."""


def rules_from_config(cfg: PoolConfig) -> PoolRules:
    if cfg.mode not in ("solo", "pool"):
        raise PoolConfigError(f"pool.mode must be solo or pool, not {cfg.mode!r}")
    if cfg.user_rule not in ("address", "any"):
        raise PoolConfigError("pool.user_rule must be address or any")
    if not 2 <= cfg.extranonce2_size <= 8:
        raise PoolConfigError("pool.extranonce2_size must be 2..8 (cgminer-derived firmware needs <= 8)")
    front_end_shard(cfg)  # a bad front_end is refused with the other settings, before anything starts
    try:
        mask = parse_hex32(cfg.version_mask, "pool.version_mask")
        vardiff = VarDiffConfig(cfg.share_interval, cfg.min_difficulty, cfg.max_difficulty)
    except ValueError as exc:
        raise PoolConfigError(str(exc)) from exc
    return PoolRules(
        mode=cfg.mode,
        network=network_by_name(cfg.network),
        vardiff=vardiff,
        start_difficulty=cfg.start_difficulty,
        version_mask=mask,
        extranonce2_size=cfg.extranonce2_size,
        user_rule=cfg.user_rule,
    )


def resolve_workers(n: int) -> int:
    """The number of worker processes for `[pool] workers`: 0 means one per CPU core."""
    if n < 0:
        raise ValueError(f"pool.workers must be 0 (one per core) or more, not {n}")
    return n or (os.cpu_count() or 1)


def pool_workers(cfg: PoolConfig) -> int:
    """How many pool processes `cfg` asks for (`[pool] workers`; 0 = one per CPU core)."""
    try:
        return resolve_workers(cfg.workers)
    except ValueError as exc:
        raise PoolConfigError(str(exc)) from exc


MAX_FRONT_ENDS = 256


def front_end_shard(cfg: PoolConfig) -> tuple[int, int]:
    """(I, N) from `[pool] front_end = "I/N"`: this pool's slice of the extranonce1 space among the N
    front-ends that publish to one share bus. Disjoint slices mean no miner can hold the same extranonce1
    (hence the same coinbase and the same share hashes) on two front-ends and be credited twice."""
    try:
        first, count = (int(x) for x in cfg.front_end.strip().split("/"))
    except ValueError:
        raise PoolConfigError(f"pool.front_end must be I/N (front-end I of N), not {cfg.front_end!r}") from None
    if not 1 <= count <= MAX_FRONT_ENDS or not 0 <= first < count:
        raise PoolConfigError(f"pool.front_end {cfg.front_end!r}: want 0 <= I < N <= {MAX_FRONT_ENDS}")
    return first, count


def build_server(cfg: PoolConfig, source: TemplateSource, sink: ShareSink | None = None, *,
                 extranonce_shard: tuple[int, int] | None = None,
                 on_ban: Callable[[str, float], None] | None = None,
                 broadcast_threads: int | None = None) -> PoolServer:
    rules = rules_from_config(cfg)
    if extranonce_shard is None:  # one process: its front-end's slice (all of it for a lone pool)
        extranonce_shard = front_end_shard(cfg)
    pool_script = None
    if cfg.mode == "pool":
        if not cfg.pool_address:
            raise PoolConfigError("pool mode needs pool.pool_address (--address)")
        try:
            pool_script = address_to_script(cfg.pool_address, rules.network)
        except ValueError as exc:
            raise PoolConfigError(f"pool.pool_address: {exc}") from exc
    limits = ServerLimits(
        max_connections_per_ip=cfg.max_connections_per_ip,
        handshake_timeout=cfg.handshake_timeout,
        idle_timeout=cfg.idle_timeout,
        ban_seconds=cfg.ban_seconds,
    )
    return PoolServer(
        rules=rules, source=source, sink=sink, pool_script=pool_script, tag=cfg.coinbase_tag.encode()[:40],
        refresh_interval=cfg.refresh_interval, limits=limits, extranonce_shard=extranonce_shard, on_ban=on_ban,
        broadcast_threads=broadcast_threads,
    )

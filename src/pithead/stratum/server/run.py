"""Wiring a `PoolServer` from the typed config: rules, payout script, template source, ledger sink.

`build_server(cfg, source, sink)` is what `pithead pool` and `pithead up` use; `make_source(cfg)` picks the
template source for the configured nodes; `serve(cfg)` runs until interrupted, with graceful shutdown,
publishing its events to a Redis share bus when given one (`open_share_bus`: a front-end of the many that
feed one `pithead serve` ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from pithead.chain.address import address_to_script
from pithead.chain.params import network_by_name
from pithead.config import PoolConfig
from pithead.ledger.events import ShareSink
from pithead.stratum.protocol.difficulty import VarDiffConfig
from pithead.stratum.protocol.session import PoolRules
from pithead.stratum.protocol.version import parse_hex32
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.template.interface import TemplateSource

if TYPE_CHECKING:
    from pithead.store.redis_bus import RedisShareSink
    from pithead.stratum.server.workers import WorkerPool

log = logging.getLogger(__name__)


class PoolConfigError(ValueError):
    """A pool configuration that cannot run (bad mode, address, mask, sizes)."""


class PoolStartError(RuntimeError):
    """The pool could not start (no node gave a template, the port is taken)."""


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


def make_source(cfg: PoolConfig) -> TemplateSource:
    """The template source for the configured nodes: pithead.template's failover source (ZMQ hashblock,
    GBT long-poll or polling per node; blocks submitted to every node at once)."""
    from pithead.template.rpc import NodeError
    from pithead.template.source import source_from_config

    chain = network_by_name(cfg.network).name
    try:
        return source_from_config(cfg.nodes, chain=chain, refresh_interval=cfg.refresh_interval)
    except NodeError as exc:
        raise PoolConfigError(f"pool.nodes: {exc} (give --cookie or --rpc-user/--rpc-password)") from exc


def pool_workers(cfg: PoolConfig) -> int:
    """How many pool processes `cfg` asks for (`[pool] workers`; 0 = one per CPU core)."""
    from pithead.stratum.server.workers import resolve_workers

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


def make_pool(cfg: PoolConfig, source: TemplateSource, sink: ShareSink | None = None) -> PoolServer | WorkerPool:
    """The pool `cfg` asks for, not started: one `PoolServer`, or a `WorkerPool` of `[pool] workers`
    processes (its supervisor feeding `sink`). Both have the same `start(host, port)` and `stop()`."""
    workers = pool_workers(cfg)
    if workers > 1:
        from pithead.stratum.server.workers import WorkerPool

        return WorkerPool(cfg, source, sink, workers)
    return build_server(cfg, source, sink)


def no_ledger_note(cfg: PoolConfig, sink: ShareSink | None) -> str | None:
    """What `serve` tells the operator when pool-mode shares have nowhere to go: the standalone pool runs
    no ledger (that is `pithead up`), so balances and payouts are not kept. None when nothing is lost."""
    if cfg.mode != "pool" or sink is not None:
        return None
    return ("pool mode without a ledger: shares are judged and blocks pay the pool address, but no share "
            "is recorded for balances or payouts (`pithead serve` runs the pool with its ledger; "
            "--share-bus redis://... publishes them to the ledger of a `pithead serve` elsewhere)")


async def open_share_bus(url: str) -> tuple[RedisShareSink, asyncio.Task[None], asyncio.Event]:
    """The Redis share bus at `url` (`[ledger] share_bus` / `--share-bus`) as the pool's sink: checked
    to answer, its writer task started. Returns (sink, writer task, the writer's stop event); raises
    `PoolConfigError` for a URL that is not a Redis bus and `PoolStartError` when Redis does not answer."""
    from pithead.ledger.service import bus_label, open_bus
    from pithead.store.base import StoreError
    from pithead.store.redis_bus import RedisShareSink

    if url == "memory":
        raise PoolConfigError("a standalone pool's share bus must be redis://... (memory reaches no ledger)")
    try:
        sink, _ = open_bus(url)
    except ValueError as exc:
        raise PoolConfigError(str(exc)) from exc
    assert isinstance(sink, RedisShareSink)  # every URL but "memory" is a Redis one
    try:
        await sink.ping()
    except StoreError as exc:
        await sink.client.aclose()
        raise PoolStartError(f"share bus {bus_label(url)}: {exc}") from exc
    writer_stop = asyncio.Event()
    writer = asyncio.create_task(sink.run(writer_stop), name="pithead-share-bus")
    return sink, writer, writer_stop


async def serve(cfg: PoolConfig, source: TemplateSource | None = None, sink: ShareSink | None = None,
                on_listening: Callable[[str], None] | None = None, *, share_bus: str | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the pool until SIGINT/SIGTERM (or `stop` is set); then stop accepting, close miners, stop the
    source.

    `share_bus`, a redis:// URL, makes the pool publish its share and block events to that Redis stream
    (the ledger of `pithead serve` consumes it), in place of `sink`: Redis must answer at start, and is
    written to in the background, so a Redis that goes away later never stops or slows the pool (see
    `RedisShareSink`); at stop, after the pool has stopped, the last events are written.

    Normal start and stop are logged at INFO (WARNING is kept for real problems, such as pool mode with
    no ledger); `on_listening`, when given, gets the start banner ("... listening on HOST:PORT") once the
    pool accepts connections, for a CLI to print whatever its log level."""
    rules_from_config(cfg)  # refuse a bad config before touching any node
    workers = pool_workers(cfg)
    if share_bus is None:
        await _serve(cfg, source, sink, workers, on_listening, "", stop)
        return
    from pithead.ledger.service import bus_label

    bus, writer, writer_stop = await open_share_bus(share_bus)
    try:
        await _serve(cfg, source, bus, workers, on_listening, f"; shares and blocks go to {bus_label(share_bus)}",
                     stop)
    finally:  # the pool has stopped: the writer's last flush (bounded) takes every event it put
        writer_stop.set()
        await writer
        await bus.client.aclose()


async def _serve(cfg: PoolConfig, source: TemplateSource | None, sink: ShareSink | None, workers: int,
                 on_listening: Callable[[str], None] | None, bus_note: str, stop: asyncio.Event | None) -> None:
    source = source or make_source(cfg)
    note = no_ledger_note(cfg, sink)
    if sink is None:
        from pithead.ledger.bus import MemoryBus

        sink = MemoryBus("pool")
    server = make_pool(cfg, source, sink)
    try:
        await source.start()
    except Exception as exc:  # no node answered: say so and exit, rather than a traceback
        with contextlib.suppress(Exception):
            await source.stop()
        raise PoolStartError(f"no template from the configured node(s): {exc}") from exc
    try:
        host, port = await server.start(cfg.bind, cfg.port)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a worker process that could not start
        await source.stop()
        raise PoolStartError(f"cannot listen on {cfg.bind}:{cfg.port}: {exc}") from exc
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        procs = f", {workers} worker processes" if workers > 1 else ""
        banner = f"pithead pool ({cfg.mode} mode, {cfg.network}{procs}) listening on {host}:{port}{bus_note}"
        log.info("%s", banner)
        if on_listening is not None:
            on_listening(banner)  # announced once a SIGINT/SIGTERM already stops the pool gracefully
        if note:
            log.warning("%s", note)
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()
        await source.stop()


def run(coro: object) -> None:
    """asyncio.run with uvloop when it is installed."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None  # type: ignore[assignment]
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)  # type: ignore[arg-type]

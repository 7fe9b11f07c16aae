"""The Stratum pool as a part: one server or worker processes, its template source and its share sink.

`make_source(cfg)` builds the failover template source for `[pool] nodes`; `make_pool(cfg, source, sink)`
makes one `PoolServer` or a `WorkerPool` of `[pool] workers` processes; `serve(cfg)` is `pithead pool`:
it runs until interrupted, with graceful shutdown, publishing its events to a Redis share bus when given one
(`open_share_bus`: a front-end of the many that feed one `pithead serve` ledger). The server itself, and
the rules it is built from, are `pithead.stratum.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from pithead.bitcoind.rpc import NodeError
from pithead.chain.params import network_by_name
from pithead.config import ConfigError, PoolConfig
from pithead.events import ShareSink
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.bus.redis import RedisShareSink
from pithead.ledger.service import bus_label, open_bus
from pithead.ledger.store.base import StoreError
from pithead.stratum.server.build import build_server, pool_workers, rules_from_config
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.server.workers import WorkerPool
from pithead.template.interface import TemplateSource
from pithead.template.sources.failover import source_from_config

log = logging.getLogger(__name__)


class PoolStartError(RuntimeError):
    """The pool could not start (no node gave a template, the port is taken)."""


def make_source(cfg: PoolConfig) -> TemplateSource:
    """The template source for the configured nodes: pithead.template's failover source (ZMQ hashblock,
    GBT long-poll or polling per node; blocks submitted to every node at once)."""
    chain = network_by_name(cfg.network).name
    try:
        return source_from_config(cfg.nodes, chain=chain, refresh_interval=cfg.refresh_interval)
    except NodeError as exc:
        raise ConfigError(f"pool.nodes: {exc} (give --cookie or --rpc-user/--rpc-password)") from exc


def make_pool(cfg: PoolConfig, source: TemplateSource, sink: ShareSink | None = None) -> PoolServer | WorkerPool:
    """The pool `cfg` asks for, not started: one `PoolServer`, or a `WorkerPool` of `[pool] workers`
    processes (its supervisor feeding `sink`). Both have the same `start(host, port)` and `stop()`."""
    workers = pool_workers(cfg)
    if workers > 1:
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
    `ConfigError` for a URL that is not a Redis bus and `PoolStartError` when Redis does not answer."""
    if url == "memory":
        raise ConfigError("a standalone pool's share bus must be redis://... (memory reaches no ledger)")
    try:
        sink, _ = open_bus(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
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



"""`pithead pool`: the pool profile — the Stratum pool alone, with its template source and, when given, the
Redis share bus it publishes to (a front-end of the many that feed one `pithead serve` ledger).

`serve(cfg)` starts the pool's parts as every profile does (`pithead.app.parts.start_pool`: templates
from `[pool] nodes` with failover, one process or `[pool] workers` processes) and runs until `stop`:
Redis must answer at start and is written to in the background, so a Redis that goes away later never
stops or slows the pool (see `RedisShareSink`); at stop, after the pool has stopped, its last events are
written. Normal start and stop are logged at INFO (WARNING is kept for real problems, such as pool mode
with no ledger); `on_listening`, when given, gets the start banner ("... listening on HOST:PORT") once the
pool accepts connections, for a CLI to print whatever its log level.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from pithead.app.lifecycle import Running, StartError, run_parts
from pithead.app.parts import STOP_FIRST, start_pool
from pithead.config import ConfigError, PoolConfig
from pithead.events import ShareSink
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.bus.redis import RedisShareSink
from pithead.ledger.service import bus_label, open_bus
from pithead.ledger.store.base import StoreError
from pithead.stratum.server.build import pool_workers, rules_from_config
from pithead.template.interface import TemplateSource

log = logging.getLogger(__name__)


def no_ledger_note(cfg: PoolConfig, sink: ShareSink | None) -> str | None:
    """What `serve` tells the operator when pool-mode shares have nowhere to go: the standalone pool runs
    no ledger (that is `pithead up`), so balances and payouts are not kept. None when nothing is lost."""
    if cfg.mode != "pool" or sink is not None:
        return None
    return ("pool mode without a ledger: shares are judged and blocks pay the pool address, but no share "
            "is recorded for balances or payouts (`pithead serve` runs the pool with its ledger; "
            "--share-bus redis://... publishes them to the ledger of a `pithead serve` elsewhere)")


async def open_publisher(url: str, running: Running) -> RedisShareSink:
    """The Redis share bus at `url` as this pool's sink, checked to answer now (`StartError` if not); its
    writer is started by `start_pool`, right beside the pool it serves."""
    if url == "memory":
        raise ConfigError("a standalone pool's share bus must be redis://... (memory reaches no ledger)")
    sink, _ = open_bus(url)
    assert isinstance(sink, RedisShareSink)  # every URL but "memory" is a Redis one
    try:
        await sink.ping()
    except StoreError as exc:
        await sink.client.aclose()
        raise StartError(f"share bus {bus_label(url)}: {exc}") from exc
    running.on_stop("share bus connection", sink.client.aclose)
    return sink


async def serve(cfg: PoolConfig, source: TemplateSource | None = None, sink: ShareSink | None = None,
                on_listening: Callable[[str], None] | None = None, *, share_bus: str | None = None,
                stop: asyncio.Event | None = None) -> Running:
    """Run the pool until `stop` is set; then stop accepting, close miners, stop the source.

    `share_bus`, a redis:// URL, makes the pool publish its share and block events to that Redis stream
    (the ledger of `pithead serve` consumes it), in place of `sink`."""
    rules_from_config(cfg)  # refuse a bad config before touching any node
    workers = pool_workers(cfg)
    running = Running(data_dir=Path.cwd())  # a standalone pool keeps nothing on disk
    note = no_ledger_note(cfg, sink if share_bus is None else None)
    bus_note = f"; shares and blocks go to {bus_label(share_bus)}" if share_bus is not None else ""

    async def start() -> None:
        out: ShareSink = MemoryBus("pool") if sink is None else sink  # nobody reads it: pool mode says so
        if share_bus is not None:
            out = await open_publisher(share_bus, running)
        await start_pool(cfg, running, out, source=source)

    def started() -> None:
        procs = f", {workers} worker processes" if workers > 1 else ""
        host_port = (running.stratum_url or "").removeprefix("stratum+tcp://")
        sv2 = f", Stratum V2 on {running.sv2_url}" if running.sv2_url else ""
        banner = f"pithead pool ({cfg.mode} mode, {cfg.network}{procs}) listening on {host_port}{sv2}{bus_note}"
        log.info("%s", banner)
        if on_listening is not None:
            on_listening(banner)  # announced once a SIGINT/SIGTERM already stops the pool gracefully
        if note:
            log.warning("%s", note)

    try:
        return await run_parts(running, start, stop or asyncio.Event(), started=started, on_ready=None,
                               duration=None, first=STOP_FIRST)
    finally:
        log.info("shutting down")

"""The ledger's asyncio shell: consume events, and on timers roll up, track maturity and pay out.

`run_ledger` is what `pithead up` / `pithead pool` start next to the Stratum server: one TaskGroup with
the consumer loop, three periodic jobs and the uptime heartbeat (each run of the ledger is recorded as
(started, last seen), so the hashrate windows leave the time the pool was down out of their exposure;
see `pithead.ledger.uptime`), and, given a `NoticeSink`, the notices of maturity changes and payout runs
and a watch for workers gone quiet (`pithead.ledger.quiet`). A periodic job that fails (node or wallet unreachable) logs
and tries again on its next tick; it never takes the consumer down. `open_ledger` builds the `Ledger`
from the config (store URL relative to the data directory). `RpcChainView` is the `ChainView` the
maturity tracker needs, asked of a node through `pithead.bitcoind.rpc.RpcClient` (whose `NodeDownError`,
when nothing answers, fails that tick of the job and is retried on the next).

Everything that decides anything lives in `ledger`, `schemes`, `maturity` and `payouts`; this module only
schedules them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.params import Network
from pithead.events import NoticeSink
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.bus.source import EventSource
from pithead.ledger.consumer import ConsumeCounters, consume
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.maturity import ChainView, track
from pithead.ledger.notices import block_changed, payout_notices
from pithead.ledger.payouts import PayoutProcessor, Wallet
from pithead.ledger.quiet import QuietWatcher, check_interval
from pithead.ledger.store import open_store
from pithead.ledger.uptime import HEARTBEAT_S

log = logging.getLogger(__name__)

# Default timers. Rollup is cheap but walks the PPLNS window; maturity is one RPC per pending block;
# payouts are rare on purpose (each is an on-chain transaction with its fee).
ROLLUP_INTERVAL_S = 300.0
MATURITY_INTERVAL_S = 30.0
PAYOUT_INTERVAL_S = 600.0
DEFAULT_STREAM = "pithead:shares"
# Seconds a Redis connect or reply may take before it counts as an error: the pool's sink then buffers and
# retries and the ledger's consumer retries, instead of either waiting forever on a vanished server. Longer
# than the consumer's blocking read (CONSUME_BLOCK_S).
REDIS_TIMEOUT_S = 5.0
# Retries of one Redis command on a connection error, spaced at most REDIS_RETRY_CAP_S: enough to get past a
# pooled connection that Redis closed (a restart), few enough that "Redis is away" is known in well under a
# second. redis-py's own default (10 retries with up to 10 s between) would hold a pool's start and its
# final flush for seconds; the share bus retries on its own schedule instead.
REDIS_RETRIES = 2
REDIS_RETRY_CAP_S = 0.2


@dataclass(frozen=True, slots=True)
class Timers:
    rollup_s: float = ROLLUP_INTERVAL_S
    maturity_s: float = MATURITY_INTERVAL_S
    payout_s: float = PAYOUT_INTERVAL_S
    heartbeat_s: float = HEARTBEAT_S


def timers_from_config(cfg: Any) -> Timers:
    """`Timers` from `LedgerConfig` (payout_interval, maturity_interval); rollup keeps its default."""
    payout, maturity = float(cfg.payout_interval), float(cfg.maturity_interval)
    if not payout > 0 or not maturity > 0:
        raise ValueError("ledger intervals must be positive")
    return Timers(ROLLUP_INTERVAL_S, maturity, payout)


def open_bus(url: str) -> tuple[MemoryBus | Any, EventSource]:
    """(sink for the pool, source for the ledger) for `LedgerConfig.share_bus`.

    "memory": one `MemoryBus` serves as both. "redis://host:port/db?stream=NAME&group=G": a `RedisShareSink`
    (whose `run(stop)` the caller must start, it does the writing) and a `RedisEventSource` (group G,
    default "ledger"), sharing one client whose connects and replies time out (REDIS_TIMEOUT_S) rather than
    hang on a Redis that went away. A URL that is not one of these raises ValueError.
    """
    if url == "memory":
        bus = MemoryBus()
        return bus, bus
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unknown share bus {bus_label(url)!r} (want memory or redis://...)")
    query = dict(parse_qsl(parts.query))
    stream = query.pop("stream", DEFAULT_STREAM)
    group = query.pop("group", "ledger")
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    # start-up: redis-py takes ~60 ms to import, and only a redis:// share bus needs it
    from pithead.ledger.bus.redis import RedisEventSource, RedisShareSink

    try:
        client = aioredis.from_url(urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), "")),
                                   socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S,
                                   retry=Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=0.05), REDIS_RETRIES))
    except ValueError as exc:  # a bad port or database number
        raise ValueError(f"share bus {bus_label(url)!r}: {exc}") from exc
    return RedisShareSink(client, stream), RedisEventSource(client, stream, group=group)


def bus_label(url: str) -> str:
    """A share bus URL fit for a banner or a log line: any password left out."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:  # pragma: no cover - urlsplit only checks the port lazily
        password = None
    if password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@" + parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=netloc))


def open_ledger(cfg: Any, data_dir: str | Path | None = None) -> Ledger:
    """A `Ledger` for `pithead.config.LedgerConfig` (`cfg.database`, `cfg.scheme`, ...)."""
    store = open_store(cfg.database, data_dir=data_dir)
    return Ledger(store, LedgerSettings.from_config(cfg))


async def _every(interval: float, stop: asyncio.Event, job: Callable[[], Awaitable[Any]], name: str) -> None:
    while not stop.is_set():
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ledger %s failed; retrying in %.0f s", name, interval)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


async def run_ledger(
    ledger: Ledger,
    source: EventSource,
    stop: asyncio.Event,
    node: ChainView | None = None,
    wallet: Wallet | None = None,
    timers: Timers = Timers(),
    clock: Callable[[], float] = time.time,
    network: Network | None = None,
    notices: NoticeSink | None = None,
    quiet: QuietWatcher | None = None,
) -> ConsumeCounters:
    """Run until `stop` is set; returns the consumer's counters. `network` checks payout addresses.
    `notices` is told of blocks confirmed or orphaned, payouts sent, failed or stuck, and (with a `quiet`
    watcher) of workers with shares that then have none for its quiet time. Blocks found are the `Ledger`'s
    own notices (its `notices`)."""
    result: list[ConsumeCounters] = []

    async def consumer() -> None:
        result.append(await consume(ledger, source, stop))

    async def rollup() -> None:
        await asyncio.to_thread(ledger.rollup, clock())

    async def maturity() -> None:
        assert node is not None
        changes = await track(ledger.store, node, clock())
        if notices is None:
            return
        for change in changes:
            block = await asyncio.to_thread(ledger.store.get_block, change.block_hash)
            if (notice := block_changed(change, block, clock())) is not None:
                notices.notify(notice)

    # One payout processor for the life of this run: one name on the payout lease, and the memory of a
    # txid sendmany returned whose record failed (see pithead.ledger.payouts).
    processor = (
        PayoutProcessor(ledger.store, wallet, ledger.settings.payout_threshold_sat, network)
        if wallet is not None else None
    )

    async def payouts() -> None:
        assert processor is not None
        report = await processor.run_once(clock())
        if notices is not None and (report.sent or report.recovered or report.failed or report.stuck
                                    or report.confirmed_late):
            batches = {b.id: b for b in await asyncio.to_thread(ledger.store.batches)}
            for notice in payout_notices(report, batches, clock()):
                notices.notify(notice)

    async def watch_quiet() -> None:
        assert quiet is not None and notices is not None
        rows = await asyncio.to_thread(ledger.store.workers)
        for notice in quiet.observe(rows, clock()):
            notices.notify(notice)

    # This run's row in the uptime record: a name no other run has, begun now.
    run, started = uuid.uuid4().hex, clock()

    async def heartbeat() -> None:
        await asyncio.to_thread(ledger.mark_up, run, started, clock())

    async with asyncio.TaskGroup() as tg:
        tg.create_task(_every(timers.heartbeat_s, stop, heartbeat, "uptime heartbeat"))
        tg.create_task(consumer())
        tg.create_task(_every(timers.rollup_s, stop, rollup, "rollup"))
        if node is not None:
            tg.create_task(_every(timers.maturity_s, stop, maturity, "maturity tracking"))
        if wallet is not None:
            tg.create_task(_every(timers.payout_s, stop, payouts, "payouts"))
        if quiet is not None and notices is not None:
            tg.create_task(_every(check_interval(quiet.quiet_s), stop, watch_quiet, "quiet-worker watch"))
    # The last beat is the stop time, so the record says when this run ended (a crash loses at most one
    # heartbeat interval instead).
    try:
        await heartbeat()
    except Exception:
        log.exception("ledger: could not record the stop time in the uptime record")
    return result[0]


class RpcChainView:
    """`ChainView` over a node speaking Bitcoin Core's dialect (Core or the embedded node)."""

    def __init__(self, client: RpcClient) -> None:
        self._client = client

    async def getblockcount(self) -> int:
        return int(await self._client.call("getblockcount"))

    async def getblockhash(self, height: int) -> str:
        return str(await self._client.call("getblockhash", height))

    async def getblockheader(self, block_hash: str) -> Mapping[str, Any]:
        header = await self._client.call("getblockheader", block_hash, True)
        if not isinstance(header, Mapping):
            raise TypeError(f"getblockheader returned {type(header).__name__}, not an object")
        return header

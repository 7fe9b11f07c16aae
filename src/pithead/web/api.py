"""The REST API under /api, documented by FastAPI's OpenAPI (/docs, /openapi.json), and the live stream.

Endpoints that read the ledger are plain `def` functions, which FastAPI runs in its thread pool, so a
slow query never stalls the event loop (and the Stratum server when they share a process). Input is
checked at the edge: addresses and worker names by shape and length, limits by range; anything else gets
a 400 with a clear message. A part that is not running (no ledger, no node) gives a 503 saying which.

`/api/withholding` is the block withholding evidence: flagged workers and addresses, the least likely
workers, the operator's payout holds and their audit log, and the pool's luck (holds are set and lifted
with `pithead ledger hold|release`, never through this read-only API).

`/api/stream` is Server-Sent Events: a `summary` event (pool summary + network status) every
`STREAM_INTERVAL_S`, which the dashboard uses to update without reloading.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from pithead.web import queries
from pithead.web.explorers import explorer_for_network
from pithead.web.models import (
    AddressPage,
    BalanceOut,
    BlockOut,
    ConnectInfo,
    Connections,
    HashrateHistory,
    LiveSession,
    NetworkStatus,
    OddsOfABlock,
    Payout,
    PoolSummaryOut,
    Rejects,
    Share,
    WithholdingReport,
    Worker,
)
from pithead.web.network import NodeMonitor
from pithead.web.services import Services, StoreReader

# Seconds between live updates pushed to each dashboard.
STREAM_INTERVAL_S = 2.0
# At most this many dashboards stream at once; more get 503 and fall back to polling (each stream holds
# a connection and costs a summary query per interval).
MAX_STREAMS = 64

# Many open dashboards and pollers share one pool summary computed at most this often.
SUMMARY_CACHE_S = 1.0

# Bitcoin addresses are base58 (25-35 chars) or bech32/bech32m (14-90 chars, BIP173), all alphanumeric.
ADDRESS_RE = re.compile(r"^[A-Za-z0-9]{14,90}$")
# Worker names are "address.rig" as miners authorize; printable ASCII without spaces, bounded like the
# pool bounds them.
WORKER_RE = re.compile(r"^[\x21-\x7e]{1,256}$")

Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT, description="how many rows at most")]
RangeQ = Annotated[str, Query(pattern="^(" + "|".join(queries.RANGES) + ")$", description="chart range")]


def _check_address(address: str) -> str:
    if not ADDRESS_RE.match(address):
        raise HTTPException(400, f"not a Bitcoin address: {address[:100]!r}")
    return address


def _check_worker(worker: str) -> str:
    if not WORKER_RE.match(worker):
        raise HTTPException(400, "not a worker name (1-256 printable characters, no spaces)")
    return worker


def build_router(services: Services, monitor: NodeMonitor, shutdown: asyncio.Event | None = None) -> APIRouter:
    """The /api routes. Live streams end as soon as `shutdown` is set (the server is stopping)."""
    router = APIRouter(prefix="/api", tags=["pool"])
    streams = {"open": 0}

    def store() -> StoreReader:
        if services.store is None:
            raise HTTPException(503, "the ledger is not running")
        return services.store

    def connections() -> int | None:
        return None if services.pool is None else services.pool.live_status().connections

    cache_lock = threading.Lock()
    cached: list[tuple[float, PoolSummaryOut]] = []

    def summary() -> PoolSummaryOut:
        """The pool summary, shared by every dashboard for SUMMARY_CACHE_S (it costs several queries)."""
        with cache_lock:
            now = services.clock()
            if cached and 0 <= now - cached[0][0] < SUMMARY_CACHE_S:
                return cached[0][1]
            fresh = queries.pool_summary(services, store(), now, connections())
            cached[:] = [(now, fresh)]
            return fresh

    @router.get("/pool", response_model=PoolSummaryOut, summary="Pool summary: hashrate windows, workers, blocks")
    def pool() -> PoolSummaryOut:
        return summary()

    @router.get("/network", response_model=NetworkStatus, summary="Node status, height, difficulty, template age")
    async def network() -> NetworkStatus:
        return await monitor.status()

    @router.get("/connections", response_model=Connections, summary="Live Stratum connections")
    def live_connections() -> Connections:
        if services.pool is None:
            return Connections(available=False, connections=0, sessions=[])
        live = services.pool.live_status()
        return Connections(
            available=True,
            connections=live.connections,
            sessions=[
                LiveSession(
                    remote=c.remote, worker=c.worker, difficulty=c.difficulty, connected_at=c.connected_at,
                    user_agent=c.user_agent, last_share_at=c.last_share_at,
                )
                for c in live.sessions
            ],
        )

    @router.get("/workers", response_model=list[Worker], summary="All workers with hashrate windows")
    def workers(limit: Limit = 200) -> list[Worker]:
        st, now = store(), services.clock()
        rows = sorted(st.workers(), key=lambda w: w.last_share_time or 0.0, reverse=True)[:limit]
        return queries.workers_out(st, rows, now, services.bucket_width_s)

    @router.get("/workers/{worker}", response_model=Worker, summary="One worker")
    def worker(worker: Annotated[str, Path()]) -> Worker:
        st = store()
        row = st.worker(_check_worker(worker))
        if row is None:
            raise HTTPException(404, f"no such worker: {worker}")
        return queries.worker_out(st, row, services.clock(), services.bucket_width_s)

    @router.get("/addresses/{address}", response_model=AddressPage, summary="Everything about one payout address")
    def address(address: Annotated[str, Path()], limit: Limit = 50) -> AddressPage:
        return queries.address_page(services, store(), _check_address(address), services.clock(), limit)

    @router.get("/hashrate", response_model=HashrateHistory, summary="Hashrate history for charts")
    def hashrate(
        range: RangeQ = "1h",
        worker: str | None = None,
        address: str | None = None,
    ) -> HashrateHistory:
        if worker is not None:
            _check_worker(worker)
        if address is not None:
            _check_address(address)
        return queries.history(
            store(), services.clock(), range, worker=worker, address=address, bucket_s=services.bucket_width_s
        )

    @router.get("/shares/recent", response_model=list[Share], summary="Newest accepted shares")
    def recent_shares(limit: Limit = 50, worker: str | None = None, address: str | None = None) -> list[Share]:
        if worker is not None:
            _check_worker(worker)
        if address is not None:
            _check_address(address)
        return [queries.share_out(s) for s in store().recent_shares(limit, worker=worker, address=address)]

    @router.get("/shares/best", response_model=list[Share], summary="Best shares kept by the ledger")
    def best_shares(limit: Limit = 20) -> list[Share]:
        return [queries.share_out(s) for s in store().best_shares(limit)]

    @router.get("/shares/rejects", response_model=Rejects, summary="Rejected shares by reason")
    def share_rejects(
        window: Annotated[str, Query(pattern="^(1m|5m|1h|1d)$")] = "1h",
    ) -> Rejects:
        seconds = dict(queries.WINDOWS)[window]
        return queries.rejects(store(), services.clock(), seconds, window)

    explorer = explorer_for_network(services.info.network)

    @router.get("/connect", response_model=ConnectInfo, summary="How to connect a miner: URL, user, examples")
    def connect() -> ConnectInfo:
        return queries.connect_info(services.info)

    @router.get("/odds", response_model=OddsOfABlock, summary="Chance of a block and expected time to one")
    async def odds(address: str | None = None) -> OddsOfABlock:
        """For the pool, and for `address` when given: from their hashrate and the node's difficulty."""
        net = await monitor.status()
        now = services.clock()
        pool_rates = (await run_in_threadpool(summary)).hashrate
        mine = None
        if address is not None:
            rates = await run_in_threadpool(queries.address_hashrate, services, store(), _check_address(address), now)
            mine = queries.block_chance(rates, net.difficulty, net.network_hashrate_hps)
        return OddsOfABlock(network_difficulty=net.difficulty, network_hashrate_hps=net.network_hashrate_hps,
                    pool=queries.block_chance(pool_rates, net.difficulty, net.network_hashrate_hps), address=mine)

    @router.get("/blocks", response_model=list[BlockOut], summary="Blocks found, newest first")
    def blocks(limit: Limit = 50) -> list[BlockOut]:
        return [queries.block_out(b, explorer) for b in store().blocks(limit)]

    @router.get("/blocks/{block_hash}", response_model=BlockOut, summary="One block found by the pool")
    def block(block_hash: Annotated[str, Path(pattern="^[0-9a-fA-F]{64}$")]) -> BlockOut:
        b = store().get_block(block_hash.lower())
        if b is None:
            raise HTTPException(404, f"the pool found no block {block_hash}")
        return queries.block_out(b, explorer)

    @router.get("/balances", response_model=list[BalanceOut], summary="Balances of every address")
    def balances(limit: Limit = 200) -> list[BalanceOut]:
        rows = sorted(store().balances(), key=lambda b: b.mature_sat + b.immature_sat, reverse=True)
        return [queries.balance_out(b) for b in rows[:limit]]

    @router.get("/payouts", response_model=list[Payout], summary="Payout batches, newest first")
    def payouts(limit: Limit = 50) -> list[Payout]:
        return [queries.payout_out(p, explorer) for p in store().batches(limit=limit)]

    @router.get("/withholding", response_model=WithholdingReport,
                summary="Block withholding evidence: flagged and least likely workers, payout holds, the pool's luck")
    def withholding(
        limit: Annotated[int, Query(ge=1, le=queries.MAX_SUSPECTS, description="rows per list at most")] = 20,
        address: str | None = None,
    ) -> WithholdingReport:
        if address is not None:
            _check_address(address)
        return queries.withholding_report(services, store(), limit, address)

    @router.get("/stream", summary="Server-Sent Events: a `summary` event every few seconds")
    async def stream(request: Request) -> StreamingResponse:
        if streams["open"] >= MAX_STREAMS:
            raise HTTPException(503, "too many live dashboards; poll /api/pool instead")

        async def events() -> AsyncIterator[bytes]:
            streams["open"] += 1
            try:
                yield b"retry: 5000\n\n"
                while not await request.is_disconnected():
                    payload: dict[str, object] = {"network": (await monitor.status()).model_dump()}
                    if services.store is not None:
                        payload["pool"] = (await run_in_threadpool(summary)).model_dump()
                    yield b"event: summary\ndata: " + orjson.dumps(payload) + b"\n\n"
                    if shutdown is None:
                        await asyncio.sleep(STREAM_INTERVAL_S)
                        continue
                    try:
                        await asyncio.wait_for(shutdown.wait(), STREAM_INTERVAL_S)
                        return  # stopping: end the stream so the server closes without cutting it
                    except TimeoutError:
                        pass
            finally:
                streams["open"] -= 1

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )

    return router

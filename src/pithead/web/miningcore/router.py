"""Miningcore's API paths over pithead's ledger, its paging and its errors; `mount` puts them in the app.

The paths are those of Miningcore's PoolApiController and ClusterApiController
(`src/Miningcore/Api/Controllers/*.cs`, github.com/oliverw/miningcore at a553f623), GET only:

    /api/pools                                      GetPoolsResponse {pools: [PoolInfo]}
    /api/pools/{poolId}                             GetPoolResponse {pool: PoolInfo}
    /api/pools/{poolId}/performance?r=Day&i=Hour    GetPoolStatsResponse {stats: [AggregatedPoolStats]}
    /api/pools/{poolId}/miners                      [MinerPerformanceStats]          (page, pageSize)
    /api/pools/{poolId}/blocks                      [Block]                          (page, pageSize, state)
    /api/pools/{poolId}/payments                    [Payment]                        (page, pageSize)
    /api/pools/{poolId}/miners/{address}            MinerStats                       (perfMode)
    /api/pools/{poolId}/miners/{address}/payments        [Payment]                   (page, pageSize)
    /api/pools/{poolId}/miners/{address}/balancechanges  [BalanceChange]             (page, pageSize)
    /api/pools/{poolId}/miners/{address}/earnings/daily  [AmountByDate]              (page, pageSize)
    /api/pools/{poolId}/miners/{address}/performance     [WorkerPerformanceStatsContainer]  (mode)
    /api/pools/{poolId}/miners/{address}/settings        MinerSettings (the pool's payout threshold)
    /api/v2/pools/{poolId}/blocks, /payments, /miners/{address}/payments, /balancechanges, /earnings/daily:
                                                    PagedResultResponse {result, success, pageCount}
    /api/blocks                                     [Block] of every pool (the cluster's)
    /api/help, /api/health-check                    plain text

Where they live: every one of them is served under MOUNT_PREFIX (`/miningcore/api/...`), and all but one
also at Miningcore's own path, so a Miningcore front end (which asks `<its host>/api/`) works unchanged.
The one is the cluster's `/api/blocks`, which is pithead's own blocks list (the dashboard reads it): it is
served only as `/miningcore/api/blocks`. No other Miningcore path is one of pithead's (`/api/pool`,
`/api/blocks`, `/api/workers`, ...; checked by the tests).

As ASP.NET Core binds them, query parameter names are matched without regard to case (the WebUI asks
`pagesize`), enums by name in any case or by number, `state` may repeat. Paging is Miningcore's: `page`
from 0, `pageSize` rows (default 15), the v2 `pageCount` floor(rows / pageSize) as Miningcore computes it
(so a last partial page is not counted, there as here). `pageSize` is bounded by MAX_PAGE_SIZE.

Errors are Miningcore's: an unknown pool is 404 with the plain message `Unknown pool X` (an ApiException
written by ApiExceptionHandlingMiddleware: the message as the body, content type application/json); a
malformed address 404 `Invalid or missing miner address`; a query parameter that does not bind is
ASP.NET Core's automatic 400 for an [ApiController], a ValidationProblemDetails
(`{"type", "title", "status", "traceId", "errors": {param: [message]}}`), and so are values out of range,
which Miningcore itself does not check (a negative page is a database error there). The pool history's
hour range is refused with Miningcore's message, `invalid interval`, as a 400 (Miningcore's exception carries
no status there, so it answers 200 with that text). A pithead part that is not running (no ledger) is 503 with a
plain message. Every answer allows any origin (Program.cs: `UseCors(...AllowAnyOrigin()...)`), so a
front end served from elsewhere can read it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from pithead.ledger.store.records import BlockStatus
from pithead.web.api import ADDRESS_RE
from pithead.web.miningcore import models as mc
from pithead.web.miningcore.queries import (
    FOUND_STATUSES,
    HISTORY_ROWS,
    MINER_HISTORY,
    POOL_SPANS,
    POOL_STEPS,
    MiningcoreError,
    SampleInterval,
    SampleRange,
    balance_changes,
    blocks_page,
    coins,
    earnings_by_day,
    explorer_for,
    miner_history,
    miner_stats,
    miners_by_hashrate,
    payment_out,
    payments,
    pool_info,
    pool_performance,
    window_rates,
)
from pithead.web.models import NetworkStatus
from pithead.web.network import NodeMonitor
from pithead.web.services import Services, StoreReader

# Where the whole Miningcore API is served; its paths that are not pithead's own are served as they are too.
MOUNT_PREFIX = "/miningcore"

# Largest page one request may ask for: as far back as paging reaches (the ledger's bound on one query).
# The Miningcore WebUI asks for at most 500 (its payments page).
MAX_PAGE_SIZE = HISTORY_ROWS
# Miningcore's default page size (PoolApiController: `pageSize = 15`).
DEFAULT_PAGE_SIZE = 15
# Miningcore's default range of the miners lists, in hours (`topMinersRange = 24`).
DEFAULT_TOP_MINERS_RANGE_H = 24

# The bounds of the C# types ASP.NET Core binds the parameters to (int, uint): a value outside them does
# not bind.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1

# Any origin may read the answers, as Miningcore's CORS policy allows.
CORS = {"access-control-allow-origin": "*"}

# ASP.NET Core's ValidationProblemDetails for an [ApiController] whose parameters do not bind.
PROBLEM_TYPE = "https://tools.ietf.org/html/rfc7231#section-6.5.1"
PROBLEM_TITLE = "One or more validation errors occurred."

E = TypeVar("E", bound=Enum)


class BadQuery(Exception):
    """Query parameters that do not bind: parameter name -> messages, as ASP.NET Core lists them."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


# --- binding the query as ASP.NET Core binds it ---------------------------------------------------------


class Query:
    """The request's query parameters by lower-cased name; each `get_*` binds one or notes why it cannot,
    and `check` raises all the notes at once."""

    def __init__(self, request: Request) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            self._values.setdefault(key.lower(), []).append(value)
        self.errors: dict[str, list[str]] = {}

    def _invalid(self, name: str, value: str) -> None:
        self.errors.setdefault(name, []).append(f"The value '{value}' is not valid.")

    def get_int(self, name: str, default: int, low: int, high: int, *, unsigned: bool = False) -> int:
        """An `int` parameter (a `uint` when `unsigned`), which must also lie in [low, high]."""
        values = self._values.get(name.lower())
        if not values:
            return default
        try:
            number = int(values[0].strip(), 10)
        except ValueError:
            self._invalid(name, values[0])
            return default
        type_min, type_max = (0, UINT32_MAX) if unsigned else (INT32_MIN, INT32_MAX)
        if not type_min <= number <= type_max:  # does not fit the C# type: does not bind
            self._invalid(name, values[0])
            return default
        if not low <= number <= high:
            self.errors.setdefault(name, []).append(f"The field {name} must be between {low} and {high}.")
            return default
        return number

    def get_enum(self, name: str, kind: type[E], default: E) -> E:
        values = self._values.get(name.lower())
        return default if not values else self._enum(name, kind, values[0], default)

    def _enum(self, name: str, kind: type[E], text: str, default: E) -> E:
        key = text.strip()
        for member in kind:
            if member.name.lower() == key.lower() or (key.isdigit() and int(key) == member.value):
                return member
        self._invalid(name, text)
        return default

    def get_states(self) -> list[BlockStatus]:
        """`state` (repeatable): Miningcore's BlockStatus names (Pending 1, Orphaned 2, Confirmed 3); none
        given means all three."""
        chosen = []
        for text in self._values.get("state", []):
            status = self._enum("state", _McBlockStatus, text, _McBlockStatus.PENDING)
            chosen.append(BlockStatus(status.name.lower()))
        return chosen or list(FOUND_STATUSES)

    def paging(self) -> tuple[int, int]:
        return (self.get_int("page", 0, 0, INT32_MAX),
                self.get_int("pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE))

    def check(self) -> None:
        if self.errors:
            raise BadQuery(self.errors)


class _McBlockStatus(Enum):
    """Miningcore's BlockStatus enum (Persistence/Model/BlockStatus.cs), for binding `state`."""

    PENDING = 1
    ORPHANED = 2
    CONFIRMED = 3


# --- answers ------------------------------------------------------------------------------------------


def _json(value: mc.McModel | list[Any]) -> Response:
    return Response(orjson.dumps(mc.dump(value)), media_type="application/json; charset=utf-8", headers=CORS)


def _page(rows: Sequence[Any], page: int, size: int) -> list[Any]:
    return list(rows[page * size : (page + 1) * size])


def _paged(rows: list[Any], total: int, size: int) -> mc.McPagedResultResponse[Any]:
    """Miningcore's v2 envelope: pageCount is floor(total / pageSize), as PoolApiController computes it."""
    return mc.McPagedResultResponse[Any](result=rows, success=True, page_count=total // size)


def _params(*names: str) -> dict[str, Any]:
    """OpenAPI descriptions of query parameters bound by hand (names match in any case)."""
    docs = {
        "page": "page number from 0", "pageSize": f"rows per page, 1..{MAX_PAGE_SIZE} (default 15)",
        "state": "pending, confirmed or orphaned (repeatable; default all)",
        "topMinersRange": "hours a miner's last share may be old (default 24)",
        "r": "range: Day or Month", "i": "interval: Hour or Day",
        "perfMode": "samples: Hour, Day or Month", "mode": "samples: Hour, Day or Month",
    }
    return {"parameters": [
        {"name": n, "in": "query", "required": False, "description": docs[n], "schema": {"type": "string"}}
        for n in names
    ]}


def _problem(errors: dict[str, list[str]]) -> Response:
    body = {"type": PROBLEM_TYPE, "title": PROBLEM_TITLE, "status": 400,
            "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00", "errors": errors}
    return Response(orjson.dumps(body), status_code=400, media_type="application/problem+json; charset=utf-8",
                    headers=CORS)


def build_router(services: Services, monitor: NodeMonitor, *, cluster: bool) -> APIRouter:
    """Miningcore's routes; with `cluster`, also its ClusterApiController's `/api/blocks`."""
    router = APIRouter(tags=["miningcore"])
    info = services.info

    def store() -> StoreReader:
        if services.store is None:
            raise MiningcoreError(503, "the ledger is not running")
        return services.store

    def pool_id_ok(pool_id: str) -> None:
        if pool_id != info.pool_id:
            raise MiningcoreError(404, f"Unknown pool {pool_id}")

    def address_ok(address: str) -> None:
        if not ADDRESS_RE.match(address):
            raise MiningcoreError(404, "Invalid or missing miner address")

    def live_workers() -> list[str] | None:
        """The authorized live connections' workers, when the pool lists every connection."""
        if services.pool is None:
            return None
        live = services.pool.live_status()
        if len(live.sessions) < live.connections:  # a capped list would undercount
            return None
        return [s.worker for s in live.sessions if s.worker]

    def one_pool(network: NetworkStatus, range_h: int) -> mc.McPoolInfo:
        return pool_info(info, store(), network, services.clock(), services.bucket_width_s, live_workers(), range_h)

    def blocks(q: Query) -> tuple[list[mc.McBlock], int, int]:
        states, (page, size) = q.get_states(), q.paging()
        q.check()
        rows, total = blocks_page(store(), info.pool_id, states, page, size, explorer_for(info),
                                  services.clock())
        return rows, total, size

    def pool_payments(q: Query, address: str | None) -> tuple[list[mc.McPayment], int, int]:
        page, size = q.paging()
        q.check()
        explorer = explorer_for(info)
        rows = payments(store(), address)
        return [payment_out(p, explorer) for p in _page(rows, page, size)], len(rows), size

    def changes(q: Query, address: str) -> tuple[list[mc.McBalanceChange], int, int]:
        page, size = q.paging()
        q.check()
        rows = balance_changes(store(), info.pool_id, address)
        return _page(rows, page, size), len(rows), size

    def earnings(q: Query, address: str) -> tuple[list[mc.McAmountByDate], int, int]:
        page, size = q.paging()
        q.check()
        rows = earnings_by_day(store(), address)
        return _page(rows, page, size), len(rows), size

    @router.get("/api/pools", response_model=mc.McGetPoolsResponse, openapi_extra=_params("topMinersRange"),
                summary="Miningcore: every pool (this one)")
    async def get_pools(request: Request) -> Response:
        q = Query(request)
        range_h = q.get_int("topMinersRange", DEFAULT_TOP_MINERS_RANGE_H, 0, UINT32_MAX, unsigned=True)
        q.check()
        network = await monitor.status()
        pool = await run_in_threadpool(one_pool, network, range_h)
        return _json(mc.McGetPoolsResponse(pools=[pool]))

    @router.get("/api/help", response_class=PlainTextResponse, summary="Miningcore: the routes, one a line")
    async def get_help() -> Response:
        lines = [
            f"{'GET':<5} -> {r.path.lstrip('/')}".replace("{", "<").replace("}", ">")
            for r in router.routes if isinstance(r, Route)
        ]
        return PlainTextResponse("\n".join(lines) + "\n", headers=CORS)

    @router.get("/api/health-check", response_class=PlainTextResponse, summary="Miningcore: liveness")
    async def get_health_check() -> Response:
        return PlainTextResponse("\N{THUMBS UP SIGN}", headers=CORS)

    @router.get("/api/pools/{poolId}", response_model=mc.McGetPoolResponse, openapi_extra=_params("topMinersRange"),
                summary="Miningcore: one pool")
    async def get_pool(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        q = Query(request)
        range_h = q.get_int("topMinersRange", DEFAULT_TOP_MINERS_RANGE_H, 0, UINT32_MAX, unsigned=True)
        q.check()
        network = await monitor.status()
        return _json(mc.McGetPoolResponse(pool=await run_in_threadpool(one_pool, network, range_h)))

    @router.get("/api/pools/{poolId}/performance", response_model=mc.McGetPoolStatsResponse,
                openapi_extra=_params("r", "i"), summary="Miningcore: the pool's history")
    async def get_performance(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        q = Query(request)
        sample_range = q.get_enum("r", SampleRange, SampleRange.DAY)
        interval = q.get_enum("i", SampleInterval, SampleInterval.HOUR)
        q.check()
        if sample_range not in POOL_SPANS:
            raise MiningcoreError(400, "invalid interval")
        network = await monitor.status()
        stats = await run_in_threadpool(
            pool_performance, store(), network, services.clock(), services.bucket_width_s,
            POOL_SPANS[sample_range], POOL_STEPS[interval],
        )
        return _json(mc.McGetPoolStatsResponse(stats=stats))

    @router.get("/api/pools/{poolId}/miners", response_model=list[mc.McMinerPerformanceStats],
                openapi_extra=_params("page", "pageSize", "topMinersRange"), summary="Miningcore: miners by hashrate")
    def get_miners(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        q = Query(request)
        page, size = q.paging()
        range_h = q.get_int("topMinersRange", DEFAULT_TOP_MINERS_RANGE_H, 0, UINT32_MAX, unsigned=True)
        q.check()
        st, now = store(), services.clock()
        rows = st.workers()
        miners = miners_by_hashrate(rows, window_rates(st, rows, now, services.bucket_width_s), now, range_h)
        return _json(_page(miners, page, size))

    @router.get("/api/pools/{poolId}/blocks", response_model=list[mc.McBlock],
                openapi_extra=_params("page", "pageSize", "state"), summary="Miningcore: blocks, newest first")
    def get_blocks(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        return _json(blocks(Query(request))[0])

    @router.get("/api/v2/pools/{poolId}/blocks", response_model=mc.McPagedResultResponse[list[mc.McBlock]],
                openapi_extra=_params("page", "pageSize", "state"), summary="Miningcore: blocks, paged")
    def get_blocks_v2(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        rows, total, size = blocks(Query(request))
        return _json(_paged(rows, total, size))

    @router.get("/api/pools/{poolId}/payments", response_model=list[mc.McPayment],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: payments, newest first")
    def get_payments(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        return _json(pool_payments(Query(request), None)[0])

    @router.get("/api/v2/pools/{poolId}/payments", response_model=mc.McPagedResultResponse[list[mc.McPayment]],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: payments, paged")
    def get_payments_v2(poolId: str, request: Request) -> Response:
        pool_id_ok(poolId)
        rows, total, size = pool_payments(Query(request), None)
        return _json(_paged(rows, total, size))

    @router.get("/api/pools/{poolId}/miners/{address}", response_model=mc.McMinerStats,
                openapi_extra=_params("perfMode"), summary="Miningcore: one miner")
    async def get_miner(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        q = Query(request)
        mode = q.get_enum("perfMode", SampleRange, SampleRange.DAY)
        q.check()
        explorer = explorer_for(info)
        stats = await run_in_threadpool(
            miner_stats, store(), address, services.clock(), services.bucket_width_s, mode, explorer
        )
        return _json(stats)

    @router.get("/api/pools/{poolId}/miners/{address}/payments", response_model=list[mc.McPayment],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: a miner's payments")
    def get_miner_payments(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        return _json(pool_payments(Query(request), address)[0])

    @router.get("/api/v2/pools/{poolId}/miners/{address}/payments",
                response_model=mc.McPagedResultResponse[list[mc.McPayment]], openapi_extra=_params("page", "pageSize"),
                summary="Miningcore: a miner's payments, paged")
    def get_miner_payments_v2(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        rows, total, size = pool_payments(Query(request), address)
        return _json(_paged(rows, total, size))

    @router.get("/api/pools/{poolId}/miners/{address}/balancechanges", response_model=list[mc.McBalanceChange],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: what moved a miner's balance")
    def get_balance_changes(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        return _json(changes(Query(request), address)[0])

    @router.get("/api/v2/pools/{poolId}/miners/{address}/balancechanges",
                response_model=mc.McPagedResultResponse[list[mc.McBalanceChange]],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: balance changes, paged")
    def get_balance_changes_v2(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        rows, total, size = changes(Query(request), address)
        return _json(_paged(rows, total, size))

    @router.get("/api/pools/{poolId}/miners/{address}/earnings/daily", response_model=list[mc.McAmountByDate],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: a miner's payments per day")
    def get_earnings(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        return _json(earnings(Query(request), address)[0])

    @router.get("/api/v2/pools/{poolId}/miners/{address}/earnings/daily",
                response_model=mc.McPagedResultResponse[list[mc.McAmountByDate]],
                openapi_extra=_params("page", "pageSize"), summary="Miningcore: payments per day, paged")
    def get_earnings_v2(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        rows, total, size = earnings(Query(request), address)
        return _json(_paged(rows, total, size))

    @router.get("/api/pools/{poolId}/miners/{address}/performance",
                response_model=list[mc.McWorkerPerformanceStatsContainer], openapi_extra=_params("mode"),
                summary="Miningcore: a miner's workers over time")
    def get_miner_performance(poolId: str, address: str, request: Request) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        q = Query(request)
        mode = q.get_enum("mode", SampleRange, SampleRange.DAY)
        q.check()
        st, (span_s, step_s) = store(), MINER_HISTORY[mode]
        rows = st.workers(address=address)
        return _json(miner_history(st, address, rows, services.clock(), services.bucket_width_s, span_s, step_s))

    @router.get("/api/pools/{poolId}/miners/{address}/settings", response_model=mc.McMinerSettings,
                summary="Miningcore: a miner's payout threshold (pithead's is the pool's)")
    def get_miner_settings(poolId: str, address: str) -> Response:
        pool_id_ok(poolId)
        address_ok(address)
        return _json(mc.McMinerSettings(payment_threshold=coins(info.payout_threshold_sat)))

    if cluster:
        @router.get("/api/blocks", response_model=list[mc.McBlock], openapi_extra=_params("page", "pageSize", "state"),
                    summary="Miningcore: every pool's blocks (the cluster's)")
        def get_cluster_blocks(request: Request) -> Response:
            return _json(blocks(Query(request))[0])

    return router


def mount(app: FastAPI, services: Services, monitor: NodeMonitor) -> None:
    """Serve the Miningcore API on `app`: all of it under MOUNT_PREFIX, and at Miningcore's own paths all
    but the cluster's `/api/blocks` (pithead's own); with Miningcore's error answers."""
    app.include_router(build_router(services, monitor, cluster=False))
    app.include_router(build_router(services, monitor, cluster=True), prefix=MOUNT_PREFIX,
                       include_in_schema=False)

    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MiningcoreError)
        return Response(exc.message.encode(), status_code=exc.status, media_type="application/json", headers=CORS)

    async def bad_query(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadQuery)
        return _problem(exc.errors)

    app.add_exception_handler(MiningcoreError, api_error)
    app.add_exception_handler(BadQuery, bad_query)


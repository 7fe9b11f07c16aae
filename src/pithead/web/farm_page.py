"""The farm page's read side: the page and its assets, the device table, the device page's data.

`add_page_routes(router, store, ...)` adds to the farm router (prefix /farm):
- GET /farm/                               the page (static/farm/index.html; script and style beside it)
- GET /farm/assets/{name}                  the page's script and style, and the vendored chart library
- GET /farm/api/page                       what the page may offer: is a token required, is there a power
                                           endpoint (`POST .../power`, added by the power module when present)
- GET /farm/api/table                      the device table: filter (model, state, site, rack, pool,
                                           firmware, free text), sort, one page of rows (server-side paging,
                                           so 24,000 devices cost one page of JSON), and the values each
                                           filter can take
- GET /farm/api/devices/{id}/detail        one device: its row, its last reading in full (boards, fans,
                                           pools, errors), its open alerts and its audit log
The history charts read `/farm/api/devices/{id}/history` (in `pithead.web.farm`).

Totals and figures count a reading only when `counted_reading` does (the device answered its last poll,
no longer ago than `stale_after_s`); a failing device's last reading is shown, marked not fresh, but never
summed. Everything runs on the store's thread (`AsyncFarmStore.call`), so a refresh never holds the loop.
This module does not act on devices (the actions are in `pithead.web.farm`, behind the token) and holds no
policy of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from pithead.farm.energy import counted_reading
from pithead.farm.lookup import natural_key, status_sort_key
from pithead.farm.model import ERROR_STATES, DeviceState, Reading
from pithead.farm.store import MAX_LIST_ROWS, DeviceStatus, FarmStore, FarmStoreError
from pithead.farm.store_async import AsyncFarmStore

STATIC = resources.files("pithead.web") / "static"
# The page's files: name -> path under static/ (nothing else is served from /farm/assets).
ASSETS = {"farm.js": "farm/farm.js", "farm.css": "farm/farm.css",
          "uPlot.iife.min.js": "vendor/uplot/uPlot.iife.min.js", "uPlot.min.css": "vendor/uplot/uPlot.min.css"}
MEDIA = {".js": "text/javascript", ".css": "text/css"}

# Rows per table page at most: a screenful is ~50; 500 keeps one response under ~300 kB.
MAX_TABLE_ROWS = 500
# Distinct values listed per filter (a fleet has a handful of models and pools, a few hundred racks).
MAX_FACET_VALUES = 500
# Free-text search: longer queries are refused (bounded like every input).
MAX_QUERY_LEN = 100
# Audit rows on a device page.
DEVICE_AUDIT_ROWS = 50

# Status colours of the rack map (also the legend on the page).
COLOURS = {"ok": "#2e9d4f", "alert": "#e0a100", "error": "#c8312b", "curtailed": "#3a6fd8", "unknown": "#888888"}

SortKey = Literal["id", "model", "state", "rack", "firmware", "pool", "hashrate", "power", "efficiency", "temp",
                  "fan", "uptime", "since"]
FACETS = ("model", "state", "site", "rack", "pool", "firmware")


def colour_of(st: DeviceStatus, alerted: set[str]) -> str:
    if st.state is DeviceState.CURTAILED:
        return "curtailed"
    if st.state in ERROR_STATES:
        return "error"
    if st.state is DeviceState.UNKNOWN:
        return "unknown"
    return "alert" if st.device.id in alerted else "ok"


def alerted(store: FarmStore) -> set[str]:
    return {a.device_id for a in store.open_alerts()}


def active_pool(r: Reading | None) -> str | None:
    """The URL of the pool the device mines on (its active one, else its first), from its last reading."""
    if r is None or not r.pools:
        return None
    for p in r.pools:
        if p.active:
            return p.url
    return r.pools[0].url


class TableRow(BaseModel):
    id: str
    host: str
    port: int
    driver: str
    make: str
    model: str
    firmware: str | None
    site: str
    rack: str
    position: str
    state: str
    colour: str
    since: float
    last_poll: float
    error: str | None
    fresh: bool  # the figures are this poll's (else they are the last good reading's, not counted)
    hashrate_ths: float | None
    expected_ths: float | None
    power_w: float | None
    efficiency_j_per_th: float | None
    max_chip_temp_c: float | None
    max_board_temp_c: float | None
    fans_rpm: list[int]
    min_fan_rpm: int | None
    uptime_s: float | None
    pool: str | None
    worker: str | None


class TablePage(BaseModel):
    total: int  # rows matching the filters (all pages)
    fleet: int  # devices in the inventory
    offset: int
    limit: int
    sort: str
    desc: bool
    rows: list[TableRow]
    facets: dict[str, list[str]] | None = None  # the values each filter can take (with facets=true)


class PageInfo(BaseModel):
    token_required: bool  # the action endpoints need `Authorization: Bearer <token>`
    power: bool  # a power-target endpoint exists (POST /farm/api/devices/{id}/power)
    colours: dict[str, str]


def table_row(st: DeviceStatus, al: set[str], now: float, stale_after_s: float | None) -> TableRow:
    d = st.device
    r = st.reading
    fresh = counted_reading(st, now, stale_after_s) is not None
    return TableRow(
        id=d.id, host=d.address.host, port=d.address.port, driver=d.address.driver.value, make=d.identity.make,
        model=d.identity.model, firmware=d.identity.firmware, site=d.labels.site, rack=d.labels.rack,
        position=d.labels.position, state=st.state.value, colour=colour_of(st, al), since=st.state_since,
        last_poll=st.time, error=st.error, fresh=fresh,
        hashrate_ths=r.hashrate_ths if r else None, expected_ths=r.expected_ths if r else None,
        power_w=r.power_w if r else None, efficiency_j_per_th=r.efficiency_j_per_th if r else None,
        max_chip_temp_c=r.max_chip_temp_c if r else None, max_board_temp_c=r.max_board_temp_c if r else None,
        fans_rpm=[f.rpm for f in r.fans] if r else [], min_fan_rpm=r.min_fan_rpm if r else None,
        uptime_s=r.uptime_s if r else None, pool=active_pool(r), worker=r.worker if r else None)


def _facet_value(st: DeviceStatus, name: str) -> str:
    d = st.device
    if name == "model":
        return d.identity.model
    if name == "state":
        return st.state.value
    if name == "site":
        return d.labels.site
    if name == "rack":
        return d.labels.rack
    if name == "pool":
        return active_pool(st.reading) or ""
    return d.identity.firmware or ""


def _sort_value(st: DeviceStatus, key: SortKey, fresh: Reading | None) -> Any:
    """The value a column sorts by (None: no value, listed last whichever the direction)."""
    d = st.device
    r = st.reading
    if key == "id":
        return natural_key(d.id)
    if key == "model":
        return (natural_key(d.identity.model), natural_key(d.id))
    if key == "state":
        return (st.state.value, natural_key(d.id))
    if key == "rack":
        return status_sort_key(st)
    if key == "firmware":
        return natural_key(d.identity.firmware) if d.identity.firmware else None
    if key == "pool":
        pool = active_pool(r)
        return natural_key(pool) if pool else None
    if key == "since":
        return st.state_since
    if key == "uptime":
        return r.uptime_s if r else None
    # measured figures sort by what is counted now: a failing device's old reading sorts with no value
    if fresh is None:
        return None
    return {"hashrate": fresh.hashrate_ths, "power": fresh.power_w, "efficiency": fresh.efficiency_j_per_th,
            "temp": fresh.max_chip_temp_c, "fan": fresh.min_fan_rpm}[key]


def query_table(statuses: Sequence[DeviceStatus], al: set[str], now: float, stale_after_s: float | None, *,
                filters: dict[str, str | None], q: str | None, sort: SortKey, desc: bool, offset: int, limit: int,
                facets: bool) -> TablePage:
    """Filter, sort and page the fleet (pure: the statuses are handed in)."""
    wanted = {k: v for k, v in filters.items() if v is not None}
    needle = q.strip().lower() if q else ""
    hits = []
    for st in statuses:
        if any(_facet_value(st, k) != v for k, v in wanted.items()):
            continue
        if needle:
            d = st.device
            r = st.reading
            hay = " ".join(x for x in (d.id, d.identity.model, d.identity.make, d.identity.firmware or "",
                                        d.labels.site, d.labels.rack, d.labels.position, d.identity.hostname or "",
                                        active_pool(r) or "", (r.worker if r else None) or "", st.state.value) if x)
            if needle not in hay.lower():
                continue
        hits.append(st)
    keyed = [(_sort_value(st, sort, counted_reading(st, now, stale_after_s)), st) for st in hits]
    valued = sorted((x for x in keyed if x[0] is not None), key=lambda x: x[0], reverse=desc)
    ordered = [st for _v, st in valued] + sorted((st for v, st in keyed if v is None), key=status_sort_key)
    rows = [table_row(st, al, now, stale_after_s) for st in ordered[offset: offset + limit]]
    page = TablePage(total=len(hits), fleet=len(statuses), offset=offset, limit=limit, sort=sort, desc=desc,
                     rows=rows)
    if facets:
        page.facets = _facets(statuses)
    return page


def _facets(statuses: Sequence[DeviceStatus]) -> dict[str, list[str]]:
    """The values each filter can take, in natural order (one pass over the fleet)."""
    seen: dict[str, set[str]] = {name: set() for name in FACETS}
    model, state, site, rack, pool, firmware = (seen[n] for n in FACETS)
    for st in statuses:
        d = st.device
        model.add(d.identity.model)
        state.add(st.state.value)
        site.add(d.labels.site)
        rack.add(d.labels.rack)
        pool.add(active_pool(st.reading) or "")
        firmware.add(d.identity.firmware or "")
    return {name: sorted(values - {""}, key=natural_key)[:MAX_FACET_VALUES] for name, values in seen.items()}


def device_detail(store: FarmStore, device_id: str, now: float, stale_after_s: float | None) -> dict[str, Any]:
    """Everything the device page shows but its history: row, last reading in full, open alerts, audit."""
    store.device(device_id)  # raises FarmStoreError for an unknown one
    st = next((s for s in store.statuses() if s.device.id == device_id), None)
    if st is None:  # removed between the two reads
        raise FarmStoreError(f"unknown device {device_id!r}")
    r = st.reading
    ident = st.device.identity
    return {
        "device": table_row(st, alerted(store), now, stale_after_s).model_dump(),
        "identity": {"make": ident.make, "model": ident.model, "firmware": ident.firmware, "mac": ident.mac,
                     "hostname": ident.hostname, "serial": ident.serial, "expected_boards": ident.expected_boards,
                     "expected_fans": ident.expected_fans},
        "reading": None if r is None else {
            "time": r.time, "is_mining": r.is_mining, "errors": list(r.errors), "uptime_s": r.uptime_s,
            "boards": [{"index": b.index, "hashrate_ths": b.hashrate_ths, "chips": b.chips,
                        "expected_chips": b.expected_chips, "board_temp_c": b.board_temp_c,
                        "chip_temp_c": b.chip_temp_c} for b in r.boards],
            "fans": [{"index": f.index, "rpm": f.rpm} for f in r.fans],
            "pools": [{"index": p.index, "url": p.url, "user": p.user, "alive": p.alive, "active": p.active,
                       "accepted": p.accepted, "rejected": p.rejected} for p in r.pools]},
        "alerts": [{"id": a.id, "kind": a.kind, "severity": a.severity, "message": a.message,
                    "opened_at": a.opened_at} for a in store.open_alerts() if a.device_id == device_id],
        "audit": [{"id": a.id, "time": a.time, "actor": a.actor, "action": a.action, "params": a.params,
                   "outcome": a.outcome, "error": a.error, "finished": a.finished}
                  for a in store.audit_log(device_id, min(DEVICE_AUDIT_ROWS, MAX_LIST_ROWS))],
    }


def _asset(name: str) -> FileResponse:
    rel = ASSETS.get(name)
    if rel is None:
        raise HTTPException(404, f"no asset {name!r}")
    path = STATIC.joinpath(rel)
    return FileResponse(str(path), media_type=MEDIA[name[name.rfind("."):]],
                        headers={"Cache-Control": "no-cache"})


def add_page_routes(router: APIRouter, store: AsyncFarmStore, clock: Callable[[], float], *,
                    token_required: bool, stale_after_s: float | None) -> None:
    """The page, its assets, and the read endpoints of the device table and the device page."""

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return STATIC.joinpath("farm/index.html").read_text(encoding="utf-8")

    @router.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        return _asset(name)

    @router.get("/api/page", summary="What the farm page may offer (token, power control)")
    def page_info() -> PageInfo:
        power = any(getattr(r, "path", "").endswith("/power") and "POST" in (getattr(r, "methods", None) or ())
                    for r in router.routes)
        return PageInfo(token_required=token_required, power=power, colours=COLOURS)

    @router.get("/api/table", summary="The device table: filtered, sorted, one page")
    async def table(
        model: str | None = None, state: str | None = None, site: str | None = None, rack: str | None = None,
        pool: str | None = None, firmware: str | None = None,
        q: str | None = Query(None, max_length=MAX_QUERY_LEN, description="free text: id, IP, model, rack..."),
        sort: SortKey = "rack", desc: bool = False, offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=MAX_TABLE_ROWS), facets: bool = False,
    ) -> TablePage:
        now = clock()
        filters = {"model": model, "state": state, "site": site, "rack": rack, "pool": pool, "firmware": firmware}

        def run(s: FarmStore) -> TablePage:
            return query_table(s.statuses(), alerted(s), now, stale_after_s, filters=filters, q=q, sort=sort,
                               desc=desc, offset=offset, limit=limit, facets=facets)

        return await store.call(run)

    @router.get("/api/devices/{device_id:path}/detail", summary="One device: status, last reading, alerts, audit")
    async def detail(device_id: str) -> dict[str, Any]:
        try:
            return await store.call(device_detail, device_id, clock(), stale_after_s)
        except FarmStoreError as exc:
            raise HTTPException(404, str(exc)) from exc


def racks_json(store: FarmStore, now: float, stale_after_s: float | None) -> dict[str, Any]:
    """The rack map: site -> rack -> its devices with their status colours, and per rack its totals, which
    count only the readings `counted_reading` counts (never an unreachable machine's last hashrate)."""
    al = alerted(store)
    sites: dict[str, dict[str, list[dict[str, Any]]]] = {}
    totals: dict[str, dict[str, dict[str, Any]]] = {}
    for st in sorted(store.statuses(), key=status_sort_key):
        lab = st.device.labels
        site, rack = lab.site or "-", lab.rack or "-"
        r = counted_reading(st, now, stale_after_s)
        sites.setdefault(site, {}).setdefault(rack, []).append({
            "id": st.device.id, "position": lab.position, "state": st.state.value,
            "colour": colour_of(st, al), "model": st.device.identity.model,
            "hashrate_ths": r.hashrate_ths if r else None,
        })
        t = totals.setdefault(site, {}).setdefault(rack, {"devices": 0, "hashing": 0, "hashrate_ths": 0.0})
        t["devices"] += 1
        if r is not None:
            t["hashrate_ths"] += r.hashrate_ths
            t["hashing"] += r.hashrate_ths > 0
    return {"colours": COLOURS, "sites": sites, "totals": totals}

"""The farm's alert endpoints for a big site: acknowledge an alert, silence a machine, rack or site for a time.

`alert_routes(store, authorised, clock)` is included by `pithead.web.farm.make_router` (prefix /farm):
- POST   /farm/api/alerts/{id}/ack      someone is on it (body: actor); the alert as JSON
- GET    /farm/api/silences             the silences in force
- POST   /farm/api/silences             body: target (a device id, "rack:SITE/RACK", "site:SITE" or "*"),
                                        kind (an alert kind, or absent for every kind), duration_s, reason,
                                        actor; the changes it covers stay in the store and on the page but
                                        reach no webhook or notice until it ends
- DELETE /farm/api/silences/{id}        end a silence now
The writes are guarded exactly like the actions (the farm token, or loopback when none is configured).
`alerts_json` is the alert list the page and `GET /farm/api/alerts` show: with each alert its machines
(a group alert's count), who acknowledged it, and whether a silence covers it now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from pithead.farm.alert_groups import Placement, silenced
from pithead.farm.alerts import AlertKind
from pithead.farm.store import MAX_SILENCE_S, AlertRow, FarmStore, FarmStoreError, SilenceRow
from pithead.farm.store_async import AsyncFarmStore


class AckBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)


class SilenceBody(BaseModel):
    target: str = Field(min_length=1, max_length=160)
    kind: AlertKind | None = None
    duration_s: float = Field(gt=0, le=MAX_SILENCE_S)
    reason: str = Field(default="", max_length=256)
    actor: str = Field(min_length=1, max_length=64)


def silence_json(x: SilenceRow) -> dict[str, Any]:
    return {"id": x.id, "target": x.target, "kind": x.kind, "until": x.until, "created_at": x.created_at,
            "created_by": x.created_by, "reason": x.reason}


def alerts_json(store: FarmStore, rows: Sequence[AlertRow], now: float) -> list[dict[str, Any]]:
    """Alert rows for the API (on the store's thread: it reads the silences and the machines' racks)."""
    hush = [(x.target, x.kind) for x in store.silences(now)]
    where: dict[str, Placement] = {}
    if hush:
        where = {st.device.id: Placement(st.device.labels.site, st.device.labels.rack) for st in store.statuses()}
    return [{"id": a.id, "device_id": a.device_id, "kind": a.kind, "severity": a.severity, "message": a.message,
             "opened_at": a.opened_at, "resolved_at": a.resolved_at, "machines": a.machines,
             "acked_at": a.acked_at, "acked_by": a.acked_by,
             "silenced": bool(hush) and silenced(a.device_id, a.kind, where.get(a.device_id), hush)}
            for a in rows]


def alert_routes(store: AsyncFarmStore, authorised: Callable[..., str],
                 clock: Callable[[], float] = time.time) -> APIRouter:
    router = APIRouter()
    refusals: dict[int | str, dict[str, Any]] = {401: {"description": "no or wrong token (a token is configured)"},
                                                 403: {"description": "no token is configured and the request is "
                                                                      "not local"}}

    @router.post("/api/alerts/{alert_id}/ack", responses=refusals)
    async def ack(alert_id: int, body: AckBody, how: str = Depends(authorised)) -> dict[str, Any]:
        now = clock()
        try:
            row = await store.call(FarmStore.ack_alert, alert_id, body.actor, now)
        except FarmStoreError as exc:
            raise HTTPException(404, str(exc)) from exc
        return (await store.call(alerts_json, [row], now))[0]

    @router.get("/api/silences")
    async def silences() -> list[dict[str, Any]]:
        return [silence_json(x) for x in await store.call(FarmStore.silences, clock())]

    @router.post("/api/silences", responses=refusals)
    async def add_silence(body: SilenceBody, how: str = Depends(authorised)) -> dict[str, Any]:
        now = clock()
        try:
            row = await store.call(FarmStore.add_silence, body.target, body.kind.value if body.kind else None,
                                   now + body.duration_s, body.actor, body.reason, now)
        except FarmStoreError as exc:
            raise HTTPException(422, str(exc)) from exc
        return silence_json(row)

    @router.delete("/api/silences/{silence_id}", responses=refusals)
    async def end_silence(silence_id: int, how: str = Depends(authorised)) -> dict[str, Any]:
        if not await store.call(FarmStore.end_silence, silence_id, clock()):
            raise HTTPException(404, f"no silence {silence_id} in force")
        return {"id": silence_id, "ended": True}

    return router

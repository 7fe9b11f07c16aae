"""The farm's power endpoints, mounted on the farm router (`pithead.web.farm.make_router`):

- `POST /farm/api/devices/{id}/power` `{"watts": W, "actor": "..."}`: set one device's power level
  through its firmware (audited); answers the level the firmware took.
- `POST /farm/api/power/site` `{"kw": X | null, "within_s": Y, "site": "", "actor": "...",
  "step_up_kw": Z | null}`: bring a site (every device when `site` is "") to X kW within Y s (null: back
  to full power, in steps of Z kW). It plans before answering (202, with the first plan), then carries
  it out in the background -- commands, re-reading the site, planning again -- until the site is there
  or the time is up; one request runs at a time (409 while one does).
- `GET /farm/api/power/site`: the running or last request's report.
Both POSTs are actions: behind the farm token like every other action (`authorised`).

Not here: the policy (`farm.curtailment`), the controller (`farm.power`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from pithead.farm.actions import ActionResult, ActionService
from pithead.farm.curtailment import CurtailmentError, PowerPlan, PowerPolicy, plan_power
from pithead.farm.power import MAX_WITHIN_S, PowerControlError, PowerController, SiteReport


class PowerBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)
    watts: float = Field(gt=0, le=100_000)


class SitePowerBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)
    kw: float | None = Field(default=None, ge=0, le=10_000_000, description="null: back to full power")
    within_s: float = Field(default=300.0, gt=0, le=MAX_WITHIN_S)
    site: str = Field(default="", max_length=64)
    step_up_kw: float | None = Field(default=None, gt=0, description="coming back up: at most this per step")


def plan_json(plan: PowerPlan) -> dict[str, Any]:
    return {"reason": plan.reason, "site_kw": plan.site_w / 1000.0, "planned_kw": plan.planned_w / 1000.0,
            "budget_kw": None if plan.budget_w is None else plan.budget_w / 1000.0,
            "steps": [{"device_id": s.device_id, "action": s.action, "watts": s.watts} for s in plan.steps]}


def report_json(rep: SiteReport) -> dict[str, Any]:
    return {"budget_kw": rep.budget_kw, "site": rep.site, "reached": rep.reached, "elapsed_s": rep.elapsed_s,
            "site_kw": rep.site_kw, "rounds": rep.rounds, "plans": [plan_json(p) for p in rep.plans],
            "failed": [{"device_id": r.device_id, "action": r.action, "error": r.error} for r in rep.failed]}


def result_json(res: ActionResult) -> dict[str, Any]:
    out: dict[str, Any] = {"audit_id": res.audit_id, "device_id": res.device_id, "action": res.action,
                           "ok": res.ok, "error": res.error}
    if res.power is not None:
        out["level"] = res.power.level
        out["expected_w"] = res.power.expected_w
    return out


def add_power_routes(router: APIRouter, actions: ActionService | None, authorised: Callable[..., str],
                     known: Callable[[str], Awaitable[None]], refusals: dict[int | str, dict[str, Any]],
                     controller: PowerController | None = None) -> None:
    """Add the power endpoints to the farm router (`authorised` and `known` are the router's own)."""
    ctl = controller if controller is not None else (PowerController(actions) if actions is not None else None)
    state: dict[str, Any] = {"task": None, "report": None, "request": None}

    def need() -> PowerController:
        if ctl is None:
            raise HTTPException(503, "actions are not enabled on this server")
        return ctl

    @router.post("/api/devices/{device_id:path}/power", responses=refusals)
    async def set_power(device_id: str, body: PowerBody, how: str = Depends(authorised)) -> dict[str, Any]:
        c = need()
        await known(device_id)
        return result_json(await c.actions.set_power(device_id, body.watts, body.actor, auth=how))

    @router.post("/api/power/site", status_code=202,
                 responses=refusals | {409: {"description": "a site power request is already running"},
                                       422: {"description": "a bad kW, time or site"}})
    async def site_power(body: SitePowerBody, how: str = Depends(authorised)) -> dict[str, Any]:
        c = need()
        task = state["task"]
        if task is not None and not task.done():
            raise HTTPException(409, "a site power request is already running: GET /farm/api/power/site")
        c.policy = PowerPolicy(max_step_up_w=body.step_up_kw * 1000.0 if body.step_up_kw else None)
        machines = await c.machines(body.site)
        if body.site and not machines:
            raise HTTPException(422, f"no device is labelled with site {body.site!r}")
        try:
            first = plan_power(machines, body.kw, c.policy)
        except CurtailmentError as exc:
            raise HTTPException(422, str(exc)) from exc
        started = asyncio.Event()

        async def run() -> None:
            started.set()
            try:
                state["report"] = await c.bring_to(body.kw, body.within_s, body.actor, how, site=body.site)
            except PowerControlError as exc:
                state["report"] = {"error": str(exc)}

        state["request"] = body.model_dump()
        state["report"] = None
        state["task"] = asyncio.create_task(run())
        await started.wait()
        return {"accepted": True, "request": state["request"], "plan": plan_json(first)}

    @router.get("/api/power/site")
    async def site_status() -> dict[str, Any]:
        task = state["task"]
        rep = state["report"]
        return {"running": task is not None and not task.done(), "request": state["request"],
                "report": report_json(rep) if isinstance(rep, SiteReport) else rep}

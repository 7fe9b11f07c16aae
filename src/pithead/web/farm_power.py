"""The farm's power endpoints, mounted on the farm router (`pithead.web.farm.make_router`):

- `POST /farm/api/devices/{id}/power` `{"watts": W, "actor": "..."}`: set one device's power level
  through its firmware (audited); answers the level the firmware took.
- `POST /farm/api/power/site` `{"kw": X | null, "within_s": Y, "site": "", "actor": "...",
  "step_up_kw": Z | null, "hold_s": H | null}`: bring a site (every device when `site` is "") to X kW
  within Y s (null: back to full power, in steps of Z kW). It plans before answering (202, with the first
  plan), then carries it out in the background -- commands, re-reading the site, planning again -- until
  the site is there or the time is up; one request runs at a time (409 while one does). The request then
  *holds* for H s (default `[farm] power_hold_s`): the service's curtailment step keeps the site at X kW
  instead of its own budget until then, or until released.
- `DELETE /farm/api/power/site?actor=NAME`: release the hold now (stopping the request if it still runs);
  the service's own budget applies again and the site comes back up in steps.
- `GET /farm/api/power/site`: the request and its report, the hold, the service's own budget (power
  mode), and the site as the last step saw it (budget, kW, machines lowered and asleep, the last plan).
The POSTs and the DELETE are actions: behind the farm token like every other action (`authorised`), and
audited (the site request and its release as rows of their own, `site:NAME`). The service's step and
these endpoints share one `SitePower` (`farm.power`): one lock, so never two site requests at once.

Not here: the policy (`farm.curtailment`), the controller (`farm.power`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pithead.farm.actions import ActionResult, ActionService
from pithead.farm.curtailment import PowerPlan
from pithead.farm.power import (
    MAX_HOLD_S,
    MAX_SITE_KW,
    MAX_WITHIN_S,
    Hold,
    PowerControlError,
    PowerController,
    SiteBusy,
    SitePower,
    SiteReport,
    SiteState,
)


class PowerBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)
    watts: float = Field(gt=0, le=100_000)


class SitePowerBody(BaseModel):
    actor: str = Field(min_length=1, max_length=64)
    kw: float | None = Field(default=None, ge=0, le=MAX_SITE_KW, description="null: back to full power")
    within_s: float = Field(default=300.0, gt=0, le=MAX_WITHIN_S)
    site: str = Field(default="", max_length=64)
    step_up_kw: float | None = Field(default=None, gt=0, le=MAX_SITE_KW,
                                     description="coming back up: at most this per step")
    hold_s: float | None = Field(default=None, gt=0, le=MAX_HOLD_S,
                                 description="how long the request holds against the service's own budget "
                                             "unless released (null: the service's [farm] power_hold_s)")


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


def hold_json(hold: Hold | None) -> dict[str, Any] | None:
    if hold is None:
        return None
    return {"kw": hold.budget_kw, "site": hold.site, "actor": hold.actor, "since": hold.since,
            "until": hold.until, "step_up_kw": hold.step_up_kw, "within_s": hold.within_s}


def state_json(st: SiteState | None) -> dict[str, Any] | None:
    if st is None:
        return None
    return {"time": st.time, "budget_kw": st.budget_kw, "source": st.source, "price_per_mwh": st.price_per_mwh,
            "machines": st.machines, "site_kw": st.site_kw, "planned_kw": st.planned_kw, "lowered": st.lowered,
            "asleep": st.asleep, "settling": st.settling, "failed": st.failed, "plan": plan_json(st.plan)}


def site_json(sp: SitePower) -> dict[str, Any]:
    """What `GET /farm/api/power/site` answers: the operator's request and hold, the service's own budget
    and the site as the last step saw it."""
    rep = sp.report
    b = sp.budget
    return {
        "running": sp.running, "request": sp.request,
        "report": report_json(rep) if isinstance(rep, SiteReport) else ({"error": rep} if rep else None),
        "hold": hold_json(sp.hold),
        "released": {"by": sp.released[0], "at": sp.released[1]} if sp.released else None,
        "mode": "power" if b is not None else "onoff",
        "service": None if b is None else {"budget_kw": b.budget_kw, "strike_price_per_mwh": b.strike_price_per_mwh,
                                           "strike_budget_kw": b.strike_budget_kw, "step_up_kw": b.step_up_kw,
                                           "hold_s": b.hold_s},
        "state": state_json(sp.state),
    }


def add_power_routes(router: APIRouter, actions: ActionService | None, authorised: Callable[..., str],
                     known: Callable[[str], Awaitable[None]], refusals: dict[int | str, dict[str, Any]],
                     site_power: SitePower | None = None) -> None:
    """Add the power endpoints to the farm router (`authorised` and `known` are the router's own).
    `site_power`: the running service's (its step and these endpoints then share one lock); without one,
    a `SitePower` of this router's own over `actions`."""
    sp = site_power if site_power is not None else (
        SitePower(PowerController(actions)) if actions is not None else None)

    def need() -> SitePower:
        if sp is None:
            raise HTTPException(503, "actions are not enabled on this server")
        return sp

    @router.post("/api/devices/{device_id:path}/power", responses=refusals)
    async def set_power(device_id: str, body: PowerBody, how: str = Depends(authorised)) -> dict[str, Any]:
        c = need().controller
        await known(device_id)
        return result_json(await c.actions.set_power(device_id, body.watts, body.actor, auth=how))

    @router.post("/api/power/site", status_code=202,
                 responses=refusals | {409: {"description": "a site power request is already running"},
                                       422: {"description": "a bad kW, time or site"}})
    async def site_power_request(body: SitePowerBody, how: str = Depends(authorised)) -> dict[str, Any]:
        s = need()
        try:
            first = await s.start_request(body.kw, body.within_s, body.actor, how, site=body.site,
                                          step_up_kw=body.step_up_kw, hold_s=body.hold_s)
        except SiteBusy as exc:
            raise HTTPException(409, f"{exc}: GET /farm/api/power/site") from exc
        except PowerControlError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"accepted": True, "request": s.request, "hold": hold_json(s.hold), "plan": plan_json(first)}

    @router.delete("/api/power/site", responses=refusals)
    async def site_power_release(actor: str = Query(min_length=1, max_length=64),
                                 how: str = Depends(authorised)) -> dict[str, Any]:
        """End the operator's hold (and its request if still running): the service's own budget applies
        again, and the site comes back up in steps. Audited as `site_release`."""
        s = need()
        hold = await s.release(actor, how)
        return {"released": hold is not None, "hold": hold_json(hold)}

    @router.get("/api/power/site")
    async def site_status() -> dict[str, Any]:
        if sp is None:
            return {"running": False, "request": None, "report": None, "hold": None, "released": None,
                    "mode": None, "service": None, "state": None}
        return site_json(sp)

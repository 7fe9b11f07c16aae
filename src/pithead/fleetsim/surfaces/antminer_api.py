"""A stock Antminer's cgminer API (bmminer on TCP 4028), simulated: snapshots → cgminer replies.

Reports `version`, `summary`, `stats` (flat, and `new_api` with its `chain[]`), `pools`, `devs`,
`devdetails`, `config`, the `cmd1+cmd2` join form (JSON only, as cgminer), the plain-text form, and
the privileged `addpool`, `switchpool`, `enablepool`, `disablepool`, `removepool`, `restart` (refused
with "Access denied" while the fleet's API is not write-enabled). Operator writes go through the
fleet's time-stamped actions, so they are logged and replayable. The payloads are the farm's own codec
(`pithead.farm.protocol.cgminer`: `wire` for the envelope, `build` for the sections).

Not here: sockets (`server`), device behaviour (`device`).
"""

from __future__ import annotations

from typing import Any

from pithead.farm.protocol import antminer_web as aw
from pithead.farm.protocol.cgminer import build as cgb
from pithead.farm.protocol.cgminer import sections as cgs
from pithead.farm.protocol.cgminer import wire as cg
from pithead.fleetsim.device import SimDevice, Snapshot
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import ModelSpec
from pithead.fleetsim.surfaces.common import best_share

DESCRIPTION = "bmminer 1.0.0"
BMMINER_VERSION = "1.0.0"
COMPILE_TIME = "Thu Nov 24 15:54:04 CST 2022"


def version_info(spec: ModelSpec) -> cgs.Version:
    # The Miner field deliberately avoids "rwglr"-style strings: pyasic would take them for MSKMiner.
    return cgs.Version(
        miner_type=spec.type_string,
        bmminer=BMMINER_VERSION,
        api="3.1",
        miner="uart_trans.1.3",
        compile_time=COMPILE_TIME,
    )


def _ok(t: int, code: int, msg: str) -> cg.Status:
    return cg.Status(cg.ReplySeverity.SUCCESS, t, code, msg, DESCRIPTION)


def _err(t: int, code: int, msg: str, severity: cg.ReplySeverity = cg.ReplySeverity.ERROR) -> dict[str, Any]:
    return cg.error_reply(t, code, msg, DESCRIPTION, severity)


def _chains(snap: Snapshot, dev: SimDevice) -> tuple[cgs.Chain, ...]:
    return tuple(
        cgs.Chain(
            index=b.index,
            chips=b.chips,
            rate_ghs=b.rate_ghs,
            ideal_ghs=b.ideal_ghs,
            freq_avg=float(b.freq_mhz),
            temp_pcb=b.temp_pcb,
            temp_chip=b.temp_chip,
            temp_pic=b.temp_pcb,
            hw=b.hw,
            serial=b.serial,
            voltage_mv=dev.spec.voltage_mv,
        )
        for b in snap.boards
    )


def stats_figures(snap: Snapshot, dev: SimDevice) -> cgs.Stats:
    return cgs.Stats(
        version=version_info(dev.spec),
        elapsed_s=snap.elapsed_s,
        ghs_5s=snap.rate_5s_ghs,
        ghs_av=snap.rate_avg_ghs,
        ghs_30m=snap.rate_avg_ghs,
        ideal_ghs=snap.ideal_ghs,
        fans_rpm=snap.fans_rpm,
        chains=_chains(snap, dev),
        state="mining" if snap.hashing else ("sleep" if snap.sleeping else "stopped"),
        power_w=snap.power_w if dev.spec.reports_power else None,
        frequency=snap.freq_mhz,
        miner_mode=aw.WORK_MODE_SLEEP if snap.sleeping else aw.WORK_MODE_NORMAL,
    )



def _report(
    fleet: Fleet, dev: SimDevice, cmd: str, req: cg.CgminerRequest, snap: Snapshot, t: int
) -> dict[str, Any]:
    if cmd == "version":
        return cg.build_reply(
            _ok(t, cg.Code.VERSION, "CGMiner versions"), "VERSION", [cgb.version_section(version_info(dev.spec))]
        )
    if cmd == "summary":
        figs = cgs.Summary(
            elapsed_s=snap.elapsed_s,
            ghs_5s=snap.rate_5s_ghs,
            ghs_av=snap.rate_avg_ghs,
            ghs_30m=snap.rate_avg_ghs,
            accepted=snap.accepted,
            rejected=snap.rejected,
            hardware_errors=snap.hw_errors,
            difficulty_accepted=snap.accepted * snap.pool_diff,
            difficulty_rejected=snap.rejected * snap.pool_diff,
            best_share=best_share(dev, snap),
            last_getwork=t,
            getworks=snap.accepted // 16,
        )
        return cg.build_reply(_ok(t, cg.Code.SUMM, "Summary"), "SUMMARY", [cgb.summary_section(figs)])
    if cmd == "stats":
        figs_s = stats_figures(snap, dev)
        if req.extra("new_api") in (True, "true", 1):
            return cgb.stats_new_api_reply(figs_s, t)
        return cg.build_reply(_ok(t, cg.Code.MINESTATS, "CGMiner stats"), "STATS", cgb.stats_legacy_section(figs_s))
    if cmd == "pools":
        entries = [
            cgb.pool_section(cgs.Pool(
                index=p.index,
                url=p.url,
                user=p.user,
                alive=p.alive,
                active=p.active and snap.hashing,
                priority=p.index,
                accepted=p.accepted,
                rejected=p.rejected,
                diff=snap.pool_diff,
                difficulty_accepted=p.accepted * snap.pool_diff,
                difficulty_rejected=p.rejected * snap.pool_diff,
                enabled=p.enabled,
                last_share_time="0:00:03" if p.active and snap.hashing else "0",
                getworks=p.accepted // 16,
            ))
            for p in snap.pools
        ]
        if not entries:
            return _err(t, cg.Code.NOPOOL, "No pools")
        return cg.build_reply(_ok(t, cg.Code.POOL, f"{len(entries)} Pool(s)"), "POOLS", entries)
    if cmd == "devs":
        chains = _chains(snap, dev)
        per = snap.accepted // max(1, len(chains))
        devs = [
            cgs.Dev(
                index=c.index,
                alive=c.chips > 0,
                temperature_c=float(max(c.temp_chip)),
                mhs_5s=(c.rate_ghs or 0.0) * 1000.0,
                hardware_errors=c.hw,
                mhs_av=(c.rate_ghs or 0.0) * 1000.0,
                accepted=per,
                elapsed_s=snap.elapsed_s,
            )
            for c in chains
        ]
        return cg.build_reply(_ok(t, cg.Code.DEVS, f"{len(devs)} ASC(s)"), "DEVS", cgb.devs_section(devs))
    if cmd == "devdetails":
        return cg.build_reply(
            _ok(t, cg.Code.DEVDETAILS, "Device Details"), "DEVDETAILS", cgb.devdetails_section(dev.spec.boards)
        )
    if cmd == "config":
        return cg.build_reply(
            _ok(t, cg.Code.MINECONFIG, "CGMiner config"),
            "CONFIG",
            cgb.config_section(dev.spec.boards, len(snap.pools)),
        )
    return _err(t, cg.Code.INVCMD, "Invalid command")


REPORT_COMMANDS = frozenset({"version", "summary", "stats", "pools", "devs", "devdetails", "config"})


def _pool_id(req: cg.CgminerRequest, npools: int, t: int) -> int | dict[str, Any]:
    if not req.parameter:
        return _err(t, cg.Code.MISPID, "Missing pool id parameter")
    try:
        i = int(req.params[0])
    except ValueError:
        i = -1
    if not 0 <= i < npools:
        return _err(t, cg.Code.INVPID, f"Invalid pool id {i} - range is 0 - {npools - 1}")
    return i


def _privileged(
    fleet: Fleet, dev: SimDevice, cmd: str, req: cg.CgminerRequest, snap: Snapshot, tf: float
) -> dict[str, Any]:
    t = int(tf)
    ctx = fleet.ctx
    if not ctx.api_write_allowed:
        return cg.access_denied_reply(t, cmd, DESCRIPTION)
    pools = snap.pools
    if cmd == "restart":
        fleet.restart(dev.ip, tf)
        return cg.restart_reply()
    if cmd == "addpool":
        if not req.parameter:
            return _err(t, cg.Code.MISPDP, "Missing addpool details")
        parts = req.params
        if len(parts) != 3 or not parts[0]:
            return _err(t, cg.Code.INVPDP, f"Invalid addpool details '{req.parameter}'")
        try:
            fleet.pool_op(dev.ip, "addpool", parts, tf)
        except OverflowError:
            return _err(t, cg.Code.TOOMANYP, f"Reached maximum number of pools ({len(pools)})")
        return cg.build_reply(_ok(t, cg.Code.ADDPOOL, f"Added pool '{parts[0]}'"))
    if cmd not in ("switchpool", "enablepool", "disablepool", "removepool"):
        return cg.access_denied_reply(t, cmd, DESCRIPTION)
    i = _pool_id(req, len(pools), t)
    if isinstance(i, dict):
        return i
    url = pools[i].url
    if cmd == "switchpool":
        fleet.pool_op(dev.ip, cmd, (i,), tf)
        return cg.build_reply(_ok(t, cg.Code.SWITCHP, f"Switching to pool {i}:'{url}'"))
    if cmd == "enablepool":
        if pools[i].enabled:
            return cg.build_reply(
                cg.Status(
                    cg.ReplySeverity.INFO, t, cg.Code.ALRENAP, f"Pool {i}:'{url}' already enabled", DESCRIPTION
                )
            )
        fleet.pool_op(dev.ip, cmd, (i,), tf)
        return cg.build_reply(_ok(t, cg.Code.ENAPOOL, f"Enabling pool {i}:'{url}'"))
    if cmd == "disablepool":
        if not pools[i].enabled:
            return cg.build_reply(
                cg.Status(
                    cg.ReplySeverity.INFO, t, cg.Code.ALRDISP, f"Pool {i}:'{url}' already disabled", DESCRIPTION
                )
            )
        if sum(p.enabled for p in pools) <= 1:
            return _err(t, cg.Code.DISLASTP, f"Cannot disable last active pool {i}:'{url}'")
        fleet.pool_op(dev.ip, cmd, (i,), tf)
        return cg.build_reply(_ok(t, cg.Code.DISPOOL, f"Disabling pool {i}:'{url}'"))
    # removepool
    if len(pools) <= 1:
        return _err(t, cg.Code.REMLASTP, f"Cannot remove last pool {i}:'{url}'")
    if pools[i].active:
        return _err(t, cg.Code.ACTPOOL, f"Cannot remove active pool {i}:'{url}'")
    fleet.pool_op(dev.ip, cmd, (i,), tf)
    return cg.build_reply(_ok(t, cg.Code.REMPOOL, f"Removed pool {i}:'{url}'"))


def cgminer_reply(fleet: Fleet, dev: SimDevice, req: cg.CgminerRequest, tf: float) -> dict[str, Any]:
    """The reply object a stock Antminer sends for one parsed request at simulated time `tf`."""
    t = int(tf)
    snap = dev.snapshot(fleet.ctx, tf)
    if req.is_joined:
        parts: dict[str, dict[str, Any]] = {}
        for cmd in req.commands:
            if cmd in REPORT_COMMANDS and cmd in cg.JOINABLE_COMMANDS:
                parts[cmd] = _report(fleet, dev, cmd, req, snap, t)
            else:
                # cgminer answers a non-joinable command inside a join with "Access denied"
                parts[cmd] = cg.access_denied_reply(t, cmd, DESCRIPTION)
        return cg.build_joined_reply(parts)
    cmd = req.commands[0]
    if cmd in REPORT_COMMANDS:
        return _report(fleet, dev, cmd, req, snap, t)
    if cmd in cg.PRIVILEGED_COMMANDS:
        return _privileged(fleet, dev, cmd, req, snap, tf)
    return _err(t, cg.Code.INVCMD, "Invalid command")


def request_error_bytes(data: bytes, exc: cg.CgminerRequestError, tf: float) -> bytes:
    """cgminer's own error reply to a request it cannot parse, framed as the request was (JSON or text)."""
    err = _err(int(tf), exc.code, exc.msg)
    return cg.frame_reply(err) if data.lstrip()[:1] == b"{" else cg.encode_text_reply(err)


def pools_reply(fleet: Fleet, dev: SimDevice, snap: Snapshot, t: int) -> dict[str, Any]:
    """The `pools` report (also the web `pools.cgi` body, and what a Whatsminer answers)."""
    return _report(fleet, dev, "pools", cg.CgminerRequest(("pools",)), snap, t)


def api_bytes(fleet: Fleet, dev: SimDevice, data: bytes, tf: float) -> bytes:
    """Bytes in, NUL-terminated reply bytes out; malformed input gets cgminer's own error reply."""
    try:
        req = cg.parse_request(data)
    except cg.CgminerRequestError as exc:
        return request_error_bytes(data, exc, tf)
    if not req.is_json:
        if req.is_joined:  # cgminer joins report commands only in JSON mode
            return cg.encode_text_reply(_err(int(tf), cg.Code.INVCMD, "Invalid command"))
        return cg.encode_text_reply(cgminer_reply(fleet, dev, req, tf))
    return cg.frame_reply(cgminer_reply(fleet, dev, req, tf))

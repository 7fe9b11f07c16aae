"""What each simulated device says on the wire: snapshots → cgminer / Antminer CGI / AxeOS payloads.

Pure functions from (fleet, device, request, simulated time) to reply bytes/objects, using the codecs in
`pithead.farm.protocol`. Operator writes (pool changes, restarts, sleep, fan settings) go through the
fleet's time-stamped actions so they are logged and replayable.

- Stock Antminer: cgminer API (`version`, `summary`, `stats` incl. `new_api`, `pools`, `devs`,
  `devdetails`, `config`, the `cmd1+cmd2` join form, and the privileged `addpool`, `switchpool`,
  `enablepool`, `disablepool`, `removepool`, `restart`), plus the digest-protected web CGI.
- Bitaxe: AxeOS `/`, `/api/system/info`, `/api/system/asic`, `/api/system/statistics`,
  `PATCH /api/system`, `POST /api/system/restart`.
- Whatsminer: btminer API v2 reads (`summary`, `devs`, `pools`, `devdetails`, joins, and the `get_*` /
  `status` family with a STATUS string and a `Msg` object); writes answer "can't access write cmd" as
  a unit whose API has not been unlocked does.

Not here: sockets, HTTP framing, digest checks (see `server`, `http`).
"""

from __future__ import annotations

from typing import Any

import orjson

from pithead.farm.protocol import antminer_web as aw
from pithead.farm.protocol import axeos
from pithead.farm.protocol.cgminer import build as cgb
from pithead.farm.protocol.cgminer import sections as cgs
from pithead.farm.protocol.cgminer import wire as cg
from pithead.farm.protocol.errors import AntminerWebPayloadError, AxeOSPayloadError
from pithead.fleetsim.clock import draw
from pithead.fleetsim.device import PoolConf, SimDevice, Snapshot
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family, ModelSpec

DESCRIPTION = "bmminer 1.0.0"
BMMINER_VERSION = "1.0.0"
COMPILE_TIME = "Thu Nov 24 15:54:04 CST 2022"
AXEOS_VERSION = "v2.6.5"


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


def _best_share(dev: SimDevice, snap: Snapshot) -> int:
    # the best share grows roughly with the number of shares found; fixed per (device, share count)
    return int(
        snap.pool_diff
        * (1 + draw(dev.seed, 9, snap.accepted.bit_length()) % 997)
        * max(1, snap.accepted) ** 0.5
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
            best_share=_best_share(dev, snap),
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


def cgminer_bytes(fleet: Fleet, dev: SimDevice, data: bytes, tf: float) -> bytes:
    """Bytes in, NUL-terminated reply bytes out; malformed input gets cgminer's own error reply."""
    is_json = data.lstrip()[:1] == b"{"
    try:
        req = cg.parse_request(data)
    except cg.CgminerRequestError as exc:
        err = _err(int(tf), exc.code, exc.msg)
        return cg.frame_reply(err) if is_json else cg.encode_text_reply(err)
    if dev.spec.family is Family.WHATSMINER:
        return cg.frame_reply(whatsminer_reply(fleet, dev, req, tf))
    if not req.is_json:
        if req.is_joined:  # cgminer joins report commands only in JSON mode
            return cg.encode_text_reply(_err(int(tf), cg.Code.INVCMD, "Invalid command"))
        return cg.encode_text_reply(cgminer_reply(fleet, dev, req, tf))
    return cg.frame_reply(cgminer_reply(fleet, dev, req, tf))


# ------------------------------------------------------------------------------------- Antminer web

HTML_CT = "text/html"
JSON_CT = "application/json"
ANTMINER_HOME = b"<!DOCTYPE html><html><head><title>Antminer</title></head><body>Antminer</body></html>"
NOT_FOUND_HTML = b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


def _json(obj: Any) -> tuple[int, bytes, str]:
    return 200, orjson.dumps(obj), JSON_CT


def antminer_web(
    fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float
) -> tuple[int, bytes, str]:
    """An authenticated request to a stock Antminer's web UI → (status, body, content type)."""
    t = int(tf)
    ctx = fleet.ctx
    if path in ("/", "/index.html"):
        return 200, ANTMINER_HOME, HTML_CT
    if not path.startswith(aw.CGI_PREFIX) or not path.endswith(".cgi"):
        # notably /kaonsu/v1/brief: a JSON reply there would make pyasic call this a Marathon miner
        return 404, NOT_FOUND_HTML, HTML_CT
    name = path[len(aw.CGI_PREFIX) : -4]
    snap = dev.snapshot(ctx, tf)
    if name == "get_system_info":
        return _json(
            aw.SystemInfoCgi(
                dev.spec.type_string, dev.hostname, dev.mac(), dev.serial(), dev.ip, COMPILE_TIME
            ).to_json()
        )
    if name == "get_network_info":
        return _json(aw.network_info(dev.ip, dev.mac(), dev.hostname))
    if name == "get_miner_conf":
        pools = tuple(aw.WebPool(p.url, p.user, p.password) for p in dev.configured_pools(ctx))
        conf = aw.MinerConf(
            pools[: aw.MAX_WEB_POOLS],
            dev.fan_manual_pwm >= 0,
            dev.fan_manual_pwm if dev.fan_manual_pwm >= 0 else 100,
            aw.WORK_MODE_SLEEP if dev.sleeping else aw.WORK_MODE_NORMAL,
        )
        return _json(conf.to_json())
    if name == "summary":
        items = [
            aw.StatusItem(
                "rate",
                "R:1" not in snap.errors and (snap.hashing or snap.sleeping),
                "" if snap.hashing or snap.sleeping else "Hashrate is 0",
            ),
            aw.StatusItem("network", True),
            aw.StatusItem("fans", "F:1" not in snap.errors, "Fan lost" if "F:1" in snap.errors else ""),
            aw.StatusItem(
                "temp", "P:1" not in snap.errors, "Temperature protection" if "P:1" in snap.errors else ""
            ),
        ]
        return _json(
            aw.summary_cgi(
                t,
                snap.elapsed_s,
                snap.rate_5s_ghs,
                snap.rate_avg_ghs,
                snap.rate_avg_ghs,
                snap.ideal_ghs,
                snap.hw_errors,
                _best_share(dev, snap),
                items,
                dev.spec.type_string,
                COMPILE_TIME,
            )
        )
    if name == "stats":
        return _json(cgb.stats_new_api_reply(stats_figures(snap, dev), t))
    if name == "pools":
        reply = _report(fleet, dev, "pools", cg.CgminerRequest(("pools",)), snap, t)
        return _json(reply)
    if name == "get_blink_status":
        return _json(aw.blink_status(dev.blink))
    if name == "blink":
        try:
            want = orjson.loads(body or b"{}").get("blink", "false")
        except (orjson.JSONDecodeError, AttributeError):
            return 400, b'{"code":"B001"}', JSON_CT
        dev.blink = str(want).lower() == "true"
        return _json(aw.blink_result(dev.blink))
    if name == "reboot":
        fleet.restart(dev.ip, tf)
        return _json({"code": "R000"})
    if name == "set_miner_conf":
        if method != "POST":
            return 405, b"{}", JSON_CT
        try:
            raw = orjson.loads(body)
            conf = aw.parse_miner_conf(raw)
        except (orjson.JSONDecodeError, AntminerWebPayloadError) as exc:
            return 400, orjson.dumps({"stats": "error", "code": "M001", "msg": str(exc)}), JSON_CT
        if isinstance(raw, dict) and ("bitmain-fan-ctrl" in raw or "bitmain-fan-pwm" in raw):
            fleet.set_fan(dev.ip, conf.fan_pwm if conf.fan_ctrl else -1, tf)
        if isinstance(raw, dict) and ("miner-mode" in raw or "bitmain-work-mode" in raw):
            fleet.sleep(dev.ip, conf.work_mode == aw.WORK_MODE_SLEEP, tf)
        if conf.pools:
            fleet.set_pools(
                dev.ip, tuple(PoolConf(p.url, p.user, p.password) for p in conf.pools), reboot=True, t=tf
            )
        return _json(aw.conf_ok())
    return 404, NOT_FOUND_HTML, HTML_CT


# ------------------------------------------------------------------------------------------- AxeOS


def _split_url(url: str) -> tuple[str, int]:
    """`stratum+tcp://host:3333` → (`host`, 3333); AxeOS keeps host and port apart."""
    rest = url.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return rest, 3333


def _join_url(host: str, port: int) -> str:
    if "://" in host:
        h, p = _split_url(host)
        return f"stratum+tcp://{h}:{port or p}"
    return f"stratum+tcp://{host}:{port}"


def axeos_info(fleet: Fleet, dev: SimDevice, snap: Snapshot) -> axeos.SystemInfo:
    spec = dev.spec
    pools = dev.configured_pools(fleet.ctx)
    main = pools[0] if pools else PoolConf("", "")
    fb = pools[1] if len(pools) > 1 else PoolConf("", "")
    host, port = _split_url(main.url) if main.url else ("", 3333)
    fhost, fport = _split_url(fb.url) if fb.url else ("", 3333)
    power = snap.power_w
    input_mv = 5100.0 - power * 3.0  # the 5 V rail sags a little under load
    best = _best_share(dev, snap)
    return axeos.SystemInfo(
        asic_model=spec.type_string,
        hostname=dev.hostname,
        mac_addr=dev.mac(),
        hash_rate_ghs=snap.rate_5s_ghs,
        expected_hashrate_ghs=spec.small_cores * snap.freq_mhz / 1000.0,
        power_w=power,
        voltage_mv=input_mv,
        current_ma=power / (input_mv / 1000.0) * 1000.0 if input_mv else 0.0,
        temp_c=snap.chip_temp_c,
        vr_temp_c=snap.chip_temp_c - 6.0 if snap.online else 0.0,
        fan_rpm=snap.fans_rpm[0] if snap.fans_rpm else 0,
        fan_speed_pct=snap.fan_pwm,
        autofanspeed=0 if dev.fan_manual_pwm >= 0 else 1,
        temptarget=60,
        frequency_mhz=snap.freq_mhz,
        core_voltage_mv=spec.voltage_mv,
        core_voltage_actual_mv=spec.voltage_mv - 6,
        small_core_count=spec.small_cores,
        asic_count=spec.chips_per_board,
        uptime_s=snap.elapsed_s,
        shares_accepted=snap.accepted,
        shares_rejected=snap.rejected,
        best_diff=axeos.format_diff(best),
        best_session_diff=axeos.format_diff(best / 3),
        stratum_url=host,
        stratum_port=port,
        stratum_user=main.user,
        fallback_stratum_url=fhost,
        fallback_stratum_port=fport,
        fallback_stratum_user=fb.user,
        pool_difficulty=snap.pool_diff,
        version=AXEOS_VERSION,
        axeos_version=AXEOS_VERSION,
        overheat_mode=1 if "P:1" in snap.errors else 0,
    )


RESTART_TEXT = b"System will restart shortly."


def axeos_web(
    fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float
) -> tuple[int, bytes, str]:
    ctx = fleet.ctx
    if path in ("/", "/index.html"):
        return 200, axeos.ROOT_HTML, HTML_CT
    if path == axeos.INFO_PATH and method == "GET":
        return _json(axeos_info(fleet, dev, dev.snapshot(ctx, tf)).to_json())
    if path == axeos.ASIC_PATH and method == "GET":
        return _json(axeos.asic_info_for(dev.spec.type_string, dev.spec.chips_per_board).to_json())
    if path == "/api/system/statistics" and method == "GET":
        s = dev.snapshot(ctx, tf)
        return _json(
            {
                "currentTimestamp": int(tf * 1000),
                "labels": ["hashrate", "asicTemp", "power", "timestamp"],
                "statistics": [
                    [round(s.rate_5s_ghs, 2), round(s.chip_temp_c, 1), round(s.power_w, 2), int(tf * 1000)]
                ],
            }
        )
    if path == axeos.RESTART_PATH:
        if method != "POST":
            return 405, b"", HTML_CT
        fleet.restart(dev.ip, tf)
        return 200, RESTART_TEXT, "text/plain"
    if path == axeos.SYSTEM_PATH:
        if method != "PATCH":
            return 405, b"", HTML_CT
        try:
            patch = axeos.parse_settings_patch(orjson.loads(body or b"null"))
        except (orjson.JSONDecodeError, AxeOSPayloadError) as exc:
            return 400, str(exc).encode(), "text/plain"
        if (
            patch.changes_pool
            or patch.fallbackStratumURL is not None
            or patch.fallbackStratumUser is not None
        ):
            cur = list(dev.configured_pools(ctx)) or [PoolConf("", "")]
            main = cur[0]
            mhost, mport = _split_url(main.url) if main.url else ("", 3333)
            new_main = PoolConf(
                _join_url(
                    patch.stratumURL if patch.stratumURL is not None else mhost,
                    patch.stratumPort if patch.stratumPort is not None else mport,
                ),
                patch.stratumUser if patch.stratumUser is not None else main.user,
                patch.stratumPassword if patch.stratumPassword is not None else main.password,
            )
            rest = cur[1:]
            if patch.fallbackStratumURL is not None or patch.fallbackStratumUser is not None:
                fb = rest[0] if rest else PoolConf("", "")
                fhost, fport = _split_url(fb.url) if fb.url else ("", 3333)
                rest = [
                    PoolConf(
                        _join_url(
                            patch.fallbackStratumURL if patch.fallbackStratumURL is not None else fhost,
                            patch.fallbackStratumPort if patch.fallbackStratumPort is not None else fport,
                        ),
                        patch.fallbackStratumUser if patch.fallbackStratumUser is not None else fb.user,
                        patch.fallbackStratumPassword
                        if patch.fallbackStratumPassword is not None
                        else fb.password,
                    )
                ]
            # AxeOS stores settings in NVS and applies pool changes at the next restart
            fleet.set_pools(dev.ip, (new_main, *rest), reboot=False, t=tf)
        if patch.autofanspeed is not None or patch.fanspeed is not None:
            auto = (
                patch.autofanspeed if patch.autofanspeed is not None else (1 if dev.fan_manual_pwm < 0 else 0)
            )
            manual = (
                patch.fanspeed
                if patch.fanspeed is not None
                else (dev.fan_manual_pwm if dev.fan_manual_pwm >= 0 else 100)
            )
            fleet.set_fan(dev.ip, -1 if auto else manual, tf)
        if patch.hostname is not None:
            fleet.set_hostname(dev.ip, patch.hostname, tf)
        return 200, b"", JSON_CT
    return 404, b"", "text/plain"


# ------------------------------------------------------------------------------------- Whatsminer

WM_DESCRIPTION = "btminer"
WM_FW_VERSION = "20230911.12.Rel"  # before 2024.11: pyasic picks its API v2 backend, as for real units
WM_API_VERSION = "2.0.5"
WM_OK = 131  # btminer's "API command OK" code for the get_* family


def _wm_ok(t: int, code: int, msg: str) -> cg.Status:
    return cg.Status(cg.ReplySeverity.SUCCESS, t, code, msg, WM_DESCRIPTION)


def _wm_msg(t: int, msg: dict[str, Any]) -> dict[str, Any]:
    """btminer's reply shape for get_* commands: a STATUS *string* and a `Msg` object."""
    return {"STATUS": "S", "When": t, "Code": WM_OK, "Msg": msg, "Description": ""}


def _wm_err(t: int, code: int, msg: str) -> dict[str, Any]:
    return {"STATUS": "E", "When": t, "Code": code, "Msg": msg, "Description": ""}


def _wm_summary(dev: SimDevice, snap: Snapshot) -> dict[str, Any]:
    mhs = snap.rate_avg_ghs * 1000.0
    chips = [b for b in snap.boards if b.alive]
    chip_temps = [t for b in chips for t in b.temp_chip if t]
    errors = list(snap.errors)
    out: dict[str, Any] = {
        "Elapsed": snap.elapsed_s,
        "MHS av": round(mhs, 2),
        "MHS 5s": round(snap.rate_5s_ghs * 1000.0, 2),
        "MHS 1m": round(snap.rate_5s_ghs * 1000.0, 2),
        "MHS 5m": round(mhs, 2),
        "MHS 15m": round(mhs, 2),
        "HS RT": round(mhs, 2),
        "Accepted": snap.accepted,
        "Rejected": snap.rejected,
        "Total MH": round(mhs * snap.elapsed_s, 4),
        "Temperature": round(max((max(b.temp_pcb) for b in chips), default=0), 2),
        "freq_avg": snap.freq_mhz,
        "Fan Speed In": snap.fans_rpm[0] if snap.fans_rpm else 0,
        "Fan Speed Out": snap.fans_rpm[1] if len(snap.fans_rpm) > 1 else 0,
        "Voltage": 1270,
        "Power": round(snap.power_w),
        "Power_RT": round(snap.power_w),
        "Device Hardware%": 0.0,
        "Device Rejected%": 0.0,
        "Pool Rejected%": 0.0,
        "Pool Stale%": 0.0,
        "Last getwork": int(snap.t),
        "Uptime": snap.elapsed_s,
        "Security Mode": 0,
        "Hash Stable": snap.hashing,
        "Hash Stable Cost Seconds": 1200,
        "Hash Deviation%": 0.0,
        "Target Freq": snap.freq_mhz,
        "Target MHS": round(snap.ideal_ghs * 1000.0),
        "Env Temp": round(snap.ambient_c, 2),
        "Power Mode": "Normal",
        "Factory GHS": round(dev.spec.ideal_ghs),
        "Power Limit": round(dev.spec.power_w * 1.1),
        "Chip Temp Min": min(chip_temps, default=0),
        "Chip Temp Max": max(chip_temps, default=0),
        "Chip Temp Avg": round(sum(chip_temps) / len(chip_temps), 2) if chip_temps else 0,
        "Debug": "-0.0_100.0_360",
        "Btminer Fast Boot": "disable",
        "MAC": dev.mac(),
        "Firmware Version": f"'{WM_FW_VERSION}'",
        "Error Code Count": len(errors),
    }
    for i, code in enumerate(errors):
        out[f"Error Code {i}"] = _wm_error_number(code)
    return out


def _wm_error_number(code: str) -> int:
    """Whatsminer numeric error codes for our MiningOS-style ones (fan 110, temperature 352, board 2010,
    chips 2030, low hashrate 2310), close to the vendor's table."""
    if code.startswith("F"):
        return 110
    if code.startswith("P"):
        return 352
    if code.endswith(":8"):
        return 2010
    if code.endswith(":2"):
        return 2030
    return 2310


def _wm_devs(dev: SimDevice, snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for b in snap.boards:
        chips = [t for t in b.temp_chip if t]
        mhs = round(b.rate_ghs * 1000.0, 2)
        out.append(
            {
                "ASC": b.index,
                "Name": "SM",
                "ID": b.index,
                "Slot": b.index,
                "Enabled": "Y",
                "Status": "Alive" if b.alive else "Dead",
                "Temperature": float(max(b.temp_pcb)),
                "Chip Frequency": b.freq_mhz,
                "Fan Speed In": snap.fans_rpm[0] if snap.fans_rpm else 0,
                "Fan Speed Out": snap.fans_rpm[1] if len(snap.fans_rpm) > 1 else 0,
                "MHS av": mhs,
                "MHS 5s": mhs,
                "MHS 1m": mhs,
                "MHS 5m": mhs,
                "MHS 15m": mhs,
                "Accepted": snap.accepted // max(1, len(snap.boards)),
                "Rejected": 0,
                "Hardware Errors": b.hw,
                "Utility": 0.0,
                "Last Share Pool": 0,
                "Last Share Time": int(snap.t),
                "Total MH": round(mhs * snap.elapsed_s, 4),
                "Diff1 Work": 0,
                "Device Hardware%": 0.0,
                "Device Rejected%": 0.0,
                "Device Elapsed": snap.elapsed_s,
                "Upfreq Complete": 1,
                "Effective Chips": b.chips,
                "PCB SN": b.serial,
                "Chip Temp Min": min(chips, default=0),
                "Chip Temp Max": max(chips, default=0),
                "Chip Temp Avg": round(sum(chips) / len(chips), 2) if chips else 0,
                "chip_vol_diff": 7,
            }
        )
    return out


WM_REPORTS = frozenset({"summary", "devs", "pools", "devdetails", "edevs"})


def _wm_report(fleet: Fleet, dev: SimDevice, cmd: str, snap: Snapshot, t: int) -> dict[str, Any]:
    if cmd == "summary":
        return cg.build_reply(_wm_ok(t, cg.Code.SUMM, "Summary"), "SUMMARY", [_wm_summary(dev, snap)])
    if cmd in ("devs", "edevs"):
        devs = _wm_devs(dev, snap)
        return cg.build_reply(_wm_ok(t, cg.Code.DEVS, f"{len(devs)} ASC(s)"), "DEVS", devs)
    if cmd == "devdetails":
        model = f"{dev.spec.type_string}_{dev.spec.variant}"
        items = [
            {"DEVDETAILS": i, "Name": "SM", "ID": i, "Driver": "bitmicro", "Kernel": "", "Model": model}
            for i in range(dev.spec.boards)
        ]
        return cg.build_reply(_wm_ok(t, cg.Code.DEVDETAILS, "Device Details"), "DEVDETAILS", items)
    # pools: the same cgminer shape as an Antminer's, under btminer's Description
    reply = _report(fleet, dev, "pools", cg.CgminerRequest(("pools",)), snap, t)
    if isinstance(reply.get("STATUS"), list):
        reply["STATUS"][0]["Description"] = WM_DESCRIPTION
    return reply


def whatsminer_reply(fleet: Fleet, dev: SimDevice, req: cg.CgminerRequest, tf: float) -> dict[str, Any]:
    """What a Whatsminer (btminer API v2, privileged API locked) answers at simulated time `tf`."""
    t = int(tf)
    snap = dev.snapshot(fleet.ctx, tf)
    if req.is_joined:
        parts = {
            cmd: _wm_report(fleet, dev, cmd, snap, t)
            if cmd in WM_REPORTS
            else cg.error_reply(t, cg.Code.INVCMD, "Invalid command", WM_DESCRIPTION)
            for cmd in req.commands
        }
        return cg.build_joined_reply(parts)
    cmd = req.commands[0]
    if cmd in WM_REPORTS:
        return _wm_report(fleet, dev, cmd, snap, t)
    if cmd == "get_version":
        return _wm_msg(
            t, {"api_ver": WM_API_VERSION, "fw_ver": WM_FW_VERSION, "platform": "H6OS", "chip": "K210"}
        )
    if cmd == "get_miner_info":
        return _wm_msg(
            t,
            {
                "ip": dev.ip,
                "proto": "dhcp",
                "netmask": "255.0.0.0",
                "gateway": "",
                "dns": "",
                "hostname": dev.hostname,
                "mac": dev.mac(),
                "ledstat": "manual" if dev.blink else "auto",
                "minersn": dev.serial(),
                "powersn": dev.serial(7),
            },
        )
    if cmd == "get_psu":
        return _wm_msg(
            t,
            {
                "name": "P221B",
                "hw_version": "V01.00",
                "sw_version": "V01.00.V01.03",
                "model": "P221B",
                "iin": round(snap.power_w / 230.0 * 1000),
                "vin": 23000,
                "pin": round(snap.power_w),
                "fan_speed": 6600 if snap.online else 0,
                "version": "1",
                "serial_no": dev.serial(8),
                "vendor": "1",
                "temp0": round(snap.ambient_c + 15, 1),
            },
        )
    if cmd == "status":
        return _wm_msg(
            t,
            {
                "mineroff": "true" if snap.sleeping else "false",
                "mineroff_reason": "",
                "mineroff_time": "",
                "FirmwareVersion": f"'{WM_FW_VERSION}'",
                "power_mode": "",
                "hash_percent": "",
            },
        )
    if cmd == "get_error_code":
        return _wm_msg(t, {"error_code": [{str(_wm_error_number(e)): ""} for e in snap.errors]})
    if cmd == "get_token" or cmd in cg.PRIVILEGED_COMMANDS or cmd.startswith(("set_", "update_", "power_")):
        # the write API needs the salted-token / AES flow and is locked out of the box
        return _wm_err(t, 45, "can't access write cmd")
    return cg.error_reply(t, cg.Code.INVCMD, "Invalid command", WM_DESCRIPTION)


WM_REDIRECT_BODY = (
    b"<html><head><title>307 Temporary Redirect</title></head><body>/cgi-bin/luci</body></html>"
)

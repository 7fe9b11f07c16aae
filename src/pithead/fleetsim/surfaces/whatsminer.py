"""A Whatsminer's btminer API v2 (TCP 4028), simulated: snapshots → btminer replies.

Reads: `summary`, `devs` / `edevs`, `pools`, `devdetails`, their joins, and the `get_*` / `status`
family with a STATUS string and a `Msg` object. Writes go through the salted-token / AES flow
(`pithead.farm.protocol.whatsminer`, password "admin"): `get_token`, then `{"enc":1,"data":…}` carrying
`adjust_power_limit`, which stores the limit and restarts the unit to apply it, as the firmware does.
While the fleet's API is not write-enabled every write answers "can't access write cmd", as a unit whose
API has not been unlocked does. The web port redirects to HTTPS LuCI.

Not here: sockets (`server`), device behaviour (`device`).
"""

from __future__ import annotations

from typing import Any

import orjson

from pithead.farm.protocol import whatsminer as wmp
from pithead.farm.protocol.cgminer import wire as cg
from pithead.fleetsim.clock import draw
from pithead.fleetsim.device import SimDevice, Snapshot, op_for_watts
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.surfaces.antminer_api import pools_reply, request_error_bytes
from pithead.fleetsim.surfaces.common import HTML_CT, WebReply

WM_DESCRIPTION = "btminer"
WM_FW_VERSION = "20230911.12.Rel"  # before 2024.11: pyasic picks its API v2 backend, as for real units
WM_API_VERSION = "2.0.5"
WM_OK = 131  # btminer's "API command OK" code for the get_* family
S_TOKEN = 11  # the random stream token salts are drawn from
MAX_TOKENS = 4  # tokens a unit honours at once (clients such as pyasic keep theirs for 30 minutes)


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
        "Power Limit": round(snap.op.watts if snap.op else dev.spec.power_w),
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
    reply = pools_reply(fleet, dev, snap, t)
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
    if cmd == "get_token" and fleet.ctx.api_write_allowed:
        return _issue_token(fleet, dev, tf)
    if cmd == "get_token" or cmd in cg.PRIVILEGED_COMMANDS or cmd.startswith(("set_", "update_", "power_")):
        # the write API needs the salted-token / AES flow and is locked out of the box
        return _wm_err(t, 45, "can't access write cmd")
    return cg.error_reply(t, cg.Code.INVCMD, "Invalid command", WM_DESCRIPTION)


def _salt(dev: SimDevice, n: int) -> str:
    x = draw(dev.seed, S_TOKEN, n)
    return "".join(wmp.SALT_CHARS[(x >> (6 * i)) % len(wmp.SALT_CHARS)] for i in range(8))


def _issue_token(fleet: Fleet, dev: SimDevice, tf: float) -> dict[str, Any]:
    issued = fleet.tokens.setdefault(dev.ip, [])
    n = int(tf * 1000) * 4 + len(issued)
    token = wmp.Token(str(int(tf)), _salt(dev, 2 * n), _salt(dev, 2 * n + 1))
    issued.append((token.time, token.salt, token.newsalt))
    del issued[:-MAX_TOKENS]
    return wmp.token_reply(int(tf), token)


def _privileged(fleet: Fleet, dev: SimDevice, request: dict[str, Any], tf: float) -> dict[str, Any]:
    """One `{"enc":1,"data":…}` request: decrypt with a token this unit issued, run, seal the reply."""
    t = int(tf)
    if not fleet.ctx.api_write_allowed:
        return _wm_err(t, wmp.CODE_WRITE_DENIED, "can't access write cmd")
    for time_s, salt, newsalt in reversed(fleet.tokens.get(dev.ip, [])):
        keys = wmp.derive_keys(wmp.DEFAULT_PASSWORD, wmp.Token(time_s, salt, newsalt))
        try:
            cmd = wmp.open_request(keys, request)
        except wmp.WhatsminerError:
            continue
        return wmp.seal_reply(keys, _run_privileged(fleet, dev, cmd, tf))
    return _wm_err(t, wmp.CODE_BAD_TOKEN, "token error")


def _run_privileged(fleet: Fleet, dev: SimDevice, cmd: dict[str, Any], tf: float) -> dict[str, Any]:
    t = int(tf)
    if cmd.get("cmd") != "adjust_power_limit":
        return wmp.status(t, False, cg.Code.INVCMD, "Invalid command")
    raw = str(cmd.get("power_limit", ""))
    if not raw.isdigit():
        return wmp.status(t, False, wmp.CODE_BAD_VALUE, "invalid power_limit")
    watts = int(raw)
    spec = dev.spec
    if watts > spec.power_w:
        return wmp.status(t, False, wmp.CODE_BAD_VALUE, "power limit above the machine's ordinary power")
    if watts < spec.power_w * spec.power_floor:
        return wmp.status(t, False, wmp.CODE_BAD_VALUE, "power limit below the machine's range")
    # stored, then the unit restarts to apply it
    fleet.set_power(dev.ip, op_for_watts(spec, watts), 0.0, at_boot=True, t=tf)
    fleet.restart(dev.ip, tf)
    return wmp.status(t, True, WM_OK, "API command OK")


def api_bytes(fleet: Fleet, dev: SimDevice, data: bytes, tf: float) -> bytes:
    """Bytes in, NUL-terminated JSON reply bytes out (a request that does not parse gets cgminer's own
    error reply, as the btminer API does for the cgminer-compatible commands)."""
    if data.lstrip()[:1] == b"{" and b'"enc"' in data:
        try:
            obj = orjson.loads(data.rstrip(b"\x00\r\n "))
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and "enc" in obj:
            return cg.frame_reply(_privileged(fleet, dev, obj, tf))
    try:
        req = cg.parse_request(data)
    except cg.CgminerRequestError as exc:
        return request_error_bytes(data, exc, tf)
    return cg.frame_reply(whatsminer_reply(fleet, dev, req, tf))


WM_REDIRECT_BODY = (
    b"<html><head><title>307 Temporary Redirect</title></head><body>/cgi-bin/luci</body></html>"
)


def web(fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float) -> WebReply:
    """The web UI is LuCI over HTTPS: plain HTTP is redirected there (nothing listens on 443 here)."""
    return 307, WM_REDIRECT_BODY, HTML_CT, (("Location", f"https://{dev.ip}/cgi-bin/luci"),)

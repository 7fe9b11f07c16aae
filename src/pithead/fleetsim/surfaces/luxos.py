"""An Antminer on LuxOS, simulated: the cgminer-style API on TCP 4028 with LuxOS's session-guarded power
commands (`logon`, `session`, `logoff`, `profiles`, `profileset`, `curtail`), and its web page.

Reports (`version`, `summary`, `stats`, `pools`, ...) are a stock Antminer's (`antminer_api`) under
LUXminer's Description, with `LUXminer` in the VERSION section (what pyasic's socket probe looks for);
LuxOS's own reports (`config` with the running profile, `profiles`, `power`, `atm`, `tempctrl`, `fans`,
`groups`) are answered alone or joined, enough for pyasic's LuxOS backend to read the unit and set its
power limit. Profiles are the firmware's built-in ones: 25 MHz / 0.1 V steps around
the EEPROM default, 16 down and 8 up [L2], each with the watts and TH/s it should give (`device`'s
f·V² operating point). A profile change ramps in 5 MHz steps (`LUXOS_RAMP_S_PER_STEP` each) before it
holds. One session per unit; it expires after `SESSION_TTL_S` without use, as LuxOS's does. Pool writes
go through the stock commands without a session (a simplification: real LuxOS wants one there too).

Not here: sockets (`server`), device behaviour (`device`).
"""

from __future__ import annotations

from typing import Any

from pithead.farm.protocol import luxos as lx
from pithead.farm.protocol.cgminer import wire as cg
from pithead.fleetsim.clock import draw
from pithead.fleetsim.device import OpPoint, SimDevice, op_for_freq_volt
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import (
    LUXOS_FREQ_STEP_MHZ,
    LUXOS_RAMP_S_PER_STEP,
    LUXOS_STEPS_DOWN,
    LUXOS_STEPS_UP,
    LUXOS_VOLT_STEP_MV,
    ModelSpec,
)
from pithead.fleetsim.surfaces import antminer_api
from pithead.fleetsim.surfaces.common import HTML_CT, WebReply

LUX_VERSION = "2024.1.26.143259-2d8448bf"
DESCRIPTION = f"LUXminer {LUX_VERSION}"
SESSION_TTL_S = 60.0  # "Sessions expire automatically after one minute" (docs.luxor.tech/firmware/api/sessions)
S_SESSION = 10  # the random stream session ids are drawn from
RAMP_STEP_MHZ = 5  # profileset reply: FrequencyStep 5
SID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LUX_HOME = b"<html><head><title>LuxOS</title></head><body>Luxor Firmware</body></html>"
SESSION_COMMANDS = frozenset({"logon", "session", "logoff", "profiles", "profileset", "curtail"})
# LuxOS's own report commands (joinable), beyond the stock ones; pyasic's LuxOS backend reads them.
LUX_REPORTS = frozenset({"tempctrl", "fans", "groups", "profiles", "power", "atm", "config"})


def profile_points(spec: ModelSpec) -> list[OpPoint]:
    """The built-in profiles as operating points, lowest first ("default" is the EEPROM setting)."""
    out = []
    for i in range(-LUXOS_STEPS_DOWN, LUXOS_STEPS_UP + 1):
        f = spec.freq_mhz + i * LUXOS_FREQ_STEP_MHZ
        mv = spec.voltage_mv + i * LUXOS_VOLT_STEP_MV
        if f <= 0 or mv <= 0:
            continue
        out.append(op_for_freq_volt(spec, f, mv, "default" if i == 0 else f"{f}MHz"))
    return out


def profiles(spec: ModelSpec) -> list[lx.Profile]:
    return [lx.Profile(op.label, op.freq_mhz, op.voltage_mv / 1000.0, spec.hashrate_ths * op.rf, op.watts)
            for op in profile_points(spec)]


def _relabel(reply: dict[str, Any], dev: SimDevice, tf: float) -> dict[str, Any]:
    """A stock reply made LuxOS's: Description, VERSION's LUXminer field, CONFIG's running profile."""
    for key, part in list(reply.items()):
        if key == "STATUS" and isinstance(part, list):
            for st in part:
                st["Description"] = DESCRIPTION
        elif isinstance(part, list) and part and isinstance(part[0], dict) and "STATUS" in part[0]:
            reply[key] = [_relabel(part[0], dev, tf)]
    if "VERSION" in reply:
        for v in reply["VERSION"]:
            v.pop("BMMiner", None)
            v["LUXminer"] = LUX_VERSION
    return reply


def _session_ok(fleet: Fleet, dev: SimDevice, sid: str, tf: float) -> bool:
    held = fleet.sessions.get(dev.ip)
    if held is None or held[1] < tf or held[0] != sid:
        return False
    fleet.sessions[dev.ip] = (sid, tf + SESSION_TTL_S)  # every use refreshes it
    return True


def _session_command(fleet: Fleet, dev: SimDevice, req: cg.CgminerRequest, tf: float) -> dict[str, Any]:
    t = int(tf)
    cmd = req.commands[0]
    held = fleet.sessions.get(dev.ip)
    if held is not None and held[1] < tf:
        del fleet.sessions[dev.ip]
        held = None
    if cmd == "logon":
        if held is not None:
            return lx.error(t, lx.CODE_SESSION_BUSY, "Another session is active", DESCRIPTION)
        n = draw(dev.seed, S_SESSION, int(tf * 1000))
        sid = "".join(SID_CHARS[(n >> (6 * i)) % len(SID_CHARS)] for i in range(8))
        fleet.sessions[dev.ip] = (sid, tf + SESSION_TTL_S)
        return lx.logon_reply(t, sid, DESCRIPTION)
    if cmd == "session":
        return lx.session_reply(t, held[0] if held else "", DESCRIPTION)
    if cmd == "profiles":
        return lx.profiles_reply(t, profiles(dev.spec), DESCRIPTION)
    params = req.params
    if not params or not _session_ok(fleet, dev, params[0], tf):
        return lx.error(t, lx.CODE_BAD_SESSION, "Invalid session id", DESCRIPTION)
    if cmd == "logoff":
        fleet.sessions.pop(dev.ip, None)
        return lx.logoff_reply(t, DESCRIPTION)
    if cmd == "curtail":
        what = params[1] if len(params) > 1 else ""
        if what not in ("sleep", "wakeup"):
            return lx.error(t, cg.Code.INVCMD, f"Invalid curtail mode '{what}'", DESCRIPTION)
        fleet.sleep(dev.ip, what == "sleep", tf)
        return lx.curtail_reply(t, what == "sleep", DESCRIPTION)
    # profileset
    name = params[1] if len(params) > 1 else ""
    op = next((p for p in profile_points(dev.spec) if p.label == name), None)
    if op is None:
        return lx.error(t, lx.CODE_BAD_PROFILE, f"Invalid profile '{name}'", DESCRIPTION)
    steps = abs(op.freq_mhz - dev.op(tf).freq_mhz) / RAMP_STEP_MHZ
    fleet.set_power(dev.ip, op, steps * LUXOS_RAMP_S_PER_STEP, at_boot=False, t=tf)
    return lx.profileset_reply(t, name, DESCRIPTION)


def _ok(t: int, code: int, msg: str) -> cg.Status:
    return cg.Status(cg.ReplySeverity.SUCCESS, t, code, msg, DESCRIPTION)


def _lux_report(fleet: Fleet, dev: SimDevice, cmd: str, tf: float) -> dict[str, Any]:
    """LuxOS's report sections (shapes as pyasic's LuxOS backend reads them)."""
    t = int(tf)
    snap = dev.snapshot(fleet.ctx, tf)
    if cmd == "profiles":
        return lx.profiles_reply(t, profiles(dev.spec), DESCRIPTION)
    if cmd == "power":
        return cg.build_reply(_ok(t, 325, "Power"), "POWER", [{"Watts": round(snap.power_w), "PSU": True}])
    if cmd == "atm":
        return cg.build_reply(_ok(t, 339, "ATM configuration values"), "ATM",
                              [{"Enabled": False, "MaxProfile": "default", "MinProfile": "145MHz"}])
    if cmd == "tempctrl":
        return cg.build_reply(_ok(t, 331, "Temperature control"), "TEMPCTRL",
                              [{"Mode": "Auto", "Target": 55, "Hot": 65, "Dangerous": 70}])
    if cmd == "fans":
        fans = [{"ID": i, "RPM": rpm, "Speed": snap.fan_pwm} for i, rpm in enumerate(snap.fans_rpm)]
        reply = cg.build_reply(_ok(t, 202, f"{len(fans)} Fan(s)"), "FANS", fans)
        reply["FANCTRL"] = [{"MinFans": 1, "Mode": "Auto"}]
        return reply
    if cmd == "groups":
        return cg.build_reply(_ok(t, 120, "1 Group(s)"), "GROUPS", [{"GROUP": 0, "Name": "Default", "Quota": 1}])
    # config: the stock section plus what LuxOS adds
    reply = _relabel(antminer_api.cgminer_reply(fleet, dev, cg.CgminerRequest(("config",)), tf), dev, tf)
    for c in reply.get("CONFIG", []):
        c.update({"Profile": dev.op(tf).label, "MACAddr": dev.mac().lower(), "RedLed": "on" if dev.blink else "off"})
    return reply


def _with_groups(reply: dict[str, Any]) -> dict[str, Any]:
    """LuxOS puts every pool in a group (pyasic's LuxOS config reads POOLS[].GROUP)."""
    for p in reply.get("POOLS", []):
        p["GROUP"] = 0
    return reply


def luxos_reply(fleet: Fleet, dev: SimDevice, req: cg.CgminerRequest, tf: float) -> dict[str, Any]:
    if not req.is_joined:
        cmd = req.commands[0]
        if cmd in LUX_REPORTS:
            return _lux_report(fleet, dev, cmd, tf)
        if cmd in SESSION_COMMANDS:
            return _session_command(fleet, dev, req, tf)
        return _with_groups(_relabel(antminer_api.cgminer_reply(fleet, dev, req, tf), dev, tf))
    parts = {}
    for cmd in req.commands:
        one = cg.CgminerRequest((cmd,), None, req.extras, req.is_json)
        if cmd in LUX_REPORTS:
            parts[cmd] = _lux_report(fleet, dev, cmd, tf)
        elif cmd in antminer_api.REPORT_COMMANDS:
            parts[cmd] = _with_groups(_relabel(antminer_api.cgminer_reply(fleet, dev, one, tf), dev, tf))
        else:
            parts[cmd] = cg.access_denied_reply(int(tf), cmd, DESCRIPTION)
    return cg.build_joined_reply(parts)


def api_bytes(fleet: Fleet, dev: SimDevice, data: bytes, tf: float) -> bytes:
    try:
        req = cg.parse_request(data)
    except cg.CgminerRequestError as exc:
        return antminer_api.request_error_bytes(data, exc, tf)
    reply = luxos_reply(fleet, dev, req, tf)
    return cg.frame_reply(reply) if req.is_json else cg.encode_text_reply(reply)


def web(fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float) -> WebReply:
    """LuxOS's web UI page (what pyasic's web probe recognises); its API lives on 4028."""
    if path in ("/", "/index.html"):
        return 200, LUX_HOME, HTML_CT, ()
    return 404, b"", "text/plain", ()

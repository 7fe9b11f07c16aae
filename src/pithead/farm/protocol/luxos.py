"""LuxOS (LUXminer) power profiles over its cgminer-style API on TCP 4028, sans-IO: both sides.

LuxOS speaks the cgminer API (`wire` frames it) and adds session-guarded write commands
(docs.luxor.tech/firmware/api/sessions, /luxminer/logon, /luxminer/profileset [L1]):
- `logon` creates the one session a miner allows and answers `SESSION[0].SessionID` (code 316); another
  `logon` while a session is alive is refused. Sessions expire after a minute without use.
- a write command takes the session id as its first parameter: `profileset` `"<sid>,<profile>"`
  answers `PROFILE[0].Profile` (code 321), `curtail` `"<sid>,sleep|wakeup"`.
- `profiles` lists the built-in profiles: linear steps of 25 MHz and 0.1 V around the EEPROM default,
  16 down and 8 up, 25 in all (docs.luxor.tech/firmware/features [L2]); pyasic reads each profile's
  `Profile Name`, `Frequency`, `Voltage`, `Hashrate`, `Watts`, `IsTuned` (pyasic config/mining/presets.py).
- `logoff` `"<sid>"` drops the session, so the next actor can act.
Codes 316 (logon), 319 (session) and 321 (profileset) are the documented ones; 317 (logoff) and 320
(profiles) are ours where the documentation shows none.

Nothing here opens a socket: requests are bytes, replies are decoded dicts (`wire.decode_reply`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pithead.farm.protocol.cgminer import wire
from pithead.farm.protocol.errors import CgminerReplyError

CODE_LOGON = 316
CODE_LOGOFF = 317
CODE_SESSION = 319
CODE_PROFILES = 320
CODE_PROFILESET = 321
CODE_CURTAIL = 322
# Refusals (E status): no session / wrong session / a session is already held by someone else.
CODE_BAD_SESSION = 330
CODE_SESSION_BUSY = 331
CODE_BAD_PROFILE = 332
# A profile list longer than this is not LuxOS's (25 built-in plus a few custom ones).
MAX_PROFILES = 64
# Commands that need the session id as their first parameter.
SESSION_COMMANDS = frozenset({"profileset", "curtail", "logoff", "atmset", "frequencyset", "voltageset"})


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    frequency_mhz: int
    voltage_v: float
    hashrate_ths: float
    watts: float
    tuned: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"Profile Name": self.name, "Frequency": self.frequency_mhz, "Voltage": round(self.voltage_v, 2),
                "Hashrate": round(self.hashrate_ths, 2), "Watts": round(self.watts), "IsTuned": self.tuned,
                "IsDynamic": False, "Step": self.name}


# --------------------------------------------------------------------------------------------------
# Client side


def logon_request() -> bytes:
    return wire.encode_request("logon")


def logoff_request(session_id: str) -> bytes:
    return wire.encode_request("logoff", _sid(session_id))


def profiles_request() -> bytes:
    return wire.encode_request("profiles")


def profileset_request(session_id: str, profile: str) -> bytes:
    if not profile or any(c in profile for c in ",|\n\r\x00"):
        raise CgminerReplyError(f"bad profile name {profile!r}")
    return wire.encode_request("profileset", f"{_sid(session_id)},{profile}")


def curtail_request(session_id: str, sleep: bool) -> bytes:
    return wire.encode_request("curtail", f"{_sid(session_id)},{'sleep' if sleep else 'wakeup'}")


def _sid(session_id: str) -> str:
    if not session_id or len(session_id) > 64 or not session_id.isalnum():
        raise CgminerReplyError(f"bad LuxOS session id {session_id!r}")
    return session_id


def _first(reply: Mapping[str, Any], section: str, command: str) -> Mapping[str, Any]:
    wire.check_status(reply, command)
    items = reply.get(section)
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise CgminerReplyError(f"{command}: reply has no {section} section")
    return items[0]


def parse_logon(reply: Mapping[str, Any]) -> str:
    """The session id of a `logon` reply (a refused logon raises `CgminerCommandError`)."""
    sid = _first(reply, "SESSION", "logon").get("SessionID")
    if not isinstance(sid, str) or not sid:
        raise CgminerReplyError("logon: no SessionID")
    return sid


def _num(d: Mapping[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise CgminerReplyError(f"profile field {key!r} missing or not a number")
    try:
        f = float(v)
    except ValueError as exc:
        raise CgminerReplyError(f"profile field {key!r} is not a number") from exc
    if f != f or f < 0:
        raise CgminerReplyError(f"profile field {key!r} out of range")
    return f


def parse_profiles(reply: Mapping[str, Any]) -> tuple[Profile, ...]:
    """The `PROFILES` section, ascending by watts."""
    wire.check_status(reply, "profiles")
    items = reply.get("PROFILES")
    if not isinstance(items, list) or not items:
        raise CgminerReplyError("profiles: reply has no PROFILES section")
    if len(items) > MAX_PROFILES:
        raise CgminerReplyError(f"profiles: more than {MAX_PROFILES} profiles")
    out = []
    for d in items:
        if not isinstance(d, dict) or not isinstance(d.get("Profile Name"), str):
            raise CgminerReplyError("profiles: an entry without a Profile Name")
        out.append(Profile(d["Profile Name"], int(_num(d, "Frequency")), _num(d, "Voltage"), _num(d, "Hashrate"),
                           _num(d, "Watts"), bool(d.get("IsTuned", False))))
    return tuple(sorted(out, key=lambda p: (p.watts, p.name)))


def parse_profileset(reply: Mapping[str, Any]) -> str:
    """The profile the miner now runs, from a `profileset` reply."""
    name = _first(reply, "PROFILE", "profileset").get("Profile")
    if not isinstance(name, str) or not name:
        raise CgminerReplyError("profileset: no Profile in the reply")
    return name


def pick_profile(profiles: Sequence[Profile], watts: float) -> Profile | None:
    """The profile with the most watts at or below `watts` (the most hashrate within the budget), as
    pyasic's `set_power_limit` picks; None when every profile draws more."""
    fitting = [p for p in profiles if p.watts <= watts]
    return max(fitting, key=lambda p: (p.watts, p.hashrate_ths)) if fitting else None


# --------------------------------------------------------------------------------------------------
# Server side (what the simulated LuxOS firmware answers)


def _ok(t: int, code: int, msg: str, description: str) -> wire.Status:
    return wire.Status(wire.ReplySeverity.SUCCESS, t, code, msg, description)


def logon_reply(t: int, session_id: str, description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_LOGON, "Session created", description), "SESSION",
                            [{"SessionID": session_id}])


def session_reply(t: int, session_id: str, description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_SESSION, "Session information", description), "SESSION",
                            [{"SessionID": session_id}])


def logoff_reply(t: int, description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_LOGOFF, "Session terminated", description))


def profiles_reply(t: int, profiles: Sequence[Profile], description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_PROFILES, "Profiles", description), "PROFILES",
                            [p.to_json() for p in profiles])


def profileset_reply(t: int, profile: str, description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_PROFILESET, "Profile Set", description), "PROFILE",
                            [{"Board": 0, "FrequencyStep": 5, "Profile": profile, "VoltageStep": 0.05}])


def curtail_reply(t: int, sleep: bool, description: str) -> dict[str, Any]:
    return wire.build_reply(_ok(t, CODE_CURTAIL, "Curtail sleep" if sleep else "Curtail wakeup", description))


def error(t: int, code: int, msg: str, description: str) -> dict[str, Any]:
    return wire.error_reply(t, code, msg, description)

"""Sans-IO codec for the cgminer / bmminer RPC API (TCP 4028), as stock Antminers speak it.

What this module is:
- **Requests.** `parse_request` turns the bytes a client sent on one connection into a frozen
  `CgminerRequest` (JSON form `{"command":"summary+pools","parameter":"0","new_api":true}` or plain text
  form `summary|0`), splitting the `cmd1+cmd2` join form into its commands. `encode_request` /
  `encode_text_request` build the same bytes for a client.
- **Replies.** `Status` is one STATUS block (`STATUS` S/I/W/E/F, `When`, `Code`, `Msg`, `Description`);
  `build_reply` / `build_joined_reply` / `error_reply` / `restart_reply` build reply objects shaped like
  cgminer's (section name, `id: 1`); `frame_reply` serialises one and appends the NUL terminator that
  real firmware sends before closing the socket.
- **Section builders** for the sections a stock Antminer returns (VERSION, SUMMARY, POOLS, DEVS,
  DEVDETAILS, CONFIG, the flat legacy STATS and the `new_api` STATS with its `chain[]` list), taking
  typed frozen values so the field names, types and units live in one place.
- **Client side.** `decode_reply` strips the NUL and repairs the known vendor JSON quirks in one
  commented normaliser; `check_status` raises `CgminerCommandError` on E/F; `parse_version`,
  `parse_summary`, `parse_pools`, `parse_stats`, `parse_stats_new_api`, `parse_devs` turn replies into
  frozen values for the fleet manager.

What it is not: no sockets, no clock (the `When` timestamp is passed in), no device behaviour (that is
`pithead.fleetsim`), and no Whatsminer token / LuxOS session handling.

Message codes and their texts follow cgminer's `api.c` table (MSG_POOL 7 "%d Pool(s)", MSG_SUMM 11,
MSG_INVCMD 14, MSG_VERSION 22, MSG_INVJSON 23, MSG_ACCDENY 45, ..., MSG_MINESTATS 70).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from pithead.farm.protocol.errors import CgminerCommandError, CgminerReplyError, CgminerRequestError

# cgminer's api.c reads one request into a buffer of RECVSIZE (65500) bytes and ignores the rest; a
# request longer than that is not a request any real client sends, so we refuse it instead of buffering.
MAX_REQUEST_BYTES = 65_500
# Replies with hundreds of pools or error entries exist, but a 4 MiB reply is a broken device; a client
# must stop reading there rather than grow its buffer without bound.
MAX_REPLY_BYTES = 4 * 1024 * 1024
# cgminer joins at most a handful of report commands; anything longer is abuse of the join form.
MAX_JOINED_COMMANDS = 16
# Longest command name in cgminer's table is ~16 characters; 64 leaves room for vendor commands.
MAX_COMMAND_NAME = 64

NUL = b"\x00"
JOIN = "+"
TEXT_PARAM_SEP = "|"
PORT = 4028  # the cgminer API port every farm tool (and pyasic) hard-codes


class Severity(StrEnum):
    """The `STATUS` letter of a cgminer reply (api.c `code_severity`)."""

    SUCCESS = "S"
    INFO = "I"
    WARNING = "W"
    ERROR = "E"
    FATAL = "F"


OK_SEVERITIES = frozenset({Severity.SUCCESS, Severity.INFO})


class Code:
    """cgminer api.c message codes used by a stock Antminer (names follow api.c's MSG_*)."""

    POOL = 7  # "%d Pool(s)"
    NOPOOL = 8  # "No pools"
    DEVS = 9  # "%d ASC(s)"
    SUMM = 11  # "Summary"
    INVCMD = 14  # "Invalid command"
    VERSION = 22  # "CGMiner versions"
    INVJSON = 23  # "Invalid JSON"
    MISCMD = 24  # "Missing JSON '%s'"
    MISPID = 25  # "Missing pool id parameter"
    INVPID = 26  # "Invalid pool id %d - range is 0 - %d"
    SWITCHP = 27  # "Switching to pool %d:'%s'"
    MINECONFIG = 33  # "CGMiner config"
    ACCDENY = 45  # "Access denied to '%s' command"
    ENAPOOL = 47  # "Enabling pool %d:'%s'"
    DISPOOL = 48  # "Disabling pool %d:'%s'"
    ALRENAP = 49  # "Pool %d:'%s' already enabled"
    ALRDISP = 50  # "Pool %d:'%s' already disabled"
    DISLASTP = 51  # "Cannot disable last active pool %d:'%s'"
    MISPDP = 52  # "Missing addpool details"
    INVPDP = 53  # "Invalid addpool details '%s'"
    TOOMANYP = 54  # "Reached maximum number of pools (%d)"
    ADDPOOL = 55  # "Added pool '%s'"
    REMLASTP = 66  # "Cannot remove last pool %d:'%s'"
    ACTPOOL = 67  # "Cannot remove active pool %d:'%s'"
    REMPOOL = 68  # "Removed pool %d:'%s'"
    DEVDETAILS = 69  # "Device Details"
    MINESTATS = 70  # "CGMiner stats"


# Report commands that may be joined with '+' (cgminer marks these `joinable` in its command table).
JOINABLE_COMMANDS = frozenset(
    {"version", "config", "summary", "pools", "devs", "devdetails", "stats", "estats", "coin", "lcd"}
)
# Commands that change the miner: cgminer only runs them for clients in the `W:` api-allow group.
PRIVILEGED_COMMANDS = frozenset(
    {
        "addpool",
        "switchpool",
        "enablepool",
        "disablepool",
        "removepool",
        "poolpriority",
        "restart",
        "quit",
        "save",
        "zero",
        "ascset",
        "setconfig",
    }
)

_COMMAND_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


# --------------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True)
class CgminerRequest:
    """One parsed cgminer API request.

    `commands` has one entry, or several for the `cmd1+cmd2` join form. `parameter` is the raw
    parameter string (`"0"`, `"url,user,pass"`), `None` when absent. `extras` holds any other JSON keys
    (bmminer's `new_api: true`) as sorted `(key, value)` pairs, so the request stays hashable.
    """

    commands: tuple[str, ...]
    parameter: str | None = None
    extras: tuple[tuple[str, Any], ...] = ()
    is_json: bool = True

    @property
    def is_joined(self) -> bool:
        return len(self.commands) > 1

    @property
    def command(self) -> str:
        """The command as sent on the wire (joined with '+')."""
        return JOIN.join(self.commands)

    def extra(self, key: str, default: Any = None) -> Any:
        for k, v in self.extras:
            if k == key:
                return v
        return default

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter split on commas, as cgminer splits `addpool|url,user,pass` (empty when absent)."""
        if self.parameter is None or self.parameter == "":
            return ()
        return tuple(self.parameter.split(","))


def _param_to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise CgminerRequestError(Code.INVJSON, "Invalid JSON")


def _split_commands(command: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in command.split(JOIN))
    if len(parts) > MAX_JOINED_COMMANDS:
        raise CgminerRequestError(Code.INVCMD, "Invalid command")
    for p in parts:
        if not p or len(p) > MAX_COMMAND_NAME or not _COMMAND_NAME_RE.match(p):
            raise CgminerRequestError(Code.INVCMD, "Invalid command")
    return parts


def parse_request(data: bytes) -> CgminerRequest:
    """Parse the bytes a client sent on one API connection.

    Accepts the JSON form (pyasic and most tools) and the plain text form (`cmd|param`). A trailing NUL
    or newline is tolerated. Raises `CgminerRequestError` carrying cgminer's code for the failure.
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise CgminerRequestError(Code.INVCMD, "Invalid command")
    text_b = data.rstrip(b"\x00\r\n\t ").lstrip()
    if not text_b:
        raise CgminerRequestError(Code.INVCMD, "Invalid command")
    if text_b[:1] == b"{":
        try:
            obj = orjson.loads(text_b)
        except orjson.JSONDecodeError as exc:
            raise CgminerRequestError(Code.INVJSON, "Invalid JSON") from exc
        if not isinstance(obj, dict):
            raise CgminerRequestError(Code.INVJSON, "Invalid JSON")
        command = obj.get("command")
        if not isinstance(command, str):
            raise CgminerRequestError(Code.MISCMD, "Missing JSON 'command'")
        parameter = obj.get("parameter")
        param_s = None if parameter is None else _param_to_str(parameter)
        extras = tuple(sorted((k, v) for k, v in obj.items() if k not in ("command", "parameter")))
        return CgminerRequest(_split_commands(command), param_s, extras, is_json=True)
    try:
        text = text_b.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CgminerRequestError(Code.INVCMD, "Invalid command") from exc
    command, sep, param = text.partition(TEXT_PARAM_SEP)
    return CgminerRequest(_split_commands(command), param if sep else None, (), is_json=False)


def encode_request(command: str | Sequence[str], parameter: str | int | None = None, **extras: Any) -> bytes:
    """JSON request bytes, as pyasic sends them: `{"command":"stats","new_api":true}`.

    `command` may be a list of report commands, which is joined with '+'.
    """
    cmd = command if isinstance(command, str) else JOIN.join(command)
    _split_commands(cmd)  # validate
    obj: dict[str, Any] = {"command": cmd, **extras}
    if parameter is not None:
        obj["parameter"] = str(parameter)
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in the parameter
        raise CgminerRequestError(Code.INVJSON, "Invalid JSON") from exc


def encode_text_request(command: str, parameter: str | None = None) -> bytes:
    """Plain text request bytes: `summary` or `switchpool|1`."""
    _split_commands(command)
    try:
        return (command if parameter is None else f"{command}{TEXT_PARAM_SEP}{parameter}").encode()
    except UnicodeEncodeError as exc:  # a lone surrogate cannot go on the wire
        raise CgminerRequestError(Code.INVCMD, "Invalid command") from exc


# --------------------------------------------------------------------------------------------------
# Replies


@dataclass(frozen=True, slots=True)
class Status:
    """One STATUS block: `{"STATUS":"S","When":1696258519,"Code":11,"Msg":"Summary","Description":"…"}`."""

    severity: Severity
    when: int
    code: int
    msg: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "STATUS": str(self.severity),
            "When": self.when,
            "Code": self.code,
            "Msg": self.msg,
            "Description": self.description,
        }

    @property
    def ok(self) -> bool:
        return self.severity in OK_SEVERITIES


def build_reply(
    status: Status, section: str | None = None, items: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A single-command reply: `{"STATUS":[…],"<SECTION>":[…],"id":1}` (no section for errors/actions)."""
    reply: dict[str, Any] = {"STATUS": [status.to_dict()]}
    if section is not None:
        reply[section] = [dict(i) for i in items]
    reply["id"] = 1
    return reply


def error_reply(
    when: int, code: int, msg: str, description: str, severity: Severity = Severity.ERROR
) -> dict[str, Any]:
    """An E-status reply with no section, as cgminer answers a bad or denied command."""
    return build_reply(Status(severity, when, code, msg, description))


def access_denied_reply(when: int, command: str, description: str) -> dict[str, Any]:
    return error_reply(when, Code.ACCDENY, f"Access denied to '{command}' command", description)


def invalid_command_reply(when: int, description: str) -> dict[str, Any]:
    return error_reply(when, Code.INVCMD, "Invalid command", description)


def restart_reply() -> dict[str, Any]:
    """cgminer's answer to `restart`: the bare `{"STATUS":"RESTART"}` object, sent before it restarts."""
    return {"STATUS": "RESTART"}


def build_joined_reply(parts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A joined reply: `{"summary":[{STATUS…,SUMMARY…}],"pools":[{…}],"id":1}`.

    Each part is a single-command reply; its own `id` is dropped, as cgminer writes it once at the end.
    """
    out: dict[str, Any] = {}
    for cmd, reply in parts.items():
        out[cmd] = [{k: v for k, v in reply.items() if k != "id"}]
    out["id"] = 1
    return out


def frame_reply(reply: Mapping[str, Any]) -> bytes:
    """Serialise a reply and append the NUL terminator real firmware sends before closing."""
    return orjson.dumps(reply) + NUL


_TEXT_ESCAPE = str.maketrans({",": "\\,", "|": "\\|", "=": "\\=", "\\": "\\\\"})


def _text_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:.0f}"
    return str(v).translate(_TEXT_ESCAPE)


def encode_text_reply(reply: Mapping[str, Any]) -> bytes:
    """cgminer's answer to a plain-text request, NUL-terminated.

    `STATUS=S,When=…,Code=11,Msg=Summary,Description=…|SUMMARY,Elapsed=…,GHS 5s=…|`: one `|`-terminated
    record for the status and one per section item; items whose first field names them (`POOL=0,…`)
    carry no section prefix. Separators inside values are backslash-escaped, as cgminer does. Joined
    replies do not exist in text mode (cgminer joins only JSON requests).
    """
    st = reply.get("STATUS")
    if isinstance(st, str):
        return st.encode() + NUL
    parts: list[str] = []
    for key, value in reply.items():
        if key == "id":
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, Mapping):
                continue
            fields = ",".join(
                f"{k}={_text_value(v)}" for k, v in item.items() if not isinstance(v, list | dict)
            )
            first = next(iter(item), "")
            named = key == "STATUS" or first in (key, key.rstrip("S"))
            parts.append((fields if named else f"{key},{fields}") + "|")
    return "".join(parts).encode() + NUL


def _split_unescaped(text: str, sep: str, keep_escapes: bool = False) -> list[str]:
    """Split on `sep` where it is not backslash-escaped; unescape unless `keep_escapes`."""
    out, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2] if keep_escapes else text[i + 1])
            i += 2
            continue
        if c == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def decode_text_reply(data: bytes) -> dict[str, Any]:
    """Parse a plain-text reply back into the JSON shape (values stay strings: text has no types).

    Raises `CgminerReplyError` when there is no STATUS record.
    """
    if len(data) > MAX_REPLY_BYTES:
        raise CgminerReplyError(f"reply of {len(data)} bytes exceeds {MAX_REPLY_BYTES}")
    text = data.rstrip(b"\x00\r\n").decode("utf-8", errors="replace")
    if text == "RESTART":
        return {"STATUS": "RESTART"}
    records = [r for r in _split_unescaped(text, "|", keep_escapes=True) if r]
    if not records or not records[0].startswith("STATUS="):
        raise CgminerReplyError(f"text reply without STATUS: {text[:80]!r}")
    out: dict[str, Any] = {}
    for rec in records:
        tokens = _split_unescaped(rec, ",", keep_escapes=True)
        section = None
        if tokens and "=" not in tokens[0]:
            section, tokens = tokens[0], tokens[1:]
        item: dict[str, Any] = {}
        for tok in tokens:
            k, v = [*_split_unescaped(tok, "=", keep_escapes=True), ""][:2]
            key = "".join(_split_unescaped(k, "\x00"))
            item[key] = "".join(_split_unescaped(v, "\x00"))
        if section is None:
            first = next(iter(item), "")
            section = "STATUS" if first == "STATUS" else (first if first.endswith("S") else first + "S")
        out.setdefault(section, []).append(item)
    out["id"] = 1
    return out


# --------------------------------------------------------------------------------------------------
# Section builders (typed values → cgminer field names)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """VERSION[0] of a stock Antminer: `{"BMMiner":"1.0.0","API":"3.1","Miner":"…","CompileTime":…,"Type":…}`."""

    miner_type: str  # "Antminer S19 XP"
    bmminer: str = "1.0.0"
    api: str = "3.1"
    miner: str = "uart_trans.1.3"
    compile_time: str = "Thu Nov 24 15:54:04 CST 2022"

    def to_section(self) -> dict[str, Any]:
        return {
            "BMMiner": self.bmminer,
            "API": self.api,
            "Miner": self.miner,
            "CompileTime": self.compile_time,
            "Type": self.miner_type,
        }


@dataclass(frozen=True, slots=True)
class SummaryFigures:
    """SUMMARY[0] of bmminer. Hashrates are GH/s (bmminer's unit); `ghs_5s` is sent as a string."""

    elapsed: int
    ghs_5s: float
    ghs_av: float
    ghs_30m: float
    accepted: int
    rejected: int
    hardware_errors: int
    stale: int = 0
    get_failures: int = 0
    remote_failures: int = 0
    found_blocks: int = 0
    getworks: int = 0
    discarded: int = 0
    local_work: int = 0
    network_blocks: int = 0
    difficulty_accepted: float = 0.0
    difficulty_rejected: float = 0.0
    difficulty_stale: float = 0.0
    best_share: int = 0
    last_getwork: int = 0

    def to_section(self) -> dict[str, Any]:
        minutes = max(self.elapsed, 1) / 60.0
        total_diff = self.difficulty_accepted + self.difficulty_rejected + self.difficulty_stale
        hw_total = self.hardware_errors + self.accepted + self.rejected
        return {
            "Elapsed": self.elapsed,
            "GHS 5s": f"{self.ghs_5s:.2f}",
            "GHS av": round(self.ghs_av, 2),
            "GHS 30m": round(self.ghs_30m, 2),
            "Found Blocks": self.found_blocks,
            "Getworks": self.getworks,
            "Accepted": self.accepted,
            "Rejected": self.rejected,
            "Hardware Errors": self.hardware_errors,
            "Utility": round(self.accepted / minutes, 2),
            "Discarded": self.discarded,
            "Stale": self.stale,
            "Get Failures": self.get_failures,
            "Local Work": self.local_work,
            "Remote Failures": self.remote_failures,
            "Network Blocks": self.network_blocks,
            "Total MH": round(self.ghs_av * 1000.0 * self.elapsed, 4),
            "Work Utility": round(self.difficulty_accepted / minutes, 2),
            "Difficulty Accepted": round(self.difficulty_accepted, 8),
            "Difficulty Rejected": round(self.difficulty_rejected, 8),
            "Difficulty Stale": round(self.difficulty_stale, 8),
            "Best Share": self.best_share,
            "Device Hardware%": round(100.0 * self.hardware_errors / hw_total, 4) if hw_total else 0.0,
            "Device Rejected%": round(100.0 * self.difficulty_rejected / total_diff, 4)
            if total_diff
            else 0.0,
            "Pool Rejected%": round(100.0 * self.difficulty_rejected / total_diff, 4) if total_diff else 0.0,
            "Pool Stale%": round(100.0 * self.difficulty_stale / total_diff, 4) if total_diff else 0.0,
            "Last getwork": self.last_getwork,
        }


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One POOLS[] entry. `status` is "Alive" or "Dead"; `stratum_active` marks the pool in use."""

    index: int
    url: str
    user: str
    status: str
    priority: int
    stratum_active: bool
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    get_failures: int = 0
    remote_failures: int = 0
    getworks: int = 0
    diff: float = 0.0
    difficulty_accepted: float = 0.0
    difficulty_rejected: float = 0.0
    last_share_time: str = "0"
    best_share: int = 0
    enabled: bool = True

    def to_section(self) -> dict[str, Any]:
        host = self.url.split("://", 1)[-1].rsplit(":", 1)[0] if self.stratum_active else ""
        total = self.difficulty_accepted + self.difficulty_rejected
        return {
            "POOL": self.index,
            "URL": self.url,
            "Status": self.status if self.enabled else "Disabled",
            "Priority": self.priority,
            "Quota": 1,
            "Long Poll": "N",
            "Getworks": self.getworks,
            "Accepted": self.accepted,
            "Rejected": self.rejected,
            "Discarded": 0,
            "Stale": self.stale,
            "Get Failures": self.get_failures,
            "Remote Failures": self.remote_failures,
            "User": self.user,
            "Last Share Time": self.last_share_time,
            "Diff": _short_diff(self.diff) if self.stratum_active else "",
            "Diff1 Shares": 0,
            "Proxy Type": "",
            "Proxy": "",
            "Difficulty Accepted": round(self.difficulty_accepted, 8),
            "Difficulty Rejected": round(self.difficulty_rejected, 8),
            "Difficulty Stale": 0.0,
            "Last Share Difficulty": round(self.diff, 8) if self.accepted else 0.0,
            "Work Difficulty": round(self.diff, 8),
            "Has Stratum": True,
            "Stratum Active": self.stratum_active,
            "Stratum URL": host,
            "Stratum Difficulty": round(self.diff, 8) if self.stratum_active else 0.0,
            "Has Vmask": True,
            "Has GBT": False,
            "Best Share": self.best_share,
            "Pool Rejected%": round(100.0 * self.difficulty_rejected / total, 4) if total else 0.0,
            "Pool Stale%": 0.0,
            "Bad Work": 0,
            "Current Block Height": 0,
            "Current Block Version": 536870912,
        }


def _short_diff(d: float) -> str:
    """cgminer's suffixed difficulty string: 524288 → "524K", 2048 → "2.05K"."""
    if d <= 0:
        return ""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if d >= div:
            v = d / div
            return f"{v:.3g}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return f"{d:.0f}"


@dataclass(frozen=True, slots=True)
class ChainFigures:
    """One hashboard (chain), in the units the firmware uses.

    `rate_real_ghs` / `rate_ideal_ghs` are GH/s; temperatures are °C with four sensors each
    (`temp_pcb`, `temp_chip`, `temp_pic`); `asic_ok` is a per-chip flag list used for the `chain_acs`
    string ('o' good, 'x' bad). A dead board has `asic_num == 0` and rate 0.
    """

    index: int
    asic_num: int
    rate_real_ghs: float
    rate_ideal_ghs: float
    freq_avg: float
    temp_pcb: tuple[int, int, int, int]
    temp_chip: tuple[int, int, int, int]
    temp_pic: tuple[int, int, int, int]
    hw: int
    sn: str
    voltage_mv: int = 12625
    asic_ok: tuple[bool, ...] = ()

    def acs_string(self) -> str:
        flags = "".join("o" if ok else "x" for ok in self.asic_ok) if self.asic_ok else "o" * self.asic_num
        return " ".join(flags[i : i + 10] for i in range(0, len(flags), 10))


@dataclass(frozen=True, slots=True)
class StatsFigures:
    """Everything both STATS shapes need: the flat legacy STATS[1] and the `new_api` chain list."""

    version: VersionInfo
    device_id: str  # "BTM_SOC0"
    elapsed: int
    ghs_5s: float
    ghs_av: float
    ghs_30m: float
    rate_ideal_ghs: float
    frequency: int
    fans: tuple[int, ...]
    fan_pwm: int
    chains: tuple[ChainFigures, ...]
    state: str = "mining"  # bmminer's `state` / chain_state field
    power_w: float | None = None  # absent on stock S19/S19 XP firmware
    miner_mode: int = 0  # 0 normal, 1 sleep, 3 low power (bitmain-work-mode)

    def legacy_section(self) -> list[dict[str, Any]]:
        """STATS for `{"command":"stats"}`: `[{BMMiner,Miner,CompileTime,Type}, {STATS:0, …flat fields…}]`."""
        s: dict[str, Any] = {
            "STATS": 0,
            "ID": self.device_id,
            "Elapsed": self.elapsed,
            "Calls": 0,
            "Wait": 0.0,
            "Max": 0.0,
            "Min": 99999999.0,
            "GHS 5s": f"{self.ghs_5s:.2f}",
            "GHS av": round(self.ghs_av, 2),
            "rate_30m": round(self.ghs_30m, 2),
            "Mode": 2,
            "miner_count": len(self.chains),
            "frequency": self.frequency,
            "fan_num": len(self.fans),
        }
        for i, rpm in enumerate(self.fans, start=1):
            s[f"fan{i}"] = rpm
        s["temp_num"] = len(self.chains)
        for c in self.chains:
            n = c.index + 1
            s[f"temp{n}"] = max(c.temp_pcb)
        for c in self.chains:
            n = c.index + 1
            s[f"temp2_{n}"] = max(c.temp_chip)
        for c in self.chains:
            n = c.index + 1
            s[f"temp3_{n}"] = max(c.temp_chip)
        for c in self.chains:
            n = c.index + 1
            s[f"temp_pcb{n}"] = "-".join(str(t) for t in c.temp_pcb)
            s[f"temp_chip{n}"] = "-".join(str(t) for t in c.temp_chip)
        s["total_rateideal"] = round(self.rate_ideal_ghs, 2)
        s["rate_unit"] = "GH"
        s["total_freqavg"] = round(
            sum(c.freq_avg for c in self.chains) / len(self.chains) if self.chains else 0.0, 2
        )
        s["total_acn"] = sum(c.asic_num for c in self.chains)
        s["total rate"] = round(sum(c.rate_real_ghs for c in self.chains), 2)
        for c in self.chains:
            n = c.index + 1
            s[f"chain_acn{n}"] = c.asic_num
            s[f"chain_acs{n}"] = c.acs_string()
            s[f"chain_hw{n}"] = c.hw
            s[f"chain_rate{n}"] = f"{c.rate_real_ghs:.2f}"
            s[f"chain_rateideal{n}"] = round(c.rate_ideal_ghs, 2)
            s[f"chain_vol{n}"] = c.voltage_mv
            s[f"freq_avg{n}"] = round(c.freq_avg, 2)
            s[f"chain_state{n}"] = self.state if c.asic_num else "failure"
        s["miner_version"] = self.version.miner
        s["miner_id"] = self.device_id
        if self.power_w is not None:
            s["chain_power"] = f"{self.power_w:.0f} W"
        return [_stats_head(self.version), s]

    def new_api_reply(self, when: int) -> dict[str, Any]:
        """The whole reply for `{"command":"stats","new_api":true}` (also the web `stats.cgi` body).

        This newer bmminer shape has a single STATUS *object* (lower-case `when`, `api_version`) and a
        `STATS[0].chain[]` list, which is what pyasic's AntminerModern reads hashboards from.
        """
        chains = []
        for c in self.chains:
            chains.append(
                {
                    "index": c.index,
                    "freq_avg": round(c.freq_avg),
                    "rate_ideal": round(c.rate_ideal_ghs, 2),
                    "rate_real": round(c.rate_real_ghs, 2),
                    "asic_num": c.asic_num,
                    "asic": c.acs_string(),
                    "temp_pic": list(c.temp_pic),
                    "temp_pcb": list(c.temp_pcb),
                    "temp_chip": list(c.temp_chip),
                    "hw": c.hw,
                    "eeprom_loaded": True,
                    "sn": c.sn,
                    "hwp": round(100.0 * c.hw / max(1, c.hw + 1_000_000), 4),
                    "tpl": [],
                }
            )
        stats: dict[str, Any] = {
            "elapsed": self.elapsed,
            "rate_5s": round(self.ghs_5s, 2),
            "rate_30m": round(self.ghs_30m, 2),
            "rate_avg": round(self.ghs_av, 2),
            "rate_ideal": round(self.rate_ideal_ghs, 2),
            "rate_unit": "GH/s",
            "chain_num": len(self.chains),
            "fan_num": len(self.fans),
            "fan": list(self.fans),
            "hwp_total": round(
                100.0 * sum(c.hw for c in self.chains) / max(1, sum(c.hw for c in self.chains) + 1_000_000), 4
            ),
            "miner-mode": self.miner_mode,
            "freq-level": 100,
            "chain": chains,
        }
        if self.power_w is not None:
            stats["watt"] = round(self.power_w)
        return {
            "STATUS": {
                "STATUS": "S",
                "when": when,
                "timestamp": when,
                "api_version": "1.0.0",
                "Msg": "stats",
            },
            "INFO": {
                "miner_version": self.version.miner,
                "CompileTime": self.version.compile_time,
                "type": self.version.miner_type,
            },
            "STATS": [stats],
        }


def _stats_head(v: VersionInfo) -> dict[str, Any]:
    return {"BMMiner": v.bmminer, "Miner": v.miner, "CompileTime": v.compile_time, "Type": v.miner_type}


def devs_section(
    chains: Sequence[ChainFigures], elapsed: int, accepted: Sequence[int]
) -> list[dict[str, Any]]:
    """DEVS[]: one ASC entry per chain (bmminer reports each hashboard as an ASC device)."""
    out = []
    for c, acc in zip(chains, accepted, strict=False):
        out.append(
            {
                "ASC": c.index,
                "Name": "BTM_SOC",
                "ID": c.index,
                "Enabled": "Y",
                "Status": "Alive" if c.asic_num else "Dead",
                "Temperature": float(max(c.temp_chip)),
                "MHS av": round(c.rate_real_ghs * 1000.0, 2),
                "MHS 5s": round(c.rate_real_ghs * 1000.0, 2),
                "Accepted": acc,
                "Rejected": 0,
                "Hardware Errors": c.hw,
                "Utility": round(acc / max(elapsed / 60.0, 1 / 60.0), 2),
                "Last Share Pool": 0,
                "Last Share Time": 0,
                "Total MH": round(c.rate_real_ghs * 1000.0 * elapsed, 4),
                "Diff1 Work": 0,
                "Device Hardware%": 0.0,
                "Device Rejected%": 0.0,
                "Device Elapsed": elapsed,
            }
        )
    return out


def devdetails_section(chain_count: int) -> list[dict[str, Any]]:
    return [
        {
            "DEVDETAILS": i,
            "Name": "BTM_SOC",
            "ID": i,
            "Driver": "bitmain_soc",
            "Kernel": "",
            "Model": "",
            "Device Path": "",
        }
        for i in range(chain_count)
    ]


def config_section(asc_count: int, pool_count: int) -> list[dict[str, Any]]:
    return [
        {
            "ASC Count": asc_count,
            "PGA Count": 0,
            "Pool Count": pool_count,
            "Strategy": "Failover",
            "Log Interval": 5,
            "Device Code": "",
            "OS": "Linux",
            "Failover-Only": False,
            "ScanTime": 60,
            "Queue": 1,
            "Expiry": 120,
        }
    ]


# --------------------------------------------------------------------------------------------------
# Client side: decoding and typed parsers


def decode_reply(data: bytes) -> dict[str, Any]:
    """Decode one reply as received until EOF: strip the NUL and repair known vendor JSON quirks.

    This is the one normaliser for cgminer-family quirks (each seen on real firmware):
    - `}{` between STATS entries (bmminer forgets the comma),
    - `,}` and `[,{` (btminer / bmminer stray commas),
    - `"inf"` / `"nan"` quoted floats (Avalon), replaced by 0,
    - a reply truncated by the device's buffer: cut back to the last complete member is *not* attempted
      (it silently drops data); it raises instead.
    Raises `CgminerReplyError` when the result is still not a JSON object.
    """
    if len(data) > MAX_REPLY_BYTES:
        raise CgminerReplyError(f"reply of {len(data)} bytes exceeds {MAX_REPLY_BYTES}")
    raw = data.rstrip(b"\x00\r\n\t ")
    if not raw:
        raise CgminerReplyError("empty reply")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace")
        text = text.replace("}{", "},{").replace(",}", "}").replace("[,{", "[{")
        text = text.replace('"inf"', "0").replace('"nan"', "0").replace("\n", "")
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise CgminerReplyError(f"undecodable reply: {text[:120]!r}") from exc
    if not isinstance(obj, dict):
        raise CgminerReplyError("reply is not a JSON object")
    return obj


def reply_status(reply: Mapping[str, Any]) -> Status:
    """The STATUS block of a single-command reply (list form, object form, or bare `"RESTART"`)."""
    st = reply.get("STATUS")
    if isinstance(st, str):
        # {"STATUS":"RESTART"}: an acknowledged action with no details.
        return Status(Severity.SUCCESS, 0, 0, st, "")
    if isinstance(st, list):
        if not st or not isinstance(st[0], dict):
            raise CgminerReplyError("empty STATUS list")
        st = st[0]
    if not isinstance(st, dict):
        raise CgminerReplyError("reply has no STATUS")
    letter = st.get("STATUS")
    try:
        sev = Severity(str(letter))
    except ValueError as exc:
        raise CgminerReplyError(f"unknown STATUS {letter!r}") from exc
    return Status(
        sev,
        _int_field(st.get("When", st.get("when", 0))),
        _int_field(st.get("Code", 0)),
        str(st.get("Msg", "")),
        str(st.get("Description", "")),
    )


def _int_field(v: Any) -> int:
    """An integer STATUS field: a JSON number, or a decimal string in text-mode replies; else 0."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return 0


def check_status(reply: Mapping[str, Any], command: str = "") -> Mapping[str, Any]:
    """Raise `CgminerCommandError` unless the reply (or every part of a joined reply) succeeded."""
    if "STATUS" in reply:
        st = reply_status(reply)
        if not st.ok:
            raise CgminerCommandError(command, str(st.severity), st.code, st.msg)
        return reply
    for key, part in reply.items():
        if key == "id":
            continue
        if not isinstance(part, list) or not part or not isinstance(part[0], dict):
            raise CgminerReplyError(f"joined reply part {key!r} malformed")
        check_status(part[0], key)
    return reply


def split_joined_reply(reply: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"summary":[{…}],"pools":[{…}],"id":1}` → `{"summary": {…}, "pools": {…}}`."""
    out: dict[str, dict[str, Any]] = {}
    for key, part in reply.items():
        if key == "id":
            continue
        if not isinstance(part, list) or not part or not isinstance(part[0], dict):
            raise CgminerReplyError(f"joined reply part {key!r} malformed")
        out[key] = part[0]
    return out


def _section(reply: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    check_status(reply, name.lower())
    sec = reply.get(name)
    if not isinstance(sec, list):
        raise CgminerReplyError(f"reply has no {name} section")
    return [s for s in sec if isinstance(s, dict)]


def _num(v: Any, what: str) -> float:
    """A numeric field that firmware sends as a number or a numeric string ("140258.58")."""
    if isinstance(v, bool):
        raise CgminerReplyError(f"{what}: boolean where a number was expected")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError as exc:
            raise CgminerReplyError(f"{what}: {v!r} is not a number") from exc
    raise CgminerReplyError(f"{what}: missing or not a number")


def _bool(v: Any) -> bool:
    """A boolean field: JSON true/false, or "true"/"false" in text-mode replies."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "y", "yes", "1")
    return bool(v)


def _opt_num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if v is None or v == "":
        return None
    return _num(v, key)


@dataclass(frozen=True, slots=True)
class ParsedVersion:
    miner_type: str  # "Antminer S19 XP" (text before " (" when firmware appends e.g. "(Vnish 1.2.0)")
    api: str | None
    firmware: str | None  # CompileTime, which pyasic reports as fw_ver for stock Antminers
    software: str | None  # "bmminer 1.0.0" / "cgminer 4.11.1" from STATUS Description


def parse_version(reply: Mapping[str, Any]) -> ParsedVersion:
    v = _section(reply, "VERSION")
    if not v:
        raise CgminerReplyError("empty VERSION section")
    d = v[0]
    t = str(d.get("Type", ""))
    return ParsedVersion(
        miner_type=t.split(" (", 1)[0],
        api=str(d["API"]) if "API" in d else None,
        firmware=str(d["CompileTime"]) if "CompileTime" in d else None,
        software=reply_status(reply).description or None,
    )


@dataclass(frozen=True, slots=True)
class ParsedSummary:
    elapsed_s: int
    ghs_5s: float
    ghs_av: float | None
    accepted: int
    rejected: int
    hardware_errors: int
    best_share: int | None


def parse_summary(reply: Mapping[str, Any]) -> ParsedSummary:
    s = _section(reply, "SUMMARY")
    if not s:
        raise CgminerReplyError("empty SUMMARY section")
    d = s[0]
    ghs = d.get("GHS 5s")
    if ghs is None and "MHS 5s" in d:  # cgminer proper reports MH/s
        ghs_5s = _num(d["MHS 5s"], "MHS 5s") / 1000.0
        av = _opt_num(d, "MHS av")
        ghs_av = av / 1000.0 if av is not None else None
    else:
        ghs_5s = _num(ghs, "GHS 5s")
        ghs_av = _opt_num(d, "GHS av")
    best = _opt_num(d, "Best Share")
    return ParsedSummary(
        elapsed_s=int(_num(d.get("Elapsed", 0), "Elapsed")),
        ghs_5s=ghs_5s,
        ghs_av=ghs_av,
        accepted=int(_num(d.get("Accepted", 0), "Accepted")),
        rejected=int(_num(d.get("Rejected", 0), "Rejected")),
        hardware_errors=int(_num(d.get("Hardware Errors", 0), "Hardware Errors")),
        best_share=int(best) if best is not None else None,
    )


@dataclass(frozen=True, slots=True)
class ParsedPool:
    index: int
    url: str
    user: str
    alive: bool
    active: bool
    priority: int
    accepted: int
    rejected: int
    get_failures: int
    remote_failures: int


def parse_pools(reply: Mapping[str, Any]) -> tuple[ParsedPool, ...]:
    out: list[ParsedPool] = []
    for d in _section(reply, "POOLS"):
        out.append(
            ParsedPool(
                index=int(_num(d.get("POOL", len(out)), "POOL")),
                url=str(d.get("URL", "")),
                user=str(d.get("User", "")),
                alive=d.get("Status") == "Alive",
                active=_bool(d.get("Stratum Active", False)),
                priority=int(_num(d.get("Priority", 0), "Priority")),
                accepted=int(_num(d.get("Accepted", 0), "Accepted")),
                rejected=int(_num(d.get("Rejected", 0), "Rejected")),
                get_failures=int(_num(d.get("Get Failures", 0), "Get Failures")),
                remote_failures=int(_num(d.get("Remote Failures", 0), "Remote Failures")),
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ParsedChain:
    index: int
    chips: int
    hashrate_ghs: float | None
    board_temp_c: float | None  # PCB
    chip_temp_c: float | None
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedStats:
    miner_type: str | None
    elapsed_s: int | None
    expected_ghs: float | None
    fans_rpm: tuple[int, ...]
    chains: tuple[ParsedChain, ...]
    power_w: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_RATE_UNIT_TO_GH = {"H": 1e-9, "KH": 1e-6, "MH": 1e-3, "GH": 1.0, "TH": 1e3, "PH": 1e6}


def _rate_unit_factor(unit: Any) -> float:
    u = str(unit or "GH").upper().replace("/S", "").strip()
    return _RATE_UNIT_TO_GH.get(u, 1.0)


def parse_stats(reply: Mapping[str, Any]) -> ParsedStats:
    """Parse the flat legacy STATS (`{"command":"stats"}`): STATS[0] identity, STATS[1] figures.

    Chains are found from `chain_acn{n}`; `temp{n}` is the PCB max and `temp2_{n}` the chip max, as
    bmminer reports them. Fans with 0 rpm are reported as 0 (a stopped fan), not dropped.
    """
    secs = _section(reply, "STATS")
    if len(secs) < 2:
        raise CgminerReplyError("STATS needs an identity entry and a figures entry")
    head, d = secs[0], secs[1]
    fans = []
    for i in range(1, 9):
        v = d.get(f"fan{i}")
        if v is None:
            break
        fans.append(int(_num(v, f"fan{i}")))
    n_fans = d.get("fan_num")
    if isinstance(n_fans, int):
        fans = fans[:n_fans]
    chains = []
    for n in range(1, 17):
        if f"chain_acn{n}" not in d:
            if n > 3:
                break
            continue
        rate = _opt_num(d, f"chain_rate{n}")
        chains.append(
            ParsedChain(
                index=n - 1,
                chips=int(_num(d[f"chain_acn{n}"], f"chain_acn{n}")),
                hashrate_ghs=rate,
                board_temp_c=_opt_num(d, f"temp{n}"),
                chip_temp_c=_opt_num(d, f"temp2_{n}"),
            )
        )
    ideal = _opt_num(d, "total_rateideal")
    if ideal is not None:
        ideal *= _rate_unit_factor(d.get("rate_unit"))
    power = None
    cp = d.get("chain_power")
    if isinstance(cp, str) and cp.strip():
        power = _num(cp.split()[0], "chain_power")
    elapsed = _opt_num(d, "Elapsed")
    t = head.get("Type")
    return ParsedStats(
        miner_type=str(t).split(" (", 1)[0] if t is not None else None,
        elapsed_s=int(elapsed) if elapsed is not None else None,
        expected_ghs=ideal,
        fans_rpm=tuple(fans),
        chains=tuple(chains),
        power_w=power,
    )


def parse_stats_new_api(reply: Mapping[str, Any]) -> ParsedStats:
    """Parse the `new_api` STATS (also the web `stats.cgi` body): `STATS[0].chain[]`.

    Zero temperature readings mean "no sensor" and are left out of the averages (as firmware UIs do).
    """
    st = reply_status(reply)
    if not st.ok:
        raise CgminerCommandError("stats", str(st.severity), st.code, st.msg)
    secs = reply.get("STATS")
    if not isinstance(secs, list) or not secs or not isinstance(secs[0], dict):
        raise CgminerReplyError("new_api reply has no STATS[0]")
    d = secs[0]
    factor = _rate_unit_factor(d.get("rate_unit"))
    chains: list[ParsedChain] = []
    for c in d.get("chain", []) or []:
        if not isinstance(c, dict):
            raise CgminerReplyError("chain entry is not an object")
        pcb = [float(t) for t in c.get("temp_pcb", []) if isinstance(t, int | float) and t]
        chip = [_num(t, "temp_chip") for t in c.get("temp_chip", []) if t not in ("", 0, None)]
        rate = _opt_num(c, "rate_real")
        chains.append(
            ParsedChain(
                index=int(_num(c.get("index", len(chains)), "index")),
                chips=int(_num(c.get("asic_num", 0), "asic_num")),
                hashrate_ghs=rate * factor if rate is not None else None,
                board_temp_c=sum(pcb) / len(pcb) if pcb else None,
                chip_temp_c=sum(chip) / len(chip) if chip else None,
                serial=str(c["sn"]) if "sn" in c else None,
            )
        )
    fans = tuple(int(_num(f, "fan")) for f in d.get("fan", []) or [])
    ideal = _opt_num(d, "rate_ideal")
    elapsed = _opt_num(d, "elapsed")
    info = reply.get("INFO")
    t = info.get("type") if isinstance(info, dict) else None
    watt = _opt_num(d, "watt")
    return ParsedStats(
        miner_type=str(t) if t is not None else None,
        elapsed_s=int(elapsed) if elapsed is not None else None,
        expected_ghs=ideal * factor if ideal is not None else None,
        fans_rpm=fans,
        chains=tuple(chains),
        power_w=watt,
    )


@dataclass(frozen=True, slots=True)
class ParsedDev:
    index: int
    alive: bool
    temperature_c: float | None
    mhs_5s: float | None
    hardware_errors: int


def parse_devs(reply: Mapping[str, Any]) -> tuple[ParsedDev, ...]:
    out: list[ParsedDev] = []
    for d in _section(reply, "DEVS"):
        idx = d.get("ASC", d.get("PGA", d.get("GPU", d.get("ID", len(out)))))
        out.append(
            ParsedDev(
                index=int(_num(idx, "ASC")),
                alive=d.get("Status") == "Alive",
                temperature_c=_opt_num(d, "Temperature"),
                mhs_5s=_opt_num(d, "MHS 5s"),
                hardware_errors=int(_num(d.get("Hardware Errors", 0), "Hardware Errors")),
            )
        )
    return tuple(out)


def iter_sections(reply: Mapping[str, Any]) -> Iterable[str]:
    """The section names of a single-command reply (everything but STATUS and id)."""
    return (k for k in reply if k not in ("STATUS", "id"))

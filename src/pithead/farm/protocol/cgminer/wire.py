"""The cgminer / bmminer RPC API (TCP 4028) on the wire: the request codec and the reply envelope.

What this module is:
- **Requests.** `parse_request` turns the bytes a client sent on one connection into a frozen
  `CgminerRequest` (JSON form `{"command":"summary+pools","parameter":"0","new_api":true}` or plain text
  form `summary|0`), splitting the `cmd1+cmd2` join form into its commands. `encode_request` /
  `encode_text_request` build the same bytes for a client.
- **The reply envelope.** `Status` is one STATUS block (`STATUS` S/I/W/E/F, `When`, `Code`, `Msg`,
  `Description`); `build_reply` / `build_joined_reply` / `error_reply` / `restart_reply` build reply
  objects shaped like cgminer's (section name, `id: 1`); `frame_reply` serialises one and appends the
  NUL terminator real firmware sends before closing the socket; `encode_text_reply` /
  `decode_text_reply` are the plain-text form. On the client side `decode_reply` strips the NUL and
  repairs the known vendor JSON quirks in one commented normaliser, `reply_status` reads the STATUS
  block, `check_status` raises `CgminerCommandError` on E/F and `split_joined_reply` takes a joined
  reply apart.
- The message codes (`Code`, after cgminer's `api.c` table: MSG_POOL 7 "%d Pool(s)", MSG_SUMM 11,
  MSG_INVCMD 14, MSG_VERSION 22, MSG_INVJSON 23, MSG_ACCDENY 45, ..., MSG_MINESTATS 70) and which
  commands are joinable or privileged.

What it is not: the report sections' contents (their values are `sections`, written by `build` and read
by `parse`), no sockets, no clock (the `When` timestamp is passed in), no device behaviour (that is
`pithead.fleetsim`), and no Whatsminer token / LuxOS session handling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


class ReplySeverity(StrEnum):
    """The `STATUS` letter of a cgminer reply (api.c `code_severity`)."""

    SUCCESS = "S"
    INFO = "I"
    WARNING = "W"
    ERROR = "E"
    FATAL = "F"


OK_SEVERITIES = frozenset({ReplySeverity.SUCCESS, ReplySeverity.INFO})
_OK_LETTERS = frozenset(str(s) for s in OK_SEVERITIES)


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

    severity: ReplySeverity
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
    when: int, code: int, msg: str, description: str, severity: ReplySeverity = ReplySeverity.ERROR
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
# Client side: decoding the envelope


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
        return Status(ReplySeverity.SUCCESS, 0, 0, st, "")
    if isinstance(st, list):
        if not st or not isinstance(st[0], dict):
            raise CgminerReplyError("empty STATUS list")
        st = st[0]
    if not isinstance(st, dict):
        raise CgminerReplyError("reply has no STATUS")
    letter = st.get("STATUS")
    try:
        sev = ReplySeverity(str(letter))
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
        blocks = reply["STATUS"]
        # every poll checks three of these: a well-formed success is recognised without building a Status
        if type(blocks) is list and blocks and type(blocks[0]) is dict:
            letter = blocks[0].get("STATUS")
            if type(letter) is str and letter in _OK_LETTERS:
                return reply
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


def iter_sections(reply: Mapping[str, Any]) -> Iterable[str]:
    """The section names of a single-command reply (everything but STATUS and id)."""
    return (k for k in reply if k not in ("STATUS", "id"))

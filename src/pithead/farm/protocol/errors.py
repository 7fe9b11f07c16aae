"""Typed errors of the device wire codecs (cgminer/bmminer API, AxeOS, Antminer CGI).

Each error says which side went wrong: a malformed *request* (what a server receives), a malformed
*reply* (what a client receives), or a reply that is well formed but reports a failure (an `E`/`F`
STATUS). Errors raised while parsing a request carry the cgminer message code a real miner would answer
with, so a server can turn any bad input into a faithful error reply and never crash.

This module is not the place for transport errors (timeouts, refused connections): those belong to the
asyncio shells and the fleet manager's drivers.
"""

from __future__ import annotations


class CodecError(Exception):
    """Base class of every codec error in `pithead.farm.protocol` (the drivers' `DeviceProtocolError` is
    what a driver raises once it has given up on a device's answer)."""


class CgminerRequestError(CodecError):
    """A cgminer API request could not be parsed.

    `code` and `msg` are what cgminer itself answers in this case (e.g. 23 "Invalid JSON", 14 "Invalid
    command"), so the server can reply with `error_reply(exc.code, exc.msg)`.
    """

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"cgminer request error {code}: {msg}")
        self.code = code
        self.msg = msg


class CgminerReplyError(CodecError):
    """A cgminer API reply is not decodable JSON, or lacks the section/field a parser needs."""


class CgminerCommandError(CodecError):
    """A well-formed cgminer reply whose STATUS is not a success (`S`/`I`), e.g. access denied."""

    def __init__(self, command: str, severity: str, code: int | None, msg: str) -> None:
        super().__init__(f"{command}: {severity} {code}: {msg}")
        self.command = command
        self.severity = severity
        self.code = code
        self.msg = msg


class AxeOSPayloadError(CodecError):
    """An AxeOS JSON payload (system info, asic info, settings PATCH) is malformed or out of range."""


class AntminerWebPayloadError(CodecError):
    """A stock Antminer CGI JSON payload is malformed."""

"""Stratum V1's errors, one family for both sides (the pool session and the client session).

What it is:

- `StratumError` and its coded subclasses: a request that failed, carrying the code and message of the
  reply it becomes. Codes follow the de-facto Stratum V1 table every pool and miner agrees on (Miningcore
  StratumError, public-pool eStratumErrorCode, NOMP): 20 other, 21 job not found (stale), 22 duplicate
  share, 23 low difficulty share, 24 unauthorized worker, 25 not subscribed. On the wire a failure is
  always `[code, message, null]`; success always carries `"error": null` (NiceHash breaks without it,
  MC #1709). `rejection` maps the share check's version-neutral verdict (`RejectReason`) to its error.
- `ProtocolViolation`: untrusted input that is not a well-formed Stratum message, whichever side reads it
  (bad framing or JSON, an over-long line, wrong field types, malformed params). It is not a reply by
  itself: the pool answers it with a code-20 error when the message had an id and counts it towards a
  ban; the client cannot go on with a pool that sends it, and its shell drops the connection.
- `StratumClientError` and its subclasses: conditions only a client meets (the session is closed, too
  many requests unanswered, a job's work space used up, a pool URL it cannot use).

What it is not: the share check's reasons (`pithead.stratum.share`, shared with V2) or any wire encoding
(`pithead.stratum.v1.wire` turns a `StratumError` into bytes).
"""

from __future__ import annotations

from typing import ClassVar

from pithead.stratum.share import RejectReason


class StratumError(Exception):
    """A request that failed; `code` and `message` become the reply's `error` array."""

    code: ClassVar[int] = 20
    default_message: ClassVar[str] = "Other/Unknown"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def wire(self) -> list[object]:
        """The JSON-RPC `error` value: [code, message, null]."""
        return [self.code, self.message, None]


class OtherError(StratumError):
    code = 20
    default_message = "Other/Unknown"


class JobNotFound(StratumError):
    code = 21
    default_message = "Job not found"


class DuplicateShare(StratumError):
    code = 22
    default_message = "Duplicate share"


class LowDifficulty(StratumError):
    code = 23
    default_message = "Low difficulty share"


class Unauthorized(StratumError):
    code = 24
    default_message = "Unauthorized worker"


class NotSubscribed(StratumError):
    code = 25
    default_message = "Not subscribed"


_REJECTIONS: dict[RejectReason, tuple[type[StratumError], str | None]] = {
    RejectReason.JOB_NOT_FOUND: (JobNotFound, None),
    RejectReason.STALE: (JobNotFound, "Stale job"),
    RejectReason.BAD_EXTRANONCE2: (OtherError, "Incorrect size of extranonce2"),
    RejectReason.NTIME_TOO_OLD: (OtherError, "ntime out of range (too old)"),
    RejectReason.NTIME_TOO_NEW: (OtherError, "ntime out of range (too new)"),
    RejectReason.VERSION_ROLLING_NOT_NEGOTIATED: (OtherError, "Version rolling was not negotiated"),
    RejectReason.BAD_VERSION_BITS: (OtherError, "Version bits outside the negotiated mask"),
    RejectReason.DUPLICATE: (DuplicateShare, None),
    RejectReason.LOW_DIFFICULTY: (LowDifficulty, None),
}


def rejection(reason: RejectReason) -> StratumError:
    """The V1 error (code and message) a share rejected for `reason` is answered with."""
    error, message = _REJECTIONS[reason]
    return error(message)


class ProtocolViolation(ValueError):
    """Input that is not a well-formed Stratum message (framing, JSON, field types), on either side."""


# --- conditions only a client meets (the miner, a proxy's upstream) ------------------------------------


class StratumClientError(Exception):
    """Base class for the client's own conditions (the pool's bad input is a `ProtocolViolation`)."""


class InvalidPoolUrl(StratumClientError, ValueError):
    """A pool URL that is not ``stratum+tcp://HOST:PORT``."""


class WorkExhausted(StratumClientError):
    """Every (extranonce2, version bits, ntime) combination of a job has been handed out."""


class SessionClosed(StratumClientError):
    """The session is closed; nothing more can be sent or received on it."""


class TooManyPending(StratumClientError):
    """More requests in flight than the client allows (the pool stopped answering)."""

"""Typed Stratum errors: each carries the code and message of the reply it becomes.

Codes follow the de-facto Stratum V1 table every pool and miner agrees on (Miningcore StratumError,
public-pool eStratumErrorCode, NOMP): 20 other, 21 job not found (stale), 22 duplicate share, 23 low
difficulty share, 24 unauthorized worker, 25 not subscribed. On the wire a failure is always
`[code, message, null]`; success always carries `"error": null` (NiceHash breaks without it, MC #1709).

`ProtocolViolation` is different: it is untrusted input that is not a Stratum message at all (bad JSON,
an over-long line, wrong field types). It is not a reply by itself; the session answers it with a code-20
error when the message had an id, and counts it towards a ban.
"""

from __future__ import annotations

from typing import ClassVar


class StratumError(Exception):
    """A request that failed; `code` and `message` become the reply's `error` array."""

    code: ClassVar[int] = 20
    default_message: ClassVar[str] = "Other/Unknown"

    def __init__(self, message: str | None = None, reason: str | None = None) -> None:
        self.message = message or self.default_message
        # a short machine-readable reason used in statistics and ShareEvent.reject_reason
        self.reason = reason or self.default_reason()
        super().__init__(self.message)

    @classmethod
    def default_reason(cls) -> str:
        return "other"

    def wire(self) -> list[object]:
        """The JSON-RPC `error` value: [code, message, null]."""
        return [self.code, self.message, None]


class OtherError(StratumError):
    code = 20
    default_message = "Other/Unknown"


class JobNotFound(StratumError):
    code = 21
    default_message = "Job not found"

    @classmethod
    def default_reason(cls) -> str:
        return "job-not-found"


class DuplicateShare(StratumError):
    code = 22
    default_message = "Duplicate share"

    @classmethod
    def default_reason(cls) -> str:
        return "duplicate"


class LowDifficulty(StratumError):
    code = 23
    default_message = "Low difficulty share"

    @classmethod
    def default_reason(cls) -> str:
        return "low-difficulty"


class Unauthorized(StratumError):
    code = 24
    default_message = "Unauthorized worker"

    @classmethod
    def default_reason(cls) -> str:
        return "unauthorized"


class NotSubscribed(StratumError):
    code = 25
    default_message = "Not subscribed"

    @classmethod
    def default_reason(cls) -> str:
        return "not-subscribed"


class ProtocolViolation(ValueError):
    """Input that is not a well-formed Stratum message (framing, JSON, field types)."""


# --- the client side (miner / proxy upstream) ---------------------------------------------------


class StratumClientError(Exception):
    """Base class for everything the Stratum client raises."""


class PoolProtocolViolation(StratumClientError):
    """The pool sent something that breaks Stratum V1 (bad framing, bad JSON, malformed params)."""


class InvalidPoolUrl(StratumClientError, ValueError):
    """A pool URL that is not ``stratum+tcp://HOST:PORT``."""


class WorkExhausted(StratumClientError):
    """Every (extranonce2, version bits, ntime) combination of a job has been handed out."""


class SessionClosed(StratumClientError):
    """The session is closed; nothing more can be sent on it."""


class TooManyPending(StratumClientError):
    """More requests in flight than the client allows (the pool stopped answering)."""

"""Typed errors of the Stratum V1 client (miner side).

What it is: the exceptions the client's sans-IO session and work builder raise on bad pool input, so the
asyncio shell can drop one connection and fail over instead of crashing. What it is not: the pool's
`StratumError` family with reply codes (that lives in :mod:`pithead.stratum.protocol`).
"""

from __future__ import annotations


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

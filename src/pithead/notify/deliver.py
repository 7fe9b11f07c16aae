"""One destination: an apprise URL, and what is sent to it (`NoticeMessage`) and what it answered (`Outcome`).

`Destination(url)` checks the URL with apprise at once (a URL apprise cannot use is a `DestinationError`,
a config error naming the route, never the secret in the URL) and keeps a `label` fit for logs and metrics
(apprise's privacy form: tokens and passwords elided). `send` is blocking, one attempt bounded by
`timeout_s` (apprise's own call deadline): the notifier runs it in the destination's own thread, so a
destination that hangs holds only itself. Apprise's log lines of the attempt are its answer.

Apprise logs every failed attempt itself, at WARNING; the notifier says it once per destination per
interval instead (with apprise's words), so apprise's logger is kept from the root logger here.

What it is not: retries, queues or routing (`notifier`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import apprise

from pithead import config as config_mod
from pithead.events import NoticeSeverity
from pithead.notify.dedup import Admitted

DELIVERY_TIMEOUT_S = 15.0
"""How long one attempt to one destination may take: a chat API or mail relay answers within seconds, and
apprise's own connect and read timeouts (4 s each for HTTP) fit inside; anything longer is a failure."""
MAX_ANSWER_CHARS = 300
"""Longest answer kept from a destination (apprise's log lines): enough for an HTTP status and its reason."""

_TYPES = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
          "critical": apprise.NotifyType.FAILURE}


class DestinationError(config_mod.ConfigError):
    """An apprise URL apprise cannot use (unknown scheme, a missing token, a bad address)."""


@dataclass(frozen=True, slots=True)
class NoticeMessage:
    title: str
    body: str
    severity: NoticeSeverity


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    answer: str  # what the destination (or apprise for it) said


def utc_text(t: float) -> str:
    """A UNIX time as a phone shows it to anyone anywhere: UTC, to the second."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(item: Admitted) -> NoticeMessage:
    """The message for a notice: its title; its body, what was folded into it, and a line saying what it is."""
    n = item.notice
    body = n.body.rstrip()
    if item.folded:
        since = f" since {utc_text(item.folded_since)}" if item.folded_since is not None else ""
        body += f"\n\n({item.folded} more like this{since} were folded into this message.)"
    body += f"\n\n{n.kind} · {n.severity} · {utc_text(n.time)}"
    return NoticeMessage(n.title, body, n.severity)


def quiet_apprise() -> None:
    """Keep apprise's own log lines (one per failed attempt) out of the operation's log: the notifier logs
    failures itself, rate-limited. A NullHandler, so Python's last-resort handler does not print them."""
    logger = logging.getLogger(apprise.LOGGER_NAME)
    if logger.propagate:
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.INFO)  # a destination's "sent" is its answer too (`pithead notify test`)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://…"


class Destination:
    """One apprise URL, checked now; `send` delivers one message to it (blocking)."""

    def __init__(self, url: str, where: str = "notify", timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        quiet_apprise()
        self.timeout_s = timeout_s
        self._apprise = apprise.Apprise()
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = self._apprise.add(url)
        if not ok or len(self._apprise) != 1:
            # apprise's words, less the URL itself (it may hold a token or a password)
            said = str(captured.getvalue()).replace(url, _scheme(url)).replace(url.split("://", 1)[-1], "…")
            why = " ".join(said.split())[-MAX_ANSWER_CHARS:] or "not an apprise URL"
            raise DestinationError(f"{where}: apprise cannot use the URL {_scheme(url)} ({why})")
        # apprise's privacy form (secrets elided), without its query of defaults
        self.label: str = str(self._apprise[0].url(privacy=True)).split("?", 1)[0]

    def send(self, message: NoticeMessage) -> Outcome:
        """One attempt, bounded by `timeout_s`; never raises (a failure is an `Outcome`)."""
        try:
            result = self._apprise.notify(body=message.body, title=message.title,
                                          notify_type=_TYPES[message.severity], timeout=self.timeout_s,
                                          log_level=logging.INFO)
        except Exception as exc:  # a plugin's bug must not end the destination's thread
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:MAX_ANSWER_CHARS])
        words = [entry.message for service in result for entry in service.logs()]
        answer = " ".join(" ".join(words).split())[:MAX_ANSWER_CHARS] or str(result.status.name).lower()
        return Outcome(bool(result), answer)

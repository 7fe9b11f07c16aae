"""Deduplication: the same notice (kind and key) again within a window is folded, not sent again.

The first notice of a kind and key is sent. Repeats within `window_s` of it are folded (counted, not
sent). The first repeat after the window is sent, saying how many were folded into it, and opens a new
window. So a node that flaps every few seconds costs one message per window, not one per flap, and the
operator still learns how often it happened. Time is passed in; nothing here reads the clock.

What it is not: routing or delivery (`routing`, `notifier`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pithead.events import Notice

DEDUP_MAX_KEYS = 10_000
"""Conditions remembered at once; beyond this the least recently sent is forgotten (its next notice is sent
as new). A flood of distinct keys (every worker of a large farm gone quiet at once) must cost bounded
memory; 10,000 small entries are a few MB at most."""


@dataclass(slots=True)
class _Seen:
    sent_at: float  # when the last notice of this kind and key was sent: the window runs from here
    folded: int = 0  # repeats folded since then
    first_folded_at: float | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A notice to send: `folded` repeats of it (the first at `folded_since`) were folded since the last."""

    notice: Notice
    folded: int = 0
    folded_since: float | None = None


class Deduplicator:
    def __init__(self, window_s: float, max_keys: int = DEDUP_MAX_KEYS) -> None:
        if not window_s > 0:
            raise ValueError("the dedup window must be positive")
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self.folded = 0  # notices folded in all

    def admit(self, notice: Notice, now: float) -> Admitted | None:
        """The notice to send (with what was folded into it), or None when it is a repeat to fold."""
        key = (notice.kind, notice.key)
        seen = self._seen.get(key)
        if seen is not None and now - seen.sent_at < self.window_s:
            seen.folded += 1
            if seen.first_folded_at is None:
                seen.first_folded_at = now
            self.folded += 1
            return None
        admitted = Admitted(notice) if seen is None else Admitted(notice, seen.folded, seen.first_folded_at)
        self._seen[key] = _Seen(now)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return admitted

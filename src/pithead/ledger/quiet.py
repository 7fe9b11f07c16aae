"""Workers gone quiet: a worker that had shares and then none for a while, told once, per address.

`QuietWatcher.observe(rows, now)` looks at the ledger's worker rows (their last accepted share): a worker
with a share in the last `quiet_s` is watched; a watched worker whose last share is now `quiet_s` old or
more is quiet, and the quiet workers of one address make one notice (`notices.workers_quiet`). A quiet
worker is told of once, and watched again once it has a share again. Only workers this watcher saw active
are ever told of: a rig retired last month is not news at every start.

Pure: the rows and the time come in, notices go out; the ledger's service reads the rows (in a worker
thread) every `check_interval(quiet_s)` and hands the notices to its `NoticeSink`.

What it is not: the farm's NO_SHARES alert (a machine that says it hashes while the pool sees nothing,
`pithead.farm.alerts`), or hashrate statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

from pithead.events import Notice
from pithead.ledger.notices import workers_quiet
from pithead.ledger.store.records import WorkerRow

QUIET_CHECK_MAX_S = 60.0
"""Longest time between two looks: a quiet worker is told of within this long of reaching `quiet_s`."""
QUIET_CHECK_MIN_S = 1.0
"""Shortest time between two looks (each reads every worker row), whatever a tiny `quiet_s` asks."""
MAX_WATCHED = 1_000_000
"""Workers watched at once; beyond this new ones wait until some go quiet (a name is tens of bytes, so
this bounds the watcher's memory to tens of MB whatever miners call themselves)."""


def check_interval(quiet_s: float) -> float:
    """How often to look: a tenth of the quiet time, within QUIET_CHECK_MIN_S..QUIET_CHECK_MAX_S."""
    return min(QUIET_CHECK_MAX_S, max(QUIET_CHECK_MIN_S, quiet_s / 10))


class QuietWatcher:
    def __init__(self, quiet_s: float) -> None:
        if not quiet_s > 0:
            raise ValueError("the quiet time must be positive")
        self.quiet_s = quiet_s
        self._watched: set[str] = set()

    def watching(self, worker: str) -> bool:
        """Whether `worker` was seen active and is not yet told of as quiet."""
        return worker in self._watched

    def observe(self, rows: Iterable[WorkerRow], now: float) -> list[Notice]:
        """The notices of the workers that went quiet since the last look, one per address."""
        quiet: dict[str, list[WorkerRow]] = {}
        for row in rows:
            if row.last_share_time is None:
                continue
            if now - row.last_share_time < self.quiet_s:
                if len(self._watched) < MAX_WATCHED:
                    self._watched.add(row.worker)
            elif row.worker in self._watched:
                self._watched.discard(row.worker)  # told once; watched again after its next share
                quiet.setdefault(row.address, []).append(row)
        return [workers_quiet(address, found, self.quiet_s, now) for address, found in sorted(quiet.items())]

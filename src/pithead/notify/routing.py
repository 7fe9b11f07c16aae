"""Which notices go where: `[[notify.routes]]` as values, and the pure matching of a notice against them.

A route names notice kinds (`"block.found"`), groups (`"payout.*"`) or everything (`"*"`), the least
severity it passes on (info < warning < critical) and its destinations (apprise URLs). A notice goes to the
union of the destinations of every route it matches, each destination once.

What it is not: delivery (`deliver`, `notifier`), or deciding what a part raises.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from pithead import config as config_mod
from pithead.events import Notice, NoticeKind, NoticeSeverity

KINDS: tuple[str, ...] = get_args(NoticeKind)
"""Every notice kind a part can raise, in `pithead.events`' order."""
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(get_args(NoticeSeverity))}
"""info < warning < critical."""


class RouteError(config_mod.ConfigError):
    """A route that names no kind there is (a typo in `kinds`): an operator's config error."""


@dataclass(frozen=True, slots=True)
class NoticeRoute:
    """One `[[notify.routes]]`: notices of `kinds` (patterns) at or above `min_severity` go to `urls`."""

    urls: tuple[str, ...]
    kinds: tuple[str, ...] = ("*",)
    min_severity: NoticeSeverity = "info"

    def matches(self, notice: Notice) -> bool:
        return SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[self.min_severity] and any(
            fnmatch.fnmatchcase(notice.kind, pattern) for pattern in self.kinds
        )


def check_patterns(kinds: Sequence[str], where: str) -> None:
    """Every pattern must name at least one kind there is; raises `RouteError` naming the first that
    does not, with the nearest kind."""
    for pattern in kinds:
        if not any(fnmatch.fnmatchcase(kind, pattern) for kind in KINDS):
            close = difflib.get_close_matches(pattern, [*KINDS, *sorted({k.split(".")[0] + ".*" for k in KINDS})],
                                              n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (kinds: {', '.join(KINDS)})"
            raise RouteError(f"{where}.kinds: {pattern!r} names no notice kind{hint}")


def routes_from_config(cfg: config_mod.NotifyConfig) -> tuple[NoticeRoute, ...]:
    """The routes of `[notify]`, each pattern checked against the kinds there are."""
    config_mod.validate(cfg)
    out = []
    for i, r in enumerate(cfg.routes):
        check_patterns(r.kinds, f"notify.routes[{i}]")
        out.append(NoticeRoute(tuple(r.urls), tuple(r.kinds), r.min_severity))
    return tuple(out)


def destinations_for(notice: Notice, routes: Sequence[NoticeRoute]) -> list[str]:
    """The URLs `notice` goes to: of every route it matches, each URL once, in the order first named."""
    seen: dict[str, None] = {}
    for route in routes:
        if route.matches(notice):
            for url in route.urls:
                seen.setdefault(url, None)
    return list(seen)

"""Alerts a 500,000-machine site can read: groups, damping, silences, and partitions of the evaluation.

Pure policy over what `pithead.farm.alerts.evaluate` says per machine; `AlertManager` applies it.

- **Groups.** When at least `group_min` machines of one rack are in the same trouble (a kind: offline,
  overheat, ...) at once, that is ONE alert for the rack, "rack:SITE/RACK", with its count ("38 of 40
  machines offline"), not one per machine; when every rack of a site is so grouped for a kind (the site
  went dark), the rack alerts give way to one for the site, "site:SITE". A machine that already had its
  own alert open keeps it (it resolves on its own), so grouping never resolves anything by itself. The
  group alert's count follows its machines while it is open (no new notification for a count change).
- **Damping** (flapping): a condition must hold `open_after_s` before its alert opens (OFFLINE has its
  own duration already, `offline_after_s`, so it opens at once), and be gone `clear_after_s` before the
  alert resolves. A machine that answers every other poll keeps one open alert instead of opening and
  resolving it every minute. The damper remembers since when in memory: a restarted evaluator waits once
  more, it never opens early.
- **Silences.** A silence (`FarmStore.add_silence`: a machine, "rack:SITE/RACK", "site:SITE" or "*", a kind
  or every kind, until a time) keeps the changes it covers in the store and on the page but out of the
  webhook and the notices; acknowledging (`FarmStore.ack_alert`) only says someone is on it.
- **Partitions.** A central evaluating 500,000 machines splits the work by rack over N evaluators
  (`rack_partition`): each judges the racks whose stable hash falls in its partition, so a rack is always
  judged whole by one evaluator (its group alert is right), and the partitions never touch each other's
  alerts. A site spread over several partitions is grouped per rack, never as a site.

This module does no I/O and keeps no state except the damper's clocks.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

# The kind whose condition has a duration of its own (it opens at once when it holds).
SELF_TIMED_KINDS = frozenset({"offline"})
# How an operator reads each kind in a group alert ("38 of 40 machines offline").
_WORDS = {"offline": "offline", "overheat": "overheating", "fan_failure": "with a fan failure",
          "board_missing": "missing a hashboard", "low_hashrate": "below their expected hashrate",
          "no_shares": "hashing with no shares at the pool"}
# Machines a group alert's message names before "and N more".
GROUP_LISTED = 5


def rack_key(site: str, rack: str) -> str:
    return f"rack:{site}/{rack}"


def site_key(site: str) -> str:
    return f"site:{site}"


def rack_partition(site: str, rack: str, partitions: int) -> int:
    """Which of `partitions` evaluators judges this rack: a stable hash (the same in every process and
    every run, unlike Python's `hash`)."""
    return zlib.crc32(f"{site}\0{rack}".encode()) % partitions


@dataclass(frozen=True, slots=True)
class Wanted:
    """An alert that should be open: a machine's (key = its id) or a group's (key = rack:/site:)."""

    key: str
    kind: str
    severity: str
    message: str
    machines: int = 1


@dataclass(frozen=True, slots=True)
class Placement:
    site: str
    rack: str


def group(conditions: Sequence[Wanted], where: Mapping[str, Placement], rack_sizes: Mapping[tuple[str, str], int],
          group_min: int, open_keys: Collection[tuple[str, str]] = (), sites: bool = True) -> list[Wanted]:
    """Fold machine conditions into rack and site alerts (see the module docstring). `where`: machine id ->
    its rack; `rack_sizes`: machines judged per (site, rack); `open_keys`: (key, kind) of open alerts (a
    machine's own open alert stays wanted when its rack is grouped); `sites`: False when only part of the
    fleet is judged (a partition cannot tell that a whole site is dark). `group_min` < 2: no grouping."""
    if group_min < 2:
        return list(conditions)
    by_rack: dict[tuple[str, str, str], list[Wanted]] = {}
    for c in conditions:
        p = where.get(c.key)
        if p is not None:
            by_rack.setdefault((p.site, p.rack, c.kind), []).append(c)
    grouped_racks = {k: v for k, v in by_rack.items() if len(v) >= group_min}
    if not grouped_racks:
        return list(conditions)
    racks_of_site = Counter(site for site, _rack in rack_sizes)
    grouped_per_site = Counter((site, kind) for site, _rack, kind in grouped_racks)
    whole_sites = {(site, kind) for (site, kind), n in grouped_per_site.items()
                   if sites and n >= 2 and n == racks_of_site[site]}
    out: list[Wanted] = []
    members: set[str] = set()
    for (site, rack, kind), items in sorted(grouped_racks.items()):
        members.update(c.key for c in items)
        if (site, kind) not in whole_sites:
            out.append(_group_alert(rack_key(site, rack), f"rack {rack or '-'} at {site or '-'}", kind, items,
                                    rack_sizes.get((site, rack), len(items))))
    for site, kind in sorted(whole_sites):
        items = [c for (s, _r, k), v in grouped_racks.items() if s == site and k == kind for c in v]
        size = sum(n for (s, _r), n in rack_sizes.items() if s == site)
        out.append(_group_alert(site_key(site), f"site {site or '-'}", kind, items, size))
    for c in conditions:
        if c.key not in members or (c.key, c.kind) in open_keys:
            out.append(c)
    return out


def _group_alert(key: str, where: str, kind: str, items: Sequence[Wanted], size: int) -> Wanted:
    items = sorted(items, key=lambda c: c.key)
    severity = "critical" if any(c.severity == "critical" for c in items) else items[0].severity
    named = ", ".join(c.key for c in items[:GROUP_LISTED])
    more = f" and {len(items) - GROUP_LISTED} more" if len(items) > GROUP_LISTED else ""
    text = f"{len(items)} of {size} machines of {where} {_WORDS.get(kind, kind)}: {named}{more}"
    return Wanted(key, kind, severity, text, len(items))


class Damper:
    """Since when each condition has held, and since when each open alert's condition has been gone."""

    def __init__(self, open_after_s: float = 0.0, clear_after_s: float = 0.0) -> None:
        self.open_after_s = open_after_s
        self.clear_after_s = clear_after_s
        self._holding: dict[tuple[str, str], float] = {}
        self._gone: dict[tuple[str, str], float] = {}

    def to_open(self, wanted: Iterable[tuple[str, str]], judged: Collection[str] | None, now: float) -> set[tuple[str, str]]:
        """Of the conditions holding now, those that have held long enough to open. `judged`: the keys
        this evaluation looked at (None: all): the clocks of the others are left alone."""
        wanted = set(wanted)
        for k in wanted:
            self._holding.setdefault(k, now)
            self._gone.pop(k, None)
        for k in [k for k in self._holding if k not in wanted and (judged is None or k[0] in judged)]:
            del self._holding[k]
        return {k for k in wanted
                if k[1] in SELF_TIMED_KINDS or now - self._holding[k] >= self.open_after_s}

    def to_resolve(self, gone: Iterable[tuple[str, str]], now: float) -> set[tuple[str, str]]:
        """Of the open alerts whose condition is gone now, those gone long enough to resolve."""
        out = set()
        for k in gone:
            since = self._gone.setdefault(k, now)
            if now - since >= self.clear_after_s:
                out.add(k)
                del self._gone[k]
        return out


def silenced(key: str, kind: str, place: Placement | None, silences: Iterable[tuple[str, str | None]]) -> bool:
    """Whether an alert change of `key` (a machine id, rack:/site: key) and `kind` is covered by one of
    `silences` ((target, kind or None)). A machine is covered by its rack's and its site's silences, a
    rack's alert by its site's, and everything by "*"."""
    targets = {key, "*"}
    if place is not None:
        targets |= {rack_key(place.site, place.rack), site_key(place.site)}
    elif key.startswith("rack:"):
        targets.add(site_key(key[len("rack:"):].rpartition("/")[0]))
    return any(t in targets and (k is None or k == kind) for t, k in silences)

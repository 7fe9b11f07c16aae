"""Which node the pool takes its work from (pure): the chain first, priority only between equals.

What it is: `choose_leader`, a pure function from what each node last said (`Candidate`: healthy or
not, and the `ChainTip` its template builds on) and which node leads now, to the new leader and, for
every node, the reason it leads or not (`Leadership`). `FailoverSource` calls it on every change.

The rule, in order:

1. Only a healthy node with a template can lead.
2. The most chain work wins. Work is Core's `chainwork` of the tip (`getblockheader`); when some node
   did not say (a node that is not Core's dialect), every node is compared by tip height instead. A node
   whose tip has less work than another healthy node's is *behind* and never leads, whatever its
   `priority`: blocks found on its work would land on a chain the best chain does not contain.
3. Between nodes on the *same tip* (same best block hash), the lowest `priority` value leads (ties: the
   order given). That is how a preferred node that was down leads again: once it has caught up, i.e. its
   best block is the leader's best block. Equal height is not caught up: a node restarted behind and
   not peered (pithead's embedded nodes are not) only learns the blocks the pool submits to it, and it
   refuses each one whose parent it lacks, so it may sit on another branch forever.
4. Between *different tips of equal work* (two forks, neither ahead), the current leader keeps leading:
   switching would only move the pool's work from one side of the race to the other (no flapping). When
   the current leader is not among them, the lowest `priority` value picks the tip.

What it is not: it asks no node anything (the `NodeSource`s learn the tips), keeps no state between calls
(the caller passes the current leader back in), and does not help a node behind to catch up: nodes are
peered by their own configuration, not by the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pithead.chain.hashes import display_hex

HASH_SHOWN = 16  # hex digits of a tip's hash shown in a reason: enough to tell forks apart in a log line


@dataclass(frozen=True, slots=True)
class ChainTip:
    """Where one node's best chain ends, as its latest template says."""

    block_hash: bytes  # internal byte order: the template's previous-block hash
    height: int  # that block's height (the template's height - 1)
    chainwork: int | None  # Core's `chainwork` of that block; None when the node did not say


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the leader choice knows of one node."""

    name: str
    priority: int
    healthy: bool
    tip: ChainTip | None  # None: no template from this node yet
    error: str | None = None  # why it is down, when it is


@dataclass(frozen=True, slots=True)
class Leadership:
    """The outcome: which candidate leads (an index into the candidates, None when none can) and, for
    every candidate in order, why it leads or not."""

    leader: int | None
    reasons: tuple[str, ...]
    measure: str  # "chain work" or "height": what the candidates were compared by


def _short(tip: ChainTip) -> str:
    return f"{tip.height} {display_hex(tip.block_hash)[:HASH_SHOWN]}"


def choose_leader(candidates: Sequence[Candidate], current: int | None) -> Leadership:
    """The leader among `candidates` (equal priorities: the order given) given the `current` one (an
    index, or None): see the module's docstring for the rule."""
    eligible = [i for i, c in enumerate(candidates) if c.healthy and c.tip is not None]
    reasons = ["" for _ in candidates]
    for i, c in enumerate(candidates):
        if not c.healthy:
            reasons[i] = f"down: {c.error}" if c.error else "down"
        elif c.tip is None:
            reasons[i] = "no template yet"
    if not eligible:
        return Leadership(None, tuple(reasons), "chain work")

    tips: dict[int, ChainTip] = {}
    for i in eligible:
        tip = candidates[i].tip
        assert tip is not None
        tips[i] = tip
    by_work = all(t.chainwork is not None for t in tips.values())
    measure = "chain work" if by_work else "height"

    def amount(i: int) -> int:
        t = tips[i]
        return t.chainwork if by_work and t.chainwork is not None else t.height

    best = max(amount(i) for i in eligible)
    top = [i for i in eligible if amount(i) == best]

    def preference(i: int) -> tuple[int, int]:
        return candidates[i].priority, i

    kept = current is not None and current in top
    # equal-work forks: the current leader's tip stays; else the most preferred node's tip is followed
    followed = tips[current if kept and current is not None else min(top, key=preference)].block_hash
    on_tip = [i for i in top if tips[i].block_hash == followed]
    leader = min(on_tip, key=preference)
    lead = candidates[leader]
    lead_tip = tips[leader]

    reasons[leader] = f"leads: most {measure}, tip {_short(lead_tip)}"
    if len({tips[i].block_hash for i in top}) > 1:
        reasons[leader] += (
            "; equal work on another fork does not move it (no flapping)"
            if kept
            else "; equal work on another fork, this node comes first by priority"
        )
    for i in eligible:
        if i == leader:
            continue
        c, tip = candidates[i], tips[i]
        if i not in top:
            reasons[i] = f"behind: less {measure} than {lead.name} (tip {_short(tip)} vs {_short(lead_tip)})"
        elif tip.block_hash == followed:
            reasons[i] = (
                f"standby: same tip as {lead.name}, which comes first "
                f"(priority {c.priority} vs {lead.priority})"
            )
        else:
            reasons[i] = (
                f"standby: equal {measure} on another fork (tip {_short(tip)} vs {_short(lead_tip)}); "
                f"{lead.name} keeps leading"
            )
    return Leadership(leader, tuple(reasons), measure)

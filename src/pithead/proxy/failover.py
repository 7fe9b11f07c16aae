"""Which upstream pool the machines mine on: each upstream's health, failover, failback with hysteresis, and
the operator's switch and drain (pure: time is a parameter).

Health (`UpstreamHealth`, fed by the asyncio shell from what the pool does): an upstream is healthy when at
least one of its connections is subscribed, authorized and has a job, its last new job is less than
`stale_after` old (pools send one every 30-120 s; a pool that stopped sending work is not mining), no share
sent to it has waited more than `answer_timeout` for its answer (a pool that stopped answering), fewer than
MAX_REJECT_RUN of its answers in a row were rejections (a pool refusing all our work: a wrong account, a
dialect we cannot forward), and it was not refused outright (`refused`: say an extranonce too small for the
machines, `pithead.proxy.extranonce`). ckpool picks "the highest priority server alive" the same way
(generator.c:283-320); a run of rejects as a trigger is what the SV2 translator's fallback lacks.

Choice (`Failover.evaluate`): the machines stay on the active upstream while it is healthy; when it is not,
they move at once to the healthiest by priority (lowest `priority`, then config order). A better upstream
takes them back only once it has been healthy for `failback_after` seconds without a break (hysteresis: a
flapping primary does not drag the farm along). At start, during `start_grace`, a lower-priority upstream
is not chosen while a better one may still come up (so a fast backup does not take the farm for a whole
`failback_after` just because the primary was 50 ms slower to connect). Nothing healthy: the machines stay
where they are (their jobs keep them hashing; shares may be stale), and the state says so.

The operator (`pin`, `unpin`, `drain`, `resume`): a pinned upstream is treated as the best (it takes the
machines as soon as it is healthy, no hysteresis: the operator asked); a drained one is never chosen (its
in-flight shares are still answered: the shell keeps its connections). Nothing is ever marked failed for
good: an upstream that recovers is eligible again (the SV2 translator's `tried_or_flagged` bug, sv2-apps
#673, is what that avoids).

What it is not: sockets, timers or the machines (the shell acts on `PoolChoice`).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_REJECT_RUN = 50
"""Rejections in a row that make an upstream unhealthy: stale shares around a new block come a few at a
time; fifty with no acceptance means the pool refuses this farm's work."""


class UpstreamState(enum.StrEnum):
    ACTIVE = "active"  # the machines mine on it
    STANDBY = "standby"  # healthy, waiting
    DRAINING = "draining"  # taken out by the operator
    UNHEALTHY = "unhealthy"  # connected or not, not fit to mine on (see `why`)


RECENT_ERRORS = 8
"""Errors kept per upstream for the status (its API and `pithead proxy status`)."""

@dataclass
class UpstreamHealth:
    """What the shell knows of one upstream, updated as its connections report."""

    name: str
    priority: int
    order: int  # position in the config, the tie-break
    ready_connections: int = 0  # subscribed, authorized, with a job
    last_job_at: float | None = None
    oldest_unanswered_at: float | None = None  # when the longest-waiting share in flight was sent
    reject_run: int = 0
    refused: str | None = None  # why this upstream cannot be used at all, until it reconnects
    last_error: str | None = None  # the last thing that went wrong (for the operator)
    # the last few things that went wrong, oldest first (a retry's error must not hide the first cause)
    recent_errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=RECENT_ERRORS))
    healthy_since: float | None = None  # when it last became healthy (None: not healthy now)

    def problem(self, now: float, stale_after: float, answer_timeout: float) -> str | None:
        """Why it is not healthy now (None: healthy)."""
        if self.refused is not None:
            return self.refused
        if self.ready_connections == 0:
            return self.last_error or "not connected"
        if self.last_job_at is None or now - self.last_job_at > stale_after:
            return f"no new job for more than {stale_after:.0f} s"
        if self.oldest_unanswered_at is not None and now - self.oldest_unanswered_at > answer_timeout:
            return f"a share unanswered for more than {answer_timeout:.0f} s"
        if self.reject_run >= MAX_REJECT_RUN:
            return f"{self.reject_run} shares rejected in a row"
        return None


@dataclass(frozen=True, slots=True)
class PoolChoice:
    active: str | None  # the upstream the machines mine on now
    previous: str | None  # the one before, when this evaluation switched (else None)
    reason: str  # why it switched, or why it stays


class Failover:
    """The choice of the active upstream (see the module docstring)."""

    def __init__(self, upstreams: Sequence[UpstreamHealth], *, failback_after: float, stale_after: float,
                 answer_timeout: float, start_grace: float, started_at: float) -> None:
        if not upstreams:
            raise ValueError("the proxy needs at least one upstream")
        self.upstreams = {u.name: u for u in upstreams}
        self.failback_after = failback_after
        self.stale_after = stale_after
        self.answer_timeout = answer_timeout
        self.start_grace = start_grace
        self.started_at = started_at
        self.active: str | None = None
        self.pinned: str | None = None
        self.draining: set[str] = set()
        self.switches = 0
        self.last_switch_at: float | None = None
        self.last_reason = "starting"

    # --- the operator ------------------------------------------------------------------------------------
    def pin(self, name: str) -> None:
        self._known(name)
        self.pinned = name
        self.draining.discard(name)

    def unpin(self) -> None:
        self.pinned = None

    def drain(self, name: str) -> None:
        self._known(name)
        self.draining.add(name)
        if self.pinned == name:
            self.pinned = None

    def resume(self, name: str) -> None:
        self._known(name)
        self.draining.discard(name)

    def _known(self, name: str) -> None:
        if name not in self.upstreams:
            raise KeyError(f"no upstream named {name!r} (known: {', '.join(self.upstreams)})")

    # --- health ------------------------------------------------------------------------------------------
    def problem(self, name: str, now: float) -> str | None:
        return self.upstreams[name].problem(now, self.stale_after, self.answer_timeout)

    def state(self, name: str, now: float) -> UpstreamState:
        if name in self.draining:
            return UpstreamState.DRAINING
        if self.problem(name, now) is not None:
            return UpstreamState.UNHEALTHY
        return UpstreamState.ACTIVE if name == self.active else UpstreamState.STANDBY

    def _rank(self, u: UpstreamHealth) -> tuple[int, int, int]:
        return (0 if u.name == self.pinned else 1, u.priority, u.order)

    def _update_health(self, now: float) -> None:
        for u in self.upstreams.values():
            healthy = self.problem(u.name, now) is None
            if healthy and u.healthy_since is None:
                u.healthy_since = now
            elif not healthy:
                u.healthy_since = None

    # --- the choice --------------------------------------------------------------------------------------
    def evaluate(self, now: float) -> PoolChoice:
        """Look at every upstream now; switch when the rules say so. Call it whenever health may have
        changed (a connection up or down, a job, an answer) and once a second for the timeouts."""
        self._update_health(now)
        eligible = sorted((u for u in self.upstreams.values()
                           if u.healthy_since is not None and u.name not in self.draining), key=self._rank)
        current = self.upstreams.get(self.active) if self.active is not None else None
        current_ok = current is not None and current.healthy_since is not None and current.name not in self.draining
        if not eligible:
            self.last_reason = "no healthy upstream: the machines keep their last work"
            return PoolChoice(self.active, None, self.last_reason)
        best = eligible[0]
        if current is None:
            if now - self.started_at < self.start_grace and self._better_may_come(best):
                self.last_reason = "waiting for a better upstream to come up"
                return PoolChoice(None, None, self.last_reason)
            return self._switch(best.name, now, f"{best.name} is up")
        if not current_ok:
            why = "drained" if current.name in self.draining else (self.problem(current.name, now) or "unhealthy")
            return self._switch(best.name, now, f"{current.name}: {why}")
        if best.name != current.name and self._rank(best) < self._rank(current):
            assert best.healthy_since is not None
            if best.name == self.pinned:
                return self._switch(best.name, now, f"{best.name} chosen by the operator")
            if now - best.healthy_since >= self.failback_after:
                return self._switch(best.name, now, f"{best.name} healthy for {self.failback_after:.0f} s")
            self.last_reason = f"{best.name} is back, waiting {self.failback_after:.0f} s before returning"
            return PoolChoice(self.active, None, self.last_reason)
        self.last_reason = f"{current.name} is healthy"
        return PoolChoice(self.active, None, self.last_reason)

    def _better_may_come(self, best: UpstreamHealth) -> bool:
        """At start: an upstream ranked above `best` that has not failed yet may still come up."""
        return any(self._rank(u) < self._rank(best) and u.refused is None and u.last_error is None
                   and u.name not in self.draining for u in self.upstreams.values())

    def _switch(self, name: str, now: float, reason: str) -> PoolChoice:
        previous = self.active
        self.active = name
        self.switches += previous is not None
        self.last_switch_at = now
        self.last_reason = reason
        if previous is not None:
            # the one left behind starts its reject count afresh: it may be tried again once healthy
            self.upstreams[previous].reject_run = 0
        return PoolChoice(name, previous, reason)

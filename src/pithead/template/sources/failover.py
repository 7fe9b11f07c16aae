"""Several nodes, one template stream (`FailoverSource`), and the source for `[pool] nodes`.

`FailoverSource` runs several `NodeSource`s and hands out the templates of the leader, which follows the
chain (`leader.choose_leader`): among the healthy nodes, the one whose tip has the most chain work leads;
`priority` (lowest value first, ties: the order given) only decides between nodes on the same tip, and
between equal-work forks the current leader stays. So a node that is behind is never the source of work,
whatever its priority, and the preferred node leads again only once its best block is the leader's.
When the leader fails, the next node's template is handed out at once. Every change of leader is logged
with its reason, and `status()` says why each node leads or not. Given a `NoticeSink`, it tells an operator
of a node that stops answering (node.down, also for a node down at the start), one that answers again
(node.back), and a failover (node.failover: the leader went down and another node leads), each keyed by
the node's name (its URL), so the notifier folds a flapping node's repeats.

Solved blocks are submitted to every node at once, and each answer is judged against the best chain:
after the submissions every node is asked for its tip, the leader is chosen again, and
`SubmitResult.best_chain` says whether that node is on the leader's tip. A block that only nodes off the
best chain accepted is on a stale fork (`interface.judge_submission`), not found. `source_from_config`
builds one over the configured nodes.

Not here: the rule itself (`leader`, pure), talking to one node (`node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pithead.bitcoind.rpc import NodeError, RpcClient
from pithead.chain.hashes import display_hex
from pithead.events import Notice, NoticeSeverity, NoticeSink
from pithead.template.block_template import BlockTemplate, same_work
from pithead.template.interface import SubmitResult, TemplateUpdate
from pithead.template.sources.fanout import UpdateFanout
from pithead.template.sources.leader import Leadership, choose_leader
from pithead.template.sources.node import REFRESH_INTERVAL_S, NodeSource

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0  # how long FailoverSource.start waits for a first template from any node


class NoNodeError(NodeError):
    """No node gave a template (each node's reason is in the message)."""


class FailoverSource:
    """Several nodes, one template stream: the healthy node with the most chain work leads; priority
    decides between nodes on the same tip."""

    def __init__(
        self,
        sources: Sequence[NodeSource],
        *,
        start_timeout: float = START_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        notices: NoticeSink | None = None,
    ) -> None:
        if not sources:
            raise ValueError("FailoverSource needs at least one node")
        self.sources = sorted(sources, key=lambda s: s.priority)  # stable: ties keep the order given
        self.start_timeout = start_timeout
        self.clock = clock
        self.active: NodeSource | None = None
        self._leadership: Leadership | None = None
        self._emitted: BlockTemplate | None = None
        self._fanout = UpdateFanout()
        self._ready = asyncio.Event()
        self.notices = notices
        self._health_told: dict[str, bool] = {}  # node name -> the health last told (or seen at the start)
        self._stopping = False  # nodes stopped by us are not news

    async def start(self) -> None:
        # Every node's first answer is in before the first choice of leader, so a node that answers
        # first but is behind never hands out work, not even for a moment.
        await asyncio.gather(*(s.start(wait=False) for s in self.sources))
        for s in self.sources:
            s.listeners.append(self._on_change)
        self._on_change(None)
        try:
            await asyncio.wait_for(self._ready.wait(), self.start_timeout)
        except TimeoutError:
            reasons = "; ".join(
                f"{s.name}: {s.last_error or s.rejected or 'no template'}" for s in self.sources
            )
            await self.stop()
            raise NoNodeError(
                f"no node gave a template within {self.start_timeout:g} s ({reasons})"
            ) from None

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(s.stop() for s in self.sources), return_exceptions=True)

    def current(self) -> BlockTemplate | None:
        return self._emitted

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        return self._fanout.subscribe()

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        """Submit to every node at once, then judge each answer against the best chain: every node that
        answers is asked for its tip (a node that took the block has a new one), the leader is chosen
        again, and each result's `best_chain` says whether its node is on the leader's tip."""
        answers = await asyncio.gather(*(s.submit_block(block_hex) for s in self.sources))

        async def check(s: NodeSource) -> None:
            with contextlib.suppress(NodeError):  # the node is marked down: off the best chain
                await s.check_tip("submit")

        await asyncio.gather(*(check(s) for s in self.sources if s.healthy))
        self._on_change(None)
        best = self._best_chain_nodes()
        if not best:  # no node answers now: nothing to judge against, the answers stand as they are
            return [r for rs in answers for r in rs]
        return [
            dataclasses.replace(r, best_chain=s in best)
            for s, rs in zip(self.sources, answers, strict=True)
            for r in rs
        ]

    def status(self) -> list[dict[str, Any]]:
        """Each node's status, in priority order, with `active` marking the one templates come from and
        `reason` saying why it leads or not (down, behind, on the same tip but second, another fork)."""
        reasons = self._leadership.reasons if self._leadership is not None else ()
        return [
            {**s.status(), "active": s is self.active, "reason": reasons[i] if i < len(reasons) else ""}
            for i, s in enumerate(self.sources)
        ]

    def _best_chain_nodes(self) -> set[NodeSource]:
        """The healthy nodes whose tip is the leader's (the best chain's)."""
        tip = self.active.tip if self.active is not None and self.active.healthy else None
        if tip is None:
            return set()
        return {
            s for s in self.sources if s.healthy and s.tip is not None and s.tip.block_hash == tip.block_hash
        }

    def _on_change(self, _source: NodeSource | None) -> None:
        previous = self.active
        self._choose()
        if self.notices is not None and not self._stopping:
            self._tell(previous)

    def _choose(self) -> None:
        candidates = [s.candidate() for s in self.sources]
        current = self.sources.index(self.active) if self.active is not None else None
        decision = choose_leader(candidates, current)
        self._leadership = decision
        if decision.leader is None:
            return  # keep handing out the last template until some node answers again
        leader = self.sources[decision.leader]
        if leader is not self.active:
            was = (
                f"; {self.active.name}: {decision.reasons[current]}"
                if self.active is not None and current is not None
                else ""
            )
            log.info(
                "template source: %s leads now (%s)%s", leader.name, decision.reasons[decision.leader], was
            )
            self.active = leader
        template = leader.current()
        assert template is not None
        if self._emitted is not None and same_work(self._emitted, template):
            self._emitted = template
            return
        new_block = self._emitted is None or self._emitted.prev_hash != template.prev_hash
        self._emitted = template
        self._fanout.publish(TemplateUpdate(template, new_block, self.clock()))
        self._ready.set()


    # --- notices ---

    def _tell(self, previous: NodeSource | None) -> None:
        """Tell of each node whose health changed since last told (down, back) and of a failover (the
        leader before this change is down and another node leads now)."""
        assert self.notices is not None
        now = self.clock()
        for s in self.sources:
            was = self._health_told.get(s.name)
            self._health_told[s.name] = s.healthy
            if s.healthy and was is False:
                self.notices.notify(self._back(s, now))
            elif not s.healthy and was is not False:
                self.notices.notify(self._down(s, now, at_start=was is None))
        leader = self.active
        if leader is not None and previous is not None and leader is not previous and not previous.healthy:
            body = (f"{previous.name} stopped answering ({previous.last_error or 'no reason given'}); "
                    f"{leader.name} leads now ({self._reason(leader)}), at height {self._height(leader)}.\n"
                    "Miners got its work at once; solved blocks still go to every node that answers.")
            self.notices.notify(Notice("node.failover", "warning", f"Failover: templates from {leader.name} now",
                                       body, leader.name, now))

    def _down(self, s: NodeSource, now: float, at_start: bool) -> Notice:
        others = [o for o in self.sources if o is not s and o.healthy]
        when = "at the start" if at_start else "now"
        lines = [f"{s.name} is not answering {when}: {s.last_error or 'no reason given'}."]
        severity: NoticeSeverity
        if others:
            lead = self.active if self.active is not None and self.active.healthy else others[0]
            lines.append(f"Templates come from {lead.name} (height {self._height(lead)}); "
                         f"{len(others)} of {len(self.sources)} nodes answer.")
            severity = "warning"
        else:
            lines.append("No node answers: miners keep the last template, whose work is lost once the chain "
                         "moves on, and a block solved now cannot be submitted.")
            severity = "critical"
        lines.append("Look at: the node's process, its RPC port and credentials (cookie file), and its log.")
        return Notice("node.down", severity, f"Node {s.name} is down", "\n".join(lines), s.name, now)

    def _back(self, s: NodeSource, now: float) -> Notice:
        leads = (f"It leads: templates come from it again ({self._reason(s)})." if s is self.active
                 else f"Templates keep coming from {self.active.name}." if self.active is not None else "")
        body = f"{s.name} answers again, at height {self._height(s)}. {leads}".rstrip()
        return Notice("node.back", "info", f"Node {s.name} is back", body, s.name, now)

    def _reason(self, s: NodeSource) -> str:
        reasons = self._leadership.reasons if self._leadership is not None else ()
        i = self.sources.index(s)
        return reasons[i] if i < len(reasons) else ""

    @staticmethod
    def _height(s: NodeSource) -> str:
        tip = s.tip
        return f"{tip.height} ({display_hex(tip.block_hash)})" if tip is not None else "unknown"


def source_from_config(
    nodes: Sequence[Any], *, chain: str = "regtest", refresh_interval: float = REFRESH_INTERVAL_S,
    notices: NoticeSink | None = None,
) -> FailoverSource:
    """A FailoverSource over `pithead.config.UpstreamNode`s (url, cookie_file or rpc_user/rpc_password,
    zmq_hashblock, priority), telling `notices` of nodes down, back and failed over."""
    sources = []
    for n in nodes:
        client = RpcClient(n.url, user=n.rpc_user, password=n.rpc_password, cookie_file=n.cookie_file)
        sources.append(
            NodeSource(
                client,
                chain=chain,
                zmq_hashblock=n.zmq_hashblock,
                priority=n.priority,
                refresh_interval=refresh_interval,
            )
        )
    return FailoverSource(sources, notices=notices)

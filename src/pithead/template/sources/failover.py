"""Several nodes, one template stream (`FailoverSource`), and the source for `[pool] nodes`.

`FailoverSource` runs several `NodeSource`s and hands out the templates of the healthy node with the
lowest `priority` value (ties: the order given); when that node fails the next one's template is handed
out at once, and the preferred node takes over again once it answers. Solved blocks are submitted to
every node at once. `source_from_config` builds one over the configured nodes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pithead.bitcoind.rpc import NodeError, RpcClient
from pithead.template.block_template import BlockTemplate, same_work
from pithead.template.interface import SubmitResult, TemplateUpdate
from pithead.template.sources.fanout import UpdateFanout
from pithead.template.sources.node import REFRESH_INTERVAL_S, NodeSource

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0  # how long FailoverSource.start waits for a first template from any node


class NoNodeError(NodeError):
    """No node gave a template (each node's reason is in the message)."""


class FailoverSource:
    """Several nodes, one template stream: the healthy node with the lowest priority value leads."""

    def __init__(
        self,
        sources: Sequence[NodeSource],
        *,
        start_timeout: float = START_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not sources:
            raise ValueError("FailoverSource needs at least one node")
        self.sources = sorted(sources, key=lambda s: s.priority)  # stable: ties keep the order given
        self.start_timeout = start_timeout
        self.clock = clock
        self.active: NodeSource | None = None
        self._emitted: BlockTemplate | None = None
        self._fanout = UpdateFanout()
        self._ready = asyncio.Event()

    async def start(self) -> None:
        for s in self.sources:
            s.listeners.append(self._on_change)
        await asyncio.gather(*(s.start(wait=False) for s in self.sources))
        self._on_change(self.sources[0])
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
        await asyncio.gather(*(s.stop() for s in self.sources), return_exceptions=True)

    def current(self) -> BlockTemplate | None:
        return self._emitted

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        return self._fanout.subscribe()

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        results = await asyncio.gather(*(s.submit_block(block_hex) for s in self.sources))
        return [r for rs in results for r in rs]

    def status(self) -> list[dict[str, Any]]:
        """Each node's status, in priority order, with `active` marking the one templates come from."""
        return [{**s.status(), "active": s is self.active} for s in self.sources]

    def _on_change(self, _source: NodeSource) -> None:
        leader = next((s for s in self.sources if s.healthy and s.current() is not None), None)
        if leader is None:
            return  # keep handing out the last template until some node answers again
        if leader is not self.active:
            log.info("template source: %s leads now", leader.name)
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


def source_from_config(
    nodes: Sequence[Any], *, chain: str = "regtest", refresh_interval: float = REFRESH_INTERVAL_S
) -> FailoverSource:
    """A FailoverSource over `pithead.config.UpstreamNode`s (url, cookie_file or rpc_user/rpc_password,
    zmq_hashblock, priority)."""
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
    return FailoverSource(sources)

"""`PollingTemplateSource`: the pool's fallback source — getblocktemplate polling over JSON-RPC.

What it is: a minimal TemplateSource over one or more nodes (Bitcoin Core or pithead's embedded node):
it polls `getblocktemplate` every `poll_interval` seconds on the first node that answers, emits an update
when the previous block changes (new_block) or the transactions change (refresh), and submits blocks to
every node at once. What it is not: the ZMQ/longpoll/failover sources of pithead.template, which the
`pithead pool` command prefers when they are installed; this one only needs HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pithead.template.block_template import BlockTemplate, TemplateError, parse_gbt
from pithead.template.interface import SubmitResult, TemplateUpdate

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between polls: a new block reaches miners within this (plus the notify time)."""
RPC_TIMEOUT = 10.0
"""Seconds per RPC call; a node slower than this is treated as down for that poll."""
MAX_QUEUED_UPDATES = 64


class NodeUnavailable(RuntimeError):
    """No configured node answered getblocktemplate."""


@dataclass(frozen=True)
class NodeEndpoint:
    url: str
    user: str | None = None
    password: str | None = None
    cookie_file: str | None = None

    def auth_header(self) -> dict[str, str]:
        user, password = self.user, self.password
        if self.cookie_file:
            with contextlib.suppress(OSError):
                user, _, password = Path(self.cookie_file).read_text().strip().partition(":")
        if user is None:
            return {}
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


class PollingTemplateSource:
    def __init__(self, nodes: Sequence[NodeEndpoint], poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        if not nodes:
            raise ValueError("at least one node is needed")
        self.nodes = list(nodes)
        self.poll_interval = poll_interval
        self._client = httpx.AsyncClient(timeout=RPC_TIMEOUT)
        self._current: BlockTemplate | None = None
        self._subscribers: list[asyncio.Queue[TemplateUpdate]] = []
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    async def _rpc(self, node: NodeEndpoint, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": params}
        r = await self._client.post(node.url, json=body, headers=node.auth_header())
        data = r.json()
        if data.get("error"):
            raise RuntimeError(f"{method}: {data['error']}")
        return data["result"]

    async def _fetch(self) -> BlockTemplate:
        errors = []
        for node in self.nodes:
            try:
                raw = await self._rpc(node, "getblocktemplate", [{"rules": ["segwit"]}])
                return parse_gbt(raw)
            except (httpx.HTTPError, RuntimeError, ValueError, TemplateError) as exc:
                errors.append(f"{node.url}: {exc}")
        raise NodeUnavailable("; ".join(errors))

    async def start(self) -> None:
        self._current = await self._fetch()
        self._task = asyncio.create_task(self._poll(), name="gbt-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    def current(self) -> BlockTemplate | None:
        return self._current

    def _publish(self, tpl: BlockTemplate, new_block: bool) -> None:
        self._current = tpl
        update = TemplateUpdate(tpl, new_block, time.time())
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(update)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                tpl = await self._fetch()
            except NodeUnavailable as exc:
                log.warning("no template: %s", exc)
                continue
            cur = self._current
            if cur is None or tpl.prev_hash != cur.prev_hash:
                self._publish(tpl, True)
            elif tpl.txids() != cur.txids():
                self._publish(tpl, False)

    async def poll_now(self) -> None:
        """Fetch immediately (e.g. after our own block was accepted)."""
        with contextlib.suppress(NodeUnavailable):
            tpl = await self._fetch()
            cur = self._current
            if cur is None or tpl.prev_hash != cur.prev_hash:
                self._publish(tpl, True)

    async def updates(self) -> AsyncIterator[TemplateUpdate]:
        q: asyncio.Queue[TemplateUpdate] = asyncio.Queue(MAX_QUEUED_UPDATES)
        self._subscribers.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.remove(q)

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        async def one(node: NodeEndpoint) -> SubmitResult:
            try:
                res = await self._rpc(node, "submitblock", [block_hex])
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                return SubmitResult(node.url, f"error: {exc}", False)
            return SubmitResult(node.url, res, res is None)

        results = list(await asyncio.gather(*(one(n) for n in self.nodes)))
        if any(r.accepted for r in results):
            asyncio.get_running_loop().create_task(self.poll_now())
        return results

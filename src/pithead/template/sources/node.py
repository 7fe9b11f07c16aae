"""Templates from one node (`NodeSource`): Bitcoin Core, or any node speaking its JSON-RPC.

It implements `pithead.template.interface.TemplateSource`. A `NodeSource` learns of a new tip by
whichever means the node offers, all at once when available:

- ZMQ `hashblock` (Core's -zmqpubhashblock): a new template is fetched within milliseconds of the block;
- GBT long-poll (BIP22 `longpollid`): one request held open by the node until the tip (or, after a while,
  the mempool) changes;
- polling `getbestblockhash` every `poll_interval` as the last resort (only when neither of the above is
  available; otherwise every `health_interval`, as a health check that also catches a missed message);

and it refetches every `refresh_interval` so new transactions (fees) reach miners. Each answer is
validated into a frozen `BlockTemplate` (`parse_gbt`); a malformed one is refused with its reason in
`rejected` and the last good template stays current. A node that stops answering is marked unhealthy
(`healthy`, `last_error`) and retried every `retry_interval`.

It also knows where the node's chain ends (`tip`, a `ChainTip`): the block the template builds on, its
height and, asked once per new tip with `getblockheader`, its chain work (None from a node that does not
say). `FailoverSource` compares nodes by it; `check_tip` asks the node for its best block now.

Not here: several nodes with failover (`failover`), job building, coinbase construction (the pool's side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import zmq

from pithead.bitcoind.rpc import NodeDownError, NodeError, RpcClient, WrongChainError
from pithead.bitcoind.zmq import HashBlockSubscriber
from pithead.chain.hashes import display_hex
from pithead.template.block_template import BlockTemplate, TemplateError, parse_gbt, same_work
from pithead.template.interface import SubmitResult, TemplateUpdate
from pithead.template.sources.fanout import UpdateFanout
from pithead.template.sources.leader import Candidate, ChainTip

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5  # polling getbestblockhash when the node offers neither ZMQ nor long-poll
HEALTH_INTERVAL_S = 2.0  # health check (and missed-notification check) when ZMQ or long-poll is in use
REFRESH_INTERVAL_S = 30.0  # new transactions: Core's own miner and most pools refresh every 30-60 s
RETRY_INTERVAL_S = 1.0  # a down node is retried this often
LONGPOLL_MIN_S = 0.25  # a long-poll that returns the same work sooner than this is not reissued at once


class NodeSource:
    """Templates from one node (Bitcoin Core or pithead's)."""

    def __init__(
        self,
        client: RpcClient,
        *,
        chain: str = "regtest",
        zmq_hashblock: str | None = None,
        use_longpoll: bool = True,
        poll_interval: float = POLL_INTERVAL_S,
        health_interval: float = HEALTH_INTERVAL_S,
        refresh_interval: float = REFRESH_INTERVAL_S,
        retry_interval: float = RETRY_INTERVAL_S,
        priority: int = 0,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.chain = chain
        self.zmq_hashblock = zmq_hashblock
        self.use_longpoll = use_longpoll
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self.priority = priority
        self.name = name or client.name
        self.clock = clock
        self.healthy = False
        self.last_error: str | None = None
        self.rejected: str | None = None  # why the last refused template was refused
        self.listeners: list[Callable[[NodeSource], None]] = []
        self._template: BlockTemplate | None = None
        self._tip: ChainTip | None = None
        self._last_fetch = 0.0
        self._fanout = UpdateFanout()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._chain_checked = False
        self._longpoll_wakeup = asyncio.Event()
        self._zmq: HashBlockSubscriber | None = None
        self.notifications = {"zmq": 0, "longpoll": 0, "poll": 0, "refresh": 0}  # what brought new tips

    # --- TemplateSource ---

    async def start(self, wait: bool = True) -> None:
        """Start watching the node; with `wait`, fetch the first template now and raise if that fails."""
        if wait:
            await self._connect()
        else:
            with contextlib.suppress(NodeError):
                await self._connect()
        if self.zmq_hashblock:
            try:
                self._zmq = HashBlockSubscriber(self.zmq_hashblock)
            except zmq.ZMQError as exc:
                raise NodeError(
                    f"cannot subscribe to ZMQ at {self.zmq_hashblock!r}: {exc}", self.name
                ) from exc
            self._tasks.append(asyncio.create_task(self._zmq_loop(), name=f"zmq {self.name}"))
        if self.use_longpoll:
            self._tasks.append(asyncio.create_task(self._longpoll_loop(), name=f"longpoll {self.name}"))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name=f"poll {self.name}"))

    async def stop(self) -> None:
        self._tasks.extend(self._side_tasks)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._zmq is not None:
            self._zmq.close()
            self._zmq = None
        await self.client.close()

    def current(self) -> BlockTemplate | None:
        return self._template

    @property
    def tip(self) -> ChainTip | None:
        """The tip the current template builds on (None before the first template)."""
        return self._tip

    def candidate(self) -> Candidate:
        """What the leader choice of `FailoverSource` needs to know of this node."""
        return Candidate(self.name, self.priority, self.healthy, self._tip, self.last_error)

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        return self._fanout.subscribe()

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        try:
            result = await self.client.submitblock(block_hex)
        except NodeError as exc:
            if isinstance(exc, NodeDownError):
                self._set_health(False, str(exc))
            return [SubmitResult(self.name, f"error: {exc}", False)]
        if result is None:  # our block is the new tip: fetch the next template without waiting for ZMQ
            task = asyncio.get_running_loop().create_task(self._refresh_quietly("submit"))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)
        return [SubmitResult(self.name, result, result is None)]

    def status(self) -> dict[str, Any]:
        """For dashboards and logs: how this node is doing."""
        t = self._template
        work = self._tip.chainwork if self._tip is not None else None
        return {
            "name": self.name,
            "priority": self.priority,
            "healthy": self.healthy,
            "last_error": self.last_error,
            "rejected": self.rejected,
            "height": t.height if t else None,
            "prev_hash": display_hex(t.prev_hash) if t else None,
            "chainwork": f"{work:064x}" if work is not None else None,  # Core's spelling: 64 hex digits
            "zmq": bool(self.zmq_hashblock),
            "notifications": dict(self.notifications),
        }

    # --- fetching ---

    async def refresh(self, why: str = "refresh") -> None:
        """Fetch a template now (raises NodeError when the node fails)."""
        async with self._lock:
            try:
                result = await self.client.getblocktemplate()
            except NodeError as exc:
                self._set_health(False, str(exc))
                raise
            self._last_fetch = self.clock()
            await self._take(result, why)

    async def check_tip(self, why: str = "poll") -> None:
        """Ask the node for its best block; fetch a template when it moved (raises NodeError, after
        marking the node down, when the node fails)."""
        try:
            best = await self.client.call("getbestblockhash")
        except NodeError as exc:
            self._set_health(False, str(exc))
            raise
        self._set_health(True, None)
        if isinstance(best, str) and (
            self._template is None or best != display_hex(self._template.prev_hash)
        ):
            await self.refresh(why)

    async def _refresh_quietly(self, why: str) -> None:
        with contextlib.suppress(NodeError):
            await self.refresh(why)

    async def _connect(self) -> None:
        try:
            if not self._chain_checked:
                await self.client.check_chain(self.chain)
                self._chain_checked = True
        except NodeError as exc:
            self._set_health(False, str(exc))
            raise
        await self.refresh("connect")

    async def _take(self, result: Any, why: str) -> None:
        """Validate a getblocktemplate answer, learn its tip's chain work when the tip is new, accept it.
        Called with `_lock` held, so that answers are taken one at a time, in the order they came."""
        try:
            template = parse_gbt(result)
        except TemplateError as exc:
            self.rejected = str(exc)
            log.warning("%s: template refused, keeping the last good one: %s", self.name, exc)
            self._set_health(True, None)
            return
        old = self._tip
        if old is not None and old.block_hash == template.prev_hash and old.chainwork is not None:
            work: int | None = old.chainwork
        else:
            work = await self._chainwork(template.prev_hash)
        self._tip = ChainTip(template.prev_hash, template.height - 1, work)
        self._accept(template, why)

    async def _chainwork(self, block_hash: bytes) -> int | None:
        """Core's `chainwork` of a block (getblockheader), or None when the node does not say: the
        failover then compares tips by height. A failure here is left to the next call to notice."""
        try:
            header = await self.client.call("getblockheader", display_hex(block_hash), True)
        except NodeError as exc:
            log.debug("%s: no chain work for %s: %s", self.name, display_hex(block_hash), exc)
            return None
        work = header.get("chainwork") if isinstance(header, dict) else None
        try:
            return int(work, 16) if isinstance(work, str) else None
        except ValueError:
            return None

    def _accept(self, template: BlockTemplate, why: str) -> None:
        old = self._template
        self._set_health(True, None, notify=False)
        if old is not None and same_work(old, template):
            self._template = template  # newer curtime/longpollid, same work: no update for miners
            self._notify()
            return
        new_block = old is None or old.prev_hash != template.prev_hash
        if new_block and why in self.notifications:
            self.notifications[why] += 1
        self._template = template
        self._longpoll_wakeup.set()
        self._fanout.publish(TemplateUpdate(template, new_block, self.clock()))
        self._notify()

    def _set_health(self, healthy: bool, error: str | None, notify: bool = True) -> None:
        changed = healthy != self.healthy
        self.healthy = healthy
        if error is not None:
            self.last_error = error
        if not healthy:
            self._chain_checked = False  # whatever answers next on that address may be another node
        if changed:
            log.info("%s is %s%s", self.name, "up" if healthy else "down", f": {error}" if error else "")
            if notify:
                self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener(self)

    # --- the three ways to learn of new work ---

    async def _zmq_loop(self) -> None:
        assert self._zmq is not None
        while True:
            note = await self._zmq.receive()
            if note.gap:
                log.info("%s: ZMQ sequence gap, refetching", self.name)
            await self._refresh_quietly("zmq")

    async def _longpoll_loop(self) -> None:
        while True:
            template = self._template
            if not self.healthy or template is None or template.longpollid is None:
                self._longpoll_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._longpoll_wakeup.wait(), self.retry_interval)
                continue
            started = time.monotonic()
            try:
                result = await self.client.getblocktemplate(longpollid=template.longpollid)
            except NodeError as exc:
                self._set_health(False, str(exc))
                await asyncio.sleep(self.retry_interval)
                continue
            async with self._lock:
                self._last_fetch = self.clock()
                await self._take(result, "longpoll")
            current = self._template
            if (
                time.monotonic() - started < LONGPOLL_MIN_S
                and current is not None
                and same_work(template, current)
            ):
                # A node answering long-polls at once with the same work (shutting down, or a broken
                # implementation) must not turn this loop into a busy loop.
                await asyncio.sleep(LONGPOLL_MIN_S)

    async def _poll_loop(self) -> None:
        while True:
            fast = not self.zmq_hashblock and not (
                self.use_longpoll and self._template and self._template.longpollid
            )
            interval = (
                self.retry_interval
                if not self.healthy
                else (self.poll_interval if fast else self.health_interval)
            )
            await asyncio.sleep(interval)
            try:
                if not self.healthy or self._template is None:
                    await self._connect()
                    continue
                prev = self._template.prev_hash
                await self.check_tip("poll")
                if (
                    self._template.prev_hash == prev
                    and self.clock() - self._last_fetch >= self.refresh_interval
                ):
                    await self.refresh("refresh")
            except WrongChainError as exc:
                self._set_health(False, str(exc))
            except NodeError as exc:
                self._set_health(False, str(exc))

"""The node's status as the dashboard shows it: asked over JSON-RPC, timed, and cached for a moment.

`NodeMonitor.status()` calls `getblockchaininfo` and `getmininginfo` (Bitcoin Core's methods, which the
embedded node answers too) through the node client (`pithead.bitcoind.rpc.RpcClient`, seen as
`pithead.web.services.NodeRpc`), measures the round trip, and keeps the answer for `CACHE_S` so that many
dashboards polling at once cost the node one call. A node that fails is a status with `available=False`
and the error text, never an exception: every failure of the client is a `NodeError` (`NodeDownError`
when nothing answered, `NodeAuthError`, `RpcError` with Core's code), and a call slower than
`RPC_TIMEOUT_S` is cut off here.

This module does not fetch templates (the pool's template source does that) and holds no client of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pithead.bitcoind.rpc import NodeError
from pithead.web.models import NetworkStatus
from pithead.web.services import NodeRpc

# How long one status is served from cache: the dashboard refreshes every few seconds; the chain moves
# more slowly than that, and it keeps N open dashboards from costing N RPC calls.
CACHE_S = 2.0

# A status call slower than this counts as the node being unavailable (its latency is still recorded).
RPC_TIMEOUT_S = 5.0

# Latency samples kept for the metrics histogram are observed as they happen; nothing is stored here.


class NodeMonitor:
    def __init__(
        self,
        node: NodeRpc | None,
        last_template_time: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.time,
        on_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self._node = node
        self._last_template_time = last_template_time
        self._clock = clock
        self._on_latency = on_latency
        self._cached: NetworkStatus | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()
        self.last_latency_s: float | None = None

    def template_age(self) -> float | None:
        if self._last_template_time is None:
            return None
        t = self._last_template_time()
        return None if t is None else max(0.0, self._clock() - t)

    async def _timed(self, method: str) -> Any:
        assert self._node is not None
        start = time.perf_counter()
        try:
            # The client's own timeout bounds each read; this bounds the whole call (a node trickling bytes).
            return await asyncio.wait_for(self._node.call(method, timeout_s=RPC_TIMEOUT_S), RPC_TIMEOUT_S)
        finally:
            elapsed = time.perf_counter() - start
            self.last_latency_s = elapsed
            if self._on_latency is not None:
                self._on_latency(method, elapsed)

    async def status(self) -> NetworkStatus:
        async with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached_at < CACHE_S:
                return self._cached.model_copy(update={"template_age_s": self.template_age()})
            self._cached = await self._probe(now)
            self._cached_at = now
            return self._cached

    async def _probe(self, now: float) -> NetworkStatus:
        age = self.template_age()
        if self._node is None:
            return NetworkStatus(available=False, error="no node configured", template_age_s=age, checked_at=now)
        try:
            start = time.perf_counter()
            chain = await self._timed("getblockchaininfo")
            latency_ms = (time.perf_counter() - start) * 1000.0
            mining = await self._timed("getmininginfo")
        except (NodeError, TimeoutError) as exc:  # any failure of the node is a status, not a crash
            return NetworkStatus(
                available=False, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                template_age_s=age, checked_at=now,
            )
        chain = chain if isinstance(chain, dict) else {}
        mining = mining if isinstance(mining, dict) else {}
        return NetworkStatus(
            available=True,
            chain=_opt(chain.get("chain"), str),
            height=_opt(chain.get("blocks"), int),
            best_block_hash=_opt(chain.get("bestblockhash"), str),
            difficulty=_opt(chain.get("difficulty", mining.get("difficulty")), float),
            network_hashrate_hps=_opt(mining.get("networkhashps"), float),
            mempool_tx=_opt(mining.get("pooledtx"), int),
            template_age_s=age,
            rpc_latency_ms=latency_ms,
            checked_at=now,
        )


def _opt(value: Any, kind: type) -> Any:
    """The node's field converted to `kind`, or None when absent or malformed (an odd node never breaks us)."""
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None

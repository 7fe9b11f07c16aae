"""What the web app reads, as small Protocols, and the `Services` bundle handed to `create_app`.

The web layer never reaches into the pool, node or ledger objects directly: it sees

* `StoreReader`, the read half of `pithead.ledger.store.LedgerStore` (shares, stat buckets, workers, blocks,
  credits, balances, payout batches), usually a second connection to the ledger's database; the protocol
  is the store's own (`pithead.ledger.store.base`), named here too for the web's callers;
* `NodeRpc`, the shape of the node client `pithead.bitcoind.rpc.RpcClient` (to bitcoind or to the
  embedded node), of which the web asks `getblockchaininfo` and `getmininginfo`;
* `PoolLive`, a snapshot of the Stratum server's live connections;
* `last_template_time`, the time the pool last received a block template.

Every part is optional, so the app serves whatever exists (a ledger-only API, a node-less pool...), and
each endpoint says plainly when its source is absent. This module holds no behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pithead.ledger.ledger import FINE_BUCKET_S
from pithead.ledger.store.base import StoreReader
from pithead.ledger.withholding import DEFAULT_LEVEL

__all__ = [
    "DEFAULT_BUCKET_WIDTH_S",
    "LiveConnection",
    "NodeRpc",
    "PoolInfo",
    "PoolLive",
    "PoolLiveStatus",
    "Services",
    "StoreReader",
]


class NodeRpc(Protocol):
    """Bitcoin Core's JSON-RPC as `pithead.bitcoind.rpc.RpcClient` asks it: one call at a time, whose
    every failure is a `pithead.bitcoind.rpc.NodeError` (`NodeDownError` when nothing answered)."""

    async def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class LiveConnection:
    """One Stratum connection as the pool sees it now."""

    remote: str
    worker: str | None  # None until authorized
    difficulty: float
    connected_at: float
    user_agent: str | None = None
    last_share_at: float | None = None


@dataclass(frozen=True, slots=True)
class PoolLiveStatus:
    connections: int
    sessions: tuple[LiveConnection, ...] = ()
    stratum_url: str | None = None


class PoolLive(Protocol):
    def live_status(self) -> PoolLiveStatus: ...


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """Static facts about this operation shown on the dashboard."""

    name: str = "pithead"
    mode: str = "solo"  # solo | pool
    scheme: str = "pplns"
    fee_percent: float = 0.0
    network: str = "regtest"
    stratum_url: str | None = None
    # The pool's terms as the Miningcore-compatible API states them (`pithead.web.miningcore`): its id
    # there, where rewards go, difficulty, timeouts and payouts, from `[pool]`, `[ledger]` and `[web]`.
    pool_id: str = "pithead"
    pool_address: str | None = None  # pool mode's reward address; None in solo mode
    start_difficulty: float = 1.0
    min_difficulty: float = 0.0001
    max_difficulty: float = 1e12
    share_interval_s: float = 10.0  # vardiff's target seconds per share
    refresh_interval_s: float = 30.0  # new transactions reach miners this often
    idle_timeout_s: float = 900.0  # a silent miner is dropped after this long
    payout_threshold_sat: int = 100_000
    payouts_enabled: bool = False  # whether the ledger sends payouts (`[ledger] payouts = "wallet"`)
    withholding_level: float = DEFAULT_LEVEL  # the ledger's `[ledger] withholding_level`, shown with its flags


# The ledger's fine statistics bucket width in seconds: hashrate windows are aligned to it.
DEFAULT_BUCKET_WIDTH_S = FINE_BUCKET_S


@dataclass(frozen=True)
class Services:
    store: StoreReader | None = None
    node: NodeRpc | None = None
    pool: PoolLive | None = None
    last_template_time: Callable[[], float | None] | None = None
    farm_router: Any | None = None  # a fastapi.APIRouter from pithead.web.farm, mounted at /farm
    proxy_router: Any | None = None  # a fastapi.APIRouter from pithead.web.proxy (its own /proxy prefix)
    info: PoolInfo = field(default_factory=PoolInfo)
    bucket_width_s: int = DEFAULT_BUCKET_WIDTH_S
    clock: Callable[[], float] = time.time

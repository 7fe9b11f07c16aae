"""The REST API's response shapes (pydantic models), so that /openapi.json documents every field.

Units are in the names: `_hps` hashes per second, `_sat` satoshis, `_s` seconds, times are UNIX seconds.
These are the public wire format; nothing here computes anything.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Hashrate(BaseModel):
    window: str = Field(description="1m, 5m, 1h or 1d")
    window_s: float
    span_s: float = Field(description="seconds the counted shares really cover (windows align to stat buckets)")
    observed_s: float = Field(
        description="seconds of span_s the rate and its interval are over: span_s clipped to the first share ever"
        " seen of this worker, address or pool, counting only the time the pool was up (less than span_s while"
        " it is newer than the window or was down during it)"
    )
    shares: int
    difficulty_sum: float
    hashrate_hps: float | None = Field(description="estimate; null when there are too few shares")
    low_hps: float | None = Field(description="90% confidence interval, lower bound")
    high_hps: float | None = Field(description="90% confidence interval, upper bound")
    enough_shares: bool
    note: str | None = Field(default=None, description="plain statement shown instead of a number")


class Rejects(BaseModel):
    window: str
    total: int
    by_reason: dict[str, int]


class PoolSummaryOut(BaseModel):
    name: str
    mode: str
    scheme: str
    fee_percent: float
    network: str
    stratum_url: str | None
    time: float
    hashrate: list[Hashrate]
    workers: int
    active_workers: int = Field(description="workers with a share in the last hour")
    connections: int | None = Field(description="live Stratum connections; null without a pool")
    accepted_shares: int
    rejected_shares: int
    rejects_1h: Rejects
    blocks_found: int = Field(description="blocks the node accepted at submission (pending, confirmed, orphaned)")
    last_block_height: int | None
    last_block_time: float | None
    best_share: float
    immature_sat: int = Field(description="miners' credits from blocks not yet 100 deep")
    payable_sat: int = Field(description="miners' confirmed credits not yet paid or reserved")
    paid_sat: int = Field(description="sent to miners in payout transactions so far")


class NetworkStatus(BaseModel):
    available: bool
    error: str | None = None
    chain: str | None = None
    height: int | None = None
    best_block_hash: str | None = None
    difficulty: float | None = None
    network_hashrate_hps: float | None = None
    mempool_tx: int | None = None
    template_age_s: float | None = Field(default=None, description="seconds since the pool's last template")
    rpc_latency_ms: float | None = None
    checked_at: float


class Worker(BaseModel):
    worker: str
    address: str
    first_seen: float
    last_share_time: float | None
    last_difficulty: float
    best_share: float
    accepted: int
    rejected: int
    hashrate: list[Hashrate]
    online: bool


class Point(BaseModel):
    time: float
    hashrate_hps: float
    shares: int


class HashrateHistory(BaseModel):
    range: str
    bucket_s: int
    worker: str | None
    address: str | None
    points: list[Point]


class Share(BaseModel):
    id: int
    time: float
    worker: str
    address: str
    difficulty: float
    share_difficulty: float
    height: int


class BlockOut(BaseModel):
    hash: str
    height: int
    time: float
    worker: str
    address: str
    reward_sat: int
    fees_sat: int
    status: str
    confirmations: int
    scheme: str
    network_difficulty: float
    node_result: str | None


class Credit(BaseModel):
    address: str
    amount_sat: int
    kind: str
    status: str
    time: float
    block_hash: str | None


class BalanceOut(BaseModel):
    address: str
    immature_sat: int
    mature_sat: int
    reserved_sat: int
    paid_sat: int
    payable_sat: int


class PayoutItem(BaseModel):
    address: str
    amount_sat: int


class Payout(BaseModel):
    id: int
    created: float
    updated: float
    status: str
    txid: str | None
    total_sat: int
    items: list[PayoutItem]
    error: str | None


class AddressPage(BaseModel):
    """Everything a miner looks up about one payout address (public-pool style)."""

    address: str
    known: bool = Field(description="false when the ledger has never seen a share for this address")
    hashrate: list[Hashrate]
    workers: list[Worker]
    best_share: float
    accepted_shares: int
    rejected_shares: int
    rejects_1h: Rejects
    balance: BalanceOut
    credits: list[Credit]
    payouts: list[Payout]
    blocks: list[BlockOut]
    recent_shares: list[Share]


class LiveSession(BaseModel):
    remote: str
    worker: str | None
    difficulty: float
    connected_at: float
    user_agent: str | None
    last_share_at: float | None


class Connections(BaseModel):
    available: bool
    connections: int
    sessions: list[LiveSession]


class ErrorOut(BaseModel):
    error: str
    detail: str

"""The shapes of Miningcore's API answers, as pydantic models, so /openapi.json documents them too.

Each class `McX` is the C# class `X` (the prefix keeps it apart from pithead's own
`Block`, `PoolInfo`...) of Miningcore (github.com/oliverw/miningcore, commit
a553f62301f44c6df80891e408b6526d1dd98692), field for field, in the order declared there:
`src/Miningcore/Api/Responses/*.cs` (PoolInfo, ApiCoinConfig, ApiPoolPaymentProcessingConfig, Block,
Payment, BalanceChange, MinerStats, MinerPerformanceStats, WorkerPerformanceStats(Container),
AggregatedPoolStats, MinerSettings, ResultResponse / PagedResultResponse), `src/Miningcore/Mining/PoolStats.cs`,
`src/Miningcore/Blockchain/Abstractions.cs` (BlockchainStats), `src/Miningcore/Configuration/ClusterConfig.cs`
(PoolEndpoint, VarDiffConfig) and `src/Miningcore/Persistence/Model/Projections/AmountByDate.cs`.

How Miningcore writes them (`src/Miningcore/Program.cs`, `AddJsonOptions`): System.Text.Json with
ASP.NET Core's web defaults, so property names are camelCase and a null property is left out
(`DefaultIgnoreCondition = WhenWritingNull`); `dump` does both. Amounts (C# `decimal`) are coins, not
satoshis; hashrates are hashes per second; C# integer fields (`int`, `uint`, `ulong`) are JSON integers
here too; a `DateTime` is an ISO 8601 UTC string (see `pithead.web.miningcore.queries.iso_time`).
Fields Miningcore has and pithead has no value for are None, so they are left out as Miningcore leaves
out its nulls (a TLS certificate path, a proxy-protocol setting).

Nothing here computes anything.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

T = TypeVar("T")

ISO = "ISO 8601 UTC, as Miningcore writes a DateTime (e.g. 2027-01-15T08:00:30.25Z)"


class McModel(BaseModel):
    """camelCase on the wire, frozen, built by field name."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def dump(value: BaseModel | list[Any]) -> Any:
    """The JSON-ready value as Miningcore writes it: camelCase names, null properties left out."""
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- pools -------------------------------------------------------------------------------------------


class McApiCoinConfig(McModel):
    type: str = Field(description="the coin's symbol, e.g. BTC")
    name: str
    symbol: str
    website: str | None = None
    market: str | None = None
    family: str | None = Field(default=None, description="bitcoin")
    algorithm: str | None = Field(default=None, description="the header hasher's class name: Sha256D")
    twitter: str | None = None
    discord: str | None = None
    telegram: str | None = None
    canonical_name: str | None = None


class McVarDiffConfig(McModel):
    min_diff: float
    max_diff: float | None = None
    max_delta: float | None = None
    target_time: float = Field(description="seconds per share vardiff aims at")
    retarget_time: float = Field(description="seconds between retargets once converged")
    variance_percent: float = Field(description="how far (%) the share rate may stray before a retarget")


class McPoolEndpoint(McModel):
    listen_address: str | None = None
    name: str | None = None
    difficulty: float = Field(description="the starting difficulty")
    tcp_proxy_protocol: dict[str, Any] | None = None
    var_diff: McVarDiffConfig | None = None
    tls: bool = False
    tls_auto: bool = False
    tls_pfx_file: str | None = None  # stripped by Miningcore itself (MiningPoolExtensions.ToPoolInfo)
    tls_pfx_password: str | None = None


class McApiPoolPaymentProcessingConfig(McModel):
    enabled: bool
    minimum_payment: float = Field(description="coins")
    payout_scheme: str = Field(description="PPLNS, PROP, SOLO or PPS (Miningcore's PayoutScheme names)")
    payout_scheme_config: dict[str, Any] | None = None


class McPoolShareBasedBanningConfig(McModel):
    enabled: bool
    check_threshold: int
    invalid_percent: float
    time: int


class McPoolStats(McModel):
    last_pool_block_time: str | None = Field(default=None, description=ISO)
    connected_miners: int
    pool_hashrate: int = Field(description="H/s (a C# ulong)")
    shares_per_second: int


class McBlockchainStats(McModel):
    network_type: str | None = Field(default=None, description="Main, TestNet, TestNet4, Signet or RegTest")
    network_hashrate: float
    network_difficulty: float
    next_network_target: str | None = None
    next_network_bits: str | None = None
    last_network_block_time: str | None = Field(default=None, description=ISO)
    block_height: int
    connected_peers: int
    reward_type: str | None = None


class McMinerPerformanceStats(McModel):
    miner: str
    hashrate: float = Field(description="H/s")
    shares_per_second: float


class McPoolInfo(McModel):
    id: str
    coin: McApiCoinConfig
    ports: dict[str, McPoolEndpoint] = Field(description="Stratum port -> endpoint")
    payment_processing: McApiPoolPaymentProcessingConfig
    share_based_banning: McPoolShareBasedBanningConfig | None = None
    client_connection_timeout: int = Field(description="seconds")
    job_rebroadcast_timeout: int = Field(description="seconds")
    block_refresh_interval: int = Field(description="milliseconds")
    pool_fee_percent: float
    address: str = Field(description="where the blocks' rewards go (empty in solo mode: to each finder)")
    address_info_link: str | None = None
    pool_stats: McPoolStats
    network_stats: McBlockchainStats
    top_miners: list[McMinerPerformanceStats]
    total_paid: float = Field(description="coins")
    total_blocks: int
    last_pool_block_time: str | None = Field(default=None, description=ISO)
    pool_effort: float = Field(description="work since the last block / network difficulty (1.0 = 100%)")


class McGetPoolsResponse(McModel):
    pools: list[McPoolInfo]


class McGetPoolResponse(McModel):
    pool: McPoolInfo


class McAggregatedPoolStats(McModel):
    pool_hashrate: float = Field(description="H/s")
    connected_miners: int
    valid_shares_per_second: int
    network_hashrate: float
    network_difficulty: float
    created: str = Field(description=ISO)


class McGetPoolStatsResponse(McModel):
    stats: list[McAggregatedPoolStats]


# --- blocks, payments, balances ----------------------------------------------------------------------


class McBlock(McModel):
    pool_id: str
    block_height: int
    network_difficulty: float
    status: str = Field(description="pending, confirmed or orphaned")
    type: str | None = None
    confirmation_progress: float = Field(description="0..1 of the confirmations until the reward matures")
    effort: float | None = Field(default=None, description="the round's work / network difficulty")
    transaction_confirmation_data: str | None = None
    reward: float = Field(description="coins")
    info_link: str | None = None
    hash: str
    miner: str
    source: str | None = None
    created: str = Field(description=ISO)


class McPayment(McModel):
    coin: str
    address: str
    address_info_link: str | None = None
    amount: float = Field(description="coins")
    transaction_confirmation_data: str = Field(description="the payout transaction's txid")
    transaction_info_link: str | None = None
    created: str = Field(description=ISO)


class McBalanceChange(McModel):
    pool_id: str
    address: str
    amount: float = Field(description="coins; negative when paid out")
    usage: str
    created: str = Field(description=ISO)


class McAmountByDate(McModel):
    amount: float = Field(description="coins paid on that day")
    date: str = Field(description="the day's start, " + ISO)


# --- miners ------------------------------------------------------------------------------------------


class McWorkerPerformanceStats(McModel):
    hashrate: float = Field(description="H/s")
    shares_per_second: float


class McWorkerPerformanceStatsContainer(McModel):
    created: str = Field(description=ISO)
    workers: dict[str, McWorkerPerformanceStats] = Field(description="worker name (after 'address.') -> stats")


class McMinerStats(McModel):
    pending_shares: float = Field(description="share difficulty in the current round")
    pending_balance: float = Field(description="coins: confirmed, not yet paid")
    total_paid: float
    today_paid: float
    last_payment: str | None = Field(default=None, description=ISO)
    last_payment_link: str | None = None
    performance: McWorkerPerformanceStatsContainer | None = None
    performance_samples: list[McWorkerPerformanceStatsContainer] | None = None


class McMinerSettings(McModel):
    payment_threshold: float = Field(description="coins")


class McResultResponse(McModel, Generic[T]):
    result: T
    success: bool


class McPagedResultResponse(McResultResponse[T], Generic[T]):
    page_count: int = Field(description="floor(rows / pageSize), as Miningcore computes it")

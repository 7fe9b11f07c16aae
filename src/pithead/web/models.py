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


class LuckOut(BaseModel):
    span: str = Field(description="'all': every block since the ledger began counting; 'last N': the last N blocks")
    blocks: int = Field(description="blocks found in the span")
    expected_blocks: float = Field(description="blocks the pool's share work in the span should have found")
    luck: float | None = Field(description="blocks found per block expected (1.0 as expected, above is lucky);"
                               " null before any work")
    low: float | None = Field(description="90% confidence interval, lower bound")
    high: float | None = Field(description="90% confidence interval, upper bound")


class OddsOut(BaseModel):
    """Block withholding evidence for a worker or an address (pithead.ledger.withholding)."""

    expected_blocks: float = Field(description="lambda: the sum of min(1, d/D) over its accepted shares (d the share"
                                   " difficulty, D the network difficulty of the share's job)")
    blocks_found: int = Field(description="k: blocks whose solution it submitted")
    p_value: float = Field(description="P(X <= k) for X ~ Poisson(lambda): how often an honest miner with this much"
                           " work finds k blocks or fewer")
    anytime_p: float = Field(description="the same, valid however often it is checked (a mixture likelihood ratio"
                             " bound): a flag needs this below the level")
    luck: float | None = Field(description="blocks found per block expected")
    unpriced_shares: int = Field(description="accepted shares with no network difficulty known, left out of lambda")
    since: float = Field(description="the first share counted")
    flagged: bool = Field(description="flagged as possibly withholding blocks (never holds payouts by itself)")
    flagged_since: float | None


class PayoutHoldOut(BaseModel):
    address: str
    since: float
    worker: str = Field(description="the flagged worker the hold was asked for")
    actor: str
    reason: str


class HoldEntryOut(BaseModel):
    id: int
    time: float
    action: str = Field(description="hold or release")
    address: str
    worker: str
    actor: str
    auth: str = Field(description="what let the operator through (e.g. cli)")
    reason: str
    evidence: dict[str, object] = Field(description="the worker's and the address's figures at that moment")


class Suspect(BaseModel):
    kind: str = Field(description="worker or address")
    name: str
    address: str
    odds: OddsOut
    payouts_held: bool


class WithholdingReport(BaseModel):
    level: float = Field(description="the configured level: the chance an honest worker is ever flagged")
    min_expected_blocks: float = Field(description="the least work (blocks expected) that can ever be flagged at"
                                       " this level: a full withholder's")
    luck: list[LuckOut]
    round_effort: float | None = Field(description="blocks expected of the pool's work since its last block")
    flagged: list[Suspect]
    least_likely: list[Suspect] = Field(description="workers whose block counts are least likely for an honest"
                                        " miner (lowest p_value first), flagged or not")
    holds: list[PayoutHoldOut]
    hold_log: list[HoldEntryOut]


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
    luck: list[LuckOut] = Field(default_factory=list, description="the pool's luck over all its work and its last blocks")
    round_effort: float | None = Field(default=None, description="blocks expected of the pool's work since its"
                                       " last block (1.0 is an average block's worth)")
    withholding_flagged: int = Field(default=0, description="workers and addresses flagged as possibly withholding")
    payouts_held: int = Field(default=0, description="addresses whose payouts an operator holds")


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
    withholding: OddsOut | None = Field(default=None, description="block withholding evidence; null before any counted work")


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
    effort: float | None = Field(default=None, description="blocks expected of the pool's work since the block before"
                                 " it (1.0 average); null when not counted")
    maturity_progress: float = Field(default=0.0, description="confirmations over the 100 a coinbase needs (0..1)")
    maturity_eta_s: float | None = Field(default=None, description="about how long until it matures (10 min a"
                                         " block); null once confirmed, or for a block that will never mature")
    explorer_url: str | None = Field(default=None, description="the block on a public explorer; null on regtest"
                                     " and signet")


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
    explorer_url: str | None = Field(default=None, description="the transaction on a public explorer; null on"
                                     " regtest and signet, or before it is sent")


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
    withholding: OddsOut | None = Field(default=None, description="the address's block withholding evidence")
    payout_hold: PayoutHoldOut | None = Field(default=None, description="set when an operator holds its payouts")


class BlockChance(BaseModel):
    """How likely a hashrate is to find a block at the network's difficulty (blocks are a Poisson process)."""

    hashrate_hps: float | None = Field(description="the hashrate used: the 1h estimate, else the shortest window"
                                       " with enough shares")
    window: str | None = Field(description="the window that hashrate is from")
    network_difficulty: float | None
    expected_block_s: float | None = Field(description="mean time to a block: difficulty x 2^32 / hashrate")
    chance_24h: float | None = Field(description="probability of at least one block within 24 hours")
    chance_per_block: float | None = Field(description="probability that the next network block is this hashrate's"
                                           " (the share of the network's hashrate, at 10 minutes a block)")
    note: str | None = Field(default=None, description="why there are no figures")


class OddsOfABlock(BaseModel):
    network_difficulty: float | None
    network_hashrate_hps: float | None
    pool: BlockChance
    address: BlockChance | None = None


class MinerExample(BaseModel):
    miner: str = Field(description="cgminer/bfgminer, Bitaxe (AxeOS), Antminer (stock web UI)")
    settings: dict[str, str] = Field(description="field name as the miner shows it -> value")


class ConnectInfo(BaseModel):
    """How to point a miner at this pool."""

    stratum_urls: list[str]
    user: str = Field(description="the user name format: a payout address, a dot, a worker name")
    password: str = Field(description="ignored by the pool; miners need something there")
    network: str
    address_hint: str = Field(description="what a payout address of this network looks like")
    mode: str
    examples: list[MinerExample]


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

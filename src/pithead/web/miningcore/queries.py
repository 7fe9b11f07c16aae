"""Miningcore's answers built from pithead's ledger: what each field means there, and where it comes from here.

Plain synchronous functions over a `StoreReader`, the node's status and the time passed in (the router
runs them in FastAPI's thread pool). They compose the store's own reads; what Miningcore keeps in tables
of its own is derived:

* **Hashrates** are over Miningcore's default window, HASHRATE_WINDOW_S, from the ledger's statistics
  buckets, counted over the time observed as pithead's own windows are (clipped to the first share ever
  seen and to the time the pool was up; `pithead.ledger.ledger.observed_span`). Miningcore's fields are
  plain numbers, so the point estimate is given even below pithead's reliability threshold (pithead's own
  API says "too few shares" there instead).
* **Blocks** are those the node took (pending, confirmed, orphaned; a block the node rejected at
  submission is not a Miningcore block). `confirmationProgress` is confirmations over the ledger's
  COINBASE_MATURITY; an orphaned block's reward is 0, as Miningcore zeroes it. `effort` is the round's
  work (share difficulty since the previous block, or since the first share for the first) over the
  block's network difficulty, from the statistics buckets; left out where those were pruned.
* **Payments** are the ledger's payout batches that went out (sent or confirmed), one per address, with the
  batch's txid. **Balance changes** are what moves Miningcore's balance: a confirmed reward or PPS credit
  in, a payment out ("Balance reset after payment"). **Daily earnings** are payments summed per UTC day,
  as Miningcore's query sums them. The **pending balance** is confirmed credit not yet sent (Miningcore
  credits a balance only once the block is confirmed); **pending shares** are the address's share
  difficulty since the pool's last block.
* **Miners** lists give each address's hashrate now, among those with a share in the last
  `topMinersRange` hours (Miningcore gives the best of its minute samples in that range); history charts
  (`performance`) are one point per step with work, like Miningcore's aggregated samples; pithead keeps
  no record of the network's past, so each pool performance point carries the network's current figures.
* Paging reads the newest HISTORY_ROWS rows of each kind (the ledger's bound on one query, the horizon
  pithead's own API reads too); pages past it are empty, and counts stop there.

This module holds no HTTP: the router turns its answers and errors into responses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from pithead.ledger import stats
from pithead.ledger.ledger import (
    COARSE_RETENTION_S,
    MAX_QUERY_ROWS,
    MIN_OBSERVED_S,
    balance_of,
    first_seen_of,
    miner_money,
    observed_since,
    observed_span,
    window_start,
)
from pithead.ledger.maturity import COINBASE_MATURITY
from pithead.ledger.store.records import (
    BatchStatus,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditStatus,
    WorkerRow,
    WorkSums,
)
from pithead.ledger.uptime import Uptime, read_uptime
from pithead.stratum.difficulty import HYSTERESIS, SLOW_SHARES
from pithead.web.explorers import EXPLORERS as _EXPLORERS
from pithead.web.explorers import Explorer, explorer_for_network
from pithead.web.miningcore import models as mc
from pithead.web.models import NetworkStatus
from pithead.web.queries import step_exposure
from pithead.web.services import PoolInfo, StoreReader

# Satoshis per bitcoin: Miningcore states amounts in coins.
SAT_PER_COIN = 100_000_000

# Miningcore's default hashrate window (`hashrateCalculationWindow`, 10 minutes: Mining/StatsRecorder.cs:55).
HASHRATE_WINDOW_S = 600

# Miners in a pool's `topMiners` (PoolApiController.cs asks PagePoolMinersByHashrateAsync for page 0 of 15).
TOP_MINERS = 15

# The newest rows of each kind paging reaches: the ledger's bound on what one query returns.
HISTORY_ROWS = MAX_QUERY_ROWS

# Bounds per grouped work read (effort): each bound is one SELECT in a UNION ALL, and SQLite allows at most
# 500 of those in one statement (SQLITE_MAX_COMPOUND_SELECT), 999 parameters before 3.32.
BOUNDS_PER_READ = 200

# The blocks that are Miningcore blocks (the node took them), as Miningcore names their status
# (AutoMapperProfile.cs: BlockStatus -> its name in lower case).
FOUND_STATUSES: dict[BlockStatus, str] = {
    BlockStatus.PENDING: "pending",
    BlockStatus.CONFIRMED: "confirmed",
    BlockStatus.ORPHANED: "orphaned",
}

# pithead's schemes as Miningcore's PayoutScheme enum names them (Configuration/ClusterConfig.cs).
PAYOUT_SCHEMES = {"pplns": "PPLNS", "prop": "PROP", "solo": "SOLO", "pps": "PPS"}

# Bitcoin Core's chain names as Miningcore's `networkType` gives them (NBitcoin's network names:
# Bitcoin/BitcoinJobManagerBase.cs sets it to `network.Name`).
NETWORK_TYPES = {"main": "Main", "test": "TestNet", "testnet4": "TestNet4", "signet": "Signet", "regtest": "RegTest"}


# Explorers per chain live in pithead.web.explorers (shared with pithead's own API).
EXPLORERS = _EXPLORERS

# The coin, as Miningcore's bitcoin template describes it (coins.json "bitcoin"; its algorithm is the
# header hasher's class name, Configuration/ClusterConfigExtensions.cs GetAlgorithmName).
BITCOIN = mc.McApiCoinConfig(type="BTC", name="Bitcoin", symbol="BTC", family="bitcoin", algorithm="Sha256D",
                           canonical_name="Bitcoin")


class SampleRange(Enum):
    """Miningcore's SampleRange (Persistence/Model/SampleRange.cs): the span of a history."""

    DAY = 1
    MONTH = 2
    HOUR = 3


class SampleInterval(Enum):
    """Miningcore's SampleInterval (Persistence/Model/SampleInterval.cs): the step of a pool history."""

    HOUR = 1
    DAY = 2


# A miner's history per range: (span, step) in seconds. Hour: three-minutely samples; day: hourly; month:
# daily (PoolApiController.GetMinerPerformanceInternal; StatsRepository's three-minutely/hourly/daily reads).
MINER_HISTORY: dict[SampleRange, tuple[int, int]] = {
    SampleRange.HOUR: (3600, 180),
    SampleRange.DAY: (86400, 3600),
    SampleRange.MONTH: (30 * 86400, 86400),
}

# The pool's history: the span per range (day, or Miningcore's 30-day month) and the step per interval;
# the hour range is refused ("invalid interval"), as GetPoolPerformanceAsync refuses it.
POOL_SPANS = {SampleRange.DAY: 86400, SampleRange.MONTH: 30 * 86400}
POOL_STEPS = {SampleInterval.HOUR: 3600, SampleInterval.DAY: 86400}


class MiningcoreError(Exception):
    """An answer Miningcore gives as an ApiException: the HTTP status and its plain message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- units -------------------------------------------------------------------------------------------


def coins(sat: int) -> float:
    """Satoshis as coins (one correctly rounded division, so 300000 sat prints as 0.003)."""
    return sat / SAT_PER_COIN


def iso_time(t: float) -> str:
    """UNIX seconds as System.Text.Json writes a UTC DateTime: whole seconds with a trailing Z, and a
    fraction only when there is one, without trailing zeros (2027-01-15T08:00:30Z, ...:30.25Z)."""
    moment = datetime.fromtimestamp(t, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def utc_day(t: float) -> float:
    """The start of t's UTC day (PostgreSQL's date_trunc('day', ...) in a UTC session)."""
    return float(math.floor(t / 86400) * 86400)


def worker_name(row_worker: str, address: str) -> str:
    """A worker's name as Miningcore keys it: the part after "address.", "" for the bare address."""
    if row_worker == address:
        return ""
    if row_worker.startswith(address + "."):
        return row_worker[len(address) + 1 :]
    return row_worker


def explorer_for(info: PoolInfo) -> Explorer | None:
    """The explorer of the pool's configured network (the node's chain must be that one)."""
    return explorer_for_network(info.network)


# --- rates -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    hashrate: float  # H/s
    shares_per_second: float


ZERO_RATE = Rate(0.0, 0.0)


def _rate(sums: WorkSums, now: float, start: float, first_seen: float | None, bucket_s: int, uptime: Uptime) -> Rate:
    seconds = observed_span(now, start, observed_since(first_seen, bucket_s), uptime)
    return Rate(sums.difficulty_sum * stats.HASHES_PER_DIFF1 / seconds, sums.shares / seconds)


@dataclass(frozen=True, slots=True)
class WindowRates:
    """Each worker's rate over HASHRATE_WINDOW_S, and the pool's."""

    pool: Rate
    by_worker: Mapping[str, Rate]  # only workers with a share in the window


def window_rates(
    store: StoreReader, rows: Sequence[WorkerRow], now: float, bucket_s: int, address: str | None = None
) -> WindowRates:
    """The rates of every worker (or those of `address`; `rows` are the same workers) in one grouped read."""
    start = window_start(now, HASHRATE_WINDOW_S, bucket_s)
    uptime = read_uptime(store, start, now, bucket_s)
    by_worker = store.work_windows_by_worker([start], address=address)
    first = {r.worker: r.first_seen for r in rows}
    rates = {
        w: _rate(sums[0], now, start, first.get(w), bucket_s, uptime)
        for w, sums in by_worker.items() if sums[0].shares > 0
    }
    pool = WorkSums(sum(s[0].shares for s in by_worker.values()), sum(s[0].difficulty_sum for s in by_worker.values()), 0.0)
    return WindowRates(_rate(pool, now, start, first_seen_of(rows), bucket_s, uptime), rates)


def miners_by_hashrate(
    rows: Sequence[WorkerRow], rates: WindowRates, now: float, range_h: int
) -> list[mc.McMinerPerformanceStats]:
    """Addresses with a share in the last `range_h` hours, fastest first (then the most recent share)."""
    since = now - range_h * 3600
    totals: dict[str, list[float]] = {}  # address -> [hashrate, shares/s, last share]
    for r in rows:
        if r.last_share_time is None or r.last_share_time < since:
            continue
        rate = rates.by_worker.get(r.worker, ZERO_RATE)
        t = totals.setdefault(r.address, [0.0, 0.0, 0.0])
        t[0] += rate.hashrate
        t[1] += rate.shares_per_second
        t[2] = max(t[2], r.last_share_time)
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1][0], -kv[1][2], kv[0]))
    return [mc.McMinerPerformanceStats(miner=a, hashrate=t[0], shares_per_second=t[1]) for a, t in ordered]


# --- blocks and effort -------------------------------------------------------------------------------


def found_blocks(store: StoreReader) -> list[BlockRecord]:
    """The Miningcore blocks (the node took them), newest first, up to HISTORY_ROWS."""
    return store.blocks(HISTORY_ROWS, statuses=list(FOUND_STATUSES))


def work_since_each(store: StoreReader, bounds: Sequence[float]) -> list[float]:
    """The pool's share difficulty since each bound, in grouped reads of BOUNDS_PER_READ."""
    out: list[float] = []
    for i in range(0, len(bounds), BOUNDS_PER_READ):
        out += [w.difficulty_sum for w in store.work_windows(bounds[i : i + BOUNDS_PER_READ])]
    return out


def efforts(store: StoreReader, rounds: Sequence[tuple[BlockRecord, float | None]], now: float) -> dict[str, float]:
    """Block hash -> effort, for (block, when its round began) pairs: the pool's share difficulty between
    the two over the block's network difficulty, in grouped reads. A round with no known start, or one that
    began before the statistics were pruned (COARSE_RETENTION_S), has none."""
    known = [
        (b, s) for b, s in rounds if s is not None and s >= now - COARSE_RETENTION_S and b.network_difficulty > 0
    ]
    bounds = sorted({t for b, s in known for t in (b.time, s)})
    since = dict(zip(bounds, work_since_each(store, bounds), strict=True))
    return {b.hash: max(0.0, since[s] - since[b.time]) / b.network_difficulty for b, s in known}


def block_out(pool_id: str, b: BlockRecord, effort: float | None, explorer: Explorer | None) -> mc.McBlock:
    confirmed = b.status is BlockStatus.CONFIRMED
    return mc.McBlock(
        pool_id=pool_id, block_height=b.height, network_difficulty=b.network_difficulty,
        status=FOUND_STATUSES[b.status],
        confirmation_progress=1.0 if confirmed else min(1.0, b.confirmations / COINBASE_MATURITY),
        effort=effort, reward=0.0 if b.status is BlockStatus.ORPHANED else coins(b.reward_sat),
        info_link=None if explorer is None else explorer.block.format(hash=b.hash),
        hash=b.hash, miner=b.address, created=iso_time(b.time),
    )


def blocks_page(
    store: StoreReader, pool_id: str, statuses: Sequence[BlockStatus], page: int, size: int,
    explorer: Explorer | None, now: float,
) -> tuple[list[mc.McBlock], int]:
    """One page of blocks in `statuses`, newest first, and the count of all Miningcore blocks (what
    Miningcore's v2 page count is over, whatever the state filter)."""
    every = found_blocks(store)
    wanted = set(statuses)
    # Each block's round runs from the found block before it, whatever its status.
    previous = {b.hash: (every[i + 1].time if i + 1 < len(every) else None) for i, b in enumerate(every)}
    chosen = [b for b in every if b.status in wanted][page * size : (page + 1) * size]
    if any(previous[b.hash] is None for b in chosen) and len(every) < HISTORY_ROWS:
        # the first block ever (every block is in the list): its round began with the first share
        previous[every[-1].hash] = first_seen_of(store.workers())
    effort = efforts(store, [(b, previous[b.hash]) for b in chosen], now)
    return [block_out(pool_id, b, effort.get(b.hash), explorer) for b in chosen], len(every)


# --- payments and balances ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaidItem:
    time: float
    address: str
    sat: int
    txid: str


def payments(store: StoreReader, address: str | None = None) -> list[PaidItem]:
    """Payout items that went out (sent or confirmed batches), newest first, of `address` or all."""
    out = []
    for batch in store.batches(statuses=[BatchStatus.SENT, BatchStatus.CONFIRMED], limit=HISTORY_ROWS):
        for a, sat in batch.items:
            if address is None or a == address:
                out.append(PaidItem(batch.created, a, sat, batch.txid or ""))
    out.sort(key=lambda p: -p.time)
    return out


def payment_out(p: PaidItem, explorer: Explorer | None) -> mc.McPayment:
    return mc.McPayment(
        coin=BITCOIN.type, address=p.address,
        address_info_link=None if explorer is None else explorer.address.format(address=p.address),
        amount=coins(p.sat), transaction_confirmation_data=p.txid,
        transaction_info_link=None if explorer is None or not p.txid else explorer.tx.format(txid=p.txid),
        created=iso_time(p.time),
    )


def balance_changes(store: StoreReader, pool_id: str, address: str) -> list[mc.McBalanceChange]:
    """What moved the address's Miningcore balance, newest first: confirmed credits in, payments out."""
    heights = {b.hash: b.height for b in store.blocks(HISTORY_ROWS)}
    changes: list[tuple[float, int, str]] = []
    for c in store.credits(address=address, limit=HISTORY_ROWS):
        if c.status is not CreditStatus.MATURE:
            continue  # immature credits are not in a Miningcore balance yet; void ones never were
        if c.kind is CreditKind.PPS:
            usage = "PPS payment for shares"
        elif c.block_hash in heights:
            usage = f"Reward for block {heights[c.block_hash]}"
        else:
            usage = "Reward"
        changes.append((c.time, c.amount_sat, usage))
    changes += [(p.time, -p.sat, "Balance reset after payment") for p in payments(store, address)]
    changes.sort(key=lambda c: -c[0])
    return [
        mc.McBalanceChange(pool_id=pool_id, address=address, amount=coins(sat), usage=usage, created=iso_time(t))
        for t, sat, usage in changes
    ]


def earnings_by_day(store: StoreReader, address: str) -> list[mc.McAmountByDate]:
    """Payments to the address summed per UTC day, newest day first (PaymentRepository's query)."""
    days: dict[float, int] = {}
    for p in payments(store, address):
        day = utc_day(p.time)
        days[day] = days.get(day, 0) + p.sat
    return [mc.McAmountByDate(amount=coins(sat), date=iso_time(day)) for day, sat in sorted(days.items(), reverse=True)]


# --- pools -------------------------------------------------------------------------------------------


def _stratum_port(url: str | None) -> tuple[str | None, int | None]:
    if not url or "://" not in url:
        return None, None
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return (host or None), (int(port) if port.isdigit() else None)


def pool_endpoints(info: PoolInfo) -> dict[str, mc.McPoolEndpoint]:
    """The Stratum port with its difficulty: pithead's vardiff as Miningcore's VarDiffConfig states one
    (its retarget comes every SLOW_SHARES shares once converged; it leaves the rate alone within a factor
    HYSTERESIS of the target, i.e. (HYSTERESIS - 1) x 100 % above it)."""
    host, port = _stratum_port(info.stratum_url)
    if port is None:
        return {}
    var_diff = mc.McVarDiffConfig(
        min_diff=info.min_difficulty, max_diff=info.max_difficulty, target_time=info.share_interval_s,
        retarget_time=SLOW_SHARES * info.share_interval_s, variance_percent=(HYSTERESIS - 1.0) * 100.0,
    )
    return {str(port): mc.McPoolEndpoint(listen_address=host, difficulty=info.start_difficulty, var_diff=var_diff)}


def connected_miners(live_workers: Iterable[str] | None, rates: WindowRates, rows: Sequence[WorkerRow]) -> int:
    """Addresses mining now: those of the live authorized connections when the pool is here, else those
    with a share in the hashrate window."""
    if live_workers is not None:
        return len({w.split(".", 1)[0] for w in live_workers})
    address = {r.worker: r.address for r in rows}
    return len({address.get(w, w) for w in rates.by_worker})


def network_stats(info: PoolInfo, network: NetworkStatus) -> mc.McBlockchainStats:
    chain = network.chain or info.network
    return mc.McBlockchainStats(
        network_type=NETWORK_TYPES.get(chain, chain), network_hashrate=network.network_hashrate_hps or 0.0,
        network_difficulty=network.difficulty or 0.0, block_height=network.height or 0, connected_peers=0,
        reward_type="POW",
    )


def pool_info(
    info: PoolInfo, store: StoreReader, network: NetworkStatus, now: float, bucket_s: int,
    live_workers: Iterable[str] | None, top_miners_range_h: int,
) -> mc.McPoolInfo:
    rows = store.workers()
    rates = window_rates(store, rows, now, bucket_s)
    blocks = found_blocks(store)
    last_block_time = blocks[0].time if blocks else None
    difficulty = network.difficulty or (blocks[0].network_difficulty if blocks else 0.0)
    effort = 0.0
    if last_block_time is not None and difficulty > 0:
        effort = work_since_each(store, [last_block_time])[0] / difficulty
    explorer = explorer_for(info)
    address = info.pool_address or ""
    return mc.McPoolInfo(
        id=info.pool_id,
        coin=BITCOIN,
        ports=pool_endpoints(info),
        payment_processing=mc.McApiPoolPaymentProcessingConfig(
            enabled=info.payouts_enabled, minimum_payment=coins(info.payout_threshold_sat),
            payout_scheme=PAYOUT_SCHEMES.get(info.scheme, info.scheme.upper()),
        ),
        client_connection_timeout=round(info.idle_timeout_s),
        job_rebroadcast_timeout=round(info.refresh_interval_s),
        block_refresh_interval=0,  # pithead hears of blocks by long poll or ZMQ, it does not poll
        pool_fee_percent=info.fee_percent,
        address=address,
        address_info_link=explorer.address.format(address=address) if explorer and address else None,
        pool_stats=mc.McPoolStats(
            last_pool_block_time=None if last_block_time is None else iso_time(last_block_time),
            connected_miners=connected_miners(live_workers, rates, rows),
            pool_hashrate=round(rates.pool.hashrate), shares_per_second=int(rates.pool.shares_per_second),
        ),
        network_stats=network_stats(info, network),
        top_miners=miners_by_hashrate(rows, rates, now, top_miners_range_h)[:TOP_MINERS],
        total_paid=coins(miner_money(store.balances()).paid_sat),
        total_blocks=len(blocks),
        last_pool_block_time=None if last_block_time is None else iso_time(last_block_time),
        pool_effort=effort,
    )


def pool_performance(
    store: StoreReader, network: NetworkStatus, now: float, bucket_s: int, span_s: int, step_s: int
) -> list[mc.McAggregatedPoolStats]:
    """The pool's rate and miners per step over the span, oldest first; steps without work are absent."""
    since = math.floor((now - span_s) / step_s) * step_s
    work = store.work_history(since, step_s)
    active = {int(start): addresses for start, _, addresses in store.active_history(since, step_s)}
    uptime = read_uptime(store, since, now, bucket_s)
    observed = observed_since(first_seen_of(store.workers()), bucket_s)
    out = []
    for start, sums in work:
        seconds = max(MIN_OBSERVED_S, step_exposure(start, min(start + step_s, now), observed, uptime))
        out.append(mc.McAggregatedPoolStats(
            pool_hashrate=sums.difficulty_sum * stats.HASHES_PER_DIFF1 / seconds,
            connected_miners=active.get(int(start), 0), valid_shares_per_second=int(sums.shares / seconds),
            network_hashrate=network.network_hashrate_hps or 0.0, network_difficulty=network.difficulty or 0.0,
            created=iso_time(start),
        ))
    return out


# --- miners ------------------------------------------------------------------------------------------


def miner_history(
    store: StoreReader, address: str, rows: Sequence[WorkerRow], now: float, bucket_s: int, span_s: int, step_s: int
) -> list[mc.McWorkerPerformanceStatsContainer]:
    """The address's workers per step over the span, oldest first (one grouped read); steps without work
    are absent."""
    since = math.floor((now - span_s) / step_s) * step_s
    uptime = read_uptime(store, since, now, bucket_s)
    first = {r.worker: r.first_seen for r in rows}
    steps: dict[float, dict[str, mc.McWorkerPerformanceStats]] = {}
    for worker, history in store.work_history_by_worker(since, step_s, address=address).items():
        observed = observed_since(first.get(worker), bucket_s)
        for start, sums in history:
            seconds = max(MIN_OBSERVED_S, step_exposure(start, min(start + step_s, now), observed, uptime))
            steps.setdefault(start, {})[worker_name(worker, address)] = mc.McWorkerPerformanceStats(
                hashrate=sums.difficulty_sum * stats.HASHES_PER_DIFF1 / seconds,
                shares_per_second=sums.shares / seconds,
            )
    return [mc.McWorkerPerformanceStatsContainer(created=iso_time(t), workers=w) for t, w in sorted(steps.items())]


def miner_stats(
    store: StoreReader, address: str, now: float, bucket_s: int, mode: SampleRange, explorer: Explorer | None
) -> mc.McMinerStats:
    rows = store.workers(address=address)
    rates = window_rates(store, rows, now, bucket_s, address=address)
    workers = {
        worker_name(w, address): mc.McWorkerPerformanceStats(hashrate=r.hashrate, shares_per_second=r.shares_per_second)
        for w, r in sorted(rates.by_worker.items())
    }
    blocks = found_blocks(store)
    round_start = blocks[0].time if blocks else 0.0
    balance = balance_of(store.balances(), address)
    paid = payments(store, address)
    today = utc_day(now)
    span_s, step_s = MINER_HISTORY[mode]
    return mc.McMinerStats(
        pending_shares=store.work_since(round_start, address=address).difficulty_sum,
        pending_balance=0.0 if balance is None else coins(max(0, balance.mature_sat - balance.paid_sat)),
        total_paid=0.0 if balance is None else coins(balance.paid_sat),
        today_paid=coins(sum(p.sat for p in paid if p.time >= today)),
        last_payment=iso_time(paid[0].time) if paid else None,
        last_payment_link=explorer.tx.format(txid=paid[0].txid) if paid and explorer and paid[0].txid else None,
        performance=mc.McWorkerPerformanceStatsContainer(created=iso_time(now), workers=workers) if workers else None,
        performance_samples=miner_history(store, address, rows, now, bucket_s, span_s, step_s),
    )

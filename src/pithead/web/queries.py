"""Builds the API's answers from the ledger store: hashrate windows, workers, address pages, blocks.

Plain synchronous functions over a `StoreReader` and the time passed in (FastAPI runs them in its
thread pool, so a slow database never blocks the event loop). Hashrate windows, their alignment to the
statistics buckets and the estimates with their 90% interval are the ledger's (`pithead.ledger.ledger`,
`pithead.ledger.stats`), read in one statement per answer (one grouped statement for a list of workers,
not one per worker); below the reliability threshold the API gives no number and says "too few shares
to estimate". Each window's rate is over the part of it observed (`observed_s`: the window clipped to the
first share ever seen of the worker, address or pool, and of that only the time the pool was up, from the
uptime its ledger records, `pithead.ledger.uptime`), so a pool minutes old, or one restarted after an
outage, reads its true rate, not the rate diluted over time it was not running. The charts clip each step
the same way. A ledger with no uptime on record (older than the record) is read as always up. Who counts
as online and what miners' money sums to are the ledger's rules too. The web reads through a
`StoreReader` (a read-only connection), not through a `Ledger`, and its pool summary and charts differ
from `Ledger.pool_summary` / `Ledger.hashrate_history` on purpose: blocks found leave out those the node
rejected, and every chart step gets a point (zero when idle or down).

This module does not write anything and does not know about HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pithead.ledger import stats
from pithead.ledger.ledger import (
    FINE_BUCKET_S,
    HASHRATE_WINDOWS,
    MAX_QUERY_ROWS,
    balance_of,
    first_seen_of,
    is_online,
    miner_money,
    observed_since,
    uptime_for_windows,
    window_estimates,
    window_starts,
    windows_by_worker,
)
from pithead.ledger.store.records import (
    Balance,
    BlockRecord,
    BlockStatus,
    CreditRecord,
    PayoutBatch,
    ShareRow,
    WorkerRow,
    WorkSums,
)
from pithead.ledger.uptime import Uptime, read_uptime
from pithead.web.models import (
    AddressPage,
    BalanceOut,
    BlockOut,
    Credit,
    Hashrate,
    HashrateHistory,
    Payout,
    PayoutItem,
    Point,
    PoolSummaryOut,
    Rejects,
    Share,
    Worker,
)
from pithead.web.services import Services, StoreReader

# The hashrate windows the dashboard shows: the ledger's.
WINDOWS: tuple[tuple[str, int], ...] = HASHRATE_WINDOWS

# Chart ranges and their point spacing: about 60-300 points per chart keeps it light and readable.
RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "6h": (6 * 3600, 300),
    "1d": (86400, 900),
    "7d": (7 * 86400, 3600),
}

# Largest page any list endpoint returns, so one request cannot ask the database for everything: the
# ledger's bound on what one query returns.
MAX_LIMIT = MAX_QUERY_ROWS

TOO_FEW = "too few shares to estimate"

FOUND_STATUSES = (BlockStatus.PENDING, BlockStatus.CONFIRMED, BlockStatus.ORPHANED)


def _hashrates(
    now: float, starts: Sequence[float], sums: Sequence[WorkSums], first_seen: float | None, bucket_s: int,
    uptime: Uptime,
) -> list[Hashrate]:
    out = []
    estimates = window_estimates(now, starts, sums, first_seen=first_seen, bucket_s=bucket_s, uptime=uptime)
    for (name, window_s), est in zip(WINDOWS, estimates.values(), strict=True):
        ok = est.reliable
        out.append(
            Hashrate(
                window=name,
                window_s=window_s,
                span_s=est.span_s,
                observed_s=est.observed_s,
                shares=est.shares,
                difficulty_sum=est.difficulty_sum,
                hashrate_hps=est.hashrate if ok else None,
                low_hps=est.low if ok else None,
                high_hps=est.high if ok else None,
                enough_shares=ok,
                note=None if ok else f"{TOO_FEW} ({est.shares} of {stats.MIN_SHARES_RELIABLE} needed)",
            )
        )
    return out


def hashrate_windows(
    store: StoreReader, now: float, bucket_s: int, worker: str | None = None, address: str | None = None, *,
    first_seen: float | None, uptime: Uptime | None = None,
) -> list[Hashrate]:
    """The windows of a worker, an address or the pool; `first_seen` is its first share ever seen (the
    worker's, or the earliest of the address's or the pool's workers), where observation began; `uptime`
    when the pool was up (read from the store when not given)."""
    starts = window_starts(now, bucket_s)
    sums = store.work_windows(starts, worker=worker, address=address)
    up = uptime_for_windows(store, now, bucket_s) if uptime is None else uptime
    return _hashrates(now, starts, sums, first_seen, bucket_s, up)


def first_seen_for(store: StoreReader, worker: str | None = None, address: str | None = None) -> float | None:
    """The first share ever seen of a worker, an address's workers or (neither given) the pool's."""
    if worker is not None:
        row = store.worker(worker)
        return row.first_seen if row is not None and address in (None, row.address) else None
    return first_seen_of(store.workers(address=address))


def rate(difficulty_sum: float, span_s: float) -> float:
    """Hashes per second for a chart point (charts show the trend; the cards carry the interval)."""
    return 0.0 if span_s <= 0 else difficulty_sum * stats.HASHES_PER_DIFF1 / span_s


def step_exposure(start: float, end: float, observed: float | None, uptime: Uptime) -> float:
    """The seconds of a chart step [start, end] a point's work is over: from when observation began (the
    bucket of the first share ever seen), and of that the time the pool was up. Work in a step with no
    up-time on record (the end of a crashed run, past its last heartbeat) is spread over the step
    observed, as before uptime was recorded, rather than read as infinite."""
    begin = start if observed is None else max(start, observed)
    return uptime.covered(begin, end) or end - begin


def history(
    store: StoreReader, now: float, range_name: str, worker: str | None = None, address: str | None = None,
    bucket_s: int = FINE_BUCKET_S,
) -> HashrateHistory:
    span_s, step = RANGES[range_name]
    since = math.floor((now - span_s) / step) * step
    rows = store.work_history(since, step, worker=worker, address=address)
    by_start = {int(start): sums for start, sums in rows}
    observed = observed_since(first_seen_for(store, worker, address), bucket_s)
    uptime = read_uptime(store, since, now, bucket_s)
    points = []
    # Every step gets a point (zero when idle or down) so the chart shows gaps as drops, not as lines.
    start = int(since)
    while start <= now:
        sums = by_start.get(start)
        # The newest point covers only the part of its step that has elapsed, the first one only the part
        # after observation began (the bucket of the first share ever seen), and any of them only the time
        # the pool was up, as the hashrate windows do.
        value = 0.0
        if sums is not None:
            value = rate(sums.difficulty_sum, step_exposure(start, min(start + step, now), observed, uptime))
        points.append(Point(time=start, hashrate_hps=value, shares=sums.shares if sums else 0))
        start += step
    return HashrateHistory(range=range_name, bucket_s=step, worker=worker, address=address, points=points)


def rejects(store: StoreReader, now: float, window_s: int, name: str, **who: str | None) -> Rejects:
    by_reason = store.rejects_since(now - window_s, worker=who.get("worker"), address=who.get("address"))
    return Rejects(window=name, total=sum(by_reason.values()), by_reason=by_reason)


def workers_out(
    store: StoreReader, rows: Sequence[WorkerRow], now: float, bucket_s: int, uptime: Uptime | None = None
) -> list[Worker]:
    """The API's view of `rows`, their hashrate windows read in one grouped statement, not one per worker
    (and the pool's uptime once for all of them, when not given)."""
    starts = window_starts(now, bucket_s)
    sums = windows_by_worker(store, now, rows, bucket_s)
    up = uptime_for_windows(store, now, bucket_s) if uptime is None else uptime
    return [_worker(row, _hashrates(now, starts, sums[row.worker], row.first_seen, bucket_s, up), now) for row in rows]


def worker_out(store: StoreReader, row: WorkerRow, now: float, bucket_s: int) -> Worker:
    return _worker(row, hashrate_windows(store, now, bucket_s, worker=row.worker, first_seen=row.first_seen), now)


def _worker(row: WorkerRow, hashrate: list[Hashrate], now: float) -> Worker:
    return Worker(
        worker=row.worker,
        address=row.address,
        first_seen=row.first_seen,
        last_share_time=row.last_share_time,
        last_difficulty=row.last_difficulty,
        best_share=row.best_share,
        accepted=row.accepted,
        rejected=row.rejected,
        hashrate=hashrate,
        online=is_online(row.last_share_time, now),
    )


def share_out(r: ShareRow) -> Share:
    return Share(
        id=r.id, time=r.time, worker=r.worker, address=r.address, difficulty=r.difficulty,
        share_difficulty=r.share_difficulty, height=r.height,
    )


def block_out(b: BlockRecord) -> BlockOut:
    return BlockOut(
        hash=b.hash, height=b.height, time=b.time, worker=b.worker, address=b.address,
        reward_sat=b.reward_sat, fees_sat=b.fees_sat, status=str(b.status), confirmations=b.confirmations,
        scheme=b.scheme, network_difficulty=b.network_difficulty, node_result=b.node_result,
    )


def credit_out(c: CreditRecord) -> Credit:
    return Credit(
        address=c.address, amount_sat=c.amount_sat, kind=str(c.kind), status=str(c.status), time=c.time,
        block_hash=c.block_hash,
    )


def balance_out(b: Balance) -> BalanceOut:
    return BalanceOut(
        address=b.address, immature_sat=b.immature_sat, mature_sat=b.mature_sat, reserved_sat=b.reserved_sat,
        paid_sat=b.paid_sat, payable_sat=b.payable_sat,
    )


def payout_out(p: PayoutBatch) -> Payout:
    return Payout(
        id=p.id, created=p.created, updated=p.updated, status=str(p.status), txid=p.txid, total_sat=p.total_sat,
        items=[PayoutItem(address=a, amount_sat=s) for a, s in p.items], error=p.error,
    )


# A worker with a share this recent counts as active on the pool summary.
ACTIVE_S = 3600


def pool_summary(services: Services, store: StoreReader, now: float, connections: int | None) -> PoolSummaryOut:
    """The pool's card. Its workers are read as one summing statement (`worker_totals`), never a row per
    worker, and only workers with an accepted share are in the book: a flood of names sending rejected work
    adds to the reject counts, not to what this costs."""
    info = services.info
    totals = store.worker_totals(now - ACTIVE_S)
    money = miner_money(store.balances())
    # "Found" means the node took it at submission: pending, confirmed, or orphaned later; never rejected.
    found = store.blocks(MAX_LIMIT, statuses=FOUND_STATUSES)
    blocks = found[:1]
    return PoolSummaryOut(
        name=info.name,
        mode=info.mode,
        scheme=info.scheme,
        fee_percent=info.fee_percent,
        network=info.network,
        stratum_url=info.stratum_url,
        time=now,
        hashrate=hashrate_windows(store, now, services.bucket_width_s, first_seen=totals.first_seen),
        workers=totals.workers,
        active_workers=totals.active,
        connections=connections,
        accepted_shares=totals.accepted,
        rejected_shares=totals.rejected + totals.rejected_unknown,
        rejects_1h=rejects(store, now, 3600, "1h"),
        blocks_found=len(found),
        last_block_height=blocks[0].height if blocks else None,
        last_block_time=blocks[0].time if blocks else None,
        best_share=totals.best_share,
        immature_sat=money.immature_sat,
        payable_sat=money.payable_sat,
        paid_sat=money.paid_sat,
    )


def address_page(services: Services, store: StoreReader, address: str, now: float, limit: int) -> AddressPage:
    workers = store.workers(address=address)
    balance = balance_of(store.balances(), address) or Balance(address, 0, 0, 0, 0)
    payouts = [p for p in store.batches(limit=MAX_LIMIT) if any(a == address for a, _ in p.items)][:limit]
    blocks = [b for b in store.blocks(MAX_LIMIT) if b.address == address][:limit]
    uptime = uptime_for_windows(store, now, services.bucket_width_s)
    return AddressPage(
        address=address,
        known=bool(workers),
        hashrate=hashrate_windows(
            store, now, services.bucket_width_s, address=address, first_seen=first_seen_of(workers), uptime=uptime
        ),
        workers=workers_out(store, workers, now, services.bucket_width_s, uptime),
        best_share=max((w.best_share for w in workers), default=0.0),
        accepted_shares=sum(w.accepted for w in workers),
        rejected_shares=sum(w.rejected for w in workers),
        rejects_1h=rejects(store, now, 3600, "1h", address=address),
        balance=balance_out(balance),
        credits=[credit_out(c) for c in store.credits(address=address, limit=limit)],
        payouts=[payout_out(p) for p in payouts],
        blocks=[block_out(b) for b in blocks],
        recent_shares=[share_out(s) for s in store.recent_shares(limit, address=address)],
    )

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

Block withholding evidence (`pithead.ledger.withholding`) is read as the ledger keeps it (blocks expected
and found per worker and address, and whether each is flagged: the flag is the ledger's, with its
hysteresis) and the probabilities are computed here from those two numbers; the pool's luck is over all
its counted work and over its last blocks' efforts.

This module does not write anything and does not know about HTTP.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from pithead.ledger import stats, withholding
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
from pithead.ledger.maturity import COINBASE_MATURITY
from pithead.ledger.store.records import (
    Balance,
    BlockOdds,
    BlockRecord,
    BlockStatus,
    CreditRecord,
    HoldEntry,
    OddsKind,
    PayoutBatch,
    PayoutHold,
    ShareRow,
    WorkerRow,
    WorkSums,
)
from pithead.ledger.uptime import Uptime, read_uptime
from pithead.web.explorers import Explorer, explorer_for_network
from pithead.web.models import (
    AddressPage,
    BalanceOut,
    BlockChance,
    BlockOut,
    ConnectInfo,
    Credit,
    Hashrate,
    HashrateHistory,
    HoldEntryOut,
    LuckOut,
    MinerExample,
    OddsOut,
    Payout,
    PayoutHoldOut,
    PayoutItem,
    Point,
    PoolSummaryOut,
    Rejects,
    Share,
    Suspect,
    WithholdingReport,
    Worker,
)
from pithead.web.services import PoolInfo, Services, StoreReader

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
    (and the pool's uptime once for all of them, when not given), their withholding evidence in another."""
    starts = window_starts(now, bucket_s)
    sums = windows_by_worker(store, now, rows, bucket_s)
    up = uptime_for_windows(store, now, bucket_s) if uptime is None else uptime
    evidence = {o.name: o for o in store.block_odds(OddsKind.WORKER, [r.worker for r in rows])} if rows else {}
    return [
        _worker(row, _hashrates(now, starts, sums[row.worker], row.first_seen, bucket_s, up), now,
                evidence.get(row.worker))
        for row in rows
    ]


def worker_out(store: StoreReader, row: WorkerRow, now: float, bucket_s: int) -> Worker:
    found = store.block_odds(OddsKind.WORKER, [row.worker])
    return _worker(row, hashrate_windows(store, now, bucket_s, worker=row.worker, first_seen=row.first_seen), now,
                   found[0] if found else None)


def odds_out(row: BlockOdds | None) -> OddsOut | None:
    """The evidence of one worker or address, its probabilities computed from its two figures."""
    if row is None:
        return None
    odds = withholding.assess(row.expected, row.found)
    return OddsOut(
        expected_blocks=row.expected, blocks_found=row.found, p_value=odds.p_value, anytime_p=odds.anytime_p,
        luck=odds.luck, unpriced_shares=row.unpriced, since=row.since, flagged=row.flagged_since is not None,
        flagged_since=row.flagged_since,
    )


def _worker(row: WorkerRow, hashrate: list[Hashrate], now: float, evidence: BlockOdds | None = None) -> Worker:
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
        withholding=odds_out(evidence),
    )


def share_out(r: ShareRow) -> Share:
    return Share(
        id=r.id, time=r.time, worker=r.worker, address=r.address, difficulty=r.difficulty,
        share_difficulty=r.share_difficulty, height=r.height,
    )


# Bitcoin's target block spacing (Core's nPowTargetSpacing): what a maturity ETA counts per block.
BLOCK_SPACING_S = 600.0


def block_out(b: BlockRecord, explorer: Explorer | None = None) -> BlockOut:
    confirmations = max(0, b.confirmations)
    maturing = b.status is BlockStatus.PENDING
    return BlockOut(
        hash=b.hash, height=b.height, time=b.time, worker=b.worker, address=b.address,
        reward_sat=b.reward_sat, fees_sat=b.fees_sat, status=str(b.status), confirmations=b.confirmations,
        scheme=b.scheme, network_difficulty=b.network_difficulty, node_result=b.node_result, effort=b.effort,
        maturity_progress=1.0 if b.status is BlockStatus.CONFIRMED else min(1.0, confirmations / COINBASE_MATURITY),
        maturity_eta_s=max(0, COINBASE_MATURITY - confirmations) * BLOCK_SPACING_S if maturing else None,
        # a block the node never took is on no public chain: no link
        explorer_url=explorer.block_url(b.hash) if explorer and b.status in FOUND_STATUSES else None,
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


def payout_out(p: PayoutBatch, explorer: Explorer | None = None) -> Payout:
    return Payout(
        id=p.id, created=p.created, updated=p.updated, status=str(p.status), txid=p.txid, total_sat=p.total_sat,
        items=[PayoutItem(address=a, amount_sat=s) for a, s in p.items], error=p.error,
        explorer_url=explorer.tx_url(p.txid) if explorer and p.txid else None,
    )


DAY_S = 86_400.0


def block_chance(hashrates: Sequence[Hashrate], network_difficulty: float | None,
                 network_hashrate_hps: float | None = None) -> BlockChance:
    """The odds of a block for these hashrate windows at `network_difficulty` (pure). The 1h estimate is
    used, else the shortest window with enough shares; a block needs difficulty x 2^32 hashes on average
    (HASHES_PER_DIFF1), and blocks arrive as a Poisson process, so P(>= 1 in 24 h) = 1 - exp(-24 h / mean)."""
    usable = [h for h in hashrates if h.enough_shares and h.hashrate_hps]
    chosen = next((h for h in usable if h.window == "1h"), usable[0] if usable else None)
    if not network_difficulty or network_difficulty <= 0:
        return BlockChance(hashrate_hps=chosen.hashrate_hps if chosen else None, window=chosen.window if chosen else None,
                           network_difficulty=None, expected_block_s=None, chance_24h=None, chance_per_block=None,
                           note="the node's difficulty is not known yet")
    if chosen is None or not chosen.hashrate_hps:
        return BlockChance(hashrate_hps=None, window=None, network_difficulty=network_difficulty, expected_block_s=None,
                           chance_24h=None, chance_per_block=None, note="too few shares to estimate a hashrate")
    expected = network_difficulty * stats.HASHES_PER_DIFF1 / chosen.hashrate_hps
    share = None
    if network_hashrate_hps and network_hashrate_hps > 0:
        share = min(1.0, chosen.hashrate_hps / network_hashrate_hps)
    return BlockChance(hashrate_hps=chosen.hashrate_hps, window=chosen.window, network_difficulty=network_difficulty,
                       expected_block_s=expected, chance_24h=-math.expm1(-DAY_S / expected), chance_per_block=share)


def connect_info(info: PoolInfo) -> ConnectInfo:
    """How to point a miner here: the stratum URL, the user format, and where each go on the usual miners
    (the field names as each one's own screen shows them)."""
    urls = [info.stratum_url] if info.stratum_url else []
    url = urls[0] if urls else "stratum+tcp://HOST:PORT"
    host_port = url.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    user = "ADDRESS.worker"
    prefix = {"main": "bc1… / 1… / 3…", "regtest": "bcrt1…"}.get(info.network, "tb1… / m… / n… / 2…")
    return ConnectInfo(
        stratum_urls=urls, user=user, password="x", network=info.network, mode=info.mode,
        address_hint=f"a {info.network} address ({prefix})",
        examples=[
            MinerExample(miner="cgminer / bfgminer / cpuminer", settings={
                "command": f"cgminer -o {url} -u {user} -p x"}),
            MinerExample(miner="Bitaxe (AxeOS: Settings)", settings={
                "Stratum URL": host, "Stratum Port": port, "Stratum User": user, "Stratum Password": "x"}),
            MinerExample(miner="Antminer (Miner Configuration)", settings={
                "Pool URL": url, "Worker": user, "Password": "x"}),
        ],
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
    luck, round_effort = pool_luck(store)
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
        luck=luck,
        round_effort=round_effort,
        withholding_flagged=sum(store.flagged_counts().values()),
        payouts_held=len(store.payout_holds()),
    )


def luck_out(span: str, luck: withholding.Luck) -> LuckOut:
    return LuckOut(span=span, blocks=luck.blocks, expected_blocks=luck.expected, luck=luck.luck, low=luck.low,
                high=luck.high)


def pool_luck(store: StoreReader) -> tuple[list[LuckOut], float | None]:
    """The pool's luck over all its counted work and over its last blocks (`withholding.LUCK_BLOCK_SPANS`,
    those with an effort on record), and the current round's effort so far."""
    rows = {(o.kind, o.name): o for o in (*store.block_odds(OddsKind.POOL, [""]), *store.block_odds(OddsKind.ROUND, [""]))}
    pool, current = rows.get((OddsKind.POOL, "")), rows.get((OddsKind.ROUND, ""))
    out = [luck_out("all", withholding.luck_over_work(pool.found if pool else 0, pool.expected if pool else 0.0))]
    efforts = [b.effort for b in store.blocks(max(withholding.LUCK_BLOCK_SPANS))]
    for n in withholding.LUCK_BLOCK_SPANS:
        counted = [e for e in efforts[:n] if e is not None]
        out.append(luck_out(f"last {n}", withholding.luck_over_blocks(counted)))
    return out, None if current is None else current.expected


def hold_out(h: PayoutHold) -> PayoutHoldOut:
    return PayoutHoldOut(address=h.address, since=h.since, worker=h.worker, actor=h.actor, reason=h.reason)


def hold_entry_out(e: HoldEntry) -> HoldEntryOut:
    try:
        evidence = json.loads(e.evidence)
    except ValueError:
        evidence = {"unreadable": e.evidence}
    return HoldEntryOut(id=e.id, time=e.time, action=str(e.action), address=e.address, worker=e.worker,
                        actor=e.actor, auth=e.auth, reason=e.reason,
                        evidence=evidence if isinstance(evidence, dict) else {"value": evidence})


# Rows a withholding report lists at most (flagged ones, and the least likely): each is one worker lookup.
MAX_SUSPECTS = 200


def withholding_report(services: Services, store: StoreReader, limit: int, address: str | None = None) -> WithholdingReport:
    """Flagged workers and addresses, the least likely workers (flagged or not, lowest p_value first), the
    holds and their log, and the pool's luck; for one `address`, only its own workers, flags and holds."""
    limit = min(limit, MAX_SUSPECTS)
    holds = store.payout_holds()
    held = {h.address for h in holds}
    if address is not None:
        mine = {w.worker: w.address for w in store.workers(address=address)}
        candidates = store.block_odds(OddsKind.WORKER, list(mine)) if mine else []
        flagged_rows = [r for r in store.flagged_odds(MAX_LIMIT) if r.name == address or r.name in mine]
    else:
        # the least likely are among those furthest short of expectation: read those, rank by p_value
        candidates = store.odds_by_deficit(OddsKind.WORKER, MAX_LIMIT)
        flagged_rows = store.flagged_odds(limit)
    ranked = sorted(candidates, key=lambda r: (withholding.poisson_cdf(r.found, r.expected), r.name))[:limit]
    addresses: dict[str, str] = {}

    def suspect(row: BlockOdds) -> Suspect:
        if row.kind is OddsKind.ADDRESS:
            owner = row.name
        else:
            if row.name not in addresses:
                w = store.worker(row.name)
                addresses[row.name] = w.address if w is not None else ""
            owner = addresses[row.name]
        odds = odds_out(row)
        assert odds is not None
        return Suspect(kind=str(row.kind), name=row.name, address=owner, odds=odds, payouts_held=owner in held)

    luck, round_effort = pool_luck(store)
    level = services.info.withholding_level
    return WithholdingReport(
        level=level,
        min_expected_blocks=withholding.min_expected_blocks(level),
        luck=luck,
        round_effort=round_effort,
        flagged=[suspect(r) for r in flagged_rows[:limit]],
        least_likely=[suspect(r) for r in ranked],
        holds=[hold_out(h) for h in holds if address is None or h.address == address],
        hold_log=[hold_entry_out(e) for e in store.payout_hold_log(limit, address=address)],
    )


def address_hashrate(services: Services, store: StoreReader, address: str, now: float) -> list[Hashrate]:
    """The address's hashrate windows alone (what its block odds need)."""
    workers = store.workers(address=address)
    return hashrate_windows(store, now, services.bucket_width_s, address=address, first_seen=first_seen_of(workers),
                            uptime=uptime_for_windows(store, now, services.bucket_width_s))


def address_page(services: Services, store: StoreReader, address: str, now: float, limit: int) -> AddressPage:
    explorer = explorer_for_network(services.info.network)
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
        payouts=[payout_out(p, explorer) for p in payouts],
        blocks=[block_out(b, explorer) for b in blocks],
        recent_shares=[share_out(s) for s in store.recent_shares(limit, address=address)],
        withholding=odds_out(next(iter(store.block_odds(OddsKind.ADDRESS, [address])), None)),
        payout_hold=next((hold_out(h) for h in store.payout_holds() if h.address == address), None),
    )

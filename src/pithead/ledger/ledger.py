"""The `Ledger` service: records shares and blocks, credits rewards by scheme, rolls up, answers queries.

It takes batches of `ShareEvent`/`BlockEvent` (from an `EventSource`, see `pithead.ledger.bus.source`) and
writes each batch, with its credits and the source's cursor, in one store transaction, so a crash either
keeps a whole batch or none of it. In that transaction it also adds each accepted share's chance of
solving a block, min(1, d/D) with D the network difficulty in force for it (the share's own, else the last
one the ledger was told), to its worker's, its address's and the pool's blocks expected, counts each block
as found for its worker, its address and the pool, records each block's effort, and flags (or unflags) the
workers and addresses whose figures say withholding (`pithead.ledger.withholding`); a change of flag is
raised as a `Notice` to the `NoticeSink` it was handed, once the transaction has committed. Block maturity
lives in `pithead.ledger.maturity`, payouts in `pithead.ledger.payouts`; both work on the same store.

Synchronous on purpose: every call is a short database transaction. The asyncio shells (the consumer
loop, the maturity and payout tasks) run it in a worker thread. Time always comes in as an argument.
The reward arithmetic itself is in `pithead.ledger.schemes` (pure); this module only gathers its inputs.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pithead import config as config_mod
from pithead.events import BlockEvent, InvalidEvent, Notice, NoticeSink, ShareEvent, validate
from pithead.ledger import schemes, withholding
from pithead.ledger.notices import block_recorded
from pithead.ledger.schemes import POOL_ACCOUNT, PricedWork, Scheme, Work
from pithead.ledger.stats import HASHES_PER_DIFF1, HashrateEstimate, estimate
from pithead.ledger.store.base import LedgerStore, StoreReader, iter_newest
from pithead.ledger.store.records import (
    Balance,
    BlockOdds,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
    OddsDelta,
    OddsKind,
    PayoutBatch,
    ShareRow,
    WorkerRow,
    WorkSums,
    lost_a_race,
)
from pithead.ledger.uptime import Uptime, read_uptime

log = logging.getLogger(__name__)

# Statistics buckets: fine ones for the dashboard's 1m..1d windows, coarse ones for history.
FINE_BUCKET_S = 10  # a 1-minute window is then counted over 60-70 s, not 60-120 s
FINE_RETENTION_S = 26 * 3600  # the longest window (1 d) plus slack for late rollups
COARSE_BUCKET_S = 3600  # hourly history after a day
COARSE_RETENTION_S = 90 * 86400  # three months of hourly history per worker, then gone
# Rejects of workers that never had an accepted share (pool-wide, by reason and remote): kept as long as
# the fine buckets, enough for the longest window a reject count is shown over (1 d), then gone.
REJECT_STATS_RETENTION_S = FINE_RETENTION_S

# The hashrate windows the ledger reports (and the dashboard shows, as in most pools' UIs), shortest first.
HASHRATE_WINDOWS: tuple[tuple[str, int], ...] = (("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400))
HASHRATE_WINDOWS_S: tuple[int, ...] = tuple(seconds for _, seconds in HASHRATE_WINDOWS)

# Raw shares are kept for the reward window only. PPLNS needs the last N x D of share difficulty; we keep
# this multiple of it so that a rise in network difficulty before the next block still finds the shares.
RAW_WINDOW_SAFETY = 2.0
# ...and at least this long whatever the scheme, for the dashboard's "recent shares".
RAW_MIN_RETENTION_S = 3600
# Rows fetched per query when walking shares newest first (PPLNS window, rollup boundary).
SHARE_PAGE = 5000

# A worker with a share this recent is online (the API and metrics say so too). Three vardiff intervals at
# the default 10 s target is 30 s; a slow CPU miner at minimum difficulty may take minutes, so ten.
ONLINE_S = 600

# Bounds on what query methods return, so a web request can never ask for the whole table.
MAX_QUERY_ROWS = 1000
MAX_HISTORY_POINTS = 2000  # points in one hashrate chart (a week at 5-minute steps)


class LedgerError(RuntimeError):
    """A ledger operation that cannot proceed (bad settings, inconsistent store)."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    scheme: Scheme = Scheme.PPLNS
    fee_ppm: int = 10_000
    pplns_n: float = 2.0
    payout_threshold_sat: int = 100_000
    # The chance an honest worker is ever flagged as withholding (`pithead.ledger.withholding`).
    withholding_level: float = withholding.DEFAULT_LEVEL

    @classmethod
    def from_config(cls, cfg: config_mod.LedgerConfig) -> LedgerSettings:
        """From `[ledger]` (checked by `pithead.config.validate`: a known scheme, a fee under 100 %, a
        positive threshold and PPLNS N, a withholding level in range)."""
        config_mod.validate(cfg)
        return cls(Scheme(cfg.scheme), schemes.fee_ppm_from_percent(cfg.pool_fee_percent), cfg.pplns_n,
                   cfg.payout_threshold_sat, withholding.check_level(cfg.withholding_level))


@dataclass(frozen=True, slots=True)
class ApplyResult:
    shares: int = 0
    rejects: int = 0
    blocks: tuple[str, ...] = ()
    pps_credited_sat: int = 0
    pps_unpriced: int = 0  # PPS shares that could not be priced (no network difficulty known)
    invalid: int = 0  # events refused by `events.validate` (logged and skipped, never fatal)
    flagged: tuple[str, ...] = ()  # workers and addresses flagged as withholding by this batch
    unflagged: tuple[str, ...] = ()  # ... and those whose flag this batch lifted


@dataclass(frozen=True, slots=True)
class RollupResult:
    shares_deleted: int
    buckets_coarsened: int
    buckets_deleted: int
    uptime_runs_deleted: int = 0
    reject_stats_deleted: int = 0


@dataclass(frozen=True, slots=True)
class WorkStats:
    """What the dashboard shows for a worker, an address or the pool."""

    hashrate: dict[int, HashrateEstimate]  # window seconds -> estimate
    rejects: dict[str, int]  # reason -> count over the longest window
    best_share: float  # all time (workers), or over the longest window (pool)
    last_share_time: float | None


@dataclass(frozen=True, slots=True)
class WorkerStats:
    worker: WorkerRow
    stats: WorkStats


@dataclass(frozen=True, slots=True)
class AddressStats:
    address: str
    stats: WorkStats
    workers: tuple[WorkerStats, ...]
    balance: Balance


@dataclass(frozen=True, slots=True)
class PoolSummary:
    scheme: str
    fee_ppm: int
    stats: WorkStats
    workers: int
    workers_online: int
    blocks: dict[str, int]  # status -> count (of the last MAX_QUERY_ROWS)
    network_difficulty: float
    raw_shares: int
    pool_account_sat: int  # the pool's own balance in the book: fees and PPS blocks, minus PPS paid
    immature_sat: int
    payable_sat: int
    paid_sat: int
    extras: dict[str, float] = field(default_factory=dict)


def window_start(now: float, window_s: float, bucket_s: int = FINE_BUCKET_S) -> float:
    """Where a window ending `now` starts once aligned down to the statistics buckets: a bucket is counted
    whole, so the span a rate is computed over runs from there to now, never the nominal window (which
    would overstate the rate)."""
    return float(int((now - window_s) // bucket_s) * bucket_s)


def window_starts(now: float, bucket_s: int = FINE_BUCKET_S) -> list[float]:
    """`window_start` of each of HASHRATE_WINDOWS_S, in that order (the bounds for `work_windows`)."""
    return [window_start(now, w, bucket_s) for w in HASHRATE_WINDOWS_S]


# The shortest exposure a rate is ever divided by: a first share stamped at (or, with clocks a little
# apart, just after) the moment of the query would otherwise give a zero or negative one. A second is far
# below any window and only ever applies to a count flagged unreliable anyway.
MIN_OBSERVED_S = 1.0


def observed_since(first_seen: float | None, bucket_s: int = FINE_BUCKET_S) -> float | None:
    """When observation of a worker, address or pool began, from its first share ever seen: the start of
    that share's statistics bucket (buckets are counted whole, and the miner was hashing before its first
    share arrived). None when nothing was ever seen."""
    if first_seen is None:
        return None
    return float(int(first_seen // bucket_s) * bucket_s)


def observed_span(now: float, start: float, since: float | None, uptime: Uptime | None = None) -> float:
    """The seconds of the window [start, now] there was anything to observe: all of it when observation
    began before `start` (an idle worker with older shares reads low over the whole window, as it should),
    else from `since` (one that appeared mid-window is counted over the time it was there); and of that,
    only the time the pool was up (`uptime`; None: all of it), so an outage is not counted as time with
    no work."""
    begin = start if since is None else max(start, since)
    seconds = now - begin if uptime is None else uptime.covered(begin, now)
    return max(MIN_OBSERVED_S, seconds)


def uptime_for_windows(store: StoreReader, now: float, bucket_s: int = FINE_BUCKET_S) -> Uptime:
    """When the pool was up over the longest hashrate window ending `now` (one store read)."""
    return read_uptime(store, window_start(now, HASHRATE_WINDOWS_S[-1], bucket_s), now, bucket_s)


def window_estimates(
    now: float, starts: Sequence[float], sums: Sequence[WorkSums], last_difficulty: float = 0.0,
    first_seen: float | None = None, bucket_s: int = FINE_BUCKET_S, uptime: Uptime | None = None,
) -> dict[int, HashrateEstimate]:
    """Window seconds -> hashrate estimate, from `window_starts` and the store's `work_windows` over them.

    `first_seen` is the first share ever seen of what is counted (the worker, the address's first worker,
    the pool's first): each window's rate is over its span clipped to that share's bucket, never before.
    Never the first share *in the window*: a worker idle for part of the window must read low. Of that,
    only the time the pool was up counts (`uptime`, from `uptime_for_windows`; None: all of it), so a
    window spanning an outage is the rate over the time the pool could take shares.
    """
    since = observed_since(first_seen, bucket_s)
    return {
        window: estimate(
            w.shares, w.difficulty_sum, now - start, window, last_difficulty, observed_span(now, start, since, uptime)
        )
        for window, start, w in zip(HASHRATE_WINDOWS_S, starts, sums, strict=True)
    }


def windows_by_worker(
    store: StoreReader, now: float, workers: Sequence[WorkerRow], bucket_s: int = FINE_BUCKET_S
) -> dict[str, list[WorkSums]]:
    """Each worker's `work_windows` sums (zeros when idle) in one grouped read instead of one per worker."""
    starts = window_starts(now, bucket_s)
    found = store.work_windows_by_worker(starts, workers=[w.worker for w in workers])
    idle = [WorkSums(0, 0.0, 0.0)] * len(starts)
    return {w.worker: found.get(w.worker, idle) for w in workers}


def first_seen_of(rows: Iterable[WorkerRow]) -> float | None:
    """The first share ever seen among `rows` (an address's or the pool's workers); None if no rows."""
    return min((r.first_seen for r in rows), default=None)


def _stats(
    now: float, starts: Sequence[float], sums: Sequence[WorkSums], rejects: dict[str, int], last_difficulty: float,
    best: float | None, last_share: float | None, first_seen: float | None, uptime: Uptime,
) -> WorkStats:
    best_seen = max((w.best_share for w in sums), default=0.0)
    return WorkStats(
        window_estimates(now, starts, sums, last_difficulty, first_seen, uptime=uptime), rejects,
        best_seen if best is None else best, last_share,
    )


def is_online(last_share_time: float | None, now: float) -> bool:
    """Whether a worker with this last share time counts as online (a share within ONLINE_S)."""
    return last_share_time is not None and now - last_share_time <= ONLINE_S


@dataclass(frozen=True, slots=True)
class MinerMoney:
    """Miners' money in the book, the pool's own account (fees, PPS blocks) left out: it is not an address
    and is never paid out."""

    immature_sat: int
    payable_sat: int  # per address never below zero (a reservation can exceed what is mature)
    paid_sat: int


def miner_money(balances: Iterable[Balance]) -> MinerMoney:
    miners = [b for b in balances if b.address != POOL_ACCOUNT]
    return MinerMoney(
        sum(b.immature_sat for b in miners), sum(max(0, b.payable_sat) for b in miners), sum(b.paid_sat for b in miners)
    )


def balance_of(balances: Iterable[Balance], address: str) -> Balance | None:
    return next((b for b in balances if b.address == address), None)


MAX_UNREPORTED_WORKERS = 100_000
"""Bound on the workers with block-solving shares whose block events are still to come (see `Ledger`)."""


class Ledger:
    """The pool's book. One instance per store; not thread-safe beyond what the store guarantees."""

    def __init__(
        self,
        store: LedgerStore,
        settings: LedgerSettings | None = None,
        network_difficulty: float = 0.0,
        block_value_sat: int = 0,
        notices: NoticeSink | None = None,
    ) -> None:
        """`notices`: where withholding flags (and their lifting) are raised; None raises nothing (they are
        still logged, stored and shown)."""
        self.store = store
        self.settings = settings or LedgerSettings()
        self.network_difficulty = network_difficulty
        self.block_value_sat = block_value_sat
        self.notices = notices  # told of every block recorded, once its batch has committed
        # Per worker: block-solving shares counted found whose block events have not come yet (the pool
        # emits the share at once and the block after the nodes' verdict). In memory: after a restart a
        # block whose share came before it is counted twice, which only ever leans away from a false flag.
        self._solved_unreported: Counter[str] = Counter()

    def set_network(self, difficulty: float, block_value_sat: int) -> None:
        """The network difficulty and block value in force (from the node), used when events lack them."""
        if difficulty > 0:
            self.network_difficulty = difficulty
        if block_value_sat > 0:
            self.block_value_sat = block_value_sat

    # --- writing ---------------------------------------------------------------------------------
    def cursor(self, source: str) -> str | None:
        return self.store.get_meta(f"cursor:{source}")

    def apply(
        self, events: Sequence[ShareEvent | BlockEvent], cursor: tuple[str, str] | None = None
    ) -> ApplyResult:
        """Record a batch of events, in order, in one transaction, together with the source's cursor; then
        tell `notices` of each block recorded (found, stale or refused)."""
        shares = rejects = pps_sat = unpriced = invalid = 0
        blocks: list[str] = []
        touched: set[tuple[OddsKind, str]] = set()  # workers and addresses whose odds this batch moved
        latest = 0.0
        recorded: list[tuple[BlockEvent, float]] = []  # with the network difficulty it was credited at
        with self.store.transaction():
            chunk: list[ShareEvent] = []
            # each accepted share with the network difficulty and block value in force when it arrived
            priced: list[tuple[ShareEvent, float, int]] = []

            def flush() -> None:
                nonlocal pps_sat, unpriced
                if not chunk:
                    return
                self.store.add_shares(chunk, FINE_BUCKET_S)
                self._count_work(priced, touched)
                if self.settings.scheme is Scheme.PPS and priced:
                    paid, skipped = self._credit_pps(priced)
                    pps_sat += paid
                    unpriced += skipped
                chunk.clear()
                priced.clear()

            for ev in events:
                try:
                    validate(ev)
                except InvalidEvent as exc:
                    log.error("ledger: skipping an invalid event: %s", exc)
                    invalid += 1
                    continue
                latest = max(latest, ev.time)
                # the freshest network figures the pool reports also size the rollup's PPLNS window
                self.set_network(ev.network_difficulty, ev.block_value_sat if isinstance(ev, ShareEvent) else 0)
                if isinstance(ev, ShareEvent):
                    chunk.append(ev)
                    if ev.accepted:
                        shares += 1
                        priced.append((ev, self.network_difficulty, self.block_value_sat))
                    else:
                        rejects += 1
                elif isinstance(ev, BlockEvent):
                    flush()
                    if self._on_block(ev, touched):
                        blocks.append(ev.block_hash)
                        recorded.append((ev, ev.network_difficulty or self.network_difficulty))
            flush()
            changed = self._review(touched, latest)
            if cursor is not None:
                self.store.set_meta(f"cursor:{cursor[0]}", cursor[1])
        for ev, d_net in recorded:  # committed: a batch rolled back (and redelivered) tells nothing twice
            self._raise(block_recorded(ev, str(self.settings.scheme), d_net), log_it=False)
        level = self.settings.withholding_level
        for row, flagged in changed:  # committed: tell the operator
            self._raise(withholding.notice(str(row.kind), row.name, withholding.assess(row.expected, row.found),
                                           level, flagged, latest))
        return ApplyResult(
            shares, rejects, tuple(blocks), pps_sat, unpriced, invalid,
            tuple(r.name for r, f in changed if f), tuple(r.name for r, f in changed if not f),
        )

    # --- withholding evidence (`pithead.ledger.withholding`) ----------------------------------------
    def _count_work(self, priced: Sequence[tuple[ShareEvent, float, int]], touched: set[tuple[OddsKind, str]]) -> None:
        """Add the chunk's accepted shares' blocks expected to their workers, addresses, the pool and the
        round (a share with no network difficulty known counts as unpriced: left out, never guessed)."""
        if not priced:
            return
        workers, addresses, pool = withholding.tally(
            (ev.time, ev.worker, ev.address, ev.difficulty, d_net) for ev, d_net, _ in priced
        )
        # A share that solved its job's block is a block found as it arrives, like its work is expected as it
        # arrives: counted at its block's verdict instead, k lagged lambda by the node's answer time, and a
        # node slow to answer (a starved machine, a fast test chain) had honest miners look like withholders.
        solved = [ev for ev, _, _ in priced if withholding.solves_block(ev.share_difficulty, ev.network_difficulty)]
        by_worker = Counter(ev.worker for ev in solved)
        if solved and len(self._solved_unreported) < MAX_UNREPORTED_WORKERS:
            self._solved_unreported.update(by_worker)  # their blocks' events will not count them again
        by_address = Counter(ev.address for ev in solved)
        deltas = [OddsDelta(OddsKind.WORKER, w, t.first, t.expected, by_worker[w], t.unpriced)
                  for w, t in workers.items()]
        deltas += [OddsDelta(OddsKind.ADDRESS, a, t.first, t.expected, by_address[a], t.unpriced)
                   for a, t in addresses.items()]
        deltas.append(OddsDelta(OddsKind.POOL, "", pool.first, pool.expected, len(solved), pool.unpriced))
        self.store.add_odds(deltas)
        self.store.add_round_work(pool.expected, pool.unpriced, pool.first)
        touched.update((OddsKind.WORKER, w) for w in workers)
        touched.update((OddsKind.ADDRESS, a) for a in addresses)

    def _count_block(self, ev: BlockEvent, touched: set[tuple[OddsKind, str]]) -> None:
        """A block solution its worker submitted: one found for it, its address and the pool, whatever the
        node then said (a block that lost a race was still not withheld); the effort's round (the blocks
        expected since the last block) starts over. A block whose share already showed it solved its job (the
        share's hash under its network target, `_count_work`) was counted found then: not again here."""
        if self._solved_unreported[ev.worker] > 0:  # counted found with its share (`_count_work`)
            self._solved_unreported[ev.worker] -= 1
            if self._solved_unreported[ev.worker] == 0:
                del self._solved_unreported[ev.worker]
        else:
            self.store.add_odds([
                OddsDelta(OddsKind.WORKER, ev.worker, ev.time, found=1),
                OddsDelta(OddsKind.ADDRESS, ev.address, ev.time, found=1),
                OddsDelta(OddsKind.POOL, "", ev.time, found=1),
            ])
        self.store.reset_odds(OddsKind.ROUND, "", ev.time)
        touched.update(((OddsKind.WORKER, ev.worker), (OddsKind.ADDRESS, ev.address)))

    def _review(self, touched: set[tuple[OddsKind, str]], now: float) -> list[tuple[BlockOdds, bool]]:
        """Flag or unflag what this batch moved (`withholding.review`): each row whose flag changed, with
        its new state, for the notices raised once the transaction has committed."""
        level = self.settings.withholding_level
        changed: list[tuple[BlockOdds, bool]] = []
        for kind in (OddsKind.WORKER, OddsKind.ADDRESS):
            names = [n for k, n in touched if k is kind]
            if not names:
                continue
            for row in self.store.block_odds(kind, names):
                was = row.flagged_since is not None
                if withholding.review(row.expected, row.found, level, was) != was:
                    changed.append((row, not was))
        self.store.set_odds_flags([(r.kind, r.name, now if flagged else None) for r, flagged in changed])
        return changed

    def _raise(self, notice: Notice, *, log_it: bool = True) -> None:
        if log_it and notice.severity == "info":
            log.info("%s", notice.title)
        elif log_it:
            log.warning("%s: %s", notice.title, notice.body)
        if self.notices is None:
            return
        try:
            self.notices.notify(notice)
        except Exception:  # a notifier's failure must never fail the book (the flag is stored and shown)
            log.exception("could not raise a %s notice", notice.kind)

    def _credit_pps(self, accepted: Sequence[tuple[ShareEvent, float, int]]) -> tuple[int, int]:
        priced: list[PricedWork] = []
        unpriced = 0
        for ev, d_net, value in accepted:
            if d_net <= 0 or value <= 0 or ev.difficulty <= 0:
                unpriced += 1
                continue
            priced.append(PricedWork(ev.address, ev.difficulty, d_net, value))
        if unpriced:
            log.warning("%d PPS shares could not be priced: no network difficulty or block value known", unpriced)
        if not priced:
            return 0, unpriced
        raw = self.store.get_meta("pps_carry")
        carry = {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}
        result = schemes.pps(priced, self.settings.fee_ppm, carry)
        self.store.set_meta("pps_carry", json.dumps(dict(sorted(result.carry.items()))))
        total = sum(result.credits.values())
        if total:
            now = max(ev.time for ev, _, _ in accepted)
            records = [
                CreditRecord(a, v, CreditKind.PPS, CreditStatus.MATURE, now) for a, v in sorted(result.credits.items())
            ]
            records.append(CreditRecord(POOL_ACCOUNT, -total, CreditKind.PPS, CreditStatus.MATURE, now))
            self.store.add_credits(records)
        return total, unpriced

    def _on_block(self, ev: BlockEvent, touched: set[tuple[OddsKind, str]]) -> bool:
        """Record a block; a found one (accepted on the best chain) ends the round and is credited.

        Any new block, whatever the node said, is counted as found by its worker (it did not withhold it)
        and is recorded with its effort, the round's blocks expected since the block before it (None when
        the ledger did not count the whole round: the first block after an older ledger began counting).

        A block on a stale fork (accepted only by a node off the best chain) is recorded orphaned, with no
        credits, and the round goes on: its shares stay in the round and are paid by the next found block.
        Should maturity tracking later see it on the best chain after all, it is followed to confirmation
        but still credits nothing, so no share is paid twice."""
        d_net = ev.network_difficulty or self.network_difficulty
        if ev.accepted_by_node:
            status, confirmations = BlockStatus.PENDING, 0
        elif ev.stale_fork:
            status, confirmations = BlockStatus.ORPHANED, -1  # maturity's "off the best chain"
        elif lost_a_race(ev.node_result):
            status, confirmations = BlockStatus.STALE, 0  # valid, but another block at this height came first
        else:
            status, confirmations = BlockStatus.REJECTED, 0
        rounds = self.store.block_odds(OddsKind.ROUND, [""])
        record = BlockRecord(
            ev.block_hash, ev.height, ev.time, ev.worker, ev.address, ev.reward_sat, ev.fees_sat, status,
            confirmations, str(self.settings.scheme), d_net, ev.time, ev.node_result,
            rounds[0].expected if rounds else None,
        )
        if not self.store.add_block(record):
            log.info("block %s already recorded; ignoring the repeat", ev.block_hash)
            return False
        self._count_block(ev, touched)
        if not ev.accepted_by_node:
            if ev.stale_fork:
                log.warning("block %s at %d is on a stale fork: recorded orphaned, nothing credited",
                            ev.block_hash, ev.height)
            return True
        split = self.split_block(ev.reward_sat, ev.address, d_net)
        self.store.clear_round_work()  # the round ends with any accepted block, whatever the scheme
        self.store.add_credits(
            [
                CreditRecord(
                    a, v, CreditKind.FEE if a == POOL_ACCOUNT and self.settings.scheme is not Scheme.PPS else CreditKind.BLOCK,
                    CreditStatus.IMMATURE, ev.time, ev.block_hash,
                )
                for a, v in sorted(split.credits.items())
                if v
            ]
        )
        return True

    def split_block(self, reward_sat: int, finder: str, network_difficulty: float) -> schemes.Split:
        """The credits a block found now would produce under the configured scheme (reads the store)."""
        s = self.settings
        if s.scheme is Scheme.SOLO:
            return schemes.solo(reward_sat, finder, s.fee_ppm)
        if s.scheme is Scheme.PROP:
            return schemes.prop(reward_sat, self.store.round_work(), finder, s.fee_ppm)
        if s.scheme is Scheme.PPLNS:
            if network_difficulty > 0:
                window = schemes.pplns_window(s.pplns_n, network_difficulty)
            else:
                log.warning("no network difficulty known for PPLNS: using every retained share as the window")
                window = float("inf")
            work: Iterable[Work] = (Work(address, d) for _, address, d in iter_newest(self.store, SHARE_PAGE))
            if window == float("inf"):
                weights: dict[str, float] = {}
                for w in work:
                    weights[w.address] = weights.get(w.address, 0.0) + w.difficulty
                return schemes.prop(reward_sat, weights, finder, s.fee_ppm)
            return schemes.pplns(reward_sat, work, window, finder, s.fee_ppm)
        # PPS: the pool has already paid for the shares; the block is the pool's.
        return schemes.Split({POOL_ACCOUNT: reward_sat} if reward_sat else {}, 0, reward_sat)

    def mark_up(self, run: str, started: float, now: float) -> None:
        """Record that this ledger's run `run` (begun at `started`) was up, taking shares, at `now`: the
        heartbeat behind `pithead.ledger.uptime`."""
        self.store.record_uptime(run, started, now)

    # --- housekeeping ----------------------------------------------------------------------------
    def rollup(self, now: float) -> RollupResult:
        """Drop raw shares past the reward window and coarsen or drop old statistics buckets."""
        keep_from: int | None = None
        if self.settings.scheme is Scheme.PPLNS and self.network_difficulty > 0:
            need = RAW_WINDOW_SAFETY * schemes.pplns_window(self.settings.pplns_n, self.network_difficulty)
            seen = 0.0
            for share_id, _, difficulty in iter_newest(self.store, SHARE_PAGE):
                seen += difficulty
                if seen >= need:
                    keep_from = share_id
                    break
            else:
                keep_from = 0  # the whole history is inside the window: keep it all
        elif self.settings.scheme is Scheme.PPLNS:
            keep_from = 0  # window unknown: keep everything rather than lose a miner's work
        newest = self.store.newest_shares(None, 1)
        if keep_from is None:
            keep_from = newest[0].id + 1 if newest else 0
        deleted = self.store.delete_shares_before(keep_from, now - RAW_MIN_RETENTION_S) if keep_from else 0
        coarsened = self.store.coarsen_buckets(window_start(now, FINE_RETENTION_S), FINE_BUCKET_S, COARSE_BUCKET_S)
        dropped = self.store.delete_buckets_before(now - COARSE_RETENTION_S, COARSE_BUCKET_S)
        # Runs as old as the oldest statistics: no window or chart reaches them. The running one is never
        # that old, so the record never empties while the pool runs.
        runs = self.store.delete_uptime_before(now - COARSE_RETENTION_S)
        strays = self.store.delete_reject_stats_before(now - REJECT_STATS_RETENTION_S)
        return RollupResult(deleted, coarsened, dropped, runs, strays)

    # --- queries for the web API -------------------------------------------------------------------
    def _work_stats(
        self, now: float, worker: str | None, address: str | None, last_difficulty: float, best: float | None,
        last_share: float | None, first_seen: float | None, uptime: Uptime | None = None,
    ) -> WorkStats:
        starts = window_starts(now)
        sums = self.store.work_windows(starts, worker=worker, address=address)
        rejects = self.store.rejects_since(starts[-1], worker=worker, address=address)
        up = uptime_for_windows(self.store, now) if uptime is None else uptime
        return _stats(now, starts, sums, rejects, last_difficulty, best, last_share, first_seen, up)

    def worker_stats(self, worker: str, now: float) -> WorkerStats | None:
        row = self.store.worker(worker)
        if row is None:
            return None
        return WorkerStats(
            row,
            self._work_stats(
                now, worker, None, row.last_difficulty, row.best_share, row.last_share_time, row.first_seen
            ),
        )

    def address_stats(self, address: str, now: float) -> AddressStats | None:
        rows = self.store.workers(address)
        balance = balance_of(self.store.balances(), address)
        if not rows and balance is None:
            return None
        starts = window_starts(now)
        sums = windows_by_worker(self.store, now, rows)
        rejects = self.store.rejects_by_worker(starts[-1], address=address) if rows else {}
        uptime = uptime_for_windows(self.store, now)
        workers = tuple(
            WorkerStats(
                r,
                _stats(
                    now, starts, sums[r.worker], rejects.get(r.worker, {}), r.last_difficulty, r.best_share,
                    r.last_share_time, r.first_seen, uptime,
                ),
            )
            for r in rows
        )
        last = max((r.last_share_time for r in rows if r.last_share_time is not None), default=None)
        stats = self._work_stats(
            now, None, address, sum(r.last_difficulty for r in rows), max((r.best_share for r in rows), default=0.0), last,
            first_seen_of(rows), uptime,
        )
        return AddressStats(address, stats, workers, balance or Balance(address, 0, 0, 0, 0))

    def pool_summary(self, now: float) -> PoolSummary:
        # one summing statement over the workers, not a row each: its cost does not grow with names
        totals = self.store.worker_totals(now - ONLINE_S)
        stats = self._work_stats(
            now, None, None, totals.active_difficulty, totals.best_share, totals.last_share_time, totals.first_seen
        )
        counts: dict[str, int] = {}
        for b in self.store.blocks(MAX_QUERY_ROWS):
            counts[str(b.status)] = counts.get(str(b.status), 0) + 1
        balances = self.store.balances()
        pool = balance_of(balances, POOL_ACCOUNT)
        money = miner_money(balances)
        return PoolSummary(
            str(self.settings.scheme), self.settings.fee_ppm, stats, totals.workers, totals.active, counts,
            self.network_difficulty, self.store.share_count(),
            (pool.mature_sat + pool.immature_sat) if pool else 0,
            money.immature_sat, money.payable_sat, money.paid_sat,
        )

    def hashrate_history(
        self, now: float, span_s: float = 86400, step_s: int = 600, worker: str | None = None,
        address: str | None = None,
    ) -> list[tuple[float, float]]:
        """(step start, average hashes/s over the step) for a chart; steps with no shares are omitted.

        Steps are whole multiples of the fine bucket width; past a day, data only exists per hour, so a
        shorter step there shows the hour's work in the step it starts in. A step the pool was down for
        part of is averaged over the part it was up (`pithead.ledger.uptime`).
        """
        if step_s <= 0 or step_s % FINE_BUCKET_S or span_s <= 0:
            raise LedgerError(f"history step must be a positive multiple of {FINE_BUCKET_S} s")
        if span_s / step_s > MAX_HISTORY_POINTS:
            raise LedgerError(f"at most {MAX_HISTORY_POINTS} points per chart")
        since = float(int((now - span_s) // step_s) * step_s)
        uptime = read_uptime(self.store, since, now, FINE_BUCKET_S)
        return [
            (start, sums.difficulty_sum * HASHES_PER_DIFF1 / (uptime.covered(start, start + step_s) or step_s))
            for start, sums in self.store.work_history(since, step_s, worker=worker, address=address)
        ]

    def blocks(self, limit: int = 50) -> list[BlockRecord]:
        return self.store.blocks(min(limit, MAX_QUERY_ROWS))

    def balances(self) -> list[Balance]:
        return self.store.balances()

    def payouts(self, limit: int = 50) -> list[PayoutBatch]:
        return self.store.batches(limit=min(limit, MAX_QUERY_ROWS))

    def recent_shares(self, limit: int = 50, worker: str | None = None, address: str | None = None) -> list[ShareRow]:
        return self.store.recent_shares(min(limit, MAX_QUERY_ROWS), worker=worker, address=address)

    def best_shares(self, limit: int = 10) -> list[ShareRow]:
        return self.store.best_shares(min(limit, MAX_QUERY_ROWS))

    def credits(self, block_hash: str | None = None, address: str | None = None, limit: int = 100) -> list[CreditRecord]:
        return self.store.credits(block_hash=block_hash, address=address, limit=min(limit, MAX_QUERY_ROWS))

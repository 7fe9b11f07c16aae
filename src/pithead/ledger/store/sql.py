"""The SQL implementation of `LedgerStore`, shared by the SQLite and PostgreSQL backends.

One schema, one set of statements, written in the subset of SQL both engines run identically
(`INSERT ... ON CONFLICT DO UPDATE`, `RETURNING`, `CASE` instead of `MAX`/`GREATEST`, BIGINT satoshis,
DOUBLE PRECISION difficulties). A backend supplies only a DB-API connection, its placeholder style, its
auto-increment column type and any index only its engine profits from; see `pithead.ledger.store.sqlite` and
`pithead.ledger.store.postgres`. Statistics for several hashrate windows, or for a page of workers, are read in
one statement (a UNION ALL branch per window, grouped by worker), not one query per window and worker.

Shares are written in batches: the raw accepted shares (kept by the ledger only for its reward window),
plus, in the same transaction, per-worker statistics buckets, reject counts by reason, per-worker
totals and the current PROP round's work per address. The buckets are therefore the rolled-up form of
the shares from the moment they arrive, and pruning raw shares never loses a statistic. The `uptime`
table holds one row per run of the process that takes shares, (started, last seen), moved on by its
heartbeat.

A worker (and with it its address) enters the permanent tables (`workers`, its reject buckets) only with
its first accepted share: a name costs the book nothing until it has done work. Rejects of a worker that
never had an accepted share are counted pool-wide in `reject_stats`, by REJECT_STATS_BUCKET_S bucket,
reason and remote (at most MAX_REJECT_REMOTES_PER_BUCKET remotes per bucket, the rest together as
OTHER_REMOTES), which the ledger's rollup prunes, plus one all-time count (`counters`); so any number of
names that only ever submit rejected work grow neither the workers table nor what reading it costs.

`block_odds` holds the blocks a worker's, an address's and the pool's share work should have found and
the blocks they did (the ledger adds each batch's in the transaction that records it, so rollups never
lose them), and whether each is flagged as withholding; `payout_holds` and `payout_hold_log` are the
operator's holds on payouts and their audit log (`pithead.ledger.withholding`, `pithead.ledger.payouts`).

This module does not decide what to keep or whom to pay; the ledger does.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from pithead.events import ShareEvent
from pithead.ledger.store.base import StoreError
from pithead.ledger.store.records import (
    Balance,
    BatchStatus,
    BlockOdds,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
    HoldAction,
    HoldEntry,
    OddsDelta,
    OddsKind,
    PayoutBatch,
    PayoutHold,
    RemoteRejects,
    ShareRow,
    UptimeRun,
    WorkerRow,
    WorkerTotals,
    WorkSums,
)

log = logging.getLogger(__name__)

# Bumped only for a change an older pithead cannot live with. Additive tables (such as `uptime`) are
# created by `CREATE TABLE IF NOT EXISTS` at the next migrate of an existing ledger and ignored by an older
# pithead, so they keep the version.
SCHEMA_VERSION = "1"

# {ID} is the dialect's auto-increment primary key column type.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS shares (
        id {ID},
        time DOUBLE PRECISION NOT NULL,
        worker TEXT NOT NULL,
        address TEXT NOT NULL,
        difficulty DOUBLE PRECISION NOT NULL,
        share_difficulty DOUBLE PRECISION NOT NULL,
        job_id TEXT NOT NULL,
        height BIGINT NOT NULL,
        remote TEXT)""",
    "CREATE INDEX IF NOT EXISTS shares_worker ON shares (worker, id)",
    "CREATE INDEX IF NOT EXISTS shares_address ON shares (address, id)",
    "CREATE INDEX IF NOT EXISTS shares_best ON shares (share_difficulty)",
    """CREATE TABLE IF NOT EXISTS stat_buckets (
        worker TEXT NOT NULL,
        width BIGINT NOT NULL,
        start BIGINT NOT NULL,
        address TEXT NOT NULL,
        shares BIGINT NOT NULL,
        difficulty_sum DOUBLE PRECISION NOT NULL,
        best DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (worker, width, start))""",
    "CREATE INDEX IF NOT EXISTS stat_buckets_start ON stat_buckets (start)",
    "CREATE INDEX IF NOT EXISTS stat_buckets_address ON stat_buckets (address, start)",
    """CREATE TABLE IF NOT EXISTS reject_buckets (
        worker TEXT NOT NULL,
        width BIGINT NOT NULL,
        start BIGINT NOT NULL,
        reason TEXT NOT NULL,
        address TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (worker, width, start, reason))""",
    "CREATE INDEX IF NOT EXISTS reject_buckets_start ON reject_buckets (start)",
    """CREATE TABLE IF NOT EXISTS workers (
        worker TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_share_time DOUBLE PRECISION,
        last_difficulty DOUBLE PRECISION NOT NULL,
        best_share DOUBLE PRECISION NOT NULL,
        best_share_time DOUBLE PRECISION,
        accepted BIGINT NOT NULL,
        rejected BIGINT NOT NULL,
        accepted_difficulty DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS workers_address ON workers (address)",
    """CREATE TABLE IF NOT EXISTS round_work (
        address TEXT PRIMARY KEY,
        difficulty_sum DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS blocks (
        hash TEXT PRIMARY KEY,
        height BIGINT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        worker TEXT NOT NULL,
        address TEXT NOT NULL,
        reward_sat BIGINT NOT NULL,
        fees_sat BIGINT NOT NULL,
        status TEXT NOT NULL,
        confirmations BIGINT NOT NULL,
        scheme TEXT NOT NULL,
        network_difficulty DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        node_result TEXT,
        effort DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS blocks_status ON blocks (status, height)",
    """CREATE TABLE IF NOT EXISTS credits (
        id {ID},
        block_hash TEXT,
        address TEXT NOT NULL,
        amount_sat BIGINT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS credits_block ON credits (block_hash)",
    "CREATE INDEX IF NOT EXISTS credits_address ON credits (address, status)",
    """CREATE TABLE IF NOT EXISTS payout_batches (
        id {ID},
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL,
        txid TEXT,
        error TEXT,
        stuck_since DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS payout_batches_status ON payout_batches (status)",
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS payout_items (
        batch_id BIGINT NOT NULL,
        address TEXT NOT NULL,
        amount_sat BIGINT NOT NULL,
        PRIMARY KEY (batch_id, address))""",
    # One row per run of the process that takes shares, extended by its heartbeat: when the pool was up,
    # so a hashrate window spanning an outage is divided by the time it was up (`pithead.ledger.uptime`).
    # Added after the first release: an older ledger gets the table, empty, at its next migrate.
    """CREATE TABLE IF NOT EXISTS uptime (
        run TEXT PRIMARY KEY,
        started DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS uptime_last_seen ON uptime (last_seen)",
    "CREATE INDEX IF NOT EXISTS uptime_started ON uptime (started)",
    # Rejects of workers that never had an accepted share: pool-wide, by bucket, reason and remote, pruned
    # by the rollup (see the module's docstring). Added after the first release, like `uptime`.
    """CREATE TABLE IF NOT EXISTS reject_stats (
        width BIGINT NOT NULL,
        start BIGINT NOT NULL,
        reason TEXT NOT NULL,
        remote TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (width, start, reason, remote))""",
    "CREATE INDEX IF NOT EXISTS reject_stats_start ON reject_stats (start)",
    # All-time counts kept as one row each (e.g. REJECTED_UNKNOWN: rejects of never-accepted workers).
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL)""",
    # Blocks expected from share work and blocks found, per worker, per address, for the pool and for the
    # current round: the evidence of block withholding (`pithead.ledger.withholding`). Added to in the
    # transaction that records the shares, never rescanned, and never pruned by the rollup (raw shares are).
    # Added after the first release, like `uptime`: an older ledger starts counting at its next migrate.
    """CREATE TABLE IF NOT EXISTS block_odds (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL,
        expected DOUBLE PRECISION NOT NULL,
        found BIGINT NOT NULL,
        unpriced BIGINT NOT NULL,
        flagged_since DOUBLE PRECISION,
        PRIMARY KEY (kind, name))""",
    # the flagged few, without reading every worker's row (both engines have partial indexes)
    "CREATE INDEX IF NOT EXISTS block_odds_flagged ON block_odds (kind, flagged_since)"
    " WHERE flagged_since IS NOT NULL",
    # Addresses whose payouts an operator holds, and the audit log of every hold and release.
    """CREATE TABLE IF NOT EXISTS payout_holds (
        address TEXT PRIMARY KEY,
        since DOUBLE PRECISION NOT NULL,
        worker TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS payout_hold_log (
        id {ID},
        time DOUBLE PRECISION NOT NULL,
        action TEXT NOT NULL,
        address TEXT NOT NULL,
        worker TEXT NOT NULL,
        actor TEXT NOT NULL,
        auth TEXT NOT NULL,
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS payout_hold_log_address ON payout_hold_log (address, id)",
]

# The statistics of rejects by workers that never had an accepted share: buckets of this width (a minute is
# plenty for "who is sending us junk, and why"), at most this many distinct remotes per bucket, the rest
# counted together under OTHER_REMOTES, so a flood from many addresses stays bounded: at most
# (cap + 1) x reasons rows per bucket, and the ledger keeps a day of buckets.
REJECT_STATS_BUCKET_S = 60
MAX_REJECT_REMOTES_PER_BUCKET = 32
OTHER_REMOTES = "*"
REJECTED_UNKNOWN = "rejected_unknown_workers"  # the counters row: all-time rejects of never-accepted workers

# (table, column, type) added to an existing table after the first release; `migrate` adds any missing.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("payout_batches", "stuck_since", "DOUBLE PRECISION"),
    ("blocks", "effort", "DOUBLE PRECISION"),
)

# Changes to the data of an existing ledger, each run once (recorded in `meta` as "migrated:<name>"), in
# the migrating transaction: (name, statements).
DATA_MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Workers with no accepted share (rows a ledger once made for every name that only sent rejected work)
    # leave the book: their rejects become pool-wide statistics (remote unknown) and the all-time count.
    ("reject_only_workers", (
        "INSERT INTO reject_stats (width, start, reason, remote, count)"
        " SELECT r.width, r.start, r.reason, '', SUM(r.count) FROM reject_buckets r"
        " WHERE r.worker IN (SELECT worker FROM workers WHERE accepted = 0) GROUP BY r.width, r.start, r.reason"
        " ON CONFLICT (width, start, reason, remote) DO UPDATE SET count = reject_stats.count + excluded.count",
        f"INSERT INTO counters (name, value) SELECT '{REJECTED_UNKNOWN}', COALESCE(SUM(rejected), 0) FROM workers"
        " WHERE accepted = 0 ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
        "DELETE FROM reject_buckets WHERE worker IN (SELECT worker FROM workers WHERE accepted = 0)",
        "DELETE FROM workers WHERE accepted = 0",
    )),
    # The round being counted for the next block's effort: a ledger with no block yet counts its first round
    # whole, from its first share; an older one, with blocks, starts at its next block (until then it has no
    # round row, and that block's effort is unknown rather than understated).
    ("block_odds_round", (
        "INSERT INTO block_odds (kind, name, since, expected, found, unpriced)"
        " SELECT 'round', '', 0, 0, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM blocks)"
        " ON CONFLICT (kind, name) DO NOTHING",
    )),
)

_BLOCK_COLS = (
    "hash, height, time, worker, address, reward_sat, fees_sat, status, confirmations, scheme, "
    "network_difficulty, updated, node_result, effort"
)
_ODDS_COLS = "kind, name, since, expected, found, unpriced, flagged_since"
_HOLD_LOG_COLS = "id, time, action, address, worker, actor, auth, reason, evidence"
_SHARE_COLS = "id, time, worker, address, difficulty, share_difficulty, job_id, height, remote"
_WORKER_COLS = (
    "worker, address, first_seen, last_share_time, last_difficulty, best_share, best_share_time, "
    "accepted, rejected, accepted_difficulty"
)


def _bucket_bound(t: float) -> int:
    """A time bound on the integer `start` column as an integer (for `start >= t` and `start < t` alike,
    ceil(t) selects the same buckets), so PostgreSQL compares BIGINT to BIGINT and uses the index."""
    return math.ceil(t)


def _filters(worker: str | None, address: str | None) -> tuple[str, list[Any]]:
    sql, args = "", []
    if worker is not None:
        sql += " AND worker = ?"
        args.append(worker)
    if address is not None:
        sql += " AND address = ?"
        args.append(address)
    return sql, args


# Host parameters in one statement: SQLite builds before 3.32 allow at most 999, so the grouped reads
# stay under that everywhere (PostgreSQL allows 65535).
MAX_PARAMETERS = 999


def names_per_statement(windows: int) -> int:
    """Worker names one grouped statement over `windows` windows can carry: each window's branch repeats
    its bound and the names."""
    return max(1, MAX_PARAMETERS // max(1, windows) - 1)


def _window_union(bounds: Sequence[int], where: str, args: Sequence[Any], by_worker: bool) -> tuple[str, list[Any]]:
    """One SELECT per window bound, glued with UNION ALL: each branch reads only its own window's buckets
    (an index range), where one pass with CASE per window would read the longest window's for all four.
    Rows are (window index, [worker,] shares, difficulty sum, best)."""
    branches, params = [], []
    for i, bound in enumerate(bounds):
        branches.append(
            f"SELECT {i}{', worker' if by_worker else ''},"
            " COALESCE(SUM(shares), 0), COALESCE(SUM(difficulty_sum), 0), COALESCE(MAX(best), 0)"
            f" FROM stat_buckets WHERE start >= ?{where}{' GROUP BY worker' if by_worker else ''}"
        )
        params += [bound, *args]
    return " UNION ALL ".join(branches), params


class SqlStore:
    """`LedgerStore` over a DB-API connection; subclasses open the connection and name the dialect."""

    placeholder = "?"
    id_column = "INTEGER PRIMARY KEY"
    db_errors: tuple[type[Exception], ...] = ()  # the driver's error classes, reported as StoreError
    # Indexes only one engine profits from (each says why), created after SCHEMA; additive, so an existing
    # ledger gets them at its next migrate without a new schema version.
    extra_indexes: tuple[str, ...] = ()

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0

    # --- plumbing ------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _begin(self, write: bool) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def _ensure(self) -> None:
        """Called before work outside a transaction: a backend may reconnect here."""

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            if not self._depth:
                self._ensure()
            try:
                return self._conn.execute(self._sql(sql), args)
            except self.db_errors as exc:
                raise StoreError(f"{type(exc).__name__}: {exc}") from exc

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._lock:
            if not self._depth:
                self._ensure()
            cur = self._conn.cursor()
            try:
                cur.executemany(self._sql(sql), rows)
            except self.db_errors as exc:
                raise StoreError(f"{type(exc).__name__}: {exc}") from exc
            finally:
                cur.close()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return list(self._exec(sql, args).fetchall())

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._exec(sql, args).fetchone()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """Everything inside commits together or not at all; nested calls join the outer one.

        `write=False` is a consistent read snapshot that never takes the write lock (so the web's reading
        connection does not queue behind the ledger's writes); nothing inside it may write.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._ensure()
            try:
                self._begin(write)
            except self.db_errors as exc:
                raise StoreError(f"cannot begin a transaction: {exc}") from exc
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                try:
                    self._rollback()
                except self.db_errors as exc:  # the connection died: the server rolled it back for us
                    log.warning("rollback failed (%s); the transaction is abandoned", exc)
                raise
            self._depth = 0
            try:
                self._commit()
            except self.db_errors as exc:
                raise StoreError(f"commit failed, nothing was written: {exc}") from exc

    def _columns(self, table: str) -> set[str]:
        """The columns `table` has now (each backend asks its own catalogue)."""
        raise NotImplementedError

    def migrate(self) -> None:
        with self.transaction():
            for stmt in (*SCHEMA, *self.extra_indexes):
                self._exec(stmt.replace("{ID}", self.id_column))
            found = self.get_meta("schema_version")
            if found is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
            elif found != SCHEMA_VERSION:
                raise StoreError(f"ledger schema version {found}, this pithead needs {SCHEMA_VERSION}")
            # Columns added after the first release, to tables an older ledger already has (nullable, so an
            # older pithead that never names them still reads and writes the table).
            for table, column, kind in ADDED_COLUMNS:
                if column not in self._columns(table):
                    self._exec(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            for name, steps in DATA_MIGRATIONS:
                if self.get_meta(f"migrated:{name}") is None:
                    for stmt in steps:
                        self._exec(stmt)
                    self.set_meta(f"migrated:{name}", "1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- meta ----------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --- leases --------------------------------------------------------------------------------------
    def try_lease(self, name: str, owner: str, now: float, until: float) -> bool:
        """Take (or renew) the lease `name` for `owner` until `until`, unless another owner holds it past
        `now`. One statement, so two connections racing for it cannot both win."""
        row = self._one(
            "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " owner = excluded.owner, until = excluded.until"
            " WHERE leases.owner = excluded.owner OR leases.until <= ? RETURNING owner",
            (name, owner, until, now),
        )
        return row is not None

    def release_lease(self, name: str, owner: str) -> None:
        self._exec("UPDATE leases SET until = 0 WHERE name = ? AND owner = ?", (name, owner))

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """(owner, until) of the lease `name`, or None when it was never taken."""
        row = self._one("SELECT owner, until FROM leases WHERE name = ?", (name,))
        return None if row is None else (str(row[0]), float(row[1]))

    def take_over_lease(self, name: str, stale_owner: str, owner: str, until: float) -> bool:
        """Take the lease `name` from `stale_owner`, a holder known to be dead, whatever its expiry: only if
        it still holds it (one statement, so a live holder that renewed it, or another taker, wins)."""
        cur = self._exec(
            "UPDATE leases SET owner = ?, until = ? WHERE name = ? AND owner = ?", (owner, until, name, stale_owner)
        )
        return int(cur.rowcount) == 1

    # --- shares --------------------------------------------------------------------------------------
    def add_shares(self, events: Sequence[ShareEvent], bucket_width: int) -> None:
        if bucket_width <= 0:
            raise StoreError(f"bucket width must be positive, got {bucket_width}")
        raw: list[tuple[Any, ...]] = []
        buckets: dict[tuple[str, int], list[Any]] = {}  # (worker, start) -> [address, n, sum, best]
        rejects: dict[tuple[str, int, str], list[Any]] = {}
        workers: dict[str, list[Any]] = {}
        round_work: dict[str, float] = {}
        stray: dict[tuple[int, str, str], int] = {}  # (start, reason, remote) -> rejects of unknown workers
        with self.transaction():
            # Who may have rows: workers with an accepted share, in this batch or already in the book.
            entering = {ev.worker for ev in events if ev.accepted}
            known = entering | self._known_workers({ev.worker for ev in events if ev.worker not in entering})
            for ev in events:
                start = int(ev.time // bucket_width) * bucket_width
                if ev.worker not in known:  # never accepted: a pool-wide statistic, not a row of its own
                    reason = ev.reject_reason or "unknown"
                    key = (int(ev.time // REJECT_STATS_BUCKET_S) * REJECT_STATS_BUCKET_S, reason, ev.remote or "")
                    stray[key] = stray.get(key, 0) + 1
                    continue
                w = workers.get(ev.worker)
                if w is None:
                    # address, first_seen, last_share_time, last_diff, best, best_time, acc, rej, acc_diff
                    w = workers[ev.worker] = [ev.address, ev.time, None, ev.difficulty, 0.0, None, 0, 0, 0.0]
                w[0] = ev.address
                w[3] = ev.difficulty
                if ev.accepted:
                    raw.append(
                        (ev.time, ev.worker, ev.address, ev.difficulty, ev.share_difficulty, ev.job_id, ev.height,
                         ev.remote)
                    )
                    b = buckets.setdefault((ev.worker, start), [ev.address, 0, 0.0, 0.0])
                    b[1] += 1
                    b[2] += ev.difficulty
                    b[3] = max(b[3], ev.share_difficulty)
                    w[2] = ev.time if w[2] is None else max(w[2], ev.time)
                    if ev.share_difficulty > w[4]:
                        w[4], w[5] = ev.share_difficulty, ev.time
                    w[6] += 1
                    w[8] += ev.difficulty
                    round_work[ev.address] = round_work.get(ev.address, 0.0) + ev.difficulty
                else:
                    reason = ev.reject_reason or "unknown"
                    r = rejects.setdefault((ev.worker, start, reason), [ev.address, 0])
                    r[1] += 1
                    w[7] += 1
            self._many(
                "INSERT INTO shares (time, worker, address, difficulty, share_difficulty, job_id, height, remote)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                raw,
            )
            self._many(
                "INSERT INTO stat_buckets (worker, width, start, address, shares, difficulty_sum, best)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker, width, start) DO UPDATE SET"
                " address = excluded.address,"
                " shares = stat_buckets.shares + excluded.shares,"
                " difficulty_sum = stat_buckets.difficulty_sum + excluded.difficulty_sum,"
                " best = CASE WHEN excluded.best > stat_buckets.best THEN excluded.best ELSE stat_buckets.best END",
                [(wk, bucket_width, st, *vals) for (wk, st), vals in buckets.items()],
            )
            self._many(
                "INSERT INTO reject_buckets (worker, width, start, reason, address, count)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker, width, start, reason) DO UPDATE SET"
                " count = reject_buckets.count + excluded.count",
                [(wk, bucket_width, st, reason, *vals) for (wk, st, reason), vals in rejects.items()],
            )
            self._many(
                "INSERT INTO workers (" + _WORKER_COLS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (worker) DO UPDATE SET"
                " address = excluded.address,"
                " last_share_time = CASE WHEN excluded.last_share_time IS NULL THEN workers.last_share_time"
                "   WHEN workers.last_share_time IS NULL OR excluded.last_share_time > workers.last_share_time"
                "   THEN excluded.last_share_time ELSE workers.last_share_time END,"
                " last_difficulty = excluded.last_difficulty,"
                " best_share_time = CASE WHEN excluded.best_share > workers.best_share"
                "   THEN excluded.best_share_time ELSE workers.best_share_time END,"
                " best_share = CASE WHEN excluded.best_share > workers.best_share"
                "   THEN excluded.best_share ELSE workers.best_share END,"
                " accepted = workers.accepted + excluded.accepted,"
                " rejected = workers.rejected + excluded.rejected,"
                " accepted_difficulty = workers.accepted_difficulty + excluded.accepted_difficulty",
                [(wk, *vals) for wk, vals in workers.items()],
            )
            self._many(
                "INSERT INTO round_work (address, difficulty_sum) VALUES (?, ?) ON CONFLICT (address)"
                " DO UPDATE SET difficulty_sum = round_work.difficulty_sum + excluded.difficulty_sum",
                list(round_work.items()),
            )
            if stray:
                self._add_stray_rejects(stray)

    def _known_workers(self, names: set[str]) -> set[str]:
        """Those of `names` the workers table holds (they had an accepted share once)."""
        found: set[str] = set()
        ordered = sorted(names)
        for i in range(0, len(ordered), MAX_PARAMETERS):
            chunk = ordered[i : i + MAX_PARAMETERS]
            marks = ", ".join("?" for _ in chunk)
            found.update(str(r[0]) for r in self._all(f"SELECT worker FROM workers WHERE worker IN ({marks})", chunk))
        return found

    def _add_stray_rejects(self, stray: dict[tuple[int, str, str], int]) -> None:
        """Count rejects of never-accepted workers into `reject_stats`, remotes capped per bucket."""
        remotes: dict[int, set[str]] = {}
        for start in {k[0] for k in stray}:
            rows = self._all(
                "SELECT DISTINCT remote FROM reject_stats WHERE width = ? AND start = ? AND remote <> ?",
                (REJECT_STATS_BUCKET_S, start, OTHER_REMOTES),
            )
            remotes[start] = {str(r[0]) for r in rows}
        counted: dict[tuple[int, str, str], int] = {}
        for (start, reason, remote), n in stray.items():
            seen = remotes[start]
            if remote not in seen:
                if len(seen) < MAX_REJECT_REMOTES_PER_BUCKET:
                    seen.add(remote)
                else:
                    remote = OTHER_REMOTES
            counted[(start, reason, remote)] = counted.get((start, reason, remote), 0) + n
        self._many(
            "INSERT INTO reject_stats (width, start, reason, remote, count) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (width, start, reason, remote) DO UPDATE SET count = reject_stats.count + excluded.count",
            [(REJECT_STATS_BUCKET_S, st, reason, remote, n) for (st, reason, remote), n in counted.items()],
        )
        self._exec(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            (REJECTED_UNKNOWN, sum(stray.values())),
        )

    def rejects_by_remote(self, since: float, limit: int) -> list[RemoteRejects]:
        rows = self._all(
            "SELECT remote, reason, SUM(count) FROM reject_stats WHERE start >= ? GROUP BY remote, reason"
            " ORDER BY 3 DESC, 1, 2 LIMIT ?",
            (_bucket_bound(since), limit),
        )
        return [RemoteRejects(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def delete_reject_stats_before(self, before: float) -> int:
        return int(self._exec("DELETE FROM reject_stats WHERE start < ?", (_bucket_bound(before),)).rowcount)

    def worker_totals(self, active_since: float) -> WorkerTotals:
        with self.transaction(write=False):
            r = self._one(
                "SELECT COUNT(*),"
                " COALESCE(SUM(CASE WHEN last_share_time >= ? THEN 1 ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN last_share_time >= ? THEN last_difficulty ELSE 0 END), 0),"
                " COALESCE(SUM(accepted), 0), COALESCE(SUM(rejected), 0), COALESCE(SUM(accepted_difficulty), 0),"
                " COALESCE(MAX(best_share), 0), MIN(first_seen), MAX(last_share_time) FROM workers",
                (active_since, active_since),
            )
            unknown = self._one("SELECT value FROM counters WHERE name = ?", (REJECTED_UNKNOWN,))
        return WorkerTotals(
            int(r[0]), int(r[1]), float(r[2]), int(r[3]), int(r[4]), int(unknown[0]) if unknown else 0,
            float(r[5]), float(r[6]), None if r[7] is None else float(r[7]), None if r[8] is None else float(r[8]),
        )

    @staticmethod
    def _share(row: Sequence[Any]) -> ShareRow:
        return ShareRow(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], int(row[7]), row[8])

    def newest_shares(self, before_id: int | None, limit: int) -> list[ShareRow]:
        if before_id is None:
            rows = self._all(f"SELECT {_SHARE_COLS} FROM shares ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._all(
                f"SELECT {_SHARE_COLS} FROM shares WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
            )
        return [self._share(r) for r in rows]

    def newest_work(self, before_id: int | None, limit: int) -> list[tuple[int, str, float]]:
        if before_id is None:
            rows = self._all("SELECT id, address, difficulty FROM shares ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._all(
                "SELECT id, address, difficulty FROM shares WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
            )
        return [(int(r[0]), str(r[1]), float(r[2])) for r in rows]

    def recent_shares(self, limit: int, worker: str | None = None, address: str | None = None) -> list[ShareRow]:
        where, args = _filters(worker, address)
        rows = self._all(
            f"SELECT {_SHARE_COLS} FROM shares WHERE 1 = 1{where} ORDER BY id DESC LIMIT ?", (*args, limit)
        )
        return [self._share(r) for r in rows]

    def best_shares(self, limit: int) -> list[ShareRow]:
        rows = self._all(
            f"SELECT {_SHARE_COLS} FROM shares ORDER BY share_difficulty DESC, id ASC LIMIT ?", (limit,)
        )
        return [self._share(r) for r in rows]

    def delete_shares_before(self, share_id: int, time_before: float) -> int:
        cur = self._exec("DELETE FROM shares WHERE id < ? AND time < ?", (share_id, time_before))
        return int(cur.rowcount)

    def share_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM shares")[0])

    def round_work(self) -> dict[str, float]:
        return {str(a): float(d) for a, d in self._all("SELECT address, difficulty_sum FROM round_work")}

    def clear_round_work(self) -> None:
        self._exec("DELETE FROM round_work")

    # --- statistics ----------------------------------------------------------------------------------
    def work_since(self, since: float, worker: str | None = None, address: str | None = None) -> WorkSums:
        where, args = _filters(worker, address)
        since = _bucket_bound(since)
        row = self._one(
            "SELECT COALESCE(SUM(shares), 0), COALESCE(SUM(difficulty_sum), 0), COALESCE(MAX(best), 0)"
            f" FROM stat_buckets WHERE start >= ?{where}",
            (since, *args),
        )
        return WorkSums(int(row[0]), float(row[1]), float(row[2]))

    def work_windows(
        self, sinces: Sequence[float], worker: str | None = None, address: str | None = None
    ) -> list[WorkSums]:
        if not sinces:
            return []
        where, args = _filters(worker, address)
        sql, params = _window_union([_bucket_bound(s) for s in sinces], where, args, by_worker=False)
        by_index = {int(r[0]): WorkSums(int(r[1]), float(r[2]), float(r[3])) for r in self._all(sql, params)}
        return [by_index[i] for i in range(len(sinces))]

    def work_windows_by_worker(
        self, sinces: Sequence[float], workers: Sequence[str] | None = None, address: str | None = None
    ) -> dict[str, list[WorkSums]]:
        if not sinces or (workers is not None and not workers):
            return {}
        bounds = [_bucket_bound(s) for s in sinces]
        if workers is None:
            chunks: list[list[str]] = [[]]
        else:
            names, size = sorted(set(workers)), names_per_statement(len(bounds))
            chunks = [names[i : i + size] for i in range(0, len(names), size)]
        out: dict[str, list[WorkSums]] = {}
        # several chunks read one snapshot; a single statement needs no transaction of its own
        with self.transaction(write=False) if len(chunks) > 1 else nullcontext():
            for chunk in chunks:
                where, args = _filters(None, address)
                if chunk:
                    where += f" AND worker IN ({', '.join('?' for _ in chunk)})"
                    args += chunk
                sql, params = _window_union(bounds, where, args, by_worker=True)
                for r in self._all(sql, params):
                    sums = out.setdefault(str(r[1]), [WorkSums(0, 0.0, 0.0)] * len(bounds))
                    sums[int(r[0])] = WorkSums(int(r[2]), float(r[3]), float(r[4]))
        return out

    def rejects_by_worker(self, since: float, address: str | None = None) -> dict[str, dict[str, int]]:
        where, args = _filters(None, address)
        rows = self._all(
            "SELECT worker, reason, SUM(count) FROM reject_buckets"
            f" WHERE start >= ?{where} GROUP BY worker, reason ORDER BY worker, reason",
            (_bucket_bound(since), *args),
        )
        out: dict[str, dict[str, int]] = {}
        for worker, reason, n in rows:
            out.setdefault(str(worker), {})[str(reason)] = int(n)
        return out

    def rejects_since(self, since: float, worker: str | None = None, address: str | None = None) -> dict[str, int]:
        where, args = _filters(worker, address)
        since = _bucket_bound(since)
        if worker is None and address is None:  # the pool's: with the rejects of never-accepted workers
            rows = self._all(
                "SELECT reason, SUM(n) FROM (SELECT reason, SUM(count) AS n FROM reject_buckets WHERE start >= ?"
                " GROUP BY reason UNION ALL SELECT reason, SUM(count) AS n FROM reject_stats WHERE start >= ?"
                " GROUP BY reason) AS r GROUP BY reason ORDER BY reason",
                (since, since),
            )
        else:
            rows = self._all(
                f"SELECT reason, SUM(count) FROM reject_buckets WHERE start >= ?{where} GROUP BY reason ORDER BY reason",
                (since, *args),
            )
        return {str(r): int(n) for r, n in rows}

    def work_history(
        self, since: float, width: int, worker: str | None = None, address: str | None = None
    ) -> list[tuple[float, WorkSums]]:
        where, args = _filters(worker, address)
        since = _bucket_bound(since)
        rows = self._all(
            "SELECT (start / ?) * ?, SUM(shares), SUM(difficulty_sum), MAX(best) FROM stat_buckets"
            f" WHERE start >= ?{where} GROUP BY 1 ORDER BY 1",
            (width, width, since, *args),
        )
        return [(float(r[0]), WorkSums(int(r[1]), float(r[2]), float(r[3]))) for r in rows]

    def work_history_by_worker(
        self, since: float, width: int, address: str | None = None
    ) -> dict[str, list[tuple[float, WorkSums]]]:
        where, args = _filters(None, address)
        rows = self._all(
            "SELECT worker, (start / ?) * ?, SUM(shares), SUM(difficulty_sum), MAX(best) FROM stat_buckets"
            f" WHERE start >= ?{where} GROUP BY worker, 2 ORDER BY worker, 2",
            (width, width, _bucket_bound(since), *args),
        )
        out: dict[str, list[tuple[float, WorkSums]]] = {}
        for r in rows:
            out.setdefault(str(r[0]), []).append((float(r[1]), WorkSums(int(r[2]), float(r[3]), float(r[4]))))
        return out

    def active_history(self, since: float, width: int) -> list[tuple[float, int, int]]:
        rows = self._all(
            "SELECT (start / ?) * ?, COUNT(DISTINCT worker), COUNT(DISTINCT address) FROM stat_buckets"
            " WHERE start >= ? AND shares > 0 GROUP BY 1 ORDER BY 1",
            (width, width, _bucket_bound(since)),
        )
        return [(float(r[0]), int(r[1]), int(r[2])) for r in rows]

    def coarsen_buckets(self, before: float, from_width: int, to_width: int) -> int:
        if to_width % from_width:
            raise StoreError(f"bucket width {to_width} is not a multiple of {from_width}")
        before = _bucket_bound(before)
        with self.transaction():
            self._exec(
                "INSERT INTO stat_buckets (worker, width, start, address, shares, difficulty_sum, best)"
                " SELECT worker, ?, (start / ?) * ?, MAX(address), SUM(shares), SUM(difficulty_sum), MAX(best)"
                " FROM stat_buckets WHERE width = ? AND start < ? GROUP BY worker, 3"
                " ON CONFLICT (worker, width, start) DO UPDATE SET"
                " shares = stat_buckets.shares + excluded.shares,"
                " difficulty_sum = stat_buckets.difficulty_sum + excluded.difficulty_sum,"
                " best = CASE WHEN excluded.best > stat_buckets.best THEN excluded.best ELSE stat_buckets.best END",
                (to_width, to_width, to_width, from_width, before),
            )
            self._exec(
                "INSERT INTO reject_buckets (worker, width, start, reason, address, count)"
                " SELECT worker, ?, (start / ?) * ?, reason, MAX(address), SUM(count)"
                " FROM reject_buckets WHERE width = ? AND start < ? GROUP BY worker, 3, reason"
                " ON CONFLICT (worker, width, start, reason) DO UPDATE SET"
                " count = reject_buckets.count + excluded.count",
                (to_width, to_width, to_width, from_width, before),
            )
            n = self._exec("DELETE FROM stat_buckets WHERE width = ? AND start < ?", (from_width, before)).rowcount
            self._exec("DELETE FROM reject_buckets WHERE width = ? AND start < ?", (from_width, before))
        return int(n)

    def delete_buckets_before(self, before: float, width: int) -> int:
        before = _bucket_bound(before)
        with self.transaction():
            n = self._exec("DELETE FROM stat_buckets WHERE width = ? AND start < ?", (width, before)).rowcount
            self._exec("DELETE FROM reject_buckets WHERE width = ? AND start < ?", (width, before))
        return int(n)

    @staticmethod
    def _worker(r: Sequence[Any]) -> WorkerRow:
        return WorkerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8]), float(r[9]))

    def workers(self, address: str | None = None) -> list[WorkerRow]:
        if address is None:
            rows = self._all(f"SELECT {_WORKER_COLS} FROM workers ORDER BY worker")
        else:
            rows = self._all(f"SELECT {_WORKER_COLS} FROM workers WHERE address = ? ORDER BY worker", (address,))
        return [self._worker(r) for r in rows]

    def worker(self, worker: str) -> WorkerRow | None:
        row = self._one(f"SELECT {_WORKER_COLS} FROM workers WHERE worker = ?", (worker,))
        return None if row is None else self._worker(row)

    # --- blocks expected and found (withholding evidence) ---------------------------------------------
    def add_odds(self, deltas: Sequence[OddsDelta]) -> None:
        self._many(
            f"INSERT INTO block_odds ({_ODDS_COLS}) VALUES (?, ?, ?, ?, ?, ?, NULL)"
            " ON CONFLICT (kind, name) DO UPDATE SET"
            " since = CASE WHEN excluded.since < block_odds.since THEN excluded.since ELSE block_odds.since END,"
            " expected = block_odds.expected + excluded.expected,"
            " found = block_odds.found + excluded.found,"
            " unpriced = block_odds.unpriced + excluded.unpriced",
            [(str(d.kind), d.name, d.time, d.expected, d.found, d.unpriced) for d in deltas],
        )

    def add_round_work(self, expected: float, unpriced: int, time: float) -> None:
        # Only to a round that is being counted (see DATA_MIGRATIONS "block_odds_round"): a round an older
        # ledger began before it counted has no row until its block, so its effort is never understated.
        # A fresh ledger's round row starts at `since` 0, "not begun": its first share sets it.
        self._exec(
            "UPDATE block_odds SET expected = expected + ?, unpriced = unpriced + ?,"
            " since = CASE WHEN since <= 0 THEN ? ELSE since END WHERE kind = ? AND name = ''",
            (expected, unpriced, time, str(OddsKind.ROUND)),
        )

    def reset_odds(self, kind: OddsKind, name: str, since: float) -> None:
        self._exec(
            f"INSERT INTO block_odds ({_ODDS_COLS}) VALUES (?, ?, ?, 0, 0, 0, NULL)"
            " ON CONFLICT (kind, name) DO UPDATE SET since = excluded.since, expected = 0, found = 0, unpriced = 0",
            (str(kind), name, since),
        )

    def set_odds_flags(self, flags: Sequence[tuple[OddsKind, str, float | None]]) -> None:
        self._many(
            "UPDATE block_odds SET flagged_since = ? WHERE kind = ? AND name = ?",
            [(since, str(kind), name) for kind, name, since in flags],
        )

    @staticmethod
    def _odds(r: Sequence[Any]) -> BlockOdds:
        return BlockOdds(OddsKind(r[0]), str(r[1]), float(r[2]), float(r[3]), int(r[4]), int(r[5]),
                         None if r[6] is None else float(r[6]))

    def block_odds(self, kind: OddsKind, names: Sequence[str] | None = None) -> list[BlockOdds]:
        if names is None:
            rows = self._all(f"SELECT {_ODDS_COLS} FROM block_odds WHERE kind = ? ORDER BY name", (str(kind),))
            return [self._odds(r) for r in rows]
        ordered = sorted(set(names))
        out: list[BlockOdds] = []
        size = MAX_PARAMETERS - 1
        with self.transaction(write=False) if len(ordered) > size else nullcontext():
            for i in range(0, len(ordered), size):
                chunk = ordered[i : i + size]
                marks = ", ".join("?" for _ in chunk)
                rows = self._all(
                    f"SELECT {_ODDS_COLS} FROM block_odds WHERE kind = ? AND name IN ({marks}) ORDER BY name",
                    (str(kind), *chunk),
                )
                out.extend(self._odds(r) for r in rows)
        return out

    def odds_by_deficit(self, kind: OddsKind, limit: int) -> list[BlockOdds]:
        rows = self._all(
            f"SELECT {_ODDS_COLS} FROM block_odds WHERE kind = ? ORDER BY expected - found DESC, name LIMIT ?",
            (str(kind), limit),
        )
        return [self._odds(r) for r in rows]

    def flagged_counts(self) -> dict[OddsKind, int]:
        rows = self._all("SELECT kind, COUNT(*) FROM block_odds WHERE flagged_since IS NOT NULL GROUP BY kind")
        return {OddsKind(k): int(n) for k, n in rows}

    def flagged_odds(self, limit: int) -> list[BlockOdds]:
        rows = self._all(
            f"SELECT {_ODDS_COLS} FROM block_odds WHERE flagged_since IS NOT NULL"
            " ORDER BY flagged_since, kind, name LIMIT ?",
            (limit,),
        )
        return [self._odds(r) for r in rows]

    # --- payout holds ---------------------------------------------------------------------------------
    def _log_hold(self, entry: HoldEntry) -> HoldEntry:
        row = self._one(
            "INSERT INTO payout_hold_log (time, action, address, worker, actor, auth, reason, evidence)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (entry.time, str(entry.action), entry.address, entry.worker, entry.actor, entry.auth, entry.reason,
             entry.evidence),
        )
        return HoldEntry(int(row[0]), entry.time, entry.action, entry.address, entry.worker, entry.actor,
                         entry.auth, entry.reason, entry.evidence)

    def add_payout_hold(self, hold: PayoutHold, entry: HoldEntry) -> HoldEntry | None:
        with self.transaction():
            cur = self._exec(
                "INSERT INTO payout_holds (address, since, worker, actor, reason) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (address) DO NOTHING",
                (hold.address, hold.since, hold.worker, hold.actor, hold.reason),
            )
            if cur.rowcount != 1:
                return None
            return self._log_hold(entry)

    def remove_payout_hold(self, entry: HoldEntry) -> HoldEntry | None:
        with self.transaction():
            cur = self._exec("DELETE FROM payout_holds WHERE address = ?", (entry.address,))
            if cur.rowcount != 1:
                return None
            return self._log_hold(entry)

    def payout_holds(self) -> list[PayoutHold]:
        rows = self._all("SELECT address, since, worker, actor, reason FROM payout_holds ORDER BY since, address")
        return [PayoutHold(str(r[0]), float(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def payout_hold_log(self, limit: int, address: str | None = None) -> list[HoldEntry]:
        if address is None:
            rows = self._all(f"SELECT {_HOLD_LOG_COLS} FROM payout_hold_log ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._all(
                f"SELECT {_HOLD_LOG_COLS} FROM payout_hold_log WHERE address = ? ORDER BY id DESC LIMIT ?",
                (address, limit),
            )
        return [HoldEntry(int(r[0]), float(r[1]), HoldAction(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]),
                          str(r[7]), str(r[8])) for r in rows]

    # --- uptime --------------------------------------------------------------------------------------
    def record_uptime(self, run: str, started: float, now: float) -> None:
        if not run:
            raise StoreError("an uptime run needs a name")
        if not (math.isfinite(started) and math.isfinite(now)) or now < started:
            raise StoreError(f"bad uptime heartbeat: started {started}, now {now}")
        self._exec(
            "INSERT INTO uptime (run, started, last_seen) VALUES (?, ?, ?) ON CONFLICT (run) DO UPDATE SET"
            " last_seen = CASE WHEN excluded.last_seen > uptime.last_seen THEN excluded.last_seen"
            " ELSE uptime.last_seen END",
            (run, started, now),
        )

    def uptime_runs(self, since: float) -> list[UptimeRun]:
        # The earliest run rides along (one statement) so the reader knows where the record begins.
        rows = self._all(
            "SELECT run, started, last_seen FROM uptime WHERE last_seen >= ?"
            " UNION SELECT run, started, last_seen FROM"
            " (SELECT run, started, last_seen FROM uptime ORDER BY started, run LIMIT 1) AS earliest"
            " ORDER BY 2, 1",
            (since,),
        )
        return [UptimeRun(str(r[0]), float(r[1]), float(r[2])) for r in rows]

    def delete_uptime_before(self, before: float) -> int:
        return int(self._exec("DELETE FROM uptime WHERE last_seen < ?", (before,)).rowcount)

    # --- blocks and credits --------------------------------------------------------------------------
    @staticmethod
    def _block(r: Sequence[Any]) -> BlockRecord:
        return BlockRecord(
            r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), int(r[6]), BlockStatus(r[7]), int(r[8]), r[9], r[10], r[11], r[12],
            None if r[13] is None else float(r[13]),
        )

    def add_block(self, block: BlockRecord) -> bool:
        cur = self._exec(
            f"INSERT INTO blocks ({_BLOCK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (hash) DO NOTHING",
            (
                block.hash, block.height, block.time, block.worker, block.address, block.reward_sat,
                block.fees_sat, str(block.status), block.confirmations, block.scheme,
                block.network_difficulty, block.updated, block.node_result, block.effort,
            ),
        )
        return bool(cur.rowcount == 1)

    def get_block(self, block_hash: str) -> BlockRecord | None:
        row = self._one(f"SELECT {_BLOCK_COLS} FROM blocks WHERE hash = ?", (block_hash,))
        return None if row is None else self._block(row)

    def blocks(self, limit: int, statuses: Sequence[BlockStatus] | None = None) -> list[BlockRecord]:
        if statuses:
            marks = ", ".join("?" for _ in statuses)
            rows = self._all(
                f"SELECT {_BLOCK_COLS} FROM blocks WHERE status IN ({marks}) ORDER BY height DESC, time DESC LIMIT ?",
                (*[str(s) for s in statuses], limit),
            )
        else:
            rows = self._all(f"SELECT {_BLOCK_COLS} FROM blocks ORDER BY height DESC, time DESC LIMIT ?", (limit,))
        return [self._block(r) for r in rows]

    def set_block_status(self, block_hash: str, status: BlockStatus, confirmations: int, now: float) -> None:
        """Move a block, and with it its credits: pending -> immature, confirmed -> mature, else void."""
        credit_status = {
            BlockStatus.PENDING: CreditStatus.IMMATURE,
            BlockStatus.CONFIRMED: CreditStatus.MATURE,
            BlockStatus.ORPHANED: CreditStatus.VOID,
            BlockStatus.REJECTED: CreditStatus.VOID,
            BlockStatus.STALE: CreditStatus.VOID,
        }[status]
        with self.transaction():
            cur = self._exec(
                "UPDATE blocks SET status = ?, confirmations = ?, updated = ? WHERE hash = ?",
                (str(status), confirmations, now, block_hash),
            )
            if cur.rowcount != 1:
                raise StoreError(f"no block {block_hash}")
            self._exec("UPDATE credits SET status = ? WHERE block_hash = ?", (str(credit_status), block_hash))

    def add_credits(self, credits: Sequence[CreditRecord]) -> None:
        self._many(
            "INSERT INTO credits (block_hash, address, amount_sat, kind, status, time) VALUES (?, ?, ?, ?, ?, ?)",
            [(c.block_hash, c.address, c.amount_sat, str(c.kind), str(c.status), c.time) for c in credits],
        )

    def credits(self, block_hash: str | None = None, address: str | None = None, limit: int = 1000) -> list[CreditRecord]:
        sql, args = "", []
        if block_hash is not None:
            sql += " AND block_hash = ?"
            args.append(block_hash)
        if address is not None:
            sql += " AND address = ?"
            args.append(address)
        rows = self._all(
            "SELECT address, amount_sat, kind, status, time, block_hash FROM credits"
            f" WHERE 1 = 1{sql} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [CreditRecord(r[0], int(r[1]), CreditKind(r[2]), CreditStatus(r[3]), r[4], r[5]) for r in rows]

    # --- balances and payouts ------------------------------------------------------------------------
    def balances(self) -> list[Balance]:
        acc: dict[str, list[int]] = {}  # address -> [immature, mature, reserved, paid]
        with self.transaction(write=False):
            for address, status, total in self._all(
                "SELECT address, status, SUM(amount_sat) FROM credits WHERE status IN (?, ?) GROUP BY address, status",
                (str(CreditStatus.IMMATURE), str(CreditStatus.MATURE)),
            ):
                acc.setdefault(address, [0, 0, 0, 0])[0 if status == CreditStatus.IMMATURE else 1] += int(total)
            reserved = (BatchStatus.INTENT, BatchStatus.STUCK)  # held back; the rest here is paid
            for address, status, total in self._all(
                "SELECT i.address, b.status, SUM(i.amount_sat) FROM payout_items i"
                " JOIN payout_batches b ON b.id = i.batch_id WHERE b.status IN (?, ?, ?, ?)"
                " GROUP BY i.address, b.status",
                (str(BatchStatus.INTENT), str(BatchStatus.STUCK), str(BatchStatus.SENT), str(BatchStatus.CONFIRMED)),
            ):
                acc.setdefault(address, [0, 0, 0, 0])[2 if status in reserved else 3] += int(total)
        return [Balance(a, *v) for a, v in sorted(acc.items())]

    def create_batch(self, items: Mapping[str, int], now: float) -> PayoutBatch:
        if not items or any(v <= 0 for v in items.values()):
            raise StoreError("a payout batch needs at least one positive amount")
        with self.transaction():
            row = self._one(
                "INSERT INTO payout_batches (created, updated, status) VALUES (?, ?, ?) RETURNING id",
                (now, now, str(BatchStatus.INTENT)),
            )
            batch_id = int(row[0])
            ordered = tuple(sorted(items.items()))
            self._many(
                "INSERT INTO payout_items (batch_id, address, amount_sat) VALUES (?, ?, ?)",
                [(batch_id, a, v) for a, v in ordered],
            )
        return PayoutBatch(batch_id, now, now, BatchStatus.INTENT, None, ordered)

    def batches(self, statuses: Sequence[BatchStatus] | None = None, limit: int = 1000) -> list[PayoutBatch]:
        with self.transaction(write=False):
            cols = "id, created, updated, status, txid, error, stuck_since"
            if statuses:
                marks = ", ".join("?" for _ in statuses)
                rows = self._all(
                    f"SELECT {cols} FROM payout_batches WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
                    (*[str(s) for s in statuses], limit),
                )
            else:
                rows = self._all(f"SELECT {cols} FROM payout_batches ORDER BY id DESC LIMIT ?", (limit,))
            out = []
            for r in rows:
                items = self._all(
                    "SELECT address, amount_sat FROM payout_items WHERE batch_id = ? ORDER BY address", (r[0],)
                )
                out.append(
                    PayoutBatch(
                        int(r[0]), r[1], r[2], BatchStatus(r[3]), r[4], tuple((a, int(v)) for a, v in items), r[5],
                        r[6],
                    )
                )
        return out

    def update_batch(
        self, batch_id: int, status: BatchStatus, now: float, txid: str | None = None, error: str | None = None
    ) -> None:
        # stuck_since: set the first time the batch becomes STUCK, kept while it stays so, cleared otherwise
        cur = self._exec(
            "UPDATE payout_batches SET status = ?, updated = ?, txid = COALESCE(?, txid), error = ?,"
            " stuck_since = CASE WHEN ? THEN COALESCE(stuck_since, ?) ELSE NULL END WHERE id = ?",
            (str(status), now, txid, error, status is BatchStatus.STUCK, now, batch_id),
        )
        if cur.rowcount != 1:
            raise StoreError(f"no payout batch {batch_id}")

"""The farm's own storage: inventory, latest status, readings history with rollups, alerts, audit.

The farm depends on nothing else in pithead (DESIGN), so it keeps its own database instead of going
through `pithead.ledger.store`, but on the same kind of SQL layer: one set of statements that SQLite (the
embedded default, one file in WAL mode) and PostgreSQL (a farm at scale: several ingest workers and
evaluators on one database) run alike; the differences live in `pithead.farm.store_sql`, and
`open_farm_store(url)` picks the engine. Every write is a short transaction, and poll results are written
in batches (one transaction per batch; 24,000 rows take tens of milliseconds), so a sweep never waits on
per-row commits. Writers on PostgreSQL take row locks in device-id order, so ingest workers taking
batches of different machines never wait on each other (two batches of the same machines at once, which
collectors' disjoint shards do not send, could deadlock: PostgreSQL then aborts one and its collector
sends it again).

Threads. The API is synchronous (the CLI uses it as it is). Every public method holds the store's lock,
so the one connection is used by one thread at a time, whichever thread calls (SQLite's rule for a
connection shared between threads; `check_same_thread` is off for that reason). Async code never calls
it on the event loop: it goes through `AsyncFarmStore` (`pithead.farm.store_async`), which runs each call
on the store's own thread, in the order made.

History: raw readings are kept for `RAW_RETENTION_S`; `rollup()` folds them into fixed buckets (5 min and
1 h by default) that are kept for good, and `prune()` deletes raw rows that are older than the retention
and already rolled up. Energy in a bucket is average reported power x bucket length: devices that report
no power contribute nothing rather than a guess.

This module is NOT a general-purpose ORM and holds no policy: what is an alert is decided in
`pithead.farm.alerts`, what to curtail in `pithead.farm.curtailment`.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time as _time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from pithead.farm.alert_groups import rack_partition
from pithead.farm.model import (
    ERROR_STATES,
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    FarmError,
    Identity,
    Labels,
    PollResult,
    PoolEntry,
    Reading,
)
from pithead.farm.store_sql import SqlConn, SqliteConn, connect

# Raw readings older than this are deleted by prune() once rolled up: at 24,000 devices x 1/min a day of
# raw rows is ~35 M rows, so we keep two days raw and rely on rollups for anything older.
RAW_RETENTION_S = 2 * 86_400.0
# Rollup bucket sizes: 5 min answers "what happened in the last hours", 1 h the long charts.
ROLLUP_BUCKETS_S: tuple[int, ...] = (300, 3600)
# A label longer than this is refused: labels are shown on the rack map, not documents.
MAX_LABEL_LEN = 64
# Audit/alert list queries return at most this many rows per call (the dashboard pages through them).
MAX_LIST_ROWS = 1000
# Ids per `IN (...)` query: under SQLite's default host-parameter limit (999 before 3.32).
_SQL_CHUNK = 900

# One statement each; {ID} and {BLOB} are the dialect's column types (`pithead.farm.store_sql`).
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, driver TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
  make TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT, mac TEXT, hostname TEXT, serial TEXT,
  expected_ths DOUBLE PRECISION, expected_boards INTEGER, expected_fans INTEGER,
  site TEXT NOT NULL DEFAULT '', rack TEXT NOT NULL DEFAULT '', position TEXT NOT NULL DEFAULT '',
  first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL, removed INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS status (
  device_id TEXT PRIMARY KEY, time DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, error TEXT,
  state_since DOUBLE PRECISION NOT NULL, failures INTEGER NOT NULL DEFAULT 0, last_ok DOUBLE PRECISION,
  hashrate_ths DOUBLE PRECISION, power_w DOUBLE PRECISION, reading {BLOB}
)""",
    """CREATE TABLE IF NOT EXISTS readings (
  device_id TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
  hashrate_ths DOUBLE PRECISION, expected_ths DOUBLE PRECISION, power_w DOUBLE PRECISION, efficiency DOUBLE PRECISION,
  max_chip_temp DOUBLE PRECISION, max_board_temp DOUBLE PRECISION, min_fan_rpm INTEGER, errors TEXT
)""",
    """CREATE INDEX IF NOT EXISTS readings_time ON readings(time)""",
    """CREATE INDEX IF NOT EXISTS readings_device_time ON readings(device_id, time)""",
    """CREATE TABLE IF NOT EXISTS rollups (
  device_id TEXT NOT NULL, bucket_s INTEGER NOT NULL, bucket DOUBLE PRECISION NOT NULL,
  samples INTEGER NOT NULL, ok_samples INTEGER NOT NULL,
  avg_hashrate_ths DOUBLE PRECISION, max_hashrate_ths DOUBLE PRECISION, avg_power_w DOUBLE PRECISION, max_chip_temp DOUBLE PRECISION,
  energy_wh DOUBLE PRECISION, PRIMARY KEY (device_id, bucket_s, bucket)
)""",
    """CREATE TABLE IF NOT EXISTS alerts (
  id {ID}, device_id TEXT NOT NULL, kind TEXT NOT NULL,
  severity TEXT NOT NULL, message TEXT NOT NULL, opened_at DOUBLE PRECISION NOT NULL, resolved_at DOUBLE PRECISION,
  machines INTEGER NOT NULL DEFAULT 1, acked_at DOUBLE PRECISION, acked_by TEXT
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(device_id, kind) WHERE resolved_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS audit (
  id {ID}, time DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, device_id TEXT NOT NULL,
  action TEXT NOT NULL, params TEXT NOT NULL, outcome TEXT NOT NULL, error TEXT, finished DOUBLE PRECISION
)""",
    """CREATE TABLE IF NOT EXISTS curtailment (
  device_id TEXT PRIMARY KEY, curtailed INTEGER NOT NULL, since DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_silences (
  id {ID}, target TEXT NOT NULL, kind TEXT, until DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  created_by TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''
)""",
    """CREATE TABLE IF NOT EXISTS ingest_batches (
  batch TEXT PRIMARY KEY, collector TEXT NOT NULL, received DOUBLE PRECISION NOT NULL, results INTEGER NOT NULL
)""",
)
# Columns added after a table's first release: (table, column, its definition), added to an existing
# database when missing (ALTER TABLE ... ADD COLUMN, which both engines run alike).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("alerts", "machines", "INTEGER NOT NULL DEFAULT 1"),  # a group alert (a rack, a site): how many machines
    ("alerts", "acked_at", "DOUBLE PRECISION"),
    ("alerts", "acked_by", "TEXT"),
)
# Active silences at most (each is checked against every alert change): a bound on what a caller can add.
MAX_SILENCES = 1000
# How long one silence may last: a silence is for a maintenance window, not a way to switch alerts off.
MAX_SILENCE_S = 30 * 86_400.0


class FarmStoreError(FarmError):
    """A request the store cannot honour (unknown device, bad label)."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """The latest known state of one device, for alerts, the dashboard and curtailment."""

    device: Device
    state: DeviceState
    time: float  # of the last poll (0 if never)
    state_since: float  # when the device entered `state`
    failures: int  # consecutive failed polls
    last_ok: float | None
    error: str | None
    reading: Reading | None  # the last good reading (kept while the device is failing)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What `FarmStore.ingest` did with one batch. `unknown`/`removed`: indexes of refused results."""

    duplicate_batch: bool = False  # this batch id was ingested before: nothing was written
    devices_new: int = 0
    written: int = 0  # results written into the history
    duplicates: int = 0  # results whose (device, time) the history already had
    unknown: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    earliest: float | None = None  # time of the oldest result accepted (for rolling up late readings)


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    device_id: str
    kind: str
    severity: str
    message: str
    opened_at: float
    resolved_at: float | None
    machines: int = 1  # a group alert (device_id "rack:SITE/RACK" or "site:SITE"): the machines in it
    acked_at: float | None = None
    acked_by: str | None = None


@dataclass(frozen=True, slots=True)
class SilenceRow:
    """Alert changes of `target` (a device id, "rack:SITE/RACK", "site:SITE" or "*") and `kind` (None:
    every kind) are kept in the store but not delivered (webhook, notices) until `until`."""

    id: int
    target: str
    kind: str | None
    until: float
    created_at: float
    created_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    time: float
    actor: str
    device_id: str
    action: str
    params: dict[str, Any]
    outcome: str
    error: str | None
    finished: float | None


@dataclass(frozen=True, slots=True)
class RollupRow:
    device_id: str
    bucket_s: int
    bucket: float
    samples: int
    ok_samples: int
    avg_hashrate_ths: float | None
    max_hashrate_ths: float | None
    avg_power_w: float | None
    max_chip_temp: float | None
    energy_wh: float | None


def _check_label(value: str, what: str) -> str:
    if len(value) > MAX_LABEL_LEN or any(ord(c) < 32 for c in value):
        raise FarmStoreError(f"bad {what} label {value!r} (at most {MAX_LABEL_LEN} printable characters)")
    return value


def reading_to_json(r: Reading) -> bytes:
    return orjson.dumps(r)  # orjson serialises (slotted) dataclasses natively, much faster than asdict


def reading_from_json(data: bytes | str) -> Reading:
    d = orjson.loads(data)
    d["boards"] = tuple(Board(**b) for b in d["boards"])
    d["fans"] = tuple(Fan(**f) for f in d["fans"])
    d["pools"] = tuple(PoolEntry(**p) for p in d["pools"])
    d["errors"] = tuple(d["errors"])
    return Reading(**d)


def _device_from_row(row: Any) -> Device:
    return Device(
        address=DeviceAddress(row["host"], row["port"], DriverKind(row["driver"])),
        identity=Identity(
            make=row["make"], model=row["model"], firmware=row["firmware"], mac=row["mac"],
            hostname=row["hostname"], serial=row["serial"], expected_ths=row["expected_ths"],
            expected_boards=row["expected_boards"], expected_fans=row["expected_fans"],
        ),
        labels=Labels(row["site"], row["rack"], row["position"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
    )


def _result_rows(results: Sequence[PollResult]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                                           list[tuple[Any, ...]]]:
    """History rows, status rows of good polls and status rows of failed polls, for `write_results`'s and
    `ingest`'s SQL."""
    hist: list[tuple[Any, ...]] = []
    ok_rows: list[tuple[Any, ...]] = []
    bad_rows: list[tuple[Any, ...]] = []
    for res in results:
        r = res.reading
        if r is not None:
            hist.append((
                res.device_id, res.time, res.state.value, r.hashrate_ths, r.expected_ths, r.power_w,
                r.efficiency_j_per_th, r.max_chip_temp_c, r.max_board_temp_c, r.min_fan_rpm,
                ",".join(r.errors) or None,
            ))
            ok_rows.append((res.device_id, res.time, res.state.value, res.time, res.time,
                            r.hashrate_ths, r.power_w, reading_to_json(r)))
        else:
            hist.append((res.device_id, res.time, res.state.value, None, None, None, None, None,
                         None, None, res.error))
            bad_rows.append((res.device_id, res.time, res.state.value, res.error, res.time))
    return hist, ok_rows, bad_rows


P = ParamSpec("P")
T = TypeVar("T")


def _serialised(method: Callable[Concatenate[FarmStore, P], T]) -> Callable[Concatenate[FarmStore, P], T]:
    """Run a store method under the store's lock (re-entrant: a method may call another)."""

    @functools.wraps(method)
    def locked(self: FarmStore, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class FarmStore:
    """The farm's storage. `FarmStore(path)`: SQLite (":memory:" gives a private in-memory database, for
    tests); `FarmStore(conn=...)` any `SqlConn` (`open_farm_store(url)` opens one by URL: PostgreSQL)."""

    def __init__(self, path: str | Path = ":memory:", *, conn: SqlConn | None = None,
                 status_max_age_s: float = 0.0) -> None:
        self._lock = threading.RLock()
        self._db = conn if conn is not None else SqliteConn(path)
        self.path = str(path) if conn is None else getattr(conn, "path", conn.name)
        # Latest-status cache (see statuses()): device id -> status without the curtailment override,
        # valid while the connection's version (moved by commits of *other* connections) is unchanged.
        self._cache: dict[str, DeviceStatus] | None = None
        self._cache_version = -1
        self._cache_checked = 0.0  # time.monotonic() of the cache's last check against the database
        self.status_max_age_s = status_max_age_s  # see statuses()
        with self._tx():
            self._db.schema(SCHEMA)
            for table, column, definition in ADDED_COLUMNS:
                if column not in self._db.columns(table):
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    @_serialised
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FarmStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Tx:
        return _Tx(self)

    def backend_pid(self) -> int | None:
        """The PostgreSQL server process serving this store's connection (None on SQLite): for benches."""
        return self._db.backend_pid()

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._db.name

    # ---- inventory -------------------------------------------------------------------------------

    @_serialised
    def upsert_devices(self, devices: Iterable[Device]) -> int:
        """Add new devices, refresh identity/last_seen of known ones. Labels already set are kept unless
        the incoming device carries non-empty labels. Returns how many rows were new."""
        rows = [
            (
                d.id, d.address.driver.value, d.address.host, d.address.port, d.identity.make,
                d.identity.model, d.identity.firmware, d.identity.mac, d.identity.hostname,
                d.identity.serial, d.identity.expected_ths, d.identity.expected_boards,
                d.identity.expected_fans, _check_label(d.labels.site, "site"),
                _check_label(d.labels.rack, "rack"), _check_label(d.labels.position, "position"),
                d.first_seen, d.last_seen,
            )
            for d in devices
        ]
        rows.sort(key=lambda r: r[0])  # one lock order for every writer (PostgreSQL: no deadlocks)
        with self._tx():
            known = self._known_ids([r[0] for r in rows])
            self._db.executemany(
                """INSERT INTO devices (id, driver, host, port, make, model, firmware, mac, hostname, serial,
                     expected_ths, expected_boards, expected_fans, site, rack, position, first_seen, last_seen)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET make=excluded.make, model=excluded.model,
                     firmware=excluded.firmware, mac=excluded.mac, hostname=excluded.hostname,
                     serial=excluded.serial, expected_ths=excluded.expected_ths,
                     expected_boards=excluded.expected_boards, expected_fans=excluded.expected_fans,
                     site=CASE WHEN excluded.site != '' THEN excluded.site ELSE devices.site END,
                     rack=CASE WHEN excluded.rack != '' THEN excluded.rack ELSE devices.rack END,
                     position=CASE WHEN excluded.position != '' THEN excluded.position ELSE devices.position END,
                     last_seen=CASE WHEN excluded.last_seen > devices.last_seen THEN excluded.last_seen
                                    ELSE devices.last_seen END, removed=0""",
                rows,
            )
        self._cache = None
        return len({r[0] for r in rows} - set(known))

    def _known_ids(self, ids: Sequence[str]) -> dict[str, int]:
        """id -> removed (0/1) of those of `ids` the inventory has."""
        state: dict[str, int] = {}
        for k in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[k: k + _SQL_CHUNK]
            q = f"SELECT id, removed FROM devices WHERE id IN ({','.join('?' * len(chunk))})"
            state.update((row[0], row[1]) for row in self._db.execute(q, chunk))
        return state

    @_serialised
    def set_labels(self, device_id: str, labels: Labels) -> None:
        for v, what in ((labels.site, "site"), (labels.rack, "rack"), (labels.position, "position")):
            _check_label(v, what)
        with self._tx():
            cur = self._db.execute(
                "UPDATE devices SET site=?, rack=?, position=? WHERE id=?",
                (labels.site, labels.rack, labels.position, device_id),
            )
            if cur.rowcount == 0:
                raise FarmStoreError(f"unknown device {device_id!r}")
        self._cache = None

    @_serialised
    def remove_device(self, device_id: str) -> None:
        with self._tx():
            self._db.execute("UPDATE devices SET removed=1 WHERE id=?", (device_id,))
        self._cache = None

    @_serialised
    def devices(self) -> list[Device]:
        rows = self._db.execute("SELECT * FROM devices WHERE removed=0 ORDER BY site, rack, position, id")
        return [_device_from_row(r) for r in rows]

    @_serialised
    def device(self, device_id: str) -> Device:
        row = self._db.execute("SELECT * FROM devices WHERE id=? AND removed=0", (device_id,)).fetchone()
        if row is None:
            raise FarmStoreError(f"unknown device {device_id!r}")
        return _device_from_row(row)

    # ---- poll results ----------------------------------------------------------------------------

    @_serialised
    def write_results(self, results: Sequence[PollResult]) -> None:
        """Record a batch of poll results: one history row each, and the per-device latest status.

        A failed poll keeps the last good reading in `status` (the dashboard shows what the device last
        said) but its history row has NULL measurements, never zeros."""
        if not results:
            return
        hist, ok_rows, bad_rows = _result_rows(results)
        with self._tx():
            self._db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?)", hist)
            self._write_status(ok_rows, bad_rows, newer_only=False)
        if self._cache is not None:
            self._apply_to_cache(results)

    def _write_status(self, ok_rows: list[tuple[Any, ...]], bad_rows: list[tuple[Any, ...]], newer_only: bool) -> None:
        """The latest status of each device from result rows (inside a transaction): a good reading resets
        the failure count, a failed poll keeps the last good reading and counts; with `newer_only` (central
        ingest) a row no newer than the status leaves it alone. Also moves the devices' last_seen."""
        only_newer = "\n                   WHERE excluded.time > status.time" if newer_only else ""
        # one lock order for every writer (PostgreSQL ingest workers never deadlock on status rows)
        ok_rows = sorted(ok_rows, key=lambda r: (r[0], r[1]))
        bad_rows = sorted(bad_rows, key=lambda r: (r[0], r[1]))
        self._db.executemany(
            """INSERT INTO status (device_id, time, state, error, state_since, failures, last_ok,
                 hashrate_ths, power_w, reading) VALUES (?,?,?,NULL,?,0,?,?,?,?)
               ON CONFLICT(device_id) DO UPDATE SET time=excluded.time, state=excluded.state,
                 error=NULL, failures=0, last_ok=excluded.last_ok, hashrate_ths=excluded.hashrate_ths,
                 power_w=excluded.power_w, reading=excluded.reading,
                 state_since=CASE WHEN status.state = excluded.state THEN status.state_since
                                  ELSE excluded.state_since END""" + only_newer,
            ok_rows,
        )
        self._db.executemany(
            """INSERT INTO status (device_id, time, state, error, state_since, failures)
               VALUES (?,?,?,?,?,1)
               ON CONFLICT(device_id) DO UPDATE SET time=excluded.time, state=excluded.state,
                 error=excluded.error, failures=status.failures + 1,
                 state_since=CASE WHEN status.state IN ('timeout','unreachable','error')
                                  THEN status.state_since ELSE excluded.state_since END""" + only_newer,
            bad_rows,
        )
        self._db.executemany("UPDATE devices SET last_seen=? WHERE id=? AND last_seen < ?",
                             [(row[1], row[0], row[1]) for row in ok_rows])

    def _apply_to_cache(self, results: Sequence[PollResult], newer_only: bool = False) -> None:
        """Mirror write_results' SQL on the cached statuses (same rules, no JSON round trip); with
        `newer_only`, ingest's rule too: a result no newer than the latest status leaves it alone."""
        assert self._cache is not None
        for res in results:
            prev = self._cache.get(res.device_id)
            if prev is None:
                continue  # not in the inventory: nothing to show
            if newer_only and res.time <= prev.time:
                continue
            if res.reading is not None:
                since = prev.state_since if prev.state is res.state else res.time
                dev = prev.device
                if res.time > dev.last_seen:
                    dev = dataclasses.replace(dev, last_seen=res.time)
                self._cache[res.device_id] = DeviceStatus(dev, res.state, res.time, since, 0, res.time, None,
                                                          res.reading)
            else:
                since = prev.state_since if prev.state in ERROR_STATES else res.time
                self._cache[res.device_id] = DeviceStatus(prev.device, res.state, res.time, since,
                                                          prev.failures + 1, prev.last_ok, res.error, prev.reading)

    # ---- central ingest (batches forwarded by collectors) ---------------------------------------

    @_serialised
    def ingest(self, batch_id: str, collector: str, devices: Sequence[Device], results: Sequence[PollResult],
               now: float) -> IngestOutcome:
        """Write one collector batch (validated by `pithead.farm.ingest`) in one transaction, idempotently:

        - a batch id already ingested writes nothing again (a collector resends a batch whose reply it
          lost to a timeout);
        - a (device, time) already in the history is not written twice (the same readings in another
          batch, e.g. after a collector lost its spool mid-send);
        - the latest status only moves forward in time: a result older than the device's status (readings
          drained late from a spool, or two collectors briefly polling one device) goes into the history
          but never overwrites a newer status, so results may arrive in any order;
        - results of devices the inventory does not have are refused (by index; `unknown` for never seen,
          the collector sends the device first; `removed` for one removed here on purpose).
        Devices are upserted before the results, so a batch may carry a new device and its first reading."""
        with self._tx():
            # the batch id first: a second ingest worker taking the same batch at the same moment waits
            # here for the first one's commit, then finds it (PostgreSQL), instead of writing it twice
            claimed = self._db.execute(
                "INSERT INTO ingest_batches VALUES (?,?,?,?) ON CONFLICT DO NOTHING RETURNING batch",
                (batch_id, collector, now, len(results))).fetchone()
            if claimed is None:
                return IngestOutcome(duplicate_batch=True)
            new = self.upsert_devices(devices) if devices else 0
            state = self._known_ids(sorted({r.device_id for r in results}))
            keep = [r for r in results if state.get(r.device_id) == 0]
            unknown = tuple(i for i, r in enumerate(results) if r.device_id not in state)
            removed = tuple(i for i, r in enumerate(results) if state.get(r.device_id) == 1)
            hist, ok_rows, bad_rows = _result_rows(keep)
            # typed (CAST): PostgreSQL types the parameters of a SELECT list by themselves, not by column
            written = self._db.executemany(
                """INSERT INTO readings SELECT CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT),
                     CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION),
                     CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION),
                     CAST(? AS INTEGER), CAST(? AS TEXT)
                   WHERE NOT EXISTS (SELECT 1 FROM readings WHERE device_id=? AND time=?)""",
                [(*h, h[0], h[1]) for h in hist])
            self._write_status(ok_rows, bad_rows, newer_only=True)
        if self._cache is not None:
            # in time order, so several results of one device in a batch end as SQL left them
            self._apply_to_cache(sorted(keep, key=lambda r: r.time), newer_only=True)
        return IngestOutcome(False, new, written, len(keep) - written, unknown, removed,
                             min((r.time for r in keep), default=None))

    @_serialised
    def mark_stale(self, older_than: float, error: str) -> list[str]:
        """Central only: every device whose latest status is a good reading older than `older_than` (no
        collector has forwarded anything for it since) becomes UNREACHABLE with `error`, as if its poll had
        failed since its last reading (state_since = that reading's time), so the OFFLINE alert fires for
        a shard whose collector died. Its status time is kept, so any newer reading (a collector draining
        its spool) replaces the mark. Returns the ids marked."""
        # in SQL alone: at 500,000 machines, building every status to find the stale ones would cost the
        # central's partition 0 more than the rest of its tick (curtailed and removed devices are left alone,
        # as statuses() shows them)
        with self._tx():
            stale = sorted(str(r[0]) for r in self._db.execute(
                """UPDATE status SET state='unreachable', error=?, state_since=time, failures=failures + 1
                   WHERE state='ok' AND time < ?
                     AND device_id IN (SELECT id FROM devices WHERE removed = 0)
                     AND device_id NOT IN (SELECT device_id FROM curtailment WHERE curtailed = 1)
                   RETURNING device_id""", (error, older_than)))
        if self._cache is not None:
            for device_id in stale:
                prev = self._cache.get(device_id)
                if prev is not None and prev.state is DeviceState.OK:
                    self._cache[device_id] = dataclasses.replace(
                        prev, state=DeviceState.UNREACHABLE, error=error, state_since=prev.time,
                        failures=prev.failures + 1)
        return stale

    @_serialised
    def statuses(self) -> list[DeviceStatus]:
        """Every device with its latest status (UNKNOWN if never polled), ordered by site/rack/position.

        Served from an in-memory cache: rebuilding 24,000 statuses from rows and JSON costs ~1 s of CPU,
        and alerts, curtailment and every dashboard refresh ask for them. This connection's own writes
        update the cache as they commit; a commit by another process (another collector on the same
        file, an ingest worker on the same PostgreSQL database) changes the connection's version, and the
        cache is rebuilt from the database. With `status_max_age_s` the cache is trusted that long after it
        was last checked: on a PostgreSQL farm at scale other workers commit every moment, and rebuilding
        500,000 statuses for every page refresh would cost tens of CPU-seconds each."""
        checked = _time.monotonic()
        if (self._cache is None or self.status_max_age_s <= 0
                or checked - self._cache_checked >= self.status_max_age_s):
            version = self._db.version()
            if self._cache is None or version != self._cache_version:
                self._cache = {st.device.id: st for st in self._load_statuses()}
                self._cache_version = version
            self._cache_checked = checked
        # curtailed on purpose: shown as CURTAILED whatever the last poll said (neither outage nor fault)
        curtailed = {k for k, (on, _since) in self.curtailment().items() if on}
        if not curtailed:
            return list(self._cache.values())
        return [dataclasses.replace(st, state=DeviceState.CURTAILED) if st.device.id in curtailed else st
                for st in self._cache.values()]

    @_serialised
    def partition_statuses(self, index: int, count: int) -> list[DeviceStatus]:
        """The statuses of the racks of evaluation partition `index` of `count` (`rack_partition`): read
        from the database for those racks only (no cache: an evaluator of a big central reads its part,
        not the fleet), with the curtailment override of `statuses()`."""
        if count <= 1:
            return self.statuses()
        racks = [(r[0], r[1]) for r in self._db.execute("SELECT DISTINCT site, rack FROM devices WHERE removed = 0")
                 if rack_partition(r[0], r[1], count) == index]
        out: list[DeviceStatus] = []
        for k in range(0, len(racks), _SQL_CHUNK // 2):
            chunk = racks[k: k + _SQL_CHUNK // 2]
            cond = " OR ".join(["(d.site = ? AND d.rack = ?)"] * len(chunk))
            out.extend(self._load_statuses(f"AND ({cond})", [v for pair in chunk for v in pair]))
        out.sort(key=lambda st: (st.device.labels.site, st.device.labels.rack, st.device.labels.position,
                                 st.device.id))
        curtailed = {k for k, (on, _since) in self.curtailment().items() if on}
        return [dataclasses.replace(st, state=DeviceState.CURTAILED) if st.device.id in curtailed else st
                for st in out]

    def _load_statuses(self, where: str = "", args: Sequence[Any] = ()) -> list[DeviceStatus]:
        rows = self._db.execute(
            """SELECT d.*, s.time AS s_time, s.state AS s_state, s.error AS s_error,
                      s.state_since AS s_since, s.failures AS s_failures, s.last_ok AS s_last_ok,
                      s.reading AS s_reading
               FROM devices d LEFT JOIN status s ON s.device_id = d.id
               WHERE d.removed = 0 """ + where + " ORDER BY d.site, d.rack, d.position, d.id", args
        )
        out = []
        for row in rows:
            state = DeviceState(row["s_state"]) if row["s_state"] else DeviceState.UNKNOWN
            out.append(DeviceStatus(
                device=_device_from_row(row),
                state=state,
                time=row["s_time"] or 0.0,
                state_since=row["s_since"] or 0.0,
                failures=row["s_failures"] or 0,
                last_ok=row["s_last_ok"],
                error=row["s_error"],
                reading=reading_from_json(row["s_reading"]) if row["s_reading"] else None,
            ))
        return out

    @_serialised
    def history(self, device_id: str, since: float, until: float | None = None) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM readings WHERE device_id=? AND time>=? AND time<? ORDER BY time LIMIT ?",
            (device_id, since, until if until is not None else float("inf"), MAX_LIST_ROWS * 10),
        )
        return [dict(r) for r in rows]

    # ---- rollups ---------------------------------------------------------------------------------

    @_serialised
    def rollup(self, until: float, buckets: Sequence[int] = ROLLUP_BUCKETS_S, redo_since: float | None = None) -> int:
        """Fold raw readings into every bucket that ended at or before `until`. Idempotent: a bucket is
        recomputed from raw rows each time, so calling it twice, or late, gives the same rows.
        `redo_since`: readings that time or later arrived after their buckets were rolled up (a central
        store ingesting a collector's spool after an outage); those buckets are recomputed too."""
        written = 0
        with self._tx():
            for b in buckets:
                key = f"rollup_watermark_{b}"
                row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
                start = float(row[0]) if row else 0.0
                if redo_since is not None and row is not None:
                    start = min(start, (redo_since // b) * b)
                end = (until // b) * b
                if end <= start:
                    continue
                cur = self._db.execute(self._db.sql(
                    """INSERT INTO rollups
                       SELECT device_id, ?, bk * ?, COUNT(*),
                              SUM(CASE WHEN state = 'ok' THEN 1 ELSE 0 END), AVG(hashrate_ths),
                              MAX(hashrate_ths), AVG(power_w), MAX(max_chip_temp), AVG(power_w) * ? / 3600.0
                       FROM (SELECT *, {BUCKET} AS bk FROM readings WHERE time >= ? AND time < ?) r
                       WHERE true GROUP BY device_id, bk
                       ON CONFLICT (device_id, bucket_s, bucket) DO UPDATE SET samples=excluded.samples,
                         ok_samples=excluded.ok_samples, avg_hashrate_ths=excluded.avg_hashrate_ths,
                         max_hashrate_ths=excluded.max_hashrate_ths, avg_power_w=excluded.avg_power_w,
                         max_chip_temp=excluded.max_chip_temp, energy_wh=excluded.energy_wh"""),
                    (b, b, b, b, start, end),
                )
                written += cur.rowcount
                self._set_meta(key, repr(end))
        return written

    @_serialised
    def rollups(self, bucket_s: int, since: float, device_id: str | None = None) -> list[RollupRow]:
        q = "SELECT * FROM rollups WHERE bucket_s=? AND bucket>=?"
        args: list[Any] = [bucket_s, since]
        if device_id is not None:
            q += " AND device_id=?"
            args.append(device_id)
        q += " ORDER BY bucket, device_id"
        return [RollupRow(**dict(r)) for r in self._db.execute(q, args)]

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                         (key, value))

    @_serialised
    def prune(self, now: float, retention_s: float = RAW_RETENTION_S) -> int:
        """Delete raw readings older than the retention that every rollup has already folded in."""
        cutoff = now - retention_s
        for b in ROLLUP_BUCKETS_S:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (f"rollup_watermark_{b}",)).fetchone()
            cutoff = min(cutoff, float(row[0]) if row else 0.0)
        with self._tx():
            # batch ids are kept as long as raw readings: a resend older than that is caught by nothing
            # anyway (its readings would be pruned again), and the table stays small
            self._db.execute("DELETE FROM ingest_batches WHERE received < ?", (now - retention_s,))
            return int(self._db.execute("DELETE FROM readings WHERE time < ?", (cutoff,)).rowcount)

    # ---- alerts ----------------------------------------------------------------------------------

    @_serialised
    def open_alerts(self) -> list[AlertRow]:
        rows = self._db.execute("SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY opened_at, id")
        return [AlertRow(**dict(r)) for r in rows]

    @_serialised
    def alerts(self, since: float = 0.0, limit: int = MAX_LIST_ROWS) -> list[AlertRow]:
        rows = self._db.execute(
            "SELECT * FROM alerts WHERE opened_at >= ? OR resolved_at IS NULL ORDER BY id DESC LIMIT ?",
            (since, min(limit, MAX_LIST_ROWS)),
        )
        return [AlertRow(**dict(r)) for r in rows]

    @_serialised
    def open_alert(self, device_id: str, kind: str, severity: str, message: str, now: float,
                   machines: int = 1) -> int | None:
        """Open an alert unless one of that kind is already open for the device (or group: `device_id`
        "rack:SITE/RACK" or "site:SITE" with its count of `machines`). Returns the new id."""
        with self._tx():
            row = self._db.execute(
                """INSERT INTO alerts (device_id, kind, severity, message, opened_at, machines)
                   VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id""",
                (device_id, kind, severity, message, now, machines),
            ).fetchone()
            return int(row[0]) if row is not None else None

    @_serialised
    def update_alert(self, alert_id: int, message: str, machines: int) -> None:
        """A group alert's machines changed (a rack going dark one switch at a time): its count and text."""
        with self._tx():
            self._db.execute("UPDATE alerts SET message=?, machines=? WHERE id=? AND resolved_at IS NULL",
                             (message, machines, alert_id))

    @_serialised
    def ack_alert(self, alert_id: int, actor: str, now: float) -> AlertRow:
        """Someone has seen the alert and is on it (shown on the page and in the API; the first ack counts)."""
        with self._tx():
            self._db.execute("UPDATE alerts SET acked_at=?, acked_by=? WHERE id=? AND acked_at IS NULL",
                             (now, actor, alert_id))
            row = self._db.execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
        if row is None:
            raise FarmStoreError(f"unknown alert {alert_id}")
        return AlertRow(**dict(row))

    @_serialised
    def add_silence(self, target: str, kind: str | None, until: float, actor: str, reason: str,
                    now: float) -> SilenceRow:
        if not target or len(target) > 2 * MAX_LABEL_LEN + 16 or any(ord(c) < 32 for c in target):
            raise FarmStoreError(f"bad silence target {target!r} (a device id, rack:SITE/RACK, site:SITE or *)")
        if not now < until <= now + MAX_SILENCE_S:
            raise FarmStoreError(f"a silence ends after now and within {MAX_SILENCE_S / 86_400:.0f} days")
        with self._tx():
            active = self._db.execute("SELECT COUNT(*) FROM alert_silences WHERE until > ?", (now,)).fetchone()[0]
            if active >= MAX_SILENCES:
                raise FarmStoreError(f"{MAX_SILENCES} silences are active already; remove some first")
            row = self._db.execute(
                """INSERT INTO alert_silences (target, kind, until, created_at, created_by, reason)
                   VALUES (?,?,?,?,?,?) RETURNING *""", (target, kind, until, now, actor, reason)).fetchone()
        return SilenceRow(**dict(row))

    @_serialised
    def silences(self, now: float) -> list[SilenceRow]:
        """The silences in force at `now` (ended ones are kept as history, and not returned)."""
        rows = self._db.execute("SELECT * FROM alert_silences WHERE until > ? ORDER BY id", (now,))
        return [SilenceRow(**dict(r)) for r in rows]

    @_serialised
    def end_silence(self, silence_id: int, now: float) -> bool:
        """End a silence now; False if there is no such silence in force."""
        with self._tx():
            cur = self._db.execute("UPDATE alert_silences SET until=? WHERE id=? AND until > ?",
                                   (now, silence_id, now))
            return bool(cur.rowcount)

    @_serialised
    def resolve_alert(self, alert_id: int, now: float) -> None:
        with self._tx():
            self._db.execute("UPDATE alerts SET resolved_at=? WHERE id=? AND resolved_at IS NULL", (now, alert_id))

    # ---- audit -----------------------------------------------------------------------------------

    @_serialised
    def audit_begin(self, actor: str, device_id: str, action: str, params: dict[str, Any], now: float) -> int:
        """Record an action before it is sent, so a crash mid-action still leaves a trace."""
        with self._tx():
            row = self._db.execute(
                """INSERT INTO audit (time, actor, device_id, action, params, outcome) VALUES (?,?,?,?,?,?)
                   RETURNING id""",
                (now, actor, device_id, action, orjson.dumps(params).decode(), "pending"),
            ).fetchone()
            return int(row[0])

    @_serialised
    def audit_end(self, audit_id: int, outcome: str, error: str | None, now: float) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE audit SET outcome=?, error=?, finished=? WHERE id=?", (outcome, error, now, audit_id)
            )

    @_serialised
    def audit_log(self, device_id: str | None = None, limit: int = MAX_LIST_ROWS) -> list[AuditRow]:
        q = "SELECT * FROM audit"
        args: list[Any] = []
        if device_id is not None:
            q += " WHERE device_id=?"
            args.append(device_id)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(min(limit, MAX_LIST_ROWS))
        out = []
        for r in self._db.execute(q, args):
            d = dict(r)
            d["params"] = orjson.loads(d["params"])
            out.append(AuditRow(**d))
        return out

    # ---- curtailment -----------------------------------------------------------------------------

    @_serialised
    def set_curtailed(self, device_id: str, curtailed: bool, now: float) -> None:
        with self._tx():
            self._db.execute(
                """INSERT INTO curtailment VALUES (?,?,?) ON CONFLICT(device_id) DO UPDATE SET
                   curtailed=excluded.curtailed, since=excluded.since""",
                (device_id, int(curtailed), now),
            )

    @_serialised
    def curtailment(self) -> dict[str, tuple[bool, float]]:
        """device id -> (curtailed, since)."""
        return {r[0]: (bool(r[1]), r[2]) for r in self._db.execute("SELECT * FROM curtailment")}


class _Tx:
    """BEGIN/COMMIT around a block (ROLLBACK on error); nested use joins the outer transaction. After a
    commit, the version other connections watch moves on (`SqlConn.bump`); when it moved by exactly this
    commit, the store's status cache (kept up to date by the writes themselves) stays valid."""

    def __init__(self, store: FarmStore) -> None:
        self._store = store
        self._db = store._db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.begin()
            self._outer = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._outer:
            return
        if exc_type:
            self._db.rollback()
            return
        self._db.commit()
        v = self._db.bump()
        if v is not None:
            st = self._store
            st._cache_version = v if st._cache_version == v - 1 else -1


def open_farm_store(url: str | Path, data_dir: str | Path | None = None, status_max_age_s: float = 0.0) -> FarmStore:
    """The store over the database `url` names (see `pithead.farm.store_sql.connect`); a relative SQLite
    path is taken inside `data_dir`. The schema is created if missing. `status_max_age_s`: see statuses()."""
    return FarmStore(conn=connect(url, data_dir), status_max_age_s=status_max_age_s)


def now() -> float:
    """The wall clock, for shells only (the store itself always takes times as arguments)."""
    return _time.time()

"""The SQLite ledger backend: the embedded default, one file in the data directory (or `:memory:`).

WAL journal so the web API reads while the ledger writes; `BEGIN IMMEDIATE` so a transaction takes the
write lock up front instead of failing half-way; a busy timeout so a second process waits rather than
erroring; one covering index for the per-worker hashrate sums. Everything else is the shared SQL in
`pithead.ledger.store.sql`. Not for many writers on many hosts: that is what the PostgreSQL backend is for.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pithead.ledger.store.base import StoreError
from pithead.ledger.store.sql import SqlStore

# How long a connection waits for another one's write lock before giving up. The ledger is the only
# writer, so this only covers a second process (a CLI query, a backup) holding the lock briefly.
BUSY_TIMEOUT_S = 10.0


class SqliteStore(SqlStore):
    placeholder = "?"
    id_column = "INTEGER PRIMARY KEY"
    db_errors = (sqlite3.Error,)
    # The hashrate windows sum a worker's buckets over up to a day (thousands of rows per worker). Through
    # the primary key SQLite then seeks into the table once per row, which is most of the cost of the
    # dashboard's worker list; with the sums in the index it reads the index range alone (about 8x faster
    # at 200 workers and 100k buckets, `pithead bench web`). PostgreSQL does not get it: its index-only
    # scans wait for VACUUM's visibility map, which these constantly upserted rows keep stale, and indexing
    # the summed columns would turn every bucket upsert into a non-HOT update.
    extra_indexes = (
        "CREATE INDEX IF NOT EXISTS stat_buckets_worker_sums"
        " ON stat_buckets (worker, start, shares, difficulty_sum, best)",
    )

    def __init__(self, path: str | Path = ":memory:") -> None:
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            if path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                # With WAL, NORMAL loses at most the last transactions on power loss, never integrity.
                conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite ledger {path}: {exc}") from exc
        super().__init__(conn)
        self.path = path

    def _columns(self, table: str) -> set[str]:
        return {str(r[1]) for r in self._all(f"PRAGMA table_info({table})")}

    def _begin(self, write: bool) -> None:
        # IMMEDIATE takes the write lock now rather than failing to upgrade half-way; a read-only one is
        # DEFERRED, which in WAL mode reads a snapshot without blocking, or being blocked by, the writer.
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")

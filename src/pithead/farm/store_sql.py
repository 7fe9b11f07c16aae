"""The farm store's database connections: SQLite (the embedded default) or PostgreSQL (a farm at scale).

`FarmStore` (`pithead.farm.store`) holds one `SqlConn` and writes its SQL once, in the subset both engines
run alike -- the ledger's rule (`pithead.ledger.store.sql`): `INSERT ... ON CONFLICT`, `RETURNING`, `CASE`
instead of two-argument `MAX`, `DOUBLE PRECISION` times. What differs is said here and nowhere else:

- placeholders: the store writes `?`; the PostgreSQL connection sends `%s`;
- column types: `{ID}` (an auto-increment key) and `{BLOB}` (a reading's JSON: TEXT in SQLite, as it
  always was, BYTEA in PostgreSQL) in the schema; `{BUCKET}` (a time's bucket number: SQLite truncates
  with CAST, PostgreSQL's CAST rounds, so it uses FLOOR);
- rows: both answer rows that index by position and by column name and convert with `dict(row)`;
- `version()`: a number that changes when *another* connection commits, so the store's status cache knows
  to reload. SQLite has `PRAGMA data_version`; PostgreSQL a sequence that every write transaction of a
  farm store advances *after* its commit (sequences take no row lock, so ingest workers never queue on it).
  A store compares the number its own bump returned with the one it cached: one more means nobody else
  wrote in between, so its cache (updated by its own write) stays valid.

`open_farm_store(url)` opens a store by URL: `sqlite:///path`, `sqlite://:memory:`, a bare path, or
`postgresql://user@host/db?schema=farm` (the schema is created; several farms or test runs share one
database that way). This module holds no SQL of the store's own.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pithead.farm.model import FarmError

log = logging.getLogger(__name__)

# A schema name goes into DDL (identifiers cannot be bound as parameters): plain identifiers only.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# How long one PostgreSQL connection attempt may take before the store says the database is unreachable.
CONNECT_TIMEOUT_S = 10
# How long a SQLite connection waits for another process's write lock (a collector and a CLI command).
BUSY_TIMEOUT_S = 10.0


class FarmDatabaseError(FarmError):
    """The farm's database cannot be opened (bad URL, unreachable server, bad schema name)."""


class FarmRow(tuple[Any, ...]):
    """A result row: by position, by column name, and `dict(row)` (what sqlite3.Row gives)."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> FarmRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class SqlConn:
    """One connection, as the store uses it. Subclasses say the dialect."""

    placeholder = "?"
    types: ClassVar[dict[str, str]] = {}
    name = "sql"

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run `sql` for each row; the rows it changed in all."""
        raise NotImplementedError

    def schema(self, statements: Sequence[str]) -> None:
        for s in statements:
            self.execute(s.format(**self.types))

    def sql(self, text: str) -> str:
        """`text` with the dialect's column types and bucket expression filled in."""
        return text.format(**self.types) if "{" in text else text

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def version(self) -> int:
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        """The columns `table` has now (each engine asks its own catalogue)."""
        raise NotImplementedError

    def bump(self) -> int | None:
        """After a commit of this connection: advance the version others see; the new value (None: the
        engine does that itself, and this connection's own commits do not change what it reads)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def backend_pid(self) -> int | None:
        """The database server process of this connection, where there is one."""
        return None


class SqliteConn(SqlConn):
    name = "sqlite"
    types: ClassVar[dict[str, str]] = {"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB": "TEXT", "BUCKET": "CAST(time / ? AS INTEGER)"}

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL loses at most the last transactions on power loss, never integrity.
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise FarmDatabaseError(f"cannot open the farm database {self.path}: {exc}") from exc

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        return int(self._db.executemany(sql, rows).rowcount)

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def begin(self) -> None:
        # IMMEDIATE takes the write lock now (waiting up to the busy timeout for another process's) rather
        # than failing to upgrade a read half-way through the transaction
        self._db.execute("BEGIN IMMEDIATE")

    def version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def columns(self, table: str) -> set[str]:
        return {str(r[1]) for r in self._db.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self._db.close()


class PostgresConn(SqlConn):
    """psycopg 3, autocommit with explicit transactions (as the ledger's backend), in a schema of its own."""

    name = "postgresql"
    placeholder = "%s"
    types: ClassVar[dict[str, str]] = {"ID": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BLOB": "BYTEA",
             "BUCKET": "FLOOR(time / ?)"}

    def __init__(self, conninfo: str, schema: str = "farm") -> None:
        if not _SCHEMA_NAME.match(schema):
            raise FarmDatabaseError(f"bad PostgreSQL schema name {schema!r} (lower-case letters, digits, _)")
        # start-up: psycopg takes ~0.3 s to import, and only a postgresql:// farm needs it
        import psycopg

        self._psycopg = psycopg
        self.conninfo = conninfo
        self.schema_name = schema
        self._depth = False
        self._conn = self._connect()

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            try:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema_name}"')
            except psycopg.errors.UniqueViolation:  # another process created it at the same moment
                pass
            conn.execute(f'SET search_path TO "{self.schema_name}"')
            conn.execute("CREATE SEQUENCE IF NOT EXISTS farm_version")
        except psycopg.Error as exc:
            raise FarmDatabaseError(f"cannot open the PostgreSQL farm database: {exc}") from exc
        return conn

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _ensure(self) -> None:
        # a connection the server dropped is replaced before the next statement outside a transaction
        if not self._depth and (self._conn.broken or self._conn.closed):
            log.warning("farm: PostgreSQL connection lost; reconnecting")
            self._conn = self._connect()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        self._ensure()
        cur = self._conn.cursor()
        cur.execute(self._q(sql), args or None)
        if cur.description is not None:
            names = {c.name: i for i, c in enumerate(cur.description)}
            return _Rows([FarmRow(r, names) for r in cur.fetchall()], cur.rowcount)
        return _Rows([], cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        self._ensure()
        with self._conn.cursor() as cur:
            cur.executemany(self._q(sql), rows)
            return int(cur.rowcount)

    def begin(self) -> None:
        self.execute("BEGIN")
        self._depth = True

    def commit(self) -> None:
        self._depth = False
        self.execute("COMMIT")

    def rollback(self) -> None:
        self._depth = False
        self.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._depth

    def version(self) -> int:
        row = self.execute("SELECT last_value FROM farm_version").fetchone()
        return int(row[0])

    def columns(self, table: str) -> set[str]:
        rows = self.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                            "AND table_name = ?", (self.schema_name, table))
        return {str(r[0]) for r in rows}

    def bump(self) -> int | None:
        return int(self.execute("SELECT nextval('farm_version')").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def backend_pid(self) -> int | None:
        return int(self._conn.info.backend_pid)

    def schema(self, statements: Sequence[str]) -> None:
        # Several processes (central workers) start on one database at once: CREATE ... IF NOT EXISTS is not
        # safe against a concurrent creator in PostgreSQL, so creators take turns (a lock held until the
        # caller's transaction ends).
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"pithead.farm:{self.schema_name}",))
        super().schema(statements)

    def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (tests; pithead never calls this)."""
        self.execute(f'DROP SCHEMA IF EXISTS "{self.schema_name}" CASCADE')


class _Rows:
    """A fetched result, as the store reads it from a sqlite3 cursor: iterate, fetchone, rowcount."""

    def __init__(self, rows: list[FarmRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[FarmRow]:
        return iter(self._rows)

    def fetchone(self) -> FarmRow | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[FarmRow]:
        return self._rows


def connect(url: str | Path, data_dir: str | Path | None = None) -> SqlConn:
    """The connection a farm database URL names (see the module docstring)."""
    text = str(url)
    parts = urlsplit(text)
    if parts.scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "farm")
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        return PostgresConn(conninfo, schema)
    if parts.scheme == "sqlite":
        raw = text[len("sqlite://"):]
        if raw in ("", "/", ":memory:", "/:memory:"):
            return SqliteConn(":memory:")
        text = raw[1:] if raw.startswith("/") else raw  # sqlite:///rel, sqlite:////abs (SQLAlchemy's rule)
    elif "://" in text:
        raise FarmDatabaseError(f"unknown farm database URL {text!r} (want a path, sqlite:///PATH or "
                                "postgresql://USER@HOST/DB?schema=NAME)")
    if text == ":memory:":
        return SqliteConn(text)
    path = Path(text)
    if not path.is_absolute() and data_dir is not None:
        path = Path(data_dir) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteConn(path)


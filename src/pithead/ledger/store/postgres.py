"""The PostgreSQL ledger backend (psycopg 3): the same schema and statements as SQLite, in a schema of
its own so several pools (or test runs) can share one database.

Autocommit connection with explicit transactions, so calls outside `transaction()` commit on their own
exactly as they do on SQLite. This module only opens the connection and names the dialect; the SQL lives
in `pithead.ledger.store.sql`. It does not pool connections: the ledger is one writer with one connection.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg

from pithead.ledger.store.base import StoreError
from pithead.ledger.store.sql import SqlStore

log = logging.getLogger(__name__)

# A schema name goes into DDL unquoted-by-parameter (identifiers cannot be bound), so it is restricted
# to plain identifiers.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# How long one connection attempt may take before the store reports the database unreachable.
CONNECT_TIMEOUT_S = 10


class PostgresStore(SqlStore):
    placeholder = "%s"
    id_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    db_errors = (psycopg.Error,)

    def __init__(self, conninfo: str, schema: str = "pithead") -> None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(f"bad PostgreSQL schema name {schema!r}")
        self.conninfo = conninfo
        self.schema = schema
        super().__init__(self._connect())

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL ledger: {exc}") from exc
        return conn

    def _ensure(self) -> None:
        # A connection the server dropped (restart, idle timeout) is replaced before the next statement;
        # one that dies inside a transaction fails that transaction, and the caller retries it.
        if self._conn.broken or self._conn.closed:
            log.warning("PostgreSQL connection lost; reconnecting")
            self._conn = self._connect()

    def _columns(self, table: str) -> set[str]:
        rows = self._all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            (self.schema, table),
        )
        return {str(r[0]) for r in rows}

    def _begin(self, write: bool) -> None:
        # a read snapshot needs REPEATABLE READ: under READ COMMITTED each statement sees its own snapshot
        self._conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def backend_pid(self) -> int:
        """The server process serving this store's connection (for operators and tests)."""
        return int(self._conn.info.backend_pid)

    def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (tests; `pithead` never calls this)."""
        self._exec(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

"""pithead.ledger.store: the ledger's storage behind `LedgerStore`, chosen by URL, and the Redis share bus.

`open_store("sqlite:///path/ledger.sqlite3")`, `open_store("sqlite://:memory:")` or
`open_store("postgresql://user@host/db?schema=pithead")`. Relative SQLite paths are taken relative to
`data_dir` when one is given.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pithead.ledger.store.base import LedgerStore, StoreError, StoreReader
from pithead.ledger.store.sqlite import SqliteStore

__all__ = ["LedgerStore", "StoreError", "StoreReader", "open_store"]


def open_store(url: str, data_dir: str | Path | None = None, migrate: bool = True) -> LedgerStore:
    """Open (and by default create or check the schema of) the ledger store named by `url`."""
    parts = urlsplit(url)
    store: LedgerStore
    if parts.scheme == "sqlite":
        raw = url[len("sqlite://") :]
        if raw in ("", "/", ":memory:", "/:memory:"):
            path: str = ":memory:"
        else:
            # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path" (SQLAlchemy's rule)
            path = raw[1:] if raw.startswith("/") else raw
            if not Path(path).is_absolute() and data_dir is not None:
                path = str(Path(data_dir) / path)
        store = SqliteStore(path)
    elif parts.scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "pithead")
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        # start-up: psycopg takes ~0.3 s to import, and only a postgresql:// ledger needs it
        from pithead.ledger.store.postgres import PostgresStore

        store = PostgresStore(conninfo, schema=schema)
    else:
        raise StoreError(f"unknown ledger database URL {url!r} (want sqlite:///... or postgresql://...)")
    if migrate:
        store.migrate()
    return store

"""Store fixtures: every store test runs on SQLite and on PostgreSQL (127.0.0.1:5432, db `test`).

Each PostgreSQL store gets a schema of its own, unique to the test, dropped afterwards. If PostgreSQL is
not reachable the PostgreSQL half is skipped (the SQLite half still runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pithead.store import StoreError, open_store
from pithead.store.base import LedgerStore

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[LedgerStore]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/ledger.sqlite3")
        yield s
        s.close()
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        s = open_store(f"{PG_URL}?schema={schema}")
    except StoreError as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield s
    finally:
        s.drop_schema()  # type: ignore[attr-defined]
        s.close()

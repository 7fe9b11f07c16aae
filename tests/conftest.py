"""Shared test helpers: where the vectors live and loading them; the ledger-store fixture that runs every
store and ledger test on SQLite and on PostgreSQL (127.0.0.1:5432, db `test`), each PostgreSQL store in a
schema of its own, unique to the test and dropped afterwards. Without PostgreSQL the PostgreSQL half is
skipped locally and fails under CI (where .ci/run starts the server)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore

VECTORS = Path(__file__).parent / "vectors"
FIXTURES = Path(__file__).parent / "fixtures"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS


@pytest.fixture(scope="session")
def core_fixtures() -> Path:
    return FIXTURES / "bitcoin-core"


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
        if os.environ.get("CI"):  # CI starts PostgreSQL (.ci/run): there, a missing server is a failure
            raise
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield s
    finally:
        s.drop_schema()  # type: ignore[attr-defined]
        s.close()

"""Fixtures for the fleet-manager tests (tests/farm/*.py): loopback device servers, a fresh store, and
`farm_store`: the same on SQLite and on PostgreSQL (127.0.0.1:5432, db `test`, a schema per test, dropped
afterwards), for the tests of the store itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from farm_devices import Servers

from pithead.farm.store import FarmStore, open_farm_store
from pithead.farm.store_sql import FarmDatabaseError, PostgresConn
from skips import missing

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def store() -> Iterator[FarmStore]:
    s = FarmStore(":memory:")
    try:
        yield s
    finally:
        s.close()



@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def farm_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A farm database URL: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/farm.sqlite3"
        return
    schema = f"farm_{uuid.uuid4().hex[:16]}"
    try:
        conn = PostgresConn(PG_URL, schema)
    except FarmDatabaseError as exc:
        missing("postgresql", str(exc))
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        conn.drop_schema()
        conn.close()


@pytest.fixture
def farm_store(farm_url: str) -> Iterator[FarmStore]:
    """A fresh store on SQLite and on PostgreSQL (see `farm_url`)."""
    s = open_farm_store(farm_url)
    try:
        yield s
    finally:
        s.close()

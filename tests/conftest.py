"""Shared test helpers: where the vectors live and loading them; the ledger-store fixture that runs every
store and ledger test on SQLite and on PostgreSQL (127.0.0.1:5432, db `test`), each PostgreSQL store in a
schema of its own, unique to the test and dropped afterwards; and the hooks of `skips`: a test skipped for
want of PostgreSQL, Redis or Chromium is listed at the end of the run with its reason, and fails under CI
(`CI=true`, where .ci/run starts the services)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore
from skips import missing, pytest_runtest_makereport, pytest_terminal_summary

# Hypothesis checks what an example does, never how long it takes: its default 200 ms deadline (and the
# too-slow health check) fail a property test on a busy machine, and speed is the benchmarks' business.
settings.register_profile("pithead", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pithead")

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


# The hooks of `skips`, registered by being here (pytest reads a conftest's hook functions by name).
__all__ = ["pytest_runtest_makereport", "pytest_terminal_summary"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
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
        missing("postgresql", str(exc))
    try:
        yield s
    finally:
        s.drop_schema()  # type: ignore[attr-defined]
        s.close()

"""Fixtures for the web tests (the seed data itself lives in webseed.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from webseed import Seed, seed_store

from pithead.ledger.store import open_store


@pytest.fixture
def seeded(tmp_path) -> Iterator[Seed]:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    # A fixed "now" in the middle of a bucket, so window alignment is exercised.
    now = 1_800_000_030.0
    yield seed_store(store, now)
    store.close()


@pytest.fixture
def live_seeded(tmp_path) -> Iterator[Seed]:
    """The same data relative to the real clock (for servers and the browser)."""
    store = open_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    yield seed_store(store, time.time())
    store.close()

"""Fixtures for the fleet-manager tests (tests/farm/*.py): loopback device servers, a fresh store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from farm_devices import Servers

from pithead.farm.store import FarmStore


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

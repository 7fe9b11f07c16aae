"""Shared test helpers: where the vectors live, and loading them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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

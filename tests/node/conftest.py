"""Fixtures for the embedded node's tests: a node on an ephemeral port with a cookie-authenticated client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pithead.node.node import EmbeddedNode
from pithead.node.testing import running_node
from pithead.template.rpc import RpcClient

CORE = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"


def core_fixture(name: str) -> Any:
    return json.loads((CORE / name).read_text())


@pytest.fixture
async def node_rpc(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    async with running_node(tmp_path / "node") as pair:
        yield pair


@pytest.fixture
async def rpc(node_rpc: tuple[EmbeddedNode, RpcClient]) -> RpcClient:
    return node_rpc[1]

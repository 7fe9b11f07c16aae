"""Fixtures for the embedded node's tests: a node on an ephemeral port with a cookie-authenticated client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pithead.bitcoind.rpc import RpcClient
from pithead.node.node import EmbeddedNode
from pithead.node.testing import running_node


@pytest.fixture
async def node_rpc(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    async with running_node(tmp_path / "node") as pair:
        yield pair


@pytest.fixture
async def rpc(node_rpc: tuple[EmbeddedNode, RpcClient]) -> RpcClient:
    return node_rpc[1]

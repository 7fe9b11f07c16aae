"""The template source's notices over real nodes (pithead's embedded node through its RPC): a node that
stops answering (node.down), the failover that follows (node.failover), the node back (node.back); a node
down at the start; the last node down (critical); and nothing at all when the source itself stops."""

from __future__ import annotations

import socket
from pathlib import Path

from receivers import Recorder, until

from pithead.bitcoind.rpc import RpcClient
from pithead.node.node import EmbeddedNode
from pithead.node.testing import mine_blocks, running_node
from pithead.template.sources.failover import FailoverSource
from pithead.template.sources.node import NodeSource


def source(node: EmbeddedNode, name: str, priority: int) -> NodeSource:
    return NodeSource(RpcClient(node.rpc_url, cookie_file=node.cookie_path, name=name), priority=priority,
                      health_interval=0.1, retry_interval=0.1)


async def test_down_failover_and_back(tmp_path: Path) -> None:
    told = Recorder()
    async with running_node(tmp_path / "primary") as (a, rpc_a), running_node(tmp_path / "backup") as (b, _):
        await mine_blocks(rpc_a, 2)
        failover = FailoverSource([source(a, "primary", 0), source(b, "backup", 1)], notices=told)
        await failover.start()
        try:
            assert failover.active is not None and failover.active.name == "primary"
            assert told.notices == []  # both answer: nothing to say
            await a.stop()
            await until(lambda: told.of("node.down") and told.of("node.failover"))
            (down,) = told.of("node.down")
            assert (down.severity, down.key, down.title) == ("warning", "primary", "Node primary is down")
            assert "primary is not answering now" in down.body and "Templates come from backup" in down.body
            assert "1 of 2 nodes answer" in down.body
            (moved,) = told.of("node.failover")
            assert (moved.severity, moved.key) == ("warning", "backup")
            assert moved.title == "Failover: templates from backup now"
            assert "primary stopped answering" in moved.body and "backup leads now" in moved.body
            async with running_node(tmp_path / "primary", rpc_port=a.rpc_port):
                await until(lambda: told.of("node.back"))
            (back,) = told.of("node.back")
            assert (back.severity, back.key, back.title) == ("info", "primary", "Node primary is back")
            assert "primary answers again, at height 2" in back.body
        finally:
            await failover.stop()
    assert [n.kind for n in told.notices][:3] == ["node.down", "node.failover", "node.back"]
    # The primary, back at the same height and first by priority, may lead again before the test stops it
    # (on a busy machine it has the time): that is the only other thing there may be to say.
    assert all((n.kind, n.key) == ("node.failover", "primary") for n in told.notices[3:]), told.notices


async def test_the_last_node_down_is_critical_and_the_sources_own_stop_is_no_news(tmp_path: Path) -> None:
    told = Recorder()
    async with running_node(tmp_path / "only") as (node, _):
        failover = FailoverSource([source(node, "only", 0)], notices=told)
        await failover.start()
        try:
            await node.stop()
            await until(lambda: told.of("node.down"))
            (down,) = told.of("node.down")
            assert down.severity == "critical" and "No node answers" in down.body
        finally:
            await failover.stop()
    async with running_node(tmp_path / "again") as (node, _):
        failover = FailoverSource([source(node, "again", 0)], notices=told)
        await failover.start()
        await failover.stop()
    assert len(told.notices) == 1


async def test_a_node_down_at_the_start(tmp_path: Path) -> None:
    told = Recorder()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = NodeSource(RpcClient(f"http://127.0.0.1:{port}", user="u", password="p", name="dead"), priority=0,
                      retry_interval=0.1)
    async with running_node(tmp_path / "live") as (node, _):
        failover = FailoverSource([dead, source(node, "live", 1)], notices=told)
        await failover.start()
        try:
            (down,) = told.of("node.down")
            assert down.key == "dead" and "dead is not answering at the start" in down.body
            assert down.severity == "warning" and "Templates come from live" in down.body
        finally:
            await failover.stop()
    assert told.of("node.failover") == []  # it never led: no failover

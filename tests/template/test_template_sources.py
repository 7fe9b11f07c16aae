"""Template sources against real nodes (pithead's embedded node, driven only through RPC and ZMQ), and
against a hostile node that serves a malformed template."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.hashes import display_hex
from pithead.node.node import EmbeddedNode
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node
from pithead.template.interface import TemplateSource, TemplateUpdate
from pithead.template.sources.failover import FailoverSource, NoNodeError
from pithead.template.sources.node import NodeSource

CORE = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"
WAIT = 10.0  # generous bound for CI machines; the tests never assert how fast


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_for(node: EmbeddedNode, **kw: Any) -> RpcClient:
    return RpcClient(node.rpc_url, cookie_file=node.cookie_path, name=kw.pop("name", "n"), **kw)


async def next_update(it: AsyncIterator[TemplateUpdate]) -> TemplateUpdate:
    return await asyncio.wait_for(it.__anext__(), WAIT)


async def update_with_prev(it: AsyncIterator[TemplateUpdate], prev_display: str) -> TemplateUpdate:
    while True:
        u = await next_update(it)
        if display_hex(u.template.prev_hash) == prev_display:
            return u


# --- one node: ZMQ, long-poll, polling, refresh ---


@pytest.mark.parametrize("mode", ["zmq", "longpoll", "poll"])
async def test_new_tip_reaches_the_source_by_each_means(tmp_path: Path, mode: str) -> None:
    async with running_node(tmp_path / mode) as (node, rpc):
        source = NodeSource(
            client_for(node),
            zmq_hashblock=node.zmq_endpoints["hashblock"] if mode == "zmq" else None,
            use_longpoll=mode == "longpoll",
            poll_interval=0.05,
            health_interval=60.0,  # the health check must not be what finds the block
            refresh_interval=600.0,
        )
        typed: TemplateSource = source  # mypy checks NodeSource against the protocol
        assert typed is source
        updates = source.updates()
        await source.start()
        try:
            first = await next_update(updates)
            assert first.new_block and first.template.height == 1
            if mode == "zmq":
                await asyncio.sleep(0.3)  # ZMQ's slow joiner
            (tip,) = await mine_blocks(rpc, 1)
            u = await update_with_prev(updates, tip)
            assert u.new_block and u.template.height == 2
            assert source.notifications[mode] >= 1
            assert source.current() == u.template
        finally:
            await source.stop()


async def test_periodic_refresh_brings_new_transactions_without_a_new_block(tmp_path: Path) -> None:
    async with running_node(tmp_path / "r") as (node, rpc):
        await mine_blocks(rpc, 101)
        source = NodeSource(client_for(node), use_longpoll=False, health_interval=0.05, refresh_interval=0.1)
        updates = source.updates()
        await source.start()
        try:
            first = await next_update(updates)
            txid = await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 1})
            u = await next_update(updates)
            assert not u.new_block and u.template.prev_hash == first.template.prev_hash
            assert [display_hex(t.txid) for t in u.template.transactions] == [txid]
            assert u.template.coinbase_value > first.template.coinbase_value
        finally:
            await source.stop()


class HostileNode:
    """A JSON-RPC endpoint on loopback that serves Core's real h102 template, then a broken one."""

    def __init__(self) -> None:
        self.good = json.loads((CORE / "gbt-core-regtest-h102-mempool7.json").read_text())
        self.broken = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        h.split(b":")[1]
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    )
                )
                req = json.loads(await reader.readexactly(length))
                if req["method"] == "getblockchaininfo":
                    result: Any = {"chain": "regtest"}
                elif req["method"] == "getblocktemplate":
                    result = {**self.good, "bits": "zz"} if self.broken else self.good
                else:
                    result = self.good["previousblockhash"]
                body = json.dumps({"result": result, "error": None, "id": req["id"]}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def test_malformed_template_is_refused_and_the_last_good_one_stays() -> None:
    hostile = HostileNode()
    await hostile.start()
    source = NodeSource(
        RpcClient(f"http://127.0.0.1:{hostile.port}", user="u", password="p"),
        use_longpoll=False,
        health_interval=60.0,
        refresh_interval=600.0,
    )
    try:
        await source.start()
        good = source.current()
        assert good is not None and good.height == 102 and len(good.transactions) == 7
        hostile.broken = True
        await source.refresh()
        assert source.current() is good
        assert source.rejected is not None and "bits" in source.rejected
    finally:
        await source.stop()
        await hostile.stop()


# --- several nodes ---


async def test_failover_keeps_work_flowing_and_submits_everywhere(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path / "primary") as (a, rpc_a),
        running_node(tmp_path / "backup") as (b, rpc_b),
    ):
        await mine_blocks(rpc_a, 3)
        await mine_blocks(rpc_b, 1)
        failover = FailoverSource(
            [
                NodeSource(
                    client_for(b, name="backup"),
                    zmq_hashblock=b.zmq_endpoints["hashblock"],
                    priority=1,
                    health_interval=0.2,
                    retry_interval=0.2,
                ),
                NodeSource(
                    client_for(a, name="primary"),
                    zmq_hashblock=a.zmq_endpoints["hashblock"],
                    priority=0,
                    health_interval=0.2,
                    retry_interval=0.2,
                ),
            ]
        )
        updates = failover.updates()
        await failover.start()
        try:
            first = await next_update(updates)
            assert first.template.height == 4  # the primary's chain leads
            assert failover.active is not None and failover.active.name == "primary"
            await a.stop()  # the primary dies
            u = await update_with_prev(updates, await rpc_b.call("getbestblockhash"))
            assert u.new_block and u.template.height == 2 and failover.active.name == "backup"
            status = {s["name"]: s for s in failover.status()}
            assert (
                status["backup"]["active"] and status["backup"]["healthy"] and status["backup"]["height"] == 2
            )
            assert not status["primary"]["healthy"] and status["primary"]["last_error"]
            await asyncio.sleep(0.3)  # ZMQ's slow joiner on the backup's socket
            (tip,) = await mine_blocks(rpc_b, 1)
            u = await update_with_prev(updates, tip)
            assert u.template.height == 3
            block = block_from_template(
                await rpc_b.call("getblocktemplate", {"rules": ["segwit"]}), p2wsh_of(BARE_OP_TRUE)
            )
            results = {r.node: r for r in await failover.submit_block(block.hex())}
            assert results["backup"].accepted and results["backup"].result is None
            assert not results["primary"].accepted and results["primary"].result.startswith("error")
            assert await rpc_b.call("getbestblockhash") == block.hash_hex()
            # The primary comes back on its address with its own chain, as long as the backup's (3 blocks
            # each, different forks): equal work, so the backup keeps leading (no flapping). Once the
            # primary's chain has more work it leads again.
            async with running_node(tmp_path / "primary", rpc_port=a.rpc_port) as (_, rpc_a2):

                async def primary_back() -> bool:
                    st = {s["name"]: s for s in failover.status()}
                    return bool(st["primary"]["healthy"]) and st["primary"]["height"] == 4

                deadline = asyncio.get_running_loop().time() + WAIT
                while not await primary_back():
                    assert asyncio.get_running_loop().time() < deadline, failover.status()
                    await asyncio.sleep(0.02)
                status = {s["name"]: s for s in failover.status()}
                assert failover.active.name == "backup", status
                assert status["primary"]["reason"].startswith("standby: equal chain work on another fork")
                assert "no flapping" in status["backup"]["reason"]
                (tip,) = await mine_blocks(rpc_a2, 1)
                u = await update_with_prev(updates, tip)
                assert u.new_block and u.template.height == 5 and failover.active.name == "primary"
                status = {s["name"]: s for s in failover.status()}
                assert status["backup"]["reason"].startswith("behind: less chain work than primary")
        finally:
            await failover.stop()


async def test_failover_start_fails_clearly_when_no_node_answers() -> None:
    sources = [
        NodeSource(
            RpcClient(f"http://127.0.0.1:{free_port()}", user="u", password="p", name=f"n{i}"),
            retry_interval=0.1,
        )
        for i in range(2)
    ]
    with pytest.raises(NoNodeError) as err:
        await FailoverSource(sources, start_timeout=0.5).start()
    assert "n0" in str(err.value) and "n1" in str(err.value)


async def test_user_and_password_instead_of_a_cookie(tmp_path: Path) -> None:
    async with running_node(tmp_path / "up", rpc_user="pool", rpc_password="s3cret") as (node, rpc):
        assert node.cookie is None and not node.cookie_path.exists()
        assert await rpc.call("getblockcount") == 0
        source = node.template_source()
        await source.start()
        try:
            assert source.current() is not None
        finally:
            await source.stop()

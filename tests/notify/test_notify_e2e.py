"""End to end: the operation's notices reach a local receiver. A block found on the demo chain
(`pithead up`, shortened) arrives as `block.found`; a node stopped under `pithead serve` arrives as
`node.down`, and the notifier's counts are on /metrics; `pithead notify test` reports what each destination
answered, as a command. Receivers are real servers on loopback; waits are bounded, on conditions."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from receivers import HttpReceiver, until

from pithead.node.node import EmbeddedNode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WAIT_S = 120.0  # generous: the demo mines on two shared cores next to the rest of the suite


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    receiver = await HttpReceiver().start()
    yield receiver
    await receiver.close()


def _route(url: str, kinds: list[str]) -> str:
    return f"[[notify.routes]]\nurls = {json.dumps([url])}\nkinds = {json.dumps(kinds)}\n"  # TOML takes JSON's


async def _running(start: Any, check: Any) -> Any:
    """Start an operation (`start(stop, on_ready)`), run `check(running)`, stop it; returns `running`."""
    stop = asyncio.Event()
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(start(stop, ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
    running = ready.result()
    try:
        await check(running)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    return running


async def test_a_block_found_on_the_demo_chain_reaches_the_receiver(tmp_path: Path, http: HttpReceiver) -> None:
    from pithead.app.demo import UpOptions, serve_up

    config = tmp_path / "pithead.toml"
    config.write_text("[notify]\n" + _route(http.url(), ["block.found"]))
    opts = UpOptions(data_dir=str(tmp_path / "data"), config_path=str(config), print_fn=lambda _: None,
                     node_port=0, pool_port=0, web_port=0, block_interval=1.0, miners=2, sim_devices=0,
                     miner_difficulty=0.001)

    async def check(running: Any) -> None:
        assert "notify" in running.parts and running.notifier is not None
        await until(lambda: any(r.json()["title"].startswith("Block ") for r in http.answered), WAIT_S)

    await _running(lambda stop, ready: serve_up(opts, stop, ready), check)
    found = http.answered[0].json()
    assert " found by bcrt1" in found["title"] and found["type"] == "info"
    assert "Hash " in found["message"] and "Reward " in found["message"] and "block.found · info" in found["message"]


async def test_a_node_stopped_under_serve_reaches_the_receiver(tmp_path: Path, http: HttpReceiver) -> None:
    from pithead.app.parts import STOP_FIRST
    from pithead.app.production import ServeOptions, serve

    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(node.rpc_url, auth=node.auth,
                             json={"id": 1, "method": "getnewaddress", "params": ["pool"]})
            pool_address = r.json()["result"]
        config = tmp_path / "pithead.toml"
        config.write_text(
            f'data_dir = "{tmp_path / "data"}"\n'
            f'[pool]\nport = 0\nmode = "pool"\nnetwork = "regtest"\npool_address = "{pool_address}"\n'
            f'[[pool.nodes]]\nurl = "{node.rpc_url}"\ncookie_file = "{node.cookie_path}"\n'
            '[web]\nport = 0\n'
            "[notify]\n" + _route(http.url(), ["node.*"]))

        async def check(running: Any) -> None:
            assert "notify" in running.parts
            # stopped last but one (before the node's RPC client): after every part that raises notices
            names = [name for name, _ in running.stoppers]
            order = [n for n in STOP_FIRST if n in names] + [n for n in reversed(names) if n not in STOP_FIRST]
            assert order[-2:] == ["notifier", "node rpc client"], order
            await node.stop()
            await until(lambda: any(r.json()["title"].startswith("Node ") for r in http.answered), WAIT_S)
            async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as client:
                metrics = (await client.get("/metrics")).text
            assert f'pithead_notifications_total{{destination="{http.url()}",outcome="sent"}} 1.0' in metrics

        lines: list[str] = []
        await _running(lambda stop, ready: serve(ServeOptions(str(config), print_fn=lines.append), stop, ready),
                       check)
    assert f"  notify       {http.url()}   (`pithead notify test` to try them)" in lines
    down = http.answered[0].json()
    assert down["title"] == f"Node {node.rpc_url} is down" and down["type"] == "failure"  # the only node: critical
    assert "No node answers" in down["message"] and "node.down · critical" in down["message"]


async def test_notify_test_command(tmp_path: Path, http: HttpReceiver) -> None:
    refused = await HttpReceiver().start()
    await refused.close()
    config = tmp_path / "pithead.toml"
    config.write_text("[notify]\n" + _route(http.url(), ["*"]) + _route(refused.url("form", "/x"), ["node.*"]))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pithead.cli", "notify", "test", "--config",
                                                str(config), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT_S)
    text = out.decode()
    assert proc.returncode == 1, text  # one destination did not take it
    assert f"route 1  {http.url()}  sent: Sent JSON POST notification." in text, text
    assert f"route 2  form://127.0.0.1:{refused.port}/x  FAILED: " in text, text
    assert "1 of 2 destinations took the test notice" in text
    assert http.answered[0].json()["title"] == "pithead test notice"
    config.write_text("[notify]\n" + _route(http.url(), ["blocks.*"]))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pithead.cli", "notify", "test", "--config",
                                                str(config), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode == 2 and "did you mean 'block.*'?" in out.decode(), out.decode()

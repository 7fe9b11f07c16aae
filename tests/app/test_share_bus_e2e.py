"""The Redis share bus in the commands: `pithead pool --share-bus` front-ends publish, a `pithead serve`
ledger (here `--no-pool`, the central machine) credits them all — against the real Redis on 127.0.0.1:6379
(one stream per test, deleted after) and pithead's embedded regtest node.

Also: a pool whose Redis does not answer at start stops with one line; a running pool whose Redis goes
away (a TCP proxy in front of Redis, closed and reopened) keeps accepting shares and writes them once Redis
is back; `serve`'s share bus config errors.

Without Redis these tests are skipped locally and fail under CI (where Redis always runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pithead.chain.hashes import from_display_hex, prevhash_to_stratum
from pithead.node.node import EmbeddedNode
from skips import missing
from stratum.helpers import POOL_ADDRESS, SOLO_ADDRESS, regtest_template
from stratum.rawclient import RawClient

pytestmark = [pytest.mark.timeout(120)]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
WAIT_S = 30.0  # generous: two shared cores
HARD = 0x1D00FFFF  # a template whose shares at tiny difficulty are not blocks


@pytest.fixture
async def redis_stream() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        missing("redis", str(exc))  # CI runs Redis: there, a missing server is a failure
    stream = f"pithead-test:{uuid.uuid4().hex}"
    try:
        yield client, stream
    finally:
        await client.delete(stream)
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _rpc(node: EmbeddedNode, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        data = r.json()
        assert data["error"] is None, data
        return data["result"]


def _config(path: Path, node: EmbeddedNode | None, *, share_bus: str, pool_address: str = POOL_ADDRESS) -> Path:
    nodes = (f'url = "{node.rpc_url}"\ncookie_file = "{node.cookie_path}"\n' if node is not None
             else f'url = "http://127.0.0.1:{_free_port()}"\nrpc_user = "u"\nrpc_password = "p"\n')
    path.write_text(
        f'data_dir = "{path.parent / (path.stem + "-data")}"\n'
        "[pool]\n"
        f'bind = "127.0.0.1"\nport = 0\nmode = "pool"\nnetwork = "regtest"\npool_address = "{pool_address}"\n'
        "min_difficulty = 1e-8\nstart_difficulty = 1e-6\nrefresh_interval = 0.5\n"
        f"[[pool.nodes]]\n{nodes}"
        f'[ledger]\nshare_bus = "{share_bus}"\nmaturity_interval = 0.5\n'
        '[web]\nbind = "127.0.0.1"\nport = 0\n'
    )
    return path


async def _until(what: str, check: Any, timeout_s: float = WAIT_S) -> Any:
    """Poll the async `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: never happened (last: {str(last)[:1000]})")


async def _mine_blocks(node: EmbeddedNode, port: int, user: str, blocks: int) -> None:
    """Find `blocks` regtest blocks through the pool on `port`, each on the node's current tip (on regtest
    every share at the pool's difficulty is a block candidate; waiting for the tip keeps two front-ends
    from racing for the same height)."""
    client = await RawClient.connect("127.0.0.1", port)
    try:
        await client.handshake(user)
        job = await client.wait_notify()
        for i in range(blocks):
            tip = prevhash_to_stratum(from_display_hex(await _rpc(node, "getbestblockhash")))
            while job[1] != tip:
                job = await client.wait_notify(wait_s=WAIT_S)
            height = int(await _rpc(node, "getblockcount"))
            r = await client.submit_one(user, job, version_bits=0x4000 * (i + 1))
            assert r["result"] is True, r

            async def taken(want: int = height + 1) -> bool:  # the node took it (the miner's reply never
                return int(await _rpc(node, "getblockcount")) == want  # waits for the node)

            await _until(f"block {i + 1} on the node", taken)
    finally:
        await client.close()


async def _start_front_end_process(config: Path, share_bus: str, workers: int) -> tuple[Any, int, str]:
    """`pithead pool --share-bus URL --workers N` as an operator runs it; returns (process, port, banner)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "pool", "--config", str(config), "--share-bus", share_bus,
        "--workers", str(workers),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    out: list[str] = []
    async with asyncio.timeout(WAIT_S):
        while not out or "listening on" not in out[-1]:
            line = (await proc.stdout.readline()).decode()
            assert line, f"pithead pool exited early: {''.join(out)}"
            out.append(line)
    banner = out[-1]
    port = int(banner.split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])
    return proc, port, "".join(out)


async def test_two_front_ends_feed_one_central_ledger(tmp_path: Path, redis_stream: tuple[aioredis.Redis, str]) -> None:
    from pithead.app.demo import Running
    from pithead.app.pool import serve as serve_pool
    from pithead.app.production import ServeOptions, serve
    from pithead.ledger.store import open_store

    redis, stream = redis_stream
    bus = f"redis://{REDIS_HOST}:{REDIS_PORT}/0?stream={stream}"
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress", "pool"))
        # The central machine: ledger, web and payouts (off), no Stratum pool, consuming the stream.
        central_cfg = _config(tmp_path / "central.toml", node, share_bus=bus, pool_address=pool_address)
        stop_central = asyncio.Event()
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        lines: list[str] = []
        central = asyncio.create_task(serve(ServeOptions(str(central_cfg), print_fn=lines.append, no_pool=True),
                                            stop_central, ready.set_result))
        done, _ = await asyncio.wait({central, ready}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if central in done:
            central.result()  # raises what went wrong
        running = ready.result()
        assert "ledger" in running.parts and "web" in running.parts and "pool" not in running.parts
        assert running.stratum_url is None and "pool" in running.skipped
        assert any(line.strip().startswith("share bus") and stream in line for line in lines), lines
        assert not any("not used" in line for line in lines), lines

        # Front-end A: the command, two worker processes; its config's own bus is a dead one, which the
        # --share-bus flag overrides.
        front_cfg = _config(tmp_path / "front.toml", node, share_bus=f"redis://127.0.0.1:{_free_port()}/0",
                            pool_address=pool_address)
        proc, port_a, out_a = await _start_front_end_process(front_cfg, bus, workers=2)
        front_b: asyncio.Task[None] | None = None
        try:
            assert "2 worker processes" in out_a and f"shares and blocks go to {bus}" in out_a, out_a
            assert "no share is recorded" not in out_a, out_a
            # Front-end B: the same pool in this process (what `pithead pool --share-bus` runs).
            from pithead.config import load

            stop_b = asyncio.Event()
            banner_b: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            front_b = asyncio.create_task(serve_pool(load(str(front_cfg)).pool, share_bus=bus, stop=stop_b,
                                                     on_listening=banner_b.set_result))
            port_b = int((await asyncio.wait_for(banner_b, WAIT_S)).split("listening on ")[1].split(";")[0]
                         .rsplit(":", 1)[1])

            user_a, user_b = SOLO_ADDRESS + ".frontA", SOLO_ADDRESS + ".frontB"
            await _mine_blocks(node, port_a, user_a, 2)
            await _mine_blocks(node, port_b, user_b, 2)
            await _mine_blocks(node, port_a, user_a, 1)
            await _mine_blocks(node, port_b, user_b, 1)
            # Stop both front-ends at once, right after their last shares: nothing may be lost.
            proc.send_signal(signal.SIGTERM)
            stop_b.set()
            rest = (await asyncio.wait_for(proc.communicate(), WAIT_S))[0].decode()
            assert proc.returncode == 0, rest
            assert "Traceback" not in rest, rest
            await asyncio.wait_for(front_b, WAIT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if front_b is not None and not front_b.done():
                stop_b.set()
                await asyncio.wait({front_b}, timeout=WAIT_S)

        # Published: one share and one block event per block found, 3 blocks per front-end, each once.
        assert await redis.xlen(stream) == 12
        # The central ledger credits both front-ends' blocks and shares (its REST API).
        assert running.web_url is not None
        async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as web:
            async def all_blocks() -> Any:
                blocks = (await web.get("/api/blocks")).json()
                return blocks if len(blocks) >= 6 else None

            blocks = await _until("the ledger lists 6 blocks", all_blocks)
            assert sorted(b["worker"] for b in blocks) == [user_a] * 3 + [user_b] * 3, blocks
            assert {b["hash"] for b in blocks} == {await _rpc(node, "getblockhash", h)
                                                   for h in range(blocks[-1]["height"], blocks[0]["height"] + 1)}
            workers = {w["worker"]: w for w in (await web.get("/api/workers")).json()}
            assert workers[user_a]["accepted"] == 3 and workers[user_b]["accepted"] == 3, workers
        stop_central.set()
        await asyncio.wait_for(central, WAIT_S)
        groups = await redis.xinfo_groups(stream)
        assert [(g["pending"], g["lag"]) for g in groups] == [(0, 0)]  # all applied and acknowledged
        store = open_store("sqlite:///ledger.sqlite3", data_dir=running.data_dir, migrate=False)
        try:
            assert store.share_count() == 6
            assert sum(w.accepted for w in store.workers()) == 6
        finally:
            store.close()


async def test_pool_with_redis_not_answering_stops_with_one_line(tmp_path: Path) -> None:
    # The bus comes from the config's [ledger] share_bus (no flag); its password stays out of the message.
    dead = f"redis://:sekret@127.0.0.1:{_free_port()}/0?stream=x"
    config = _config(tmp_path / "pool.toml", None, share_bus=dead)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "pool", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    text = err.decode().strip()
    assert proc.returncode == 1, (out, err)  # a start that failed (as serve), not a config to fix
    assert text.startswith("pithead pool: share bus redis://:***@127.0.0.1:") and "cannot use Redis" in text
    assert "\n" not in text and "sekret" not in text and "Traceback" not in text, text
    assert b"listening" not in out


class _Proxy:
    """A TCP proxy in front of Redis that the test can take away (closing every connection) and bring
    back on the same port: Redis going away and coming back, as the pool sees it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_running_pool_keeps_serving_while_redis_is_away(
    redis_stream: tuple[aioredis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    from pithead.app.pool import serve as serve_pool
    from pithead.config import PoolConfig
    from pithead.template.sources.static import StaticTemplateSource

    redis, stream = redis_stream
    proxy = _Proxy(_free_port())
    await proxy.up()
    cfg = PoolConfig(mode="pool", pool_address=POOL_ADDRESS, port=0, start_difficulty=1e-6, min_difficulty=1e-8)
    stop = asyncio.Event()
    banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    caplog.set_level(logging.INFO, logger="pithead")
    pool = asyncio.create_task(serve_pool(cfg, source=StaticTemplateSource(regtest_template(bits=HARD)),
                                          share_bus=f"redis://127.0.0.1:{proxy.port}/0?stream={stream}", stop=stop,
                                          on_listening=banner.set_result))
    port = int((await asyncio.wait_for(banner, WAIT_S)).split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])
    user = SOLO_ADDRESS + ".rig"
    client = await RawClient.connect("127.0.0.1", port)
    try:
        await client.handshake(user)
        job = await client.wait_notify()

        async def submit(n: int) -> None:
            for _ in range(n):
                assert (await client.submit_one(user, job))["result"] is True

        async def stream_has(n: int) -> bool:
            return bool(await redis.xlen(stream) == n)

        await submit(1)
        await _until("the first share in the stream", lambda: stream_has(1))
        await proxy.down()  # Redis goes away: the pool keeps judging shares, the sink keeps them
        await submit(3)
        await _until("the sink says Redis is unavailable",
                     lambda: _async_true(any("Redis unavailable" in r.getMessage() for r in caplog.records)))
        await submit(1)
        assert await redis.xlen(stream) == 1
        await proxy.up()  # back: the buffered shares are written, once each
        await _until("the buffered shares in the stream", lambda: stream_has(5))
        assert any("Redis is back" in r.getMessage() for r in caplog.records)
        await submit(1)
        await _until("a share after Redis came back", lambda: stream_has(6))
        await proxy.down()  # away again; two more shares wait in the sink ...
        await submit(2)
        await proxy.up()  # ... and the pool is stopped as soon as Redis is back: its last flush writes them
    finally:
        await client.close()
        stop.set()
        await asyncio.wait_for(pool, WAIT_S)
        await proxy.down()
    assert await redis.xlen(stream) == 8
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)  # nothing lost, nothing dropped


async def _async_true(value: bool) -> bool:
    return value


def _xlen_is(redis: aioredis.Redis, stream: str, n: int) -> Any:
    async def check() -> bool:
        return bool(await redis.xlen(stream) == n)

    return check


@pytest.mark.parametrize(("share_bus", "no_pool", "words"), [
    ("memory", True, "--no-pool runs only the ledger: it needs [ledger] share_bus"),
    ("kafka://u:sekret@host/x", False, "ledger.share_bus: must be"),
])
def test_serve_share_bus_config_errors(tmp_path: Path, share_bus: str, no_pool: bool, words: str) -> None:
    from pithead.app.production import run_serve

    config = _config(tmp_path / "c.toml", None, share_bus=share_bus)
    lines: list[str] = []
    with pytest.raises(SystemExit) as info:
        run_serve(str(config), print_fn=lines.append, err_fn=lines.append, no_pool=no_pool)
    text = "\n".join(lines)
    assert info.value.code == 2 and words in text and "\n" not in text and "sekret" not in text, text


async def test_serve_with_its_own_pool_publishes_and_consumes_the_stream(
    tmp_path: Path, redis_stream: tuple[aioredis.Redis, str]
) -> None:
    """`pithead serve` with a Redis share_bus and its own pool: its blocks go through the stream (each
    event once) to its ledger; the banner says so; a Redis that stops answering is its start error."""
    from pithead.app.demo import Running
    from pithead.app.production import ServeOptions, run_serve, serve

    redis, stream = redis_stream
    bus = f"redis://{REDIS_HOST}:{REDIS_PORT}/0?stream={stream}&group=central"
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress", "pool"))
        config = _config(tmp_path / "serve.toml", node, share_bus=bus, pool_address=pool_address)
        stop = asyncio.Event()
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        lines: list[str] = []
        task = asyncio.create_task(serve(ServeOptions(str(config), print_fn=lines.append), stop, ready.set_result))
        done, _ = await asyncio.wait({task, ready}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        running = ready.result()
        # The ledger's database is busy (another process writes): the ledger cannot apply what it reads.
        blocker = sqlite3.connect(running.data_dir / "ledger.sqlite3", isolation_level=None)
        try:
            assert {"pool", "ledger", "web"} <= set(running.parts)
            assert any(line.strip().startswith("share bus") and "this pool and" in line for line in lines), lines
            assert running.stratum_url is not None
            blocker.execute("BEGIN IMMEDIATE")
            await _mine_blocks(node, int(running.stratum_url.rsplit(":", 1)[1]), SOLO_ADDRESS + ".own", 2)
            await _until("both blocks in the stream", _xlen_is(redis, stream, 4))
        finally:
            # The database is free again and the stop comes at once: the ledger must still apply all that
            # is in the stream (not just the batch it was stuck on) before it stops.
            blocker.execute("ROLLBACK")
            blocker.close()
            stop.set()
            await asyncio.wait_for(task, WAIT_S)
        assert await redis.xlen(stream) == 4
        assert [(g["name"], g["pending"], g["lag"]) for g in await redis.xinfo_groups(stream)] == [(b"central", 0, 0)]
        from pithead.ledger.store import open_store

        store = open_store("sqlite:///ledger.sqlite3", data_dir=running.data_dir, migrate=False)
        try:
            assert store.share_count() == 2 and len(store.blocks(10)) == 2
        finally:
            store.close()

        # Redis not answering at start: one line, status 1, password left out.
        dead = f"redis://:sekret@127.0.0.1:{_free_port()}/0?stream=x"
        _config(config, node, share_bus=dead, pool_address=pool_address)

        def run() -> tuple[int, str]:
            out: list[str] = []
            with pytest.raises(SystemExit) as info:
                run_serve(str(config), print_fn=out.append, err_fn=out.append)
            assert isinstance(info.value.code, int)
            return info.value.code, "\n".join(out)

        code, text = await asyncio.to_thread(run)
        assert code == 1 and text.startswith("pithead serve: share bus redis://:***@127.0.0.1:"), text
        assert "cannot use Redis" in text and "sekret" not in text and "\n" not in text, text

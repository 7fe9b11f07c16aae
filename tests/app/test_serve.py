"""`pithead serve` against an "external" node (pithead's embedded regtest node, reached only through its
Bitcoin Core JSON-RPC and cookie, as a Bitcoin Core would be): blocks found through the pool reach the
node, the ledger credits them, the web serves them, and with `[ledger] payouts = "off"` nothing is ever
sent, even once the balances are payable; the same ledger on a second run with payouts "wallet" pays.
Also the command itself (banner, SIGTERM, exit 0) and its one-line errors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pithead.node.node import EmbeddedNode
from stratum.helpers import SOLO_ADDRESS
from stratum.rawclient import RawClient

pytestmark = [pytest.mark.timeout(120)]

WAIT_S = 30.0  # generous: two shared cores


async def _rpc(node: EmbeddedNode, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        data = r.json()
        assert data["error"] is None, data
        return data["result"]


def _config(path: Path, node: EmbeddedNode | None, *, pool_address: str | None, payouts: str = "off",
            mode: str = "pool", url: str | None = None, web_port: int = 0, pool_extra: str = "",
            extra: str = "") -> Path:
    nodes = (f'url = "{node.rpc_url}"\ncookie_file = "{node.cookie_path}"\n' if node is not None
             else f'url = "{url}"\nrpc_user = "u"\nrpc_password = "p"\n')
    address = f'pool_address = "{pool_address}"\n' if pool_address else ""
    path.write_text(
        f'data_dir = "{path.parent / "data"}"\n'
        "[pool]\n"
        f'bind = "127.0.0.1"\nport = 0\nmode = "{mode}"\nnetwork = "regtest"\n{address}'
        f"min_difficulty = 1e-8\nstart_difficulty = 1e-6\nrefresh_interval = 0.5\n{pool_extra}"
        f"[[pool.nodes]]\n{nodes}"
        "[ledger]\n"
        # Fast timers and a 1-sat threshold: with payouts on, every payable balance would go out at once.
        f'maturity_interval = 0.2\npayout_interval = 0.2\npayout_threshold_sat = 1\npayouts = "{payouts}"\n'
        f'[web]\nbind = "127.0.0.1"\nport = {web_port}\n{extra}'
    )
    return path


async def _until(client: httpx.AsyncClient, path: str, ok: Any, timeout_s: float = WAIT_S) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        r = await client.get(path)
        if r.status_code == 200:
            last = r.json()
            if ok(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never satisfied the condition; last answer: {str(last)[:2000]}")


async def _serving(config: Path, check: Any) -> tuple[Any, list[str]]:
    from pithead.app.demo import Running
    from pithead.app.production import ServeOptions, serve

    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    lines: list[str] = []
    task = asyncio.create_task(serve(ServeOptions(str(config), print_fn=lines.append), stop, ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
    running = ready.result()
    try:
        assert running.web_url is not None
        async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as client:
            await check(client, running)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    return running, lines


async def _mine(stratum_url: str, user: str, blocks: int) -> None:
    """Find `blocks` regtest blocks through the pool: on regtest every share at the pool's difficulty is
    a block candidate."""
    host, port = stratum_url.removeprefix("stratum+tcp://").rsplit(":", 1)
    client = await RawClient.connect(host, int(port))
    try:
        await client.handshake(user)
        job = await client.wait_notify()
        for i in range(blocks):
            r = await client.submit_one(user, job, version_bits=0x4000 * (i + 1))
            assert r["result"] is True, r
            if i + 1 < blocks:
                job = await client.wait_notify(clean=True)  # the new tip
    finally:
        await client.close()


async def test_serve_mines_credits_keeps_payouts_off_then_pays_when_asked(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress", "pool"))
        config = _config(tmp_path / "pithead.toml", node, pool_address=pool_address)
        start_height = int(await _rpc(node, "getblockcount"))
        user = SOLO_ADDRESS + ".rig1"

        async def first(client: httpx.AsyncClient, running: Any) -> None:
            assert {"ledger", "pool", "web"} <= set(running.parts)
            assert "node" not in running.parts and "miners" not in running.parts  # nothing embedded
            assert "farm" in running.skipped  # no [farm] scan configured
            assert running.node_url == node.rpc_url
            await _mine(running.stratum_url, user, 2)
            # The node accepted both: its chain grew by them and pays the pool address.
            assert int(await _rpc(node, "getblockcount")) == start_height + 2
            blocks = await _until(client, "/api/blocks", lambda bs: len(bs) >= 2)
            assert all(b["status"] == "pending" and b["address"] == SOLO_ADDRESS for b in blocks), blocks
            for b in blocks:
                coinbase = (await _rpc(node, "getblock", b["hash"], 2))["tx"][0]
                assert any(o["scriptPubKey"].get("address") == pool_address for o in coinbase["vout"])
            balances = await _until(client, "/api/balances", lambda bs: any(b["immature_sat"] > 0 for b in bs))
            assert SOLO_ADDRESS in {b["address"] for b in balances}
            pool = (await client.get("/api/pool")).json()
            assert pool["mode"] == "pool" and pool["accepted_shares"] >= 2
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "pithead_stratum_connections" in metrics.text
            # Mature the pool's blocks (100 confirmations) on the node itself.
            await _rpc(node, "generatetoaddress", 100, SOLO_ADDRESS)
            await _until(client, "/api/blocks", lambda bs: all(b["status"] == "confirmed" for b in bs))
            await _until(client, "/api/balances", lambda bs: any(b["payable_sat"] > 0 for b in bs))
            # Payouts run every 0.2 s when on; give them many chances, then look on both sides.
            await asyncio.sleep(2.0)
            assert (await client.get("/api/payouts")).json() == []
            sends = [t for t in await _rpc(node, "listtransactions", "*", 100) if t["category"] == "send"]
            assert sends == []
            balances = (await client.get("/api/balances")).json()
            assert all(b["paid_sat"] == 0 and b["reserved_sat"] == 0 for b in balances)

        running, lines = await _serving(config, first)
        assert any(line.strip().startswith("payouts") and "off" in line for line in lines), lines
        assert any(running.stratum_url in line for line in lines)
        assert not any(s.startswith("miner") for s in running.parts)

        # The same ledger with payouts switched on: the payable balances go out from the node's wallet.
        _config(config, node, pool_address=pool_address, payouts="wallet")

        async def second(client: httpx.AsyncClient, running: Any) -> None:
            payouts = await _until(client, "/api/payouts", lambda ps: len(ps) >= 1)
            assert any(item["address"] == SOLO_ADDRESS for p in payouts for item in p["items"]), payouts
            sends = [t for t in await _rpc(node, "listtransactions", "*", 100) if t["category"] == "send"]
            assert sends, "a payout batch was recorded but the node's wallet sent nothing"

        _, lines = await _serving(config, second)
        assert any(line.strip().startswith("payouts") and "ON" in line for line in lines), lines


async def test_serve_runs_the_pool_in_its_own_process_beside_the_web(tmp_path: Path) -> None:
    """The dashboard shares `serve`'s process; the pool must not share its event loop or its GIL (finding:
    32 API readers on the pool's own loop made share replies 105x slower). With `[pool] workers = 1` the
    pool still runs in a worker process of its own, and mines."""
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress"))
        config = _config(tmp_path / "pithead.toml", node, pool_address=pool_address)

        async def check(client: httpx.AsyncClient, running: Any) -> None:
            pool = running.pool
            assert type(pool).__name__ == "WorkerPool" and len(pool.workers) == 1
            (worker,) = pool.workers
            assert worker.proc is not None and worker.proc.pid != os.getpid()
            await _mine(running.stratum_url, SOLO_ADDRESS + ".w", 1)
            await _until(client, "/api/blocks", lambda bs: len(bs) >= 1)

        await _serving(config, check)


async def test_serve_with_worker_processes_credits_blocks(tmp_path: Path) -> None:
    """`[pool] workers = 2`: the multi-process pool, its supervisor feeding the ledger, as in `up`."""
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress"))
        config = _config(tmp_path / "pithead.toml", node, pool_address=pool_address, pool_extra="workers = 2\n")

        async def check(client: httpx.AsyncClient, running: Any) -> None:
            pool = running.pool
            assert type(pool).__name__ == "WorkerPool" and len(pool.workers) == 2
            await _mine(running.stratum_url, SOLO_ADDRESS + ".w", 1)
            blocks = await _until(client, "/api/blocks", lambda bs: len(bs) >= 1)
            assert blocks[0]["status"] == "pending" and blocks[0]["address"] == SOLO_ADDRESS
            assert (await _rpc(node, "getbestblockhash")) == blocks[0]["hash"]
            await _mine(running.stratum_url, SOLO_ADDRESS + ".w", 3)  # and stop at once

        running, lines = await _serving(config, check)
        assert any("2 worker processes" in line for line in lines), lines
        # Stopped pool first, then the ledger once it had drained the bus: no share lost.
        from pithead.ledger.store import open_store

        store = open_store("sqlite:///ledger.sqlite3", data_dir=running.data_dir, migrate=False)
        try:
            assert sum(w.accepted for w in store.workers()) == 4
        finally:
            store.close()


async def test_serve_command_banner_and_sigterm(tmp_path: Path) -> None:
    """The command as an operator runs it, with a [farm] to manage (an address where no device answers)."""
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress"))
        config = _config(tmp_path / "pithead.toml", node, pool_address=pool_address,
                         extra='[farm]\nscan = ["127.0.0.250/32"]\n')
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.cli", "serve", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        out: list[str] = []
        try:
            async with asyncio.timeout(WAIT_S):
                while not out or not out[-1].strip().startswith("data"):
                    line = (await proc.stdout.readline()).decode()
                    assert line, f"pithead serve exited early: {''.join(out)}"
                    out.append(line)
            text = "".join(out)
            assert "pithead is serving (pool mode, regtest)" in text
            assert "stratum+tcp://127.0.0.1:" in text and node.rpc_url in text and pool_address in text
            web = next(line.split()[1] for line in out if line.strip().startswith("dashboard")).rstrip("/")
            assert f"farm         {web}/farm/" in text
            async with httpx.AsyncClient(timeout=10) as c:
                assert (await c.get(web + "/healthz")).status_code == 200
                assert (await c.get(web + "/farm/")).status_code == 200
                net = (await c.get(web + "/api/network")).json()
                assert net["available"] and net["height"] == int(await _rpc(node, "getblockcount"))
            proc.send_signal(signal.SIGTERM)
            rest = (await asyncio.wait_for(proc.stdout.read(), WAIT_S)).decode()
            assert await proc.wait() == 0, rest
            assert "pithead stopped." in rest and "Traceback" not in rest
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(config: Path) -> tuple[int, str]:
    from pithead.app.production import run_serve

    lines: list[str] = []
    with pytest.raises(SystemExit) as info:
        run_serve(str(config), print_fn=lines.append, err_fn=lines.append)
    assert isinstance(info.value.code, int)
    return info.value.code, "\n".join(lines)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"pool_address": None}, "pool.pool_address: pool mode needs the address"),
    ({"pool_address": "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"}, "is not a regtest address"),
    ({"pool_address": None, "mode": "solo", "payouts": "wallet"}, 'payouts must be "off"'),
    ({"pool_address": SOLO_ADDRESS, "payouts": "always"}, "ledger.payouts: must be 'off' or 'wallet'"),
])
def test_config_errors_are_one_line_and_exit_2(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    # Refused before any node is asked: this URL has nobody behind it.
    config = _config(tmp_path / "c.toml", None, url=f"http://127.0.0.1:{_free_port()}", **kwargs)
    code, text = _run(config)
    assert code == 2 and words in text and "Traceback" not in text, text
    assert text.startswith("pithead serve: ") and "\n" not in text


def test_no_node_answering_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path / "c.toml", None, url=f"http://127.0.0.1:{_free_port()}", pool_address=SOLO_ADDRESS)
    code, text = _run(config)
    assert code == 1 and "is not answering" in text and "\n" not in text, text


def test_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path / "c.toml", None, url="http://127.0.0.1:1", pool_address=SOLO_ADDRESS,
                         web_port=port)
        code, text = _run(config)
    assert code == 1 and f"web: cannot listen on 127.0.0.1:{port}" in text and "\n" not in text, text


def test_node_on_another_chain_is_refused(tmp_path: Path) -> None:
    async def main() -> tuple[int, str]:
        async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:  # regtest
            config = _config(tmp_path / "c.toml", node, pool_address=None, mode="solo")
            config.write_text(config.read_text().replace('network = "regtest"', 'network = "signet"'))
            return await asyncio.to_thread(_run, config)

    code, text = asyncio.run(main())
    assert code == 2 and "is on regtest but pool.network is 'signet'" in text and "\n" not in text, text


def test_no_pool_flag_reaches_serve_from_the_command_line(tmp_path: Path) -> None:
    """`pithead serve --no-pool` without a Redis share bus: the flag arrived (its own one-line refusal)."""
    import subprocess
    import sys

    conf = tmp_path / "p.toml"
    conf.write_text('[pool]\nmode = "pool"\npool_address = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"\n')
    r = subprocess.run([sys.executable, "-m", "pithead.cli", "serve", "--no-pool", "--config", str(conf),
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--no-pool runs only the ledger" in r.stderr and "Traceback" not in r.stderr


def test_wallet_payouts_with_a_pool_address_the_wallet_does_not_hold_refuse_to_start(tmp_path: Path) -> None:
    """`payouts = "wallet"` pays from the node's wallet; a pool address that wallet does not hold would send
    the blocks' rewards elsewhere while payouts drain the wallet: refused with one line, not a warning."""
    async def main() -> tuple[int, str]:
        async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
            config = _config(tmp_path / "c.toml", node, pool_address=SOLO_ADDRESS, payouts="wallet")
            return await asyncio.to_thread(_run, config)

    code, text = asyncio.run(main())
    assert code == 1 and "\n" not in text and "Traceback" not in text, text
    assert f"the pool address {SOLO_ADDRESS} is not in the wallet of node" in text, text

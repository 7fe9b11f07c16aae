"""`pithead up`, shortened: the whole operation on a demo chain finds blocks, the ledger credits them,
the API serves them, and a second run resumes the same chain and ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Shortened run: a fast demo chain (blocks every second or so) and ephemeral ports everywhere.
# The miners ask for the pool's minimum difficulty (0.001, about 4 million hashes a share), so a loaded CI
# machine still sees shares within seconds.
FAST = {"node_port": 0, "pool_port": 0, "web_port": 0, "proxy_port": 0, "block_interval": 1.0, "miners": 2,
        "sim_devices": 3, "miner_difficulty": 0.001}
# Generous waits: CI runs this next to the rest of the suite on two cores.
WAIT_S = 90.0


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
        await asyncio.sleep(0.5)
    raise AssertionError(f"{path} never satisfied the condition; last answer: {str(last)[:2000]}")


def _ledger_accepted(data_dir: Path) -> int:
    from pithead.ledger.store import open_store

    store = open_store("sqlite:///ledger.sqlite3", data_dir=data_dir, migrate=False)
    try:
        return sum(w.accepted for w in store.workers())
    finally:
        store.close()


async def _dashboard_in_browser(url: str, fleet: bool) -> None:
    """The live operation's dashboard in headless Chromium: rendered, charts with data, console clean."""
    from web.cdp import ARTIFACTS, Browser, find_chromium, require_chromium

    if find_chromium() is None:
        require_chromium()  # fails in CI, skips the whole test elsewhere
    async with Browser(require_chromium()) as b:
        await b.navigate(url + "/")
        await b.wait_for("document.body?.dataset.ready === '1'")
        await b.wait_for("document.getElementById('live')?.className === 'live on'")
        pool_points = await b.wait_for(
            "(window.__pithead.charts.pool?.data[1] || []).filter(v => v > 0).length"
        )
        assert pool_points >= 1
        assert await b.evaluate("Object.keys(window.__pithead.charts).sort().join()") == "pool,workers"
        height = await b.evaluate("document.getElementById('net-height').innerText")
        assert height.isdigit() and int(height) > 0
        shown = await b.evaluate("document.getElementById('net-diff').innerText")
        assert float(shown) > 0  # e.g. "4.657e-10": a number, however small
        blocks = await b.evaluate("document.querySelector('#blocks tbody').innerText")
        assert "pending" in blocks and "/100 · ~" in blocks  # how far from maturity, with an ETA
        # How to connect, the odds of a block at the node's difficulty, the miners' user agents and uptime.
        assert (await b.evaluate("document.getElementById('conn-url').innerText")).startswith("stratum+tcp://")
        eta = await b.wait_for("document.getElementById('odds-pool-eta').innerText.startsWith('~') && "
                               "document.getElementById('odds-pool-eta').innerText")
        assert eta.startswith("~"), eta
        conns = await b.evaluate("document.querySelector('#connections tbody').innerText")
        assert "pithead-up-miner" in conns, conns
        await b.screenshot(ARTIFACTS / "up-dashboard.png")
        assert b.console_errors == [], b.console_errors
        # The farm's page, mounted in the same app, loads without errors too.
        await b.navigate(url + "/farm/")
        await b.wait_for("document.title === 'pithead farm' && document.readyState === 'complete'")
        if fleet:  # its script has fetched the devices, drawn the racks and filled the device table
            await b.wait_for("document.body.innerText.includes('rack-1')")
            await b.wait_for("document.querySelectorAll('#devices tbody tr[data-id]').length >= 1")
        await b.screenshot(ARTIFACTS / "up-farm.png")
        assert b.console_errors == [], b.console_errors
        if fleet:  # the proxy's page, linked from the dashboard: its pool, what the pool credited, the racks
            await b.navigate(url + "/")
            await b.wait_for("document.getElementById('proxy-nav')?.hidden === false")
            await b.navigate(url + "/proxy/")
            await b.wait_for("document.body?.dataset.ready === '1'")
            cell = "document.querySelector('#upstreams tr[data-upstream=\"demo pool\"] td.accepted')?.innerText"
            await b.wait_for(f"Number({cell}) > 0")
            await b.wait_for("document.querySelector('#racks tbody').innerText.includes('rack-')")
            await b.screenshot(ARTIFACTS / "up-proxy.png")
            assert b.console_errors == [], b.console_errors


async def _run(data_dir: Path, check: Any) -> Any:
    from pithead.app.demo import Running, UpOptions, serve_up

    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    lines: list[str] = []
    opts = UpOptions(data_dir=str(data_dir), print_fn=lines.append, **FAST)
    task = asyncio.create_task(serve_up(opts, stop, ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
    running = ready.result()
    try:
        assert running.web_url is not None
        async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as client:
            result = await check(client, running, lines)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    return running, result


async def test_up_finds_blocks_credits_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "pithead-data"

    async def first(client: httpx.AsyncClient, running: Any, lines: list[str]) -> dict[str, Any]:
        assert {"node", "ledger", "pool", "miners", "web"} <= set(running.parts), running.skipped
        assert any(line.strip().startswith("dashboard") and running.web_url in line for line in lines)
        assert any("stratum+tcp://" in line for line in lines)
        blocks = await _until(
            client, "/api/blocks", lambda bs: sum(b["status"] in ("pending", "confirmed") for b in bs) >= 2
        )
        # A candidate can lose a race to the next block (the node answers "inconclusive"): recorded as
        # "stale", its own status (not "rejected", which is an invalid block), never credited.
        assert all(b["status"] in ("pending", "confirmed", "stale") for b in blocks), blocks
        accepted = [b for b in blocks if b["status"] != "stale"]
        miner_addrs = set(running.miner_addresses)
        finders = set(miner_addrs)  # the CPU miners, and the proxy the simulated fleet mines through (its user)
        if running.proxy is not None:
            finders |= {spec.user.split(".")[0] for spec in running.proxy.specs.values()}
        assert {b["address"] for b in blocks} <= finders
        balances = await _until(
            client, "/api/balances", lambda bs: sum(b["immature_sat"] + b["mature_sat"] for b in bs) > 0
        )
        # PPLNS: the miners' credits plus the pool fee add up to the rewards of the credited blocks.
        assert any(b["address"] in miner_addrs for b in balances)
        # Both miners are connected (a worker process reports its count within a fraction of a second of a
        # change; one miner may have found both blocks before the other's connection was reported).
        pool = await _until(client, "/api/pool", lambda p: p["connections"] >= 2)
        assert pool["scheme"] == "pplns" and pool["mode"] == "pool"
        assert pool["accepted_shares"] > 0
        assert pool["blocks_found"] >= 2
        assert pool["blocks_found"] >= len(accepted)
        net = (await client.get("/api/network")).json()
        assert net["available"] and net["chain"] and net["height"] >= accepted[0]["height"]
        assert net["template_age_s"] is not None
        addr = accepted[0]["address"]  # a miner that found a block has shares on record
        page = (await client.get(f"/api/addresses/{addr}")).json()
        assert page["known"] and page["workers"] and page["accepted_shares"] > 0
        metrics = (await client.get("/metrics")).text
        assert 'pithead_shares_total{reason="",result="accepted"}' in metrics
        assert "pithead_node_rpc_latency_seconds_bucket" in metrics
        assert "pithead_stratum_connections" in metrics
        dash = await client.get("/")
        assert dash.status_code == 200
        if "farm" in running.parts:  # the fleet manager's page and API are mounted in the same app
            assert (await client.get("/farm/")).status_code == 200
            assert (await client.get("/farm/api/devices")).status_code == 200
            assert (await client.get("/healthz")).json()["farm"] is True
        if "simulated fleet" in running.parts:  # the farm finds and polls the simulated devices
            devices = await _until(client, "/farm/api/devices", lambda ds: len(ds) == FAST["sim_devices"])
            assert all(d["host"].startswith("127.") and d["model"] for d in devices)
            # ... configured to mine to the proxy, part of them really do: their shares reach the pool through it
            assert "proxy" in running.parts and running.proxy is not None
            assert any(line.strip().startswith("proxy") and running.proxy.stratum_url in line for line in lines)
            assert all(d["worker"].startswith("sim.") for d in devices)
            status = await _until(client, "/proxy/api/status",
                                  lambda s: s["upstreams"][0]["shares"]["accepted"] > 0)
            assert status["active"] == "demo pool" and status["machines"]["ready"] >= 1
            proxy_worker = await _until(client, "/api/workers", lambda ws: any(
                w["worker"].split(".")[-1] == "proxy" and w["accepted"] > 0 for w in ws))
            assert proxy_worker
            racks = await _until(client, "/proxy/api/racks", lambda r: any(
                k["rack"].startswith("rack-") and k["accepted"] > 0 for k in r["racks"]))
            assert racks["labels"]["devices"] == FAST["sim_devices"]
            assert "pithead_proxy_rack_shares_total" in (await client.get("/metrics")).text
            # the farm's "no shares" source is the proxy in this process, read; its "proxy" pool preset points a
            # device at the proxy with the device's own worker name (audited)
            shares = await _until(client, "/farm/api/shares", lambda sh: sh["problem"] is None)
            assert shares["configured"] and shares["source"] == "the proxy in this process"
            dev = devices[0]
            moved = (await client.post(f"/farm/api/devices/{dev['id']}/pools",
                                       json={"actor": "test", "preset": "proxy"})).json()
            assert moved["ok"], moved
            audit = (await client.get("/farm/api/audit", params={"device_id": dev["id"]})).json()
            assert audit[0]["params"]["preset"] == "proxy"
            assert audit[0]["params"]["pools"] == [{"url": running.proxy.stratum_url, "user": dev["worker"]}]
        await _dashboard_in_browser(running.web_url, "simulated fleet" in running.parts)
        final = (await client.get("/api/pool")).json()
        return {"height": net["height"], "blocks": {b["hash"] for b in blocks}, "miners": running.miner_addresses,
                "accepted": final["accepted_shares"]}

    run1, before = await _run(data, first)
    # Stopping loses no share: the ledger holds every share the pool accepted in the first run.
    recorded = _ledger_accepted(data)
    assert recorded == run1.pool.stats.pool.accepted > 0

    async def second(client: httpx.AsyncClient, running: Any, lines: list[str]) -> dict[str, Any]:
        assert running.miner_addresses == before["miners"]  # same payout addresses on resume
        net = await _until(client, "/api/network", lambda n: n["available"] and n["height"] is not None)
        assert net["height"] >= before["height"]  # the same chain, not a fresh one
        blocks = (await client.get("/api/blocks?limit=1000")).json()
        assert before["blocks"] <= {b["hash"] for b in blocks}  # the same ledger
        # Every new share is recorded from the first one on (none mistaken for one already applied).
        pool = running.pool
        await _until(
            client, "/api/workers",
            lambda ws: pool.stats.pool.accepted >= 3 and sum(w["accepted"] for w in ws) - recorded == pool.stats.pool.accepted,
            timeout_s=WAIT_S,
        )
        return {}

    await _run(data, second)


CONFIG = """
[node]
rpc_port = 0
demo_block_interval = 1.0

[pool]
port = 0

[web]
port = 0

[proxy]
port = 0

[farm]
sim_devices = 2  # a small fleet (0 means "up's default", 12)
"""


async def test_cli_up_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """`pithead up` as a user runs it: prints the URLs, and SIGINT (Ctrl-C) stops every part cleanly."""
    cfg = tmp_path / "pithead.toml"
    cfg.write_text(CONFIG)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "up", "--data-dir", str(tmp_path / "data"), "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    out: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any(line.strip().startswith("data") for line in out):
                line = (await proc.stdout.readline()).decode()
                assert line, f"pithead up exited early: {out}"
                out.append(line)
        dashboard = next(line.split()[1] for line in out if line.strip().startswith("dashboard"))
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(dashboard + "api/network")).json()["available"] is True
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
        assert "pithead stopped." in rest.decode()
        assert "Traceback" not in rest.decode()
        assert rest.decode().count("stopping (Ctrl-C again") == 1 and "stopping now" not in rest.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_taken_port_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    from pithead.app.demo import StartError, UpOptions, serve_up

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        opts = UpOptions(data_dir=str(tmp_path / "d"), **{**FAST, "web_port": port}, print_fn=lambda _: None)
        with pytest.raises(StartError, match=f"web: cannot listen on 127.0.0.1:{port}"):
            await serve_up(opts, asyncio.Event())
    assert not (tmp_path / "d" / "node").exists()  # nothing was started


async def test_a_bad_farm_token_setting_is_a_clear_error(tmp_path: Path) -> None:
    """`[farm] api_token` reaches `pithead up`; a token too short to be safe stops it with a clear error."""
    from pithead.app.demo import StartError, UpOptions, serve_up

    conf = tmp_path / "pithead.toml"
    conf.write_text('[farm]\napi_token = "short"\n')
    opts = UpOptions(data_dir=str(tmp_path / "d"), config_path=str(conf), **FAST, print_fn=lambda _: None)
    with pytest.raises(StartError, match=r"farm: .*token"):
        await serve_up(opts, asyncio.Event())


async def test_up_with_a_multi_process_pool_records_every_share(tmp_path: Path) -> None:
    """`[pool] workers = 2`: the miners are served by two worker processes, the supervisor feeds the
    ledger; blocks are found and credited, the live view lists the workers' sessions, and stopping loses no
    share (the workers' last events reach the ledger before it stops)."""
    from pithead.app.demo import Running, UpOptions, serve_up

    conf = tmp_path / "pithead.toml"
    conf.write_text("[pool]\nworkers = 2\n")
    data = tmp_path / "d"
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    opts = UpOptions(data_dir=str(data), config_path=str(conf), print_fn=lambda _: None,
                     **{**FAST, "sim_devices": 0})
    task = asyncio.create_task(serve_up(opts, stop, ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    running = ready.result()
    pool = running.pool
    try:
        assert type(pool).__name__ == "WorkerPool" and len(pool.workers) == 2
        assert running.web_url is not None
        async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as client:
            await _until(client, "/api/blocks", lambda bs: sum(b["status"] in ("pending", "confirmed") for b in bs) >= 1)
            await _until(client, "/api/balances", lambda bs: sum(b["immature_sat"] + b["mature_sat"] for b in bs) > 0)
            live = await _until(client, "/api/pool", lambda p: p["connections"] >= 2 and p["accepted_shares"] > 0)
            assert live["mode"] == "pool"
            assert pool.metrics.connections >= 2 and pool.stats.pool.accepted > 0
            assert len(pool.live_sessions()[1]) >= 2  # the miners' sessions, listed by their workers
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert _ledger_accepted(data) == pool.stats.pool.accepted > 0

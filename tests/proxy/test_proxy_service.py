"""The proxy as an operator runs it: `pithead.app.proxy.serve` from a config, TLS on both sides, the HTTP
API and the `pithead proxy status|switch|drain|resume` commands, Prometheus, and keepalive jobs.

- TLS: the machines connect with stratum+ssl (the proxy's certificate from `[proxy] tls_cert_file`, a
  throwaway self-signed one made by `cryptography`), and the proxy mines to a pithead pool that serves
  stratum+ssl itself (`[pool] tls_cert_file`), trusting it through `tls_ca_file`;
- the API: status names the active pool and each upstream's figures; switch pins a pool, drain moves the
  machines off one, resume puts it back; the commands print the same; /metrics has the proxy's series;
- keepalive: a pool that sends no new job for `keepalive_interval` has its job re-sent to the machines with
  a later ntime under a new id, and a share on it is forwarded as a share on the pool's job.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pithead.app.lifecycle import Running
from pithead.app.proxy import serve
from pithead.cli.main import _mount, app
from pithead.config import PoolConfig, ProxyConfig, UpstreamPool
from pithead.stratum.client.connection import tls_context
from pithead.template.sources.static import StaticTemplateSource
from stratum.helpers import regtest_template
from stratum.rawclient import RawClient
from stratum.tlscert import write_self_signed

from .harness import PROXY_USER, QUICK, WAIT_S, FakePool, Upstream, start_proxy, stop_all, wait_for

pytestmark = pytest.mark.timeout(120)


def hard_template_pool(cfg: PoolConfig, name: str) -> Upstream:
    return Upstream(name, cfg, lambda: StaticTemplateSource(regtest_template(bits=0x1D00FFFF,
                                                                             curtime=int(time.time()))))


async def run_proxy(cfg: ProxyConfig) -> tuple[asyncio.Task[Running], Running, asyncio.Event]:
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(cfg, stop=stop, on_ready=ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    return task, ready.result(), stop


async def test_stratum_ssl_on_both_sides(tmp_path: Path) -> None:
    pool_cert, pool_key = write_self_signed(tmp_path / "pool")
    pool = hard_template_pool(PoolConfig(port=0, mode="solo", start_difficulty=1e-6, min_difficulty=1e-9,
                                         tls_cert_file=str(pool_cert), tls_key_file=str(pool_key)), "tls-pool")
    await pool.start()
    cert, key = write_self_signed(tmp_path / "proxy")
    cfg = ProxyConfig(port=0, api_port=0, tls_cert_file=str(cert), tls_key_file=str(key), start_difficulty=1e-6,
                      min_difficulty=1e-9, upstreams=(UpstreamPool(url=f"stratum+ssl://127.0.0.1:{pool.port}",
                                                                   user=PROXY_USER, name="tls-pool",
                                                                   tls_ca_file=str(pool_cert)),))
    task, running, stop = await run_proxy(cfg)
    try:
        proxy = running.proxy
        assert proxy is not None and proxy.stratum_url.startswith("stratum+ssl://")
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=tls_context(str(cert)))
        m = RawClient(r, w)
        await m.handshake("rack7.tls")
        await wait_for(lambda: m.job is not None, "a job over TLS")
        assert all(c.fd == -1 for c in proxy.server.connections)
        reply = await m.submit_one("rack7.tls", m.job)  # type: ignore[arg-type]
        assert reply["result"] is True, reply
        await wait_for(lambda: len(pool.sink.accepted) == 1, "the share over TLS to the pool")
        with pytest.raises(ssl.SSLError):  # a machine that does not trust the proxy's certificate
            await asyncio.open_connection("127.0.0.1", proxy.port, ssl=ssl.create_default_context())
        await m.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        await stop_all(pool)


async def test_the_api_and_the_operators_commands(tmp_path: Path) -> None:
    ups = [hard_template_pool(PoolConfig(port=0, mode="solo", start_difficulty=1e-6, min_difficulty=1e-9), name)
           for name in ("main", "spare")]
    for up in ups:
        await up.start()
    cfg = ProxyConfig(port=0, api_port=0, start_difficulty=1e-6, min_difficulty=1e-9, failback_after=600.0,
                      metrics_per_machine=True, upstreams=tuple(UpstreamPool(url=f"stratum+tcp://127.0.0.1:{up.port}", user=PROXY_USER,
                                                   name=up.name, priority=i) for i, up in enumerate(ups)))
    task, running, stop = await run_proxy(cfg)
    proxy = running.proxy
    assert proxy is not None and running.web_url is not None
    api = running.web_url
    m = await RawClient.connect("127.0.0.1", proxy.port)
    _mount()
    runner = CliRunner()

    def cli(*args: str) -> str:
        r = runner.invoke(app, ["proxy", *args, "--api", api], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        return r.output

    try:
        await m.handshake("rack8.s19")
        await wait_for(lambda: m.job is not None, "a job")
        reply = await m.submit_one("rack8.s19", m.job)  # type: ignore[arg-type]
        assert reply["result"] is True
        await wait_for(lambda: proxy.figures["main"].counts.accepted == 1, "the share credited")
        async with httpx.AsyncClient(base_url=api) as c:
            st = (await c.get("/proxy/api/status")).json()
            assert st["active"] == "main" and st["machines"]["ready"] == 1
            main = next(u for u in st["upstreams"] if u["name"] == "main")
            assert main["state"] == "active" and main["shares"]["accepted"] == 1
            assert main["latency"]["p50_s"] is not None
            five = next(h for h in main["hashrate"] if h["window"] == "5m")
            assert five["shares"] == 1 and five["low_hps"] < five["hashrate_hps"] < five["high_hps"]
            machines = (await c.get("/proxy/api/machines")).json()
            (mach,) = machines
            assert mach["worker"] == "rack8.s19" and mach["upstream"] == "main"
            assert mach["pool"]["accepted"] == 1 and mach["local"]["accepted"] == 1
            assert mach["pool"]["hashrate"][0]["high_hps"] > 0
            metrics = (await c.get("/metrics")).text
            assert 'pithead_proxy_upstream_shares_total{result="accepted",upstream="main"} 1.0' in metrics
            assert 'pithead_proxy_active_upstream{upstream="main"} 1.0' in metrics
            assert "pithead_proxy_machine_hashrate_hashes_per_second" in metrics  # metrics_per_machine
            assert 'pithead_proxy_rack_machines{rack="",site="",state="known"} 1.0' in metrics  # no farm
            assert (await c.post("/proxy/api/switch", json={"upstream": "nowhere"})).status_code == 404

        out = await asyncio.to_thread(cli, "status", "--machines")
        assert "mining on main" in out and "rack8.s19" in out and "accepted 1" in out
        out = await asyncio.to_thread(cli, "switch", "spare")
        assert "mining on spare, pinned to spare" in out
        await wait_for(lambda: proxy.book.lookup(m.job[0]) is not None  # type: ignore[index]
                       and proxy.book.lookup(m.job[0]).route.upstream == "spare", "the machine on spare")  # type: ignore[index,union-attr]
        out = await asyncio.to_thread(cli, "switch", "auto")
        assert "mining on spare:" in out  # unpinned; main must first stay healthy for the hysteresis
        out = await asyncio.to_thread(cli, "drain", "spare")
        assert "mining on main" in out and "draining spare" in out
        await wait_for(lambda: proxy.book.lookup(m.job[0]).route.upstream == "main", "back on main")  # type: ignore[index,union-attr]
        out = await asyncio.to_thread(cli, "resume", "spare")
        assert "draining" not in out
        assert proxy.failover.switches == 2
        r = await asyncio.to_thread(runner.invoke, app, ["proxy", "status", "--api", "http://127.0.0.1:9"])
        assert r.exit_code == 1 and "no proxy API" in r.output
    finally:
        await m.close()
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        await stop_all(*ups)


async def test_a_token_guards_the_actions(tmp_path: Path) -> None:
    pool = FakePool("good")
    await pool.start()
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-for-the-proxy-api\n")
    cfg = ProxyConfig(port=0, api_port=0, api_token_file=str(token_file),
                      upstreams=(UpstreamPool(url=f"127.0.0.1:{pool.port}", user=PROXY_USER, name="p"),))
    task, running, stop = await run_proxy(cfg)
    try:
        async with httpx.AsyncClient(base_url=running.web_url or "") as c:
            r = await c.post("/proxy/api/drain", json={"upstream": "p"})
            assert r.status_code == 401 and "token" in r.json()["detail"]
            r = await c.post("/proxy/api/drain", json={"upstream": "p"},
                             headers={"Authorization": "Bearer s3cret-token-for-the-proxy-api"})
            assert r.status_code == 200 and r.json()["draining"] == ["p"]
            assert (await c.get("/proxy/api/status")).status_code == 200  # reading needs no token
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        await stop_all(pool)


async def test_a_quiet_pools_job_is_kept_alive() -> None:
    pool = FakePool("good")
    await pool.start()
    proxy = await start_proxy([pool.spec("quiet", 0)], replace(QUICK, keepalive_interval=1.0))
    try:
        m = await RawClient.connect("127.0.0.1", proxy.port)
        await m.handshake("rack9.d9")
        first = await m.wait_notify(wait_s=WAIT_S)
        again = await m.wait_notify(clean=False, wait_s=WAIT_S)  # the pool said nothing new
        assert again[0] != first[0] and int(again[7], 16) > int(first[7], 16)
        assert again[2:7] == first[2:7]  # the same coinbase, branch, version and nbits
        reply = await m.submit_one("rack9.d9", again)
        assert reply["result"] is True, reply
        await wait_for(lambda: len(pool.submits) == 1, "the share on the keepalive job upstream")
        assert pool.submits[0][1] == "f00d" and pool.submits[0][3] == again[7]  # the pool's job id, our ntime
        await wait_for(lambda: proxy.figures["quiet"].counts.accepted == 1, "the pool's answer")
        await m.close()
    finally:
        await stop_all(proxy, pool)

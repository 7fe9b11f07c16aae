"""`pithead bench webload`: does a busy dashboard slow the pool's share replies?

The finding it measures: with the web API on the pool's own event loop, 32 connections reading the API
made honest miners' share replies 105x slower. This bench runs the pool and the web app in this process,
as `pithead serve` does, over a seeded SQLite ledger, in two layouts — the pool on the web's event loop
(`in-process`), and the pool in its own worker process (`own process`, what `serve` and `up` do now) —
and in each, an honest miner (a child process) submits a share every SHARE_EVERY_S and times each reply,
first alone, then while READERS clients (another child process) read the API as fast as they can. It
prints the median and 99th percentile reply time of each phase. It asserts nothing.

    pithead bench webload [--readers 32] [--seconds 10] [--shares 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from pithead.bench.stratum import bench_template
from pithead.bench.web import _address, _seed
from pithead.config import PoolConfig
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.store import open_store
from pithead.stratum.server.build import build_server
from pithead.stratum.server.workers import WorkerPool
from pithead.template.sources.static import StaticTemplateSource
from pithead.web.app import create_app
from pithead.web.server import WebServer
from pithead.web.services import Services

SHARE_EVERY_S = 0.02
"""The honest miner's pace: 50 shares a second, a busy ASIC's worth at a modest share difficulty."""
SHARE_DIFFICULTY = 1e-12
"""So low that every submitted nonce is a valid share: the reply is the pool's whole share path."""
POOL_ADDRESS = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
API_PATHS = ("/api/pool", "/api/workers?limit=100", "/api/hashrate?range=1d", "/api/shares/recent?limit=50",
             "/metrics")


# --- the children ----------------------------------------------------------------------------------------


async def _miner(port: int, seconds: float) -> None:
    """Submit a share every SHARE_EVERY_S for `seconds`; print each reply time in ms, one per line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'{"id":1,"method":"mining.subscribe","params":["bench-honest"]}\n'
                 b'{"id":2,"method":"mining.authorize","params":["honest.rig","d=%g"]}\n' % SHARE_DIFFICULTY)
    job = ""
    ntime = ""
    while not job:
        line = await reader.readline()
        if b'"method":"mining.notify"' in line:
            params = orjson.loads(line)["params"]
            job, ntime = params[0], params[7]
    times: list[float] = []
    nonce = 0
    deadline = time.monotonic() + seconds
    rid = 10
    while time.monotonic() < deadline:
        rid += 1
        nonce += 1
        t0 = time.perf_counter()
        writer.write(b'{"id":%d,"method":"mining.submit","params":["honest.rig","%s","%08x","%s","%08x"]}\n'
                     % (rid, job.encode(), nonce, ntime.encode(), nonce))
        while True:
            line = await reader.readline()
            if not line:
                raise SystemExit("the pool closed the connection")
            if line.startswith(b'{"id":%d,' % rid):
                break
        times.append((time.perf_counter() - t0) * 1000.0)
        await asyncio.sleep(max(0.0, SHARE_EVERY_S - (time.perf_counter() - t0)))
    writer.close()
    print("\n".join(f"{t:.4f}" for t in times), flush=True)


async def _readers(web_port: int, readers: int, seconds: float) -> None:
    """`readers` clients reading the API in a loop for `seconds`; print how many requests they made."""
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}", timeout=30.0,
                                 limits=httpx.Limits(max_connections=readers)) as client:

        async def one(k: int) -> None:
            nonlocal done
            i = k
            while time.monotonic() < deadline:
                await client.get(API_PATHS[i % len(API_PATHS)])
                i += 1
                done += 1

        await asyncio.gather(*(one(k) for k in range(readers)))
    print(done, flush=True)


# --- the parent --------------------------------------------------------------------------------------------


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pithead.bench.webload", *args], stdout=subprocess.PIPE,
                            text=True)


async def _phase(pool_port: int, web_port: int, readers: int, seconds: float) -> tuple[list[float], int]:
    load = _child("--role", "readers", "--port", str(web_port), "--readers", str(readers),
                  "--seconds", str(seconds + 1.0)) if readers else None
    if load is not None:
        await asyncio.sleep(1.0)  # the readers are reading before the miner starts timing
    miner = _child("--role", "miner", "--port", str(pool_port), "--seconds", str(seconds))
    out, _ = await asyncio.to_thread(miner.communicate)
    requests = 0
    if load is not None:
        lout, _ = await asyncio.to_thread(load.communicate)
        requests = int(lout.strip() or 0)
    return [float(x) for x in out.split()], requests


def _fmt(ms: list[float]) -> str:
    if not ms:
        return "no replies"
    s = sorted(ms)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"median {statistics.median(s):7.2f} ms, p99 {p99:8.2f} ms ({len(s)} shares)"


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pithead-bench-webload-") as tmp:
        db = Path(tmp) / "ledger.sqlite3"
        _seed(db, 200, 50, args.shares, time.time())
        print(f"pithead bench webload: ledger of {args.shares} shares; {args.readers} API readers; "
              f"CPUs {os.cpu_count()}; {_address(0)[:10]}... workers")
        cfg = PoolConfig(mode="pool", pool_address=POOL_ADDRESS, port=0, min_difficulty=1e-12, user_rule="any",
                         workers=1)
        for layout in ("in-process", "own process"):
            store = open_store(f"sqlite:///{db}", migrate=False)
            source = StaticTemplateSource(bench_template(101))
            sink = MemoryBus("bench")
            pool = build_server(cfg, source, sink) if layout == "in-process" else WorkerPool(cfg, source, sink, 1)
            await source.start()
            _, pool_port = await pool.start("127.0.0.1", 0)
            web = WebServer(create_app(Services(store=store)), "127.0.0.1", 0)
            await web.start()
            try:
                alone, _ = await _phase(pool_port, web.port, 0, args.seconds)
                loaded, requests = await _phase(pool_port, web.port, args.readers, args.seconds)
                print(f"  pool {layout:11}: alone       {_fmt(alone)}")
                print(f"  pool {layout:11}: {args.readers} readers {_fmt(loaded)}; the API answered "
                      f"{requests / args.seconds:,.0f} requests/s")
            finally:
                await web.stop()
                await pool.stop()
                await source.stop()
                store.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench webload", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--readers", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--shares", type=int, default=200_000, help="shares in the seeded ledger")
    ap.add_argument("--role", choices=("bench", "miner", "readers"), default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "miner":
        asyncio.run(_miner(args.port, args.seconds))
    elif args.role == "readers":
        asyncio.run(_readers(args.port, args.readers, args.seconds))
    else:
        asyncio.run(_run(args))


if __name__ == "__main__":  # the children: `python -m pithead.bench.webload --role ...`
    main(sys.argv[1:])

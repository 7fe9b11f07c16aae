"""`pithead bench web`: how long the web API takes to answer over a ledger of a given size.

Seeds a temporary SQLite ledger through the real store (WORKERS workers on ADDRESSES addresses, SHARES
accepted shares spread over the last day, in the ledger's 10 s buckets), then times each endpoint the
dashboard calls, in process through the ASGI interface (no sockets, so the figure is the app's own
cost: queries, estimates, JSON). Prints the median and 90th percentile per endpoint. Never asserts.

    pithead bench web [--workers 200] [--addresses 50] [--shares 200000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from pithead.events import ShareEvent
from pithead.ledger.ledger import FINE_BUCKET_S
from pithead.ledger.store import open_store
from pithead.web.app import create_app
from pithead.web.services import Services

DAY_S = 86400
BATCH = 5000  # shares per store write, like the ledger's consumer batches


def _address(i: int) -> str:
    # A syntactically plausible bech32-shaped name; the API only checks the shape.
    return "bcrt1q" + f"{i:038d}"


def _seed(path: Path, workers: int, addresses: int, shares: int, now: float) -> None:
    store = open_store(f"sqlite:///{path}")
    try:
        batch: list[ShareEvent] = []
        step = DAY_S / max(1, shares)
        for k in range(shares):
            w = k % workers
            a = _address(w % addresses)
            t = now - DAY_S + k * step
            batch.append(ShareEvent(t, f"{a}.w{w}", a, 1.0, "j", 100, True, None, 1.0 + (k % 97)))
            if len(batch) >= BATCH:
                store.add_shares(batch, FINE_BUCKET_S)
                batch.clear()
        if batch:
            store.add_shares(batch, FINE_BUCKET_S)
    finally:
        store.close()


async def time_gets(client: httpx.AsyncClient, path: str, repeat: int) -> list[float]:
    """Milliseconds of `repeat` GETs of `path` (an answer other than 200 ends the bench, saying why)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = await client.get(path)
        out.append((time.perf_counter() - t0) * 1000.0)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}: {r.text[:200]}")
    return out


async def _run(args: argparse.Namespace) -> None:
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="pithead-bench-web-") as tmp:
        db = Path(tmp) / "ledger.sqlite3"
        t0 = time.perf_counter()
        _seed(db, args.workers, args.addresses, args.shares, now)
        print(f"seeded {args.shares} shares, {args.workers} workers, {args.addresses} addresses "
              f"in {time.perf_counter() - t0:.1f} s")
        store = open_store(f"sqlite:///{db}", migrate=False)
        app = create_app(Services(store=store))
        paths = [
            "/api/pool",
            f"/api/workers?limit={min(args.workers, 100)}",
            f"/api/addresses/{_address(0)}",
            "/api/hashrate?range=1h",
            "/api/hashrate?range=1d",
            "/api/shares/recent?limit=50",
            "/api/shares/best?limit=10",
            "/metrics",
        ]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            print(f"{'endpoint':60} {'median ms':>10} {'p90 ms':>10}")
            for p in paths:
                ms = sorted(await time_gets(client, p, args.repeat))
                p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
                print(f"{p:60} {statistics.median(ms):10.2f} {p90:10.2f}")
        store.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench web", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--addresses", type=int, default=50)
    ap.add_argument("--shares", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)
    if min(args.workers, args.addresses, args.shares, args.repeat) <= 0:
        ap.error("all counts must be positive")
    asyncio.run(_run(args))

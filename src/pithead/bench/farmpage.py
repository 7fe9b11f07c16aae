"""`pithead bench farmpage`: how long the farm page's endpoints take over a fleet of a given size.

Seeds a temporary farm store (SQLite, through the real `FarmStore`) with DEVICES devices in racks of 40,
a mix of models, pools and firmwares, one good reading each (a few percent unreachable, keeping their last
reading), then times what the page asks for, in process through the ASGI interface (no sockets: the
figure is the router's own cost, store reads, filtering, sorting and JSON): one page of the device table
(default order, sorted by a measured column, filtered, searched, a page deep in the fleet), the rack map,
the energy panel and one device page. Prints the median and 90th percentile per request. Never asserts.

    pithead bench farmpage [--devices 24000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from pithead.bench.web import time_gets
from pithead.farm.energy import PriceSchedule
from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    Identity,
    Labels,
    PollResult,
    PoolEntry,
    Reading,
)
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import make_router

RACK_SIZE = 40
MODELS = (("Antminer S19", 95.0, "2022-11"), ("Antminer S19 XP", 140.0, "2023-03"), ("Antminer S21", 200.0, "2024-05"))
POOLS = ("stratum+tcp://pool-a.example:3333", "stratum+tcp://pool-b.example:3333")
UNREACHABLE_EVERY = 37  # about 3 % of the fleet does not answer


def _seed(store: FarmStore, n: int, now: float) -> None:
    devices = []
    for k in range(n):
        model, _ths, fw = MODELS[k % len(MODELS)]
        host = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
        devices.append(Device(DeviceAddress(host, 4028, DriverKind.CGMINER), Identity("Antminer", model, fw),
                              Labels(f"site-{k // 12000}", f"rack-{k // RACK_SIZE}", str(k % RACK_SIZE + 1))))
    store.upsert_devices(devices)
    results = []
    for k, d in enumerate(devices):
        ths = MODELS[k % len(MODELS)][1] * (0.9 + (k % 20) / 100)
        r = Reading(d.id, now - 30, ths, ths, tuple(Board(i, ths / 3, 110, 110, 60.0, 70.0 + k % 15) for i in range(3)),
                    tuple(Fan(i, 4000 + k % 500) for i in range(4)), 3000.0 + k % 400,
                    (PoolEntry(0, POOLS[k % 2], f"acct.w{k}", True, True, 1000, 1),), uptime_s=86_400.0)
        results.append(PollResult(d.id, now - 30, DeviceState.OK, r))
    store.write_results(results)
    store.write_results([PollResult(d.id, now - 5, DeviceState.UNREACHABLE, error="connection refused")
                         for k, d in enumerate(devices) if k % UNREACHABLE_EVERY == 0])


async def _run(args: argparse.Namespace) -> None:
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="pithead-bench-farmpage-") as tmp:
        store = FarmStore(Path(tmp) / "farm.sqlite3")
        try:
            t0 = time.perf_counter()
            _seed(store, args.devices, now)
            print(f"seeded {args.devices} devices with a reading each in {time.perf_counter() - t0:.1f} s")
            app = FastAPI()
            app.include_router(make_router(AsyncFarmStore(store), None, PriceSchedule.flat(50.0), lambda: 0.05,
                                           stale_after_s=180.0))
            one = quote(store.devices()[args.devices // 2].id, safe="")
            paths = [
                "/farm/api/table?limit=100&facets=true",
                "/farm/api/table?limit=100",
                "/farm/api/table?limit=100&sort=hashrate&desc=true",
                "/farm/api/table?limit=100&model=Antminer%20S21&pool=" + quote(POOLS[1], safe=""),
                "/farm/api/table?limit=100&q=rack-12",
                f"/farm/api/table?limit=100&offset={max(0, args.devices - 100)}&sort=temp",
                "/farm/api/racks",
                "/farm/api/energy",
                f"/farm/api/devices/{one}/detail",
            ]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await client.get("/farm/api/racks")  # the store's status cache is built once
                print(f"{'request':70} {'median ms':>10} {'p90 ms':>10}")
                for p in paths:
                    ms = sorted(await time_gets(client, p, args.repeat))
                    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
                    print(f"{p[:70]:70} {statistics.median(ms):10.1f} {p90:10.1f}")
        finally:
            store.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench farmpage",
                                 description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--devices", type=int, default=24_000)
    ap.add_argument("--repeat", type=int, default=20)
    asyncio.run(_run(ap.parse_args(argv)))

"""`pithead bench farm`: how fast the fleet manager polls a simulated fleet, and what it costs in CPU.

Defaults follow the issue: 24,000 simulated devices, polled every 60 s, in one collector process. The
simulated fleet runs in a child process (so its CPU is not counted against the poller); every device has
its own loopback address (127.16.0.0/12) and the standard ports, exactly as a farm LAN looks to us.

Figures printed:
- burst sweep: every device polled once as fast as the concurrency bound allows -> devices polled per
  second (capacity) and poller CPU seconds per 1,000 devices;
- paced sweep(s): the production schedule (starts spread over 80 % of the interval) -> sweep wall time,
  CPU per 1,000 devices, and the share of one core the collector needs at that interval; then the CPU of
  one alert evaluation over the whole fleet (as the service runs after every sweep).
CPU is this process's `time.process_time()` (poller + drivers + SQLite writes), measured around sweeps.

Options: --devices N --interval S --sweeps K --concurrency C --deadline S --mix MIX --no-paced --db PATH
This module prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

from pithead.farm.alerts import AlertManager
from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.poller import SPREAD_FRACTION, Poller
from pithead.farm.store import FarmStore

# The bench's fleet must come up within this long (24,000 sim devices build in a few seconds).
FLEET_START_TIMEOUT_S = 120.0


def _serve_fleet(count: int, mix: str, conn: Connection) -> None:
    """Child process: serve the simulated fleet on ephemeral ports; report the device list; serve on."""
    try:
        from pithead.farm.sim.clock import SimClock
        from pithead.farm.sim.fleet import Fleet
        from pithead.farm.sim.models import Family
        from pithead.farm.sim.server import FleetServer
    except ImportError as exc:
        conn.send(("error", f"the simulator is not available: {exc}"))
        return

    async def serve() -> None:
        fleet = Fleet.build(count, mix, clock=SimClock())
        server = FleetServer(fleet, api_port=0, web_port=0)
        await server.start()
        api, web = server.bound_ports()
        conn.send(("ready", [(d.ip, api, "cgminer") if d.spec.family is Family.ANTMINER else (d.ip, web, "axeos")
                             for d in fleet]))
        await asyncio.Event().wait()  # until the parent terminates us

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


def _devices(listing: list[tuple[str, int, str]]) -> list[Device]:
    out = []
    for i, (host, port, driver) in enumerate(listing):
        out.append(Device(DeviceAddress(host, port, DriverKind(driver)), Identity("sim", "sim"),
                          Labels("bench", f"r{i // 100}", str(i % 100))))
    return out


async def _run(args: argparse.Namespace, devices: list[Device], db: str) -> dict[str, Any]:
    store = FarmStore(db)
    store.upsert_devices(devices)
    poller = Poller(default_drivers(), max_concurrency=args.concurrency, deadline_s=args.deadline)
    alerts = AlertManager(store)
    c0 = time.process_time()
    store.statuses()  # warm the latest-status cache, as a long-running service has it warm
    print(f"status cache load for {len(devices)} devices: {time.process_time() - c0:.2f} CPU-s", flush=True)
    n = len(devices)
    out: dict[str, Any] = {}
    c0, t0 = time.process_time(), time.perf_counter()
    rep, _ = await poller.sweep(devices, store.write_results)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out["burst"] = (rep, wall, cpu)
    print(f"burst sweep: {n} devices in {wall:.2f} s = {n / wall:,.0f} devices/s; "
          f"CPU {cpu:.2f} s = {cpu / n * 1000:.3f} CPU-s per 1,000 devices; "
          f"ok {rep.ok}, timeout {rep.timeouts}, unreachable {rep.unreachable}, error {rep.errors}; "
          f"peak in flight {rep.max_in_flight} (bound {args.concurrency})", flush=True)
    if args.paced:
        for k in range(args.sweeps):
            c0, t0 = time.process_time(), time.perf_counter()
            rep, _ = await poller.sweep(devices, store.write_results, spread_s=args.interval * SPREAD_FRACTION)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            # the rest of the interval is idle: CPU share = cpu per sweep / interval
            print(f"paced sweep {k + 1}: {n} devices over {wall:.1f} s (interval {args.interval:g} s) = "
                  f"{n / args.interval:,.0f} devices/s sustained; CPU {cpu:.2f} s = "
                  f"{cpu / n * 1000:.3f} CPU-s per 1,000 devices = {cpu / args.interval:.1%} of one core; "
                  f"ok {rep.ok}, timeout {rep.timeouts}, error {rep.errors + rep.unreachable}; "
                  f"peak in flight {rep.max_in_flight}", flush=True)
            out[f"paced{k}"] = (rep, wall, cpu)
            c0 = time.process_time()
            events = alerts.run_once(time.time())
            print(f"  alert evaluation after the sweep: {time.process_time() - c0:.2f} CPU-s "
                  f"({len(events)} alert changes)", flush=True)
    c0 = time.process_time()
    store.rollup(time.time() + 3600)
    print(f"rollup of {n * (1 + (args.sweeps if args.paced else 0)):,} readings: "
          f"{time.process_time() - c0:.2f} CPU-s", flush=True)
    store.close()
    return out


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench farm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=24_000)
    ap.add_argument("--interval", type=float, default=60.0)
    ap.add_argument("--sweeps", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--mix", default="s19xp:4,s19:3,s21:2,bitaxe-gamma:1")
    ap.add_argument("--no-paced", dest="paced", action="store_false")
    ap.add_argument("--db", default=None, help="SQLite file (default: a temporary file)")
    args = ap.parse_args(argv)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_fleet, args=(args.devices, args.mix, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(FLEET_START_TIMEOUT_S):
            raise SystemExit("simulated fleet did not start")
        kind, payload = parent.recv()
        if kind != "ready":
            raise SystemExit(f"simulated fleet failed: {payload}")
        devices = _devices(payload)
        kinds: dict[str, int] = {}
        for d in devices:
            kinds[d.address.driver.value] = kinds.get(d.address.driver.value, 0) + 1
        print(f"fleet: {len(devices)} simulated devices ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}) "
              f"in a child process; poller: 1 process, concurrency {args.concurrency}, deadline {args.deadline:g} s, "
              f"CPUs on this machine: {os.cpu_count()}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            db = args.db or os.path.join(tmp, "bench-farm.sqlite3")
            try:
                import uvloop

                uvloop.run(_run(args, devices, db))
            except ImportError:
                asyncio.run(_run(args, devices, db))
    finally:
        proc.terminate()
        proc.join(10)

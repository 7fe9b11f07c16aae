"""`pithead bench farm`: how fast the fleet manager polls a simulated fleet, and what it costs in CPU.

Defaults follow the issue: 24,000 simulated devices, polled every 60 s, in one collector process. The
simulated fleet runs in a child process (so its CPU is not counted against the poller); every device has
its own loopback address (127.16.0.0/12) and the standard ports, exactly as a farm LAN looks to us.

Figures printed:
- burst sweep: every device polled once as fast as the concurrency bound allows -> devices polled per
  second (capacity) and poller CPU seconds per 1,000 devices (results are written as the farm service
  writes them, on the store's own thread);
- paced sweep(s): the production schedule (starts spread over 80 % of the interval) -> sweep wall time,
  CPU per 1,000 devices, the share of one core the collector needs at that interval, and the worst
  event-loop lag meanwhile (what a pool sharing the loop would see); then the CPU of one alert evaluation
  over the whole fleet (as the service runs after every sweep, on the store's thread).
CPU is this process's `time.process_time()` (poller + drivers + SQLite writes), measured around sweeps.

Options: --devices N --interval S --sweeps K --concurrency C --deadline S --mix MIX --no-paced --db PATH

With `--collectors N` it measures the collector -> central path instead: one central service process
(`FarmService` in the CENTRAL role behind its real web API, token-guarded ingest, SQLite store) and N
collector processes, each polling its shard (`shard_of`) of the simulated fleet and forwarding through the
real `Forwarder` (spool file, gzip, httpx). Phases, all collectors at once:
- burst: one unpaced sweep of every shard, forwarded -> readings ingested per second end to end (the
  simulator usually limits this on a small machine);
- replay (`--replay R`): every collector re-sends its burst's readings R more times, re-stamped, as fast as
  the central takes them -> the central's ingest capacity, readings/s and CPU-s per 1,000 readings;
- paced (`--sweeps K`): the production schedule -> the central's ingest CPU per 1,000 devices per sweep,
  then the CPU of one evaluation tick over the whole fleet (stale marks, alerts, rollups, pruning), and
  both together as a share of one core at that interval.
With `--central-workers W` the central is W processes on one port (SO_REUSEPORT) and one database, each
ingesting what reaches it and evaluating its partition of the racks (`pithead farm run --central
--partition i/W`); `--database postgresql://...` puts the central on PostgreSQL (a fresh schema, dropped
after) and counts its backends' CPU too; `--duration S` runs the paced phase that long (the rehearsal). The
paced phase then prints machines per CPU-second per collector, the central's ingest and evaluation CPU per
1,000 machines (workers and database), readings missing or lost, and the arithmetic for `--target`
machines (default 500,000): collectors and central worker cores, each planned at half a core.
The central's CPU is its own `time.process_time()`, reported over a pipe (plus, on PostgreSQL, its
backend's CPU from /proc); the collectors' likewise.
This module prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from fastapi import FastAPI

from pithead.farm.alerts import AlertManager
from pithead.farm.drivers import default_drivers
from pithead.farm.forward import Forwarder, Spool, wait_drained
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels, PollResult
from pithead.farm.poller import SPREAD_FRACTION, Poller
from pithead.farm.service import FarmService, FarmServiceConfig, Role
from pithead.farm.store import FarmStore, open_farm_store
from pithead.farm.store_async import AsyncFarmStore
from pithead.farm.store_sql import PostgresConn
from pithead.fleetsim.clock import SimClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family
from pithead.fleetsim.server import FleetServer
from pithead.web.farm import FarmAuth, service_router
from pithead.web.server import WebServer

# The bench's fleet must come up within this long (24,000 sim devices build in a few seconds).
FLEET_START_TIMEOUT_S = 120.0
# How often the lag probe asks to be woken: short enough to see a stall of a few milliseconds.
LAG_TICK_S = 0.005


def _serve_fleet(count: int, mix: str, conn: Connection) -> None:
    """Child process: serve the simulated fleet on ephemeral ports; report the device list; serve on."""

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


class LagProbe:
    """The event loop's worst lag while it runs: a task that asks to wake every `LAG_TICK_S` and records how
    late it woke (a loop blocked by a store write would show the write's length here)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            self.worst = max(self.worst, loop.time() - due)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _run(args: argparse.Namespace, devices: list[Device], db: str) -> dict[str, Any]:
    store = open_farm_store(db)
    store.upsert_devices(devices)
    poller = Poller(default_drivers(), max_concurrency=args.concurrency, deadline_s=args.deadline)
    alerts = AlertManager()
    c0 = time.process_time()
    store.statuses()  # warm the latest-status cache, as a long-running service has it warm
    print(f"status cache load for {len(devices)} devices: {time.process_time() - c0:.2f} CPU-s", flush=True)
    # written as the farm service writes: on the store's own thread, the loop only awaiting
    shared = AsyncFarmStore(store)

    async def sink(results: Sequence[PollResult]) -> None:
        await shared.call(FarmStore.write_results, results)

    n = len(devices)
    out: dict[str, Any] = {}
    c0, t0 = time.process_time(), time.perf_counter()
    rep, _ = await poller.sweep(devices, sink)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out["burst"] = (rep, wall, cpu)
    print(f"burst sweep: {n} devices in {wall:.2f} s = {n / wall:,.0f} devices/s; "
          f"CPU {cpu:.2f} s = {cpu / n * 1000:.3f} CPU-s per 1,000 devices; "
          f"ok {rep.ok}, timeout {rep.timeouts}, unreachable {rep.unreachable}, error {rep.errors}; "
          f"peak in flight {rep.max_in_flight} (bound {args.concurrency})", flush=True)
    if args.paced:
        for k in range(args.sweeps):
            c0, t0 = time.process_time(), time.perf_counter()
            with LagProbe() as lag:
                rep, _ = await poller.sweep(devices, sink, spread_s=args.interval * SPREAD_FRACTION)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            # the rest of the interval is idle: CPU share = cpu per sweep / interval
            print(f"paced sweep {k + 1}: {n} devices over {wall:.1f} s (interval {args.interval:g} s) = "
                  f"{n / args.interval:,.0f} devices/s sustained; CPU {cpu:.2f} s = "
                  f"{cpu / n * 1000:.3f} CPU-s per 1,000 devices = {cpu / args.interval:.1%} of one core; "
                  f"ok {rep.ok}, timeout {rep.timeouts}, error {rep.errors + rep.unreachable}; "
                  f"peak in flight {rep.max_in_flight}; worst event-loop lag {lag.worst * 1000:.0f} ms", flush=True)
            out[f"paced{k}"] = (rep, wall, cpu)
            c0 = time.process_time()
            events = await shared.call(alerts.run_once, time.time())
            print(f"  alert evaluation after the sweep: {time.process_time() - c0:.2f} CPU-s "
                  f"({len(events)} alert changes)", flush=True)
    shared.close()
    c0 = time.process_time()
    store.rollup(time.time() + 3600)
    print(f"rollup of {n * (1 + (args.sweeps if args.paced else 0)):,} readings: "
          f"{time.process_time() - c0:.2f} CPU-s", flush=True)
    store.close()
    return out


# ---- collectors forwarding to one central service --------------------------------------------------------

BENCH_TOKEN = "bench-farm-ingest-token-0123456789"
# Each collector's spool bound in the bench: all readings of every phase fit, so nothing is dropped.
BENCH_SPOOL_ITEMS = 10_000_000


def _serve_central(db: str, interval: float, partition: tuple[int, int], port: int, conn: Connection) -> None:
    """Child process: one central worker's web API on 127.0.0.1 (`port`, 0: a free one; several workers share
    one with SO_REUSEPORT), evaluating partition i of n of the racks; answers "stats" on the pipe with its
    CPU (and its PostgreSQL backend's) and ingest counts, runs one evaluation tick on "tick" (instead of on
    its timer, so the bench measures ingest and evaluation apart); "stop" ends it."""

    async def serve() -> None:
        store = open_farm_store(db)
        svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL, poll_interval_s=interval, partition=partition,
                                                   alert_group_min=5))
        app = FastAPI()
        app.include_router(service_router(svc, auth=FarmAuth(BENCH_TOKEN)))
        web = WebServer(app, "127.0.0.1", port, reuse_port=partition[1] > 1)
        await web.start()
        pg_pid = store.backend_pid()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def answer(cmd: str) -> None:
            if cmd == "tick":  # one evaluation of this worker's racks, as the service runs every interval
                c0, d0, t0 = time.process_time(), _proc_cpu(pg_pid), time.perf_counter()
                await svc.central_tick()
                conn.send({"tick_cpu": time.process_time() - c0, "tick_db_cpu": _proc_cpu(pg_pid) - d0,
                           "tick_wall": time.perf_counter() - t0,
                           "open_alerts": len(await svc.store.call(FarmStore.open_alerts))})
                return
            t = svc.ingest.total
            conn.send({"cpu": time.process_time(), "db_cpu": _proc_cpu(pg_pid), "written": t.written,
                       "duplicates": t.duplicates, "refused": t.refused, "batches": t.batches,
                       "first_at": t.first_at, "last_at": t.last_at,
                       "devices": len(await svc.store.call(FarmStore.devices))})

        def on_command() -> None:
            cmd = conn.recv()
            if cmd == "stop":
                done.set()
                return
            answering.append(loop.create_task(answer(cmd)))  # kept until the end (the loop holds weak refs)

        answering: list[asyncio.Task[None]] = []
        loop.add_reader(conn.fileno(), on_command)
        conn.send(("ready", web.url))
        await done.wait()
        loop.remove_reader(conn.fileno())
        await web.stop()
        store.close()
        conn.send("stopped")

    _run_loop(serve())


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process `pid` has used: a PostgreSQL backend on this machine, whose work
    for a central worker is not in the worker's own process_time (0 without one, or when unreadable)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_loop(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def _collector(url: str, listing: list[tuple[str, int, str]], shard: tuple[int, int], spool: str,
               concurrency: int, deadline: float, interval: float, conn: Connection) -> None:
    """Child process: one collector. Commands on the pipe: ("burst",), ("replay", R), ("paced", K), ("stop",);
    each answered with a report once everything it made has been delivered to the central."""
    store = FarmStore(":memory:")
    store.upsert_devices(_devices(listing))
    fwd = Forwarder(url, BENCH_TOKEN, Spool(spool, BENCH_SPOOL_ITEMS), f"bench/{shard[0]}of{shard[1]}")
    svc = FarmService(store, FarmServiceConfig(role=Role.COLLECTOR, shard=shard, max_concurrency=concurrency,
                                               deadline_s=deadline, poll_interval_s=interval), forwarder=fwd)
    last: list[Any] = []

    async def phase(cmd: tuple[Any, ...]) -> dict[str, Any]:
        stop = asyncio.Event()
        sender = asyncio.create_task(fwd.run(stop))
        c0, t0 = time.process_time(), time.perf_counter()
        out: dict[str, Any] = {}
        devices = await svc.shard_devices()  # forwards the shard's inventory first (once)
        if cmd[0] == "burst":
            rep, results = await svc.poller.sweep(devices)
            fwd.submit_results(results)
            last[:] = results
            out["ok"], out["polled"] = rep.ok, rep.devices
        elif cmd[0] == "replay":
            for k in range(1, cmd[1] + 1):
                shift = k * 1e-3  # distinct, newer keys: written in full, latest status updated
                fwd.submit_results([dataclasses.replace(
                    r, time=r.time + shift,
                    reading=dataclasses.replace(r.reading, time=r.time + shift) if r.reading else None) for r in last])
            out["polled"] = 0
        else:
            ok = polled = 0
            for _ in range(cmd[1]):
                rep, _r = await svc.poller.sweep(devices, fwd.submit_results, spread_s=interval * 0.8)
                ok, polled = ok + rep.ok, polled + rep.devices
            out["ok"], out["polled"] = ok, polled
        await wait_drained(fwd)
        stop.set()
        await sender
        st = fwd.status()
        out.update(cpu=time.process_time() - c0, wall=time.perf_counter() - t0, sent=st.sent_results,
                   dropped=st.dropped_items, rejected=st.rejected_items, refused=st.refused_items,
                   devices=len(devices))
        return out

    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        while True:
            cmd = conn.recv()
            if cmd[0] == "stop":
                break
            conn.send(loop.run_until_complete(phase(cmd)))
    finally:
        loop.close()
        store.close()
        fwd.spool.close()


def _collectors_bench(args: argparse.Namespace, listing: list[tuple[str, int, str]], tmp: str) -> None:
    ctx = mp.get_context("spawn")
    db, drop = _bench_database(args.database, tmp)
    workers = args.central_workers
    central_pipes: list[Connection] = []
    procs: list[Any] = []
    url = ""
    try:
        for w in range(workers):  # the first picks a free port, the others listen on it too (SO_REUSEPORT)
            c_parent, c_child = ctx.Pipe()
            port = int(url.rsplit(":", 1)[1]) if url else 0
            p = ctx.Process(target=_serve_central, args=(db, args.interval, (w, workers), port, c_child), daemon=True)
            p.start()
            procs.append(p)
            if not c_parent.poll(FLEET_START_TIMEOUT_S):
                raise SystemExit(f"central worker {w} did not start")
            _, url = c_parent.recv()
            central_pipes.append(c_parent)

        def ask(cmd: str) -> list[dict[str, Any]]:
            for pipe in central_pipes:
                pipe.send(cmd)
            return [pipe.recv() for pipe in central_pipes]

        def stats() -> dict[str, Any]:
            each = ask("stats")
            out = {k: sum(e[k] for e in each) for k in ("cpu", "db_cpu", "written", "duplicates", "refused", "batches")}
            out["devices"] = each[0]["devices"]
            return out

        pipes = []
        n = args.collectors
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_collector, args=(url, listing, (i, n), os.path.join(tmp, f"spool-{i}.sqlite3"),
                                                     args.concurrency, args.deadline, args.interval, child),
                            daemon=True)
            p.start()
            procs.append(p)
            pipes.append(parent)
        engine = "PostgreSQL" if db.startswith("postgres") else "SQLite"
        print(f"central: {workers} worker process(es) at {url} (token-guarded ingest, {engine}, evaluation split "
              f"by rack); collectors: {n} processes, concurrency {args.concurrency} each; forwarding gzip batches "
              f"of up to 2,000 readings", flush=True)

        def run_phase(cmd: tuple[Any, ...]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], float]:
            s0 = stats()
            t0 = time.perf_counter()
            for pipe in pipes:
                pipe.send(cmd)
            reps = [pipe.recv() for pipe in pipes]
            wall = time.perf_counter() - t0
            return reps, s0, stats(), wall

        def cost(s0: dict[str, Any], s1: dict[str, Any]) -> tuple[float, float]:
            return s1["cpu"] - s0["cpu"], s1["db_cpu"] - s0["db_cpu"]

        reps, s0, s1, wall = run_phase(("burst",))
        got = s1["written"] - s0["written"]
        ccpu, dcpu = cost(s0, s1)
        polled = sum(r["polled"] for r in reps)
        print(f"burst: {polled} devices polled by {n} collectors ({sum(r['ok'] for r in reps)} ok) and "
              f"{got} readings ingested in {wall:.2f} s = {got / wall:,.0f} readings/s end to end; central CPU "
              f"{ccpu:.2f} s (+ database {dcpu:.2f} s) = {(ccpu + dcpu) / max(got, 1) * 1000:.3f} CPU-s per 1,000 "
              f"readings; collectors' CPU {sum(r['cpu'] for r in reps):.2f} s; central holds {s1['devices']} "
              f"devices", flush=True)
        if args.replay:
            reps, s0, s1, wall = run_phase(("replay", args.replay))
            got = s1["written"] - s0["written"]
            ccpu, dcpu = cost(s0, s1)
            print(f"replay x{args.replay}: {got} readings ingested in {wall:.2f} s = {got / wall:,.0f} readings/s "
                  f"(central capacity); central CPU {ccpu:.2f} s + database {dcpu:.2f} s = "
                  f"{(ccpu + dcpu) / max(got, 1) * 1000:.3f} CPU-s per 1,000 readings", flush=True)
        sweeps = max(1, round(args.duration / args.interval)) if args.duration else args.sweeps
        if args.paced and sweeps:
            reps, s0, s1, wall = run_phase(("paced", sweeps))
            got = s1["written"] - s0["written"]
            ccpu, dcpu = cost(s0, s1)
            devices = sum(r["devices"] for r in reps)
            polled = sum(r["polled"] for r in reps)
            lost = sum(r["dropped"] + r["rejected"] + r["refused"] for r in reps)
            ticks = ask("tick")
            tick_cpu = sum(t["tick_cpu"] + t["tick_db_cpu"] for t in ticks)
            col_cpu = sum(r["cpu"] for r in reps)
            per_col = polled / max(col_cpu, 1e-9)  # machines polled per collector CPU-second
            ingest_k = (ccpu + dcpu) / sweeps / max(devices, 1) * 1000
            eval_k = tick_cpu / max(devices, 1) * 1000
            print(f"paced x{sweeps} (interval {args.interval:g} s, {wall:.0f} s): {polled} polls "
                  f"({sum(r['ok'] for r in reps)} ok), {got} readings "
                  f"ingested, {polled - got} missing, {lost} lost in the collectors' spools", flush=True)
            print(f"  collectors: {per_col:,.0f} machines per CPU-second per collector "
                  f"({col_cpu / sweeps / n:.2f} CPU-s per collector per sweep of {devices // n} machines)", flush=True)
            print(f"  central ingest: {ingest_k:.3f} CPU-s per 1,000 machines per sweep (workers "
                  f"{ccpu / sweeps / max(devices, 1) * 1000:.3f} + database {dcpu / sweeps / max(devices, 1) * 1000:.3f})",
                  flush=True)
            print(f"  central evaluation: {eval_k:.3f} CPU-s per 1,000 machines per tick (stale marks, alerts, "
                  f"rollups, pruning; {len(ticks)} partitions, slowest {max(t['tick_wall'] for t in ticks):.2f} s wall; "
                  f"workers {sum(t['tick_cpu'] for t in ticks):.2f} + database {sum(t['tick_db_cpu'] for t in ticks):.2f} "
                  f"CPU-s)", flush=True)
            _arithmetic(args.target, args.interval, per_col, ingest_k + eval_k)
        lost = sum(r["dropped"] + r["rejected"] + r["refused"] for r in reps)
        s1 = stats()
        print(f"central: {s1['written']} readings written in all, {s1['duplicates']} duplicates, "
              f"{s1['refused']} refused; collectors: {lost} lost", flush=True)
        for pipe in pipes:
            pipe.send(("stop",))
        for pipe in central_pipes:
            pipe.send("stop")
            if pipe.poll(30):
                pipe.recv()
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
        drop()


# Share of one core a process is planned at in the arithmetic: headroom for bursts, restarts and catch-up.
PLAN_CORE_SHARE = 0.5


def _arithmetic(target: int, interval: float, per_collector: float, central_k: float) -> None:
    """How many collectors and central workers `target` machines need at one reading per `interval`, from the
    measured rates, each process planned at PLAN_CORE_SHARE of a core."""
    per_process = PLAN_CORE_SHARE * interval
    collectors = math.ceil(target / (per_collector * per_process))
    central_cpu = central_k * target / 1000  # CPU-s per interval, workers and database together
    central = math.ceil(central_cpu / per_process)
    print(f"  for {target:,} machines every {interval:g} s, each process at {PLAN_CORE_SHARE:.0%} of a core: "
          f"{collectors} collectors ({target / collectors:,.0f} machines each), central {central_cpu:.0f} CPU-s per "
          f"interval = {central} central worker cores (ingest and evaluation, database included)", flush=True)


def _bench_database(url: str | None, tmp: str) -> tuple[str, Any]:
    """The central's database URL (default a SQLite file in `tmp`); a PostgreSQL URL gets a fresh schema of
    its own, dropped by the function returned."""
    if not url:
        return os.path.join(tmp, "central.sqlite3"), lambda: None
    if not url.startswith(("postgresql://", "postgres://")):
        return url, lambda: None
    schema = f"bench_farm_{os.getpid()}"
    full = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    conn = PostgresConn(url.split("?")[0], schema)

    def drop() -> None:
        conn.drop_schema()
        conn.close()

    return full, drop


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench farm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=24_000)
    ap.add_argument("--interval", type=float, default=60.0)
    ap.add_argument("--sweeps", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--mix", default="s19xp:4,s19:3,s21:2,bitaxe-gamma:1")
    ap.add_argument("--no-paced", dest="paced", action="store_false")
    ap.add_argument("--db", default=None,
                    help="the farm database: a SQLite file or a postgresql://... URL (default: a temporary SQLite file)")
    ap.add_argument("--collectors", type=int, default=0,
                    help="N collector processes forwarding to one central service (0: the one-process bench)")
    ap.add_argument("--replay", type=int, default=3,
                    help="with --collectors: re-send each burst's readings this many more times (central capacity)")
    ap.add_argument("--central-workers", type=int, default=1,
                    help="with --collectors: central worker processes on one port and database (evaluation by rack)")
    ap.add_argument("--database", default=None,
                    help="with --collectors: the central's database URL (postgresql://...: a fresh schema, dropped "
                         "after; default a temporary SQLite file)")
    ap.add_argument("--duration", type=float, default=None,
                    help="with --collectors: the paced phase runs this long (interval-long sweeps) instead of --sweeps")
    ap.add_argument("--target", type=int, default=500_000, help="machines the printed arithmetic plans for")
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
            if args.collectors > 0:
                _collectors_bench(args, payload, tmp)
                return
            db = args.db or os.path.join(tmp, "bench-farm.sqlite3")
            try:
                import uvloop

                uvloop.run(_run(args, devices, db))
            except ImportError:
                asyncio.run(_run(args, devices, db))
    finally:
        proc.terminate()
        proc.join(10)

"""`pithead bench farmsim`: how many requests a simulated fleet of N devices serves, and in how much memory.

The fleet runs in a child process (shared bind on ephemeral ports, so the load generator does not
steal its event loop); the parent opens real TCP connections to each device's own 127.x.y.z address:
cgminer `summary` (one request per connection, NUL-terminated reply, close — as farm tools poll
Antminers) and AxeOS `GET /api/system/info` (HTTP/1.1, `Connection: close`). It prints:

- build time and resident memory of the fleet process before and after the load (every device touched),
- requests per second per surface, and per CPU-second of the fleet process (fairer on a shared box),
- the time one full sweep (every device polled once) took.

Figures only; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import os
import random
import time
from multiprocessing.connection import Connection

from pithead.fleetsim.clock import SimClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer

SWEEP_CONCURRENCY = 256  # like asic-rs' identify concurrency; a poller's typical fan-out
IO_TIMEOUT_S = 10.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks


def _child(conn: Connection, n: int, mix: str) -> None:
    async def main() -> None:
        t0 = time.perf_counter()
        fleet = Fleet.build(n, mix, seed=1, clock=SimClock())
        build_s = time.perf_counter() - t0
        srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
        await srv.start()
        api, web = srv.bound_ports()
        ants = [d.ip for d in fleet if d.spec.family.value in ("antminer", "whatsminer")]
        axes = [d.ip for d in fleet if d.spec.family.value == "bitaxe"]
        conn.send((build_s, api, web, ants, axes))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        conn.send(srv.stats.requests)
        await srv.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


async def _api_summary(ip: str, port: int) -> bool:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), IO_TIMEOUT_S)
    try:
        writer.write(b'{"command":"summary"}')
        data = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
        return data.endswith(b"\x00")
    finally:
        writer.close()


async def _axeos_info(ip: str, port: int) -> bool:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), IO_TIMEOUT_S)
    try:
        writer.write(f"GET /api/system/info HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
        return data.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def _load(
    targets: list[tuple[str, int, str]], seconds: float, concurrency: int
) -> tuple[dict[str, int], int]:
    done = {"api": 0, "web": 0}
    errors = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(7)

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            ip, port, kind = targets[rng.randrange(len(targets))]
            try:
                ok = await (_api_summary(ip, port) if kind == "api" else _axeos_info(ip, port))
            except (OSError, TimeoutError):
                ok = False
            if ok:
                done[kind] += 1
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


async def _sweep(targets: list[tuple[str, int, str]]) -> tuple[float, int]:
    sem = asyncio.Semaphore(SWEEP_CONCURRENCY)
    bad = 0

    async def one(ip: str, port: int, kind: str) -> None:
        nonlocal bad
        async with sem:
            try:
                ok = await (_api_summary(ip, port) if kind == "api" else _axeos_info(ip, port))
            except (OSError, TimeoutError):
                ok = False
            bad += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(one(*t) for t in targets))
    return time.perf_counter() - t0, bad


async def _mine_bench(n: int, seconds: float, duty: float) -> None:
    """N simulated devices mine against pithead's own pool (in this process) for `seconds`."""
    # deferred: the fleet's child process imports this module too, and this bench reports its memory; the
    # pool, template and hashing imports of the mining run stay out of it (each line below says so).
    from pithead.chain.compact import bits_to_target  # deferred (see above)
    from pithead.chain.params import REGTEST  # deferred (see above)
    from pithead.fleetsim.device import PoolConf  # deferred (see above)
    from pithead.fleetsim.mining import MiningBridge  # deferred (see above)
    from pithead.miner.core import active_path  # deferred (see above)
    from pithead.stratum.difficulty import VarDiffConfig  # deferred (see above)
    from pithead.stratum.server.pool import PoolServer  # deferred (see above)
    from pithead.stratum.v1.pool import PoolRules  # deferred (see above)
    from pithead.template.block_template import BlockTemplate  # deferred (see above)
    from pithead.template.sources.static import StaticTemplateSource  # deferred (see above)

    bits = 0x1D00FFFF  # shares never make blocks
    now = int(time.time())
    tpl = BlockTemplate(
        version=0x20000000,
        prev_hash=hashlib.sha256(b"bench").digest(),
        height=101,
        bits=bits,
        target=bits_to_target(bits),
        curtime=now,
        mintime=now - 600,
        coinbase_value=50 * 10**8,
        transactions=(),
        rules=("csv", "!segwit", "taproot"),
    )

    class Sink:
        def __init__(self) -> None:
            self.accepted = 0
            self.remotes: set[str] = set()

        def put(self, ev: object) -> None:
            if getattr(ev, "accepted", False):
                self.accepted += 1
                self.remotes.add(str(getattr(ev, "remote", "")))

    sink = Sink()

    rules = PoolRules(
        mode="solo", network=REGTEST, vardiff=VarDiffConfig(5.0, 1e-6, 1e9), start_difficulty=1e-3
    )
    server = PoolServer(rules=rules, source=StaticTemplateSource(tpl), sink=sink, refresh_interval=3600)
    _, port = await server.start("127.0.0.1", 0)
    address = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
    fleet = Fleet.build(
        n,
        seed=1,
        network="127.40.0.0/16",
        clock=SimClock(),
        pools=(PoolConf(f"stratum+tcp://127.0.0.1:{port}", address),),
    )
    bridge = MiningBridge(fleet, fleet.devices, share_difficulty=1e-3, hash_duty=duty)
    cpu0 = time.process_time()
    await bridge.start()
    await asyncio.sleep(seconds)
    s = bridge.stats
    print(
        f"mining: {n} devices for {seconds:.0f} s on the '{active_path()}' hashing path, duty {duty:.2f}: "
        f"{s.connected} connected, {s.accepted} accepted / {s.rejected} rejected shares "
        f"(pool accepted {sink.accepted} from {len(sink.remotes)} distinct source addresses)"
    )
    print(
        f"mining: pool-side {s.pool_side_hps() / 1e6:.2f} MH/s, local hashing {s.local_hps() / 1e6:.2f} MH/s; "
        f"simulated (device-reported) {fleet.totals()['hashrate_ths'] / 1000:.2f} PH/s; "
        f"process CPU {time.process_time() - cpu0:.1f} s"
    )
    await bridge.close()
    await server.stop()


def _run(coro):  # type: ignore[no-untyped-def]
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pithead bench farmsim", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=24_000)
    p.add_argument("--mix", default="s19xp:4,s19:3,s21:2,bitaxe-gamma:1")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the throughput run")
    p.add_argument("--concurrency", type=int, default=128, help="client connections in flight")
    p.add_argument("--no-sweep", action="store_true", help="skip the full sweep")
    p.add_argument(
        "--mine",
        type=int,
        default=0,
        metavar="N",
        help="instead: N devices mine against pithead's pool for --seconds; print shares and rates",
    )
    p.add_argument("--hash-duty", type=float, default=0.5, help="hashing duty cycle for --mine")
    args = p.parse_args(argv)
    if args.mine:
        _run(_mine_bench(args.mine, args.seconds, args.hash_duty))
        return

    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_child, args=(child, args.devices, args.mix), daemon=True)
    proc.start()
    assert proc.pid is not None
    build_s, api, web, ants, axes = parent.recv()
    rss0 = _rss_mb(proc.pid)
    print(
        f"fleet: {args.devices} devices ({len(ants)} Antminer, {len(axes)} Bitaxe), built in {build_s:.2f} s"
    )
    print(
        f"fleet process RSS after build + listen: {rss0:.1f} MB ({rss0 * 1024 / args.devices:.2f} KiB/device)"
    )
    targets = [(ip, api, "api") for ip in ants] + [(ip, web, "web") for ip in axes]
    if not args.no_sweep:
        sweep_s, bad = _run(_sweep(targets))
        print(
            f"full sweep: every device polled once in {sweep_s:.2f} s at concurrency {SWEEP_CONCURRENCY} "
            f"({len(targets) / sweep_s:.0f} req/s, {bad} failed)"
        )
        print(f"fleet process RSS after every device was touched: {_rss_mb(proc.pid):.1f} MB")
    cpu0 = _cpu_s(proc.pid)
    t0 = time.perf_counter()
    done, errors = _run(_load(targets, args.seconds, args.concurrency))
    wall = time.perf_counter() - t0
    cpu = _cpu_s(proc.pid) - cpu0
    total = done["api"] + done["web"]
    print(
        f"load: {args.seconds:.0f} s, {args.concurrency} connections in flight: "
        f"{done['api'] / wall:.0f} API summary/s + {done['web'] / wall:.0f} AxeOS info/s = "
        f"{total / wall:.0f} req/s ({errors} errors)"
    )
    if cpu > 0:
        print(
            f"fleet process CPU: {cpu:.2f} s for {total} requests = {total / cpu:.0f} requests per CPU-second"
        )
    print(f"fleet process RSS after load: {_rss_mb(proc.pid):.1f} MB")
    parent.send("stop")
    served = parent.recv()
    print(f"server counted {served} requests")
    proc.join(timeout=10)
    if proc.is_alive():
        proc.terminate()

"""`pithead bench attack`: honest miners' share replies alone and under each cheap attack of issue 16.

The pool runs as `serve` runs it: one worker process behind the supervisor (this process), beside the web
API over a seeded SQLite ledger, in solo mode (the default; `--mode pool` for the other). An honest miner
(a child process) submits a share every SHARE_EVERY_S and times each reply, first alone, then while an
attacker (another child process) does one of:

  bans            the pool's ban table is filled with `--bans` entries (sent to the worker as the
                  supervisor spreads bans), then attackers earn new bans from fresh loopback addresses
                  (ten junk lines each);
  bad hex         submits on a live job with nonce "-1", on connections from fresh addresses;
  unknown method  pipelined unknown methods on a few connections;
  unknown job     pipelined submits for a job id that never existed;
  rejected work   `--flood-conns` connections, each authorizing 64 worker names and sending
                  low-difficulty shares from them in turn (paced under the ban score);
  web readers     `--readers` clients reading the API as fast as they can;
  idle            `--idle` logged-in idle connections, each on its own payout address.

Then, on a fresh pool each, `--idle` idle connections on one address and on distinct addresses: the pool's
memory per connection and a new block's notify time (the pool's own time to write every notify, and the
last miner's receipt on this side's clock). Prints a table; asserts nothing. What the pool logs goes to a
file (its size per phase is a figure too: a traceback per bad line is an attack of its own).

    pithead bench attack [--seconds 5] [--idle 19000] [--bans 100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pithead.bench._attackers import HONEST, HONEST_DIFFICULTY, SHARE_EVERY_S, WAIT_S, WARMUP_S, WORKER_NAMES
from pithead.bench.stratum import _pid_rss, bench_template, raise_nofile
from pithead.bench.web import _seed
from pithead.config import PoolConfig
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.store import open_store
from pithead.stratum.server.workers import WorkerPool
from pithead.template.sources.static import StaticTemplateSource
from pithead.web.app import create_app
from pithead.web.server import WebServer
from pithead.web.services import Services

CHILD = (sys.executable, "-m", "pithead.bench._attackers")


# --- the driver -------------------------------------------------------------------------------------------


class Child:
    """A child process of this bench speaking one JSON line per message on stdout."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen([*CHILD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), WAIT_S)
        if not line:
            raise RuntimeError(f"bench child {self.args} ended (exit {self.proc.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def tell(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    async def ask(self, cmd: str) -> dict[str, Any]:
        self.tell(cmd)
        return await self.read()

    async def finish(self) -> dict[str, Any]:
        self.tell("stop")
        out = await self.read()
        await asyncio.to_thread(self.proc.wait)
        return out


async def honest_replies(port: int, seconds: float) -> list[float]:
    miner = await asyncio.create_subprocess_exec(*CHILD, "--role", "honest", "--port", str(port), "--seconds",
                                                 str(seconds), stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(miner.communicate(), WAIT_S + seconds)
    return [float(x) for x in out.split()]


@dataclass
class Row:
    name: str
    replies: list[float]
    load: str

    @property
    def median(self) -> float:
        return statistics.median(self.replies) if self.replies else float("nan")

    @property
    def p99(self) -> float:
        s = sorted(self.replies)
        return s[min(len(s) - 1, int(len(s) * 0.99))] if s else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, log: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.log = log
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.web: WebServer | None = None
        self.web_port = 0

    def cfg(self) -> PoolConfig:
        return PoolConfig(port=0, mode=self.args.mode, pool_address=HONEST if self.args.mode == "pool" else None,
                          min_difficulty=HONEST_DIFFICULTY, refresh_interval=3600.0, max_connections_per_ip=1_000_000,
                          handshake_timeout=600.0, idle_timeout=3600.0, workers=1)

    async def pool(self) -> tuple[WorkerPool, StaticTemplateSource, int]:
        source = StaticTemplateSource(bench_template(1000))
        pool = WorkerPool(self.cfg(), source, MemoryBus("bench"), 1, log_level=30)
        await source.start()
        _, port = await pool.start("127.0.0.1", 0)
        return pool, source, port

    def log_size(self) -> int:
        return self.log.stat().st_size

    async def phase(self, name: str, port: int, kind: str | None, *extra: str,
                    during: Callable[[Child], Awaitable[None]] | None = None) -> Row:
        child = None
        if kind is not None:
            child = Child("--role", "attack", "--kind", kind, "--port", str(port), "--web-port", str(self.web_port),
                          *extra)
            await child.read()  # ready (warmed up: connected, logged in)
            await asyncio.sleep(WARMUP_S)
        log0 = self.log_size()
        replies = await honest_replies(port, self.args.seconds)
        if child is not None and during is not None:
            await during(child)
        load = "-"
        if child is not None:
            tally = (await child.finish())["tally"]
            logged = self.log_size() - log0
            load = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in tally.items() if v) + f"; pool log +{logged:,} B"
        row = Row(name, replies, load)
        self.rows.append(row)
        print(f"  {row.name:42} median {row.median:8.2f} ms  p99 {row.p99:8.2f} ms  ({len(replies)} shares)",
              flush=True)
        return row

    async def attacks(self) -> None:
        a = self.args
        pool, source, port = await self.pool()
        try:
            await self.phase("alone", port, None)
            # the ban table filled as the supervisor fills it (a ban spread to the worker), then new bans
            worker = pool.workers[0]
            assert worker.channel is not None
            for i in range(a.bans):
                worker.channel.send(("ban", f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"))
                if i % 10_000 == 0:
                    await worker.channel.drain()
            await worker.channel.drain()
            await pool.refresh_stats()  # the worker has read every ban before its report
            await self.phase(f"ban table at {a.bans:,}, then new bans", port, "bans")
            await self.phase('bad hex submits (nonce "-1")', port, "bad-hex")
            await self.phase("unknown-method spam", port, "unknown-method")
            await self.phase("unknown-job-id spam", port, "unknown-job")
            await self.phase(f"rejected work, {a.flood_conns} conns x {WORKER_NAMES} names", port, "rejected-work",
                             "--flood-conns", str(a.flood_conns), "--flood-rate", str(a.flood_rate))
            await self.phase(f"web API readers ({a.readers})", port, "web", "--readers", str(a.readers))
        finally:
            await pool.stop()
            await source.stop()

    async def idle(self, distinct: bool) -> None:
        a = self.args
        pool, source, port = await self.pool()
        try:
            await pool.refresh_stats()
            pid = pool.workers[0].stats["pid"]
            rss0 = _pid_rss(pid)
            what = "distinct addresses" if distinct else "one address"
            notify: list[tuple[float, float, int, float]] = []

            async def new_blocks(child: Child) -> None:
                rss1 = _pid_rss(pid)
                for k in range(a.blocks):
                    await child.ask("mark")
                    await pool.refresh_stats()
                    cpu0 = pool.workers[0].stats["cpu"]
                    t_push = time.time()
                    source.push(bench_template(2000 + k), new_block=True)
                    deadline = time.monotonic() + WAIT_S
                    while True:
                        c = await child.ask("count")
                        if c["got"] >= c["of"] or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.05)
                    await pool.refresh_stats()
                    cpu = (pool.workers[0].stats["cpu"] - cpu0) * 1000.0
                    notify.append((pool.metrics.last_broadcast_ms, (c["last_at"] - t_push) * 1000.0, c["got"], cpu))
                rss2 = _pid_rss(pid)
                per = max(1, a.idle) * 1024
                self.notes.append(
                    f"{a.idle:,} idle, {what}: pool worker RSS +{(rss1 - rss0) / 2**20:,.1f} MiB after login "
                    f"({(rss1 - rss0) / per:,.2f} KiB per connection), +{(rss2 - rss0) / 2**20:,.1f} MiB after "
                    f"{a.blocks} new blocks ({(rss2 - rss0) / per:,.2f} KiB per connection)")
                wrote = sorted(n[0] for n in notify)
                seen = sorted(n[1] for n in notify)
                self.notes.append(
                    f"new block with {a.idle:,} idle, {what}: the pool wrote every notify in median "
                    f"{statistics.median(wrote):,.1f} ms (max {wrote[-1]:,.1f}), the last miner's arrived median "
                    f"{statistics.median(seen):,.1f} ms after the push ({min(n[2] for n in notify):,} miners, "
                    f"{a.blocks} new blocks); pool CPU per new block median "
                    f"{statistics.median(n[3] for n in notify):,.1f} ms")

            await self.phase(f"{a.idle:,} idle logged-in conns, {what}", port, "idle" if distinct else "idle-one",
                             "--idle", str(a.idle), during=new_blocks)
        finally:
            await pool.stop()
            await source.stop()

    async def run(self) -> None:
        a = self.args
        db = self.tmp / "ledger.sqlite3"
        _seed(db, 200, 50, a.ledger_shares, time.time())
        store = open_store(f"sqlite:///{db}", migrate=False)
        self.web = WebServer(create_app(Services(store=store)), "127.0.0.1", 0)
        await self.web.start()
        self.web_port = self.web.port
        print(f"pithead bench attack: {a.mode} mode, the pool in 1 worker process beside the web API (as serve); "
              f"{os.cpu_count()} CPUs; an honest miner sends a share every {SHARE_EVERY_S * 1000:.0f} ms for "
              f"{a.seconds:g} s per phase; pool log: {self.log}", flush=True)
        try:
            if a.only != "idle":
                await self.attacks()
            if a.only != "attacks":
                await self.idle(distinct=False)
                await self.idle(distinct=True)
        finally:
            await self.web.stop()
            store.close()
        self.report()

    def report(self) -> None:
        base = self.rows[0]
        print()
        print(f"{'phase':44} {'median ms':>10} {'p99 ms':>10} {'shares':>7} {'x alone':>8}   attack")
        over = []
        for r in self.rows:
            ratio = r.median / base.median if base.median else float("nan")
            print(f"{r.name:44} {r.median:10.2f} {r.p99:10.2f} {len(r.replies):7d} {ratio:8.2f}   {r.load}")
            if r is not base and not ratio <= 2.0:
                over.append(r.name)
        print()
        for note in self.notes:
            print(note)
        if base.name == "alone":
            print("goal (issue 16): every attack within 2x of the alone median: "
                  + ("met" if not over else "NOT met under: " + "; ".join(over)))
        else:
            print(f"(x alone: relative to the first row, {base.name}: the attack phases were not run)")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pithead bench attack", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--mode", choices=("solo", "pool"), default="solo")
    ap.add_argument("--seconds", type=float, default=5.0, help="the honest miner's time per phase")
    ap.add_argument("--idle", type=int, default=19_000, help="idle logged-in connections")
    ap.add_argument("--bans", type=int, default=100_000, help="bans in the table before the new ones")
    ap.add_argument("--flood-conns", type=int, default=400, help="rejected-work connections (64 names each)")
    ap.add_argument("--flood-rate", type=float, default=0.9, help="rejected shares per second per connection")
    ap.add_argument("--readers", type=int, default=32, help="web API readers")
    ap.add_argument("--blocks", type=int, default=17,
                    help="new blocks pushed to the idle connections (more than the 16 generations a pool remembers)")
    ap.add_argument("--only", choices=("all", "attacks", "idle"), default="all", help="run only these phases")
    ap.add_argument("--ledger-shares", type=int, default=50_000, help="shares in the web's seeded ledger")
    ap.add_argument("--quick", action="store_true", help="a tiny run (the suite's smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.idle, args.bans, args.flood_conns = 1.0, 60, 2_000, 8
        args.readers, args.blocks, args.ledger_shares = 4, 2, 2_000
    if args.idle + 256 > raise_nofile():
        raise SystemExit(f"--idle {args.idle} needs more open files than RLIMIT_NOFILE allows here")
    with tempfile.TemporaryDirectory(prefix="pithead-bench-attack-") as tmp:
        log = Path(tmp) / "pool.log"
        saved = os.dup(2)
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 2)  # the pool's workers inherit it: what they log is a figure, not noise
        try:
            asyncio.run(Bench(args, Path(tmp), log).run())
        except BaseException:
            os.dup2(saved, 2)
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)


if __name__ == "__main__":
    main(sys.argv[1:])

"""`pithead bench ledger [--shares N] [--backend sqlite|postgres|all] [--pg URL]`: ledger figures.

Prints shares per second recorded through `Ledger.apply` (batched as the consumer batches them), how long
one batch's commit takes (two of them are what a kill -9 can lose, see `pithead.ledger.consumer`), the time
to split a block under PPLNS over the whole retained window, a rollup pass, and the dashboard's pool
summary query. SQLite runs on a temporary file (WAL); PostgreSQL, when reachable, in a throwaway schema.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from pithead.events import ShareEvent
from pithead.ledger.consumer import CONSUME_BATCH
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore

WORKERS = 200  # distinct workers in the synthetic load, 4 per address


def _events(n: int, t0: float) -> list[ShareEvent]:
    out = []
    for i in range(n):
        w = i % WORKERS
        addr = f"bcrt1qbench{w // 4:04d}"
        out.append(ShareEvent(t0 + i * 0.01, f"{addr}.rig{w % 4}", addr, 1.0 + (i % 7), f"j{i // 500}", 800_000, True,
                              share_difficulty=2.0 + (i % 97), network_difficulty=1e6, block_value_sat=312_500_000))
    return out


def _run(name: str, store: LedgerStore, n: int) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, pplns_n=2.0), network_difficulty=n * 4.0 / 2)
    events = _events(n, 1_000_000.0)
    commits = []
    for i in range(0, n, CONSUME_BATCH):
        start = time.perf_counter()
        ledger.apply(events[i : i + CONSUME_BATCH])
        commits.append(time.perf_counter() - start)
    took = sum(commits)
    print(f"{name:9} record  {n} shares in {took:.2f} s = {n / took:,.0f} shares/s (batches of {CONSUME_BATCH})")
    commits.sort()
    # what a kill -9 of the process holding the in-memory bus can lose: the shares of the last two commits
    print(f"{name:9} commit  a full batch in {commits[len(commits) // 2] * 1000:.1f} ms (median), "
          f"{commits[-1] * 1000:.1f} ms (slowest): the durability window is two of these")
    start = time.perf_counter()
    split = ledger.split_block(312_500_000, "bcrt1qfinder", ledger.network_difficulty)
    took = time.perf_counter() - start
    print(f"{name:9} PPLNS   split over {n} shares into {len(split.credits)} credits in {took * 1000:.1f} ms")
    now = 1_000_000.0 + n * 0.01
    start = time.perf_counter()
    ledger.pool_summary(now)
    took = time.perf_counter() - start
    print(f"{name:9} summary pool summary (4 windows, CI) in {took * 1000:.1f} ms")
    start = time.perf_counter()
    ledger.address_stats("bcrt1qbench0000", now)
    print(f"{name:9} address stats (4 workers) in {(time.perf_counter() - start) * 1000:.1f} ms")
    start = time.perf_counter()
    result = ledger.rollup(now + 2 * 86400)
    print(f"{name:9} rollup  {result.shares_deleted} shares pruned, {result.buckets_coarsened} buckets coarsened "
          f"in {(time.perf_counter() - start) * 1000:.1f} ms")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="pithead bench ledger")
    p.add_argument("--shares", type=int, default=50_000)
    p.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            _run("sqlite", store, args.shares)
            store.close()
    if args.backend in ("postgres", "all"):
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            store = open_store(f"{args.pg}?schema={schema}")
        except StoreError as exc:
            print(f"postgres  skipped: {exc}")
            return
        try:
            _run("postgres", store, args.shares)
        finally:
            store.drop_schema()  # type: ignore[attr-defined]
            store.close()

"""`pithead bench hash`: sha256d nonce-scan speed of each hashing path, on 1 thread and on all cores.

What it is: for every available path (``shani``, ``portable``, ``python`` = the hashlib midstate loop)
and every thread count (1 and ``os.cpu_count()`` by default), each thread scans its own random header
with the production API (:func:`pithead.miner.core.prepare` + ``scan``) in chunks for a fixed time; the
figures are MH/s in total and per thread, and the scaling against one thread. Each measurement runs
``--repeat`` times and the best run is printed (other processes on a shared machine only ever slow a run
down, so the best run is the closest to the hardware's figure). Options: ``--seconds S`` per run
(default 2), ``--repeat N`` (default 3), ``--threads 1,2,4``, ``--paths shani,portable``.

What it is not: a test. It asserts nothing and only prints figures.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass
from typing import Final

from pithead.miner import core

#: Nonces per scan call for the native paths (~30 ms at 30 MH/s: the per-call overhead is negligible).
NATIVE_CHUNK: Final = 1 << 20
#: Nonces per call for the hashlib path (about 0.1-0.2 s).
PYTHON_CHUNK: Final = 1 << 16
#: A target no hash will meet in practice (difficulty ~2^32), so the figure is pure hashing.
HARD_TARGET: Final = 1 << 192


@dataclass(frozen=True, slots=True)
class Run:
    """One measurement: per-thread hashes per wall second and per CPU second of that thread."""

    wall: list[float]
    cpu: list[float]

    @property
    def total(self) -> float:
        return sum(self.wall)


def measure(path: str, threads: int, seconds: float) -> Run:
    """All threads hashing at once for ``seconds``: each thread's rate in wall time and in its CPU time.

    The CPU-time rate (``time.thread_time``) is what a thread does while it holds a core: on a machine
    shared with other work it is the figure that still tells the code's speed, and equal per-thread CPU
    rates at 1 and N threads mean the code itself scales linearly (no lock, no GIL in the hot path).
    """
    chunk = PYTHON_CHUNK if path == core.PATH_PYTHON else NATIVE_CHUNK
    counts = [0] * threads
    elapsed = [0.0] * threads
    cpu = [0.0] * threads
    start = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        prepared = core.prepare(os.urandom(76), HARD_TARGET, path)
        start.wait()
        t0, c0 = time.perf_counter(), time.thread_time()
        nonce = 0
        while True:
            prepared.scan(nonce, chunk)
            nonce = (nonce + chunk) % (core.NONCE_SPACE - chunk)
            counts[i] += chunk
            now = time.perf_counter()
            if now - t0 >= seconds:
                elapsed[i], cpu[i] = now - t0, time.thread_time() - c0
                return

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    for t in pool:
        t.join()
    return Run(
        [c / e for c, e in zip(counts, elapsed, strict=True)],
        [c / t if t > 0 else 0.0 for c, t in zip(counts, cpu, strict=True)],
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pithead bench hash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is printed")
    parser.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1 and all cores)")
    parser.add_argument("--paths", default=None, help="comma-separated paths (default: all available)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    counts = [int(x) for x in args.threads.split(",")] if args.threads else sorted({1, cores})
    paths = args.paths.split(",") if args.paths else core.available_paths()
    for p in paths:
        core.check_path(p)
    print(
        f"pithead bench hash: sha256d nonce scan, {cores} CPU(s), paths {', '.join(paths)}, "
        f"best of {args.repeat} x {args.seconds:g} s"
    )
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
    except OSError:
        pass
    print(f"{'path':<10}{'threads':>8}{'total MH/s':>12}{'scaling':>9}   per thread MH/s (wall | per CPU-second)")
    for p in paths:
        single: float | None = None
        for n in counts:
            run = max((measure(p, n, args.seconds) for _ in range(max(1, args.repeat))), key=lambda r: r.total)
            total = run.total / 1e6
            if n == 1:
                single = total
            wall = " ".join(f"{r / 1e6:.2f}" for r in run.wall)
            cpu = " ".join(f"{r / 1e6:.2f}" for r in run.cpu)
            scaling = f"{total / single:.2f}x" if single else "-"
            print(f"{p:<10}{n:>8}{total:>12.2f}{scaling:>9}   {wall} | {cpu}", flush=True)

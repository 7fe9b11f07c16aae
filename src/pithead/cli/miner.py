"""`pithead miner`: the reference CPU miner (Stratum V1 or V2 client, native sha256d core).

    pithead miner -o stratum+tcp://HOST:PORT [-o BACKUP ...] -u ADDRESS.worker -p x -t THREADS
    pithead miner -o stratum2+tcp://HOST:PORT/AUTHORITY_KEY -u ADDRESS.worker [--sv2-channel extended]
    pithead miner --benchmark -t 2 --duration 10

A Stratum V2 pool is pinned by its authority key (`pithead keys show` prints it): a pool whose
certificate does not verify against it is refused, and when every pool is refused the miner stops with
the reason (status 1) instead of retrying.

What it is: argument parsing and the status line (rich ``Live`` on a terminal: hashrate per thread and in
total, accepted/rejected shares, difficulty, pool; a plain line every few seconds otherwise). The mining
itself is :class:`pithead.miner.runner.Miner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Final

import typer

from pithead.app.lifecycle import StartError, run_command
from pithead.miner import core
from pithead.miner.runner import Miner, MinerOptions, MinerStatus, path_summary
from pithead.stratum.client.connection import AuthorizationRefused, PoolAddress, parse_pool_url
from pithead.stratum.client.v2 import SCHEME as SV2_SCHEME
from pithead.stratum.client.v2 import PoolRefused, parse_sv2_url
from pithead.stratum.v1.errors import InvalidPoolUrl
from pithead.stratum.v2.channels import ChannelKind

#: Status refresh on a terminal (seconds), and the plain-line interval when output is not a terminal.
STATUS_REFRESH: Final = 1.0
PLAIN_STATUS_INTERVAL: Final = 10.0

#: Rough per-thread rates (H/s) for --suggest-diff auto; the pool's vardiff corrects them anyway.
NOMINAL_RATE: Final = {core.PATH_SHANI: 25e6, core.PATH_PORTABLE: 8e6, core.PATH_PYTHON: 1e6}
#: Seconds per share that --suggest-diff auto aims at (a pool's usual vardiff target).
SUGGEST_SHARE_SECONDS: Final = 10.0
#: Difficulty-1 share = 2^32 hashes on average.
HASHES_PER_DIFF1: Final = 2**32

app = typer.Typer(add_completion=False, invoke_without_command=True, no_args_is_help=False)


def parse_suggest(value: str, threads: int, path: str) -> float | None:
    """``--suggest-diff``: 'off' → None; 'auto' → about one share per SUGGEST_SHARE_SECONDS; else a number."""
    text = value.strip().lower()
    if text in ("off", "none", "0"):
        return None
    if text == "auto":
        rate = NOMINAL_RATE.get(path, NOMINAL_RATE[core.PATH_PYTHON]) * threads
        return float(f"{rate * SUGGEST_SHARE_SECONDS / HASHES_PER_DIFF1:.3g}")
    diff = float(text)
    if not diff > 0:
        raise ValueError("--suggest-diff must be positive, 'auto' or 'off'")
    return diff


def nominal_hash_rate(suggested: float | None) -> float:
    """What a Stratum V2 pool is told this miner does (H/s), from the same `--suggest-diff` V1 pools are
    asked: a difficulty for one share per SUGGEST_SHARE_SECONDS, or 0 ('off': the pool's start difficulty)."""
    if suggested is None:
        return 0.0
    return suggested * HASHES_PER_DIFF1 / SUGGEST_SHARE_SECONDS


def parse_url(url: str) -> PoolAddress:
    """A pool URL of either protocol: `stratum+tcp://HOST:PORT` or `stratum2+tcp://HOST:PORT/KEY`."""
    return parse_sv2_url(url) if url.strip().startswith(SV2_SCHEME + "://") else parse_pool_url(url)


def format_rate(hs: float) -> str:
    for unit, scale in (("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if hs >= scale:
            return f"{hs / scale:.2f} {unit}"
    return f"{hs:.0f} H/s"


def status_line(miner: Miner) -> str:
    st: MinerStatus = miner.status
    rates = miner.engine.rates()
    per = " ".join(f"t{i}:{format_rate(r)}" for i, r in enumerate(rates))
    share_part = f"A {st.accepted} R {st.rejected}" + (f" stale {st.stale}" if st.stale else "")
    if miner.client is None:
        share_part = f"found {st.found}"
    conn = st.pool if st.connected or miner.client is None else f"{st.pool} (disconnected)"
    return (
        f"[{miner.path}] {format_rate(sum(rates))} total | {per} | {share_part} | diff {st.difficulty:g} | {conn}"
    )


async def _status_loop(miner: Miner, live: bool) -> None:
    if live:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        def render() -> Group:
            return Group(*(Text(line, style="dim") for line in list(miner.status.log)[-5:]), Text(status_line(miner)))

        with Live(render(), refresh_per_second=4, transient=False) as view:
            while True:
                await asyncio.sleep(STATUS_REFRESH)
                view.update(render())
    else:
        # Event lines (shares, blocks, connection trouble) go out within a second, the status line every
        # PLAIN_STATUS_INTERVAL, and whatever is left when the miner stops is printed before "done".
        printed: list[str] = []
        loop = asyncio.get_running_loop()
        next_status = loop.time() + PLAIN_STATUS_INTERVAL

        def flush_log() -> None:
            nonlocal printed
            current = list(miner.status.log)
            for line in unprinted(printed, current):
                print(line, flush=True)
            printed = current

        try:
            while True:
                await asyncio.sleep(STATUS_REFRESH)
                flush_log()
                if loop.time() >= next_status:
                    next_status += PLAIN_STATUS_INTERVAL
                    print(status_line(miner), flush=True)
        finally:
            flush_log()


def unprinted(printed: list[str], current: list[str]) -> list[str]:
    """The lines of the bounded status log `current` that came after the snapshot `printed`: the longest
    tail of `printed` that starts `current` is what was already shown (the log drops its oldest lines, so
    its length alone stops telling new lines apart once it is full)."""
    for k in range(min(len(printed), len(current)), 0, -1):
        if printed[len(printed) - k:] == current[:k]:
            return current[k:]
    return current


async def _main(miner: Miner, duration: float | None, live: bool, stop: asyncio.Event) -> None:
    status = asyncio.ensure_future(_status_loop(miner, live))
    mining = asyncio.ensure_future(miner.run(duration))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({mining, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (mining, stopped, status):
            task.cancel()
        for task in (mining, stopped, status):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@app.callback()
def miner(
    ctx: typer.Context,
    url: list[str] = typer.Option(
        None, "--url", "-o",
        help="Pool stratum+tcp://HOST:PORT or stratum2+tcp://HOST:PORT/AUTHORITY_KEY; repeat for failover, in order."),
    user: str = typer.Option("", "--user", "-u", help="Username, usually ADDRESS.worker."),
    password: str = typer.Option("x", "--pass", "-p", help="Password (most pools ignore it)."),
    threads: int = typer.Option(os.cpu_count() or 1, "--threads", "-t", min=1, help="Hashing threads."),
    benchmark: bool = typer.Option(False, "--benchmark", help="Hash synthetic work, no pool."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    path: str | None = typer.Option(None, "--path", help="Hashing path: shani, portable or python."),
    suggest_diff: str = typer.Option(
        "auto",
        "--suggest-diff",
        help="mining.suggest_difficulty: a number, 'auto' (about one share per 10 s for these threads) or 'off'.",
    ),
    no_version_rolling: bool = typer.Option(False, "--no-version-rolling", help="Do not negotiate BIP310."),
    bench_diff: float = typer.Option(1.0, "--bench-diff", help="Share difficulty of --benchmark work."),
    sv2_channel: str = typer.Option(
        "standard", "--sv2-channel",
        help="Stratum V2: 'standard' (header-only: the pool fixes the merkle root) or 'extended' (the miner "
             "rolls the coinbase's extranonce)."),
) -> None:
    """Mine on Stratum V1 or V2 pools (or --benchmark) with the native hashing core."""
    if ctx.invoked_subcommand is not None:
        return
    if not benchmark and not url:
        typer.echo("pithead miner: give at least one -o stratum+tcp://HOST:PORT, or --benchmark", err=True)
        raise typer.Exit(2)
    if not benchmark and not user:
        typer.echo("pithead miner: -u ADDRESS.worker is required when mining on a pool", err=True)
        raise typer.Exit(2)
    try:
        pools = tuple(parse_url(u) for u in (url or []))
        chosen = core.check_path(path) if path is not None else core.active_path()
        suggested = parse_suggest(suggest_diff, threads, chosen)
        kind = ChannelKind(sv2_channel.strip().lower())
    except (InvalidPoolUrl, core.HashPathUnavailable, ValueError) as exc:
        typer.echo(f"pithead miner: {exc}", err=True)
        raise typer.Exit(2) from exc
    options = MinerOptions(
        pools=pools,
        username=user,
        password=password,
        threads=threads,
        path=path,
        suggest_difficulty=suggested,
        version_rolling=not no_version_rolling,
        benchmark=benchmark,
        benchmark_difficulty=bench_diff,
        sv2_channel=kind,
        nominal_hash_rate=nominal_hash_rate(suggested),
    )
    try:
        m = Miner(options)
    except ValueError as exc:  # V1 and V2 pools mixed
        typer.echo(f"pithead miner: {exc}", err=True)
        raise typer.Exit(2) from exc
    live = sys.stdout.isatty()
    target = "benchmark" if benchmark else ", ".join(str(p) for p in pools)
    typer.echo(f"pithead miner: {threads} thread(s), {path_summary() if path is None else 'hashing path ' + path}; {target}")

    async def main(stop: asyncio.Event) -> None:
        try:
            await _main(m, duration, live, stop)
        except PoolRefused as exc:  # no pool proved it holds its key: say so once, and stop
            raise StartError(f"refusing every pool: {exc}") from exc
        except AuthorizationRefused as exc:  # the same refusal again: retrying cannot help
            raise StartError(f"every pool refused user {user!r} for good ({exc}); check -u: it must be "
                             "ADDRESS.worker with an address of the pool's network") from exc

    run_command("pithead miner", main, quiet_stop=True)
    st = m.status
    total = m.engine.total_hashes
    elapsed = max(1e-9, time.monotonic() - st.started)
    typer.echo(
        f"pithead miner: done; {total} hashes, {format_rate(total / elapsed)} average, "
        f"accepted {st.accepted}, rejected {st.rejected}, found {st.found}"
    )

"""The `pithead` command: `pithead up|serve|node|pool|proxy|miner|farm|ledger|notify|keys|config|bench|version`.

Every command lives in `pithead.cli`: each area's Typer app in its own module (`pithead.cli.pool`, ...),
mounted here, and `up` and `serve` (the two profiles of `pithead.app`) defined here. All are imported at the
top: a broken module fails the command loudly, with its traceback, instead of hiding an area.
"""

from __future__ import annotations

import os
import sys

import typer

from pithead import __version__
from pithead.app.demo import run_up
from pithead.app.production import run_serve
from pithead.cli import bench, config, farm, keys, ledger, miner, node, notify, pool, proxy

app = typer.Typer(
    name="pithead",
    help="A Bitcoin mining operation in one package: node, pool, miner, ledger, farm, dashboard.",
    no_args_is_help=True,
    add_completion=False,
)

# (command name, the area's Typer app, help)
_AREAS: list[tuple[str, typer.Typer, str]] = [
    ("node", node.app, "The embedded regtest node (Bitcoin Core's JSON-RPC dialect)."),
    ("pool", pool.app, "The Stratum V1 pool server."),
    ("proxy", proxy.app, "The farm proxy: machines to upstream pools, with failover."),
    ("miner", miner.app, "The reference miner (Stratum client, native hashing core)."),
    ("farm", farm.app, "The fleet manager and the simulated fleet."),
    ("ledger", ledger.app, "The pool's ledger: shares, blocks, balances, payouts."),
    ("notify", notify.app, r"Notifications to an operator's phone: test the \[notify] routes."),
    ("keys", keys.app, "The Stratum V2 pool's authority key: make one, show its public key."),
    ("config", config.app, "The configuration file: a complete example, and a check."),
    ("bench", bench.app, "Benchmarks that print figures."),
]
_mounted = False


def _mount() -> None:
    global _mounted
    if _mounted:  # tests call it before each CliRunner; mounting twice would duplicate the commands
        return
    _mounted = True
    for name, sub, help_text in _AREAS:
        if isinstance(sub, typer.Typer):
            callback = sub.registered_callback.callback if sub.registered_callback else None
            if callback is not None and not sub.registered_commands and not sub.registered_groups:
                # An area that is one command (node, pool, miner): mount it as a command, so its usage
                # reads `pithead node [OPTIONS]` rather than promising a `COMMAND [ARGS]...` it has none of.
                app.command(name=name, help=help_text)(callback)
            else:
                app.add_typer(sub, name=name, help=help_text)


@app.command()
def up(
    data_dir: str = typer.Option("pithead-data", "--data-dir", "-d", help="Where chain, ledger and logs live."),
    config: str | None = typer.Option(None, "--config", "-c", help="TOML config file."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds (demos, tests)."),
) -> None:
    """Start the whole operation: demo-chain node, pool, miners, simulated fleet and dashboard."""
    run_up(data_dir=data_dir, config_path=config, duration=duration)


@app.command()
def serve(
    config: str = typer.Option(..., "--config", "-c", help="TOML config: \\[pool] nodes and pool_address, "
                               "\\[ledger], \\[web], \\[farm]."),
    data_dir: str | None = typer.Option(None, "--data-dir", "-d", help="Where the ledger lives (default: the "
                                        "config's data_dir)."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds (tests)."),
    no_pool: bool = typer.Option(False, "--no-pool", help="No Stratum pool here: only the ledger (on a redis:// "
                                 "\\[ledger] share_bus fed by `pithead pool --share-bus` front-ends), payouts and "
                                 "the web."),
) -> None:
    r"""Run the operation for real against your Bitcoin node(s): pool, ledger and dashboard (payouts off
    unless \[ledger] payouts = "wallet"; the farm when \[farm] scan is set)."""
    run_serve(config_path=config, data_dir=data_dir, duration=duration, no_pool=no_pool)


@app.command()
def version() -> None:
    """Print pithead's version."""
    typer.echo(__version__)


#: Exit status after Ctrl-C (128 + SIGINT), the Unix convention; Typer uses it for commands too.
SIGINT_EXIT = 130


def _stdout_to_devnull() -> None:
    """After a broken pipe, point stdout's descriptor at /dev/null, so the interpreter's final flush of
    whatever is still buffered cannot fail again (and print "Exception ignored ... BrokenPipeError")."""
    stream = sys.__stdout__
    try:
        fd = stream.fileno() if stream is not None else 1
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):  # no usable stdout at all: nothing left that could be flushed
        pass


def _fd1_identity() -> tuple[int, int] | None:
    try:
        st = os.fstat(1)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _devnull_identity() -> tuple[int, int] | None:
    try:
        st = os.stat(os.devnull)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def main() -> None:
    """The console entry point, for every command: a reader that goes away (`pithead ledger blocks | head`)
    ends the command quietly with status 0, as for standard Unix filters, and Ctrl-C ends it with status
    130 and no traceback. (SIGPIPE itself stays ignored, as Python sets it: a server writing to a closed
    socket must get an error, not be killed.)"""
    out, fd1 = sys.stdout, _fd1_identity()
    try:
        _mount()
        app()  # standalone mode: always ends in SystemExit
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    except BrokenPipeError:  # raised outside the command itself (Click handles it inside)
        _stdout_to_devnull()
        sys.exit(0)
    except KeyboardInterrupt:  # outside the command (e.g. while mounting); Typer maps it to 130 inside
        sys.exit(SIGINT_EXIT)
    # A broken pipe inside a command ends it with status 1, hushed: Click/Typer swap sys.stdout for a
    # wrapper (the only case where they replace it); Rich's Console points descriptor 1 at /dev/null.
    devnull = _devnull_identity()
    broken = code == 1 and (sys.stdout is not out or (fd1 != devnull and _fd1_identity() == devnull))
    try:
        sys.stdout.flush()  # what is still buffered: the pipe may break only now
    except BrokenPipeError:
        broken = True
    if broken:
        _stdout_to_devnull()
        code = 0
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()

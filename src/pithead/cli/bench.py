"""`pithead bench NAME [ARGS]`: run the benchmark module `pithead.bench.NAME` and print its figures.

Each benchmark is a module in this package with `main(argv: list[str]) -> None`, owned by its area
(chain, hash, stratum, farm, ...); a new module becomes a subcommand with no edit here (a module named
`_...` is a benchmark's helper, such as its child processes, not a subcommand). Benchmarks print
figures; they never assert timings.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import pithead.bench

app = typer.Typer(no_args_is_help=True)


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pithead.bench.__path__) if not m.name.startswith("_"))


def _register(name: str) -> None:
    @app.command(
        name=name,
        help=f"Benchmark: {name} (see pithead.bench.{name}; extra arguments go to it).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )
    def _cmd(ctx: typer.Context) -> None:
        # start-up: a benchmark module is imported only when it runs (each imports the area it measures)
        importlib.import_module(f"pithead.bench.{name}").main(list(ctx.args))


for _name in available():
    _register(_name)

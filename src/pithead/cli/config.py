"""`pithead config`: the configuration file.

    pithead config example          a complete, commented config (`> pithead.toml`, then edit)
    pithead config check FILE       read and check FILE as `up`, `serve` and `pool` would; nothing starts

What it is not: an editor, and it asks no node anything (a node's chain or a wallet's address are checked
when `pithead serve` starts).
"""

from __future__ import annotations

import typer

from pithead import config as config_mod

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def example() -> None:
    """Print a complete, commented config: every section and key, with its default or a safe example."""
    typer.echo(config_mod.example(), nl=False)


@app.command()
def check(path: str = typer.Argument(..., help="The TOML config to check.")) -> None:
    """Check a config file: every key known, every value of its type and range; status 2 if not."""
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        typer.echo(f"pithead config: {exc}", err=True)
        raise typer.Exit(2) from exc
    nodes = ", ".join(n.url for n in cfg.pool.nodes)
    typer.echo(f"{path}: ok ({cfg.pool.mode} mode on {cfg.pool.network}, nodes {nodes}, ledger "
               f"{cfg.ledger.scheme}, payouts {cfg.ledger.payouts})")

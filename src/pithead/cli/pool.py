"""`pithead pool`: run the Stratum pool server (V1, and V2 beside it on its own port).

    pithead pool --bind 127.0.0.1 --port 3333 --mode solo|pool --pool-address ADDR --node URL --config FILE
                 --workers N   (N processes share the port, one per core with 0; see workers.py)
                 --sv2-port 3336 --sv2-authority-secret-key-file KEY   (Stratum V2 too; one process)
                 --share-bus redis://HOST:PORT/DB?stream=NAME   (publish shares and blocks to that Redis
                 stream, for the ledger of a `pithead serve` elsewhere; default `[ledger] share_bus`)

Flags are the config's keys spelled with dashes and override them (`--pool-address` is `[pool]
pool_address`); they are checked like the file, so a bad flag names its key. `--node` may be repeated
(blocks are submitted to every node at once). Defaults are safe: 127.0.0.1:3333, regtest, solo mode.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from pithead.app.lifecycle import EXIT_CONFIG, run_command
from pithead.app.pool import serve
from pithead.config import ConfigError, load

app = typer.Typer(invoke_without_command=True, add_completion=False)


@app.callback()
def pool(
    bind: str | None = typer.Option(None, "--bind", help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="TCP port (default 3333)."),
    mode: str | None = typer.Option(None, "--mode", help="solo (coinbase pays each worker) or pool."),
    pool_address: str | None = typer.Option(None, "--pool-address", "--address",
                                            help="Pool payout address (pool mode)."),
    node: list[str] = typer.Option([], "--node", help="Node RPC URL (repeatable), e.g. http://127.0.0.1:18443: "
                                   "[[pool.nodes]] url."),
    cookie_file: str | None = typer.Option(None, "--cookie-file", "--cookie", help="RPC cookie file for --node."),
    rpc_user: str | None = typer.Option(None, "--rpc-user"),
    rpc_password: str | None = typer.Option(None, "--rpc-password"),
    network: str | None = typer.Option(None, "--network", "--chain",
                                       help="main, test, testnet4, signet or regtest (default): Core's chain names."),
    workers: int | None = typer.Option(
        None, "--workers", help="Pool processes sharing the port (SO_REUSEPORT); 0 = one per CPU core (default 1)."),
    share_bus: str | None = typer.Option(
        None, "--share-bus", help="Publish shares and blocks to this Redis stream, "
        "redis://HOST:PORT/DB?stream=NAME, for a `pithead serve` ledger to credit (default: [ledger] share_bus "
        "when it is a redis:// URL; otherwise pool mode records no share)."),
    front_end: str | None = typer.Option(
        None, "--front-end", help="I/N: this is front-end I of N on one share bus; each gets its own "
        "extranonce1 range, so no share can be credited twice (default 0/1)."),
    sv2_port: int | None = typer.Option(
        None, "--sv2-port", help="Also serve Stratum V2 on this port (0: any free port; default off)."),
    sv2_authority_secret_key_file: str | None = typer.Option(
        None, "--sv2-authority-secret-key-file", help="The SV2 authority key (`pithead keys new --out FILE`)."),
    config: str | None = typer.Option(None, "--config", "-c", help="TOML config file."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the Stratum pool server (V1; V2 too with --sv2-port)."""
    nodes = [{"url": u, "cookie_file": cookie_file, "rpc_user": rpc_user, "rpc_password": rpc_password}
             for u in node] or None
    try:
        full = load(config, overrides={
            "pool": {"bind": bind, "port": port, "mode": mode, "pool_address": pool_address, "network": network,
                     "workers": workers, "front_end": front_end, "nodes": nodes, "sv2_port": sv2_port,
                     "sv2_authority_secret_key_file": sv2_authority_secret_key_file},
            "ledger": {"share_bus": share_bus},
        })
    except ConfigError as exc:
        typer.echo(f"pithead pool: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    # "memory", the one-process default, reaches no ledger from a standalone pool: no bus at all here.
    bus = None if full.ledger.share_bus == "memory" else full.ledger.share_bus

    async def main(stop: asyncio.Event) -> None:
        # The start banner is printed, not only logged: normal lifecycle logs at INFO, below the
        # default level, and an operator needs to see where the pool listens.
        await serve(full.pool, on_listening=typer.echo, share_bus=bus, stop=stop)

    run_command("pithead pool", main, log_level=logging.INFO if verbose else logging.WARNING, quiet_stop=True)

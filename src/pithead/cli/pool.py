"""`pithead pool`: run the Stratum V1 pool server.

    pithead pool --bind 127.0.0.1 --port 3333 --mode solo|pool --address ADDR --node URL --config FILE
                 --workers N   (N processes share the port, one per core with 0; see workers.py)
                 --share-bus redis://HOST:PORT/DB?stream=NAME   (publish shares and blocks to that Redis
                 stream, for the ledger of a `pithead serve` elsewhere; default `[ledger] share_bus`)

Flags override the `[pool]` section of the config file; `--node` may be repeated (blocks are submitted to
every node at once). Defaults are safe: 127.0.0.1:3333, regtest, solo mode.
"""

from __future__ import annotations

import dataclasses
import logging

import typer

from pithead.config import ConfigError, UpstreamNode, load

app = typer.Typer(invoke_without_command=True, add_completion=False)


@app.callback()
def pool(
    bind: str | None = typer.Option(None, "--bind", help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="TCP port (default 3333)."),
    mode: str | None = typer.Option(None, "--mode", help="solo (coinbase pays each worker) or pool."),
    address: str | None = typer.Option(None, "--address", help="Pool payout address (pool mode)."),
    node: list[str] = typer.Option([], "--node", help="Node RPC URL (repeatable), e.g. http://127.0.0.1:18443."),
    cookie: str | None = typer.Option(None, "--cookie", help="RPC cookie file for --node."),
    rpc_user: str | None = typer.Option(None, "--rpc-user"),
    rpc_password: str | None = typer.Option(None, "--rpc-password"),
    network: str | None = typer.Option(None, "--network", help="regtest (default), testnet, signet, main."),
    workers: int | None = typer.Option(
        None, "--workers", help="Pool processes sharing the port (SO_REUSEPORT); 0 = one per CPU core (default 1)."),
    share_bus: str | None = typer.Option(
        None, "--share-bus", help="Publish shares and blocks to this Redis stream, "
        "redis://HOST:PORT/DB?stream=NAME, for a `pithead serve` ledger to credit (default: [ledger] share_bus "
        "when it is a redis:// URL; otherwise pool mode records no share)."),
    front_end: str | None = typer.Option(
        None, "--front-end", help="I/N: this is front-end I of N on one share bus; each gets its own "
        "extranonce1 range, so no share can be credited twice (default 0/1)."),
    config: str | None = typer.Option(None, "--config", "-c", help="TOML config file."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the Stratum V1 pool server."""
    from pithead.app.pool import PoolStartError, serve
    from pithead.stratum.server.build import PoolConfigError
    from pithead.stratum.server.loop import run

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        full = load(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    cfg = full.pool
    # The flag, else the config's bus; "memory" in the config is the one-process default, no bus at all here.
    bus = share_bus if share_bus is not None else (None if full.ledger.share_bus == "memory" else full.ledger.share_bus)
    changes: dict[str, object] = {
        k: v for k, v in (("bind", bind), ("port", port), ("mode", mode), ("pool_address", address),
                          ("network", network), ("workers", workers),
                          ("front_end", front_end)) if v is not None
    }
    if node:
        changes["nodes"] = tuple(UpstreamNode(url=u, cookie_file=cookie, rpc_user=rpc_user,
                                              rpc_password=rpc_password) for u in node)
    cfg = dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
    try:
        # The start banner is printed, not only logged: normal lifecycle logs at INFO, below the
        # default level, and an operator needs to see where the pool listens.
        run(serve(cfg, on_listening=typer.echo, share_bus=bus))
    except (PoolConfigError, PoolStartError) as exc:
        typer.echo(f"pithead pool: {exc}", err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:  # pragma: no cover
        pass

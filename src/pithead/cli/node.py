"""`pithead node`: run the embedded regtest/demo node until Ctrl-C, SIGTERM or the `stop` RPC.

    pithead node --data-dir D --chain regtest|demo --tx-rate R --rpc-port P \
        [--rpc-bind 127.0.0.1] [--rpc-user U --rpc-password P] \
        [--zmq-pub-hashblock tcp://127.0.0.1:28332] [--zmq-pub-rawblock ...] [--demo-block-interval S] \
        [--config pithead.toml]

Flags are the `[node]` keys of the config spelled with dashes and override them; bitcoind's own spellings
(`--datadir`, `--rpcport`, `--rpcbind`, `--rpcuser`, `--rpcpassword`, `--zmqpubhashblock`, ...) are accepted
too, for people coming from Core. Without a password a cookie is written to `<datadir>/<chain>/.cookie`, as
bitcoind does.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from pithead.app.lifecycle import EXIT_CONFIG, StartError, run_command
from pithead.config import ConfigError, load
from pithead.node.node import EmbeddedNode, EmbeddedNodeError

app = typer.Typer(help="The embedded regtest node (Bitcoin Core's JSON-RPC dialect).", add_completion=False)


async def _run(node: EmbeddedNode, stop: asyncio.Event) -> None:
    try:
        await node.start()
    except EmbeddedNodeError as exc:
        raise StartError(str(exc)) from exc
    try:
        auth = f"cookie {node.cookie_path}" if node.cookie else f"user {node.rpc_user}"
        typer.echo(f"pithead node ({node.chain_name}) height {node.chain.height if node.chain else 0}: "
                   f"RPC {node.rpc_url} ({auth})")
        for topic, endpoint in node.zmq_endpoints.items():
            typer.echo(f"  zmqpub{topic} {endpoint}")
        signalled = asyncio.ensure_future(stop.wait())
        by_rpc = asyncio.ensure_future(node.wait_stopped())  # the `stop` RPC
        await asyncio.wait({signalled, by_rpc}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        by_rpc.cancel()
    finally:
        await node.stop()


@app.callback(invoke_without_command=True)
def node(
    data_dir: str = typer.Option("pithead-node", "--data-dir", "--datadir",
                                 help="Data directory (the chain lives in <data-dir>/<chain>/)."),
    chain: str | None = typer.Option(None, "--chain",
                                     help="regtest (fixed difficulty), demo (retargets to --demo-block-interval) "
                                          "or signet (a custom signet, challenge 51: OP_TRUE)."),
    signet_challenge: str | None = typer.Option(None, "--signet-challenge", "--signetchallenge",
                                                help="signet: the challenge, hex (only 51, OP_TRUE)."),
    tx_rate: float | None = typer.Option(None, "--tx-rate", help="Generated transactions per second (0: none)."),
    rpc_port: int | None = typer.Option(None, "--rpc-port", "--rpcport", help="JSON-RPC port (0: any free port)."),
    rpc_bind: str | None = typer.Option(None, "--rpc-bind", "--rpcbind", help="JSON-RPC address."),
    rpc_user: str | None = typer.Option(None, "--rpc-user", "--rpcuser"),
    rpc_password: str | None = typer.Option(None, "--rpc-password", "--rpcpassword"),
    zmq_pub_hashblock: str | None = typer.Option(None, "--zmq-pub-hashblock", "--zmqpubhashblock",
                                                 help="e.g. tcp://127.0.0.1:28332"),
    zmq_pub_rawblock: str | None = typer.Option(None, "--zmq-pub-rawblock", "--zmqpubrawblock"),
    zmq_pub_hashtx: str | None = typer.Option(None, "--zmq-pub-hashtx", "--zmqpubhashtx"),
    zmq_pub_rawtx: str | None = typer.Option(None, "--zmq-pub-rawtx", "--zmqpubrawtx"),
    demo_block_interval: float | None = typer.Option(None, "--demo-block-interval", "--block-interval",
                                                     help="demo chain: seconds per block to aim for."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", help="Blocks to premine on a fresh chain for the "
                                         "transaction generator (default 110 when --tx-rate > 0)."),
    config: str | None = typer.Option(None, "--config", "-c", help="TOML config file (its [node] section)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the embedded node."""
    try:
        cfg = load(config, overrides={"node": {
            "chain": chain, "tx_rate": tx_rate, "rpc_port": rpc_port, "rpc_bind": rpc_bind, "rpc_user": rpc_user,
            "rpc_password": rpc_password, "zmq_pub_hashblock": zmq_pub_hashblock,
            "zmq_pub_rawblock": zmq_pub_rawblock, "zmq_pub_hashtx": zmq_pub_hashtx, "zmq_pub_rawtx": zmq_pub_rawtx,
            "demo_block_interval": demo_block_interval, "signet_challenge": signet_challenge}}).node
    except ConfigError as exc:
        typer.echo(f"pithead node: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    try:
        n = EmbeddedNode.from_config(cfg, data_dir, zmq_pubhashtx=cfg.zmq_pub_hashtx, zmq_pubrawtx=cfg.zmq_pub_rawtx,
                                     bootstrap_blocks=bootstrap)
    except EmbeddedNodeError as exc:
        typer.echo(f"pithead node: {exc}", err=True)
        raise typer.Exit(1) from exc

    async def main(stop: asyncio.Event) -> None:
        await _run(n, stop)

    run_command("pithead node", main, log_level=logging.DEBUG if verbose else logging.INFO, quiet_stop=True)

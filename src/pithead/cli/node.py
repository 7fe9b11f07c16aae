"""`pithead node`: run the embedded regtest/demo node until Ctrl-C or the `stop` RPC.

    pithead node --datadir D --chain regtest|demo --tx-rate R --rpcport P \
        [--rpcbind 127.0.0.1] [--rpcuser U --rpcpassword P] \
        [--zmqpubhashblock tcp://127.0.0.1:28332] [--zmqpubrawblock ...] [--block-interval S]

Option names follow bitcoind's where there is one. Without --rpcpassword a cookie is written to
`<datadir>/<chain>/.cookie`, as bitcoind does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import typer

from pithead.node.node import EmbeddedNode, EmbeddedNodeError

app = typer.Typer(help="The embedded regtest node (Bitcoin Core's JSON-RPC dialect).", add_completion=False)


async def _run(node: EmbeddedNode) -> None:
    await node.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, node.request_stop)
    auth = f"cookie {node.cookie_path}" if node.cookie else f"user {node.rpc_user}"
    typer.echo(
        f"pithead node ({node.chain_name}) height {node.chain.height if node.chain else 0}: "
        f"RPC {node.rpc_url} ({auth})"
    )
    for topic, endpoint in node.zmq_endpoints.items():
        typer.echo(f"  zmqpub{topic} {endpoint}")
    await node.wait_stopped()
    await node.stop()


@app.callback(invoke_without_command=True)
def node(
    datadir: str = typer.Option(
        "pithead-node", "--datadir", help="Data directory (the chain lives in <datadir>/<chain>/)."
    ),
    chain: str = typer.Option(
        "regtest", "--chain", help="regtest (fixed difficulty) or demo (retargets to --block-interval)."
    ),
    tx_rate: float = typer.Option(0.0, "--tx-rate", help="Generated transactions per second (0: none)."),
    rpcport: int = typer.Option(18443, "--rpcport", help="JSON-RPC port (0: any free port)."),
    rpcbind: str = typer.Option("127.0.0.1", "--rpcbind", help="JSON-RPC address."),
    rpcuser: str | None = typer.Option(None, "--rpcuser"),
    rpcpassword: str | None = typer.Option(None, "--rpcpassword"),
    zmqpubhashblock: str | None = typer.Option(None, "--zmqpubhashblock", help="e.g. tcp://127.0.0.1:28332"),
    zmqpubrawblock: str | None = typer.Option(None, "--zmqpubrawblock"),
    zmqpubhashtx: str | None = typer.Option(None, "--zmqpubhashtx"),
    zmqpubrawtx: str | None = typer.Option(None, "--zmqpubrawtx"),
    block_interval: float = typer.Option(
        30.0, "--block-interval", help="demo chain: seconds per block to aim for."
    ),
    bootstrap: int | None = typer.Option(
        None,
        "--bootstrap",
        help="Blocks to premine on a fresh chain for the "
        "transaction generator (default 110 when --tx-rate > 0).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the embedded node."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        n = EmbeddedNode(
            datadir,
            chain=chain,
            rpc_bind=rpcbind,
            rpc_port=rpcport,
            rpc_user=rpcuser,
            rpc_password=rpcpassword,
            zmq_pubhashblock=zmqpubhashblock,
            zmq_pubrawblock=zmqpubrawblock,
            zmq_pubhashtx=zmqpubhashtx,
            zmq_pubrawtx=zmqpubrawtx,
            tx_rate=tx_rate,
            block_interval=block_interval,
            bootstrap_blocks=bootstrap,
        )
        asyncio.run(_run(n))
    except EmbeddedNodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

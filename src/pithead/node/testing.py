"""Helpers for tests that drive a node purely through RPC, as a real client would.

- `mine_blocks(client, n)`: `generatetoaddress` to a fresh node address (regtest's nBits 0x207fffff makes
  this take milliseconds per block on pithead's node and on Bitcoin Core);
- `block_from_template(gbt, script)`: a solved block built the way a pool builds one from a
  getblocktemplate result (parse_gbt → build_coinbase with the witness commitment → merkle root → nonce
  search), to submit with `submitblock`.
Not for production mining: the nonce search is pure Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.block import Block
from pithead.chain.coinbase import build_coinbase
from pithead.chain.compact import bits_to_target
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import merkle_root
from pithead.chain.tx import Transaction, TxOut
from pithead.chain.witness import witness_commitment
from pithead.node.node import EmbeddedNode
from pithead.template.block_template import parse_gbt

MAX_NONCE_TRIES = 1 << 20  # at regtest difficulty ~2 tries are needed; this is a runaway guard


async def mine_blocks(client: RpcClient, n: int, address: str | None = None) -> list[str]:
    if address is None:
        address = await client.call("getnewaddress")
    hashes = await client.call("generatetoaddress", n, address)
    assert isinstance(hashes, list)
    return hashes


def block_from_template(
    gbt: dict[str, Any],
    script_pubkey: bytes,
    *,
    extra_txs: Sequence[Transaction] = (),
    commitment: bytes | str | None = "auto",
    extranonce: bytes = b"\x00" * 8,
    time: int | None = None,
    solve: bool = True,
) -> Block:
    """A block from a GBT result: coinbase paying `coinbasevalue` to `script_pubkey`, the template's
    transactions then `extra_txs`. `commitment` "auto" commits to the transactions' wtxids (BIP141); None
    leaves the commitment out; 32 bytes put in that commitment instead (for negative tests)."""
    tpl = parse_gbt(gbt)
    txs_after = [*(Transaction.parse(t.data) for t in tpl.transactions), *extra_txs]
    if commitment == "auto":
        value: bytes | None = witness_commitment([t.wtxid() for t in txs_after])
    else:
        value = commitment if isinstance(commitment, bytes) else None
    parts = build_coinbase(
        height=tpl.height,
        outputs=[TxOut(tpl.coinbase_value, script_pubkey)],
        extranonce1_size=4,
        extranonce2_size=4,
        witness_commitment=value,
        aux_flags=tpl.coinbase_aux_flags,
    )
    coinbase = parts.transaction(extranonce[:4], extranonce[4:8])
    txs = (coinbase, *txs_after)
    header = BlockHeader(
        tpl.version,
        tpl.prev_hash,
        merkle_root([t.txid() for t in txs]),
        time if time is not None else tpl.curtime,
        tpl.bits,
        0,
    )
    block = Block(header, txs)
    return solve_block(block) if solve else block


def solve_block(block: Block, start_nonce: int = 0) -> Block:
    target = bits_to_target(block.header.bits)
    for nonce in range(start_nonce, start_nonce + MAX_NONCE_TRIES):
        header = replace(block.header, nonce=nonce & 0xFFFFFFFF)
        if header.meets_target(target):
            return Block(header, block.txs)
    raise RuntimeError("no nonce found (is the target really regtest's?)")


def break_pow(block: Block) -> Block:
    """The same block with a nonce whose hash misses the target (for "high-hash" tests)."""
    target = bits_to_target(block.header.bits)
    for nonce in range(1 << 20):
        header = replace(block.header, nonce=nonce)
        if not header.meets_target(target):
            return Block(header, block.txs)
    raise RuntimeError("every nonce meets this target")


@asynccontextmanager
async def running_node(datadir: str | Path, **options: Any) -> AsyncIterator[tuple[EmbeddedNode, RpcClient]]:
    """An EmbeddedNode on an ephemeral port (ZMQ hashblock+rawblock too, unless given) and a client
    authenticated with its cookie; both closed on exit."""
    options.setdefault("rpc_port", 0)
    options.setdefault("zmq_pubhashblock", "tcp://127.0.0.1:0")
    options.setdefault("zmq_pubrawblock", options["zmq_pubhashblock"])
    node = EmbeddedNode(datadir, **options)
    await node.start()
    client = RpcClient(
        node.rpc_url,
        cookie_file=node.cookie_path if node.cookie else None,
        user=None if node.cookie else node.rpc_user,
        password=None if node.cookie else node.rpc_password,
        timeout=30.0,
        name="embedded",
    )
    try:
        yield node, client
    finally:
        await client.close()
        await node.stop()

"""`NodeContext`: what the RPC methods may use of the node, as a Protocol that `EmbeddedNode` satisfies.

Bitcoin Core's RPC methods reach the node through the NodeContext handed to them with each request
(node/context.h, rpc/server_util.cpp), never through the code that starts the node. This is that seam:
the method modules (blockchain.py, mining.py, ...) type-check against this interface, so they need not
import `pithead.node.node`, which imports them to serve them (the two were a module cycle, once hidden
by an import inside a function). mypy checks that `EmbeddedNode` fits where node.py hands itself to the
dispatcher. `ensure_chain`/`ensure_wallet` are Core's EnsureChainman/EnsureWallet: the node opens both in
`start()` before it serves a request, so a method never meets them missing. `RpcServerInfo` is Core's
g_rpc_server_info: the calls in progress, which the dispatcher records and `getrpcinfo` reports.

Not here: the dispatcher (server.py), argument checks (util.py), the methods themselves.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from pithead.chain.block import Block
from pithead.chain.params import Network
from pithead.chain.tx import Transaction
from pithead.node.chainstate import AcceptResult, ChainState
from pithead.node.mempool import Mempool, MempoolEntry
from pithead.node.wallet import NodeWallet


class RpcServerInfo:
    """The RPC calls in progress, each with when it started (Core's RPCServerInfo/RPCCommandExecution)."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._active: dict[int, tuple[str, float]] = {}

    @contextmanager
    def running(self, method: str) -> Iterator[None]:
        """Record `method` as in progress for the duration of the block."""
        key = next(self._ids)
        self._active[key] = (method, time.monotonic())
        try:
            yield
        finally:
            del self._active[key]

    def active(self) -> list[tuple[str, int]]:
        """(method, microseconds running) of every call in progress, oldest first."""
        now = time.monotonic()
        return [(method, int((now - start) * 1_000_000)) for method, start in self._active.values()]


class NodeContext(Protocol):
    """The node as its RPC methods see it (read-only attributes, and the state changes they may ask)."""

    @property
    def network(self) -> Network: ...

    @property
    def chain(self) -> ChainState | None: ...

    @property
    def mempool(self) -> Mempool: ...

    @property
    def wallet(self) -> NodeWallet | None: ...

    @property
    def wallet_name(self) -> str:
        """The name of the node's one wallet, as `/wallet/NAME` URIs and `listwallets` give it."""
        ...

    @property
    def rpc_info(self) -> RpcServerInfo: ...

    @property
    def log_path(self) -> str:
        """Where the node's log would be (Core's debug.log path, which `getrpcinfo` reports)."""
        ...

    @property
    def zmq_endpoints(self) -> dict[str, str]:
        """Bound ZMQ publishers, topic (hashblock, rawblock, hashtx, rawtx) → address."""
        ...

    def now(self) -> int:
        """The node's clock, in whole seconds (block times, template times)."""
        ...

    def warming_up(self) -> bool:
        """Whether requests are still answered -28 (Core's RPC warm-up)."""
        ...

    def uptime(self) -> int: ...

    def request_stop(self) -> None:
        """Stop soon, after the answer to the current request is written."""
        ...

    def submit_block(self, block: Block) -> AcceptResult: ...

    def precious_block(self, block_hash: bytes) -> None:
        """Prefer a block over the others of its work, and switch to it if it has the tip's work."""
        ...

    def accept_transaction(self, tx: Transaction) -> MempoolEntry:
        """Into the mempool (raises `MempoolReject`), recorded by the wallet when it concerns it."""
        ...

    def mine(self, script_pubkey: bytes, n: int, max_tries: int) -> list[bytes]:
        """Mine `n` blocks of mempool transactions paying `script_pubkey`; the hashes of those found."""
        ...

    def fee_of(self, tx: Transaction) -> int: ...

    async def wait_for_change(self, longpollid: str) -> None:
        """Hold a getblocktemplate long-poll until the template it saw is out of date."""
        ...


def ensure_chain(node: NodeContext) -> ChainState:
    """The node's chain state (Core's EnsureChainman)."""
    chain = node.chain
    assert chain is not None, "the node serves RPC only once its chain state is open"
    return chain


def ensure_wallet(node: NodeContext) -> NodeWallet:
    """The node's wallet (Core's EnsureWalletContext/GetWalletForJSONRPCRequest)."""
    wallet = node.wallet
    assert wallet is not None, "the node serves RPC only once its wallet is open"
    return wallet

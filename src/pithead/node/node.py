"""`EmbeddedNode`: pithead's regtest (demo, or OP_TRUE signet) node as an asyncio service, in-process or as
`pithead node`.

It ties together the chain state (SQLite), mempool, wallet, transaction generator, Bitcoin Core-style
JSON-RPC server and ZMQ publishers. Start it inside any asyncio program:

    async with EmbeddedNode(datadir, rpc_port=0, zmq_pubhashblock="tcp://127.0.0.1:0") as node:
        node.rpc_url, node.cookie  # -> "http://127.0.0.1:PORT", ("__cookie__", "…")

Data lives in `<datadir>/<chain>/` (like Core's `<datadir>/regtest/`): `chainstate.sqlite3` and, unless an
rpc password is given, `.cookie` (`__cookie__:<hex>`, mode 0600, deleted on stop). Everything runs on the
event loop thread; the SQLite work per block is small, and generate* RPCs mine at regtest difficulty.

This is a mining node, not a full validator (see consensus.py for what is and is not checked), it has no
peers, and the `demo` chain is pithead's own retargeting variant of regtest (retarget.py). The `signet`
chain is a custom signet with the OP_TRUE challenge `51` (signet's genesis, proof-of-work limit, retarget
and addresses; BIP325's block solution checked as signet.py says): real signet difficulty, so its blocks
are mined by a real miner (the pool and `pithead miner`), not by the generate* RPCs' Python loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.block import Block
from pithead.chain.params import REGTEST, SIGNET, Network
from pithead.chain.tx import Transaction
from pithead.node.assembler import select_for_block
from pithead.node.chainstate import CHAIN_KINDS, AcceptResult, ChainState
from pithead.node.mempool import Mempool, MempoolEntry
from pithead.node.mining import assemble_block, longpoll_id, solve
from pithead.node.rpc.context import RpcServerInfo
from pithead.node.rpc.http import HttpRpcServer, basic_credentials
from pithead.node.rpc.server import RpcDispatcher
from pithead.node.signet import OP_TRUE_CHALLENGE, SUPPORTED_CHALLENGES
from pithead.node.txgen import make_transaction
from pithead.node.wallet import TXGEN_LABEL, NodeWallet
from pithead.node.zmqpub import ZmqPublisher
from pithead.template.sources.node import NodeSource

log = logging.getLogger(__name__)

COOKIE_USER = "__cookie__"  # Core's COOKIEAUTH_USER
LONGPOLL_MEMPOOL_S = 10.0  # a long-poll returns for mempool changes only after this long (Core: 60 s)
LONGPOLL_MAX_S = 300.0  # a long-poll answers with the current template after this long regardless
TXGEN_SCRIPTS_PER_KIND = 4  # generator outputs rotate over this many own scripts of each kind
BOOTSTRAP_MAX_TRIES = 1_000_000  # per bootstrap block; at the pow limit ~2 tries are needed
DEFAULT_WALLET_NAME = ""  # Core's default wallet name (the wallet in the wallets directory's root)


class EmbeddedNodeError(RuntimeError):
    """The node cannot start (port taken, data directory of another chain, bad settings)."""


class EmbeddedNode:
    def __init__(
        self,
        datadir: str | os.PathLike[str],
        *,
        chain: str = "regtest",
        rpc_bind: str = "127.0.0.1",
        rpc_port: int = REGTEST.default_rpc_port,
        rpc_user: str | None = None,
        rpc_password: str | None = None,
        zmq_pubhashblock: str | None = None,
        zmq_pubrawblock: str | None = None,
        zmq_pubhashtx: str | None = None,
        zmq_pubrawtx: str | None = None,
        tx_rate: float = 0.0,
        block_interval: float = 30.0,
        bootstrap_blocks: int | None = None,
        warmup_s: float = 0.0,
        longpoll_mempool_s: float = LONGPOLL_MEMPOOL_S,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        wallet_name: str = DEFAULT_WALLET_NAME,
        signet_challenge: str = OP_TRUE_CHALLENGE.hex(),
    ) -> None:
        if chain not in CHAIN_KINDS:
            raise EmbeddedNodeError(f"unknown chain {chain!r}: expected one of {', '.join(CHAIN_KINDS)}")
        try:
            challenge = bytes.fromhex(signet_challenge)
        except ValueError:
            raise EmbeddedNodeError(f"signet_challenge {signet_challenge!r} is not hex") from None
        if chain == "signet" and challenge not in SUPPORTED_CHALLENGES:
            raise EmbeddedNodeError(
                f"signet_challenge {signet_challenge}: the embedded node runs a signet only with the OP_TRUE "
                "challenge 51 (it checks no signatures); use Bitcoin Core for a signet that signs its blocks")
        if (rpc_user is None) != (rpc_password is None):
            raise EmbeddedNodeError("rpc_user and rpc_password go together")
        if tx_rate < 0 or block_interval <= 0:
            raise EmbeddedNodeError("tx_rate must be >= 0 and block_interval > 0")
        self.datadir = Path(datadir)
        self.chain_name = chain
        self.network: Network = SIGNET if chain == "signet" else REGTEST
        self.signet_challenge = challenge if chain == "signet" else None
        self.rpc_bind = rpc_bind
        self.rpc_port = rpc_port
        self.rpc_user = rpc_user
        self.rpc_password = rpc_password
        self.zmq_addresses = {
            t: a
            for t, a in (
                ("hashblock", zmq_pubhashblock),
                ("rawblock", zmq_pubrawblock),
                ("hashtx", zmq_pubhashtx),
                ("rawtx", zmq_pubrawtx),
            )
            if a
        }
        self.tx_rate = tx_rate
        self.block_interval = block_interval
        # The generator needs mature coins of its own: by default premine them on a fresh chain.
        self.bootstrap_blocks = (
            bootstrap_blocks if bootstrap_blocks is not None else (110 if tx_rate > 0 else 0)
        )
        self.warmup_s = warmup_s
        self.longpoll_mempool_s = longpoll_mempool_s
        self.clock = clock
        self.rng = random.Random(seed)
        self.chain: ChainState | None = None
        self.mempool = Mempool()
        self.wallet: NodeWallet | None = None
        self.wallet_name = wallet_name
        self.rpc_info = RpcServerInfo()
        self.zmq: ZmqPublisher | None = None
        self.cookie: tuple[str, str] | None = None
        self._server: HttpRpcServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._warm_until = 0.0
        self._started_at = 0.0
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._txgen_scripts: list[bytes] = []
        self.running = False

    @classmethod
    def from_config(cls, cfg: Any, datadir: str | os.PathLike[str], **overrides: Any) -> EmbeddedNode:
        """From a `pithead.config.NodeConfig` (chain, rpc_bind, rpc_port, rpc_user, rpc_password,
        zmq_pub_hashblock, zmq_pub_rawblock, tx_rate, demo_block_interval); keyword overrides win."""
        options: dict[str, Any] = {
            "chain": cfg.chain,
            "rpc_bind": cfg.rpc_bind,
            "rpc_port": cfg.rpc_port,
            "rpc_user": cfg.rpc_user,
            "rpc_password": cfg.rpc_password,
            "zmq_pubhashblock": cfg.zmq_pub_hashblock,
            "zmq_pubrawblock": cfg.zmq_pub_rawblock,
            "tx_rate": cfg.tx_rate,
            "block_interval": cfg.demo_block_interval,
            "signet_challenge": cfg.signet_challenge,
        }
        options.update(overrides)
        return cls(datadir, **options)

    # --- lifecycle ---

    @property
    def chain_dir(self) -> Path:
        return self.datadir / self.chain_name

    @property
    def cookie_path(self) -> Path:
        return self.chain_dir / ".cookie"

    @property
    def rpc_url(self) -> str:
        return f"http://{self.rpc_bind}:{self.rpc_port}"

    @property
    def auth(self) -> tuple[str, str]:
        """The (user, password) a client should use."""
        if self.rpc_user is not None and self.rpc_password is not None:
            return self.rpc_user, self.rpc_password
        assert self.cookie is not None
        return self.cookie

    @property
    def zmq_endpoints(self) -> dict[str, str]:
        return dict(self.zmq.endpoints) if self.zmq else {}

    @property
    def rpc_server(self) -> HttpRpcServer | None:
        """The RPC server while the node runs (its counters and connection figures are read by tests)."""
        return self._server

    @property
    def log_path(self) -> str:
        return str(self.chain_dir / "debug.log")

    def template_source(self, **options: Any) -> NodeSource:
        """A `pithead.template.sources.node.NodeSource` for this node, through its RPC (cookie or user/password)
        and its ZMQ hashblock publisher when it has one, exactly as for a Bitcoin Core node."""
        user, password = self.auth
        client = RpcClient(
            self.rpc_url,
            user=user,
            password=password,
            cookie_file=self.cookie_path if self.cookie else None,
            name=options.pop("name", "embedded"),
        )
        options.setdefault("zmq_hashblock", self.zmq_endpoints.get("hashblock"))
        return NodeSource(client, chain=self.chain_name, name=client.name, **options)

    def now(self) -> int:
        return int(self.clock())

    async def start(self) -> None:
        self.chain_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.chain = ChainState(
                self.chain_dir / "chainstate.sqlite3",
                self.network,
                kind=self.chain_name,
                demo_spacing=self.block_interval,
                **({"signet_challenge": self.signet_challenge} if self.signet_challenge is not None else {}),
            )
        except Exception as exc:
            raise EmbeddedNodeError(f"cannot open the chain in {self.chain_dir}: {exc}") from exc
        self.wallet = NodeWallet(self.chain.db, self.network)
        self._started_at = time.monotonic()
        self._warm_until = self._started_at + self.warmup_s
        if self.rpc_password is None:
            self.cookie = (COOKIE_USER, secrets.token_hex(32))
            fd = os.open(self.cookie_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{self.cookie[0]}:{self.cookie[1]}")
        self._rpc = RpcDispatcher(self)
        self._server = HttpRpcServer(self._rpc.handle, self._authorize, self.rpc_bind, self.rpc_port)
        try:
            self.rpc_port = await self._server.start()
        except OSError as exc:
            self.chain.close()
            self._remove_cookie()
            raise EmbeddedNodeError(f"cannot listen on {self.rpc_bind}:{self.rpc_port}: {exc}") from exc
        try:
            self.zmq = ZmqPublisher(self.zmq_addresses) if self.zmq_addresses else None
        except Exception as exc:
            await self._server.close()
            self.chain.close()
            self._remove_cookie()
            raise EmbeddedNodeError(f"cannot bind ZMQ publishers {self.zmq_addresses}: {exc}") from exc
        self.running = True
        if self.tx_rate > 0:
            self._prepare_txgen()
            self._tasks.append(asyncio.create_task(self._txgen_loop(), name="pithead-node-txgen"))
        log.info("node %s at %s (height %d)", self.chain_name, self.rpc_url, self.chain.height)

    def _prepare_txgen(self) -> None:
        assert self.wallet is not None and self.chain is not None
        for kind in ("segwit", "legacy"):
            for _ in range(TXGEN_SCRIPTS_PER_KIND):
                self._txgen_scripts.append(self.wallet.new_script(kind, TXGEN_LABEL))
        if self.chain.height == 0 and self.bootstrap_blocks > 0:
            self._bootstrap(self.bootstrap_blocks)

    def _bootstrap(self, n: int) -> None:
        """Premine `n` blocks to the generator's scripts, timestamped `block_interval` apart ending now, so
        the demo chain's retargeting sees the intended pace and stays at the easiest difficulty."""
        assert self.chain is not None
        spacing = max(1, int(self.block_interval))  # whole seconds: timestamps must strictly increase
        start = self.now() - n * spacing
        for i in range(n):
            script = self._txgen_scripts[i % len(self._txgen_scripts)]
            block = assemble_block(self.chain, script, [], max(start + i * spacing, 0))
            solved = solve(block, BOOTSTRAP_MAX_TRIES)
            if solved is None:
                raise EmbeddedNodeError("bootstrap block not found within the try limit")
            self.submit_block(solved)

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._changed.set()  # wake long-polls so they answer before the server closes
        if self._server is not None:
            await self._server.close()  # no new requests once this starts
        if self.zmq is not None:
            self.zmq.close()
            self.zmq = None
        if self.chain is not None:
            self.chain.close()
        self._remove_cookie()
        self._stopped.set()

    def _remove_cookie(self) -> None:
        if self.cookie is not None:
            with contextlib.suppress(FileNotFoundError):
                self.cookie_path.unlink()

    async def __aenter__(self) -> EmbeddedNode:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_stopped(self) -> None:
        """Return once the node has stopped (by `stop()`, the `stop` RPC or a signal)."""
        await self._stopped.wait()

    def request_stop(self) -> None:
        """Stop soon, after the `stop` RPC's answer is written."""

        async def later() -> None:
            await asyncio.sleep(0.05)
            await self.stop()

        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(later())

    # --- auth and warm-up ---

    def _authorize(self, header: str | None) -> bool:
        creds = basic_credentials(header)
        if creds is None:
            return False
        accepted = [self.cookie] if self.cookie else []
        if self.rpc_user is not None and self.rpc_password is not None:
            accepted.append((self.rpc_user, self.rpc_password))
        return any(hmac.compare_digest(creds[0], u) & hmac.compare_digest(creds[1], p) for u, p in accepted)

    def warming_up(self) -> bool:
        return time.monotonic() < self._warm_until

    def uptime(self) -> int:
        return int(time.monotonic() - self._started_at)

    # --- state changes ---

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def submit_block(self, block: Block) -> AcceptResult:
        """Accept a block; on a tip change resync the mempool, update the wallet, publish, wake long-polls."""
        assert self.chain is not None
        result = self.chain.accept_block(block, self.now())
        self._tip_changed(result)
        return result

    def precious_block(self, block_hash: bytes) -> None:
        """Prefer a block over others of its work (Core's preciousblock), with a tip change's effects."""
        assert self.chain is not None
        connected, disconnected, _ = self.chain.precious_block(block_hash)
        self._tip_changed(AcceptResult(None, tuple(connected), tuple(disconnected)))

    def _tip_changed(self, result: AcceptResult) -> None:
        assert self.chain is not None and self.wallet is not None
        if result.connected or result.disconnected:
            # Transactions of disconnected blocks go back to the mempool oldest block first, each block in
            # its own order, so parents are always offered before their children.
            returning: list[Transaction] = []
            for h in reversed(result.disconnected):
                returning.extend(self.chain.read_block(h).txs[1:])
            for h in result.connected:
                block_txs = self.chain.read_block(h).txs
                for tx in block_txs:
                    if self.wallet.is_relevant(tx):
                        self.wallet.record(tx, self.chain.index[h].header.time)
                    if self.zmq is not None:
                        self.zmq.transaction(tx)  # Core's hashtx/rawtx also fire for transactions in blocks
                self.wallet.note_block(h, block_txs)  # wallet transactions this block conflicts
            self.mempool.resync(self.chain, self.now(), returning)
            if self.zmq is not None:
                self.zmq.block(self.chain.read_block(self.chain.tip.hash))
            self._notify()

    def accept_transaction(self, tx: Transaction) -> MempoolEntry:
        """Into the mempool (raises MempoolReject); recorded by the wallet when it pays or spends ours."""
        assert self.chain is not None and self.wallet is not None
        wallet = self.wallet
        spent = [self.mempool.coin(i.prevout) or self.chain.coin(i.prevout) for i in tx.inputs]
        entry = self.mempool.accept(tx, self.chain, self.now())
        if wallet.involves(tx, spent):
            wallet.record(tx, self.now(), spent)
        if self.zmq is not None:
            self.zmq.transaction(tx)
        self._notify()
        return entry

    def mine(
        self, script_pubkey: bytes, n: int, max_tries: int, txs: Iterable[Transaction] | None = None
    ) -> list[bytes]:
        """Mine `n` blocks on the tip paying `script_pubkey` (mempool transactions, or exactly `txs`)."""
        assert self.chain is not None
        hashes: list[bytes] = []
        for _ in range(n):
            if txs is None:
                entries = select_for_block(self.mempool)
                body: list[Transaction] = [e.tx for e in entries]
                fees = sum(e.fee for e in entries)
            else:
                body = list(txs)
                fees = sum(self.fee_of(tx) for tx in body)
            block = assemble_block(self.chain, script_pubkey, body, self.now(), fees=fees)
            solved = solve(block, max_tries)
            if solved is None:
                break
            result = self.submit_block(solved)
            if result.reason is not None:
                raise EmbeddedNodeError(f"mined block refused: {result.reason}")
            hashes.append(solved.hash())
        return hashes

    def fee_of(self, tx: Transaction) -> int:
        """Fee of a transaction whose inputs are in the mempool or the UTXO set (0 where unknown)."""
        assert self.chain is not None
        e = self.mempool.entries.get(tx.txid())
        if e is not None:
            return e.fee
        total = 0
        for i in tx.inputs:
            coin = self.mempool.coin(i.prevout) or self.chain.coin(i.prevout)
            total += coin.value if coin else 0
        return max(0, total - sum(o.value for o in tx.outputs))

    async def wait_for_change(self, longpollid: str) -> None:
        """Hold a getblocktemplate long-poll until the tip changes, or the mempool changed and
        `longpoll_mempool_s` passed (Core waits for a new tip, or new transactions after a minute)."""
        assert self.chain is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        while self.running:
            current = longpoll_id(self.chain, self.mempool)
            waited = loop.time() - start
            if current[:64] != longpollid[:64]:
                return
            if current != longpollid and waited >= self.longpoll_mempool_s:
                return
            if waited >= LONGPOLL_MAX_S:
                return
            remaining = (self.longpoll_mempool_s if current != longpollid else LONGPOLL_MAX_S) - waited
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.01, remaining))

    # --- transaction generator ---

    async def _txgen_loop(self) -> None:
        assert self.wallet is not None and self.chain is not None
        interval = 1.0 / self.tx_rate
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / interval))
            # Only the generator's own coins: the wallet's other coins (a pool's payouts) are left alone.
            coins = self.wallet.coins(self.chain, self.mempool, label=TXGEN_LABEL)
            tx = make_transaction(self.wallet, coins, self._txgen_scripts, self.rng)
            if tx is None:
                continue
            try:
                self.accept_transaction(tx)
            except Exception as exc:  # a generated transaction the pool refuses is skipped, never fatal
                log.debug("generated transaction refused: %s", exc)

"""The one async client of Bitcoin Core's JSON-RPC (and of pithead's embedded node, which speaks the same
dialect): every part of pithead that asks a node something asks it through `RpcClient`.

One call shape, `call(method, *params, timeout_s=None)`, as bitcoin-cli takes them; `batch` sends several
calls in one request and gives each its result or its `RpcError`. Authentication is a cookie file (Core's
`<datadir>/<chain>/.cookie`, re-read after a 401 because Core writes a new one at every start) or
rpcuser/rpcpassword. Requests are JSON-RPC 1.0 as bitcoin-cli sends them, which every Core version
accepts. Every failure is a `NodeError`, typed so a caller can act on it:

- `NodeDownError`: nothing (usable) answered: connection refused or reset, a timeout, an unreadable cookie
  file, an HTTP exchange that broke off. This is the "nothing answered" error for every caller: the
  template sources try another node, the ledger's periodic jobs log it and try again on their next tick
  (the wallet sees it as `WalletError`, outcome unknown), and the web's node monitor shows it as a status;
- `NodeAuthError`: 401/403 (after one cookie re-read) — wrong credentials or cookie;
- `RpcError(code, message)`: the node answered with an error, `code` being Core's
  (`pithead.bitcoind.codes`); `NodeWarmingUpError` is `RPC_IN_WARMUP` (-28: Core is still loading, wait
  and retry). A reply that is not JSON-RPC at all is an `RpcError` with `RPC_MISC_ERROR`;
- `WrongChainError`: `check_chain` found another chain than configured (e.g. a mainnet node for a
  regtest pool).

Not here: wallets by path (/wallet/<name>), REST, ZMQ notifications (`pithead.bitcoind.zmq`), the codes
themselves (`pithead.bitcoind.codes`), the embedded node's server side (`pithead.node.rpc`), and any
retrying beyond the one cookie re-read: each caller decides what a failure means to it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import orjson

from pithead.bitcoind.codes import HTTP_FORBIDDEN, HTTP_UNAUTHORIZED, RPC_IN_WARMUP, RPC_MISC_ERROR
from pithead.config import UpstreamNode

DEFAULT_TIMEOUT_S = 10.0  # an ordinary call; a GBT on a busy mainnet mempool takes well under a second
CONNECT_TIMEOUT_S = 3.0  # a node on the LAN answers a connect in milliseconds; longer means down
LONGPOLL_TIMEOUT_S = 600.0  # Core holds a long-poll until a new block (minutes on mainnet)
MAX_CONNECTIONS = 8  # per node: one long-poll, polls, a refresh and submits at once


class NodeError(Exception):
    """Base of every failure talking to a node; `node` names it."""

    def __init__(self, message: str, node: str = "") -> None:
        super().__init__(f"{node}: {message}" if node else message)
        self.node = node


class NodeDownError(NodeError):
    """Nothing usable answered: connection refused or reset, a timeout, an exchange that broke off, or a
    cookie file that cannot be read (the node is not running)."""


class NodeAuthError(NodeError):
    """The node refused the credentials (HTTP 401/403)."""


class RpcError(NodeError):
    """The node answered with a JSON-RPC error; `code` is Core's (`pithead.bitcoind.codes`)."""

    def __init__(self, code: int, message: str, node: str = "", method: str = "") -> None:
        super().__init__(f"{method}: {message} ({code})" if method else f"{message} ({code})", node)
        self.code = code
        self.message = message
        self.method = method


class NodeWarmingUpError(RpcError):
    """`RPC_IN_WARMUP` (-28): the node is still starting (loading the block index, verifying blocks)."""


class WrongChainError(NodeError):
    """The node is on another chain than the pool is configured for."""


def read_cookie(path: str | Path) -> tuple[str, str]:
    """(user, password) from a Core `.cookie` file (`__cookie__:<hex>`)."""
    text = Path(path).read_text().strip()
    user, sep, password = text.partition(":")
    if not sep:
        raise NodeAuthError(f"cookie file {path} is not user:password")
    return user, password


class RpcClient:
    """A connection pool to one node; `close()` it when done (or use it as an async context manager)."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        name: str | None = None,
    ) -> None:
        if cookie_file is None and (user is None or password is None):
            raise NodeAuthError("give rpc user and password, or a cookie file", name or url)
        self.url = url
        self.name = name or url
        self.user = user
        self.password = password
        self.cookie_file = Path(cookie_file) if cookie_file else None
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        )

    @classmethod
    def from_config(cls, node: UpstreamNode, *, timeout: float = DEFAULT_TIMEOUT_S) -> RpcClient:
        """A client of one `[[pool.nodes]]` entry: its URL, and its cookie file or user and password."""
        return cls(node.url, user=node.rpc_user, password=node.rpc_password, cookie_file=node.cookie_file,
                   timeout=timeout, name=node.url)

    def _auth(self, reload: bool = False) -> tuple[str, str]:
        if self.cookie_file is not None and (reload or self.user is None or self.password is None):
            try:
                self.user, self.password = read_cookie(self.cookie_file)
            except OSError as exc:
                raise NodeDownError(
                    f"cannot read cookie file {self.cookie_file} (is the node running?)", self.name
                ) from exc
        assert self.user is not None and self.password is not None
        return self.user, self.password

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _post(self, payload: Any, timeout_s: float | None) -> Any:
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        t = httpx.Timeout(timeout_s if timeout_s is not None else self.timeout, connect=CONNECT_TIMEOUT_S)
        for attempt in (0, 1):
            try:
                resp = await self._client.post(
                    self.url, content=body, headers=headers, auth=self._auth(attempt == 1), timeout=t
                )
            except httpx.TimeoutException as exc:
                raise NodeDownError(f"timed out ({type(exc).__name__})", self.name) from exc
            except httpx.TransportError as exc:
                raise NodeDownError(f"not reachable: {exc or type(exc).__name__}", self.name) from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body that does not decode, a bad URL
                raise NodeDownError(f"no usable answer: {exc or type(exc).__name__}", self.name) from exc
            if resp.status_code in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
                if attempt == 0 and self.cookie_file is not None:
                    continue  # the node may have restarted with a new cookie
                raise NodeAuthError(f"authentication refused (HTTP {resp.status_code})", self.name)
            try:
                return orjson.loads(resp.content)
            except orjson.JSONDecodeError as exc:
                raise RpcError(
                    RPC_MISC_ERROR, f"HTTP {resp.status_code} with a non-JSON body", self.name
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _unwrap(self, method: str, reply: Any) -> Any:
        if not isinstance(reply, dict):
            raise RpcError(RPC_MISC_ERROR, "reply is not a JSON-RPC object", self.name, method)
        err = reply.get("error")
        if err:
            found = err.get("code") if isinstance(err, dict) else None
            code = found if isinstance(found, int) else RPC_MISC_ERROR
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            cls = NodeWarmingUpError if code == RPC_IN_WARMUP else RpcError
            raise cls(code, message, self.name, method)
        return reply.get("result")

    async def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """`method(*params)`'s result; raises a `NodeError` (see the module's docstring) on any failure.
        `timeout_s` replaces the client's timeout for this call (a long-poll)."""
        reply = await self._post({"method": method, "params": list(params), "id": next(self._ids)}, timeout_s)
        return self._unwrap(method, reply)

    async def batch(self, calls: list[tuple[str, list[Any]]], timeout_s: float | None = None) -> list[Any]:
        """Several calls in one request; each item is a result or the `RpcError` for that call (one failed
        call never hides the others). A failure of the request itself raises, as `call` does."""
        ids = [next(self._ids) for _ in calls]
        reply = await self._post(
            [{"method": m, "params": p, "id": i} for (m, p), i in zip(calls, ids, strict=True)], timeout_s
        )
        if not isinstance(reply, list):
            raise RpcError(RPC_MISC_ERROR, "batch reply is not an array", self.name)
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        out: list[Any] = []
        for (method, _), i in zip(calls, ids, strict=True):
            try:
                out.append(self._unwrap(method, by_id.get(i)))
            except RpcError as exc:
                out.append(exc)
        return out

    # --- the calls a pool makes ---

    async def check_chain(self, expected: str) -> dict[str, Any]:
        """getblockchaininfo, raising WrongChainError unless `chain` is `expected` (Core's names: main,
        test, testnet4, signet, regtest; pithead's demo chain reports regtest)."""
        info = await self.call("getblockchaininfo")
        want = "regtest" if expected == "demo" else expected
        if not isinstance(info, dict) or info.get("chain") != want:
            got = info.get("chain") if isinstance(info, dict) else info
            raise WrongChainError(f"node is on chain {got!r}, expected {want!r}", self.name)
        return info

    async def getblocktemplate(self, longpollid: str | None = None) -> Any:
        request: dict[str, Any] = {
            # "signet": on a signet Core refuses a template without it (and ignores it on other chains)
            "rules": ["segwit", "signet"],
            "capabilities": ["coinbasetxn", "workid", "coinbase/append", "longpoll"],
        }
        if longpollid is None:
            return await self.call("getblocktemplate", request)
        request["longpollid"] = longpollid
        return await self.call("getblocktemplate", request, timeout_s=LONGPOLL_TIMEOUT_S)

    async def submitblock(self, block_hex: str) -> str | None:
        result = await self.call("submitblock", block_hex)
        return result if isinstance(result, str) else None

"""The embedded node's JSON-RPC dispatcher in Bitcoin Core's dialect: one table of every method, and the
request rules of Core's httprpc.cpp/server.cpp.

`TABLE` maps each method name to its `Command` (Core's CRPCTable), built from the method modules' own
tables, one module per Bitcoin Core source file: blockchain.py (rpc/blockchain.cpp), mempool.py
(rpc/mempool.cpp), mining.py (rpc/mining.cpp), rawtransactions.py (rpc/rawtransaction.cpp), network.py
(rpc/net.cpp), output_script.py (rpc/output_script.cpp), fees.py (rpc/fees.cpp), control.py
(rpc/server.cpp), zmqrpc.py (zmq/zmqrpc.cpp) and wallet.py (wallet/rpc/*.cpp). A name listed twice fails
at import.

Requests: JSON-RPC 1.0 (no "jsonrpc" member) replies always carry `result`, `error` and `id`, and errors
set the HTTP status (`errors.http_status_for`); JSON-RPC 2.0 replies carry `jsonrpc`, one of
`result`/`error`, status 200, and a request without `id` is a notification (HTTP 204). Batches are arrays
of requests answered with an array (status 200). Params are positional or named; types are checked like
Core's RPCHelpMan (-3 "JSON value of type … is not of expected type …"); unknown methods are -32601
"Method not found"; while the node warms up everything but `stop` is -28; a bug in a method answers
-32603 and never takes the server down.

Every reply body ends with a newline, as Core's (httprpc.cpp writes `reply.write() + "\n"`): clients
that read the reply line by line wait for it. A request to `/wallet/NAME` names the wallet its wallet
methods use (Core's GetWalletForJSONRPCRequest): the node has one wallet, `NodeContext.wallet_name`, and
any other name is -18 "Requested wallet does not exist or is not loaded"; other methods ignore the name,
as Core's do. `getrpcinfo` sees the calls in progress through the node's `RpcServerInfo`.

Not here: HTTP (http.py), the methods (the modules above), the answers' JSON shapes (format.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import orjson

from pithead.bitcoind import codes
from pithead.node.rpc import (
    blockchain,
    control,
    fees,
    mempool,
    mining,
    network,
    output_script,
    rawtransactions,
    wallet,
    zmqrpc,
)
from pithead.node.rpc.context import NodeContext
from pithead.node.rpc.errors import RPCError, http_status_for
from pithead.node.rpc.util import ACCEPTS, Command, json_type, type_error

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # requests per batch: bounds the work one HTTP request can queue
WALLET_NOT_FOUND = "Requested wallet does not exist or is not loaded"  # Core's -18 for /wallet/NAME


def reply_body(reply: Any) -> bytes:
    """A reply as Core writes it: compact JSON and a newline."""
    return orjson.dumps(reply, option=orjson.OPT_APPEND_NEWLINE)


def build_table(*groups: Iterable[Command]) -> Mapping[str, Command]:
    """One read-only table from method name to command; a name listed twice is a bug (ValueError)."""
    table: dict[str, Command] = {}
    for group in groups:
        for command in group:
            if command.name in table:
                raise ValueError(f"RPC method {command.name} listed twice")
            table[command.name] = command
    return MappingProxyType(table)


TABLE: Mapping[str, Command] = build_table(
    blockchain.COMMANDS,
    mempool.COMMANDS,
    mining.COMMANDS,
    rawtransactions.COMMANDS,
    network.COMMANDS,
    output_script.COMMANDS,
    fees.COMMANDS,
    control.COMMANDS,
    zmqrpc.COMMANDS,
    wallet.COMMANDS,
)

# Methods that read or change the wallet: the first of them after a start resubmits the wallet's
# unconfirmed transactions (wallet.resubmit_wallet_transactions).
WALLET_METHODS = frozenset(c.name for c in wallet.COMMANDS) - wallet.WALLET_FREE
WARMUP_EXEMPT = "stop"  # the one method Core answers while warming up


def bind(command: Command, params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
    """The request's params as keyword arguments of the handler, checked as Core's RPCHelpMan checks
    them: named or positional (null meaning absent), no unknown name, no extra position, every required
    argument present (else -1 with the usage line), each of the JSON kind its `Arg` accepts (else -3)."""
    spec = command.args
    values: dict[str, Any] = {}
    if isinstance(params, dict):
        names = {a.name for a in spec}
        for k in params:
            if k not in names:
                raise RPCError(codes.RPC_INVALID_PARAMETER, f"Unknown named parameter {k}")
        values = {k: v for k, v in params.items() if v is not None}
    elif params:
        if len(params) > len(spec):
            raise RPCError(codes.RPC_MISC_ERROR, command.usage())
        values = {spec[i].name: v for i, v in enumerate(params) if v is not None}
    for name, kind, required in spec:
        if name not in values:
            if required:
                raise RPCError(codes.RPC_MISC_ERROR, command.usage())
            continue
        v = values[name]
        allowed = ACCEPTS[kind]
        if allowed and json_type(v) not in allowed:
            raise type_error(v, allowed[0])
    return values


class RpcDispatcher:
    """Answers JSON-RPC request bodies for one node (the HTTP server's handler)."""

    def __init__(self, node: NodeContext, table: Mapping[str, Command] = TABLE) -> None:
        self.node = node
        self.table = table
        self._resubmitted = False  # the wallet's unconfirmed transactions offered to the mempool yet

    async def handle(self, body: bytes, wallet: str | None = None) -> tuple[int, bytes]:
        """One HTTP body in, (HTTP status, reply body) out; `wallet` is the name a /wallet/NAME URI gave."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            err = RPCError(codes.RPC_PARSE_ERROR, "Parse error")
            return codes.HTTP_INTERNAL_SERVER_ERROR, reply_body(
                {"result": None, "error": err.to_json(), "id": None}
            )
        if isinstance(request, list):
            if len(request) > MAX_BATCH:
                err = RPCError(codes.RPC_INVALID_REQUEST, f"batch of more than {MAX_BATCH} requests")
                refusal = {"result": None, "error": err.to_json(), "id": None}
                return codes.HTTP_BAD_REQUEST, reply_body(refusal)
            replies = []
            for item in request:
                _, reply = await self._one(item, wallet)
                if reply is not None:
                    replies.append(reply)
            return codes.HTTP_OK, reply_body(replies)
        status, reply = await self._one(request, wallet)
        if reply is None:
            return codes.HTTP_NO_CONTENT, b""
        return status, reply_body(reply)

    async def _one(self, request: Any, wallet: str | None) -> tuple[int, dict[str, Any] | None]:
        if not isinstance(request, dict):
            err = RPCError(codes.RPC_INVALID_REQUEST, "Invalid Request object")
            return codes.HTTP_BAD_REQUEST, {"result": None, "error": err.to_json(), "id": None}
        version = request.get("jsonrpc")
        v2 = version == "2.0"
        rid = request.get("id")
        try:
            if version not in (None, "1.0", "2.0"):
                raise RPCError(codes.RPC_INVALID_REQUEST, "JSON-RPC version not supported")
            method = request.get("method")
            if not isinstance(method, str):
                raise RPCError(codes.RPC_INVALID_REQUEST, "Method must be a string")
            params = request.get("params")
            if params is not None and not isinstance(params, list | dict):
                raise RPCError(codes.RPC_INVALID_REQUEST, "Params must be an array or object")
            result = await self.call(method, params, wallet)
        except RPCError as exc:
            if v2:
                return (
                    (codes.HTTP_OK, None)
                    if "id" not in request
                    else (codes.HTTP_OK, {"jsonrpc": "2.0", "error": exc.to_json(), "id": rid})
                )
            return http_status_for(exc.code), {"result": None, "error": exc.to_json(), "id": rid}
        if v2:
            return (
                (codes.HTTP_OK, None)
                if "id" not in request
                else (codes.HTTP_OK, {"jsonrpc": "2.0", "result": result, "id": rid})
            )
        return codes.HTTP_OK, {"result": result, "error": None, "id": rid}

    async def call(
        self, method: str, params: list[Any] | dict[str, Any] | None, wallet_name: str | None = None
    ) -> Any:
        """One method call: its result, or the RPCError to answer."""
        if method != WARMUP_EXEMPT and self.node.warming_up():
            raise RPCError(codes.RPC_IN_WARMUP, "Loading block index…")
        command = self.table.get(method)
        if command is None:
            raise RPCError(codes.RPC_METHOD_NOT_FOUND, "Method not found")
        kwargs = bind(command, params)
        if method in WALLET_METHODS:
            if wallet_name is not None and wallet_name != self.node.wallet_name:
                raise RPCError(codes.RPC_WALLET_NOT_FOUND, WALLET_NOT_FOUND)
            if not self._resubmitted:
                self._resubmitted = True
                wallet.resubmit_wallet_transactions(self.node)
        try:
            with self.node.rpc_info.running(method):
                return await command.handler(self.node, **kwargs)
        except RPCError:
            raise
        except Exception as exc:  # a bug answers -32603 (internal error) and never takes the server down
            log.exception("RPC %s failed", method)
            raise RPCError(codes.RPC_INTERNAL_ERROR, f"internal error: {exc}") from exc

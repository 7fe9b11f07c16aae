"""The node client, `pithead.bitcoind.rpc.RpcClient`, over real HTTP on loopback: against pithead's
embedded node (Core's dialect end to end), and against a small scripted JSON-RPC server (the HTTP server
the embedded node uses, with a handler and credentials each test controls) for the edges a real node makes
hard to reach: a cookie rewritten under a running node, mixed batch replies, odd error objects, 403."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from pithead.bitcoind import codes
from pithead.bitcoind.rpc import (
    NodeAuthError,
    NodeDownError,
    NodeError,
    NodeWarmingUpError,
    RpcClient,
    RpcError,
    WrongChainError,
)
from pithead.node.rpc.http import HttpRpcServer
from pithead.node.testing import running_node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- against the embedded node ---


async def test_client_errors_are_typed(tmp_path: Path) -> None:
    down = RpcClient(f"http://127.0.0.1:{free_port()}", user="u", password="p", name="down")
    with pytest.raises(NodeDownError):
        await down.call("getblockcount")
    await down.close()
    async with running_node(tmp_path / "a", warmup_s=0.0) as (node, rpc):
        assert await rpc.call("getblockcount") == 0
        bad = RpcClient(node.rpc_url, user="__cookie__", password="wrong")
        with pytest.raises(NodeAuthError):
            await bad.call("getblockcount")
        await bad.close()
        with pytest.raises(WrongChainError):
            await rpc.check_chain("main")
        assert (await rpc.check_chain("regtest"))["chain"] == "regtest"
        with pytest.raises(RpcError) as err:
            await rpc.call("getblockhash", 5)
        assert err.value.code == codes.RPC_INVALID_PARAMETER == -8
        assert err.value.method == "getblockhash" and err.value.node == "embedded"
        results = await rpc.batch([("getblockcount", []), ("nosuch", []), ("getblockhash", [0])])
        assert results[0] == 0 and isinstance(results[1], RpcError)
        assert results[1].code == codes.RPC_METHOD_NOT_FOUND == -32601
        assert results[2].startswith("0f9188f1")
    async with running_node(tmp_path / "b", warmup_s=30.0) as (_, rpc):
        with pytest.raises(NodeWarmingUpError) as warming:
            await rpc.call("getblockcount")
        assert warming.value.code == codes.RPC_IN_WARMUP == -28
        (item,) = await rpc.batch([("getblockcount", [])])  # warm-up is typed inside a batch too
        assert isinstance(item, NodeWarmingUpError)


async def test_client_rereads_the_cookie_after_a_node_restart(tmp_path: Path) -> None:
    port = free_port()
    async with running_node(tmp_path / "c", rpc_port=port):
        client = RpcClient(f"http://127.0.0.1:{port}", cookie_file=tmp_path / "c" / "regtest" / ".cookie")
        assert await client.call("getblockcount") == 0
    with pytest.raises(NodeDownError):
        await client.call("getblockcount")
    async with running_node(tmp_path / "c", rpc_port=port):  # a new cookie
        assert await client.call("getblockcount") == 0
    await client.close()


async def test_silent_and_garbled_nodes_give_typed_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        await asyncio.sleep(5)  # accepts, reads, never answers
        writer.close()

    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!")
        await writer.drain()
        writer.close()

    for handler, error in ((silent, NodeDownError), (garbled, RpcError)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RpcClient(f"http://127.0.0.1:{port}", user="u", password="p", timeout=0.3)
        with pytest.raises(error):
            await client.call("getblockcount")
        await client.close()
        server.close()


# --- against a scripted server ---


@dataclass
class Scripted:
    """A JSON-RPC server on loopback: `password` is what it accepts (user `__cookie__`), `answer` maps
    one parsed request (or batch) to (HTTP status, reply); `seen` counts requests and refusals."""

    password: str = "one"
    answer: Callable[[Any], Awaitable[tuple[int, Any]]] | None = None
    requests: int = 0
    refused: int = 0
    bodies: list[Any] = field(default_factory=list)

    def authorize(self, header: str | None) -> bool:
        self.requests += 1
        want = "Basic " + base64.b64encode(f"__cookie__:{self.password}".encode()).decode()
        if header != want:
            self.refused += 1
            return False
        return True

    async def handle(self, body: bytes, wallet: str | None = None) -> tuple[int, bytes]:
        request = orjson.loads(body)
        self.bodies.append(request)
        if self.answer is not None:
            status, reply = await self.answer(request)
            return status, orjson.dumps(reply)
        return 200, orjson.dumps({"result": request["method"], "error": None, "id": request["id"]})


@asynccontextmanager
async def scripted(script: Scripted) -> AsyncIterator[str]:
    server = HttpRpcServer(script.handle, script.authorize, "127.0.0.1", 0)
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


def write_cookie(path: Path, password: str) -> None:
    path.write_text(f"__cookie__:{password}")


async def test_cookie_is_reread_once_after_a_401(tmp_path: Path) -> None:
    """Core writes a new cookie at every start: a 401 makes the client read the file again and retry once.
    A cookie that is still wrong after that is a NodeAuthError, after exactly two tries."""
    cookie = tmp_path / ".cookie"
    write_cookie(cookie, "one")
    script = Scripted(password="one")
    async with scripted(script) as url, RpcClient(url, cookie_file=cookie) as client:
        assert await client.call("getblockcount") == "getblockcount"
        assert (script.requests, script.refused) == (1, 0)
        script.password = "two"  # the node restarted with a new cookie
        write_cookie(cookie, "two")
        assert await client.call("getblockcount") == "getblockcount"
        assert (script.requests, script.refused) == (3, 1)  # one 401, one re-read, one success
        assert await client.call("getblockcount") == "getblockcount"
        assert (script.requests, script.refused) == (4, 1)  # the new cookie is kept
        script.password = "three"  # a cookie that the file does not hold
        with pytest.raises(NodeAuthError):
            await client.call("getblockcount")
        assert (script.requests, script.refused) == (6, 3)


async def test_user_and_password_are_not_retried(tmp_path: Path) -> None:
    script = Scripted(password="one")
    async with scripted(script) as url, RpcClient(url, user="__cookie__", password="two") as client:
        with pytest.raises(NodeAuthError):
            await client.call("getblockcount")
        assert (script.requests, script.refused) == (1, 1)


async def test_an_unreadable_cookie_means_the_node_is_down(tmp_path: Path) -> None:
    script = Scripted()
    async with scripted(script) as url, RpcClient(url, cookie_file=tmp_path / "none") as client:
        with pytest.raises(NodeDownError, match="cookie"):
            await client.call("getblockcount")
        assert script.requests == 0


async def test_batch_gives_each_call_its_result_or_error(tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    write_cookie(cookie, "one")

    async def answer(batch: Any) -> tuple[int, Any]:
        assert isinstance(batch, list) and len(batch) == 5
        a, b, c, d, _lost = batch
        return 200, [  # out of order, one missing: matched by id, as Core's replies may be
            {"result": None, "error": {"code": codes.RPC_IN_WARMUP, "message": "Loading"}, "id": c["id"]},
            {"result": 7, "error": None, "id": a["id"]},
            {"result": None, "error": {"code": codes.RPC_INVALID_ADDRESS_OR_KEY, "message": "Block not found"},
             "id": b["id"]},
            {"result": None, "error": {"code": "odd", "message": "a code that is not a number"}, "id": d["id"]},
        ]

    script = Scripted(answer=answer)
    async with scripted(script) as url, RpcClient(url, cookie_file=cookie) as client:
        calls = [("getblockcount", []), ("getblockheader", ["00" * 32]), ("getblockhash", [1]),
                 ("getbestblockhash", []), ("uptime", [])]
        count, missing, warming, odd, lost = await client.batch(calls)
        assert count == 7
        assert type(missing) is RpcError and missing.code == codes.RPC_INVALID_ADDRESS_OR_KEY
        assert missing.method == "getblockheader"
        assert isinstance(warming, NodeWarmingUpError) and warming.method == "getblockhash"
        assert type(odd) is RpcError and odd.code == codes.RPC_MISC_ERROR
        assert type(lost) is RpcError and lost.method == "uptime"
        (sent,) = script.bodies
        assert [r["method"] for r in sent] == [m for m, _ in calls]
        assert sent[1]["params"] == ["00" * 32] and len({r["id"] for r in sent}) == 5


async def test_a_batch_answered_with_one_error_object_raises(tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    write_cookie(cookie, "one")

    async def answer(batch: Any) -> tuple[int, Any]:
        return 500, {"result": None, "error": {"code": codes.RPC_PARSE_ERROR, "message": "Parse error"}, "id": None}

    async with scripted(Scripted(answer=answer)) as url, RpcClient(url, cookie_file=cookie) as client:
        with pytest.raises(RpcError):
            await client.batch([("getblockcount", [])])


async def test_errors_carry_cores_code_whatever_the_http_status(tmp_path: Path) -> None:
    """Core answers a JSON-RPC 1.0 error with HTTP 500 (404 for an unknown method) and the error object in
    the body: the client reads the object, not the status. 403 (-rpcwhitelist) is an auth error."""
    cookie = tmp_path / ".cookie"
    write_cookie(cookie, "one")
    replies: dict[str, tuple[int, Any]] = {
        "sendmany": (codes.HTTP_INTERNAL_SERVER_ERROR,
                     {"code": codes.RPC_WALLET_INSUFFICIENT_FUNDS, "message": "Insufficient funds"}),
        "nosuch": (codes.HTTP_NOT_FOUND, {"code": codes.RPC_METHOD_NOT_FOUND, "message": "Method not found"}),
        "stop": (codes.HTTP_FORBIDDEN, None),
    }

    async def answer(request: Any) -> tuple[int, Any]:
        status, error = replies[request["method"]]
        return status, {"result": None, "error": error, "id": request["id"]}

    async with scripted(Scripted(answer=answer)) as url, RpcClient(url, cookie_file=cookie) as client:
        with pytest.raises(RpcError) as refused:
            await client.call("sendmany", "", {"bcrt1q": 1})
        assert refused.value.code == codes.RPC_WALLET_INSUFFICIENT_FUNDS and "Insufficient funds" in str(refused.value)
        with pytest.raises(RpcError) as unknown:
            await client.call("nosuch")
        assert unknown.value.code == codes.RPC_METHOD_NOT_FOUND
        with pytest.raises(NodeAuthError):
            await client.call("stop")


async def test_a_calls_timeout_replaces_the_clients() -> None:
    """A long-poll needs a longer timeout than the client's, a status check a shorter one: each call may
    say; a call that runs out of time is NodeDownError, like any node that does not answer."""

    async def slow(request: Any) -> tuple[int, Any]:
        await asyncio.sleep(float(request["params"][0]))
        return 200, {"result": "late", "error": None, "id": request["id"]}

    script = Scripted(password="p", answer=slow)
    async with scripted(script) as url:
        async with RpcClient(url, user="__cookie__", password="p", timeout=0.2) as client:
            with pytest.raises(NodeDownError, match="timed out"):
                await client.call("wait", 0.6)
            assert await client.call("wait", 0.4, timeout_s=3.0) == "late"
        async with RpcClient(url, user="__cookie__", password="p", timeout=3.0) as client:
            with pytest.raises(NodeDownError):
                await client.call("wait", 0.6, timeout_s=0.2)


def test_every_failure_is_a_node_error() -> None:
    """What the web turns into a status and the ledger retries: one base class for every failure."""
    for cls in (NodeDownError, NodeAuthError, RpcError, NodeWarmingUpError, WrongChainError):
        assert issubclass(cls, NodeError)
    assert issubclass(NodeWarmingUpError, RpcError)
    with pytest.raises(NodeAuthError):
        RpcClient("http://127.0.0.1:1")  # neither a cookie nor a user and password


# Bitcoin Core's src/rpc/protocol.h (RPCErrorCode and HTTPStatusCode), as of v29.0: the names pithead
# uses, with Core's numbers. A typo in codes.py would change what the node answers and the client reads.
PROTOCOL_H = {
    "RPC_INVALID_REQUEST": -32600, "RPC_METHOD_NOT_FOUND": -32601, "RPC_INVALID_PARAMS": -32602,
    "RPC_INTERNAL_ERROR": -32603, "RPC_PARSE_ERROR": -32700, "RPC_MISC_ERROR": -1, "RPC_TYPE_ERROR": -3,
    "RPC_INVALID_ADDRESS_OR_KEY": -5, "RPC_OUT_OF_MEMORY": -7, "RPC_INVALID_PARAMETER": -8,
    "RPC_DATABASE_ERROR": -20, "RPC_DESERIALIZATION_ERROR": -22, "RPC_VERIFY_ERROR": -25,
    "RPC_VERIFY_REJECTED": -26, "RPC_VERIFY_ALREADY_IN_CHAIN": -27, "RPC_IN_WARMUP": -28,
    "RPC_METHOD_DEPRECATED": -32, "RPC_CLIENT_NOT_CONNECTED": -9, "RPC_CLIENT_IN_INITIAL_DOWNLOAD": -10,
    "RPC_WALLET_ERROR": -4, "RPC_WALLET_INSUFFICIENT_FUNDS": -6, "RPC_WALLET_UNLOCK_NEEDED": -13,
    "RPC_WALLET_PASSPHRASE_INCORRECT": -14, "RPC_WALLET_WRONG_ENC_STATE": -15,
    "RPC_WALLET_ENCRYPTION_FAILED": -16, "RPC_WALLET_ALREADY_UNLOCKED": -17, "RPC_WALLET_NOT_FOUND": -18,
    "RPC_WALLET_NOT_SPECIFIED": -19, "RPC_WALLET_ALREADY_LOADED": -35, "RPC_WALLET_ALREADY_EXISTS": -36,
    "HTTP_OK": 200, "HTTP_NO_CONTENT": 204, "HTTP_BAD_REQUEST": 400, "HTTP_UNAUTHORIZED": 401,
    "HTTP_FORBIDDEN": 403, "HTTP_NOT_FOUND": 404, "HTTP_BAD_METHOD": 405, "HTTP_INTERNAL_SERVER_ERROR": 500,
    "HTTP_SERVICE_UNAVAILABLE": 503,
}


def test_codes_are_cores() -> None:
    named = {k: v for k, v in vars(codes).items() if k.startswith(("RPC_", "HTTP_"))}
    assert named == PROTOCOL_H

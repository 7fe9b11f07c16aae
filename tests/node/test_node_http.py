"""The node's HTTP server against the byte sequences real clients send, and against clients that try to
choke it.

Framing (issue 19): ckpool's requests end their lines in a bare LF (`libckpool.c` builds
"POST / HTTP/1.1\\n…\\n\\n{…}\\n"); Core answers them, and every JSON reply body ends with "\\n" as Core's
httprpc.cpp writes it. Keep-alive, pipelined requests (answered in order), chunked request bodies and
`Expect: 100-continue` are accepted, as libevent accepts them; routes and statuses are Core's (`/`,
`/wallet/NAME`, 404, 405 with Core's text, 401 with `WWW-Authenticate`).

Finding 9 ("No block lost …, no cheap way to slow the pool"): 60 parallel unauthenticated 30 MiB bodies
took the old server to 1.4 GB, and 80 idle unauthenticated sockets locked authenticated clients out
(503). Here the body of a request that fails its credentials is never read (what the server read is
counted), a declared body over the bound is refused 413 before it is read, and idle unauthenticated
sockets are closed (oldest first beyond a small budget, all after a short deadline) while an
authenticated client is answered.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import orjson

from pithead.node.node import EmbeddedNode
from pithead.node.rpc.http import (
    LINGER_BYTES,
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_PENDING_CONNECTIONS,
    PENDING_TIMEOUT_S,
    HttpRpcServer,
    route,
)
from pithead.node.testing import running_node

WAIT_S = 60.0  # bound on every wait for the server: generous, the machine may be busy
CRLF_END = b"\r\n\r\n"


def basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def ckpool_request(port: int, auth: tuple[str, str], body: bytes) -> bytes:
    """A request shaped as ckpool sends its JSON-RPC calls: bare LF line endings throughout."""
    return (
        b"POST / HTTP/1.1\n"
        + f"Authorization: {basic(auth)}\n".encode()
        + f"Host: 127.0.0.1:{port}\n".encode()
        + b"Content-type: application/json\n"
        + f"Content-Length: {len(body)}\n\n".encode()
        + body
    )


def post(port: int, body: bytes, auth: tuple[str, str] | None, *, path: str = "/", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    if auth is not None:
        head += f"Authorization: {basic(auth)}\r\n"
    return (head + extra + "\r\n").encode() + body


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, raw_head: bytes) -> None:
        self.status, self.headers, self.body, self.raw_head = status, headers, body, raw_head

    def json(self) -> Any:
        return orjson.loads(self.body)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """One HTTP/1.1 response (Content-Length framed, as the server sends them)."""
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(CRLF_END)
        lines = head[: -len(CRLF_END)].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(status, headers, body, head)


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection (a reset counts as the end)."""
    out = b""
    async with asyncio.timeout(WAIT_S):
        try:
            while data := await reader.read(65536):
                out += data
        except ConnectionError:
            pass
    return out


async def connect(node: EmbeddedNode) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", node.rpc_port)


def call(method: str, *params: Any, rid: int = 1) -> bytes:
    return orjson.dumps({"method": method, "params": list(params), "id": rid})


# --- framing as real clients send it -------------------------------------------------------------------


async def test_bare_lf_requests_are_answered_with_cores_reply_bytes(tmp_path: Path) -> None:
    """ckpool's bytes (LF only, its JSON followed by a newline) get an answer; the reply is Core's: a
    status line with its reason, Content-Type application/json, a Date, and a body ending in "\\n"."""
    async with running_node(tmp_path / "n") as (node, _):
        reader, writer = await connect(node)
        writer.write(ckpool_request(node.rpc_port, node.auth, b'{"method": "getblockcount"}\n'))
        reply = await read_reply(reader)
        assert reply.status == 200
        assert reply.raw_head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["date"].endswith(" GMT")
        assert reply.body == b'{"result":0,"error":null,"id":null}\n'
        # the same connection stays open for the next call (keep-alive), still LF only
        writer.write(ckpool_request(node.rpc_port, node.auth, b'{"method": "getbestblockhash", "id": 7}'))
        again = await read_reply(reader)
        assert again.json()["id"] == 7 and again.body.endswith(b"\n")
        writer.close()


async def test_every_json_reply_ends_in_a_newline(tmp_path: Path) -> None:
    """Single calls, errors (with their HTTP status), batches: each body is compact JSON and "\\n"."""
    async with running_node(tmp_path / "n") as (node, _), httpx.AsyncClient(auth=node.auth) as client:
        for payload, status in (
            ({"method": "getblockcount", "id": 1}, 200),
            ({"method": "nosuchmethod", "id": 2}, 404),
            ({"method": "getblockhash", "params": [99], "id": 3}, 500),
            ([{"method": "getblockcount", "id": 4}, {"method": "uptime", "id": 5}], 200),
            ({"jsonrpc": "2.0", "method": "getblockcount", "id": 6}, 200),
        ):
            r = await client.post(node.rpc_url, content=orjson.dumps(payload))
            assert r.status_code == status, payload
            assert r.content.endswith(b"\n") and not r.content.endswith(b"\n\n"), r.content
            assert r.headers["content-type"] == "application/json"
        r = await client.post(node.rpc_url, content=b"{not json")
        assert r.status_code == 500 and r.content.endswith(b"}\n")
        # a JSON-RPC 2.0 notification: 204 and no body at all
        r = await client.post(node.rpc_url, content=b'{"jsonrpc": "2.0", "method": "getblockcount"}')
        assert r.status_code == 204 and r.content == b""


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with running_node(tmp_path / "n") as (node, _):
        reader, writer = await connect(node)
        writer.write(
            post(node.rpc_port, call("getblockcount", rid=1), node.auth)
            + post(node.rpc_port, call("getblockhash", 0, rid=2), node.auth)
            + ckpool_request(node.rpc_port, node.auth, call("uptime", rid=3))
        )
        replies = [await read_reply(reader) for _ in range(3)]
        assert [r.json()["id"] for r in replies] == [1, 2, 3]
        assert replies[0].json()["result"] == 0
        assert len(replies[1].json()["result"]) == 64
        writer.close()


async def test_chunked_bodies_and_expect_100_continue(tmp_path: Path) -> None:
    async with running_node(tmp_path / "n") as (node, _):
        reader, writer = await connect(node)
        body = call("getblockcount", rid=9)
        head = (
            f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(node.auth)}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        writer.write(head + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:]))
        assert (await read_reply(reader)).json()["id"] == 9
        # curl waits for "100 Continue" before it sends a large body
        writer.write(
            post(node.rpc_port, b"", node.auth, extra="Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
            )
        )
        interim = await asyncio.wait_for(reader.readuntil(CRLF_END), WAIT_S)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(body)
        assert (await read_reply(reader)).json()["result"] == 0
        writer.close()


async def test_routes_and_methods_as_core(tmp_path: Path) -> None:
    """`/` and `/wallet/NAME` are JSON-RPC endpoints; any other path is 404 (before credentials, as in
    Core); GET is 405 with Core's text; a missing or wrong password is 401 with `WWW-Authenticate`."""
    assert route("/") == (None,) and route("/wallet/") == ("",)
    assert route("/wallet/pool%20payouts") == ("pool payouts",)
    assert route("/rest/chaininfo.json") is None and route("/?x=1") is None
    async with running_node(tmp_path / "n") as (node, _), httpx.AsyncClient() as client:
        assert (await client.post(node.rpc_url + "/nothing", content=call("uptime"))).status_code == 404
        r = await client.get(node.rpc_url + "/", auth=node.auth)
        assert r.status_code == 405 and r.text == "JSONRPC server handles only POST requests"
        r = await client.post(node.rpc_url + "/", content=call("uptime"))
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="jsonrpc"'
        r = await client.post(node.rpc_url + "/", content=call("uptime"), auth=("__cookie__", "wrong"))
        assert r.status_code == 401
        r = await client.post(node.rpc_url + "/wallet/", content=call("getblockcount"), auth=node.auth)
        assert r.status_code == 200 and r.json()["result"] == 0


async def test_http_1_0_and_connection_close_are_answered_then_closed(tmp_path: Path) -> None:
    async with running_node(tmp_path / "n") as (node, _):
        for version, extra in (("HTTP/1.0", ""), ("HTTP/1.1", "Connection: close\r\n")):
            reader, writer = await connect(node)
            body = call("getblockcount")
            writer.write(
                f"POST / {version}\r\nHost: x\r\nAuthorization: {basic(node.auth)}\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            reply = await read_reply(reader)
            assert reply.json()["result"] == 0
            assert await read_to_end(reader) == b""  # and then the server closes
            writer.close()


# --- finding 9: nobody can choke it ---------------------------------------------------------------------


async def test_an_unauthenticated_body_is_never_read(tmp_path: Path) -> None:
    """A request without credentials that announces a body within the bound (8 MiB, a block's worth) is
    answered 401 at once and the connection closed; the server reads its head and at most LINGER_BYTES
    more, never the body."""
    assert 8 * 1024 * 1024 < MAX_BODY_BYTES
    async with running_node(tmp_path / "n") as (node, _):
        reader, writer = await connect(node)
        writer.write(
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * 1024 * 1024}\r\n\r\n".encode()
            + b"[" * (1024 * 1024)
        )
        reply = await read_to_end(reader)
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:100]
        writer.close()
        server = node.rpc_server
        assert server is not None
        assert server.counters.bytes_received <= MAX_HEADER_BYTES + LINGER_BYTES


async def test_a_declared_body_over_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Authenticated or not, Content-Length over MAX_BODY_BYTES is 413 before any of the body is read;
    a chunked body is cut off once it passes the bound."""
    async with running_node(tmp_path / "n") as (node, rpc):
        server = node.rpc_server
        assert server is not None
        for auth in (node.auth, None):
            reader, writer = await connect(node)
            before = server.counters.bytes_received
            head = post(node.rpc_port, b"", auth).replace(
                b"Content-Length: 0", f"Content-Length: {MAX_BODY_BYTES + 1}".encode()
            )
            writer.write(head + b"0" * (1024 * 1024))
            assert (await read_to_end(reader)).startswith(b"HTTP/1.1 413 ")
            assert server.counters.bytes_received - before <= MAX_HEADER_BYTES + LINGER_BYTES
            writer.close()
        reader, writer = await connect(node)
        writer.write(
            f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(node.auth)}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"0" * (1 << 20))
        sent = 0
        reply = b""
        try:
            while sent <= MAX_BODY_BYTES + (1 << 20) and not reader.at_eof():
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), WAIT_S)
                sent += 1 << 20
        except ConnectionError:
            pass
        reply = await read_to_end(reader)
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]
        writer.close()
        assert await rpc.call("getblockcount") == 0


async def test_sixty_parallel_unauthenticated_30_mib_bodies_cost_almost_nothing(tmp_path: Path) -> None:
    """Finding 9's first attack: each connection is refused (413 for 30 MiB, over the bound and checked
    first as libevent does; 401 for a body within the bound) or closed to make room for newer ones, and
    what the server read stays within a head and a linger per connection; an authenticated client is
    answered meanwhile."""
    attackers = 60
    async with running_node(tmp_path / "n") as (node, _), httpx.AsyncClient(auth=node.auth) as honest:
        server = node.rpc_server
        assert server is not None
        for declared, status in ((30 * 1024 * 1024, b"413"), (8 * 1024 * 1024, b"401")):
            before = server.counters.bytes_received
            head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode()

            async def attack(head: bytes = head) -> bytes:
                reader, writer = await connect(node)
                writer.write(head + b"0" * (256 * 1024))
                try:
                    return await read_to_end(reader)
                finally:
                    writer.close()

            replies = await asyncio.gather(*(attack() for _ in range(attackers)))
            refused = b"HTTP/1.1 " + status + b" "
            assert all(r == b"" or r.startswith(refused) for r in replies)
            assert sum(r.startswith(refused) for r in replies) >= 1
            read = server.counters.bytes_received - before
            assert read <= attackers * (MAX_HEADER_BYTES + LINGER_BYTES), read
            r = await honest.post(node.rpc_url, content=call("getblockcount"))
            assert r.status_code == 200 and r.json()["result"] == 0


async def test_idle_unauthenticated_sockets_never_lock_out_an_authenticated_client(tmp_path: Path) -> None:
    """Finding 9's second attack: 80 idle sockets that never send a byte. A client with the password,
    on a new connection, is answered; the server keeps at most MAX_PENDING_CONNECTIONS of the idle ones
    (the oldest are closed first) and closes the rest after PENDING_TIMEOUT_S."""
    async with running_node(tmp_path / "n") as (node, _):
        idle = [await connect(node) for _ in range(80)]
        async with httpx.AsyncClient(auth=node.auth) as fresh:
            r = await fresh.post(node.rpc_url, content=call("getblockcount"))
        assert r.status_code == 200 and r.json()["result"] == 0
        server = node.rpc_server
        assert server is not None
        assert server.connections[0] <= MAX_PENDING_CONNECTIONS
        assert server.counters.evicted >= 80 - MAX_PENDING_CONNECTIONS
        # every idle socket is closed by the server: evicted, or at the end of its deadline
        assert PENDING_TIMEOUT_S < WAIT_S
        ends = await asyncio.gather(*(read_to_end(reader) for reader, _ in idle))
        assert ends == [b""] * 80
        for _, writer in idle:
            writer.close()
        assert server.connections[0] == 0


async def test_authenticated_keep_alive_connections_survive_a_flood(tmp_path: Path) -> None:
    """A pool's connection that authenticated before the flood is never evicted by it."""
    async with running_node(tmp_path / "n") as (node, _):
        reader, writer = await connect(node)
        writer.write(post(node.rpc_port, call("getblockcount"), node.auth))
        assert (await read_reply(reader)).json()["result"] == 0
        flood = [await connect(node) for _ in range(3 * MAX_PENDING_CONNECTIONS)]
        writer.write(post(node.rpc_port, call("getblockcount", rid=2), node.auth))
        assert (await read_reply(reader)).json()["id"] == 2
        for _, w in flood:
            w.close()
        writer.close()


async def test_the_work_queue_bounds_requests_in_progress_and_only_counts_authenticated_ones() -> None:
    """Core's -rpcworkqueue: when as many requests as the queue holds are in progress, the next
    authenticated one gets 503 "Work queue depth exceeded"; requests without credentials never take a
    place in it."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(body: bytes, wallet: str | None) -> tuple[int, bytes]:
        started.set()
        await release.wait()
        return 200, b'{"result":1,"error":null,"id":1}\n'

    good = basic(("u", "p"))
    server = HttpRpcServer(handler, lambda h: h == good, "127.0.0.1", 0, work_queue_depth=1)
    port = await server.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        async with httpx.AsyncClient(timeout=WAIT_S) as client:
            refused = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(10)))
            assert {r.status_code for r in refused} == {401}
            first = asyncio.create_task(client.post(url, content=b"{}", auth=("u", "p")))
            await asyncio.wait_for(started.wait(), WAIT_S)
            r = await client.post(url, content=b"{}", auth=("u", "p"))
            assert r.status_code == 503 and r.text == "Work queue depth exceeded"
            release.set()
            assert (await first).status_code == 200
            r = await client.post(url, content=b"{}", auth=("u", "p"))
            assert r.status_code == 200
    finally:
        await server.close()


async def test_a_request_whose_client_closes_at_once_is_still_carried_out(tmp_path: Path) -> None:
    """ckpool sends preciousblock and sendrawtransaction without reading the answer: the request is
    carried out though nobody reads the reply."""
    async with running_node(tmp_path / "n") as (node, rpc):
        address = await rpc.call("getnewaddress")
        before = await rpc.call("getblocktemplate", {"rules": ["segwit"]})
        _, writer = await connect(node)
        writer.write(ckpool_request(node.rpc_port, node.auth, call("generatetoaddress", 1, address) + b"\n"))
        await writer.drain()
        writer.close()
        # a long-poll returns once the tip has changed: the block was mined
        request = {"rules": ["segwit"], "longpollid": before["longpollid"]}
        after = await asyncio.wait_for(rpc.call("getblocktemplate", request), WAIT_S)
        assert after["height"] == 2 and await rpc.call("getblockcount") == 1

"""Bad input never crashes the node: random parameters for every method get a Core-style answer (a result
or an error with a known code, never an internal error), and the node keeps answering; malformed HTTP
is refused without taking the server down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pithead.node.testing import running_node

METHODS = [
    "getblocktemplate",
    "submitblock",
    "getblockchaininfo",
    "getmininginfo",
    "getnetworkinfo",
    "getbestblockhash",
    "getblockcount",
    "getblockhash",
    "getblockheader",
    "getblock",
    "getrawmempool",
    "getmempoolinfo",
    "getmempoolentry",
    "getrawtransaction",
    "sendrawtransaction",
    "getdifficulty",
    "validateaddress",
    "uptime",
    "getnewaddress",
    "getbalance",
    "listunspent",
    "sendmany",
    "gettransaction",
    "nosuchmethod",
]  # stop and generate* are left out: valid random input there would stop or mine
INTERNAL_ERROR = -32603

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70)
    | st.sampled_from(
        [
            "00" * 32,
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
            "bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m",
            "ff" * 81,
        ]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS), "id": st.integers(0, 1000)},
    optional={
        "params": st.lists(json_values, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "height",
                    "blockhash",
                    "verbose",
                    "verbosity",
                    "txid",
                    "hexdata",
                    "amounts",
                    "template_request",
                    "address",
                    "x",
                ]
            ),
            json_values,
            max_size=3,
        )
    },
)


def test_random_parameters_get_core_style_answers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_node(tmp_path / "fuzz") as (node, _):
            async with httpx.AsyncClient(auth=node.auth) as client:

                @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
                @given(requests)
                def run(req: dict[str, Any]) -> None:
                    loop_results.append(req)

                loop_results: list[dict[str, Any]] = []
                run()
                for req in loop_results:
                    r = await client.post(node.rpc_url, content=orjson.dumps(req))
                    assert r.status_code in (200, 400, 404, 500), (req, r.status_code)
                    body = r.json()
                    assert set(body) == {"result", "error", "id"}
                    if body["error"] is not None:
                        assert (
                            isinstance(body["error"]["code"], int) and body["error"]["code"] != INTERNAL_ERROR
                        ), (req, body)
                        assert isinstance(body["error"]["message"], str)
                r = await client.post(node.rpc_url, json={"method": "getblockcount", "id": 1})
                assert r.json()["result"] == 0

    asyncio.run(scenario())


async def test_malformed_http_is_refused_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async with running_node(tmp_path / "http") as (node, rpc):
        port = node.rpc_port
        for garbage in (
            b"NONSENSE\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            b"\x00\xff" * 10 + b"\r\n\r\n",
            b"POST / HTTP/1.1\r\n" + b"X: " + b"a" * 20_000 + b"\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(200), 5)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply
            writer.close()
        # a client that connects and sends half a request, then vanishes
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        writer.close()
        assert await rpc.call("getblockcount") == 0

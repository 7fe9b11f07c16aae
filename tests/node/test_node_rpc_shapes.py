"""The embedded node answers like Bitcoin Core: the same shapes, HTTP statuses and error codes as the
calls captured from a real Core regtest node (tests/fixtures/bitcoin-core/rpc-shapes-core-regtest.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pithead.bitcoind.rpc import RpcClient
from pithead.node.node import EmbeddedNode

CORE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"


def core_fixture(name: str) -> Any:
    return json.loads((CORE_FIXTURES / name).read_text())


SHAPES = core_fixture("rpc-shapes-core-regtest.json")


def shape_errors(value: Any, shape: Any, path: str = "$", partial: bool = False) -> list[str]:
    """Where `value` differs from a fixture shape ("str", "int", "number", "bool", "null", {...}, [...]).
    An array's item shape is the union of its items' keys in the capture, so items may lack some keys
    (`partial`), e.g. an OP_RETURN output has no address; they may never have keys Core does not."""
    if shape == "str":
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if shape == "int":
        return (
            []
            if isinstance(value, int) and not isinstance(value, bool)
            else [f"{path}: {value!r} is not an int"]
        )
    if shape == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if shape == "bool":
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a bool"]
    if shape == "null":
        return [] if value is None else [f"{path}: {value!r} is not null"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} is not an object"]
        if not shape:
            return []
        errs = [] if partial else [f"{path}: missing key {k!r}" for k in shape if k not in value]
        errs += [f"{path}: extra key {k!r}" for k in value if k not in shape]
        for k in shape:
            if k in value:
                errs += shape_errors(value[k], shape[k], f"{path}.{k}", partial)
        return errs
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} is not an array"]
        if not shape:
            return []
        return [e for i, item in enumerate(value) for e in shape_errors(item, shape[0], f"{path}[{i}]", True)]
    raise AssertionError(f"unknown shape {shape!r}")


async def raw(node: EmbeddedNode, payload: Any, auth: tuple[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(node.rpc_url, content=orjson.dumps(payload), auth=auth or node.auth)


def check(name: str, resp: httpx.Response) -> Any:
    expected = SHAPES[name]
    assert resp.status_code == expected["http"], (name, resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"result", "error", "id"}
    if expected["error_code"] is None:
        assert body["error"] is None
        assert shape_errors(body["result"], expected["shape"]) == []
    else:
        assert body["result"] is None
        assert body["error"]["code"] == expected["error_code"], body
        assert shape_errors(body["error"], expected["error"]) == []
    return body["result"]


async def test_unauthenticated_and_wrong_password_get_401(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, _ = node_rpc
    async with httpx.AsyncClient() as c:
        r = await c.post(node.rpc_url, json={"method": "getblockcount", "params": [], "id": 1})
        assert r.status_code == SHAPES["noauth"]["http"] == 401
        assert "basic" in r.headers["www-authenticate"].lower()
        r = await c.post(node.rpc_url, json={"method": "getblockcount", "id": 1}, auth=("__cookie__", "nope"))
        assert r.status_code == 401


async def test_same_shapes_statuses_and_codes_as_core(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, _ = node_rpc

    async def call(name: str, method: str, *params: Any) -> Any:
        return check(name, await raw(node, {"method": method, "params": list(params), "id": name}))

    info = await call("getblockchaininfo", "getblockchaininfo")
    assert info["chain"] == SHAPES["facts.chain"] == "regtest"
    genesis = await call("getblockhash0", "getblockhash", 0)
    assert genesis == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    await call("unknown_method", "nosuchmethod")
    await call("bad_param", "getblockhash", "zero")
    await call("out_of_range", "getblockhash", 1000)
    address = (await raw(node, {"method": "getnewaddress", "params": [], "id": 0})).json()["result"]
    hashes = await call("generatetoaddress", "generatetoaddress", SHAPES["facts.generated"], address)
    assert len(hashes) == 101
    assert await call("getblockcount", "getblockcount") == 101
    best = await call("getbestblockhash", "getbestblockhash")
    assert best == hashes[-1]
    header = await call("getblockheader", "getblockheader", best)
    assert header["height"] == 101 and header["previousblockhash"] == hashes[-2]
    assert header["difficulty"] == 4.656542373906925e-10  # Core prints 16 significant digits
    hex0 = await call("getblock0", "getblock", best, 0)
    assert hex0.startswith(int(header["versionHex"], 16).to_bytes(4, "little").hex())
    b1 = await call("getblock1", "getblock", best, 1)
    assert b1["tx"] and b1["nTx"] == 1
    await call("getblock2", "getblock", best, 2)
    await call("getmininginfo", "getmininginfo")
    await call("getnetworkinfo", "getnetworkinfo")
    assert await call("getdifficulty", "getdifficulty") == header["difficulty"]
    assert await call("getrawmempool", "getrawmempool") == []
    good = await call("validateaddress", "validateaddress", "bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m")
    assert good["isvalid"] and good["witness_version"] == 0
    bad = await call("validateaddress_bad", "validateaddress", "bc1qnotanaddress")
    assert bad["isvalid"] is False
    await call("uptime", "uptime")
    tpl = await call("getblocktemplate", "getblocktemplate", {"rules": ["segwit"]})
    assert tpl["height"] == 102 and tpl["previousblockhash"] == best and tpl["bits"] == "207fffff"
    await call("getblocktemplate_norules", "getblocktemplate", {})


async def test_error_messages_match_core(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, _ = node_rpc
    norules = core_fixture("gbt-core-regtest-no-segwit-rule-error.rpc.json")["error"]
    r = (await raw(node, {"method": "getblocktemplate", "params": [{}], "id": "gbt"})).json()
    assert r["error"] == norules
    r = (await raw(node, {"method": "nosuch", "params": [], "id": 1})).json()
    assert r["error"] == {"code": -32601, "message": "Method not found"}
    r = (await raw(node, {"method": "getblockhash", "params": ["x"], "id": 1})).json()
    assert r["error"] == {"code": -3, "message": "JSON value of type string is not of expected type number"}
    r = (await raw(node, {"method": "getblock", "params": ["00" * 32], "id": 1})).json()
    assert r["error"] == {"code": -5, "message": "Block not found"}
    r = (await raw(node, {"method": "getblock", "params": ["zz"], "id": 1})).json()
    assert r["error"]["code"] == -8
    r = (await raw(node, {"method": "generatetoaddress", "params": [1, "nonsense"], "id": 1})).json()
    assert r["error"] == {"code": -5, "message": "Error: Invalid address"}


async def test_jsonrpc_2_batches_named_params_and_parse_errors(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    node, _ = node_rpc
    r = await raw(node, {"jsonrpc": "2.0", "method": "nosuch", "id": 7})
    assert r.status_code == 200  # JSON-RPC 2.0 errors travel with HTTP 200 (Core >= 28)
    assert r.json() == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 7}
    r = await raw(node, {"jsonrpc": "2.0", "method": "getblockcount"})
    assert r.status_code == 204 and r.content == b""  # a notification
    r = await raw(
        node,
        [
            {"method": "getblockcount", "id": 1},
            {"method": "nosuch", "id": 2},
            {"jsonrpc": "2.0", "method": "getblockhash", "params": {"height": 0}, "id": 3},
        ],
    )
    assert r.status_code == 200
    replies = {x["id"]: x for x in r.json()}
    assert replies[1]["result"] == 0 and replies[2]["error"]["code"] == -32601
    assert replies[3]["result"].startswith("0f9188f1")
    r = await raw(node, {"method": "getblockhash", "params": {"heigth": 0}, "id": 1})
    assert r.json()["error"]["code"] == -8
    async with httpx.AsyncClient() as c:
        r = await c.post(node.rpc_url, content=b"{not json", auth=node.auth)
        assert r.status_code == 500 and r.json()["error"]["code"] == -32700
        r = await c.get(node.rpc_url, auth=node.auth)
        assert r.status_code == 405


@pytest.mark.parametrize("fixture", ["gbt-core-regtest-h102-mempool7.json"])
async def test_template_has_cores_fields_in_cores_order(
    node_rpc: tuple[EmbeddedNode, RpcClient], fixture: str
) -> None:
    _, rpc = node_rpc
    core = core_fixture(fixture)
    ours = await rpc.call("getblocktemplate", {"rules": ["segwit"]})
    assert list(ours) == list(core)
    assert ours["rules"] == core["rules"] and ours["mutable"] == core["mutable"]
    assert ours["longpollid"].startswith(ours["previousblockhash"])

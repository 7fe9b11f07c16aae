"""Every RPC that public pool and payout software calls on Bitcoin Core answers here as Core answers it
(issue 19: "any pool software works against it unchanged"), in Core's shape or with Core's error.

The list, read from the pools' own source:

- ckpool (ckolivas/ckpool, src/bitcoin.c): validateaddress (reads isvalid, isscript, iswitness),
  decoderawtransaction (validate_txn: it checks every coinbase it builds), getblocktemplate with
  capabilities ["coinbasetxn", "workid", "coinbase/append"] and rules ["segwit"], getblockcount,
  getblockhash, getbestblockhash, submitblock (a "duplicate" counts as accepted), preciousblock (sent
  after each block it finds, without waiting for the answer), sendrawtransaction, getrawtransaction.
- public-pool (benjamin-wilson/public-pool, src/services/bitcoin-rpc.service.ts, through rpc-bitcoin's
  RPCClient, which sends named parameters and "jsonrpc": "1.0"): getrpcinfo (its "connected" check),
  getblocktemplate {template_request: {rules, mode, capabilities}}, getmininginfo (polled for `blocks`),
  submitblock {hexdata}.
- Miningcore (oliverw/miningcore, src/Miningcore/Blockchain/Bitcoin/BitcoinConstants.cs, class
  BitcoinCommands, used by BitcoinJobManager and BitcoinPayoutHandler): getbalance, listunspent,
  getnetworkinfo, getmininginfo, getnetworkhashps, getpeerinfo, validateaddress, getaddressinfo,
  getblocktemplate, getblocksubsidy, submitblock, getblockchaininfo, getblock, gettransaction, sendmany,
  sendtoaddress, walletpassphrase, walletlock, getinfo, getdifficulty, getconnectioncount.
- NOMP (zone117x/node-stratum-pool, lib/pool.js): one batch of validateaddress, getdifficulty,
  getblockchaininfo, getnetworkinfo, getmininginfo and a parameterless submitblock (any error but
  "Method not found" tells it that submitblock exists); getblocktemplate; getblock (did its block get
  in); getpeerinfo (sync progress). Its payment processor (zone117x/node-open-mining-portal,
  libs/paymentProcessor.js): validateaddress, then getaddressinfo for `ismine`; getbalance, whose reply
  it reads as text (the digits after the point in `"result":` give the coin's precision); a batch of
  gettransaction with getaccount; sendmany.
- Issue 19 adds: decodescript, getblockheader, estimatesmartfee, submitheader and wallet-path URLs
  (/wallet/NAME).

getblocksubsidy, getinfo and getaccount are not Bitcoin Core methods (getinfo and getaccount were
removed from it): Core answers -32601 "Method not found" with HTTP 404, and so does this node; the pools
above treat that answer as Core's.

Besides the shapes, the replies' text is compared with Core's captured replies
(tests/fixtures/bitcoin-core/*.rpc.json, whole response bodies): the same keys in the same order, and
every number written the same way (amounts with eight decimals, doubles, integers), ending in "\\n".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.block import Block
from pithead.node.node import EmbeddedNode
from pithead.node.rpc.server import TABLE
from pithead.node.scripts import BARE_OP_TRUE, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks, running_node

CORE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"
OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)

CKPOOL = (
    "validateaddress",
    "decoderawtransaction",
    "getblocktemplate",
    "getblockcount",
    "getblockhash",
    "getbestblockhash",
    "submitblock",
    "preciousblock",
    "sendrawtransaction",
    "getrawtransaction",
)
PUBLIC_POOL = ("getrpcinfo", "getblocktemplate", "getmininginfo", "submitblock")
MININGCORE = (
    "getbalance",
    "listunspent",
    "getnetworkinfo",
    "getmininginfo",
    "getnetworkhashps",
    "getpeerinfo",
    "validateaddress",
    "getaddressinfo",
    "getblocktemplate",
    "getblocksubsidy",
    "submitblock",
    "getblockchaininfo",
    "getblock",
    "gettransaction",
    "sendmany",
    "sendtoaddress",
    "walletpassphrase",
    "walletlock",
    "getinfo",
    "getdifficulty",
    "getconnectioncount",
)
NOMP = (
    "validateaddress",
    "getdifficulty",
    "getblockchaininfo",
    "getnetworkinfo",
    "getmininginfo",
    "submitblock",
    "getblocktemplate",
    "getblock",
    "getpeerinfo",
    "getaddressinfo",
    "getbalance",
    "gettransaction",
    "getaccount",
    "sendmany",
)
ISSUE_19 = ("decodescript", "getblockheader", "estimatesmartfee", "submitheader")
NOT_CORE_METHODS = frozenset({"getblocksubsidy", "getinfo", "getaccount"})  # Core: -32601 as well


class Http(NamedTuple):
    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def post(node: EmbeddedNode, payload: Any, path: str = "/") -> Http:
    async with httpx.AsyncClient(auth=node.auth) as client:
        r = await client.post(node.rpc_url + path, content=orjson.dumps(payload))
    return Http(r.status_code, r.content)


def ok(reply: Http) -> Any:
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["error"] is None, body
    return body["result"]


def error_of(reply: Http) -> tuple[int, str]:
    body = reply.json()
    assert body["result"] is None, body
    return body["error"]["code"], body["error"]["message"]


# --- text-level comparison with Core's captured replies -------------------------------------------------


class Number(NamedTuple):
    text: str


class Items(NamedTuple):
    """An array's shape: its first item's (None for an empty array, which matches any array)."""

    first: Any


def literal_shape(value: Any) -> Any:
    """A reply's shape as its text shows it: objects as their keys in order, arrays by their first item,
    numbers by how they are written ("amount" = eight decimals, "double", "int")."""
    if isinstance(value, dict):
        return [(k, literal_shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return Items(literal_shape(value[0]) if value else None)
    if isinstance(value, Number):
        text = value.text
        if "." not in text and "e" not in text.lower():
            return "int"
        if "e" not in text.lower() and len(text.split(".")[1]) == 8:
            return "amount"
        return "double"
    return type(value).__name__


def shape_differences(ours: Any, core: Any, path: str = "$") -> list[str]:
    """Where two literal shapes differ (an empty array on either side matches any array)."""
    if isinstance(core, Items) and isinstance(ours, Items):
        if core.first is None or ours.first is None:
            return []
        return shape_differences(ours.first, core.first, path + "[0]")
    if isinstance(core, list) and isinstance(ours, list):
        if [k for k, _ in ours] != [k for k, _ in core]:
            return [f"{path}: keys {[k for k, _ in ours]} != Core's {[k for k, _ in core]}"]
        return [
            e
            for (k, a), (_, b) in zip(ours, core, strict=True)
            for e in shape_differences(a, b, f"{path}.{k}")
        ]
    return [] if ours == core else [f"{path}: {ours} != Core's {core}"]


def parse_literal(text: bytes) -> Any:
    return json.loads(text, parse_float=Number, parse_int=Number)


def core_reply(name: str) -> bytes:
    return (CORE_FIXTURES / name).read_bytes()


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
async def busy(node_rpc: tuple[EmbeddedNode, RpcClient]) -> tuple[EmbeddedNode, RpcClient, list[str]]:
    """A node at height 101 with wallet payments (a chain of them) in its mempool."""
    node, rpc = node_rpc
    await mine_blocks(rpc, 101)
    txids = [await rpc.call("sendmany", "", {await rpc.call("getnewaddress"): 1.5}) for _ in range(3)]
    return node, rpc, txids


# --- the list -------------------------------------------------------------------------------------------


def test_every_method_the_pools_call_is_served_or_unknown_to_core_too() -> None:
    for method in {*CKPOOL, *PUBLIC_POOL, *MININGCORE, *NOMP, *ISSUE_19}:
        assert (method in TABLE) != (method in NOT_CORE_METHODS), method


async def test_methods_core_does_not_have_are_answered_as_core_answers_them(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    node, _ = node_rpc
    for method in sorted(NOT_CORE_METHODS):
        reply = await post(node, {"method": method, "params": [], "id": 1})
        assert reply.status == 404 and error_of(reply) == (-32601, "Method not found"), method


# --- ckpool ---------------------------------------------------------------------------------------------


async def test_ckpool_calls(busy: tuple[EmbeddedNode, RpcClient, list[str]]) -> None:
    node, rpc, txids = busy
    address = await rpc.call("getnewaddress")
    valid = ok(await post(node, {"method": "validateaddress", "params": [address]}))
    assert (valid["isvalid"], valid["isscript"], valid["iswitness"]) == (True, True, True)
    gbt = ok(
        await post(
            node,
            {
                "method": "getblocktemplate",
                "params": [
                    {"capabilities": ["coinbasetxn", "workid", "coinbase/append"], "rules": ["segwit"]}
                ],
            },
        )
    )
    block = block_from_template(gbt, OP_TRUE_P2WSH)
    coinbase = block.txs[0]
    decoded = ok(await post(node, {"method": "decoderawtransaction", "params": [coinbase.serialize().hex()]}))
    assert decoded["txid"] == coinbase.txid_hex() and decoded["hash"] == coinbase.wtxid_hex()
    assert list(decoded) == ["txid", "hash", "version", "size", "vsize", "weight", "locktime", "vin", "vout"]
    assert "coinbase" in decoded["vin"][0] and decoded["vin"][0]["txinwitness"] == ["00" * 32]
    assert error_of(await post(node, {"method": "decoderawtransaction", "params": ["00ff"]})) == (
        -22,
        "TX decode failed",
    )
    height = ok(await post(node, {"method": "getblockcount"}))
    tip = ok(await post(node, {"method": "getblockhash", "params": [height]}))
    assert ok(await post(node, {"method": "getbestblockhash"})) == tip
    assert ok(await post(node, {"method": "submitblock", "params": [block.hex()]})) is None
    assert ok(await post(node, {"method": "submitblock", "params": [block.hex()]})) == "duplicate"
    assert ok(await post(node, {"method": "preciousblock", "params": [block.hash_hex()]})) is None
    raw = ok(await post(node, {"method": "getrawtransaction", "params": [txids[0]]}))
    assert isinstance(raw, str) and len(raw) > 100
    error = error_of(await post(node, {"method": "sendrawtransaction", "params": [raw]}))
    assert error[0] == -27  # already in the chain (the block above confirmed it)


# --- public-pool: named parameters, jsonrpc 1.0 -----------------------------------------------------------


async def test_public_pool_calls(busy: tuple[EmbeddedNode, RpcClient, list[str]]) -> None:
    node, _, _ = busy
    info = ok(await post(node, {"jsonrpc": "1.0", "id": 1, "method": "getrpcinfo", "params": {}}))
    assert info["active_commands"] == [
        {"method": "getrpcinfo", "duration": info["active_commands"][0]["duration"]}
    ]
    assert info["logpath"].endswith("debug.log")
    request = {
        "template_request": {
            "rules": ["segwit"],
            "mode": "template",
            "capabilities": ["serverlist", "proposal"],
        }
    }
    gbt = ok(await post(node, {"jsonrpc": "1.0", "id": 2, "method": "getblocktemplate", "params": request}))
    assert len(gbt["transactions"]) == 3
    mining = ok(await post(node, {"jsonrpc": "1.0", "id": 3, "method": "getmininginfo", "params": {}}))
    assert mining["blocks"] == 101
    block = block_from_template(gbt, OP_TRUE_P2WSH)
    params = {"hexdata": block.hex()}
    assert (
        ok(await post(node, {"jsonrpc": "1.0", "id": 4, "method": "submitblock", "params": params})) is None
    )


# --- Miningcore -----------------------------------------------------------------------------------------


async def test_miningcore_calls(busy: tuple[EmbeddedNode, RpcClient, list[str]]) -> None:
    node, rpc, txids = busy
    address = await rpc.call("getnewaddress")
    assert isinstance(ok(await post(node, {"method": "getbalance", "params": []})), float)
    tx = ok(await post(node, {"method": "gettransaction", "params": [txids[0]]}))
    assert tx["txid"] == txids[0] and tx["confirmations"] == 0
    await mine_blocks(rpc, 1)  # the payments confirm: listunspent (minconf 1) lists their outputs
    unspent = ok(await post(node, {"method": "listunspent", "params": []}))
    assert unspent and {"txid", "vout", "address", "amount", "confirmations", "spendable"} <= set(unspent[0])
    assert ok(await post(node, {"method": "getnetworkinfo"}))["version"] >= 290000
    assert ok(await post(node, {"method": "getnetworkhashps"})) >= 0
    assert ok(await post(node, {"method": "getpeerinfo"})) == []
    assert ok(await post(node, {"method": "getconnectioncount"})) == 0
    info = ok(await post(node, {"method": "getaddressinfo", "params": [address]}))
    assert list(info)[:4] == ["address", "scriptPubKey", "ismine", "solvable"]
    assert info["ismine"] is True and info["iswitness"] is True and info["labels"] == [""]
    foreign = ok(
        await post(
            node, {"method": "getaddressinfo", "params": ["bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m"]}
        )
    )
    assert (foreign["ismine"], foreign["solvable"], "desc" in foreign) == (False, False, False)
    code, _ = error_of(await post(node, {"method": "getaddressinfo", "params": ["nonsense"]}))
    assert code == -5
    assert ok(await post(node, {"method": "getdifficulty"})) > 0
    chain = ok(await post(node, {"method": "getblockchaininfo"}))
    block = ok(await post(node, {"method": "getblock", "params": [chain["bestblockhash"]]}))
    assert block["height"] == 102
    paid = ok(await post(node, {"method": "sendmany", "params": ["", {address: 0.25}]}))
    assert len(paid) == 64
    sent = ok(await post(node, {"method": "sendtoaddress", "params": [address, 0.125, "payout", "miner 7"]}))
    sent_tx = await rpc.call("gettransaction", sent)
    assert (sent_tx["comment"], sent_tx["to"]) == ("payout", "miner 7")  # Core's mapValue keys
    for method, params in (("walletpassphrase", ["secret", 60]), ("walletlock", [])):
        code, message = error_of(await post(node, {"method": method, "params": params}))
        assert code == -15 and message.startswith("Error: running with an unencrypted wallet"), method
    wallet = ok(await post(node, {"method": "getwalletinfo"}))
    assert wallet["walletname"] == "" and wallet["txcount"] >= 5 and "unlocked_until" not in wallet
    assert ok(await post(node, {"method": "listwallets"})) == [""]


# --- NOMP -----------------------------------------------------------------------------------------------


async def test_nomp_startup_batch_and_the_text_of_getbalance(
    busy: tuple[EmbeddedNode, RpcClient, list[str]],
) -> None:
    node, rpc, _ = busy
    address = await rpc.call("getnewaddress")
    batch = [
        {"method": m, "params": p, "id": i}
        for i, (m, p) in enumerate(
            (
                ("validateaddress", [address]),
                ("getdifficulty", []),
                ("getblockchaininfo", []),
                ("getnetworkinfo", []),
                ("getmininginfo", []),
                ("submitblock", []),
            )
        )
    ]
    reply = await post(node, batch)
    assert reply.status == 200
    results = reply.json()
    assert [r["id"] for r in results] == list(range(6))
    assert all(r["error"] is None for r in results[:5])
    assert results[0]["result"]["isvalid"] is True and results[2]["result"]["chain"] == "regtest"
    assert results[5]["error"]["code"] == -1 and results[5]["error"]["message"] != "Method not found"
    # the payment processor: the digits after the point in getbalance's text are the coin's precision
    text = (await post(node, {"method": "getbalance", "params": [], "id": 9})).body.decode()
    decimals = text.split('result":')[1].split(",")[0].split(".")[1]
    assert len(decimals) == 8, text
    assert ok(await post(node, {"method": "getaddressinfo", "params": [address]}))["ismine"] is True
    payment_batch = [{"method": "getaccount", "params": [address], "id": 1}]
    (answer,) = (await post(node, payment_batch)).json()
    assert answer["error"]["code"] == -32601


# --- issue 19's additions -------------------------------------------------------------------------------


async def test_decodescript_as_core(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, _ = node_rpc
    key = "02" + "11" * 32
    pubkey_script = "21" + key + "ac"
    decoded = ok(await post(node, {"method": "decodescript", "params": [pubkey_script]}))
    assert list(decoded) == ["asm", "desc", "type", "p2sh", "segwit"]
    assert decoded["type"] == "pubkey" and decoded["asm"] == f"{key} OP_CHECKSIG"
    assert decoded["desc"].startswith(f"pk({key})#")
    assert list(decoded["segwit"]) == ["asm", "desc", "hex", "address", "type", "p2sh-segwit"]
    assert decoded["segwit"]["type"] == "witness_v0_keyhash"
    multisig = "52" + "21" + key + "21" + "03" + "22" * 32 + "52ae"
    m = ok(await post(node, {"method": "decodescript", "params": [multisig]}))
    assert m["type"] == "multisig" and m["desc"].startswith(f"multi(2,{key},03")
    assert m["segwit"]["type"] == "witness_v0_scripthash" and m["segwit"]["desc"].startswith("wsh(multi(2,")
    p2sh = ok(await post(node, {"method": "decodescript", "params": ["a914" + "00" * 20 + "87"]}))
    assert p2sh["type"] == "scripthash" and "p2sh" not in p2sh and "address" in p2sh
    op_return = ok(await post(node, {"method": "decodescript", "params": ["6a0401020304"]}))
    assert list(op_return) == ["asm", "desc", "type"] and op_return["type"] == "nulldata"
    empty = ok(await post(node, {"method": "decodescript", "params": [""]}))
    assert empty["type"] == "nonstandard" and "p2sh" in empty
    assert error_of(await post(node, {"method": "decodescript", "params": ["zz"]})) == (
        -8,
        "argument must be hexadecimal string (not 'zz')",
    )


async def test_estimatesmartfee_as_a_core_node_without_fee_data(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    node, _ = node_rpc
    assert ok(await post(node, {"method": "estimatesmartfee", "params": [6]})) == {
        "errors": ["Insufficient data or no feerate found"],
        "blocks": 0,
    }
    assert ok(await post(node, {"method": "estimatesmartfee", "params": [2, "CONSERVATIVE"]}))["blocks"] == 0
    assert error_of(await post(node, {"method": "estimatesmartfee", "params": [0]})) == (
        -8,
        "Invalid conf_target, must be between 1 and 1008",
    )
    code, _ = error_of(await post(node, {"method": "estimatesmartfee", "params": [6, "cheap"]}))
    assert code == -8


async def test_getblockheader_and_getchaintips(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    (tip,) = await mine_blocks(rpc, 1)
    header = ok(await post(node, {"method": "getblockheader", "params": [tip]}))
    assert header["hash"] == tip and header["confirmations"] == 1
    raw = ok(await post(node, {"method": "getblockheader", "params": [tip, False]}))
    assert len(raw) == 160
    assert ok(await post(node, {"method": "getchaintips"})) == [
        {"height": 1, "hash": tip, "branchlen": 0, "status": "active"}
    ]


async def test_wallet_path_urls(busy: tuple[EmbeddedNode, RpcClient, list[str]]) -> None:
    """/wallet/ names the node's wallet ("", Core's default wallet name); another name is -18 for wallet
    methods and is ignored by the others, as in Core."""
    node, _, _ = busy
    assert isinstance(ok(await post(node, {"method": "getbalance"}, "/wallet/")), float)
    reply = await post(node, {"method": "getbalance"}, "/wallet/pool")
    assert reply.status == 500
    assert error_of(reply) == (-18, "Requested wallet does not exist or is not loaded")
    assert ok(await post(node, {"method": "getblockcount"}, "/wallet/pool")) == 101
    assert ok(await post(node, {"method": "listwallets"}, "/wallet/pool")) == [""]


async def test_a_named_wallet(tmp_path: Path) -> None:
    async with running_node(tmp_path / "n", wallet_name="pool payouts") as (node, _):
        assert ok(await post(node, {"method": "getbalance"}, "/wallet/pool%20payouts")) == 0.0
        assert error_of(await post(node, {"method": "getbalance"}, "/wallet/"))[0] == -18
        assert ok(await post(node, {"method": "listwallets"})) == ["pool payouts"]


# --- the replies' text against Core's ---------------------------------------------------------------------


async def test_reply_text_matches_cores_captured_replies(
    busy: tuple[EmbeddedNode, RpcClient, list[str]],
) -> None:
    """Key order and the way every number is written, for the replies captured from Core: the raw bodies
    of getblockchaininfo, getrawmempool true and getblocktemplate (each ending in "\\n" as Core's do)."""
    node, _, _ = busy
    for fixture, payload in (
        ("getblockchaininfo-core-regtest-h101.rpc.json", {"method": "getblockchaininfo", "id": "bci"}),
        (
            "getrawmempool-verbose-core-regtest-h101.rpc.json",
            {"method": "getrawmempool", "params": [True], "id": "mp"},
        ),
        (
            "gbt-core-regtest-h102-mempool7.rpc.json",
            {"method": "getblocktemplate", "params": [{"rules": ["segwit"]}], "id": "gbt"},
        ),
    ):
        core = core_reply(fixture)
        ours = (await post(node, payload)).body
        assert core.endswith(b"}\n") and ours.endswith(b"}\n")
        core_shape, our_shape = literal_shape(parse_literal(core)), literal_shape(parse_literal(ours))
        if payload["method"] == "getrawmempool":  # keyed by txid: compare one entry
            core_shape = [("result", [("txid", core_shape[0][1][0][1])]), *core_shape[1:]]
            our_shape = [("result", [("txid", our_shape[0][1][0][1])]), *our_shape[1:]]
        assert shape_differences(our_shape, core_shape) == [], fixture


async def test_block_json_numbers_are_written_as_cores(
    busy: tuple[EmbeddedNode, RpcClient, list[str]],
) -> None:
    """getblock 2 of a block with payments: every output value written with eight decimals, as in the
    block Core decoded (block-102-ckpool-mined-core-regtest.verbose2.json, bitcoin-cli's text)."""
    node, rpc, _ = busy
    (tip,) = await mine_blocks(rpc, 1)
    ours = (await post(node, {"method": "getblock", "params": [tip, 2], "id": 1})).body
    core = core_reply("block-102-ckpool-mined-core-regtest.verbose2.json")
    core_block = literal_shape(parse_literal(core))
    our_block = literal_shape(parse_literal(ours))[0][1]
    assert shape_differences(our_block, core_block) == []
    assert Block.from_hex(await rpc.call("getblock", tip, 0)).hash_hex() == tip
    with pytest.raises(RpcError):
        await rpc.call("getblock", "00" * 32)

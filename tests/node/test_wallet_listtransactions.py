"""The embedded node's `listtransactions` and the sendmany `comment`, against a real in-process node.

Checked against Bitcoin Core's documented behaviour: arguments (label "*", count, skip, include_watchonly)
and their errors; entry fields and their order (send: address, category, amount, vout, fee, the
transaction fields, abandoned; receive: address, parent_descs, category, amount, label, vout, abandoned,
the transaction fields); categories generate/immature/receive/send; the newest `count` entries after
`skip`, returned oldest first; the sendmany comment in gettransaction and listtransactions, kept across a
node restart; a self-payment listed both as send and as receive, change never.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pithead.bitcoind.rpc import RpcClient, RpcError
from pithead.chain.address import script_to_address
from pithead.chain.params import REGTEST
from pithead.node.node import EmbeddedNode
from pithead.node.testing import mine_blocks, running_node

EXTERNAL = "bcrt1q0t5p98c42yyh54043ghm6469wrckayf5evk84m"  # a P2WPKH address from the Core fixtures
COMMON = [  # Core's WalletTxToJSON fields, in its order, for a confirmed transaction
    "confirmations",
    "blockhash",
    "blockheight",
    "blockindex",
    "blocktime",
    "txid",
    "wtxid",
    "walletconflicts",
    "mempoolconflicts",
    "time",
    "timereceived",
    "bip125-replaceable",
]
UNCONFIRMED_COMMON = ["confirmations", "trusted", *COMMON[5:]]


def payee(i: int) -> str:
    address = script_to_address(bytes([0, 20]) + bytes([i]) * 20, REGTEST)
    assert address is not None
    return address


async def everything(rpc: RpcClient) -> list[dict[str, Any]]:
    return list(await rpc.call("listtransactions", "*", 1_000_000))


async def test_entries_have_cores_fields_order_and_categories(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    pool = await rpc.call("getnewaddress", "pool")
    blocks = await mine_blocks(rpc, 101, pool)
    entries = await everything(rpc)
    assert len(entries) == 101  # one per coinbase paying the wallet, oldest first
    coinbases = [(await rpc.call("getblock", b))["tx"][0] for b in blocks]
    assert [e["txid"] for e in entries] == coinbases
    first = entries[0]
    assert list(first) == [
        "address",
        "parent_descs",
        "category",
        "amount",
        "label",
        "vout",
        "abandoned",
        "confirmations",
        "generated",
        *COMMON[1:],
    ]
    assert (first["address"], first["category"], first["amount"], first["label"], first["vout"]) == (
        pool,
        "generate",
        50.0,
        "pool",
        0,
    )
    assert first["confirmations"] == 101 and first["blockhash"] == blocks[0] and first["blockheight"] == 1
    assert first["bip125-replaceable"] == "no" and "comment" not in first
    # Core's wallet calls a coinbase immature until it has COINBASE_MATURITY + 1 confirmations
    assert {e["category"] for e in entries[1:]} == {"immature"}

    txid = await rpc.call("sendmany", "", {EXTERNAL: 1.5, payee(1): 0.25}, 0, "payout #7")
    mine = await rpc.call("getnewaddress", "savings")
    self_pay = await rpc.call("sendmany", "", {mine: 2})
    entries = await everything(rpc)
    # newest last: the payout's two sends (in reverse output order, as Core reverses the list it builds
    # newest first), then the self-payment's receive and send
    tail = entries[-4:]
    assert [(e["txid"], e["category"]) for e in tail] == [
        (txid, "send"),
        (txid, "send"),
        (self_pay, "receive"),
        (self_pay, "send"),
    ]
    sent = await rpc.call("gettransaction", txid)
    by_vout = {d["vout"]: d for d in sent["details"]}
    assert [tail[0]["vout"], tail[1]["vout"]] == sorted(by_vout, reverse=True)
    for e in tail[:2]:
        assert list(e) == [
            "address",
            "category",
            "amount",
            "vout",
            "fee",
            *UNCONFIRMED_COMMON,
            "comment",
            "abandoned",
        ]
        assert e["fee"] == sent["fee"] < 0 and e["comment"] == "payout #7"
        assert e["confirmations"] == 0 and e["trusted"] is True and e["bip125-replaceable"] == "yes"
        assert (e["address"], e["amount"]) == (by_vout[e["vout"]]["address"], by_vout[e["vout"]]["amount"])
    assert {(e["address"], e["amount"]) for e in tail[:2]} == {(EXTERNAL, -1.5), (payee(1), -0.25)}
    # the payout's change is ours and never listed; paying our own address is a send and a receive
    assert all(e["address"] not in (EXTERNAL, payee(1)) or e["txid"] == txid for e in entries)
    receive, send = tail[2], tail[3]
    assert (receive["address"], receive["amount"], receive["label"]) == (mine, 2.0, "savings")
    assert (send["address"], send["amount"], send["label"]) == (mine, -2.0, "savings")
    assert sent["comment"] == "payout #7" and list(sent)[-3:] == ["comment", "details", "hex"]
    assert "comment" not in await rpc.call("gettransaction", self_pay)

    (block,) = await mine_blocks(rpc, 1, pool)
    confirmed = [e for e in await everything(rpc) if e["txid"] == txid]
    assert len(confirmed) == 2
    for e in confirmed:
        assert list(e) == ["address", "category", "amount", "vout", "fee", *COMMON, "comment", "abandoned"]
        assert e["confirmations"] == 1 and e["blockhash"] == block and e["bip125-replaceable"] == "no"
        assert e["blocktime"] == (await rpc.call("getblockheader", block))["time"]


async def test_count_skip_and_label(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    a = await rpc.call("getnewaddress", "a")
    b = await rpc.call("getnewaddress", "b")
    await mine_blocks(rpc, 3, a)
    await mine_blocks(rpc, 2, b)
    full = await everything(rpc)
    assert [e["label"] for e in full] == ["a", "a", "a", "b", "b"]
    assert await rpc.call("listtransactions") == full  # default count 10 covers all five
    assert await rpc.call("listtransactions", "*", 2) == full[-2:]
    assert await rpc.call("listtransactions", "*", 2, 1) == full[-3:-1]
    assert await rpc.call("listtransactions", "*", 10, 4) == full[:1]
    assert await rpc.call("listtransactions", "*", 10, 5) == []
    assert await rpc.call("listtransactions", "*", 0) == []
    assert await rpc.call("listtransactions", "a") == full[:3]
    assert await rpc.call("listtransactions", "b", 1) == full[-1:]
    assert await rpc.call("listtransactions", "nobody") == []
    async with httpx.AsyncClient(auth=node.auth) as http:  # named parameters, as bitcoin-cli -named
        body = {"method": "listtransactions", "params": {"count": 1, "skip": 4, "include_watchonly": True}}
        named = (await http.post(node.rpc_url, json={**body, "id": 1})).json()
    assert named["error"] is None and named["result"] == full[:1]
    bad: list[tuple[list[Any], int]] = [
        (["*", -1], -8),
        (["*", 1, -1], -8),
        ([""], -8),
        (["*", 1.5], -1),
        (["*", "10"], -3),
        ([7], -3),
        (["*", 1, 0, "yes"], -3),
        (["*", 1, 0, True, 5], -1),
    ]
    for args, code in bad:
        with pytest.raises(RpcError) as err:
            await rpc.call("listtransactions", *args)
        assert err.value.code == code, args


async def test_comment_and_order_survive_a_restart(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        await mine_blocks(rpc, 101)
        txid = await rpc.call("sendmany", "", {EXTERNAL: 1}, 0, "kept across restarts")
        await mine_blocks(rpc, 1)
        before = await everything(rpc)
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        after = await everything(rpc)
        assert after == before
        (send,) = [e for e in after if e["category"] == "send"]
        assert send["txid"] == txid and send["comment"] == "kept across restarts"
        assert (await rpc.call("gettransaction", txid))["comment"] == "kept across restarts"


async def test_unconfirmed_sends_are_offered_to_the_mempool_again_after_a_restart(tmp_path: Path) -> None:
    """The mempool is not kept across restarts; the wallet's own unconfirmed sends come back (as Core's
    wallet resubmits them), so a listed payment still confirms and its coins are not spent twice."""
    datadir = tmp_path / "node"
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        await mine_blocks(rpc, 101)
        parent = await rpc.call("sendmany", "", {EXTERNAL: 1}, 0, "before the restart")
        child = await rpc.call("sendmany", "", {payee(2): 2})  # spends the parent's change
        balance = await rpc.call("getbalance")
    async with running_node(datadir, zmq_pubhashblock=None, zmq_pubrawblock=None) as (_, rpc):
        assert await rpc.call("getrawmempool") == []  # nothing asked of the wallet yet
        assert await rpc.call("getbalance") == balance
        assert await rpc.call("getrawmempool") == [parent, child]
        (send,) = [e for e in await everything(rpc) if e["txid"] == parent]
        assert send["comment"] == "before the restart" and send["trusted"] is True
        with pytest.raises(RpcError) as err:  # the one mature coin is spent by the resubmitted parent
            await rpc.call("sendmany", "", {payee(3): 48})
        assert err.value.code == -6
        (block,) = await mine_blocks(rpc, 1, payee(9))
        assert {parent, child} <= set((await rpc.call("getblock", block))["tx"])


async def test_refused_send_leaves_no_comment_behind(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    node, rpc = node_rpc
    await mine_blocks(rpc, 101)
    with pytest.raises(RpcError) as err:
        await rpc.call("sendmany", "", {EXTERNAL: 1000}, 0, "too much")
    assert err.value.code == -6
    assert node.wallet is not None
    left = node.wallet.db.execute("SELECT COUNT(*) FROM wallet_tx_values").fetchone()[0]
    assert left == 0
    assert all("comment" not in e for e in await everything(rpc))


_args = st.lists(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["*", ""]),
    max_size=5,
)


async def test_random_arguments_never_raise_an_internal_error(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    await mine_blocks(rpc, 3)
    drawn: list[list[Any]] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_args)
    def draw(args: list[Any]) -> None:
        drawn.append(args)

    draw()
    for args in drawn:
        try:
            result = await rpc.call("listtransactions", *args)
        except RpcError as exc:
            assert exc.code in (-1, -3, -8), (args, exc)
        else:
            assert isinstance(result, list) and len(result) <= 3, args
    assert len(await everything(rpc)) == 3  # and the node still answers

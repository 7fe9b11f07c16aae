"""Template transaction selection by ancestor-package fee rate (pithead.node.assembler), as Bitcoin Core's
miner selects: on hand-built mempools, on the two templates captured from a real Core node, against a
slow from-scratch reference on random mempools, and end to end through the node's JSON-RPC."""

from __future__ import annotations

import itertools
import json
import random
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.bitcoind.rpc import RpcClient
from pithead.chain.block import MAX_BLOCK_WEIGHT, Block
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.script import push_data
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.node.assembler import (
    BLOCK_RESERVED_WEIGHT,
    COINBASE_RESERVED_SIGOPS,
    MAX_BLOCK_SIGOPS_COST,
    MAX_CONSECUTIVE_FAILURES,
    MAX_PACKAGE_COUNT,
    select_packages,
)
from pithead.node.consensus import Coin
from pithead.node.mempool import MempoolEntry, count_sigops, sigop_cost
from pithead.node.node import EmbeddedNode
from pithead.node.policy import policy_vsize
from pithead.node.scripts import BARE_OP_TRUE, p2sh_of, p2wsh_of
from pithead.node.testing import block_from_template, mine_blocks

CORE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "bitcoin-core"
GBT = {"rules": ["segwit"]}
OP_TRUE_P2WSH = p2wsh_of(BARE_OP_TRUE)
_serial = itertools.count(1)


def entry(fee: int, vsize: int, parents: tuple[MempoolEntry, ...] = (), *, sigops: int = 0) -> MempoolEntry:
    """A mempool entry whose transaction spends output 0 of each parent (or a made-up confirmed coin);
    its weight is 4 x `vsize`, its outputs make its txid unique."""
    n = next(_serial)
    inputs = tuple(TxIn(OutPoint(p.txid, 0), b"", 0xFFFFFFFF) for p in parents) or (
        TxIn(OutPoint(n.to_bytes(32, "little"), 0), b"", 0xFFFFFFFF),
    )
    tx = Transaction(2, inputs, (TxOut(n, BARE_OP_TRUE),), 0)
    return MempoolEntry(tx, tx.txid(), tx.wtxid(), fee, 4 * vsize, sigops, 0, 0)


def ids(entries: list[MempoolEntry]) -> list[bytes]:
    return [e.txid for e in entries]


def depends(selected: list[MempoolEntry]) -> list[list[int]]:
    """GBT's `depends`: 1-based positions of each transaction's in-template parents."""
    pos = {e.txid: i + 1 for i, e in enumerate(selected)}
    return [sorted({pos[i.prevout.txid] for i in e.tx.inputs if i.prevout.txid in pos}) for e in selected]


# --- hand-built mempools ---


def test_cpfp_child_lifts_its_low_fee_parent_above_a_medium_transaction() -> None:
    medium = entry(fee=10 * 200, vsize=200)  # 10 sat/vB, arrived first
    parent = entry(fee=1 * 200, vsize=200)  # 1 sat/vB
    child = entry(fee=60 * 200, vsize=200, parents=(parent,))  # package: 30.5 sat/vB
    assert ids(select_packages([medium, parent, child])) == ids([parent, child, medium])


def test_a_cheap_child_does_not_drag_its_parent_down_nor_ride_on_it() -> None:
    parent = entry(fee=50 * 200, vsize=200)
    child = entry(fee=1 * 200, vsize=200, parents=(parent,))  # package 25.5 sat/vB, but its own rate is 1
    medium = entry(fee=10 * 200, vsize=200)
    assert ids(select_packages([parent, child, medium])) == ids([parent, medium, child])


def test_descendants_are_rescored_when_an_ancestor_goes_in() -> None:
    # b scores 40 sat/vB at first (its own rate; with a and low its package makes 47), above m's 30. Once
    # `a` is in, b's package is {low, b}: 20.5 sat/vB, now below m. A stale score would put b before m.
    a = entry(fee=100 * 100, vsize=100)
    low = entry(fee=1 * 100, vsize=100)
    b = entry(fee=40 * 100, vsize=100, parents=(a, low))  # package with a and low: 47
    m = entry(fee=30 * 100, vsize=100)
    assert ids(select_packages([a, low, b, m])) == ids([a, m, low, b])


def test_weight_limit_with_a_nearly_full_block_skips_what_does_not_fit_and_keeps_trying() -> None:
    # Ten 99,800-vbyte transactions: 8,000 WU reserved + 10 x 399,200 = 4,000,000 is not below the
    # limit, so only nine go in.
    big = [entry(fee=(20 + i) * 99_800, vsize=99_800) for i in range(10)]
    small = entry(fee=2 * 500, vsize=500)  # the cheapest, but it still fits after the skip
    chosen = select_packages([*big, small])
    assert ids(chosen) == ids([*reversed(big[1:]), small])  # the 20 sat/vB one is left out
    weight = BLOCK_RESERVED_WEIGHT + sum(e.weight for e in chosen)
    assert weight < MAX_BLOCK_WEIGHT
    assert weight + big[0].weight >= MAX_BLOCK_WEIGHT  # it really did not fit


def test_a_parent_left_out_for_weight_keeps_its_children_out() -> None:
    filler = entry(fee=50 * 997_000, vsize=997_000)  # 3,988,000 WU
    parent = entry(fee=10 * 2_000, vsize=2_000)  # does not fit next to the filler
    child = entry(fee=90 * 100, vsize=100, parents=(parent,))
    lone = entry(fee=1 * 100, vsize=100)
    assert ids(select_packages([filler, parent, child, lone])) == ids([filler, lone])


def test_sigops_limit_respected() -> None:
    # sigop cost 4,000 each: 400 reserved + 19 x 4,000 = 76,400; a 20th would make 80,400
    heavy = [entry(fee=(100 + i) * 20_000, vsize=20_000, sigops=4_000) for i in range(20)]
    light = entry(fee=1 * 20_000, vsize=20_000, sigops=3_000)  # 79,400 < 80,000: fits after the skip
    chosen = select_packages([*heavy, light])
    assert ids(chosen) == ids([*reversed(heavy[1:]), light])
    assert COINBASE_RESERVED_SIGOPS + sum(e.sigops for e in chosen) < MAX_BLOCK_SIGOPS_COST


def test_sigop_heavy_transactions_are_sized_by_their_sigops() -> None:
    # 400 sigop cost x 20 bytes = 8,000 "vbytes" although it weighs 400: 1,000 sat is 0.125 sat/vB, below
    # the block minimum fee rate, so it stays out; the same fee on a plain 100-vbyte tx is 10 sat/vB.
    heavy = entry(fee=1_000, vsize=100, sigops=400)
    plain = entry(fee=1_000, vsize=100)
    assert policy_vsize(heavy.weight, heavy.sigops) == 2_000
    assert heavy.vsize == 2_000 and plain.vsize == 100
    assert ids(select_packages([heavy, plain])) == ids([plain])


def test_chain_of_25_goes_in_as_one_package_parents_first() -> None:
    chain = [entry(fee=1 * 150, vsize=150)]
    for _ in range(MAX_PACKAGE_COUNT - 2):
        chain.append(entry(fee=1 * 150, vsize=150, parents=(chain[-1],)))
    chain.append(entry(fee=1_000 * 150, vsize=150, parents=(chain[-1],)))  # pays for all 25: ~41 sat/vB
    medium = entry(fee=30 * 150, vsize=150)
    chosen = select_packages([medium, *chain])
    assert ids(chosen) == ids([*chain, medium])
    assert depends(chosen) == [[], *([i] for i in range(1, 25)), []]


def test_a_chain_deeper_than_a_package_still_goes_in_parents_first() -> None:
    # Core's mempool refuses the 26th link; pithead's does not, so the tail waits for its ancestors.
    chain = [entry(fee=5 * 150, vsize=150)]
    for i in range(3 * MAX_PACKAGE_COUNT):
        chain.append(entry(fee=(5 + i % 7) * 150, vsize=150, parents=(chain[-1],)))
    chosen = select_packages(chain)
    assert ids(chosen) == ids(chain)


def test_ties_go_to_the_smaller_txid_whatever_the_arrival_order() -> None:
    same = [entry(fee=7 * 120, vsize=120) for _ in range(12)]
    expected = sorted(ids(same))
    for seed in range(5):
        shuffled = same[:]
        random.Random(seed).shuffle(shuffled)
        assert ids(select_packages(shuffled)) == expected


def test_consecutive_failures_stop_assembly_once_the_block_is_nearly_full() -> None:
    filler = entry(fee=50 * 997_500, vsize=997_500)  # 8,000 + 3,990,000: within 4,000 WU of full
    misfits = [entry(fee=20 * 1_000, vsize=1_000) for _ in range(MAX_CONSECUTIVE_FAILURES + 1)]
    last = entry(fee=1 * 100, vsize=100)  # would fit, but Core gave up before reaching it
    assert ids(select_packages([filler, *misfits, last])) == ids([filler])
    # one misfit fewer and the search reaches it
    assert ids(select_packages([filler, *misfits[1:], last])) == ids([filler, last])


def test_entries_out_of_dependency_order_are_refused() -> None:
    parent = entry(fee=1_000, vsize=100)
    child = entry(fee=1_000, vsize=100, parents=(parent,))
    with pytest.raises(ValueError, match="dependency order"):
        select_packages([child, parent])


# --- Bitcoin Core's own templates ---


@pytest.mark.parametrize(
    "name", ["gbt-core-regtest-h102-mempool7.json", "gbt-core-regtest-h105-mempool14.json"]
)
def test_core_templates_are_reproduced_from_a_different_arrival_order(name: str) -> None:
    """Core's getblocktemplate order and `depends`, from its mempool fed in cheapest-first order."""
    gbt = json.loads((CORE_FIXTURES / name).read_text())
    entries = []
    for t in gbt["transactions"]:
        tx = Transaction.parse(bytes.fromhex(t["data"]))
        assert display_hex(tx.txid()) == t["txid"] and tx.weight() == t["weight"]
        entries.append(MempoolEntry(tx, tx.txid(), tx.wtxid(), t["fee"], t["weight"], t["sigops"], 0, 0))
    # arrival: repeatedly the lowest own fee rate among transactions whose parents have arrived
    by_id = {e.txid: e for e in entries}
    arrived: list[MempoolEntry] = []
    while len(arrived) < len(entries):
        ready = [
            e
            for e in entries
            if e not in arrived
            and all(i.prevout.txid not in by_id or by_id[i.prevout.txid] in arrived for i in e.tx.inputs)
        ]
        arrived.append(min(ready, key=lambda e: Fraction(e.fee, e.vsize)))
    assert ids(arrived) != ids(entries)
    chosen = select_packages(arrived)
    assert [display_hex(t) for t in ids(chosen)] == [t["txid"] for t in gbt["transactions"]]
    assert depends(chosen) == [t["depends"] for t in gbt["transactions"]]
    assert gbt["coinbasevalue"] == 50 * 100_000_000 + sum(e.fee for e in chosen)


def test_sigop_costs_match_cores_template_where_the_spent_coins_are_known() -> None:
    """GBT's `sigops` is Core's GetTransactionSigOpCost: legacy x 4, P2SH redeem scripts x 4, witness x 1.
    The spent coins come from the captured templates and block 102 (coinbases of earlier blocks are not
    captured: those transactions are left out)."""
    known: dict[bytes, Transaction] = {}
    listed: list[tuple[Transaction, int]] = []
    for name in ("gbt-core-regtest-h102-mempool7.json", "gbt-core-regtest-h105-mempool14.json"):
        for t in json.loads((CORE_FIXTURES / name).read_text())["transactions"]:
            tx = Transaction.parse(bytes.fromhex(t["data"]))
            known[tx.txid()] = tx
            listed.append((tx, t["sigops"]))
    block = Block.parse(
        bytes.fromhex((CORE_FIXTURES / "block-102-ckpool-mined-core-regtest.hex").read_text())
    )
    known.update((tx.txid(), tx) for tx in block.txs)
    checked = set()
    for tx, expected in listed:
        if not all(i.prevout.txid in known for i in tx.inputs):
            continue
        outs = [known[i.prevout.txid].outputs[i.prevout.index] for i in tx.inputs]
        spent = [Coin(o.value, o.script_pubkey, 0, False) for o in outs]
        assert sigop_cost(tx, spent) == expected, tx.txid_hex()
        checked.add(bytes(outs[0].script_pubkey[:2]))
    # P2WPKH, P2SH-P2WPKH, P2TR and P2PKH spends (the P2TR one pays P2PKH outputs: legacy sigops x 4)
    assert checked == {b"\x00\x14", b"\xa9\x14", b"\x51\x20", b"\x76\xa9"}
    assert len(listed) == 21


def test_accurate_multisig_counts_in_redeem_and_witness_scripts() -> None:
    two_of_three = (
        bytes([0x52]) + b"".join(push_data(bytes([k]) * 33) for k in (2, 3, 4)) + bytes([0x53, 0xAE])
    )
    assert count_sigops(two_of_three) == 20  # bare: Core counts 20 whatever the keys
    assert count_sigops(two_of_three, accurate=True) == 3
    p2sh = Coin(10_000, p2sh_of(two_of_three), 0, False)
    p2wsh = Coin(10_000, p2wsh_of(two_of_three), 0, False)
    tx = Transaction(
        2,
        (
            TxIn(OutPoint(b"\x01" * 32, 0), b"\x00" + push_data(two_of_three), 0xFFFFFFFF),
            TxIn(OutPoint(b"\x02" * 32, 0), b"", 0xFFFFFFFF, (b"", two_of_three)),
        ),
        (TxOut(1_000, BARE_OP_TRUE),),
        0,
    )
    assert sigop_cost(tx, [p2sh, p2wsh]) == 3 * 4 + 3
    assert sigop_cost(tx) == 0  # without the spent coins only legacy sigops count


# --- against a slow reference on random mempools ---


def reference_selection(entries: list[MempoolEntry], max_weight: int, max_sigops: int) -> list[MempoolEntry]:
    """The same rules recomputed from scratch at every step, with exact fractions."""
    index = {e.txid: i for i, e in enumerate(entries)}
    parents = [{index[i.prevout.txid] for i in e.tx.inputs if i.prevout.txid in index} for e in entries]

    def all_ancestors(i: int) -> set[int]:
        out: set[int] = set()
        stack = list(parents[i])
        while stack:
            p = stack.pop()
            if p not in out:
                out.add(p)
                stack.extend(parents[p])
        return out

    full = [all_ancestors(i) for i in range(len(entries))]
    count = [len(a) if len(a) < MAX_PACKAGE_COUNT else len(entries) for a in full]
    size = [e.vsize for e in entries]
    chosen: list[int] = []
    failed: set[int] = set()
    weight, sigops, failures = BLOCK_RESERVED_WEIGHT, COINBASE_RESERVED_SIGOPS, 0
    while True:
        options = []
        for i, e in enumerate(entries):
            if i in chosen or i in failed:
                continue
            pkg = (full[i] - set(chosen)) | {i}
            if len(pkg) > MAX_PACKAGE_COUNT:
                continue
            pfee = sum(entries[j].fee for j in pkg)
            psize = sum(size[j] for j in pkg)
            score = min(Fraction(pfee, psize), Fraction(e.fee, size[i]))
            options.append((-score, e.txid, i, pkg, pfee, psize))
        if not options:
            return [entries[i] for i in chosen]
        _, _, i, pkg, pfee, psize = min(options)
        if pfee < psize:  # 1 sat/vB
            return [entries[i] for i in chosen]
        psig = sum(entries[j].sigops for j in pkg)
        if weight + 4 * psize >= max_weight or sigops + psig >= max_sigops:
            failed.add(i)
            failures += 1
            if failures > MAX_CONSECUTIVE_FAILURES and weight > max_weight - 4_000:
                return [entries[i] for i in chosen]
            continue
        failures = 0
        for j in sorted(pkg, key=lambda j: (count[j], j if count[j] == len(entries) else 0, entries[j].txid)):
            chosen.append(j)
            weight += entries[j].weight
            sigops += entries[j].sigops
        # a skipped transaction is tried again once one of its ancestors has gone in
        failed = {f for f in failed if not (full[f] & pkg)}


@st.composite
def mempools(draw: st.DrawFn) -> list[MempoolEntry]:
    n = draw(st.integers(1, 40))
    out: list[MempoolEntry] = []
    for _ in range(n):
        k = draw(st.integers(0, min(2, len(out))))
        picks = draw(st.lists(st.integers(0, len(out) - 1), min_size=k, max_size=k, unique=True)) if k else []
        vsize = draw(st.integers(60, 3_000))
        rate = draw(st.integers(1, 40))
        sigops = draw(st.sampled_from([0, 0, 4, 80, 400]))
        out.append(entry(fee=rate * vsize, vsize=vsize, parents=tuple(out[p] for p in picks), sigops=sigops))
    return out


@settings(max_examples=150, deadline=None)
@given(mempools(), st.integers(10_000, 200_000), st.integers(500, 3_000))
def test_selection_matches_the_from_scratch_reference(
    pool: list[MempoolEntry], max_weight: int, max_sigops: int
) -> None:
    chosen = select_packages(pool, max_weight=max_weight, max_sigops=max_sigops)
    assert ids(chosen) == ids(reference_selection(pool, max_weight, max_sigops))
    seen: set[bytes] = set()
    pool_ids = set(ids(pool))
    for e in chosen:  # parents before children, none left out
        assert all(i.prevout.txid in seen for i in e.tx.inputs if i.prevout.txid in pool_ids)
        seen.add(e.txid)
    assert BLOCK_RESERVED_WEIGHT + sum(e.weight for e in chosen) < max_weight
    assert COINBASE_RESERVED_SIGOPS + sum(e.sigops for e in chosen) < max_sigops


# --- end to end through the node's JSON-RPC ---


def spend(prevout: OutPoint, value: int, fee: int) -> Transaction:
    return Transaction(
        2, (TxIn(prevout, b"", 0xFFFFFFFF, (BARE_OP_TRUE,)),), (TxOut(value - fee, OP_TRUE_P2WSH),)
    )


async def op_true_coins(rpc: RpcClient, n: int) -> list[tuple[OutPoint, int]]:
    """Mine `n` blocks paying the OP_TRUE P2WSH script through getblocktemplate + submitblock, then mature
    them: their coinbase outpoints and values."""
    coins = []
    for _ in range(n):
        block = block_from_template(await rpc.call("getblocktemplate", GBT), OP_TRUE_P2WSH)
        assert await rpc.submitblock(block.hex()) is None
        coins.append((OutPoint(block.txs[0].txid(), 0), block.txs[0].outputs[0].value))
    await mine_blocks(rpc, 100)
    return coins


async def test_cpfp_pair_through_rpc_is_templated_first_and_mined(
    node_rpc: tuple[EmbeddedNode, RpcClient],
) -> None:
    _, rpc = node_rpc
    (coin_a, value_a), (coin_b, value_b) = await op_true_coins(rpc, 2)
    medium = spend(coin_b, value_b, fee=0)
    medium = spend(coin_b, value_b, fee=20 * medium.vsize())  # 20 sat/vB, sent first
    parent = spend(coin_a, value_a, fee=0)
    parent = spend(coin_a, value_a, fee=1 * parent.vsize())  # 1 sat/vB
    child = spend(OutPoint(parent.txid(), 0), parent.outputs[0].value, fee=0)
    child = spend(OutPoint(parent.txid(), 0), parent.outputs[0].value, fee=100 * child.vsize())
    sent = [await rpc.call("sendrawtransaction", tx.serialize().hex()) for tx in (medium, parent, child)]
    assert sent == [display_hex(t.txid()) for t in (medium, parent, child)]
    assert await rpc.call("getrawmempool") == sent  # the mempool lists arrival order...

    gbt = await rpc.call("getblocktemplate", GBT)
    txs = gbt["transactions"]  # ...the template the best package first
    assert [t["txid"] for t in txs] == [display_hex(t.txid()) for t in (parent, child, medium)]
    assert [t["depends"] for t in txs] == [[], [1], []]
    fees = [value_a - parent.outputs[0].value, parent.outputs[0].value - child.outputs[0].value]
    fees.append(value_b - medium.outputs[0].value)
    assert [t["fee"] for t in txs] == fees
    assert [t["weight"] for t in txs] == [t.weight() for t in (parent, child, medium)]
    assert all(t["sigops"] == 0 for t in txs)
    assert gbt["coinbasevalue"] == 50 * 100_000_000 + sum(fees)

    block = block_from_template(gbt, OP_TRUE_P2WSH)
    assert await rpc.submitblock(block.hex()) is None
    assert await rpc.call("getbestblockhash") == block.hash_hex()
    assert await rpc.call("getrawmempool") == []
    mined = await rpc.call("getblock", block.hash_hex(), 2)
    assert [t["txid"] for t in mined["tx"][1:]] == [t["txid"] for t in txs]
    assert mined["tx"][0]["vout"][0]["value"] * 100_000_000 == pytest.approx(gbt["coinbasevalue"])


async def test_generatetoaddress_mines_the_same_fee_order(node_rpc: tuple[EmbeddedNode, RpcClient]) -> None:
    _, rpc = node_rpc
    (coin_a, value_a), (coin_b, value_b) = await op_true_coins(rpc, 2)
    medium = spend(coin_b, value_b, fee=5_000)
    parent = spend(coin_a, value_a, fee=200)
    child = spend(OutPoint(parent.txid(), 0), parent.outputs[0].value, fee=30_000)
    for tx in (medium, parent, child):
        await rpc.call("sendrawtransaction", tx.serialize().hex())
    template_order = [t["txid"] for t in (await rpc.call("getblocktemplate", GBT))["transactions"]]
    (tip,) = await mine_blocks(rpc, 1)
    mined = await rpc.call("getblock", tip, 1)
    assert mined["tx"][1:] == template_order == [display_hex(t.txid()) for t in (parent, child, medium)]
    assert from_display_hex(mined["tx"][1]) == parent.txid()
    assert await rpc.call("getrawmempool") == []

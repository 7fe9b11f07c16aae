"""Which node leads a `FailoverSource`: the chain first, priority only between nodes on the same tip;
and how a submitted block is judged against the best chain (`judge_submission`).

The rule is a pure function (`choose_leader`) over what each node said; it is tested here on values
(ties, equal-work forks, a node coming back behind, a node catching up, nodes that do not report chain
work), with a property over any set of nodes, and then through a real `FailoverSource` over two embedded
nodes driven only through RPC: the preferred node comes back behind, stays out, catches up (the
backup's blocks submitted to it, as a peer would relay them) and leads again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pithead.bitcoind.rpc import RpcClient
from pithead.node.node import EmbeddedNode
from pithead.node.testing import mine_blocks, running_node
from pithead.template.interface import BlockOutcome, BlockVerdict, SubmitResult, judge_submission
from pithead.template.sources.failover import FailoverSource
from pithead.template.sources.leader import Candidate, ChainTip, choose_leader
from pithead.template.sources.node import NodeSource

WAIT_S = 30.0  # generous bound on every wait; nothing here asserts how fast
WORK = 2  # chain work a regtest block adds (nBits 0x207fffff)


def tip(label: str, height: int, work: int | None = -1) -> ChainTip:
    """A tip named by a label (the hash is the label, padded), with work `height * WORK` unless given."""
    return ChainTip(label.encode().ljust(32, b"\0"), height, height * WORK if work == -1 else work)


def node(
    name: str, priority: int, at: ChainTip | None, healthy: bool = True, error: str | None = None
) -> Candidate:
    return Candidate(name, priority, healthy, at, error)


def test_same_tip_the_lowest_priority_value_leads_and_ties_keep_the_order_given() -> None:
    t = tip("x", 10)
    nodes = [node("a", 1, t), node("b", 0, t), node("c", 0, t)]
    got = choose_leader(nodes, current=0)
    assert got.leader == 1 and got.measure == "chain work"
    assert got.reasons[1].startswith("leads: most chain work")
    assert got.reasons[0].startswith("standby: same tip as b") and got.reasons[2].startswith(
        "standby: same tip"
    )


def test_a_node_behind_never_leads_whatever_its_priority() -> None:
    nodes = [node("primary", 0, tip("old", 93)), node("backup", 1, tip("new", 182))]
    for current in (None, 0, 1):
        got = choose_leader(nodes, current)
        assert got.leader == 1
        assert got.reasons[0].startswith("behind: less chain work than backup (tip 93 ")


def test_more_work_wins_over_more_height() -> None:
    # chain work, not height: a shorter chain of harder blocks is the better chain
    nodes = [node("tall", 0, tip("t", 100, work=100)), node("heavy", 1, tip("h", 90, work=150))]
    assert choose_leader(nodes, 0).leader == 1


def test_equal_work_on_different_forks_the_current_leader_stays() -> None:
    nodes = [node("primary", 0, tip("fork-a", 3)), node("backup", 1, tip("fork-b", 3))]
    got = choose_leader(nodes, current=1)
    assert got.leader == 1
    assert (
        got.reasons[0].startswith("standby: equal chain work on another fork")
        and "backup keeps" in got.reasons[0]
    )
    assert "no flapping" in got.reasons[1]
    assert choose_leader(nodes, current=0).leader == 0
    # no current leader among them (first choice, or the leader died): priority picks the tip
    assert choose_leader(nodes, current=None).leader == 0
    dead = [node("old", 0, tip("fork-c", 3), healthy=False), *nodes]
    assert choose_leader(dead, current=0).leader == 1


def test_the_preferred_node_leads_again_once_on_the_leaders_tip() -> None:
    backup_tip = tip("b7", 7)
    behind = [node("primary", 0, tip("a3", 3)), node("backup", 1, backup_tip)]
    assert choose_leader(behind, current=1).leader == 1
    # same height on its own branch is not caught up (with chain work it is an equal fork: no switch)
    level = [node("primary", 0, tip("a7", 7)), node("backup", 1, backup_tip)]
    assert choose_leader(level, current=1).leader == 1
    caught_up = [node("primary", 0, backup_tip), node("backup", 1, backup_tip)]
    got = choose_leader(caught_up, current=1)
    assert got.leader == 0 and got.reasons[1].startswith("standby: same tip as primary")


def test_without_chain_work_nodes_are_compared_by_height() -> None:
    nodes = [node("primary", 0, tip("a", 5, work=None)), node("backup", 1, tip("b", 6))]
    got = choose_leader(nodes, current=0)
    assert got.leader == 1 and got.measure == "height"
    assert got.reasons[0].startswith("behind: less height than backup")


def test_down_nodes_and_nodes_without_a_template_never_lead() -> None:
    nodes = [
        node("down", 0, tip("x", 50), healthy=False, error="connection refused"),
        node("new", 0, None),
        node("up", 2, tip("y", 1)),
    ]
    got = choose_leader(nodes, current=0)
    assert got.leader == 2
    assert got.reasons[0] == "down: connection refused" and got.reasons[1] == "no template yet"
    nobody = choose_leader(nodes[:2], current=0)
    assert nobody.leader is None and nobody.reasons == ("down: connection refused", "no template yet")


TIPS = {"a": 3, "b": 3, "c": 4, "d": 5, "e": 5}  # blocks by hash label: a/b and d/e are equal-work forks

NODES = st.lists(
    st.tuples(
        st.integers(0, 3),  # priority
        st.booleans(),  # healthy
        st.one_of(st.none(), st.tuples(st.sampled_from(sorted(TIPS)), st.booleans())),  # tip, work known
    ),
    min_size=1,
    max_size=6,
)


@given(NODES, st.integers(0, 6))
def test_the_leader_has_the_most_work_and_comes_first_on_its_tip(
    spec: list[tuple[int, bool, tuple[str, bool] | None]], current_at: int
) -> None:
    nodes = []
    for i, (priority, healthy, t) in enumerate(spec):
        at = None
        if t is not None:
            label, known = t
            at = tip(label, TIPS[label], work=-1 if known else None)
        nodes.append(node(f"n{i}", priority, at, healthy))
    current = current_at if current_at < len(nodes) else None
    got = choose_leader(nodes, current)
    eligible = [c for c in nodes if c.healthy and c.tip is not None]
    assert len(got.reasons) == len(nodes) and all(got.reasons)
    if not eligible:
        assert got.leader is None
        return
    assert got.leader is not None
    lead = nodes[got.leader]
    assert lead.healthy and lead.tip is not None
    by_work = all(c.tip is not None and c.tip.chainwork is not None for c in eligible)

    def amount(c: Candidate) -> int:
        assert c.tip is not None
        return c.tip.chainwork if by_work and c.tip.chainwork is not None else c.tip.height

    def on_lead_tip(c: Candidate) -> bool:
        return c.tip is not None and lead.tip is not None and c.tip.block_hash == lead.tip.block_hash

    assert all(amount(c) <= amount(lead) for c in eligible)  # never a node behind another healthy one
    same_tip = [i for i, c in enumerate(nodes) if c in eligible and on_lead_tip(c)]
    assert got.leader == min(same_tip, key=lambda i: (nodes[i].priority, i))  # priority among equals
    cur = nodes[current] if current is not None else None
    if cur is not None and cur in eligible and amount(cur) == amount(lead):
        assert on_lead_tip(cur)  # an equal-work fork never takes the lead from the current leader


# --- judging a submitted block against the best chain ---


def test_a_block_is_found_only_when_a_node_on_the_best_chain_took_it() -> None:
    found = judge_submission(
        [
            SubmitResult("primary", "prev-blk-not-found", False, best_chain=False),
            SubmitResult("backup", None, True),
        ]
    )
    assert found == BlockVerdict(BlockOutcome.FOUND, None, ("backup",))
    stale = judge_submission(
        [SubmitResult("primary", None, True, best_chain=False), SubmitResult("backup", "inconclusive", False)]
    )
    assert stale == BlockVerdict(BlockOutcome.STALE_FORK, "inconclusive", ("primary",))
    refused = judge_submission(
        [SubmitResult("a", "high-hash", False), SubmitResult("b", "error: down", False)]
    )
    assert refused == BlockVerdict(BlockOutcome.REFUSED, "high-hash", ())
    assert judge_submission([SubmitResult("only", None, True)]).outcome is BlockOutcome.FOUND  # one node


# --- through a real FailoverSource over two embedded nodes ---


def source_for(n: EmbeddedNode, name: str, priority: int) -> NodeSource:
    return NodeSource(
        RpcClient(n.rpc_url, cookie_file=n.cookie_path, name=name),
        priority=priority,
        health_interval=0.1,
        retry_interval=0.1,
    )


async def until(failover: FailoverSource, what: str, pred) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        status = {s["name"]: s for s in failover.status()}
        if pred(status):
            return status
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}: {status}"
        await asyncio.sleep(0.02)


async def test_a_node_behind_stays_out_until_it_has_caught_up(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path / "primary") as (primary, rpc_p),
        running_node(tmp_path / "backup") as (
            backup,
            rpc_b,
        ),
    ):
        shared = await mine_blocks(rpc_b, 2)
        for h in shared:  # one chain to begin with
            assert await rpc_p.call("submitblock", await rpc_b.call("getblock", h, 0)) is None
        failover = FailoverSource([source_for(primary, "primary", 0), source_for(backup, "backup", 1)])
        await failover.start()
        try:
            status = await until(failover, "both nodes", lambda st: st["backup"]["height"] == 3)
            assert failover.active is not None and failover.active.name == "primary"
            assert status["primary"]["chainwork"] == status["backup"]["chainwork"] == f"{3 * WORK:064x}"

            ahead = await mine_blocks(rpc_b, 3)  # the backup moves on; the primary does not hear of it
            status = await until(failover, "the backup ahead", lambda st: st["backup"]["height"] == 6)
            assert failover.active.name == "backup" and status["backup"]["active"]
            assert status["primary"]["reason"].startswith("behind: less chain work than backup"), status

            # The pool's next block, built on the backup's tip, cannot join the primary's chain.
            results = await failover.submit_block(await rpc_b.call("getblock", ahead[-1], 0))
            assert {r.node: r.result for r in results} == {
                "primary": "prev-blk-not-found",
                "backup": "duplicate",
            }
            assert failover.active.name == "backup"

            # Relayed the missing blocks (as a peer would), one at a time: still behind until the last.
            for h in ahead[:-1]:
                assert await rpc_p.call("submitblock", await rpc_b.call("getblock", h, 0)) is None
            status = await until(failover, "the primary one behind", lambda st: st["primary"]["height"] == 5)
            assert failover.active.name == "backup" and status["primary"]["reason"].startswith("behind")
            assert await rpc_p.call("submitblock", await rpc_b.call("getblock", ahead[-1], 0)) is None
            status = await until(failover, "the primary leading again", lambda st: st["primary"]["active"])
            assert status["primary"]["height"] == status["backup"]["height"] == 6
            assert status["backup"]["reason"].startswith("standby: same tip as primary"), status
        finally:
            await failover.stop()

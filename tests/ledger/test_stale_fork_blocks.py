"""A block the pool reports on a stale fork (accepted only by a node off the best chain) is no found block:
the ledger records it orphaned, credits nothing, and the round goes on, so the shares before it are paid
by the next found block, once. If maturity tracking later sees it on the best chain after all, it is
followed to confirmation and still credits nothing: no share is paid twice.

Both store backends; the chain is `TinyChain` (tests/ledger/ledger_standins.py).
"""

from __future__ import annotations

import pytest
from ledger_standins import TinyChain

from pithead.events import BlockEvent, InvalidEvent, ShareEvent, decode_event, encode_event, validate
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.maturity import COINBASE_MATURITY, track
from pithead.ledger.schemes import Scheme
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BlockStatus

REWARD = 5_000_000_000


def share(t: float, address: str, d: float) -> ShareEvent:
    return ShareEvent(t, f"{address}.rig", address, d, "j", 10, True, share_difficulty=d)


def block(t: float, h: str, height: int, *, stale: bool) -> BlockEvent:
    return BlockEvent(
        t,
        height,
        h,
        "finder.rig",
        "finder",
        REWARD,
        0,
        accepted_by_node=not stale,
        node_result="inconclusive" if stale else None,
        stale_fork=stale,
    )


def credits_of(store: LedgerStore, h: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in store.credits(block_hash=h):
        out[c.address] = out.get(c.address, 0) + c.amount_sat
    return out


async def test_a_stale_fork_block_is_orphaned_credits_nothing_and_the_round_goes_on(
    store: LedgerStore,
) -> None:
    chain = TinyChain(20)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PROP, fee_ppm=0))
    stale_hash = "stale" + "0" * 59
    ledger.apply([share(1, "a", 3.0), share(2, "b", 1.0), block(3, stale_hash, 22, stale=True)])
    got = store.get_block(stale_hash)
    assert got is not None and got.status is BlockStatus.ORPHANED and got.node_result == "inconclusive"
    assert credits_of(store, stale_hash) == {}
    assert all(b.immature_sat == 0 and b.payable_sat == 0 for b in store.balances())

    # The next found block pays the whole round: the shares before the stale block are in it.
    chain.extend(1)
    ledger.apply([block(4, chain.best[21], 21, stale=False)])
    paid = credits_of(store, chain.best[21])
    assert set(paid) == {"a", "b"} and sum(paid.values()) == REWARD
    assert REWARD * 3 // 4 <= paid["a"] <= REWARD * 3 // 4 + 1

    # Should the stale block turn out on the best chain after all, it matures without a credit.
    chain.known[stale_hash] = 22
    chain.best.append(stale_hash)
    chain.extend(5)
    changes = await track(store, chain, 5.0)
    assert (stale_hash, BlockStatus.PENDING) in {(c.block_hash, c.new) for c in changes}
    chain.extend(COINBASE_MATURITY)
    changes = await track(store, chain, 6.0)
    assert (stale_hash, BlockStatus.CONFIRMED) in {(c.block_hash, c.new) for c in changes}
    assert credits_of(store, stale_hash) == {}
    assert sum(b.immature_sat + b.payable_sat for b in store.balances()) == REWARD  # nothing paid twice


def test_stale_fork_events_cross_the_bus_and_never_claim_acceptance() -> None:
    ev = block(1, "h" * 64, 5, stale=True)
    assert decode_event(encode_event(ev)) == ev
    with pytest.raises(InvalidEvent, match="stale_fork"):
        validate(BlockEvent(1, 5, "h" * 64, "w", "a", REWARD, 0, accepted_by_node=True, stale_fork=True))
    older = encode_event(block(1, "g" * 64, 5, stale=False)).replace(b',"stale_fork":false', b"")
    assert decode_event(older).stale_fork is False  # an event from a pool before the field: not stale

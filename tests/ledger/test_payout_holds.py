"""Payout holds (pithead.ledger.payouts): an operator holds a flagged worker's payouts, never the ledger on
its own; a held address is left out of every batch until released; every hold and release is in the audit
log with its actor, reason, authority and the evidence at that moment. On SQLite and PostgreSQL; the wallet
is the in-memory `StandInWallet` (tests/ledger/ledger_standins.py)."""

from __future__ import annotations

import json

import pytest
from ledger_standins import StandInWallet

from pithead.events import ShareEvent
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.payouts import HoldError, PayoutProcessor, hold_payouts, release_payouts
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import CreditKind, CreditRecord, CreditStatus, HoldAction

NOW = 1_800_000_000.0
HONEST, THIEF = "bcrt1qhonest", "bcrt1qthief"


def shares(address: str, n: int, t: float = NOW) -> list[ShareEvent]:
    # odds 1/10 each: n shares are n/10 blocks expected, and no block is ever found here
    return [ShareEvent(t + i, f"{address}.rig", address, 10.0, "j", 100, True, network_difficulty=100.0)
            for i in range(n)]


def flagged_pool(store: LedgerStore) -> Ledger:
    """The thief withheld 12 blocks' worth (flagged); the honest one has 2 blocks' worth (too little to say)."""
    ledger = Ledger(store, LedgerSettings())
    ledger.apply(shares(THIEF, 120) + shares(HONEST, 20))
    store.add_credits([CreditRecord(a, 500_000, CreditKind.PPS, CreditStatus.MATURE, NOW) for a in (THIEF, HONEST)])
    return ledger


def hold(store: LedgerStore, who: str, mode: str = "pool") -> object:
    return hold_payouts(store, who, actor="alice", reason="12 blocks expected, none found", auth="cli",
                        now=NOW + 500, mode=mode)


async def test_a_held_address_is_not_paid_until_released(store: LedgerStore) -> None:
    flagged_pool(store)
    wallet = StandInWallet(10**9)
    processor = PayoutProcessor(store, wallet, threshold_sat=100_000)
    # Flagged, but not held: the ledger never holds on its own, so it is paid like everyone else.
    assert store.payout_holds() == []
    report = await processor.run_once(NOW + 100)
    assert report.sent and wallet.paid() == {THIEF: 500_000, HONEST: 500_000}

    store.add_credits([CreditRecord(a, 300_000, CreditKind.PPS, CreditStatus.MATURE, NOW) for a in (THIEF, HONEST)])
    entry = hold(store, f"{THIEF}.rig")
    (held,) = store.payout_holds()
    assert (held.address, held.worker, held.actor) == (THIEF, f"{THIEF}.rig", "alice")
    await processor.run_once(NOW + 600)
    assert wallet.paid() == {THIEF: 500_000, HONEST: 800_000}  # the thief's new balance waits
    balance = {b.address: b.payable_sat for b in store.balances()}
    assert balance[THIEF] == 300_000  # still in the book, payable once released

    release_payouts(store, THIEF, actor="bob", reason="the miner's firmware bug is fixed", auth="cli",
                    now=NOW + 700)
    assert store.payout_holds() == []
    await processor.run_once(NOW + 800)
    assert wallet.paid() == {THIEF: 800_000, HONEST: 800_000}

    log = store.payout_hold_log(10)
    assert [(e.action, e.address, e.actor, e.auth) for e in log] == [
        (HoldAction.RELEASE, THIEF, "bob", "cli"), (HoldAction.HOLD, THIEF, "alice", "cli")]
    assert log[1].id == entry.id  # type: ignore[attr-defined]
    evidence = json.loads(log[1].evidence)
    assert evidence["worker"]["expected"] == pytest.approx(12.0) and evidence["worker"]["found"] == 0
    assert evidence["worker"]["flagged_since"] is not None and evidence["worker"]["p_value"] < 1e-5
    assert evidence["address"]["expected"] == pytest.approx(12.0)
    assert log[1].reason == "12 blocks expected, none found"
    assert store.payout_hold_log(10, address=HONEST) == []


def test_only_flagged_workers_and_only_in_pool_mode(store: LedgerStore) -> None:
    flagged_pool(store)
    with pytest.raises(HoldError, match="not flagged"):
        hold(store, f"{HONEST}.rig")
    with pytest.raises(HoldError, match="pool mode"):
        hold(store, f"{THIEF}.rig", mode="solo")
    with pytest.raises(HoldError, match="no worker or address"):
        hold(store, "bcrt1qnobody.rig")
    with pytest.raises(HoldError, match="reason"):
        hold_payouts(store, THIEF, actor="alice", reason=" ", auth="cli", now=NOW, mode="pool")
    with pytest.raises(HoldError, match="actor"):
        hold_payouts(store, THIEF, actor="", reason="why", auth="cli", now=NOW, mode="pool")
    hold(store, THIEF)  # by address: the address is flagged too
    with pytest.raises(HoldError, match="held already"):
        hold(store, f"{THIEF}.rig")
    with pytest.raises(HoldError, match="not held"):
        release_payouts(store, HONEST, actor="bob", reason="why", auth="cli", now=NOW)
    assert len(store.payout_hold_log(10)) == 1  # refusals write nothing

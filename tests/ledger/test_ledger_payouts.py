"""Payouts: threshold batches, one sendmany each, and never paying twice across crashes.

The wallet here is `StandInWallet` (tests/ledger/ledger_standins.py), an in-memory stand-in that keeps a
balance, transactions with comment and outputs, confirmations and conflicts, so crash and conflict paths
can be driven at random (property test). It signs and broadcasts nothing; the same processor pays through
pithead's real embedded node wallet in test_ledger_with_node.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_standins import StandInWallet

from pithead.chain.address import script_to_address
from pithead.chain.params import MAINNET, REGTEST
from pithead.ledger import payouts
from pithead.ledger.payouts import (
    LEASE_KEY,
    MAX_OUTPUTS_PER_BATCH,
    PAYOUT_ABANDON_AFTER_S,
    PAYOUT_FEE_RESERVE_SAT,
    PAYOUT_LEASE_S,
    PayoutProcessor,
    WalletError,
    WalletTx,
    btc_to_sat,
    holder_is_dead,
    lease_owner,
    machine_identity,
    plan,
    sat_to_btc_str,
)
from pithead.ledger.schemes import POOL_ACCOUNT
from pithead.ledger.store import open_store
from pithead.ledger.store.base import LedgerStore, StoreError
from pithead.ledger.store.records import BatchStatus, CreditKind, CreditRecord, CreditStatus


class Crash(Exception):
    """The process dying at a chosen point (raised through the processor, like a kill would stop it)."""


class FaultyWallet:
    """Wraps a wallet and fails around sendmany: 'before' (nothing sent), 'after' (sent, then the process
    dies before recording), 'timeout' (sent, but the caller only sees a transport error)."""

    def __init__(self, inner: StandInWallet, mode: str) -> None:
        self.inner, self.mode = inner, mode

    async def getbalance(self) -> int:
        return await self.inner.getbalance()

    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str:
        if self.mode == "before":
            raise Crash("died before the wallet call")
        txid = await self.inner.sendmany(amounts, comment)
        if self.mode == "after":
            raise Crash("died after sendmany returned, before recording the txid")
        if self.mode == "timeout":
            raise WalletError("read timeout")
        return txid

    async def gettransaction(self, txid: str) -> WalletTx:
        return await self.inner.gettransaction(txid)

    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        return await self.inner.find_transaction(comment, amounts)

    async def in_mempool(self, txid: str) -> bool:
        return await self.inner.in_mempool(txid)

    async def resubmit(self, txid: str) -> str | None:
        return await self.inner.resubmit(txid)

    async def abandon(self, txid: str) -> bool:
        return await self.inner.abandon(txid)


def credit(store: LedgerStore, address: str, sat: int) -> None:
    store.add_credits([CreditRecord(address, sat, CreditKind.PPS, CreditStatus.MATURE, 0.0)])


def paid_in_book(store: LedgerStore) -> dict[str, int]:
    return {b.address: b.paid_sat for b in store.balances() if b.paid_sat}


async def test_pays_due_balances_in_one_batch(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 150_000)
    credit(store, "bcrt1qb", 99_999)  # below the threshold: waits
    credit(store, POOL_ACCOUNT, 10**8)  # the pool's own account is never paid out
    report = await PayoutProcessor(store, wallet, 100_000).run_once(1.0)
    assert len(report.created) == 1 and len(report.sent) == 1
    assert wallet.paid() == {"bcrt1qa": 150_000}
    assert paid_in_book(store) == {"bcrt1qa": 150_000}
    wallet.mine()
    again = await PayoutProcessor(store, wallet, 100_000).run_once(2.0)
    assert again.confirmed == report.created and again.created == ()
    assert store.batches()[0].status is BatchStatus.CONFIRMED


@pytest.mark.parametrize("mode", ["after", "timeout"])
async def test_crash_after_sendmany_never_pays_twice(store: LedgerStore, mode: str) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    credit(store, "bcrt1qb", 300_000)
    faulty = FaultyWallet(wallet, mode)
    if mode == "after":
        with pytest.raises(Crash):
            await PayoutProcessor(store, faulty, 100_000).run_once(1.0)
    else:
        report = await PayoutProcessor(store, faulty, 100_000).run_once(1.0)
        assert report.sent == () and report.failed == ()
    (batch,) = store.batches()
    assert batch.status is BatchStatus.INTENT and batch.txid is None  # the crash left only the intent
    assert wallet.paid() == {"bcrt1qa": 500_000, "bcrt1qb": 300_000}  # ...but the money went out
    calls = wallet.calls
    report = await PayoutProcessor(store, wallet, 100_000).run_once(2.0)  # restart, healthy wallet
    assert wallet.calls == calls  # no second sendmany
    ((batch_id, txid),) = report.recovered
    assert batch_id == batch.id and txid in wallet.txs
    assert report.created == ()  # the reserved amounts are not due again
    assert wallet.paid() == paid_in_book(store) == {"bcrt1qa": 500_000, "bcrt1qb": 300_000}


async def test_crash_before_sendmany_sends_on_rerun(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    with pytest.raises(Crash):
        await PayoutProcessor(store, FaultyWallet(wallet, "before"), 100_000).run_once(1.0)
    assert wallet.paid() == {}
    report = await PayoutProcessor(store, wallet, 100_000).run_once(2.0)
    assert len(report.sent) == 1 and report.created == ()
    assert wallet.paid() == {"bcrt1qa": 500_000}


async def test_refused_and_conflicted_batches_release_their_amounts(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "not-an-address", 250_000)  # the wallet refuses the whole batch
    report = await PayoutProcessor(store, wallet, 100_000).run_once(1.0)
    assert len(report.failed) == 1 and wallet.paid() == {}
    assert store.balances()[0].payable_sat == 250_000  # released, not lost
    credit(store, "bcrt1qa", 250_000)
    store.add_credits([CreditRecord("not-an-address", -250_000, CreditKind.PPS, CreditStatus.MATURE, 0.0)])
    report = await PayoutProcessor(store, wallet, 100_000).run_once(2.0)
    ((_, txid),) = report.sent
    wallet.conflict(txid)
    report = await PayoutProcessor(store, wallet, 100_000).run_once(3.0)
    assert len(report.failed) == 1  # the conflicted batch failed...
    assert len(report.sent) == 1  # ...and its amount went into a new batch, paid once
    assert wallet.paid() == {"bcrt1qa": 250_000} == paid_in_book(store)


async def test_no_batch_the_wallet_cannot_fund(store: LedgerStore) -> None:
    wallet = StandInWallet(PAYOUT_FEE_RESERVE_SAT + 300_000)
    credit(store, "bcrt1qa", 400_000)  # more than the wallet can spare: waits
    credit(store, "bcrt1qb", 200_000)  # fits: paid
    report = await PayoutProcessor(store, wallet, 100_000).run_once(1.0)
    assert report.failed == () and wallet.paid() == {"bcrt1qb": 200_000}
    assert {b.address: b.payable_sat for b in store.balances()} == {"bcrt1qa": 400_000, "bcrt1qb": 0}


async def test_addresses_invalid_on_the_network_never_block_a_batch(store: LedgerStore) -> None:
    good = script_to_address(bytes([0, 20]) + bytes(range(20)), REGTEST)
    mainnet = script_to_address(bytes([0, 20]) + bytes(range(20)), MAINNET)
    assert good is not None and mainnet is not None
    wallet = StandInWallet(10**9)
    credit(store, good, 300_000)
    credit(store, mainnet, 300_000)  # a mainnet address on a regtest pool: never put in a batch
    report = await PayoutProcessor(store, wallet, 100_000, network=REGTEST).run_once(1.0)
    assert len(report.sent) == 1 and wallet.paid() == {good: 300_000}
    assert {b.address: b.payable_sat for b in store.balances()}[mainnet] == 300_000


def test_plan_is_bounded_and_skips_the_pool() -> None:
    due = plan({f"bcrt1q{i:04d}": 1000 + i for i in range(MAX_OUTPUTS_PER_BATCH + 50)} | {POOL_ACCOUNT: 10**9}, 1000)
    assert len(due) == MAX_OUTPUTS_PER_BATCH and POOL_ACCOUNT not in due
    assert min(due.values()) == 1050  # the largest balances go first
    assert plan({"x": 500, "y": 300, "z": 200}, 100, budget_sat=550) == {"x": 500}
    assert plan({"x": 500, "y": 300, "z": 200}, 100, budget_sat=520, payable=lambda a: a != "x") == {"y": 300, "z": 200}


def test_btc_amount_conversions_are_exact() -> None:
    for sat in (0, 1, 99_999_999, 100_000_000, 2_099_999_997_690_000, 123_456_789):
        assert btc_to_sat(sat_to_btc_str(sat)) == sat
    assert sat_to_btc_str(1) == "0.00000001"
    assert btc_to_sat(0.1) == 10_000_000  # a JSON float from Core, through its decimal text
    with pytest.raises(ValueError):
        btc_to_sat("0.000000001")


STEP = st.tuples(
    st.dictionaries(st.sampled_from(["bcrt1qa", "bcrt1qb", "bcrt1qc"]), st.integers(1, 300_000), max_size=3),
    st.sampled_from(["ok", "ok", "before", "after", "timeout", "mine"]),
)


@given(st.lists(STEP, min_size=1, max_size=8))
@settings(max_examples=40, deadline=None)
async def test_random_crashes_never_pay_twice_and_eventually_pay_all(steps: list[tuple[dict[str, int], str]]) -> None:
    store = open_store("sqlite://:memory:")
    wallet = StandInWallet(10**12)
    credited: dict[str, int] = {}
    for t, (credits, mode) in enumerate(steps):
        for a, v in credits.items():
            credit(store, a, v)
            credited[a] = credited.get(a, 0) + v
        if mode == "mine":
            wallet.mine()
            continue
        w = wallet if mode == "ok" else FaultyWallet(wallet, mode)
        try:
            await PayoutProcessor(store, w, 100_000).run_once(float(t))
        except Crash:
            pass
        # the wallet never paid anyone more than they were credited
        assert all(v <= credited.get(a, 0) for a, v in wallet.paid().items())
    for t in range(2):  # recover with a healthy wallet
        await PayoutProcessor(store, wallet, 100_000).run_once(100.0 + t)
    assert wallet.paid() == paid_in_book(store)
    comments = [tx["comment"] for tx in wallet.txs.values()]
    assert len(comments) == len(set(comments))  # one transaction per batch
    for b in store.balances():
        assert 0 <= b.payable_sat < 100_000 and b.reserved_sat == 0
    store.close()


async def test_two_runs_at_once_send_a_batch_only_once(store: LedgerStore) -> None:
    import asyncio

    class SlowWallet(StandInWallet):
        async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str:
            await asyncio.sleep(0.05)  # the first run is still inside sendmany when the second starts
            return await super().sendmany(amounts, comment)

    wallet = SlowWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    first, second = PayoutProcessor(store, wallet, 100_000), PayoutProcessor(store, wallet, 100_000)
    a, b = await asyncio.gather(first.run_once(1.0), second.run_once(1.0))
    assert sorted([a.skipped, b.skipped]) == [False, True]
    assert wallet.calls == 1 and wallet.paid() == {"bcrt1qa": 500_000}
    later = await second.run_once(2.0)  # the lease was released: the next run proceeds
    assert not later.skipped
    # a lease left by a crashed run expires
    assert store.try_lease("payout_lease", "crashed-run", 5.0, 10.0)
    assert (await first.run_once(5.0)).skipped
    assert not (await first.run_once(11.0)).skipped


async def test_a_txid_the_wallet_forgot_is_left_for_an_operator(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    credit(store, "bcrt1qb", 400_000)
    first = await PayoutProcessor(store, wallet, 100_000).run_once(1.0)
    ((batch_id, txid),) = first.sent
    del wallet.txs[txid]  # the node restarted and its wallet lost the unconfirmed transaction
    credit(store, "bcrt1qc", 300_000)
    report = await PayoutProcessor(store, wallet, 100_000).run_once(2.0)
    assert len(report.sent) == 1  # other payouts go on
    stuck = next(b for b in store.batches() if b.id == batch_id)
    assert stuck.status is BatchStatus.SENT and stuck.error is not None and "does not know" in stuck.error
    assert {b.address: b.paid_sat for b in store.balances()}["bcrt1qa"] == 500_000  # never re-paid


# --- a sent payment that leaves the mempool: held while it might confirm, released once it cannot ---------
def reserved_in_book(store: LedgerStore) -> dict[str, int]:
    return {b.address: b.reserved_sat for b in store.balances() if b.reserved_sat}


async def test_evicted_payout_is_held_then_abandoned_and_paid_once(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    ((batch_id, txid),) = (await processor.run_once(1.0)).sent
    wallet.evict(txid)  # out of the mempool; offered again, the node says no
    report = await processor.run_once(2.0)
    assert report.stuck == (batch_id,) and report.failed == () and report.created == ()
    (batch,) = store.batches()
    assert batch.status is BatchStatus.STUCK and batch.stuck_since == 2.0 and "mempool full" in (batch.error or "")
    assert any(r.levelname == "WARNING" and "STUCK" in r.getMessage() for r in caplog.records)
    # held: neither paid (it may never confirm) nor payable (it may still confirm)
    assert reserved_in_book(store) == {"bcrt1qa": 500_000} and paid_in_book(store) == {}
    just_before = 2.0 + PAYOUT_ABANDON_AFTER_S - 1
    report = await processor.run_once(just_before)
    assert report.failed == () and report.created == () and not wallet.txs[txid]["abandoned"]
    assert store.batches()[0].stuck_since == 2.0  # the bound runs from when it was first found out
    report = await processor.run_once(2.0 + PAYOUT_ABANDON_AFTER_S)
    assert report.failed == (batch_id,) and wallet.txs[txid]["abandoned"]
    ((new_id, new_txid),) = report.sent  # released, and paid again in a new batch
    assert new_id != batch_id and new_txid != txid
    wallet.mine()
    await processor.run_once(3.0 + PAYOUT_ABANDON_AFTER_S)
    assert wallet.confirmed_paid() == paid_in_book(store) == {"bcrt1qa": 500_000}
    assert {b.id: b.status for b in store.batches()} == {batch_id: BatchStatus.FAILED, new_id: BatchStatus.CONFIRMED}


async def test_stuck_payout_that_comes_back_is_never_paid_twice(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    credit(store, "bcrt1qb", 400_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    ((first, txid),) = (await processor.run_once(1.0)).sent
    wallet.evict(txid)
    assert (await processor.run_once(2.0)).stuck == (first,)
    wallet.readmit(txid)  # room in the mempool again
    report = await processor.run_once(3.0)
    assert report.sent == () and report.created == () and store.batches()[0].status is BatchStatus.SENT
    assert store.batches()[0].error is None and store.batches()[0].stuck_since is None
    wallet.evict(txid)
    assert (await processor.run_once(4.0)).stuck == (first,)
    wallet.confirm_elsewhere(txid)  # mined from another node's mempool while stuck here
    report = await processor.run_once(4.0 + 2 * PAYOUT_ABANDON_AFTER_S)
    assert report.confirmed == (first,) and report.failed == () and report.created == ()
    assert wallet.calls == 1
    assert wallet.confirmed_paid() == paid_in_book(store) == {"bcrt1qa": 500_000, "bcrt1qb": 400_000}


async def test_a_wallet_that_cannot_abandon_leaves_a_stuck_batch_held(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    wallet = StandInWallet(10**9, can_abandon=False)
    credit(store, "bcrt1qa", 500_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    ((_, txid),) = (await processor.run_once(1.0)).sent
    wallet.evict(txid, "bad-txns-inputs-missingorspent")
    await processor.run_once(2.0)
    for t in (1, 2):  # however long it stays out
        report = await processor.run_once(2.0 + t * PAYOUT_ABANDON_AFTER_S)
        assert report.failed == () and report.created == ()
    (batch,) = store.batches()
    assert batch.status is BatchStatus.STUCK and "cannot abandon" in (batch.error or "")
    assert reserved_in_book(store) == {"bcrt1qa": 500_000} and wallet.calls == 1
    assert sum("cannot abandon" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") == 1


async def test_a_released_payment_that_confirms_after_all_is_booked(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    ((batch_id, txid),) = (await processor.run_once(1.0)).sent
    wallet.evict(txid)
    await processor.run_once(2.0)
    report = await processor.run_once(2.0 + PAYOUT_ABANDON_AFTER_S)
    assert report.failed == (batch_id,) and len(report.sent) == 1
    wallet.mine()
    wallet.confirm_elsewhere(txid)  # another node still had the abandoned one: both are paid
    report = await processor.run_once(3.0 + PAYOUT_ABANDON_AFTER_S)
    assert report.confirmed_late == (batch_id,)
    assert wallet.confirmed_paid() == paid_in_book(store) == {"bcrt1qa": 1_000_000}  # the book tells the truth
    assert {b.address: b.payable_sat for b in store.balances()} == {"bcrt1qa": -500_000}  # later credits repay it
    assert any(r.levelname == "ERROR" and "paid twice" in r.getMessage() for r in caplog.records)
    credit(store, "bcrt1qa", 600_000)
    later = await processor.run_once(4.0 + PAYOUT_ABANDON_AFTER_S)
    assert later.created and wallet.txs[later.sent[0][1]]["outputs"] == {"bcrt1qa": 100_000}


async def test_a_txid_whose_record_failed_is_found_by_that_txid(store: LedgerStore) -> None:
    """sendmany returned, recording the txid failed (database away): the same process finds the payment by
    the txid it was given, even in a wallet that cannot find it by comment."""

    class NoComments(StandInWallet):
        async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
            return None

    wallet = NoComments(10**9)
    credit(store, "bcrt1qa", 500_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    real_update = store.update_batch
    fail_once = [True]

    def flaky_update(*args: Any, **kwargs: Any) -> None:
        if fail_once and args[1] is BatchStatus.SENT:
            fail_once.clear()
            raise StoreError("database went away")
        real_update(*args, **kwargs)

    store.update_batch = flaky_update  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreError):
            await processor.run_once(1.0)
    finally:
        store.update_batch = real_update  # type: ignore[method-assign]
    (batch,) = store.batches()
    assert batch.status is BatchStatus.INTENT and wallet.calls == 1
    (txid,) = wallet.txs
    report = await processor.run_once(2.0)
    assert report.recovered == ((batch.id, txid),) and report.sent == () and wallet.calls == 1


async def test_a_run_out_of_lease_time_sends_nothing_more(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    processor = PayoutProcessor(store, wallet, 100_000)
    monkeypatch.setattr(payouts, "PAYOUT_RUN_BUDGET_S", -1.0)  # every send would start too late
    report = await processor.run_once(1.0)
    assert report.created and report.sent == () and wallet.calls == 0
    assert store.batches()[0].status is BatchStatus.INTENT
    monkeypatch.setattr(payouts, "PAYOUT_RUN_BUDGET_S", PAYOUT_LEASE_S / 2)
    report = await processor.run_once(2.0)
    assert len(report.sent) == 1 and report.created == () and wallet.calls == 1


# --- the lease after a kill -9 --------------------------------------------------------------------------
def dead_pid() -> int:
    """The pid of a process that has run and exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


async def test_a_restart_takes_over_a_dead_processs_lease_at_once(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    credit(store, "bcrt1qa", 500_000)
    here = machine_identity()
    if here is None:
        pytest.skip("no /proc: leases are only ever left to expire here")
    # held until t=1000 by a process of this machine that was killed mid-run
    assert store.try_lease(LEASE_KEY, f"{here}|{dead_pid()}|killed", 10.0, 10.0 + PAYOUT_LEASE_S)
    report = await PayoutProcessor(store, wallet, 100_000).run_once(11.0)
    assert not report.skipped and len(report.sent) == 1
    # a live holder (this very test process, another processor) is respected, as is one on another machine
    for owner in (f"{here}|{os.getpid()}|alive", f"elsewhere/boot/pid:[1]|{dead_pid()}|remote", "crashed-run"):
        assert store.try_lease(LEASE_KEY, owner, 20.0, 20.0 + PAYOUT_LEASE_S)
        assert (await PayoutProcessor(store, wallet, 100_000).run_once(21.0)).skipped
        assert not (await PayoutProcessor(store, wallet, 100_000).run_once(20.0 + PAYOUT_LEASE_S)).skipped
    assert holder_is_dead(lease_owner()) is False  # a processor of this process is alive


STUCK_STEP = st.tuples(
    st.dictionaries(st.sampled_from(["bcrt1qa", "bcrt1qb", "bcrt1qc"]), st.integers(1, 300_000), max_size=3),
    st.sampled_from(["ok", "ok", "mine", "evict", "readmit", "wait", "elsewhere", "after"]),
)


@given(st.lists(STUCK_STEP, min_size=1, max_size=10))
@settings(max_examples=40, deadline=None)
async def test_random_evictions_never_pay_what_the_book_does_not_say(steps: list[tuple[dict[str, int], str]]) -> None:
    """Evictions, readmissions, the abandon bound passing, crashes after sendmany and abandoned payments that
    confirm after all, at random: the book's paid amount always covers what the wallet has paid or still
    may pay, except a late confirmation of an abandoned payment (which the book then records); in the end
    the book says exactly what the chain paid."""
    store = open_store("sqlite://:memory:")
    wallet = StandInWallet(10**12)
    processor = PayoutProcessor(store, wallet, 100_000)
    now = 0.0
    late = False
    for credits, mode in steps:
        now += 1.0
        for a, v in credits.items():
            credit(store, a, v)
        pending = [t for t, tx in wallet.txs.items() if int(tx["confirmations"]) == 0 and not tx["abandoned"]]
        if mode == "mine":
            wallet.mine()
        elif mode == "evict" and pending:
            wallet.evict(pending[-1])
        elif mode == "readmit" and pending:
            wallet.readmit(pending[0])
        elif mode == "wait":
            now += PAYOUT_ABANDON_AFTER_S
        elif mode == "elsewhere":
            gone = [t for t, tx in wallet.txs.items() if tx["abandoned"]]
            if gone:
                wallet.confirm_elsewhere(gone[0])
                late = True
        w = FaultyWallet(wallet, "after") if mode == "after" else wallet
        try:
            await PayoutProcessor(store, w, 100_000).run_once(now) if mode == "after" else await processor.run_once(now)
        except Crash:
            pass
        held = {a: paid_in_book(store).get(a, 0) + reserved_in_book(store).get(a, 0) for a in wallet.paid()}
        if not late:
            assert all(v <= held[a] for a, v in wallet.paid().items())
    for tx_id, tx in wallet.txs.items():  # let everything settle: room in the mempool, time, blocks
        if int(tx["confirmations"]) == 0 and not tx["abandoned"]:
            wallet.readmit(tx_id)
    for _ in range(3):
        now += PAYOUT_ABANDON_AFTER_S
        await processor.run_once(now)
        wallet.mine()
        await processor.run_once(now + 1)
    assert wallet.confirmed_paid() == paid_in_book(store)
    assert {b.status for b in store.batches()} <= {BatchStatus.CONFIRMED, BatchStatus.FAILED}
    store.close()

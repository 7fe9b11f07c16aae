"""The ledger's notices: blocks found, stale or refused when recorded (once, after the commit), confirmed
and orphaned by maturity tracking, payouts sent, failed and stuck, and workers gone quiet; each with the
figures an operator on a phone needs. The ledger runs for real on its stores (SQLite and PostgreSQL), fed
through its bus, against the ledger tests' stand-in chain and wallet; the sink records what it is told."""

from __future__ import annotations

import asyncio

from receivers import Recorder, until

from ledger.ledger_standins import StandInWallet, TinyChain
from pithead.events import BlockEvent, Notice, ShareEvent
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.notices import MAX_LISTED, btc, payout_notices
from pithead.ledger.payouts import PayoutProcessor
from pithead.ledger.quiet import QuietWatcher
from pithead.ledger.schemes import Scheme
from pithead.ledger.service import Timers, run_ledger
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import CreditKind, CreditRecord, CreditStatus, WorkerRow

FAST = Timers(rollup_s=0.02, maturity_s=0.02, payout_s=0.02)


def block(height: int, block_hash: str, **kw: object) -> BlockEvent:
    fields: dict[str, object] = {"time": 1042.0, "height": height, "block_hash": block_hash,
                                 "worker": "bcrt1qbob.rig", "address": "bcrt1qbob", "reward_sat": 5_000_000_000,
                                 "fees_sat": 12_345, "accepted_by_node": True, "network_difficulty": 10.0}
    fields.update(kw)
    return BlockEvent(**fields)  # type: ignore[arg-type]


async def test_a_block_found_confirmed_and_paid_is_told_each_time(store: LedgerStore) -> None:
    chain = TinyChain(300)
    wallet = StandInWallet(10**10)
    told = Recorder()
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS, fee_ppm=10_000, pplns_n=2.0,
                                          payout_threshold_sat=100_000), notices=told)
    bus = MemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(ledger, bus, stop, node=chain, wallet=wallet, timers=FAST, notices=told))
    try:
        for i in range(20):
            bus.put(ShareEvent(1000.0 + i, "bcrt1qbob.rig", "bcrt1qbob", 1.0, "j", 301, True))
        bus.put(block(250, chain.best[250]))
        await until(lambda: told.of("block.found"))
        (found,) = told.of("block.found")
        assert found.severity == "info" and found.key == chain.best[250]
        assert found.title == "Block 250 found by bcrt1qbob.rig"
        assert f"Hash {chain.best[250]}" in found.body
        assert "Reward 50.00000000 BTC (fees 0.00012345 BTC), credited under PPLNS" in found.body
        assert "payout address bcrt1qbob" in found.body and "100 confirmations" in found.body
        bus.put(block(250, chain.best[250]))  # redelivered: recorded once, told once
        chain.extend(49)
        await until(lambda: told.of("block.confirmed") and told.of("payout.sent"))
        (confirmed,) = told.of("block.confirmed")
        assert confirmed.title == "Block 250 confirmed: 50.00000000 BTC now payable"
        assert "100 confirmations" in confirmed.body
        (sent,) = told.of("payout.sent")
        ((batch_id, txid),) = [(b.id, b.txid) for b in store.batches()]
        assert sent.title == f"Payout batch {batch_id} sent: 49.50000000 BTC to 1 address"
        assert f"Transaction {txid}" in sent.body and "bcrt1qbob 49.50000000 BTC" in sent.body
    finally:
        stop.set()
        await task
    assert len(told.of("block.found")) == 1


async def test_orphaned_and_back_on_the_best_chain(store: LedgerStore) -> None:
    chain = TinyChain(300)
    told = Recorder()
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO), notices=told)
    bus = MemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(ledger, bus, stop, node=chain, timers=FAST, notices=told))
    try:
        ours = chain.best[298]
        bus.put(block(298, ours))
        await until(lambda: told.of("block.found"))
        old_branch = chain.best[298:]
        chain.reorg(297, 4, "other")
        await until(lambda: told.of("block.orphaned"))
        (orphaned,) = told.of("block.orphaned")
        assert orphaned.severity == "warning" and orphaned.key == ours
        assert orphaned.title == "Block 298 orphaned: 50.00000000 BTC of credits void"
        assert "getchaintips" in orphaned.body
        chain.restore([*old_branch, *(f"main{h:060d}x" for h in range(301, 306))])
        await until(lambda: len(told.of("block.found")) == 2)
        back = told.of("block.found")[1]
        assert back.title == "Block 298 is back on the best chain" and back.key == f"{ours}:back"
    finally:
        stop.set()
        await task


def test_stale_and_refused_blocks_say_which(store: LedgerStore) -> None:
    told = Recorder()
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS), notices=told)
    ledger.apply([
        block(10, "aa" * 32, accepted_by_node=False, stale_fork=True),
        block(11, "bb" * 32, accepted_by_node=False, node_result="inconclusive"),
        block(12, "cc" * 32, accepted_by_node=False, node_result="bad-txnmrklroot"),
    ])
    stale, race, invalid = told.notices
    assert (stale.kind, stale.severity) == ("block.stale", "warning")
    assert stale.title == "Block 10 is on a stale fork: nothing credited"
    assert (race.kind, race.severity) == ("block.stale", "warning") and "lost a race" in race.body
    assert race.title == "Block 11 refused by the node: inconclusive"
    assert (invalid.kind, invalid.severity) == ("block.stale", "critical")
    assert "judged it invalid" in invalid.body and "block assembly" in invalid.body


async def test_payouts_failed_and_stuck(store: LedgerStore) -> None:
    wallet = StandInWallet(10**9)
    store.add_credits([CreditRecord("not-an-address", 250_000, CreditKind.PPS, CreditStatus.MATURE, 0.0)])
    processor = PayoutProcessor(store, wallet, 100_000)

    async def run(now: float) -> list[Notice]:
        report = await processor.run_once(now)
        return payout_notices(report, {b.id: b for b in store.batches()}, now)

    (refused,) = await run(1.0)  # the wallet refuses the whole batch
    assert (refused.kind, refused.severity) == ("payout.failed", "critical")
    assert "refused by the wallet: 0.00250000 BTC back to the balances" in refused.title
    assert "Invalid Bitcoin address" in refused.body and "not-an-address 0.00250000 BTC" in refused.body
    store.add_credits([CreditRecord("not-an-address", -250_000, CreditKind.PPS, CreditStatus.MATURE, 0.0),
                       CreditRecord("bcrt1qa", 500_000, CreditKind.PPS, CreditStatus.MATURE, 0.0)])
    (sent,) = await run(2.0)
    txid = next(iter(wallet.txs))
    wallet.evict(txid)
    (stuck,) = await run(3.0)
    assert (stuck.kind, stuck.severity, stuck.key) == ("payout.stuck", "warning", sent.key)
    assert f"Transaction {txid} left the mempool" in stuck.body and "mempool full" in stuck.body
    assert "0.00500000 BTC stay reserved" in stuck.body
    wallet.conflict(txid)
    released, resent = await run(4.0)  # can no longer confirm: released, and paid in a new batch
    assert (released.kind, released.severity) == ("payout.failed", "warning")
    assert "released: 0.00500000 BTC back to the balances" in released.title and "conflicted" in released.body
    assert resent.kind == "payout.sent"


def test_a_big_payout_lists_the_largest_outputs_and_how_many_more(store: LedgerStore) -> None:
    from pithead.ledger.notices import payout_sent
    from pithead.ledger.store.records import BatchStatus, PayoutBatch

    items = tuple((f"bcrt1q{i:03d}", 100_000 + i) for i in range(25))
    notice = payout_sent(PayoutBatch(7, 1.0, 1.0, BatchStatus.SENT, "ff" * 32, items), "ff" * 32, 1.0)
    lines = notice.body.splitlines()
    assert lines[1] == "bcrt1q024 0.00100024 BTC"  # largest first
    assert len(lines) == 1 + MAX_LISTED + 1 and lines[-1] == f"… and {25 - MAX_LISTED} more"
    assert notice.title == f"Payout batch 7 sent: {btc(sum(v for _, v in items))} to 25 addresses"


# --- workers gone quiet --------------------------------------------------------------------------------


def row(worker: str, last: float | None, address: str = "bcrt1qa") -> WorkerRow:
    return WorkerRow(worker, address, 0.0, last, 1.0, 0.0, None, 1, 0, 1.0)


def test_quiet_workers_are_told_once_per_address_and_only_if_they_were_active() -> None:
    w = QuietWatcher(600.0)
    rows = [row("bcrt1qa.r1", 1000.0), row("bcrt1qa.r2", 1000.0), row("bcrt1qb.r1", 1000.0, "bcrt1qb"),
            row("bcrt1qa.old", 100.0), row("bcrt1qa.never", None)]
    assert w.observe(rows, 1100.0) == []  # r1, r2 and b's r1 active; "old" was quiet before we looked
    quiet = w.observe(rows, 1600.0)
    assert [n.title for n in quiet] == ["2 workers of bcrt1qa quiet for 10 min", "Worker bcrt1qb.r1 quiet for 10 min"]
    assert all(n.kind == "worker.quiet" and n.severity == "warning" for n in quiet)
    assert "bcrt1qa.r1: last share 00:16 UTC (10 min ago)" in quiet[0].body
    assert "bcrt1qa.old" not in quiet[0].body
    assert w.observe(rows, 1700.0) == []  # told once
    back = [row("bcrt1qa.r1", 1750.0), *rows[1:]]
    assert w.observe(back, 1760.0) == []  # r1 is back: watched again
    (again,) = w.observe(back, 2400.0)
    assert again.title == "Worker bcrt1qa.r1 quiet for 10 min"


async def test_the_ledger_watches_for_quiet_workers(store: LedgerStore) -> None:
    told = Recorder()
    now = [1000.0]
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPLNS))
    watcher = QuietWatcher(10.0)  # looked at every second (a tenth of it, at least 1 s)
    bus = MemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(ledger, bus, stop, timers=FAST, clock=lambda: now[0], notices=told,
                                          quiet=watcher))
    try:
        bus.put(ShareEvent(995.0, "bcrt1qa.rig", "bcrt1qa", 1.0, "j", 1, True))
        await until(lambda: watcher.watching("bcrt1qa.rig"))  # seen active
        now[0] = 1005.0  # 10 s after its last share, on the ledger's clock
        await until(lambda: told.of("worker.quiet"))
        (quiet,) = told.of("worker.quiet")
        assert quiet.title == "Worker bcrt1qa.rig quiet for 0 min" and quiet.key == "bcrt1qa:bcrt1qa.rig"
        assert "Payout address bcrt1qa" in quiet.body
    finally:
        stop.set()
        await task

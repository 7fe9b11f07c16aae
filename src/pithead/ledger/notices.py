"""What the ledger tells an operator: the `Notice`s of blocks, maturity, payouts and quiet workers.

Pure builders, each from what the ledger just recorded (a block event, a maturity change, a payout batch, a
worker's last share): a one-line title a phone shows whole, and a body with the figures (height, hash,
amounts in BTC, addresses) and what to look at. The ledger, the maturity job, the payout processor and the
quiet-worker watcher hand them to the `NoticeSink` they were given (`pithead.notify` delivers them).

What it is not: deciding when to raise them (the callers do, after their writes commit), or delivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pithead.events import BlockEvent, Notice, NoticeSeverity
from pithead.ledger.maturity import COINBASE_MATURITY, Change
from pithead.ledger.payouts import PAYOUT_ABANDON_AFTER_S, SAT_PER_BTC, PayoutReport
from pithead.ledger.store.records import BlockRecord, BlockStatus, PayoutBatch, WorkerRow, lost_a_race

MAX_LISTED = 10
"""Lines of a list (payout outputs, quiet workers) a notice shows before "and N more": a phone screen."""
BLOCK_SPACING_MIN = 10
"""Bitcoin's target block spacing (Core's nPowTargetSpacing, 600 s): how long maturity takes, roughly."""



def btc(sat: int) -> str:
    """An amount as a phone should show it: BTC with its 8 decimals, never a float's rounding."""
    sign = "-" if sat < 0 else ""
    sat = abs(sat)
    return f"{sign}{sat // SAT_PER_BTC}.{sat % SAT_PER_BTC:08d} BTC"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M UTC")


def _listed(lines: Sequence[str]) -> list[str]:
    shown = list(lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        shown.append(f"… and {len(lines) - MAX_LISTED} more")
    return shown


# --- blocks ----------------------------------------------------------------------------------------------


def block_recorded(ev: BlockEvent, scheme: str, network_difficulty: float) -> Notice:
    """A block the ledger just recorded: found (block.found), on a stale fork or refused (block.stale)."""
    figures = [f"Hash {ev.block_hash}", f"Found by {ev.worker} (payout address {ev.address})"]
    if ev.accepted_by_node:
        hours = COINBASE_MATURITY * BLOCK_SPACING_MIN / 60
        body = [
            *figures,
            f"Reward {btc(ev.reward_sat)} (fees {btc(ev.fees_sat)}), credited under {scheme.upper()}",
            *([f"Network difficulty {network_difficulty:.6g}"] if network_difficulty > 0 else []),
            f"Pending: its credits mature after {COINBASE_MATURITY} confirmations (about {hours:.0f} h on "
            "mainnet).",
        ]
        return Notice("block.found", "info", f"Block {ev.height} found by {ev.worker}", "\n".join(body),
                      ev.block_hash, ev.time)
    if ev.stale_fork:
        body = [*figures, "Only nodes off the best chain accepted it: another block at this height won. It is "
                "recorded orphaned, credits nothing, and its shares stay in the round.",
                "Look at: whether every node follows the same chain (the dashboard's node status)."]
        return Notice("block.stale", "warning", f"Block {ev.height} is on a stale fork: nothing credited",
                      "\n".join(body), ev.block_hash, ev.time)
    result = ev.node_result or "refused"
    race = lost_a_race(ev.node_result)
    if race:
        why = ("It lost a race: the node had another block at this height first. Nothing is credited; its "
               "shares stay in the round.")
        severity: NoticeSeverity = "warning"
    else:
        why = ("The node judged it invalid: nothing is credited. Look at: the node's log for this hash, and the "
               "pool's block assembly (coinbase, witness commitment, version bits).")
        severity = "critical"
    return Notice("block.stale", severity, f"Block {ev.height} refused by the node: {result}",
                  "\n".join([*figures, f"Reward it would have paid {btc(ev.reward_sat)}", why]), ev.block_hash,
                  ev.time)


def block_changed(change: Change, block: BlockRecord | None, now: float) -> Notice | None:
    """A maturity change: confirmed (block.confirmed), orphaned (block.orphaned), or back on the best
    chain after an orphaning (block.found again); None for a change nobody needs to hear of."""
    reward = btc(block.reward_sat) if block is not None else "its reward"
    figures = [f"Hash {change.block_hash}"]
    if block is not None:
        figures.append(f"Found by {block.worker} (payout address {block.address}), reward {reward}")
    if change.new is BlockStatus.CONFIRMED:
        body = [*figures, f"{change.confirmations} confirmations: its credits are mature, paid in the next payout "
                "run (when payouts are on)."]
        return Notice("block.confirmed", "info", f"Block {change.height} confirmed: {reward} now payable",
                      "\n".join(body), change.block_hash, now)
    if change.new is BlockStatus.ORPHANED:
        body = [*figures, "The best chain no longer holds it (a reorganisation, or the node lost it). Its "
                "immature credits are void; they come back if it returns to the best chain.",
                "Look at: the node's chain tips (getchaintips), and whether the pool's nodes agree."]
        return Notice("block.orphaned", "warning", f"Block {change.height} orphaned: {reward} of credits void",
                      "\n".join(body), change.block_hash, now)
    if change.old is BlockStatus.ORPHANED and change.new is BlockStatus.PENDING:
        body = [*figures, "A reorganisation brought it back: its credits are immature again and mature with it."]
        return Notice("block.found", "info", f"Block {change.height} is back on the best chain", "\n".join(body),
                      f"{change.block_hash}:back", now)
    return None


# --- payouts ---------------------------------------------------------------------------------------------


def _outputs(batch: PayoutBatch) -> list[str]:
    return _listed([f"{address} {btc(sat)}" for address, sat in sorted(batch.items, key=lambda i: -i[1])])


def _n(batch: PayoutBatch) -> str:
    n = len(batch.items)
    return f"{n} address{'es' if n != 1 else ''}"


def payout_sent(batch: PayoutBatch, txid: str, now: float, recovered: bool = False) -> Notice:
    if recovered:
        title = f"Payout batch {batch.id} was sent before a restart: {btc(batch.total_sat)} to {_n(batch)}"
        head = [f"Found in the wallet: transaction {txid}. Nothing was sent twice."]
    else:
        title = f"Payout batch {batch.id} sent: {btc(batch.total_sat)} to {_n(batch)}"
        head = [f"Transaction {txid}"]
    return Notice("payout.sent", "info", title, "\n".join([*head, *_outputs(batch)]), f"batch:{batch.id}", now)


def payout_failed(batch: PayoutBatch, now: float) -> Notice:
    why = batch.error or "no reason recorded"
    if batch.txid is None:  # refused by the wallet: nothing went out
        title = f"Payout batch {batch.id} refused by the wallet: {btc(batch.total_sat)} back to the balances"
        body = [f"The wallet said: {why}", "Nothing was sent; the amounts are payable again and go in a later "
                "batch.", "Look at: the wallet's balance (and its fee reserve), and the node's log."]
        severity: NoticeSeverity = "critical"
    else:
        title = f"Payout batch {batch.id} released: {btc(batch.total_sat)} back to the balances"
        body = [f"Transaction {batch.txid} can no longer confirm: {why}",
                "The amounts are payable again and go in a later batch."]
        severity = "warning"
    return Notice("payout.failed", severity, title, "\n".join([*body, *_outputs(batch)]), f"batch:{batch.id}", now)


def payout_stuck(batch: PayoutBatch, now: float) -> Notice:
    body = [f"Transaction {batch.txid} left the mempool unconfirmed and the node refuses it again: "
            f"{batch.error or 'no reason recorded'}",
            f"Its {btc(batch.total_sat)} stay reserved, neither paid nor payable, until it confirms or can no longer "
            f"confirm (abandoned after {PAYOUT_ABANDON_AFTER_S / 3600:.0f} h).",
            "Look at: the node's mempool and the transaction's fee rate; bumping its fee (RBF) gets it going."]
    return Notice("payout.stuck", "warning", f"Payout batch {batch.id} stuck: {btc(batch.total_sat)} held",
                  "\n".join(body), f"batch:{batch.id}", now)


def payout_paid_twice(batch: PayoutBatch, now: float) -> Notice:
    body = [f"Transaction {batch.txid} confirmed after its amounts were released ({batch.error}).",
            "These addresses were paid twice; the book counts both payments, so their later credits pay it back.",
            *_outputs(batch)]
    return Notice("payout.failed", "critical", f"Payout batch {batch.id} paid twice: {btc(batch.total_sat)}",
                  "\n".join(body), f"batch:{batch.id}:twice", now)


def payout_notices(report: PayoutReport, batches: Mapping[int, PayoutBatch], now: float) -> list[Notice]:
    """The notices of one payout run (`PayoutProcessor.run_once`'s report), with each batch as recorded
    after the run (`batches` by id; a batch not among them is left out)."""
    out = [payout_sent(batches[i], txid, now, recovered=True) for i, txid in report.recovered if i in batches]
    # what became of the batches in flight, then what was sent anew (a released amount is in a new batch)
    out += [payout_failed(batches[i], now) for i in report.failed if i in batches]
    out += [payout_stuck(batches[i], now) for i in report.stuck if i in batches]
    out += [payout_paid_twice(batches[i], now) for i in report.confirmed_late if i in batches]
    out += [payout_sent(batches[i], txid, now) for i, txid in report.sent if i in batches]
    return out


# --- workers ---------------------------------------------------------------------------------------------


def workers_quiet(address: str, rows: Sequence[WorkerRow], quiet_s: float, now: float) -> Notice:
    """Workers of one address, each with shares before and none for `quiet_s` now (one notice for them)."""
    rows = sorted(rows, key=lambda r: r.worker)
    minutes = f"{quiet_s / 60:.0f} min"
    if len(rows) == 1:
        title = f"Worker {rows[0].worker} quiet for {minutes}"
    else:
        title = f"{len(rows)} workers of {address} quiet for {minutes}"
    lines = [
        f"{r.worker}: last share {_utc(r.last_share_time)} ({(now - r.last_share_time) / 60:.0f} min ago)"
        if r.last_share_time is not None else f"{r.worker}: no share"
        for r in rows
    ]
    body = [f"Payout address {address}", *_listed(lines),
            "Look at: the machine's power and network, and the pool URL and worker name it mines with."]
    return Notice("worker.quiet", "warning", title, "\n".join(body),
                  f"{address}:{','.join(r.worker for r in rows)}", now)

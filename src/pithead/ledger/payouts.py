"""Payouts: payable balances above a threshold, paid in batches with one `sendmany` each, never twice, never never.

The order of operations is the whole point:
1. record the batch (addresses and amounts) as INTENT, in one transaction; the amounts are now reserved
   and no later batch can include them;
2. call the wallet's `sendmany`, tagging the transaction with a comment unique to this ledger and batch;
3. record the txid (SENT).

Crash after 2, before 3 (the record is missing, the money went out). Before sending any INTENT batch the
processor looks for it in the wallet, however the wallet lists it: by the txid `sendmany` returned when this
process still holds it (the record itself failed), else by the batch's comment in `listtransactions`,
whatever the entry's category (`send` as Bitcoin Core lists a payment, or a `receive` of its change from a
wallet that does not see the payment as its own), and only for a wallet without listtransactions by its
outputs. Found: recorded SENT, never sent again. Not found: sent now.

A SENT batch is reconciled by its txid each run: confirmed once the transaction has the confirmations we
want; followed to its replacement if it was fee-bumped; and when it is unconfirmed and not in the node's
mempool (evicted, or lost with a node's mempool, or its input is gone), first offered to the mempool again;
if the node refuses it, the batch is STUCK: a WARNING says so, the API and `pithead ledger payouts` show
it, and its amounts stay reserved (neither paid nor payable) because it might still confirm. Its amounts go
back to the balances (FAILED, to be paid in a later batch) only once the transaction can no longer
confirm: a block spent one of its inputs another way (Core's negative `confirmations`, final at the depth
we take a payment as final, PAYOUT_CONFIRMATIONS), or it stayed out of mempool and chain for
PAYOUT_ABANDON_AFTER_S and the wallet abandoned it (`abandontransaction`; a wallet without it leaves the
batch STUCK, for an operator, rather than risk paying twice). A released batch whose transaction confirms
after all (another node still held it) is booked as paid again, with an ERROR: the book stays true, the
addresses' balances go below zero and later credits pay it back; FAILED batches are watched for this for
FAILED_WATCH_S. A wallet error that says the payment was refused (`WalletRejected`) fails the batch at
once; any other error leaves it as it was, because we cannot know whether it went out, and the next run
finds out.

One run at a time, across processes: a run takes a lease in the store (PAYOUT_LEASE_S) and starts no send
later than PAYOUT_RUN_BUDGET_S after taking it, so no send can outlive the lease. A process killed mid-run
stalls other processes' payouts for at most PAYOUT_LEASE_S; a process on the same machine (a restart) takes
over a lease whose holder no longer runs at once.

Holds: in pool mode an operator may hold the payouts of a worker flagged as withholding blocks
(`pithead.ledger.withholding`), which holds its address: `hold_payouts` / `release_payouts`, each written
with an audit line (who, why, on what authority, the evidence at that moment) in the transaction that sets
or lifts it. Nothing here or in the ledger ever holds anything on its own: a flag only tells the operator.
A held address keeps its balance in the book, payable, and is left out of every batch until released.

The wallet is a protocol (`Wallet`) in satoshis; `RpcWallet` asks Bitcoin Core's wallet RPC (and the
embedded node's, which speaks the same shapes) through `pithead.bitcoind.rpc.RpcClient`: an `RpcError`
whose code says the wallet refused becomes `WalletRejected`, any other failure of the client (a
`NodeDownError` when nothing answered, warm-up, another error code) `WalletError`. This module never
builds transactions itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from pithead.bitcoind import codes
from pithead.bitcoind.rpc import NodeError, RpcClient, RpcError
from pithead.chain.address import is_valid_address
from pithead.chain.hashes import display_hex
from pithead.chain.params import Network
from pithead.chain.tx import Transaction
from pithead.ledger import withholding
from pithead.ledger.schemes import POOL_ACCOUNT
from pithead.ledger.store.base import LedgerStore, StoreReader
from pithead.ledger.store.records import (
    BatchStatus,
    BlockOdds,
    HoldAction,
    HoldEntry,
    OddsKind,
    PayoutBatch,
    PayoutHold,
)

log = logging.getLogger(__name__)

# Outputs per payout transaction: each P2WPKH output is ~31 vbytes, so 500 outputs stay around 16 kvB,
# far below Bitcoin Core's 100 kvB standardness limit (MAX_STANDARD_TX_WEIGHT) whatever inputs it needs.
MAX_OUTPUTS_PER_BATCH = 500

# Confirmations after which a payout is final in the book (one block: the wallet can no longer replace it).
# A conflict (a block spent one of its inputs another way) this deep is as final: the batch is released.
PAYOUT_CONFIRMATIONS = 1

# Wallet transactions scanned when looking for a batch's comment after a crash (Core's listtransactions
# pages); a crashed batch is at most a few payouts old, so this is generous.
FIND_SCAN_LIMIT = 10_000

SAT_PER_BTC = 100_000_000

# The payout lease: how long a run may hold it before a process elsewhere may assume it died. A run is a
# few wallet calls per batch (each bounded by the RPC client's timeout, 10 s); a run starts no send later
# than PAYOUT_RUN_BUDGET_S after taking the lease (what is left waits for the next run), so a send can never
# outlive it. A kill -9 mid-run thus stalls payouts for at most this long; a restart on the same machine
# takes the dead process's lease over at once.
PAYOUT_LEASE_S = 120.0
PAYOUT_RUN_BUDGET_S = PAYOUT_LEASE_S / 2
LEASE_KEY = "payout_lease"

# Wallet balance held back from each batch for the transaction's own fee, so a batch is not planned that
# the wallet must refuse: 0.001 BTC covers a 500-output transaction at ~6 sat/vB.
PAYOUT_FEE_RESERVE_SAT = 100_000

# How long a STUCK batch's transaction (out of the mempool and the chain, and refused when offered again)
# is given to come back before the wallet is asked to abandon it and its amounts are released. Long enough
# for a node restart, a mempool that clears, or an operator's fee bump; short enough that miners wait hours,
# not days. (Another node may still hold it for up to two weeks, Core's -mempoolexpiry: see FAILED_WATCH_S.)
PAYOUT_ABANDON_AFTER_S = 6 * 3600.0

# How long a released (FAILED) batch with a transaction is watched for that transaction confirming after
# all: Bitcoin Core's default mempool expiry (-mempoolexpiry, 336 hours), after which no node following the
# defaults still offers it to miners.
FAILED_WATCH_S = 14 * 86400.0


class WalletError(RuntimeError):
    """The wallet could not be asked (connection, timeout), or failed: the outcome of a send is unknown.

    `code` is Core's error code (`pithead.bitcoind.codes`) when the wallet answered with one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WalletRejected(WalletError):
    """The wallet refused the request (insufficient funds, invalid address, an unknown txid, a transaction
    not eligible for abandoning): nothing was done."""


@dataclass(frozen=True, slots=True)
class WalletTx:
    txid: str
    confirmations: int  # negative when conflicted (Bitcoin Core's convention)
    replaced_by_txid: str | None = None


class Wallet(Protocol):
    async def getbalance(self) -> int: ...
    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str: ...
    async def gettransaction(self, txid: str) -> WalletTx:
        """The wallet's view of `txid`; `WalletRejected` when the wallet does not have it."""
        ...
    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        """The txid of a payment this wallet sent with `comment` (or, failing comments, paying exactly
        `amounts`), or None when it sent none."""
        ...
    async def in_mempool(self, txid: str) -> bool:
        """Whether the node's mempool holds `txid` now."""
        ...
    async def resubmit(self, txid: str) -> str | None:
        """Offer the wallet's transaction `txid` to the node's mempool again: None when it is there (now,
        or already), else why the node refused it."""
        ...
    async def abandon(self, txid: str) -> bool:
        """Abandon `txid` (Core's abandontransaction: never offered again, its coins the wallet's again):
        True when done, False when this wallet cannot; `WalletRejected` when it is not eligible (in a
        block or the mempool)."""
        ...


@dataclass(frozen=True, slots=True)
class PayoutReport:
    created: tuple[int, ...] = ()
    sent: tuple[tuple[int, str], ...] = ()  # (batch, txid) sent in this run
    recovered: tuple[tuple[int, str], ...] = ()  # (batch, txid) found in the wallet after a crash
    confirmed: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()  # refused, or released because their transaction can no longer confirm
    skipped: bool = False  # another payout run held the lease
    stuck: tuple[int, ...] = ()  # found out of the mempool, unconfirmed, in this run (amounts held)
    confirmed_late: tuple[int, ...] = ()  # released batches whose transaction confirmed after all


@dataclass
class _Run:
    """What one run did, gathered as it goes."""

    created: list[int]
    sent: list[tuple[int, str]]
    recovered: list[tuple[int, str]]
    confirmed: list[int]
    failed: list[int]
    stuck: list[int]
    confirmed_late: list[int]

    def report(self) -> PayoutReport:
        return PayoutReport(
            created=tuple(self.created), sent=tuple(self.sent), recovered=tuple(self.recovered),
            confirmed=tuple(self.confirmed), failed=tuple(self.failed), stuck=tuple(self.stuck),
            confirmed_late=tuple(self.confirmed_late),
        )


def ledger_id(store: LedgerStore) -> str:
    """A random id for this ledger database, so payout comments from another database never match."""
    with store.transaction():
        found = store.get_meta("ledger_id")
        if found is None:
            found = secrets.token_hex(8)
            store.set_meta("ledger_id", found)
    return found


def batch_comment(ledger: str, batch: PayoutBatch) -> str:
    return f"pithead-payout-{ledger}-{batch.id}"


def plan(
    balances: Mapping[str, int],
    threshold_sat: int,
    max_outputs: int = MAX_OUTPUTS_PER_BATCH,
    budget_sat: int | None = None,
    payable: Callable[[str], bool] | None = None,
) -> dict[str, int]:
    """Which payable balances to pay now (pure): at or above the threshold, largest first, within budget.

    `payable(address)` filters out addresses the network cannot pay (they stay in the book, unpaid, and
    can never block everyone else's payout by making the wallet refuse the whole batch).
    """
    due = [
        (a, v)
        for a, v in balances.items()
        if a != POOL_ACCOUNT and not a.startswith("@") and v >= threshold_sat and (payable is None or payable(a))
    ]
    due.sort(key=lambda av: (-av[1], av[0]))
    chosen: dict[str, int] = {}
    left = budget_sat
    for a, v in due:
        if len(chosen) >= max_outputs:
            break
        if left is not None:
            if v > left:
                continue
            left -= v
        chosen[a] = v
    return chosen


# --- payout holds: an operator's, never automatic -------------------------------------------------------
# Longest actor name and reason kept in the audit log (they are typed by an operator; bounded like labels).
MAX_ACTOR_LEN = 64
MAX_REASON_LEN = 500


class HoldError(ValueError):
    """A hold or release that cannot be done: not pool mode, nothing flagged, already held, not held."""


def _evidence(row: BlockOdds | None) -> dict[str, Any] | None:
    if row is None:
        return None
    odds = withholding.assess(row.expected, row.found)
    return {"expected": row.expected, "found": row.found, "p_value": odds.p_value, "anytime_p": odds.anytime_p,
            "flagged_since": row.flagged_since, "since": row.since, "unpriced": row.unpriced}


def _one(store: StoreReader, kind: OddsKind, name: str) -> BlockOdds | None:
    rows = store.block_odds(kind, [name])
    return rows[0] if rows else None


def _who(store: StoreReader, who: str) -> tuple[str, str]:
    """(worker, address) for a worker name or an address (worker "" for an address given as such)."""
    row = store.worker(who)
    if row is not None:
        return who, row.address
    if _one(store, OddsKind.ADDRESS, who) is not None or any(w.address == who for w in store.workers(who)):
        return "", who
    raise HoldError(f"no worker or address {who!r} in the ledger")


def _check_operator(actor: str, reason: str) -> None:
    if not actor or len(actor) > MAX_ACTOR_LEN:
        raise HoldError(f"an actor name of 1 to {MAX_ACTOR_LEN} characters is required")
    if not reason.strip() or len(reason) > MAX_REASON_LEN:
        raise HoldError(f"a reason of 1 to {MAX_REASON_LEN} characters is required (it goes in the audit log)")


def hold_payouts(store: LedgerStore, who: str, *, actor: str, reason: str, auth: str, now: float,
                 mode: str) -> HoldEntry:
    """Hold the payouts of `who`, a worker (its address is held) or an address, for an operator (`actor`,
    who gives a `reason`; `auth` says what let the request through, e.g. "cli"). Only in pool mode (solo
    blocks pay their finder in the coinbase) and only when the worker or its address is flagged as
    withholding now: a hold is a response to evidence, and the evidence is kept with it in the audit log."""
    if mode != "pool":
        raise HoldError(f"payouts are held only in pool mode (this pool is in {mode} mode)")
    _check_operator(actor, reason)
    with store.transaction():
        worker, address = _who(store, who)
        w = _one(store, OddsKind.WORKER, worker) if worker else None
        a = _one(store, OddsKind.ADDRESS, address)
        flagged = [r for r in (w, a) if r is not None and r.flagged_since is not None]
        if not flagged:
            raise HoldError(f"{who} is not flagged as withholding blocks: payouts are held only for flagged workers")
        evidence = json.dumps({"worker": _evidence(w), "address": _evidence(a)}, sort_keys=True)
        entry = HoldEntry(0, now, HoldAction.HOLD, address, worker or address, actor, auth, reason, evidence)
        done = store.add_payout_hold(PayoutHold(address, now, worker or address, actor, reason), entry)
        if done is None:
            raise HoldError(f"the payouts of {address} are held already")
    log.warning("payouts of %s held by %s (%s): %s", address, actor, auth, reason)
    return done


def release_payouts(store: LedgerStore, who: str, *, actor: str, reason: str, auth: str, now: float) -> HoldEntry:
    """Lift the hold on `who` (a worker's address, or an address), audited like the hold; allowed whether
    or not it is still flagged (the operator decides)."""
    _check_operator(actor, reason)
    with store.transaction():
        worker, address = _who(store, who)
        a = _one(store, OddsKind.ADDRESS, address)
        w = _one(store, OddsKind.WORKER, worker) if worker else None
        evidence = json.dumps({"worker": _evidence(w), "address": _evidence(a)}, sort_keys=True)
        entry = HoldEntry(0, now, HoldAction.RELEASE, address, worker or address, actor, auth, reason, evidence)
        done = store.remove_payout_hold(entry)
        if done is None:
            raise HoldError(f"the payouts of {address} are not held")
    log.warning("payouts of %s released by %s (%s): %s", address, actor, auth, reason)
    return done


# --- who holds the lease ---------------------------------------------------------------------------------
def machine_identity() -> str | None:
    """This machine's kernel as seen from here: host name, boot and PID namespace (a container has its
    own). Two processes that share it see the same process ids, so one can tell whether the other still
    runs. None where /proc cannot say (then no lease is ever taken over; it expires)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{pid_ns}"


def lease_owner() -> str:
    """A name for a payout processor on the lease: this machine, this process, and a random part."""
    return f"{machine_identity() or '?'}|{os.getpid()}|{secrets.token_hex(6)}"


def holder_is_dead(owner: str) -> bool:
    """Whether the lease holder `owner` (a `lease_owner()`) is a process of this machine that no longer
    runs. Anything else (another machine, this very process, a live or unreadable pid) is taken as alive."""
    parts = owner.split("|")
    here = machine_identity()
    if len(parts) != 3 or here is None or parts[0] != here:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's), or we cannot tell
        return False
    return False


class PayoutProcessor:
    def __init__(
        self, store: LedgerStore, wallet: Wallet, threshold_sat: int, network: Network | None = None
    ) -> None:
        """`network`: when given, addresses not valid on it are never put in a batch. One processor for the
        life of a process: it remembers a txid `sendmany` returned whose record failed."""
        if threshold_sat <= 0:
            raise ValueError("payout threshold must be positive")
        self.store = store
        self.wallet = wallet
        self.threshold_sat = threshold_sat
        self.network = network
        self._owner = lease_owner()  # this processor's name on the payout lease
        self._lease_taken = 0.0  # time.monotonic() when this run took the lease
        self._unrecorded: dict[int, str] = {}  # batch id -> txid sendmany returned, not yet recorded

    def _payable(self, address: str) -> bool:
        if self.network is None:
            return True
        ok = is_valid_address(address, self.network)
        if not ok:
            log.warning("balance of %s cannot be paid: not a valid %s address", address, self.network.name)
        return ok

    async def run_once(self, now: float) -> PayoutReport:
        """Reconcile what is in flight, then pay what is due. Safe to call again after any crash.

        Two runs at once (two processes on one database, or overlapping calls) could both send the same
        INTENT batch, so a run first takes a lease in the store; a run that finds the lease held by another
        live run does nothing and reports `skipped`.
        """
        if not await asyncio.to_thread(self._take_lease, now):
            return PayoutReport(skipped=True)
        self._lease_taken = time.monotonic()
        try:
            return await self._run(now)
        finally:
            await asyncio.to_thread(self._release_lease)

    def _take_lease(self, now: float) -> bool:
        until = now + PAYOUT_LEASE_S
        if self.store.try_lease(LEASE_KEY, self._owner, now, until):
            return True
        held = self.store.lease_holder(LEASE_KEY)
        if held is not None and holder_is_dead(held[0]) and self.store.take_over_lease(
            LEASE_KEY, held[0], self._owner, until
        ):
            log.warning("payouts: took over the lease of %s, a process of this machine that no longer runs "
                        "(killed mid-run); its batches are reconciled now", held[0])
            return True
        return False

    def _release_lease(self) -> None:
        self.store.release_lease(LEASE_KEY, self._owner)

    async def _update(
        self, batch_id: int, status: BatchStatus, now: float, txid: str | None = None, error: str | None = None
    ) -> None:
        await asyncio.to_thread(self.store.update_batch, batch_id, status, now, txid, error)

    async def _run(self, now: float) -> PayoutReport:
        lid = await asyncio.to_thread(ledger_id, self.store)
        run = _Run([], [], [], [], [], [], [])
        # 1. INTENT batches from an earlier run: find them in the wallet, or send them now.
        for batch in sorted(await asyncio.to_thread(self.store.batches, [BatchStatus.INTENT]), key=lambda b: b.id):
            try:
                txid = await self._find(lid, batch)
            except WalletError as exc:  # cannot tell whether it went out: never send blind
                log.error("payout batch %d: cannot look for it in the wallet, trying again next run: %s", batch.id, exc)
                continue
            if txid is not None:
                await self._update(batch.id, BatchStatus.SENT, now, txid)
                self._unrecorded.pop(batch.id, None)
                run.recovered.append((batch.id, txid))
                log.warning("payout batch %d was sent before a crash: found %s", batch.id, txid)
            else:
                await self._send_and_note(lid, batch, now, run)
        # 2. SENT and STUCK batches: confirmed, replaced, out of the mempool, or unable to confirm.
        for batch in await asyncio.to_thread(self.store.batches, [BatchStatus.SENT, BatchStatus.STUCK]):
            if batch.txid is None:  # cannot happen through this module; never guess, leave it to a human
                log.error("payout batch %d is marked %s without a txid", batch.id, batch.status)
                continue
            try:
                await self._reconcile(batch, batch.txid, now, run)
            except WalletRejected as exc:
                # The wallet does not know the transaction (a different wallet, or one that lost it). Re-paying
                # could pay twice, so the batch stays as it is, with the reason, for an operator to settle.
                log.error("payout batch %d: wallet does not know %s: %s", batch.id, batch.txid, exc)
                await self._update(batch.id, batch.status, now, None, f"wallet does not know the txid: {exc}")
            except WalletError as exc:
                log.error("payout batch %d: wallet unreachable, trying again next run: %s", batch.id, exc)
        # 3. Released batches whose transaction confirmed after all.
        await self._watch_released(now, run)
        # 4. A new batch for what is due now.
        try:
            budget = await self.wallet.getbalance() - PAYOUT_FEE_RESERVE_SAT
        except WalletError as exc:
            log.error("payouts: cannot read the wallet balance, no new batch this time: %s", exc)
            return run.report()
        new: PayoutBatch | None = await asyncio.to_thread(self._create, now, budget)
        if new is not None:
            run.created.append(new.id)
            await self._send_and_note(lid, new, now, run)
        return run.report()

    async def _find(self, lid: str, batch: PayoutBatch) -> str | None:
        """The txid of an INTENT batch the wallet already sent: the one `sendmany` returned to this process
        (when the wallet knows it), else the one carrying the batch's comment."""
        returned = self._unrecorded.get(batch.id)
        if returned is not None:
            try:
                return (await self.wallet.gettransaction(returned)).txid
            except WalletRejected:
                self._unrecorded.pop(batch.id, None)
        return await self.wallet.find_transaction(batch_comment(lid, batch), dict(batch.items))

    async def _reconcile(self, batch: PayoutBatch, txid: str, now: float, run: _Run) -> None:
        tx = await self.wallet.gettransaction(txid)
        if tx.replaced_by_txid:
            await self._update(batch.id, BatchStatus.SENT, now, tx.replaced_by_txid)
        elif tx.confirmations >= PAYOUT_CONFIRMATIONS:
            await self._update(batch.id, BatchStatus.CONFIRMED, now)
            run.confirmed.append(batch.id)
            if batch.status is BatchStatus.STUCK:
                log.warning("payout batch %d: %s confirmed after all; nothing was paid twice", batch.id, txid)
        elif tx.confirmations <= -PAYOUT_CONFIRMATIONS:
            why = f"conflicted: a block {-tx.confirmations} deep spent an input of {txid} another way"
            await self._update(batch.id, BatchStatus.FAILED, now, None, why)
            run.failed.append(batch.id)
            log.warning("payout batch %d %s; its amounts are released and paid in a later batch", batch.id, why)
        elif await self.wallet.in_mempool(txid):
            if batch.status is BatchStatus.STUCK:
                await self._update(batch.id, BatchStatus.SENT, now)
                log.warning("payout batch %d: %s is back in the mempool", batch.id, txid)
        else:
            await self._out_of_mempool(batch, txid, now, run)

    async def _out_of_mempool(self, batch: PayoutBatch, txid: str, now: float, run: _Run) -> None:
        """Unconfirmed and not in the mempool: offered again; if refused, STUCK (held), and released only
        once abandoned, PAYOUT_ABANDON_AFTER_S later."""
        refusal = await self.wallet.resubmit(txid)
        if refusal is None:
            await self._update(batch.id, BatchStatus.SENT, now)
            log.warning("payout batch %d: %s had left the mempool; offered again and taken", batch.id, txid)
            return
        if batch.status is not BatchStatus.STUCK:
            await self._update(batch.id, BatchStatus.STUCK, now, None, f"left the mempool unconfirmed: {refusal}")
            run.stuck.append(batch.id)
            log.warning(
                "payout batch %d STUCK: %s left the mempool unconfirmed and the node refuses it again (%s); its "
                "%d sat stay reserved, neither paid nor payable, until it confirms or can no longer confirm "
                "(abandoned after %.0f s)", batch.id, txid, refusal, batch.total_sat, PAYOUT_ABANDON_AFTER_S,
            )
            return
        waited = now - (batch.stuck_since if batch.stuck_since is not None else now)
        if waited < PAYOUT_ABANDON_AFTER_S:
            return
        try:
            abandoned = await self.wallet.abandon(txid)
        except WalletRejected as exc:  # in a block or the mempool after all: the next run sees which
            log.warning("payout batch %d: %s not abandoned (%s); looking again next run", batch.id, txid, exc)
            return
        if not abandoned:
            note = "stuck; this wallet cannot abandon it: abandon it by hand, or wait for it to confirm"
            if batch.error != note:
                await self._update(batch.id, BatchStatus.STUCK, now, None, note)
                log.error("payout batch %d: %s %s (its amounts stay reserved)", batch.id, txid, note)
            return
        why = f"abandoned after {waited:.0f} s out of the mempool ({refusal})"
        await self._update(batch.id, BatchStatus.FAILED, now, None, why)
        run.failed.append(batch.id)
        log.warning("payout batch %d: %s %s; its amounts are released and paid in a later batch",
                    batch.id, txid, why)

    async def _watch_released(self, now: float, run: _Run) -> None:
        failed = await asyncio.to_thread(self.store.batches, [BatchStatus.FAILED])
        for batch in failed:
            if batch.txid is None or now - batch.updated > FAILED_WATCH_S:
                continue
            try:
                tx = await self.wallet.gettransaction(batch.txid)
            except WalletError:
                continue
            if tx.confirmations >= PAYOUT_CONFIRMATIONS:
                await self._update(batch.id, BatchStatus.CONFIRMED, now, None,
                                   f"confirmed after it was released ({batch.error}): paid twice")
                run.confirmed_late.append(batch.id)
                log.error("payout batch %d: %s confirmed after its amounts were released (%s): these addresses "
                          "were paid twice; the book counts both payments, so later credits pay it back",
                          batch.id, batch.txid, batch.error)

    def _create(self, now: float, budget_sat: int) -> PayoutBatch | None:
        with self.store.transaction():  # balances, holds and the new batch in one transaction: no double reserve
            held = {h.address for h in self.store.payout_holds()}
            balances = {b.address: b.payable_sat for b in self.store.balances() if b.address not in held}
            due = plan(balances, self.threshold_sat, budget_sat=max(0, budget_sat), payable=self._payable)
            if not due and any(v >= self.threshold_sat for a, v in balances.items() if not a.startswith("@")):
                log.warning(
                    "payouts due but none planned: wallet balance less fee reserve is %d sat, or addresses invalid",
                    budget_sat,
                )
            if held:
                log.info("payouts of %d address(es) held by an operator (`pithead ledger holds`)", len(held))
            return self.store.create_batch(due, now) if due else None

    async def _send_and_note(self, lid: str, batch: PayoutBatch, now: float, run: _Run) -> None:
        result = await self._send(lid, batch, now)
        if result:
            run.sent.append((batch.id, result))
        elif result == "":
            run.failed.append(batch.id)

    async def _send(self, lid: str, batch: PayoutBatch, now: float) -> str | None:
        """The txid; "" if the wallet refused (batch failed); None if the outcome is unknown or the run is
        out of time (the batch stays INTENT for the next run)."""
        if time.monotonic() - self._lease_taken > PAYOUT_RUN_BUDGET_S:
            log.warning("payout batch %d waits for the next run: this one is past %.0f s of its lease",
                        batch.id, PAYOUT_RUN_BUDGET_S)
            return None
        try:
            txid = await self.wallet.sendmany(dict(batch.items), batch_comment(lid, batch))
        except WalletRejected as exc:
            # Belt and braces: a refusal should mean nothing was sent, but if the wallet nonetheless holds
            # a transaction with our comment, it was sent, and marking the batch failed would pay twice.
            found = await self.wallet.find_transaction(batch_comment(lid, batch), dict(batch.items))
            if found is not None:
                await self._update(batch.id, BatchStatus.SENT, now, found)
                return found
            await self._update(batch.id, BatchStatus.FAILED, now, None, str(exc))
            log.error("payout batch %d refused by the wallet: %s", batch.id, exc)
            return ""
        except WalletError as exc:
            log.error("payout batch %d: wallet unreachable, outcome unknown, will reconcile: %s", batch.id, exc)
            return None
        try:
            await self._update(batch.id, BatchStatus.SENT, now, txid)
        except BaseException:
            self._unrecorded[batch.id] = txid  # the next run of this process finds it by this txid
            raise
        return txid


# --- Bitcoin Core wallet RPC -----------------------------------------------------------------------
# The error codes that mean "refused, nothing sent": the batch fails and its amounts are released.
_REFUSALS = frozenset({
    codes.RPC_TYPE_ERROR,
    codes.RPC_INVALID_ADDRESS_OR_KEY,  # an address the node cannot pay; gettransaction: not the wallet's
    codes.RPC_WALLET_INSUFFICIENT_FUNDS,
    codes.RPC_INVALID_PARAMETER,
    codes.RPC_WALLET_ERROR,  # e.g. "Transaction too large", fee estimation failed
    codes.RPC_VERIFY_REJECTED,
})
_PAGE = 500  # listtransactions page size
# Wallet transactions walked (one gettransaction each) when the wallet has no listtransactions and a
# crashed batch must be found by its outputs: from the unspent coins back through their wallet ancestors.
FIND_ANCESTRY_LIMIT = 500


def sat_to_btc_str(sat: int) -> str:
    """Exact decimal BTC for a satoshi amount (Core accepts amounts as strings)."""
    if sat < 0:
        raise ValueError("negative amount")
    return f"{sat // SAT_PER_BTC}.{sat % SAT_PER_BTC:08d}"


def btc_to_sat(value: Any) -> int:
    """Satoshis from a JSON amount in BTC, exactly (via its decimal text, never float arithmetic)."""
    d = Decimal(str(value)) * SAT_PER_BTC
    if d != d.to_integral_value():
        raise ValueError(f"amount {value} has more than 8 decimals")
    return int(d)


class RpcWallet:
    """`Wallet` over a node's wallet in Bitcoin Core's dialect, asked through `RpcClient`.

    Finding a crashed batch: with `listtransactions` (Bitcoin Core, and pithead's embedded node, which
    keeps sendmany's comment with the transaction across restarts) by that comment, and only by it, in any
    entry of the transaction (Core lists a `send` for each output of a payment from its coins; a wallet that
    does not see the payment as its own may list only its change, as a `receive`, and the comment is the
    transaction's, on every entry): a wallet that has listtransactions and shows no entry with the comment
    did not send the batch. Only a wallet without listtransactions (`RPC_METHOD_NOT_FOUND`) is searched by
    outputs, walking its transactions from its unspent coins back through their wallet ancestors for a send
    paying exactly the batch; that walk cannot see a payment that left no change output to the wallet, and
    could take an earlier identical payment for this one, which is why the comment comes first.

    Out of the mempool: `getmempoolentry` says whether the node holds it; `resubmit` offers the wallet's
    own copy (`gettransaction`'s hex) through `sendrawtransaction`; `abandon` is `abandontransaction`.
    """

    def __init__(self, client: RpcClient) -> None:
        self._client = client

    async def _rpc(self, method: str, *params: Any) -> Any:
        try:
            return await self._client.call(method, *params)
        except RpcError as exc:
            if exc.code in _REFUSALS:
                raise WalletRejected(f"{method}: {exc}", exc.code) from exc
            raise WalletError(f"{method}: {exc}", exc.code) from exc
        except NodeError as exc:  # nothing answered, or not with these credentials: outcome unknown
            raise WalletError(f"{method}: {exc}") from exc

    async def getbalance(self) -> int:
        return btc_to_sat(await self._rpc("getbalance"))

    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str:
        outs = {a: sat_to_btc_str(v) for a, v in amounts.items()}
        # minconf 0: may spend the wallet's own unconfirmed change, as getbalance counts it (Bitcoin Core
        # ignores this argument and always does; pithead's node honours it)
        return str(await self._rpc("sendmany", "", outs, 0, comment))

    async def gettransaction(self, txid: str) -> WalletTx:
        tx = await self._rpc("gettransaction", txid)
        return WalletTx(str(tx["txid"]), int(tx.get("confirmations", 0)), tx.get("replaced_by_txid"))

    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        try:
            return await self._find_by_comment(comment)
        except WalletError as exc:
            if exc.code != codes.RPC_METHOD_NOT_FOUND:  # only a wallet without listtransactions
                raise
        return await self._find_by_outputs(dict(amounts))

    async def in_mempool(self, txid: str) -> bool:
        try:
            await self._rpc("getmempoolentry", txid)
        except WalletRejected as exc:
            if exc.code == codes.RPC_INVALID_ADDRESS_OR_KEY:  # Core: "Transaction not in mempool"
                return False
            raise
        return True

    async def resubmit(self, txid: str) -> str | None:
        raw = str((await self._rpc("gettransaction", txid)).get("hex", ""))
        try:
            await self._client.call("sendrawtransaction", raw)
        except RpcError as exc:  # the node's reason for refusing it (missing inputs, mempool full, ...)
            return f"{exc.message} ({exc.code})"
        except NodeError as exc:
            raise WalletError(f"sendrawtransaction: {exc}") from exc
        return None

    async def abandon(self, txid: str) -> bool:
        try:
            await self._rpc("abandontransaction", txid)
        except WalletRejected:
            raise
        except WalletError as exc:
            if exc.code == codes.RPC_METHOD_NOT_FOUND:
                return False
            raise
        return True

    async def _find_by_comment(self, comment: str) -> str | None:
        for skip in range(0, FIND_SCAN_LIMIT, _PAGE):
            page = await self._rpc("listtransactions", "*", _PAGE, skip)
            for entry in page:
                if entry.get("comment") == comment:  # any category: see the class's docstring
                    return str(entry["txid"])
            if len(page) < _PAGE:
                return None
        return None

    async def _find_by_outputs(self, amounts: dict[str, int]) -> str | None:
        unspent = await self._rpc("listunspent", 0)
        frontier = deque(str(u["txid"]) for u in unspent)
        seen: set[str] = set()
        while frontier and len(seen) < FIND_ANCESTRY_LIMIT:
            txid = frontier.popleft()
            if txid in seen:
                continue
            seen.add(txid)
            try:
                tx = await self._rpc("gettransaction", txid)
            except WalletRejected:  # not a wallet transaction: the walk ends here
                continue
            sends = {
                str(d["address"]): -btc_to_sat(d["amount"])
                for d in tx.get("details", [])
                if d.get("category") == "send" and d.get("address")
            }
            if sends == amounts:
                return txid
            try:
                parsed = Transaction.parse(bytes.fromhex(str(tx.get("hex", ""))))
            except Exception:  # malformed hex from the wallet: do not walk further from here
                continue
            if not parsed.is_coinbase():
                frontier.extend(display_hex(i.prevout.txid) for i in parsed.inputs)
        return None

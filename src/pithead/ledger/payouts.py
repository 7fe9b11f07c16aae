"""Payouts: payable balances above a threshold, paid in batches with one `sendmany` each, never twice.

The order of operations is the whole point:
1. record the batch (addresses and amounts) as INTENT, in one transaction; the amounts are now reserved
   and no later batch can include them;
2. call the wallet's `sendmany`, tagging the transaction with a comment unique to this ledger and batch;
3. record the txid (SENT).
A crash between 2 and 3 leaves an INTENT batch whose transaction exists. Before sending any INTENT batch,
the processor therefore asks the wallet for a transaction carrying the batch's comment; if there is one,
it records that txid instead of sending again. SENT batches are then reconciled by txid: confirmed once
the transaction has the confirmations we want, followed to its replacement if it was fee-bumped, and
failed (amounts released for a later batch) only when the wallet says it was conflicted and replaced by
nothing. A wallet error that says the payment was refused (`WalletRejected`) fails the batch at once;
any other error leaves it INTENT, because we cannot know whether it went out, and the next run finds out.

The wallet is a protocol (`Wallet`) in satoshis; `RpcWallet` asks Bitcoin Core's wallet RPC (and the
embedded node's, which speaks the same shapes) through `pithead.bitcoind.rpc.RpcClient`: an `RpcError`
whose code says the wallet refused becomes `WalletRejected`, any other failure of the client (a
`NodeDownError` when nothing answered, warm-up, another error code) `WalletError`. This module never
builds transactions itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from pithead.bitcoind import codes
from pithead.bitcoind.rpc import NodeError, RpcClient, RpcError
from pithead.chain.address import is_valid_address
from pithead.chain.hashes import display_hex
from pithead.chain.params import Network
from pithead.chain.tx import Transaction
from pithead.ledger.schemes import POOL_ACCOUNT
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus, PayoutBatch

log = logging.getLogger(__name__)

# Outputs per payout transaction: each P2WPKH output is ~31 vbytes, so 500 outputs stay around 16 kvB,
# far below Bitcoin Core's 100 kvB standardness limit (MAX_STANDARD_TX_WEIGHT) whatever inputs it needs.
MAX_OUTPUTS_PER_BATCH = 500

# Confirmations after which a payout is final in the book (one block: the wallet can no longer replace it).
PAYOUT_CONFIRMATIONS = 1

# Wallet transactions scanned when looking for a batch's comment after a crash (Core's listtransactions
# pages); a crashed batch is at most a few payouts old, so this is generous.
FIND_SCAN_LIMIT = 10_000

SAT_PER_BTC = 100_000_000

# The payout lease: how long a run may hold it before another process may assume it died. Longer than
# any run takes (a few RPCs per batch), short enough that a crashed run does not stall payouts for long.
PAYOUT_LEASE_S = 300.0
LEASE_KEY = "payout_lease"

# Wallet balance held back from each batch for the transaction's own fee, so a batch is not planned that
# the wallet must refuse: 0.001 BTC covers a 500-output transaction at ~6 sat/vB.
PAYOUT_FEE_RESERVE_SAT = 100_000


class WalletError(RuntimeError):
    """The wallet could not be asked (connection, timeout), or failed: the outcome of a send is unknown.

    `code` is Core's error code (`pithead.bitcoind.codes`) when the wallet answered with one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WalletRejected(WalletError):
    """The wallet refused the request (insufficient funds, invalid address): nothing was sent."""


@dataclass(frozen=True, slots=True)
class WalletTx:
    txid: str
    confirmations: int  # negative when conflicted (Bitcoin Core's convention)
    replaced_by_txid: str | None = None


class Wallet(Protocol):
    async def getbalance(self) -> int: ...
    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str: ...
    async def gettransaction(self, txid: str) -> WalletTx: ...
    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        """The txid of a payment this wallet sent with `comment` (or, failing comments, paying exactly
        `amounts`), or None when it sent none."""
        ...


@dataclass(frozen=True, slots=True)
class PayoutReport:
    created: tuple[int, ...] = ()
    sent: tuple[tuple[int, str], ...] = ()  # (batch, txid) sent in this run
    recovered: tuple[tuple[int, str], ...] = ()  # (batch, txid) found in the wallet after a crash
    confirmed: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    skipped: bool = False  # another payout run held the lease


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


class PayoutProcessor:
    def __init__(
        self, store: LedgerStore, wallet: Wallet, threshold_sat: int, network: Network | None = None
    ) -> None:
        """`network`: when given, addresses not valid on it are never put in a batch."""
        if threshold_sat <= 0:
            raise ValueError("payout threshold must be positive")
        self.store = store
        self.wallet = wallet
        self.threshold_sat = threshold_sat
        self.network = network
        self._owner = secrets.token_hex(8)  # this processor's name on the payout lease

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
        try:
            return await self._run(now)
        finally:
            await asyncio.to_thread(self._release_lease)

    def _take_lease(self, now: float) -> bool:
        return self.store.try_lease(LEASE_KEY, self._owner, now, now + PAYOUT_LEASE_S)

    def _release_lease(self) -> None:
        self.store.release_lease(LEASE_KEY, self._owner)

    async def _run(self, now: float) -> PayoutReport:
        lid = await asyncio.to_thread(ledger_id, self.store)
        sent: list[tuple[int, str]] = []
        recovered: list[tuple[int, str]] = []
        confirmed: list[int] = []
        failed: list[int] = []
        # 1. INTENT batches from an earlier run: find them in the wallet, or send them now.
        for batch in sorted(await asyncio.to_thread(self.store.batches, [BatchStatus.INTENT]), key=lambda b: b.id):
            txid = await self.wallet.find_transaction(batch_comment(lid, batch), dict(batch.items))
            if txid is not None:
                await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.SENT, now, txid)
                recovered.append((batch.id, txid))
                log.warning("payout batch %d was sent before a crash: found %s", batch.id, txid)
            else:
                result = await self._send(lid, batch, now)
                if result:
                    sent.append((batch.id, result))
                elif result == "":
                    failed.append(batch.id)
        # 2. SENT batches: confirmed, replaced, or conflicted.
        for batch in await asyncio.to_thread(self.store.batches, [BatchStatus.SENT]):
            if batch.txid is None:  # cannot happen through this module; never guess, leave it to a human
                log.error("payout batch %d is marked sent without a txid", batch.id)
                continue
            try:
                tx = await self.wallet.gettransaction(batch.txid)
            except WalletRejected as exc:
                # The wallet does not know the transaction (a node that lost its mempool on restart, or
                # a different wallet). Re-paying could pay twice, so the batch stays SENT, with the reason,
                # for an operator to settle; the other batches go on.
                log.error("payout batch %d: wallet does not know %s: %s", batch.id, batch.txid, exc)
                await asyncio.to_thread(
                    self.store.update_batch, batch.id, BatchStatus.SENT, now, None, f"wallet does not know the txid: {exc}"
                )
                continue
            if tx.replaced_by_txid:
                await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.SENT, now, tx.replaced_by_txid)
            elif tx.confirmations >= PAYOUT_CONFIRMATIONS:
                await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.CONFIRMED, now)
                confirmed.append(batch.id)
            elif tx.confirmations < 0:
                await asyncio.to_thread(
                    self.store.update_batch, batch.id, BatchStatus.FAILED, now, None, f"conflicted ({tx.txid})"
                )
                failed.append(batch.id)
        # 3. A new batch for what is due now.
        created: list[int] = []
        try:
            budget = await self.wallet.getbalance() - PAYOUT_FEE_RESERVE_SAT
        except WalletError as exc:
            log.error("payouts: cannot read the wallet balance, no new batch this time: %s", exc)
            return PayoutReport((), tuple(sent), tuple(recovered), tuple(confirmed), tuple(failed))
        new: PayoutBatch | None = await asyncio.to_thread(self._create, now, budget)
        if new is not None:
            batch = new
            created.append(batch.id)
            result = await self._send(lid, batch, now)
            if result:
                sent.append((batch.id, result))
            elif result == "":
                failed.append(batch.id)
        return PayoutReport(tuple(created), tuple(sent), tuple(recovered), tuple(confirmed), tuple(failed))

    def _create(self, now: float, budget_sat: int) -> PayoutBatch | None:
        with self.store.transaction():  # balances and the new batch in one transaction: no double reserve
            balances = {b.address: b.payable_sat for b in self.store.balances()}
            due = plan(balances, self.threshold_sat, budget_sat=max(0, budget_sat), payable=self._payable)
            if not due and any(v >= self.threshold_sat for a, v in balances.items() if not a.startswith("@")):
                log.warning(
                    "payouts due but none planned: wallet balance less fee reserve is %d sat, or addresses invalid",
                    budget_sat,
                )
            return self.store.create_batch(due, now) if due else None

    async def _send(self, lid: str, batch: PayoutBatch, now: float) -> str | None:
        """The txid; "" if the wallet refused (batch failed); None if the outcome is unknown."""
        try:
            txid = await self.wallet.sendmany(dict(batch.items), batch_comment(lid, batch))
        except WalletRejected as exc:
            # Belt and braces: a refusal should mean nothing was sent, but if the wallet nonetheless holds
            # a transaction with our comment, it was sent, and marking the batch failed would pay twice.
            found = await self.wallet.find_transaction(batch_comment(lid, batch), dict(batch.items))
            if found is not None:
                await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.SENT, now, found)
                return found
            await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.FAILED, now, None, str(exc))
            log.error("payout batch %d refused by the wallet: %s", batch.id, exc)
            return ""
        except WalletError as exc:
            log.error("payout batch %d: wallet unreachable, outcome unknown, will reconcile: %s", batch.id, exc)
            return None
        await asyncio.to_thread(self.store.update_batch, batch.id, BatchStatus.SENT, now, txid)
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
    keeps sendmany's comment with the transaction across restarts) by that comment, and only by it: a
    wallet that has listtransactions and shows no send with the comment did not send the batch. Only a
    wallet without listtransactions (`RPC_METHOD_NOT_FOUND`) is searched by outputs, walking its transactions from its
    unspent coins back through their wallet ancestors for a send paying exactly the batch; that walk cannot
    see a payment that left no change output to the wallet, and could take an earlier identical payment
    for this one, which is why the comment comes first.
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

    async def _find_by_comment(self, comment: str) -> str | None:
        for skip in range(0, FIND_SCAN_LIMIT, _PAGE):
            page = await self._rpc("listtransactions", "*", _PAGE, skip)
            for entry in page:
                if entry.get("comment") == comment and entry.get("category") == "send":
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

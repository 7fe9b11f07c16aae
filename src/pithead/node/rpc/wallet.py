"""The embedded node's wallet RPC methods, as Bitcoin Core's src/wallet/rpc/*.cpp have them.

getnewaddress and getaddressinfo (addresses.cpp), getbalance and listunspent (coins.cpp), sendmany and
sendtoaddress (spend.cpp: `comment` and `comment_to` kept with the transaction, as Core's mapValue),
gettransaction, listtransactions and abandontransaction (transactions.cpp, with Core's WalletTxToJSON and
ListTransactions shapes and order), getwalletinfo and listwallets (wallet.cpp), walletpassphrase and
walletlock (encrypt.cpp: this wallet is never encrypted, so they answer Core's -15 for an unencrypted
wallet, which payout software that unlocks before paying expects).
As in Core: an unconfirmed transaction is trusted (its change spendable) only when it is the wallet's own,
in the mempool, and its wallet parents are trusted too (CachedTxIsTrusted); a transaction one of whose
inputs a block spent another way, or a descendant of one, shows minus that block's depth as its
confirmations (conflicted); the coins a pending payment spends stay spent, in the mempool or not, until it
is abandoned or conflicted (IsSpent). The first wallet method after a start offers the mempool the wallet's
unconfirmed, unabandoned transactions again (`resubmit_wallet_transactions`, Core's
ResubmitWalletTransactions); the dispatcher calls it.
Not here: the wallet's records and coins (pithead.node.wallet), broadcasting (mempool.py's `broadcast`).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from pithead.bitcoind import codes
from pithead.chain.address import AddressError, address_to_script, script_to_address
from pithead.chain.hashes import display_hex
from pithead.chain.tx import OutPoint, Transaction, TxOut
from pithead.node.chainstate import IndexEntry
from pithead.node.mempool import MempoolReject
from pithead.node.rpc.context import NodeContext, ensure_chain, ensure_wallet
from pithead.node.rpc.errors import RPCError
from pithead.node.rpc.format import btc, script_pubkey_json, script_type, tx_json
from pithead.node.rpc.mempool import broadcast
from pithead.node.rpc.output_script import validateaddress
from pithead.node.rpc.util import (
    BIP125_FINAL_SEQUENCE,
    Arg,
    Command,
    parse_amount,
    parse_hash,
    parse_int32,
    script_for_address,
)
from pithead.node.wallet import NodeWalletError, TxAmounts, WalletCoin, estimate_vsize

log = logging.getLogger(__name__)

WALLET_FEE_RATE = 10  # sat/vB the wallet pays when sendmany gets no fee_rate
DUST = 546  # satoshis: change below this goes to the fee (Core's P2PKH dust threshold)
MAX_CONFIRMATIONS = 9_999_999  # listunspent's default maxconf, as Core's
OP_0, OP_HASH160 = 0x00, 0xA9  # first byte of a segwit v0 output / of a P2SH output
WALLET_VERSION = 169900  # what Core 29's descriptor wallets report as walletversion (FEATURE_LATEST)
KEYPOOL_SIZE = 1000  # Core's DEFAULT_KEYPOOL_SIZE: this wallet makes scripts on demand, never runs out
# Methods that concern the wallets without using one (a /wallet/NAME for an unknown NAME is no error)
WALLET_FREE = frozenset({"listwallets"})


def resubmit_wallet_transactions(node: NodeContext) -> None:
    """Offer the mempool, once per node start and before the wallet answers anything, every wallet
    transaction that is neither confirmed nor in the mempool (Core's wallet does this when it loads).
    The mempool is not kept across restarts: without this, a payment sent just before a restart would
    be listed by the wallet (by its comment) yet never confirm, and its coins would look unspent to the
    next sendmany. A transaction the mempool refuses (now conflicting) is left as it is."""
    for tx in ensure_wallet(node).unconfirmed():
        if tx.txid() in node.mempool:
            continue
        try:
            node.accept_transaction(tx)
        except MempoolReject as exc:
            log.info("wallet transaction %s not resubmitted: %s", tx.txid_hex(), exc.reason)
        except Exception:  # a bug here must not stop the wallet from answering
            log.exception("wallet transaction %s not resubmitted", tx.txid_hex())


# --- coins -------------------------------------------------------------------------------------------


def _trusted(node: NodeContext, txid: bytes, trusted_parents: set[bytes] | None = None) -> bool:
    """Core's CachedTxIsTrusted: confirmed; or a wallet transaction of our own (it spends our coins) that is
    in the mempool and whose inputs all spend our outputs of wallet transactions that are trusted in turn.
    A transaction the wallet keeps no record of (the generator's) is not trusted: nothing would bring it
    back after a restart, so coins it made must not fund a payment until they confirm."""
    depth = _wallet_depth(node, txid)[0]
    if depth != 0:
        return depth > 0
    wallet = ensure_wallet(node)
    rec = wallet.recorded(txid)
    if rec is None or txid not in node.mempool:
        return False
    tx = rec[0]
    if not wallet.amounts(tx).from_me:
        return False
    seen = set() if trusted_parents is None else trusted_parents
    for i in tx.inputs:
        parent = wallet.recorded(i.prevout.txid)
        if parent is None or i.prevout.index >= len(parent[0].outputs):
            return False
        if not wallet.owns(parent[0].outputs[i.prevout.index].script_pubkey):
            return False
        if i.prevout.txid in seen:
            continue
        if not _trusted(node, i.prevout.txid, seen):
            return False
        seen.add(i.prevout.txid)
    return True


def _held(node: NodeContext) -> set[OutPoint]:
    """Outpoints a pending payment of the wallet spends (Core's IsSpent): its spender is neither confirmed,
    abandoned nor conflicted by a block, whether it is in the mempool or not."""
    return {op for op, spender in ensure_wallet(node).pending_spends().items() if _conflict_depth(node, spender) == 0}


def _available(
    node: NodeContext, minconf: int = 0, include_unsafe: bool = False
) -> list[tuple[WalletCoin, bool]]:
    """Spendable wallet coins with at least `minconf` confirmations, each with whether it is safe
    (confirmed, or unconfirmed from a trusted transaction); unsafe ones only with `include_unsafe`."""
    out = []
    held = _held(node)
    for c in ensure_wallet(node).coins(ensure_chain(node), node.mempool):
        if not c.spendable_now or c.confirmations < minconf or c.outpoint in held:
            continue
        safe = c.confirmations > 0 or _trusted(node, c.outpoint.txid)
        if safe or include_unsafe:
            out.append((c, safe))
    return out


async def getnewaddress(node: NodeContext, label: str = "", address_type: str = "bech32") -> Any:
    try:
        return ensure_wallet(node).new_address(address_type, label)
    except NodeWalletError as exc:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, str(exc)) from None


async def getbalance(
    node: NodeContext,
    dummy: str | None = None,
    minconf: int = 0,
    include_watchonly: bool = False,
    avoid_reuse: bool = True,
) -> Any:
    if dummy is not None and dummy != "*":
        raise RPCError(codes.RPC_METHOD_DEPRECATED, 'dummy first argument must be excluded or set to "*".')
    return btc(sum(c.coin.value for c, safe in _available(node, minconf) if safe))


async def listunspent(
    node: NodeContext,
    minconf: int = 1,
    maxconf: int = MAX_CONFIRMATIONS,
    addresses: list[Any] | None = None,
    include_unsafe: bool = True,
    query_options: dict[str, Any] | None = None,
) -> Any:
    wallet = ensure_wallet(node)
    wanted = None
    if addresses:
        wanted = {script_for_address(node, a, f"Invalid Bitcoin address: {a}") for a in addresses}
    out = []
    for c, safe in _available(node, minconf, include_unsafe):
        if c.confirmations > maxconf:
            continue
        script = c.coin.script_pubkey
        if wanted is not None and script not in wanted:
            continue
        address = script_to_address(script, node.network)
        inner = wallet.inner_script(script)
        item: dict[str, Any] = {
            "txid": display_hex(c.outpoint.txid),
            "vout": c.outpoint.index,
            "address": address,
            "label": wallet.label(script),
            "scriptPubKey": script.hex(),
            "amount": btc(c.coin.value),
            "confirmations": c.confirmations,
        }
        if script[:1] == bytes((OP_HASH160,)):
            item["redeemScript"] = inner.hex()
        else:
            item["witnessScript"] = inner.hex()
        item.update(
            {
                "spendable": True,
                "solvable": True,
                "desc": script_pubkey_json(script, node.network)["desc"],
                "parent_descs": [],
                "safe": safe,
            }
        )
        out.append(item)
    return out


# --- sending -----------------------------------------------------------------------------------------


async def sendmany(
    node: NodeContext,
    amounts: dict[str, Any],
    dummy: str | None = None,
    minconf: int = 0,
    comment: str = "",
    subtractfeefrom: list[Any] | None = None,
    replaceable: bool = True,
    conf_target: int = 6,
    estimate_mode: str = "unset",
    fee_rate: Any = None,
    verbose: bool = False,
) -> Any:
    if dummy:
        raise RPCError(codes.RPC_INVALID_PARAMETER, 'Dummy value must be set to ""')
    if not amounts:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
    values = {"comment": comment} if comment else {}
    return _send(node, amounts, minconf, values, subtractfeefrom or [], fee_rate, verbose)


async def sendtoaddress(
    node: NodeContext,
    address: str,
    amount: Any,
    comment: str = "",
    comment_to: str = "",
    subtractfeefromamount: bool = False,
    replaceable: bool = True,
    conf_target: int = 6,
    estimate_mode: str = "unset",
    avoid_reuse: bool = True,
    fee_rate: Any = None,
    verbose: bool = False,
) -> Any:
    values = {k: v for k, v in (("comment", comment), ("to", comment_to)) if v}  # Core's mapValue keys
    subtract = [address] if subtractfeefromamount else []
    return _send(node, {address: amount}, 0, values, subtract, fee_rate, verbose)


def _send(
    node: NodeContext,
    amounts: dict[str, Any],
    minconf: int,
    values: dict[str, str],
    subtractfeefrom: list[Any],
    fee_rate: Any,
    verbose: bool,
) -> Any:
    """Core's SendMoney: pay `amounts` (address → BTC) from the wallet's safe coins, change back to a
    fresh change script, `values` kept with the transaction; the txid (or {txid, fee_reason})."""
    wallet = ensure_wallet(node)
    outputs: list[TxOut] = []
    scripts: dict[str, int] = {}
    for address, amount in amounts.items():
        if address in scripts:
            raise RPCError(codes.RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: {address}")
        script = script_for_address(node, address, f"Invalid Bitcoin address: {address}")
        value = parse_amount(amount)
        if value <= 0:
            raise RPCError(codes.RPC_TYPE_ERROR, "Invalid amount for send")
        scripts[address] = len(outputs)
        outputs.append(TxOut(value, script))
    subtract = [scripts[a] for a in subtractfeefrom if a in scripts]
    rate = WALLET_FEE_RATE
    if fee_rate is not None:
        try:
            rate_dec = Decimal(str(fee_rate))
        except InvalidOperation:
            raise RPCError(codes.RPC_TYPE_ERROR, "Invalid fee_rate") from None
        if not rate_dec.is_finite() or rate_dec <= 0:
            raise RPCError(codes.RPC_INVALID_PARAMETER, "Invalid fee_rate")
        rate = int(rate_dec.to_integral_value(rounding="ROUND_CEILING"))
    coins = sorted((c for c, safe in _available(node, minconf) if safe), key=lambda c: -c.coin.value)
    target = sum(o.value for o in outputs)
    chosen = []
    total = 0
    fee = 0
    for c in coins:
        chosen.append(c)
        total += c.coin.value
        segwit_in = sum(1 for x in chosen if x.coin.script_pubkey[:1] == bytes((OP_0,)))
        fee = rate * estimate_vsize(len(chosen), len(outputs) + 1, segwit_in)
        if total >= target + (0 if subtract else fee):
            break
    need = target + (0 if subtract else fee)
    if not chosen or total < need:
        raise RPCError(codes.RPC_WALLET_INSUFFICIENT_FUNDS, "Insufficient funds")
    if subtract:
        share, rest = divmod(fee, len(subtract))
        for k, idx in enumerate(subtract):
            o = outputs[idx]
            cut = share + (rest if k == 0 else 0)
            if o.value - cut <= DUST:
                raise RPCError(codes.RPC_WALLET_ERROR, "The transaction amount is too small to pay the fee")
            outputs[idx] = TxOut(o.value - cut, o.script_pubkey)
    change = total - sum(o.value for o in outputs) - fee
    if change > DUST:
        outputs.append(TxOut(change, wallet.new_script("segwit", "", change=True)))
    tx = wallet.sign([(c.outpoint, c.coin) for c in chosen], outputs)
    # The comment goes into the wallet before the transaction goes out (Core stores mapValue with the
    # transaction in CommitTransaction, then broadcasts): a payer who crashes right after this call can
    # always find its payment by the comment, whether or not it left change to the wallet.
    wallet.set_values(tx.txid(), values)
    try:
        txid = display_hex(broadcast(node, tx))
    except RPCError:
        wallet.drop_values(tx.txid())
        raise
    return {"txid": txid, "fee_reason": "Fallback fee"} if verbose else txid


# --- addresses and the wallet itself -----------------------------------------------------------------


async def getaddressinfo(node: NodeContext, address: str) -> Any:
    """Core's getaddressinfo: what the wallet knows of an address. Its own scripts are solvable (the
    wallet can always spend them) and described by the witness or redeem script behind them."""
    wallet = ensure_wallet(node)
    try:
        script = address_to_script(address, node.network)
    except AddressError as exc:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, str(exc) or "Invalid address") from None
    mine = wallet.owns(script)
    out: dict[str, Any] = {"address": address, "scriptPubKey": script.hex(), "ismine": mine, "solvable": mine}
    if mine:
        out["desc"] = script_pubkey_json(script, node.network)["desc"]
    out["iswatchonly"] = False
    described = await validateaddress(node, address)
    for key in ("isscript", "iswitness", "witness_version", "witness_program"):
        if key in described:
            out[key] = described[key]
    if mine:
        inner = wallet.inner_script(script)
        out["script"] = script_type(inner)  # Core's DescribeWalletAddress for a script it knows
        out["hex"] = inner.hex()
    out["ischange"] = wallet.is_change(script)
    out["labels"] = [wallet.label(script)] if mine and not wallet.is_change(script) else []
    return out


async def getwalletinfo(node: NodeContext) -> Any:
    wallet = ensure_wallet(node)
    chain = ensure_chain(node)
    trusted = untrusted = immature = 0
    maturity = node.network.coinbase_maturity
    for c, safe in _available(node, 0, include_unsafe=True):
        if c.confirmations == 0 and not safe:
            untrusted += c.coin.value
        else:
            trusted += c.coin.value
    for c in wallet.coins(chain, node.mempool):
        if c.coin.is_coinbase and c.confirmations < maturity + 1:
            immature += c.coin.value
    return {
        "walletname": node.wallet_name,
        "walletversion": WALLET_VERSION,
        "format": "sqlite",
        "balance": btc(trusted),
        "unconfirmed_balance": btc(untrusted),
        "immature_balance": btc(immature),
        "txcount": wallet.transaction_count(),
        "keypoolsize": KEYPOOL_SIZE,
        "keypoolsize_hd_internal": KEYPOOL_SIZE,
        "paytxfee": btc(0),
        "private_keys_enabled": True,
        "avoid_reuse": False,
        "scanning": False,
        "descriptors": True,
        "external_signer": False,
        "blank": False,
        "lastprocessedblock": {"hash": display_hex(chain.tip.hash), "height": chain.height},
    }


async def listwallets(node: NodeContext) -> Any:
    return [node.wallet_name]


async def walletpassphrase(node: NodeContext, passphrase: str, timeout: int) -> Any:  # noqa: ASYNC109
    # `timeout` is Core's name for the argument (named parameters must match), not an asyncio timeout
    raise RPCError(
        codes.RPC_WALLET_WRONG_ENC_STATE,
        "Error: running with an unencrypted wallet, but walletpassphrase was called.",
    )


async def walletlock(node: NodeContext) -> Any:
    raise RPCError(
        codes.RPC_WALLET_WRONG_ENC_STATE,
        "Error: running with an unencrypted wallet, but walletlock was called.",
    )


# --- history -----------------------------------------------------------------------------------------


async def gettransaction(
    node: NodeContext, txid: str, include_watchonly: bool = True, verbose: bool = False
) -> Any:
    wallet = ensure_wallet(node)
    h = parse_hash(txid, "txid")
    rec = wallet.recorded(h)
    if rec is None:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    tx, received = rec
    amounts = wallet.amounts(tx)
    fee = _wallet_fee(node, h, tx, amounts)
    # Core: amount = credit - debit - (value out - debit) when from us, i.e. the net less the fee
    out: dict[str, Any] = {"amount": btc(amounts.credit - amounts.debit + (fee or 0))}
    if fee is not None:
        out["fee"] = btc(-fee)
    out.update(_wallet_tx_json(node, h, tx, received))
    out["details"] = _wallet_entries(node, h, tx, received, amounts, fee, None, long=False)
    out["hex"] = tx.serialize().hex()
    if verbose:
        out["decoded"] = tx_json(tx, node.network, include_hex=False)
    return out


async def listtransactions(
    node: NodeContext,
    label: str | None = None,
    count: Any = 10,
    skip: Any = 0,
    include_watchonly: bool = True,
) -> Any:
    """Core's listtransactions: the newest `count` entries after skipping the newest `skip`, returned
    oldest first. The wallet is walked newest transaction first and the walk stops as soon as enough
    entries are found, as in Core; within one transaction the entries come out in reverse of
    gettransaction's details (Core reverses the whole list it built newest first)."""
    wallet = ensure_wallet(node)
    label_filter: str | None = None
    if label is not None and label != "*":
        if label == "":
            raise RPCError(codes.RPC_INVALID_PARAMETER, 'Label argument must be a valid label name or "*".')
        label_filter = label
    n_count = parse_int32(count)
    n_skip = parse_int32(skip)
    if n_count < 0:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Negative count")
    if n_skip < 0:
        raise RPCError(codes.RPC_INVALID_PARAMETER, "Negative from")
    newest_first: list[dict[str, Any]] = []
    wanted = n_count + n_skip
    if n_count > 0:
        for tx, received in wallet.history():
            h = tx.txid()
            amounts = wallet.amounts(tx)
            fee = _wallet_fee(node, h, tx, amounts)
            newest_first.extend(_wallet_entries(node, h, tx, received, amounts, fee, label_filter, long=True))
            if len(newest_first) >= wanted:
                break
    page = newest_first[n_skip : n_skip + n_count]
    page.reverse()
    return page


async def abandontransaction(node: NodeContext, txid: str) -> Any:
    """Core's abandontransaction: mark a wallet transaction that is neither in a block nor in the mempool,
    and its wallet descendants, abandoned. It is not offered to the mempool again, and the coins it spent
    are the wallet's to spend again. Errors as Core's: -5 for a transaction the wallet does not have, and
    -5 "not eligible" for one that is confirmed, conflicted or in the mempool."""
    wallet = ensure_wallet(node)
    h = parse_hash(txid, "txid")
    if wallet.recorded(h) is None:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    if _wallet_depth(node, h)[0] != 0 or h in node.mempool:
        raise RPCError(codes.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not eligible for abandonment")
    chain = ensure_chain(node)
    marked: list[bytes] = []
    todo = [h]
    while todo:
        t = todo.pop()
        if t in marked or chain.tx_location(t) is not None or t in node.mempool:
            continue
        marked.append(t)
        todo.extend(wallet.children(t))
    wallet.abandon(marked)
    log.info("wallet transaction %s abandoned (%d with its descendants)", txid, len(marked))
    return None


def _wallet_fee(node: NodeContext, h: bytes, tx: Transaction, amounts: TxAmounts) -> int | None:
    """The fee of a transaction that spends our coins (None for anything else, or when unknowable)."""
    if not amounts.from_me or tx.is_coinbase():
        return None
    if amounts.inputs_known:
        return int(amounts.debit - sum(o.value for o in tx.outputs))
    if h in node.mempool:
        return int(node.fee_of(tx))
    return _confirmed_fee(node, h)


def _confirmed_fee(node: NodeContext, txid: bytes) -> int | None:
    chain = ensure_chain(node)
    loc = chain.tx_location(txid)
    if loc is None:
        return None
    return chain.block_fees(chain.index[loc[0]]).get(loc[1])


def _wallet_depth(node: NodeContext, h: bytes) -> tuple[int, IndexEntry | None, int | None]:
    """(confirmations, the block's index entry or None, position in the block or None). Confirmations are
    negative for a conflicted transaction, as Core's (GetTxDepthInMainChain): minus the depth of the block
    that spent one of its inputs, or an input of an unconfirmed wallet ancestor, another way."""
    chain = ensure_chain(node)
    loc = chain.tx_location(h)
    if loc is None:
        return -_conflict_depth(node, h), None, None
    e = chain.index[loc[0]]
    confirmations = chain.confirmations(e)
    if confirmations < 1:
        return 0, None, None
    return confirmations, e, loc[1]


# Unconfirmed wallet ancestors walked when looking for a conflict: a chain of unconfirmed payments is a few
# transactions long (Core's mempool allows 25 ancestors); the walk stops there rather than run away.
MAX_CONFLICT_WALK = 100


def _conflict_depth(node: NodeContext, h: bytes) -> int:
    """The depth of the deepest active block that conflicts unconfirmed wallet transaction `h` or one of its
    unconfirmed wallet ancestors (Core marks the descendants of a conflicted transaction conflicted too);
    0 when none does. A conflict by a block that has left the active chain no longer counts."""
    chain, wallet = ensure_chain(node), ensure_wallet(node)
    depth = 0
    todo, seen = [h], set[bytes]()
    while todo and len(seen) < MAX_CONFLICT_WALK:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for block in wallet.conflict_blocks(t):
            e = chain.index.get(block)
            if e is not None and chain.is_active(e):
                depth = max(depth, chain.confirmations(e))
        rec = wallet.recorded(t)
        if rec is None or rec[0].is_coinbase():
            continue
        for i in rec[0].inputs:
            if wallet.recorded(i.prevout.txid) is not None and chain.tx_location(i.prevout.txid) is None:
                todo.append(i.prevout.txid)
    return depth


def _wallet_conflicts(node: NodeContext, h: bytes, tx: Transaction) -> list[str]:
    """Core's walletconflicts: the other wallet transactions spending an input of this one."""
    wallet = ensure_wallet(node)
    if tx.is_coinbase():
        return []
    others = {other for i in tx.inputs for other in wallet.spenders(i.prevout) if other != h}
    return sorted(display_hex(o) for o in others)


def _abandoned(node: NodeContext, h: bytes, confirmations: int) -> bool:
    """Abandoned, and still neither confirmed nor in the mempool (where a transaction is, beats its mark)."""
    return confirmations == 0 and h not in node.mempool and ensure_wallet(node).is_abandoned(h)


def _wallet_tx_json(node: NodeContext, h: bytes, tx: Transaction, received: int) -> dict[str, Any]:
    """Core's WalletTxToJSON: the fields gettransaction and listtransactions share, in Core's order,
    ending with the transaction's string values (its sendmany `comment`)."""
    confirmations, e, index = _wallet_depth(node, h)
    out: dict[str, Any] = {"confirmations": confirmations}
    if tx.is_coinbase():
        out["generated"] = True
    if e is not None:
        out.update(
            {
                "blockhash": display_hex(e.hash),
                "blockheight": e.height,
                "blockindex": index,
                "blocktime": e.header.time,
            }
        )
    else:
        out["trusted"] = _trusted(node, h)
    out.update(
        {
            "txid": tx.txid_hex(),
            "wtxid": tx.wtxid_hex(),
            "walletconflicts": _wallet_conflicts(node, h, tx),
            "mempoolconflicts": [],
            "time": received,
            "timereceived": received,
            "bip125-replaceable": "yes"
            if confirmations <= 0 and any(i.sequence < BIP125_FINAL_SEQUENCE for i in tx.inputs)
            else "no",
        }
    )
    out.update(ensure_wallet(node).values(h))
    return out


def _wallet_entries(
    node: NodeContext,
    h: bytes,
    tx: Transaction,
    received: int,
    amounts: TxAmounts,
    fee: int | None,
    label_filter: str | None,
    *,
    long: bool,
) -> list[dict[str, Any]]:
    """Core's ListTransactions for one transaction: its send entries (none under a label filter), then
    its receive entries; `long` adds the WalletTxToJSON fields (listtransactions), without them these
    are gettransaction's details."""
    wallet = ensure_wallet(node)
    net = node.network
    common = _wallet_tx_json(node, h, tx, received) if long else {}
    confirmations = common["confirmations"] if long else _wallet_depth(node, h)[0]
    abandoned = _abandoned(node, h, confirmations)
    entries: list[dict[str, Any]] = []
    if label_filter is None:
        for n, o in amounts.sent:
            d: dict[str, Any] = {}
            address = script_to_address(o.script_pubkey, net)
            if address is not None:
                d["address"] = address
            d["category"] = "send"
            d["amount"] = btc(-o.value)
            if wallet.owns(o.script_pubkey):  # one of our own addresses: in the address book
                d["label"] = wallet.label(o.script_pubkey)
            d["vout"] = n
            d["fee"] = btc(-(fee or 0))
            d.update(common)
            d["abandoned"] = abandoned
            entries.append(d)
    for n, o in amounts.received:
        label = wallet.label(o.script_pubkey)
        if label_filter is not None and label != label_filter:
            continue
        r: dict[str, Any] = {}
        address = script_to_address(o.script_pubkey, net)
        if address is not None:
            r["address"] = address
        r["parent_descs"] = []
        if tx.is_coinbase():
            # Core's wallet: orphan off the active chain, immature until COINBASE_MATURITY + 1
            # confirmations (GetTxBlocksToMaturity), then generate
            if confirmations < 1:
                r["category"] = "orphan"
            elif confirmations < net.coinbase_maturity + 1:
                r["category"] = "immature"
            else:
                r["category"] = "generate"
        else:
            r["category"] = "receive"
        r["amount"] = btc(o.value)
        r["label"] = label
        r["vout"] = n
        r["abandoned"] = abandoned
        r.update(common)
        entries.append(r)
    return entries


COMMANDS: tuple[Command, ...] = (
    Command("getnewaddress", getnewaddress, (Arg("label", "str"), Arg("address_type", "str"))),
    Command(
        "getbalance",
        getbalance,
        (
            Arg("dummy", "str"),
            Arg("minconf", "num"),
            Arg("include_watchonly", "bool"),
            Arg("avoid_reuse", "bool"),
        ),
    ),
    Command(
        "listunspent",
        listunspent,
        (
            Arg("minconf", "num"),
            Arg("maxconf", "num"),
            Arg("addresses", "arr"),
            Arg("include_unsafe", "bool"),
            Arg("query_options", "obj"),
        ),
    ),
    Command(
        "sendmany",
        sendmany,
        (
            Arg("dummy", "str"),
            Arg("amounts", "obj", True),
            Arg("minconf", "num"),
            Arg("comment", "str"),
            Arg("subtractfeefrom", "arr"),
            Arg("replaceable", "bool"),
            Arg("conf_target", "num"),
            Arg("estimate_mode", "str"),
            Arg("fee_rate", "amount"),
            Arg("verbose", "bool"),
        ),
    ),
    Command(
        "sendtoaddress",
        sendtoaddress,
        (
            Arg("address", "str", True),
            Arg("amount", "amount", True),
            Arg("comment", "str"),
            Arg("comment_to", "str"),
            Arg("subtractfeefromamount", "bool"),
            Arg("replaceable", "bool"),
            Arg("conf_target", "num"),
            Arg("estimate_mode", "str"),
            Arg("avoid_reuse", "bool"),
            Arg("fee_rate", "amount"),
            Arg("verbose", "bool"),
        ),
    ),
    Command("getaddressinfo", getaddressinfo, (Arg("address", "str", True),)),
    Command("getwalletinfo", getwalletinfo),
    Command("listwallets", listwallets),
    Command(
        "walletpassphrase", walletpassphrase, (Arg("passphrase", "str", True), Arg("timeout", "num", True))
    ),
    Command("walletlock", walletlock),
    Command(
        "gettransaction",
        gettransaction,
        (Arg("txid", "str", True), Arg("include_watchonly", "bool"), Arg("verbose", "bool")),
    ),
    Command(
        "listtransactions",
        listtransactions,
        (Arg("label", "str"), Arg("count", "num"), Arg("skip", "num"), Arg("include_watchonly", "bool")),
    ),
    Command("abandontransaction", abandontransaction, (Arg("txid", "str", True),)),
)

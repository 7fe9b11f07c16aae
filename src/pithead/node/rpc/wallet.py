"""The embedded node's wallet RPC methods, as Bitcoin Core's src/wallet/rpc/*.cpp have them.

getnewaddress and getaddressinfo (addresses.cpp), getbalance and listunspent (coins.cpp), sendmany and
sendtoaddress (spend.cpp: `comment` and `comment_to` kept with the transaction, as Core's mapValue),
gettransaction and listtransactions (transactions.cpp, with Core's WalletTxToJSON and ListTransactions
shapes and order), getwalletinfo and listwallets (wallet.cpp), walletpassphrase and walletlock
(encrypt.cpp: this wallet is never encrypted, so they answer Core's -15 for an unencrypted wallet, which
payout software that unlocks before paying expects). The first wallet method after a start offers the
mempool the wallet's unconfirmed transactions again (`resubmit_wallet_transactions`, Core's
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
from pithead.chain.tx import Transaction, TxOut
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


def _trusted(node: NodeContext, txid: bytes) -> bool:
    """An unconfirmed wallet transaction counts (Core: IsTrusted) when it spends our own coins."""
    e = node.mempool.entries.get(txid)
    if e is None:
        return False
    chain, wallet = ensure_chain(node), ensure_wallet(node)
    for i in e.tx.inputs:
        c = node.mempool.coin(i.prevout) or chain.coin(i.prevout)
        if c is None or not wallet.owns(c.script_pubkey):
            return False
    return True


def _available(
    node: NodeContext, minconf: int = 0, include_unsafe: bool = False
) -> list[tuple[WalletCoin, bool]]:
    """Spendable wallet coins with at least `minconf` confirmations, each with whether it is safe
    (confirmed, or unconfirmed from a trusted transaction); unsafe ones only with `include_unsafe`."""
    out = []
    for c in ensure_wallet(node).coins(ensure_chain(node), node.mempool):
        if not c.spendable_now or c.confirmations < minconf:
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
    """(confirmations, the block's index entry or None, position in the block or None)."""
    chain = ensure_chain(node)
    loc = chain.tx_location(h)
    if loc is None:
        return 0, None, None
    e = chain.index[loc[0]]
    confirmations = chain.confirmations(e)
    if confirmations < 1:
        return 0, None, None
    return confirmations, e, loc[1]


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
            "walletconflicts": [],
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
            d["abandoned"] = False
            entries.append(d)
    confirmations = common["confirmations"] if long else _wallet_depth(node, h)[0]
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
        r["abandoned"] = False
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
)

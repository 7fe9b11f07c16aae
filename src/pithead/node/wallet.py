"""The embedded node's minimal wallet: the node's own anyone-can-spend addresses and the coins paid to them.

Enough for a pool's payouts and for the transaction generator, with no keys: every address is P2WSH
("bech32", the default) or P2SH ("legacy"/"p2sh-segwit") of a distinct `<tag> OP_DROP OP_TRUE` script
(scripts.py), so the node can always "sign" its own coins. Anyone who learns such a script could spend
the coin too: this is a regtest/demo wallet, never a place for value.

Kept in the chain state's SQLite file: `wallet_scripts` (every script, with its label), `wallet_change`
(which of them are change, as Core's "not in the address book"), `wallet_txs` (every transaction paying or
spending ours, in the order the wallet first saw them, which is the order `listtransactions` walks, as
Core's nOrderPos) and `wallet_tx_values` (a transaction's string values, Core's mapValue: the `comment`
sendmany was given). Coins are read from the UTXO set and the mempool, so they follow reorganisations
without bookkeeping of their own.
Not here: encryption, key derivation, labels beyond a string, fee bumping, coin control, watch-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pithead.chain.address import script_to_address
from pithead.chain.params import Network
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.node.chainstate import ChainState
from pithead.node.consensus import Coin
from pithead.node.mempool import MEMPOOL_HEIGHT, Mempool
from pithead.node.scripts import inner_script, legacy_spend, p2sh_of, p2wsh_of, segwit_spend

TXGEN_LABEL = "txgen"  # the transaction generator's scripts
QUIET_LABELS = frozenset({TXGEN_LABEL})  # scripts whose transactions are not recorded (see NodeWallet.tracks)
ADDRESS_TYPES = {"bech32": "segwit", "legacy": "legacy", "p2sh-segwit": "legacy"}
SEQUENCE_RBF = 0xFFFFFFFD  # BIP125 signal, as Core's wallet sets by default

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_scripts (
  script BLOB PRIMARY KEY, inner BLOB NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL, tag INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_txs (txid BLOB PRIMARY KEY, raw BLOB NOT NULL, time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wallet_change (script BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS wallet_tx_values (
  txid BLOB NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (txid, key)
);
"""
# wallet_txs is a rowid table and the wallet never deletes from it, so SQLite's rowid only grows: it is the
# order in which the wallet first saw each transaction (Core's nOrderPos), kept across restarts.

HISTORY_PAGE = 200  # wallet transactions read per query when walking the history newest first


class NodeWalletError(ValueError):
    """A wallet request that cannot be met (unknown address type, insufficient funds)."""


@dataclass(frozen=True, slots=True)
class TxAmounts:
    """What a transaction means to the wallet (Core's CachedTxGetAmounts, less watch-only).

    `sent`: (vout, output) of every output that is not change, when the transaction spends ours;
    `received`: (vout, output) of every output paying ours, change left out when it spends ours. An output
    paying one of our own non-change addresses from our own coins is both, as in Core."""

    debit: int  # value of the inputs that spend our recorded outputs
    credit: int  # value of the outputs paying ours (change included)
    inputs_known: bool  # every input spends one of our recorded outputs: the fee is debit - value out
    sent: tuple[tuple[int, TxOut], ...]
    received: tuple[tuple[int, TxOut], ...]

    @property
    def from_me(self) -> bool:
        return self.debit > 0


@dataclass(frozen=True, slots=True)
class WalletCoin:
    outpoint: OutPoint
    coin: Coin
    confirmations: int  # 0 for a coin in the mempool
    spendable_now: bool  # mature (coinbase) and not spent by a mempool transaction


class NodeWallet:
    def __init__(self, db: sqlite3.Connection, network: Network) -> None:
        self.db = db
        self.network = network
        db.executescript(_SCHEMA)
        self._scripts: dict[bytes, tuple[bytes, str, str]] = {
            bytes(s): (bytes(i), k, lbl)
            for s, i, k, lbl in db.execute("SELECT script, inner, kind, label FROM wallet_scripts")
        }
        self._change: set[bytes] = {bytes(s) for (s,) in db.execute("SELECT script FROM wallet_change")}

    def new_script(self, kind: str = "segwit", label: str = "", change: bool = False) -> bytes:
        """A fresh script; `change` marks it as the wallet's own change (never shown as received)."""
        if kind not in ("segwit", "legacy"):
            raise NodeWalletError(f"unknown script kind {kind!r}")
        row = self.db.execute("SELECT COALESCE(MAX(tag), -1) + 1 FROM wallet_scripts").fetchone()
        tag = int(row[0])
        inner = inner_script(tag)
        script = p2wsh_of(inner) if kind == "segwit" else p2sh_of(inner)
        self.db.execute("INSERT INTO wallet_scripts VALUES (?,?,?,?,?)", (script, inner, kind, label, tag))
        if change:
            self.db.execute("INSERT OR IGNORE INTO wallet_change VALUES (?)", (script,))
            self._change.add(script)
        self._scripts[script] = (inner, kind, label)
        return script

    def is_change(self, script: bytes) -> bool:
        """Ours and made as change (Core's OutputIsChange: mine and not in the address book). Change made
        before the wallet kept this mark reads as an ordinary address of the wallet."""
        return script in self._change

    def new_address(self, address_type: str = "bech32", label: str = "") -> str:
        kind = ADDRESS_TYPES.get(address_type)
        if kind is None:
            raise NodeWalletError(f"Unknown address type '{address_type}'")
        address = script_to_address(self.new_script(kind, label), self.network)
        assert address is not None
        return address

    def owns(self, script: bytes) -> bool:
        return script in self._scripts

    def inner_script(self, script: bytes) -> bytes:
        """The anyone-can-spend script behind a wallet output (its redeemScript or witnessScript)."""
        return self._scripts[script][0]

    def label(self, script: bytes) -> str:
        return self._scripts[script][2]

    def scripts(self) -> list[bytes]:
        return list(self._scripts)

    def _confirmed(self, label: str | None) -> list[tuple[OutPoint, Coin]]:
        """Wallet coins in the UTXO set, in one indexed join (the wallet may hold thousands of scripts)."""
        query = (
            "SELECT u.txid, u.n, u.value, u.script, u.height, u.coinbase FROM utxo u "
            "JOIN wallet_scripts w ON u.script = w.script"
        )
        rows = (
            self.db.execute(query + " WHERE w.label = ?", (label,))
            if label is not None
            else self.db.execute(query)
        )
        return [
            (OutPoint(bytes(txid), n), Coin(value, bytes(script), height, bool(cb)))
            for txid, n, value, script, height, cb in rows
        ]

    def coins(self, chain: ChainState, mempool: Mempool, label: str | None = None) -> list[WalletCoin]:
        """Every coin paid to the wallet (or to its scripts with `label`): confirmed (UTXO set) and
        unconfirmed (mempool outputs)."""
        out: list[WalletCoin] = []
        tip = chain.height
        maturity = chain.network.coinbase_maturity
        for op, coin in self._confirmed(label):
            conf = tip - coin.height + 1
            # Core's wallet waits for COINBASE_MATURITY + 1 confirmations (GetBlocksToMaturity), one more
            # than consensus needs, so a wallet spend is valid even after a one-block reorg.
            mature = not coin.is_coinbase or conf >= maturity + 1
            out.append(WalletCoin(op, coin, conf, mature and op not in mempool.spent_by))
        for e in mempool.entries.values():
            for n, o in enumerate(e.tx.outputs):
                entry = self._scripts.get(o.script_pubkey)
                if entry is not None and (label is None or entry[2] == label):
                    op = OutPoint(e.txid, n)
                    coin = Coin(o.value, o.script_pubkey, MEMPOOL_HEIGHT, False)
                    out.append(WalletCoin(op, coin, 0, op not in mempool.spent_by))
        return out

    def sign(
        self, inputs: Sequence[tuple[OutPoint, Coin]], outputs: Sequence[TxOut], locktime: int = 0
    ) -> Transaction:
        """A transaction spending wallet coins: each input gets the scriptSig/witness its script needs."""
        txins = []
        for op, coin in inputs:
            entry = self._scripts.get(coin.script_pubkey)
            if entry is None:
                raise NodeWalletError("input does not belong to this wallet")
            inner, kind, _ = entry
            script_sig, witness = segwit_spend(inner) if kind == "segwit" else legacy_spend(inner)
            txins.append(TxIn(op, script_sig, SEQUENCE_RBF, witness))
        return Transaction(2, tuple(txins), tuple(outputs), locktime)

    def record(self, tx: Transaction, time: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO wallet_txs VALUES (?,?,?)", (tx.txid(), tx.serialize(), time))

    def transaction_count(self) -> int:
        """How many transactions the wallet has recorded (getwalletinfo's txcount)."""
        row = self.db.execute("SELECT COUNT(*) FROM wallet_txs").fetchone()
        return int(row[0])

    def recorded(self, txid: bytes) -> tuple[Transaction, int] | None:
        row = self.db.execute("SELECT raw, time FROM wallet_txs WHERE txid=?", (txid,)).fetchone()
        return (Transaction.parse(bytes(row[0])), row[1]) if row else None

    def history(self) -> Iterator[tuple[Transaction, int]]:
        """Every recorded transaction with its time, newest first (the reverse of the order the wallet
        first saw them), read a page at a time so that a caller who stops early reads little."""
        before: int | None = None
        while True:
            rows = (
                self.db.execute(
                    "SELECT rowid, raw, time FROM wallet_txs ORDER BY rowid DESC LIMIT ?", (HISTORY_PAGE,)
                )
                if before is None
                else self.db.execute(
                    "SELECT rowid, raw, time FROM wallet_txs WHERE rowid < ? ORDER BY rowid DESC LIMIT ?",
                    (before, HISTORY_PAGE),
                )
            ).fetchall()
            for rowid, raw, time in rows:
                before = int(rowid)
                yield Transaction.parse(bytes(raw)), int(time)
            if len(rows) < HISTORY_PAGE:
                return

    def unconfirmed(self) -> list[Transaction]:
        """Recorded transactions that are not in the active chain (the chain state's `txindex`), coinbases
        left out, in the order the wallet first saw them (parents before children): what Core's wallet
        offers the mempool again when it loads (ResubmitWalletTransactions)."""
        rows = self.db.execute(
            "SELECT w.raw FROM wallet_txs w LEFT JOIN txindex t ON t.txid = w.txid "
            "WHERE t.txid IS NULL ORDER BY w.rowid"
        )
        txs = [Transaction.parse(bytes(raw)) for (raw,) in rows]
        return [tx for tx in txs if not tx.is_coinbase()]

    def set_values(self, txid: bytes, values: Mapping[str, str]) -> None:
        """Attach string values (Core's mapValue, e.g. "comment") to a transaction, before or after it is
        recorded; a value already there is kept (a transaction's comment never changes)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO wallet_tx_values VALUES (?,?,?)", [(txid, k, v) for k, v in values.items()]
        )

    def values(self, txid: bytes) -> dict[str, str]:
        """A transaction's string values, by key in sorted order (Core keeps them in a sorted map)."""
        rows = self.db.execute("SELECT key, value FROM wallet_tx_values WHERE txid=? ORDER BY key", (txid,))
        return {str(k): str(v) for k, v in rows}

    def drop_values(self, txid: bytes) -> None:
        """Forget the values of a transaction that never became a wallet transaction (refused by the mempool)."""
        if self.recorded(txid) is None:
            self.db.execute("DELETE FROM wallet_tx_values WHERE txid=?", (txid,))

    def amounts(self, tx: Transaction) -> TxAmounts:
        """Debit, credit, sent and received outputs of a transaction, from the wallet's own records."""
        debit = 0
        known = not tx.is_coinbase()
        for i in tx.inputs:
            prev = None if tx.is_coinbase() else self.recorded(i.prevout.txid)
            if prev is not None and i.prevout.index < len(prev[0].outputs):
                o = prev[0].outputs[i.prevout.index]
                if self.owns(o.script_pubkey):
                    debit += o.value
                    continue
            known = False
        credit = 0
        sent: list[tuple[int, TxOut]] = []
        received: list[tuple[int, TxOut]] = []
        for n, o in enumerate(tx.outputs):
            mine = self.owns(o.script_pubkey)
            if mine:
                credit += o.value
            if debit > 0:
                if self.is_change(o.script_pubkey):
                    continue
                sent.append((n, o))
            if mine:
                received.append((n, o))
        return TxAmounts(debit, credit, known, tuple(sent), tuple(received))

    def tracks(self, script: bytes) -> bool:
        """Ours and worth a transaction record: the generator's scripts (QUIET_LABELS) are not, or the
        record table would grow by the generator's rate forever."""
        entry = self._scripts.get(script)
        return entry is not None and entry[2] not in QUIET_LABELS

    def is_relevant(self, tx: Transaction) -> bool:
        """Whether `tx` pays the wallet (outside QUIET_LABELS), so it gets a record for gettransaction."""
        return any(self.tracks(o.script_pubkey) for o in tx.outputs)


def estimate_vsize(n_in: int, n_out: int, segwit_inputs: int) -> int:
    """Rough virtual size for fee estimation of wallet transactions (anyone-can-spend inputs are small)."""
    return 11 + n_in * 48 + n_out * 43 + (segwit_inputs * 10 + 3) // 4 + 1

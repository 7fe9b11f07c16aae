"""The embedded node's minimal wallet: the node's own anyone-can-spend addresses and the coins paid to them.

Enough for a pool's payouts and for the transaction generator, with no keys: every address is P2WSH
("bech32", the default) or P2SH ("legacy"/"p2sh-segwit") of a distinct `<tag> OP_DROP OP_TRUE` script
(scripts.py), so the node can always "sign" its own coins. Anyone who learns such a script could spend
the coin too: this is a regtest/demo wallet, never a place for value.

Kept in the chain state's SQLite file: `wallet_scripts` (every script, with its label), `wallet_change`
(which of them are change, as Core's "not in the address book"), `wallet_txs` (every transaction paying or
spending ours, in the order the wallet first saw them, which is the order `listtransactions` walks, as
Core's nOrderPos), `wallet_tx_values` (a transaction's string values, Core's mapValue: the `comment`
sendmany was given), `wallet_tx_inputs` (each recorded transaction's inputs, with the coin each spent
when the wallet knew it: its debit even when the coin came from a transaction the wallet keeps no record
of, and the index of who spends what, Core's mapTxSpends), `wallet_conflicts` (a block that spent an input
of a recorded transaction another way) and `wallet_abandoned` (Core's abandontransaction). Coins are read
from the UTXO set and the mempool, so they follow reorganisations without bookkeeping of their own.

What the wallet records follows Core (CWallet::AddToWalletIfInvolvingMe): every transaction that pays or
spends its coins, with one exception kept on purpose: the transaction generator's own traffic (its
scripts paying its scripts, QUIET_LABELS), which would grow the records by the generator's rate forever.
A payment funded from the generator's coins is a wallet payment like any other: recorded, listed with
its `send` entries, its debit read from the spent coins kept at record time.
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
CREATE TABLE IF NOT EXISTS wallet_tx_inputs (
  txid BLOB NOT NULL, vin INTEGER NOT NULL, prev_txid BLOB NOT NULL, prev_n INTEGER NOT NULL,
  value INTEGER, script BLOB, PRIMARY KEY (txid, vin)
);
CREATE INDEX IF NOT EXISTS wallet_tx_inputs_prevout ON wallet_tx_inputs (prev_txid, prev_n);
CREATE TABLE IF NOT EXISTS wallet_conflicts (
  txid BLOB NOT NULL, block BLOB NOT NULL, PRIMARY KEY (txid, block)
);
CREATE TABLE IF NOT EXISTS wallet_abandoned (txid BLOB PRIMARY KEY);
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
        self._backfill_inputs()

    def _backfill_inputs(self) -> None:
        """Input rows for transactions recorded before the wallet kept them, so that who spends what
        (conflicts, abandoning, the coins a pending payment holds) covers every record. Their spent coins
        are not known any more: their debit is read from the recorded parents, as it always was."""
        rows = self.db.execute(
            "SELECT w.raw FROM wallet_txs w WHERE NOT EXISTS (SELECT 1 FROM wallet_tx_inputs i WHERE i.txid = w.txid)"
        ).fetchall()
        for (raw,) in rows:
            self._insert_inputs(Transaction.parse(bytes(raw)), ())

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

    def record(self, tx: Transaction, time: int, spent: Sequence[Coin | None] = ()) -> None:
        """Keep `tx` (the first time it is seen; a record never changes) with its inputs and, where the
        coin an input spends is known and ours (`spent`, one entry per input), that coin's value and script:
        the debit of a payment funded from coins the wallet keeps no transaction for."""
        cur = self.db.execute("INSERT OR IGNORE INTO wallet_txs VALUES (?,?,?)", (tx.txid(), tx.serialize(), time))
        if cur.rowcount:
            self._insert_inputs(tx, spent)

    def _insert_inputs(self, tx: Transaction, spent: Sequence[Coin | None]) -> None:
        txid = tx.txid()
        rows = []
        for n, i in enumerate(tx.inputs):
            coin = spent[n] if n < len(spent) else None
            ours = coin is not None and self.owns(coin.script_pubkey)
            rows.append((
                txid, n, i.prevout.txid, i.prevout.index,
                coin.value if coin is not None and ours else None,
                coin.script_pubkey if coin is not None and ours else None,
            ))
        self.db.executemany("INSERT OR IGNORE INTO wallet_tx_inputs VALUES (?,?,?,?,?,?)", rows)

    def involves(self, tx: Transaction, spent: Sequence[Coin | None]) -> bool:
        """Whether `tx` gets a record (Core's AddToWalletIfInvolvingMe): it pays the wallet or spends its
        coins (`spent`: the coin each input spends, None where unknown). Left out: the generator's own
        traffic, spending only QUIET_LABELS coins to only QUIET_LABELS scripts (see `tracks`)."""
        ours_in = [c.script_pubkey for c in spent if c is not None and self.owns(c.script_pubkey)]
        if self.is_relevant(tx) or any(self.tracks(s) for s in ours_in):
            return True
        if not ours_in:
            return False
        quiet_out = all(self.owns(o.script_pubkey) and not self.tracks(o.script_pubkey) for o in tx.outputs)
        return not quiet_out

    def spenders(self, prevout: OutPoint) -> list[bytes]:
        """Recorded transactions spending `prevout` (Core's mapTxSpends)."""
        rows = self.db.execute(
            "SELECT txid FROM wallet_tx_inputs WHERE prev_txid=? AND prev_n=?", (prevout.txid, prevout.index)
        )
        return [bytes(t) for (t,) in rows]

    def children(self, txid: bytes) -> list[bytes]:
        """Recorded transactions spending an output of `txid`."""
        rows = self.db.execute("SELECT DISTINCT txid FROM wallet_tx_inputs WHERE prev_txid=?", (txid,))
        return [bytes(t) for (t,) in rows]

    def note_block(self, block_hash: bytes, txs: Sequence[Transaction]) -> None:
        """A block joined the active chain: every recorded transaction that spends an input one of its
        transactions spends another way is conflicted by it (Core's SyncTransaction, MarkConflicted).
        The mark names the block, so it only counts while that block is on the active chain."""
        rows: list[tuple[bytes, bytes]] = []
        for tx in txs:
            if tx.is_coinbase():
                continue
            h = tx.txid()
            for i in tx.inputs:
                rows.extend((other, block_hash) for other in self.spenders(i.prevout) if other != h)
        if rows:
            self.db.executemany("INSERT OR IGNORE INTO wallet_conflicts VALUES (?,?)", rows)

    def conflict_blocks(self, txid: bytes) -> list[bytes]:
        """The blocks that spent an input of `txid` another way (on the active chain or not)."""
        return [bytes(b) for (b,) in self.db.execute("SELECT block FROM wallet_conflicts WHERE txid=?", (txid,))]

    def abandon(self, txids: Sequence[bytes]) -> None:
        """Mark transactions abandoned (Core's abandontransaction): never offered to the mempool again, and
        the coins they spend free for the wallet to spend."""
        self.db.executemany("INSERT OR IGNORE INTO wallet_abandoned VALUES (?)", [(t,) for t in txids])

    def is_abandoned(self, txid: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM wallet_abandoned WHERE txid=?", (txid,)).fetchone() is not None

    def pending_spends(self) -> dict[OutPoint, bytes]:
        """Outpoints spent by recorded transactions that are neither in the active chain nor abandoned, each
        with its spender: coins a payment of this wallet still holds (Core's IsSpent), whether or not that
        payment is in the mempool now. A caller leaves out spenders conflicted by a block."""
        rows = self.db.execute(
            "SELECT i.prev_txid, i.prev_n, i.txid FROM wallet_tx_inputs i "
            "LEFT JOIN txindex t ON t.txid = i.txid LEFT JOIN wallet_abandoned a ON a.txid = i.txid "
            "WHERE t.txid IS NULL AND a.txid IS NULL"
        )
        return {OutPoint(bytes(p), int(n)): bytes(t) for p, n, t in rows}

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
        offers the mempool again when it loads (ResubmitWalletTransactions). Abandoned ones are left out."""
        rows = self.db.execute(
            "SELECT w.raw FROM wallet_txs w LEFT JOIN txindex t ON t.txid = w.txid "
            "LEFT JOIN wallet_abandoned a ON a.txid = w.txid WHERE t.txid IS NULL AND a.txid IS NULL ORDER BY w.rowid"
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
        # the coins kept at record time: a parent the wallet never recorded (the generator's) still counts
        kept = {
            int(n): (int(v), bytes(sc))
            for n, v, sc in self.db.execute(
                "SELECT vin, value, script FROM wallet_tx_inputs WHERE txid=? AND value IS NOT NULL", (tx.txid(),)
            )
        }
        for n, i in enumerate(tx.inputs):
            prev = None if tx.is_coinbase() else self.recorded(i.prevout.txid)
            if prev is not None and i.prevout.index < len(prev[0].outputs):
                o = prev[0].outputs[i.prevout.index]
                if self.owns(o.script_pubkey):
                    debit += o.value
                    continue
            coin = kept.get(n)
            if coin is not None and self.owns(coin[1]):
                debit += coin[0]
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
        """Whether `tx` pays the wallet (outside QUIET_LABELS): enough for a record when the coins it spends
        are not known (a block's transactions); see `involves` for the whole rule."""
        return any(self.tracks(o.script_pubkey) for o in tx.outputs)


def estimate_vsize(n_in: int, n_out: int, segwit_inputs: int) -> int:
    """Rough virtual size for fee estimation of wallet transactions (anyone-can-spend inputs are small)."""
    return 11 + n_in * 48 + n_out * 43 + (segwit_inputs * 10 + 3) // 4 + 1

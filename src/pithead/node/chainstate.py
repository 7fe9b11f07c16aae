"""The embedded node's chain: a block tree and UTXO set in SQLite, the most-work chain, reorganisations.

`ChainState` is synchronous and does no networking: the asyncio shell (node.py) calls it and publishes
what changed. It keeps every block it accepted (the active chain and side branches) in one SQLite file in
the data directory, with the UTXO set of the active chain, undo data to disconnect blocks, and a txid →
block index; the in-memory block index is rebuilt from SQLite at start, so the chain survives restarts.

Accepting a block runs consensus.py's checks in Bitcoin Core's order; a block that passes the
context-free and contextual checks is stored, and then the chain with the most work becomes active
(inputs are checked when a block is connected). A block that fails to connect is marked invalid (with its
descendants), the previous chain is restored and the next-best chain is tried, as Core's
ActivateBestChain does. Ties in work keep the block seen first, unless `precious_block` (Core's
preciousblock) names another block of the tip's work. A block failing CheckBlock (a malformed or
CVE-2012-2459-mutated copy) is never stored, so the honest block with the same hash stays acceptable.

Headers alone (submitheader, `accept_header`) are kept as header-only entries (STATUS_HEADER): checked as
headers, listed by getblockheader and getchaintips, never part of a chain to activate until their block
and every ancestor's block arrive.

Not here: headers-first sync from peers, pruning.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from pithead.chain.block import Block
from pithead.chain.compact import bits_to_target, work_from_target
from pithead.chain.hashes import display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.params import Network
from pithead.chain.tx import OutPoint
from pithead.chain.varint import Reader, encode_bytes, encode_varint
from pithead.node import consensus
from pithead.node.consensus import BlockDelta, BlockInvalid, Coin
from pithead.node.genesis import genesis_for
from pithead.node.retarget import (
    DEMO_WINDOW,
    RETARGET_INTERVAL,
    bitcoin_next_bits,
    demo_next_bits,
    regtest_next_bits,
)
from pithead.node.signet import OP_TRUE_CHALLENGE, SUPPORTED_CHALLENGES, check_signet_solution

STATUS_HEADER = 0  # header only (submitheader): checked as a header, no block data yet
STATUS_STORED = 1  # data stored and context-checked; inputs not yet checked (side branch)
STATUS_VALID = 2  # connected at least once: fully valid as far as this node checks
STATUS_FAILED = 3  # failed to connect; its descendants are treated as invalid too
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
  hash BLOB PRIMARY KEY, prev BLOB NOT NULL, height INTEGER NOT NULL, header BLOB NOT NULL,
  raw BLOB NOT NULL, status INTEGER NOT NULL, seq INTEGER NOT NULL, n_tx INTEGER NOT NULL,
  size INTEGER NOT NULL, stripped_size INTEGER NOT NULL, weight INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS active (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utxo (
  txid BLOB NOT NULL, n INTEGER NOT NULL, value INTEGER NOT NULL, script BLOB NOT NULL,
  height INTEGER NOT NULL, coinbase INTEGER NOT NULL, PRIMARY KEY (txid, n)
);
CREATE INDEX IF NOT EXISTS utxo_script ON utxo (script);
CREATE TABLE IF NOT EXISTS undo (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txindex (txid BLOB PRIMARY KEY, block BLOB NOT NULL, pos INTEGER NOT NULL);
"""


CHAIN_KINDS = ("regtest", "demo", "signet")
"""The chains the embedded node keeps: Core's regtest, pithead's demo (regtest with timed blocks), and a
custom signet with the OP_TRUE challenge (see `consensus.check_signet_solution`)."""


class ChainStateError(RuntimeError):
    """The data directory cannot be used (another chain, a newer schema, a corrupt file)."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One block in the block tree (Core's CBlockIndex, as a value)."""

    hash: bytes
    header: BlockHeader
    height: int
    chainwork: int
    status: int
    seq: int
    n_tx: int
    size: int
    stripped_size: int
    weight: int

    @property
    def prev(self) -> bytes:
        return self.header.prev_hash


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """Outcome of `accept_block`: `reason` is the BIP22 answer (None = accepted and connected)."""

    reason: str | None
    connected: tuple[bytes, ...] = ()  # hashes newly on the active chain, oldest first
    disconnected: tuple[bytes, ...] = ()  # hashes taken off the active chain, newest first


def _encode_undo(spent: tuple[tuple[OutPoint, Coin], ...]) -> bytes:
    parts = [encode_varint(len(spent))]
    for op, coin in spent:
        parts += [
            op.txid,
            op.index.to_bytes(4, "little"),
            coin.value.to_bytes(8, "little", signed=True),
            coin.height.to_bytes(4, "little"),
            bytes((int(coin.is_coinbase),)),
            encode_bytes(coin.script_pubkey),
        ]
    return b"".join(parts)


def _decode_undo(data: bytes) -> list[tuple[OutPoint, Coin]]:
    r = Reader(data)
    out = []
    for _ in range(r.varint()):
        op = OutPoint(r.read(32), r.u32())
        value, height, cb = r.i64(), r.u32(), r.u8()
        out.append((op, Coin(value, r.var_bytes(), height, bool(cb))))
    return out


class ChainState:
    """Block tree + active chain + UTXO set, persisted in `<datadir>/chainstate.sqlite3`."""

    def __init__(
        self,
        path: Path,
        network: Network,
        *,
        kind: str = "regtest",
        demo_spacing: float = 30.0,
        signet_challenge: bytes = OP_TRUE_CHALLENGE,
    ) -> None:
        if kind not in CHAIN_KINDS:
            raise ChainStateError(f"unknown chain kind {kind!r}: expected one of {', '.join(CHAIN_KINDS)}")
        self.path = path
        self.network = network
        self.kind = kind
        self.demo_spacing = demo_spacing
        if kind == "signet" and signet_challenge not in SUPPORTED_CHALLENGES:
            raise ChainStateError(
                f"signet challenge {signet_challenge.hex()}: the embedded node runs a signet only with the OP_TRUE "
                "challenge 51 (it checks no signatures); use Bitcoin Core for a signet that signs its blocks"
            )
        self.signet_challenge = signet_challenge
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.index: dict[bytes, IndexEntry] = {}
        self.active: list[bytes] = []
        self._seq = 0
        self._precious_seq = 0  # preciousblock's sequence numbers count down from here (Core: -1, -2, ...)
        self._load()

    # --- opening ---

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _load(self) -> None:
        genesis = genesis_for(self.kind)
        if self._meta("schema") is None:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema", str(SCHEMA_VERSION)), ("kind", self.kind), ("network", self.network.name)],
            )
            self._store(genesis, 0, STATUS_VALID)
            self.db.execute("INSERT INTO active VALUES (0, ?)", (genesis.hash(),))
            self.db.execute("COMMIT")
        if self._meta("schema") != str(SCHEMA_VERSION):
            raise ChainStateError(
                f"{self.path}: schema {self._meta('schema')}, this pithead reads {SCHEMA_VERSION}"
            )
        if self._meta("kind") != self.kind:
            raise ChainStateError(f"{self.path} holds a {self._meta('kind')} chain, not {self.kind}")
        rows = self.db.execute(
            "SELECT hash, header, height, status, seq, n_tx, size, stripped_size, weight FROM blocks ORDER BY height, seq"
        ).fetchall()
        for h, header, height, status, seq, n_tx, size, ssize, weight in rows:
            hdr = BlockHeader.parse(header)
            parent = self.index.get(hdr.prev_hash)
            work = (parent.chainwork if parent else 0) + work_from_target(bits_to_target(hdr.bits))
            self.index[h] = IndexEntry(h, hdr, height, work, status, seq, n_tx, size, ssize, weight)
            self._seq = max(self._seq, seq)
        self.active = [h for (h,) in self.db.execute("SELECT hash FROM active ORDER BY height")]
        if not self.active or self.active[0] != genesis.hash():
            raise ChainStateError(f"{self.path}: active chain does not start at the {self.kind} genesis")

    def close(self) -> None:
        self.db.close()

    # --- queries ---

    @property
    def tip(self) -> IndexEntry:
        return self.index[self.active[-1]]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def is_active(self, entry: IndexEntry) -> bool:
        return entry.height < len(self.active) and self.active[entry.height] == entry.hash

    def read_block(self, h: bytes) -> Block:
        return Block.parse(self.raw_block(h))

    def raw_block(self, h: bytes) -> bytes:
        """A stored block's bytes; KeyError for an unknown hash or a header-only entry."""
        row = self.db.execute("SELECT raw FROM blocks WHERE hash=?", (h,)).fetchone()
        if row is None or not row[0]:
            raise KeyError(h)
        return bytes(row[0])

    def has_data(self, entry: IndexEntry) -> bool:
        return entry.status != STATUS_HEADER

    def coin(self, op: OutPoint) -> Coin | None:
        row = self.db.execute(
            "SELECT value, script, height, coinbase FROM utxo WHERE txid=? AND n=?", (op.txid, op.index)
        ).fetchone()
        return Coin(row[0], bytes(row[1]), row[2], bool(row[3])) if row else None

    def utxo_stats(self) -> tuple[int, int, int, int]:
        """(outputs, distinct transactions, total satoshis, bogosize) of the UTXO set."""
        n, txs, total, script_bytes = self.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT txid), COALESCE(SUM(value), 0), COALESCE(SUM(LENGTH(script)), 0) FROM utxo"
        ).fetchone()
        # Core's bogosize: 50 bytes per output plus its script (a stable size measure, not the disk size)
        return n, txs, total, 50 * n + script_bytes

    def tx_location(self, txid: bytes) -> tuple[bytes, int] | None:
        row = self.db.execute("SELECT block, pos FROM txindex WHERE txid=?", (txid,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def ancestors_times(self, entry: IndexEntry, count: int) -> list[tuple[int, int]]:
        """(time, bits) of `entry` and its ancestors, newest first, at most `count`."""
        out: list[tuple[int, int]] = []
        e: IndexEntry | None = entry
        while e is not None and len(out) < count:
            out.append((e.header.time, e.header.bits))
            e = self.index.get(e.prev) if e.height > 0 else None
        return out

    def median_time_past(self, entry: IndexEntry) -> int:
        return consensus.median_time_past(
            [t for t, _ in self.ancestors_times(entry, consensus.MEDIAN_TIME_SPAN)]
        )

    def next_bits(self, prev: IndexEntry) -> int:
        if self.kind == "demo":
            return demo_next_bits(
                self.ancestors_times(prev, DEMO_WINDOW + 1),
                spacing=self.demo_spacing,
                pow_limit=self.network.pow_limit,
            )
        if self.kind == "signet":
            retarget = (prev.height + 1) % RETARGET_INTERVAL == 0  # walk back 2016 blocks only then
            return bitcoin_next_bits(prev.height + 1, self.ancestors_times(prev, RETARGET_INTERVAL if retarget else 1),
                                     pow_limit=self.network.pow_limit)
        return regtest_next_bits(self.network.pow_limit)

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    # --- accepting blocks ---

    def check_block_for(self, block: Block, prev: IndexEntry, now: int) -> None:
        """Every check that does not need the UTXO set, against parent `prev` (raises BlockInvalid)."""
        height = prev.height + 1
        consensus.check_header_pow(block.header)
        mtp = self.median_time_past(prev)
        consensus.check_header_context(
            block.header, height=height, expected_bits=self.next_bits(prev), mtp=mtp, now=now
        )
        consensus.check_block(block)
        consensus.check_block_context(
            block,
            height=height,
            mtp=mtp,
            bip34_active=height >= self.network.bip34_height,
            segwit_active=height >= self.network.segwit_height,
        )
        if self.kind == "signet":  # BIP325: the block answers the network's challenge
            check_signet_solution(block, self.signet_challenge)

    def test_block_validity(self, block: Block, now: int) -> None:
        """Every check of a block on the current tip, without storing it (Core's TestBlockValidity)."""
        if block.header.prev_hash != self.tip.hash:
            raise BlockInvalid("inconclusive-not-best-prevblk")
        self.check_block_for(block, self.tip, now)
        consensus.connect_block(
            block,
            height=self.height + 1,
            lookup=self.coin,
            subsidy=self.network.subsidy(self.height + 1),
            maturity=self.network.coinbase_maturity,
        )

    def accept_block(self, block: Block, now: int) -> AcceptResult:
        """Check, store and (if it has the most work) activate `block`: BIP22 verdict and changes."""
        h = block.hash()
        known = self.index.get(h)
        if known is not None and known.status != STATUS_HEADER:
            return AcceptResult("duplicate-invalid" if self._failed(known) else "duplicate")
        try:
            # Core's ProcessNewBlock runs the context-free CheckBlock (PoW, merkle root, transactions)
            # before it looks for the parent, so a broken block is reported as broken even when orphaned.
            consensus.check_header_pow(block.header)
            consensus.check_block(block)
        except BlockInvalid as exc:
            return AcceptResult(exc.reason)
        prev = self.index.get(block.header.prev_hash)
        if prev is None:
            return AcceptResult("prev-blk-not-found")
        if self._failed(prev):
            return AcceptResult("bad-prevblk")
        try:
            self.check_block_for(block, prev, now)
        except BlockInvalid as exc:
            return AcceptResult(exc.reason)
        self.db.execute("BEGIN")
        self._store(block, prev.height + 1, STATUS_STORED)
        self.db.execute("COMMIT")
        connected, disconnected, failures = self._activate_best_chain()
        if h in failures:
            return AcceptResult(failures[h], tuple(connected), tuple(disconnected))
        if h in connected:  # Core's BlockChecked fired for it: valid, even where a child is now the tip
            return AcceptResult(None, tuple(connected), tuple(disconnected))
        return AcceptResult("inconclusive", tuple(connected), tuple(disconnected))

    def update_uncommitted_block_structures(self, block: Block) -> Block:
        """Core's UpdateUncommittedBlockStructures, as submitblock applies it: where the parent is known
        and segwit is active after it, a committed coinbase without a witness gets the reserved value."""
        prev = self.index.get(block.header.prev_hash)
        if prev is None or prev.height + 1 < self.network.segwit_height:
            return block
        return consensus.fill_witness_nonce(block)

    def accept_header(self, header: BlockHeader, now: int) -> str | None:
        """Core's AcceptBlockHeader (submitheader): None when the header is valid (and now known), else
        the reject reason. A known header is valid again unless it, or an ancestor, failed."""
        h = header.hash()
        known = self.index.get(h)
        if known is not None:
            return "duplicate-invalid" if self._failed(known) else None
        try:
            consensus.check_header_pow(header)
        except BlockInvalid as exc:
            return exc.reason
        prev = self.index.get(header.prev_hash)
        if prev is None:
            return "prev-blk-not-found"
        if self._failed(prev):
            return "bad-prevblk"
        try:
            consensus.check_header_context(
                header,
                height=prev.height + 1,
                expected_bits=self.next_bits(prev),
                mtp=self.median_time_past(prev),
                now=now,
            )
        except BlockInvalid as exc:
            return exc.reason
        self._seq += 1
        height = prev.height + 1
        no_block = (b"", STATUS_HEADER, self._seq, 0, 0, 0, 0)  # no bytes, transactions or sizes yet
        row = (h, header.prev_hash, height, header.serialize(), *no_block)
        self.db.execute("INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
        work = prev.chainwork + work_from_target(header.target())
        self.index[h] = IndexEntry(h, header, prev.height + 1, work, STATUS_HEADER, self._seq, 0, 0, 0, 0)
        return None

    def precious_block(self, h: bytes) -> tuple[list[bytes], list[bytes], dict[bytes, str]]:
        """Core's PreciousBlock: treat block `h` as if it had been seen before any other block of its
        work, and activate the best chain again (a block with less work than the tip changes nothing).
        The preference lives in memory only, as Core's nSequenceId does. (connected, disconnected,
        failures) as `_activate_best_chain` gives them."""
        entry = self.index[h]
        if entry.chainwork < self.tip.chainwork:
            return [], [], {}
        self._precious_seq -= 1
        self.index[h] = replace(entry, seq=self._precious_seq)
        return self._activate_best_chain()

    def activate_best_chain(self) -> AcceptResult:
        """Activate the most-work chain now (after preciousblock): the changes, reason None."""
        connected, disconnected, _ = self._activate_best_chain()
        return AcceptResult(None, tuple(connected), tuple(disconnected))

    def tips(self) -> list[IndexEntry]:
        """Every block no other block builds on, and the active tip: getchaintips's set, highest first."""
        parents = {e.prev for e in self.index.values() if e.height > 0}
        out = [e for e in self.index.values() if e.hash not in parents or e.hash == self.tip.hash]
        return sorted(out, key=lambda e: (-e.height, e.seq))

    def branch_status(self, entry: IndexEntry) -> str:
        """Core's getchaintips status of the branch ending at `entry`: active, invalid, headers-only,
        valid-headers (all blocks stored, not all connected) or valid-fork."""
        if self.is_active(entry):
            return "active"
        if self._failed(entry):
            return "invalid"
        statuses = set()
        e: IndexEntry | None = entry
        while e is not None and not self.is_active(e):
            statuses.add(e.status)
            e = self.index.get(e.prev)
        if STATUS_HEADER in statuses:
            return "headers-only"
        if STATUS_STORED in statuses:
            return "valid-headers"
        return "valid-fork"

    def fork_point(self, entry: IndexEntry) -> IndexEntry:
        """The last block of the active chain on `entry`'s branch."""
        e = entry
        while not self.is_active(e):
            e = self.index[e.prev]
        return e

    def _store(self, block: Block, height: int, status: int) -> None:
        self._seq += 1
        h = block.hash()
        size = len(block.serialize())
        stripped = len(block.serialize(include_witness=False))
        self.db.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                h,
                block.header.prev_hash,
                height,
                block.header.serialize(),
                block.serialize(),
                status,
                self._seq,
                len(block.txs),
                size,
                stripped,
                stripped * 3 + size,
            ),
        )
        parent = self.index.get(block.header.prev_hash)
        work = (parent.chainwork if parent else 0) + work_from_target(block.header.target())
        self.index[h] = IndexEntry(
            h,
            block.header,
            height,
            work,
            status,
            self._seq,
            len(block.txs),
            size,
            stripped,
            stripped * 3 + size,
        )

    def _failed(self, entry: IndexEntry) -> bool:
        """True when `entry` or an ancestor off the active chain failed."""
        e: IndexEntry | None = entry
        while e is not None and not self.is_active(e):
            if e.status == STATUS_FAILED:
                return True
            e = self.index.get(e.prev)
        return False

    def _connectable(self, entry: IndexEntry) -> bool:
        """True when `entry` and its ancestors off the active chain have data and none failed."""
        e: IndexEntry | None = entry
        while e is not None and not self.is_active(e):
            if e.status in (STATUS_FAILED, STATUS_HEADER):
                return False
            e = self.index.get(e.prev)
        return True

    def _best_candidate(self) -> IndexEntry:
        """The connectable block with the most work; the tip wins ties (it was seen first) unless a block
        of equal work was made precious after it, then the block seen first."""
        tip = self.tip
        best = tip
        for e in self.index.values():
            if e.chainwork < best.chainwork or e.hash == best.hash:
                continue
            if e.chainwork == best.chainwork:
                if best.hash == tip.hash and not (e.seq < 0 and e.seq < tip.seq):
                    continue
                if best.hash != tip.hash and e.seq > best.seq:
                    continue
            if self._connectable(e):
                best = e
        return best

    def _activate_best_chain(self) -> tuple[list[bytes], list[bytes], dict[bytes, str]]:
        connected: list[bytes] = []
        disconnected: list[bytes] = []
        failures: dict[bytes, str] = {}
        while True:
            best = self._best_candidate()
            if best.hash == self.tip.hash:
                return connected, disconnected, failures
            branch: list[IndexEntry] = []
            e = best
            while not self.is_active(e):
                branch.append(e)
                e = self.index[e.prev]
            fork_height = e.height
            branch.reverse()
            to_disconnect = list(reversed(self.active[fork_height + 1 :]))
            self.db.execute("BEGIN")
            failing: IndexEntry | None = None
            try:
                for h in to_disconnect:
                    self._disconnect(h)
                for entry in branch:
                    failing = entry
                    self._connect(entry)
                failing = None
            except BlockInvalid as exc:
                self.db.execute("ROLLBACK")
                assert failing is not None
                failures[failing.hash] = exc.reason
                self.db.execute("UPDATE blocks SET status=? WHERE hash=?", (STATUS_FAILED, failing.hash))
                self.index[failing.hash] = replace(self.index[failing.hash], status=STATUS_FAILED)
                continue
            self.db.execute("DELETE FROM active WHERE height > ?", (fork_height,))
            self.db.executemany(
                "INSERT INTO active VALUES (?, ?)", [(entry.height, entry.hash) for entry in branch]
            )
            self.db.execute("COMMIT")
            # Only now, after the commit, does the in-memory view change.
            for entry in branch:
                if entry.status != STATUS_VALID:
                    self.index[entry.hash] = replace(entry, status=STATUS_VALID)
            del self.active[fork_height + 1 :]
            self.active.extend(entry.hash for entry in branch)
            for h in to_disconnect:
                if h in connected:
                    connected.remove(h)
                else:
                    disconnected.append(h)
            connected.extend(entry.hash for entry in branch)

    def _connect(self, entry: IndexEntry) -> BlockDelta:
        block = self.read_block(entry.hash)
        delta = consensus.connect_block(
            block,
            height=entry.height,
            lookup=self.coin,
            subsidy=self.network.subsidy(entry.height),
            maturity=self.network.coinbase_maturity,
        )
        self.db.executemany(
            "DELETE FROM utxo WHERE txid=? AND n=?", [(op.txid, op.index) for op, _ in delta.spent]
        )
        self.db.executemany(
            "INSERT INTO utxo VALUES (?,?,?,?,?,?)",
            [
                (op.txid, op.index, c.value, c.script_pubkey, c.height, int(c.is_coinbase))
                for op, c in delta.created
            ],
        )
        self.db.execute("INSERT OR REPLACE INTO undo VALUES (?, ?)", (entry.hash, _encode_undo(delta.spent)))
        self.db.executemany(
            "INSERT OR REPLACE INTO txindex VALUES (?, ?, ?)",
            [(tx.txid(), entry.hash, i) for i, tx in enumerate(block.txs)],
        )
        self.db.execute("UPDATE blocks SET status=? WHERE hash=?", (STATUS_VALID, entry.hash))
        return delta

    def _disconnect(self, h: bytes) -> None:
        block = self.read_block(h)
        row = self.db.execute("SELECT data FROM undo WHERE hash=?", (h,)).fetchone()
        if row is None:
            raise ChainStateError(f"no undo data for active block {display_hex(h)}")
        for tx in block.txs:
            txid = tx.txid()
            self.db.execute("DELETE FROM utxo WHERE txid=?", (txid,))
            self.db.execute("DELETE FROM txindex WHERE txid=? AND block=?", (txid, h))
        self.db.executemany(
            "INSERT INTO utxo VALUES (?,?,?,?,?,?)",
            [
                (op.txid, op.index, c.value, c.script_pubkey, c.height, int(c.is_coinbase))
                for op, c in _decode_undo(bytes(row[0]))
            ],
        )

    # --- helpers for the RPC layer ---

    def block_fees(self, entry: IndexEntry) -> dict[int, int]:
        """Fee of each non-coinbase transaction (by position) of an active block, from its undo data."""
        row = self.db.execute("SELECT data FROM undo WHERE hash=?", (entry.hash,)).fetchone()
        if row is None:
            return {}
        block = self.read_block(entry.hash)
        values = {op: coin.value for op, coin in _decode_undo(bytes(row[0]))}
        for tx in block.txs:
            txid = tx.txid()
            for n, out in enumerate(tx.outputs):
                values[OutPoint(txid, n)] = out.value
        fees = {}
        for i, tx in enumerate(block.txs[1:], start=1):
            try:
                fees[i] = sum(values[txin.prevout] for txin in tx.inputs) - sum(o.value for o in tx.outputs)
            except KeyError:
                continue
        return fees

    def entry_at(self, height: int) -> IndexEntry:
        return self.index[self.active[height]]

    def confirmations(self, entry: IndexEntry) -> int:
        return self.height - entry.height + 1 if self.is_active(entry) else -1

    def next_on_chain(self, entry: IndexEntry) -> bytes | None:
        if self.is_active(entry) and entry.height < self.height:
            return self.active[entry.height + 1]
        return None

"""The embedded node's mempool: unconfirmed transactions waiting for a block, kept in dependency order.

A transaction enters when its inputs exist (in the UTXO set or as outputs of transactions already in the
pool), are not spent by another pool transaction (no replacement), coinbase outputs are mature for the next
block, it is final for the next block, the revealed scripts check out (scripts.py) and it pays at least the
minimum relay fee. Entry order is a topological order (parents always enter first); templates do NOT
follow it: the block assembler (assembler.py, which reads this pool as Core's miner reads its mempool)
picks by ancestor-package fee rate within the block's weight and sigops limits. After the tip changes, `resync` rebuilds the pool against the
new UTXO set, putting transactions of disconnected blocks back first, and dropping what no longer fits.

A full pool (`max_txs` transactions) makes room for a newcomer by evicting its lowest fee-rate
transaction among those no other pool transaction spends, when the newcomer pays a higher fee rate;
otherwise the newcomer is refused ("mempool full"). Core evicts whole descendant packages by descendant
score and sizes the pool in bytes; evicting childless transactions only never orphans one, and a cheap
parent kept alive by a rich child is protected as it is in Core.

Not here: Core's chain limits (25 ancestors/descendants), its rising minimum fee after an eviction,
replace-by-fee, package relay.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pithead.chain.tx import WITNESS_SCALE_FACTOR, OutPoint, Transaction
from pithead.node import consensus
from pithead.node.chainstate import ChainState
from pithead.node.consensus import BlockInvalid, Coin
from pithead.node.policy import policy_vsize

MEMPOOL_HEIGHT = 0x7FFFFFFF  # Core's MEMPOOL_HEIGHT: the height unconfirmed coins are reported at
MIN_RELAY_FEE_PER_KVB = 1000  # satoshis per 1000 vbytes: Core's DEFAULT_MIN_RELAY_TX_FEE
MAX_STANDARD_TX_WEIGHT = 400_000  # Core policy.h: larger transactions are not relayed ("tx-size")
MAX_MEMPOOL_TXS = 50_000  # a bound on memory: past it the cheapest childless transaction makes way, or the
# newcomer is refused ("mempool full"); Core bounds bytes instead (-maxmempool, 300 MB)

_OP_CHECKSIG, _OP_CHECKSIGVERIFY, _OP_CHECKMULTISIG, _OP_CHECKMULTISIGVERIFY = 0xAC, 0xAD, 0xAE, 0xAF
_OP_1, _OP_16 = 0x51, 0x60
MAX_PUBKEYS_PER_MULTISIG = 20  # Core script.h: a bare CHECKMULTISIG counts as 20 sigops


class MempoolReject(Exception):
    """A transaction refused by the mempool; `reason` is Core's reject string (RPC error -26/-25)."""

    def __init__(self, reason: str, *, missing_inputs: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing_inputs = missing_inputs


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    tx: Transaction
    txid: bytes
    wtxid: bytes
    fee: int
    weight: int
    sigops: int  # sigop cost (Core's GetTransactionSigOpCost), as GBT reports it
    time: int
    height: int  # tip height when it entered

    @property
    def vsize(self) -> int:
        """Core's GetTxSize: the virtual size, raised for sigop-heavy transactions (policy.py)."""
        return policy_vsize(self.weight, self.sigops)


def _script_ops(script: bytes) -> Iterator[tuple[int, bytes]]:
    """(opcode, pushed data) pairs, as Core's GetOp; stops at a push running past the end."""
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        size = 0
        if 1 <= op <= 75:
            size = op
        elif op in (0x4C, 0x4D, 0x4E):
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            if i + width > len(script):
                return
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        if i + size > len(script):
            return
        yield op, script[i : i + size]
        i += size


def count_sigops(script: bytes, *, accurate: bool = False) -> int:
    """Core's CScript::GetSigOpCount: CHECKSIG(VERIFY) counts 1, CHECKMULTISIG(VERIFY) 20, or, when
    `accurate` (redeem and witness scripts), the key count pushed just before it by OP_1..OP_16."""
    n, last = 0, -1
    for op, _ in _script_ops(script):
        if op in (_OP_CHECKSIG, _OP_CHECKSIGVERIFY):
            n += 1
        elif op in (_OP_CHECKMULTISIG, _OP_CHECKMULTISIGVERIFY):
            n += last - _OP_1 + 1 if accurate and _OP_1 <= last <= _OP_16 else MAX_PUBKEYS_PER_MULTISIG
        last = op
    return n


def legacy_sigops(script: bytes) -> int:
    """Core's GetSigOpCount(false)."""
    return count_sigops(script)


def _redeem_script(script_sig: bytes) -> bytes | None:
    """The last push of a push-only scriptSig (a P2SH redeem script), else None."""
    data: bytes | None = None
    for op, pushed in _script_ops(script_sig):
        if op > _OP_16:
            return None
        data = pushed
    return data


def _is_p2sh(script: bytes) -> bool:
    return len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87


def _witness_program(script: bytes) -> tuple[int, bytes] | None:
    """(version, program) of a BIP141 witness program script, else None."""
    if not 4 <= len(script) <= 42 or script[1] != len(script) - 2:
        return None
    if script[0] == 0:
        return 0, script[2:]
    if _OP_1 <= script[0] <= _OP_16:
        return script[0] - _OP_1 + 1, script[2:]
    return None


def _witness_sigops(program: tuple[int, bytes] | None, witness: tuple[bytes, ...]) -> int:
    """Core's WitnessSigOps: P2WPKH counts 1, P2WSH its witness script's accurate count, others 0."""
    if program is None or program[0] != 0:
        return 0
    if len(program[1]) == 20:
        return 1
    if len(program[1]) == 32 and witness:
        return count_sigops(witness[-1], accurate=True)
    return 0


def sigop_cost(tx: Transaction, spent: Sequence[Coin] = ()) -> int:
    """Core's GetTransactionSigOpCost: legacy sigops x 4, plus (with the spent coins, in input order)
    P2SH redeem-script sigops x 4 and BIP141 witness sigops x 1. This is GBT's `sigops`."""
    legacy = sum(legacy_sigops(i.script_sig) for i in tx.inputs) + sum(
        legacy_sigops(o.script_pubkey) for o in tx.outputs
    )
    cost = legacy * WITNESS_SCALE_FACTOR
    for txin, coin in zip(tx.inputs, spent, strict=False):
        spk = coin.script_pubkey
        if _is_p2sh(spk):
            redeem = _redeem_script(txin.script_sig)
            if redeem is not None:
                cost += count_sigops(redeem, accurate=True) * WITNESS_SCALE_FACTOR
                cost += _witness_sigops(_witness_program(redeem), txin.witness)
        else:
            cost += _witness_sigops(_witness_program(spk), txin.witness)
    return cost


class Mempool:
    def __init__(self, max_txs: int = MAX_MEMPOOL_TXS) -> None:
        if max_txs < 1:
            raise ValueError("max_txs must be at least 1")
        self.max_txs = max_txs
        self.entries: dict[bytes, MempoolEntry] = {}
        self.spent_by: dict[OutPoint, bytes] = {}
        self.transactions_updated = 0  # Core's GetTransactionsUpdated(): part of the GBT longpollid
        # Eviction candidates, cheapest first: (fee rate, txid). Lazy: entries that left the pool are
        # dropped when met, entries that have children are set aside for that search.
        self._by_rate: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self.entries

    def coin(self, op: OutPoint) -> Coin | None:
        """An output of a pool transaction (whether or not another pool transaction spends it)."""
        e = self.entries.get(op.txid)
        if e is None or op.index >= len(e.tx.outputs):
            return None
        out = e.tx.outputs[op.index]
        return Coin(out.value, out.script_pubkey, MEMPOOL_HEIGHT, False)

    def parents(self, e: MempoolEntry) -> list[bytes]:
        seen: list[bytes] = []
        for i in e.tx.inputs:
            if i.prevout.txid in self.entries and i.prevout.txid not in seen:
                seen.append(i.prevout.txid)
        return seen

    def children(self, txid: bytes) -> list[bytes]:
        e = self.entries.get(txid)
        if e is None:
            return []
        out = []
        for n in range(len(e.tx.outputs)):
            child = self.spent_by.get(OutPoint(txid, n))
            if child is not None and child not in out:
                out.append(child)
        return out

    def accept(self, tx: Transaction, chain: ChainState, now: int) -> MempoolEntry:
        txid = tx.txid()
        if txid in self.entries:
            raise MempoolReject("txn-already-in-mempool")
        try:
            consensus.check_transaction(tx)
        except BlockInvalid as exc:
            raise MempoolReject(exc.reason) from exc
        if tx.is_coinbase():
            raise MempoolReject("coinbase")
        weight = tx.weight()
        if weight > MAX_STANDARD_TX_WEIGHT:
            raise MempoolReject("tx-size")
        tip = chain.tip
        height = tip.height + 1
        if not consensus.is_final(tx, height, chain.median_time_past(tip)):
            raise MempoolReject("non-final")
        for i in tx.inputs:
            if i.prevout in self.spent_by:
                raise MempoolReject("txn-mempool-conflict")
        if chain.tx_location(txid) is not None and any(
            chain.coin(OutPoint(txid, n)) is not None for n in range(len(tx.outputs))
        ):
            raise MempoolReject("txn-already-known")

        def lookup(op: OutPoint) -> Coin | None:
            return self.coin(op) or chain.coin(op)

        try:
            spent, fee = consensus.spend_inputs(
                tx, height=height, lookup=lookup, maturity=chain.network.coinbase_maturity
            )
        except BlockInvalid as exc:
            if exc.reason == "bad-txns-inputs-missingorspent":
                raise MempoolReject(exc.reason, missing_inputs=True) from exc
            raise MempoolReject(exc.reason) from exc
        sigops = sigop_cost(tx, [coin for _, coin in spent])
        vsize = policy_vsize(weight, sigops)
        if fee * 1000 < MIN_RELAY_FEE_PER_KVB * vsize:
            raise MempoolReject(f"min relay fee not met, {fee} < {MIN_RELAY_FEE_PER_KVB * vsize // 1000}")
        if len(self.entries) >= self.max_txs:
            self._make_room(fee / vsize, {i.prevout.txid for i in tx.inputs})
        entry = MempoolEntry(tx, txid, tx.wtxid(), fee, weight, sigops, now, tip.height)
        self.entries[txid] = entry
        for i in tx.inputs:
            self.spent_by[i.prevout] = txid
        heapq.heappush(self._by_rate, (fee / vsize, txid))
        self.transactions_updated += 1
        return entry

    def _make_room(self, rate: float, parents: set[bytes]) -> None:
        """Evict the cheapest childless transaction (not one the newcomer spends) if it pays a lower fee
        rate than the newcomer's `rate`; otherwise refuse the newcomer."""
        set_aside: list[tuple[float, bytes]] = []
        victim: bytes | None = None
        while self._by_rate:
            item = heapq.heappop(self._by_rate)
            if item[1] not in self.entries:
                continue  # gone already
            set_aside.append(item)
            if item[0] >= rate:
                break
            if item[1] not in parents and not self.children(item[1]):
                victim = item[1]
                set_aside.pop()
                break
        for item in set_aside:
            heapq.heappush(self._by_rate, item)
        if victim is None:
            raise MempoolReject("mempool full")
        self._remove(victim)

    def _remove(self, txid: bytes) -> None:
        e = self.entries.pop(txid)
        for i in e.tx.inputs:
            if self.spent_by.get(i.prevout) == txid:
                del self.spent_by[i.prevout]
        self.transactions_updated += 1

    def resync(self, chain: ChainState, now: int, returning: Iterable[Transaction] = ()) -> None:
        """Rebuild against the current chain: `returning` (transactions of disconnected blocks) first, then
        the old pool; whatever is now mined, conflicting or invalid is dropped."""
        old = [e.tx for e in self.entries.values()]
        self.entries.clear()
        self.spent_by.clear()
        self._by_rate.clear()
        for tx in [*returning, *old]:
            if tx.is_coinbase():
                continue
            try:
                self.accept(tx, chain, now)
            except MempoolReject:
                continue
        self.transactions_updated += 1

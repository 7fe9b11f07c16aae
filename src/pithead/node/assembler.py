"""Block assembly: which mempool transactions a block template carries, and in what order.

The choice follows Bitcoin Core's BlockAssembler as of v29, the ancestor-feerate miner that built the
templates captured in tests/fixtures/bitcoin-core/ (later Core versions select cluster-mempool "chunks"
instead). Written from Core's documented behaviour, not from its code:

- every transaction is scored by its *ancestor package*: itself plus its in-mempool ancestors not yet
  chosen. The score is the lower of the package's fee rate and the transaction's own fee rate (Core's
  CompareTxMemPoolEntryByAncestorFee), so a low-fee parent rides on a high-fee child (CPFP), while a
  high-fee parent is never held back by a cheap child. Equal scores go to the smaller txid (internal byte
  order), so a template is a function of the mempool, never of dict or arrival order;
- the best package goes in whole, ancestors first (sorted by ancestor count, then txid, as Core's
  SortForBlock), and every descendant of what went in is re-scored against its remaining ancestors;
- a package that would pass the block weight limit (counted as 4 x its sigop-adjusted vsize, as Core's
  TestPackage) or the sigops limit is skipped and the next best tried; after MAX_CONSECUTIVE_FAILURES
  skips in a row with the block within BLOCK_FULL_ENOUGH_WEIGHT_DELTA of full, assembly stops;
- assembly stops at the first package paying less than the block minimum fee rate (1 sat/vB), as every
  later one pays less still.

Sizes are Core's GetVirtualTransactionSize: max(weight, sigop cost x 20) / 4 rounded up (policy.py).
`select_for_block` reads the mempool as Core's BlockAssembler does; the mempool never calls the assembler.

Unlike Core's mempool, pithead's does not refuse long unconfirmed chains (Core's 25-ancestor limit), so
here a transaction with more than MAX_PACKAGE_COUNT unchosen ancestors waits until enough of them are
chosen (it still goes in, in the same template, once its ancestors are). For any mempool Core would
accept this changes nothing, and it keeps assembly linear in the mempool size on a chain of thousands.
Pure: no clock, no I/O. Not here: prioritisetransaction's modified fees, finality re-checks at assembly
(the mempool admits only transactions final for the next block), Core's options other than the limits
`select_packages` takes as parameters.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from pithead.chain.block import MAX_BLOCK_WEIGHT
from pithead.chain.tx import WITNESS_SCALE_FACTOR
from pithead.node.mempool import Mempool, MempoolEntry
from pithead.node.policy import policy_vsize

# The block weight limit is consensus (BIP141, chain.block.MAX_BLOCK_WEIGHT); Core's
# DEFAULT_BLOCK_MAX_WEIGHT is the same, so it is select_packages' default.
BLOCK_RESERVED_WEIGHT = 8_000  # Core policy.h DEFAULT_BLOCK_RESERVED_WEIGHT: header, tx count, coinbase
MAX_BLOCK_SIGOPS_COST = 80_000  # Core consensus.h
COINBASE_RESERVED_SIGOPS = 400  # Core DEFAULT_COINBASE_OUTPUT_MAX_ADDITIONAL_SIGOPS
BLOCK_MIN_TX_FEE_PER_KVB = 1_000  # Core policy.h DEFAULT_BLOCK_MIN_TX_FEE: 1 sat/vB
MAX_CONSECUTIVE_FAILURES = 1_000  # Core miner.cpp: give up after this many packages in a row do not fit...
BLOCK_FULL_ENOUGH_WEIGHT_DELTA = 4_000  # ...and the block is within this many weight units of full
MAX_PACKAGE_COUNT = 25  # Core's DEFAULT_ANCESTOR_LIMIT: the largest package (transaction + ancestors)


class _Candidate:
    """A heap item: one transaction's package score at one moment (`version` tells a stale item)."""

    __slots__ = ("fee", "index", "pkg_fee", "pkg_sigops", "pkg_size", "size", "txid", "version")

    def __init__(
        self, index: int, txid: bytes, version: int, own: tuple[int, int], pkg: tuple[int, int, int]
    ) -> None:
        self.index, self.txid, self.version = index, txid, version
        self.pkg_fee, self.pkg_size, self.pkg_sigops = pkg
        own_fee, own_size = own
        # min(own fee rate, package fee rate), compared without division
        if own_fee * self.pkg_size > self.pkg_fee * own_size:
            self.fee, self.size = self.pkg_fee, self.pkg_size
        else:
            self.fee, self.size = own_fee, own_size

    def __lt__(self, other: _Candidate) -> bool:  # heapq pops the smallest: "smaller" is better
        mine, theirs = self.fee * other.size, other.fee * self.size
        if mine != theirs:
            return mine > theirs
        return self.txid < other.txid


def select_for_block(mempool: Mempool) -> list[MempoolEntry]:
    """The mempool's transactions for the next block, in block order: by ancestor-package fee rate within
    Core's default weight and sigops limits, parents before children (`select_packages`)."""
    return select_packages(list(mempool.entries.values()))


def select_packages(
    entries: Sequence[MempoolEntry],
    *,
    max_weight: int = MAX_BLOCK_WEIGHT,
    reserved_weight: int = BLOCK_RESERVED_WEIGHT,
    max_sigops: int = MAX_BLOCK_SIGOPS_COST,
    reserved_sigops: int = COINBASE_RESERVED_SIGOPS,
    min_fee_per_kvb: int = BLOCK_MIN_TX_FEE_PER_KVB,
) -> list[MempoolEntry]:
    """The transactions of `entries` (a mempool, parents before children) a block should carry, in block
    order. In-mempool parents are found from the inputs; inputs from elsewhere are confirmed coins."""
    n = len(entries)
    position = {e.txid: i for i, e in enumerate(entries)}
    if len(position) != n:
        raise ValueError("duplicate transaction in the mempool entries")
    parents: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for i, e in enumerate(entries):
        for txin in e.tx.inputs:
            p = position.get(txin.prevout.txid)
            if p is None or p in parents[i]:
                continue
            if p >= i:
                raise ValueError("mempool entries are not in dependency order (a child before its parent)")
            parents[i].append(p)
            children[p].append(i)
    fee = [e.fee for e in entries]
    size = [policy_vsize(e.weight, e.sigops) for e in entries]
    sigops = [e.sigops for e in entries]
    in_block = [False] * n
    version = [0] * n

    # Unchosen in-mempool ancestors of each transaction (itself excluded); None when the package would
    # hold more than MAX_PACKAGE_COUNT transactions.
    ancestors: list[set[int] | None] = [None] * n

    def unchosen_ancestors(i: int) -> set[int] | None:
        found: set[int] = set()
        for p in parents[i]:
            if in_block[p]:
                continue
            above = ancestors[p]
            if above is None:
                return None
            found.add(p)
            found |= above
            if len(found) >= MAX_PACKAGE_COUNT:
                return None
        return found

    heap: list[_Candidate] = []

    def candidate(i: int, anc: set[int]) -> _Candidate:
        pkg = (
            fee[i] + sum(fee[a] for a in anc),
            size[i] + sum(size[a] for a in anc),
            sigops[i] + sum(sigops[a] for a in anc),
        )
        return _Candidate(i, entries[i].txid, version[i], (fee[i], size[i]), pkg)

    for i in range(n):
        anc = unchosen_ancestors(i)
        ancestors[i] = anc
        if anc is not None:
            heap.append(candidate(i, anc))
    heapq.heapify(heap)
    # Core orders a package by ancestor count (then txid); a count over the cap sorts after every known
    # one, and among themselves such transactions keep mempool (dependency) order.
    first_count = [len(a) if a is not None else n for a in ancestors]

    def block_order(i: int) -> tuple[int, int, bytes]:
        return (first_count[i], i if first_count[i] == n else 0, entries[i].txid)

    chosen: list[int] = []
    block_weight, block_sigops = reserved_weight, reserved_sigops
    failures = 0
    while heap:
        best = heapq.heappop(heap)
        i = best.index
        if in_block[i] or best.version != version[i]:
            continue  # stale: chosen already, or re-scored since
        if best.pkg_fee * 1000 < min_fee_per_kvb * best.pkg_size:
            break  # every package left scores lower still
        if (
            block_weight + WITNESS_SCALE_FACTOR * best.pkg_size >= max_weight
            or block_sigops + best.pkg_sigops >= max_sigops
        ):
            failures += 1
            if (
                failures > MAX_CONSECUTIVE_FAILURES
                and block_weight > max_weight - BLOCK_FULL_ENOUGH_WEIGHT_DELTA
            ):
                break
            continue  # skipped; it comes back only if one of its ancestors goes in later
        failures = 0
        anc = ancestors[i]
        assert anc is not None
        package = sorted((*anc, i), key=block_order)
        for m in package:
            in_block[m] = True
            chosen.append(m)
            block_weight += entries[m].weight
            block_sigops += sigops[m]
        # Re-score every unchosen descendant, parents before children (mempool order is dependency
        # order). A descendant still over the package cap has only such descendants: no need to go on.
        todo: list[int] = []
        queued: set[int] = set()
        for m in package:
            for c in children[m]:
                if not in_block[c] and c not in queued:
                    queued.add(c)
                    heapq.heappush(todo, c)
        while todo:
            d = heapq.heappop(todo)
            anc = unchosen_ancestors(d)
            if anc is None and ancestors[d] is None:
                continue
            ancestors[d] = anc
            version[d] += 1
            if anc is None:
                continue
            heapq.heappush(heap, candidate(d, anc))
            for c in children[d]:
                if not in_block[c] and c not in queued:
                    queued.add(c)
                    heapq.heappush(todo, c)
    return [entries[i] for i in chosen]

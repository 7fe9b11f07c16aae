"""Merkle trees over txids: the root, and Stratum's merkle branch for the coinbase.

Bitcoin's tree pairs hashes left to right, duplicating the last one on a level with an odd count. That
duplication is CVE-2012-2459: a block whose transaction list repeats its last transaction(s) has the same
merkle root as the block without them, so an attacker could relay a mutated (invalid) copy of a valid
block with the same hash and get the real block marked invalid. Core's ComputeMerkleRoot reports
`mutated` when two identical siblings are hashed; `merkle_root_mutated` does the same and a node must
refuse (not just mis-cache) such a block.

Stratum sends the coinbase's path to the root: the sibling hashes at each level, in internal byte order.
The miner folds `root = sha256d(root || sibling)` starting from the coinbase txid; since the coinbase is
always leaf 0 it is always the left child, and the branch does not depend on the coinbase at all, so the
pool computes it once per template.
"""

from __future__ import annotations

from collections.abc import Sequence

from pithead.chain.hashes import sha256d


def merkle_root_mutated(hashes: Sequence[bytes]) -> tuple[bytes, bool]:
    """(root, mutated) — `mutated` is True when some level hashed two identical siblings."""
    if not hashes:
        return bytes(32), False
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        for i in range(0, len(level) - 1, 2):
            if level[i] == level[i + 1]:
                mutated = True
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle root of internal-order hashes (txids or wtxids)."""
    return merkle_root_mutated(hashes)[0]


def coinbase_branch(txids: Sequence[bytes]) -> list[bytes]:
    """The Stratum merkle branch for leaf 0, given the txids of the non-coinbase transactions in order.

    At each level the coinbase's path is the leftmost node; its sibling is the next node, and the nodes
    right of that are paired among themselves (the last one duplicated on an odd count, counting the
    coinbase's slot), so the coinbase's own hash is never needed."""
    branch: list[bytes] = []
    rest = list(txids)  # the level without its leftmost (coinbase-path) node
    while rest:
        branch.append(rest[0])
        rest = rest[1:]
        if len(rest) & 1:  # with the coinbase-path node the level had an odd count: duplicate the last
            rest.append(rest[-1])
        rest = [sha256d(rest[i] + rest[i + 1]) for i in range(0, len(rest), 2)]
    return branch


def fold_branch(leaf: bytes, branch: Sequence[bytes]) -> bytes:
    """Root from the coinbase hash and its branch: what the miner (and the share check) computes."""
    h = leaf
    for sibling in branch:
        h = sha256d(h + sibling)
    return h

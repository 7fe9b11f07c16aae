"""`pithead bench chain`: speed of pithead.chain's hot paths in pure Python (hashlib), for reference.

Figures printed (each measured for about `--seconds`):
  * header sha256d/s — a share check's work: serialize an 80-byte `BlockHeader` and sha256d it, nonce
    varying; plus the bare `sha256d(80 bytes)` rate to show the serialization's share.
  * merkle-branch folds/s — a share check's other work: fold a coinbase txid through a Stratum branch
    (12 entries by default, a ~2,000–4,000-transaction block).
  * coinbase + header/s — the whole per-share rebuild: coinbase from coinb1/extranonces/coinb2, its txid,
    the branch fold, header and hash.
  * SHA-256 midstates/s of the pure-Python compression function.

This is not the mining path (the miner has its own C core) and it never asserts anything: it prints.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from pithead.chain.hashes import sha256_midstate, sha256d
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import fold_branch

DEFAULT_SECONDS = 1.0  # per figure: long enough to be stable to a few percent, short enough for CI
DEFAULT_BRANCH = 12  # a 12-entry branch covers blocks of 2,049–4,096 transactions
_BATCH = 1_000  # calls between clock reads, so the clock is not what we measure


def _rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls per second of fn(i), i counting up, over at least `seconds`."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(done, done + _BATCH):
            fn(i)
        done += _BATCH
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pithead bench chain", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="time per figure")
    parser.add_argument("--branch", type=int, default=DEFAULT_BRANCH, help="merkle branch length")
    args = parser.parse_args(argv)

    prev, root = os.urandom(32), os.urandom(32)
    header = BlockHeader(0x20000000, prev, root, 1_700_000_000, 0x1703A30C, 0)
    raw80 = header.serialize()
    branch = [os.urandom(32) for _ in range(args.branch)]
    leaf = os.urandom(32)
    coinb1, coinb2 = os.urandom(60), os.urandom(80)
    en1 = os.urandom(4)

    def header_hash(i: int) -> object:
        return BlockHeader(0x20000000, prev, root, 1_700_000_000, 0x1703A30C, i).hash()

    def bare_hash(i: int) -> object:
        return sha256d(raw80)

    def fold(i: int) -> object:
        return fold_branch(leaf, branch)

    def share(i: int) -> object:
        coinbase = coinb1 + en1 + i.to_bytes(8, "little") + coinb2
        merkle = fold_branch(sha256d(coinbase), branch)
        return BlockHeader(0x20000000, prev, merkle, 1_700_000_000, 0x1703A30C, i).hash()

    def midstate(i: int) -> object:
        return sha256_midstate(raw80[:64])

    figures = [
        ("header sha256d/s (BlockHeader + serialize + sha256d)", header_hash),
        ("sha256d/s of 80 bytes (hashlib only)", bare_hash),
        (f"merkle-branch folds/s ({args.branch} entries)", fold),
        (f"share rebuilds/s (coinbase txid + {args.branch}-fold + header hash)", share),
        ("SHA-256 midstates/s (pure-Python compression)", midstate),
    ]
    print(f"pithead bench chain: {args.seconds:g} s per figure")
    for label, fn in figures:
        seconds = args.seconds / 10 if fn is midstate else args.seconds  # the slow one needs less time
        print(f"  {label:<72} {_rate(fn, seconds):>14,.0f}")

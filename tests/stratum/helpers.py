"""Shared test helpers for tests/stratum: vector loading, synthetic regtest templates, a tiny miner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pithead.chain.address import address_to_script
from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.params import REGTEST
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut
from pithead.template.block_template import BlockTemplate, TemplateTx
from pithead.template.job import Job

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

# Regtest addresses that tests/vectors/addresses.json lists as valid (P2WSH and P2WPKH on bcrt)
SOLO_ADDRESS = "bcrt1qan8gntac7z7me2ejt4hpru42ad2f759fmy0m3ejvs98656znv7eqga4uhv"
POOL_ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def share_vector(prefix: str) -> dict[str, Any]:
    for v in load("stratum_shares.json")["vectors"]:
        if v["name"].startswith(prefix):
            return v  # type: ignore[no-any-return]
    raise KeyError(prefix)


def segwit_tx(seed: int) -> Transaction:
    """A transaction with a witness (not valid against any UTXO set: for job building only)."""
    prev = OutPoint(sha256d(seed.to_bytes(4, "little")), 0)
    return Transaction(
        2,
        (TxIn(prev, b"", 0xFFFFFFFD, (b"\x30" * 71, b"\x02" * 33)),),
        (TxOut(10_000 + seed, bytes.fromhex("0014") + bytes(20)),),
    )


def legacy_tx(seed: int) -> Transaction:
    prev = OutPoint(sha256d(b"legacy" + seed.to_bytes(4, "little")), 1)
    return Transaction(1, (TxIn(prev, b"\x51"),), (TxOut(5_000, b"\x51"),))


def regtest_template(
    *,
    n_txs: int = 3,
    prev: bytes | None = None,
    height: int = 101,
    curtime: int = 1_700_000_000,
    bits: int = 0x207FFFFF,
) -> BlockTemplate:
    """A regtest-shaped template. Regtest's own bits make every other hash a block; tests that need
    shares that are *not* blocks pass harder bits (0x1d00ffff: difficulty 1)."""
    txs = []
    for i in range(n_txs):
        tx = segwit_tx(i) if i % 2 == 0 else legacy_tx(i)
        txs.append(TemplateTx(tx.serialize(), tx.txid(), tx.wtxid(), 1000, 4, tx.weight(), ()))
    return BlockTemplate(
        version=0x20000000,
        prev_hash=prev if prev is not None else sha256d(b"prev" + height.to_bytes(4, "little")),
        height=height,
        bits=bits,
        target=bits_to_target(bits),
        curtime=curtime,
        mintime=curtime - 600,
        coinbase_value=50 * 100_000_000 + 1000 * n_txs,
        transactions=tuple(txs),
        rules=("csv", "!segwit", "taproot"),
    )


def solo_script() -> bytes:
    return address_to_script(SOLO_ADDRESS, REGTEST)


def header_for(job: Job, en1: bytes, en2: bytes, ntime: int, version: int) -> bytes:
    """The 76-byte header prefix (nonce excluded) a miner hashes."""
    root = job.merkle_root(en1, en2)
    return (
        version.to_bytes(4, "little") + job.prev_hash + root + ntime.to_bytes(4, "little")
        + job.bits.to_bytes(4, "little")
    )


def find_nonces(header76: bytes, target: int, count: int, start: int = 0, limit: int = 1 << 22) -> list[int]:
    """Nonces meeting `target` (native core when available, else hashlib)."""
    try:
        from pithead.miner.core import scan  # type: ignore[attr-defined]

        found = scan(header76, start, limit, target)
        return list(found)[:count]
    except Exception:
        pass
    out = []
    for n in range(start, start + limit):
        h = hashlib.sha256(hashlib.sha256(header76 + n.to_bytes(4, "little")).digest()).digest()
        if int.from_bytes(h, "little") <= target:
            out.append(n)
            if len(out) >= count:
                break
    return out

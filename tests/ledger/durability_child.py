"""The process a kill -9 hits in test_share_durability.py: a pool and its ledger in one process, joined by
the in-memory share bus, as `pithead serve` (and `pithead up`) run them.

A real Stratum V1 pool (`pithead.stratum.server.build_server`) on a static template whose network target
(difficulty 1) no test share meets, so there are shares and no blocks; its events go to a `MemoryBus`; a
`Ledger` on the SQLite file named by the first argument consumes it through `run_ledger`, exactly the
loop `pithead serve` starts. Prints the pool's port on stdout, logs WARNINGs on stderr, runs until killed.

Not a test itself, and not part of pithead: the harness for one.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.config import PoolConfig
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.service import run_ledger
from pithead.ledger.store import open_store
from pithead.stratum.server.build import build_server
from pithead.template.block_template import BlockTemplate
from pithead.template.sources.static import StaticTemplateSource

POOL_ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"  # tests/vectors/addresses.json
SHARE_DIFFICULTY = 1e-8  # ~43 hashes a share: the miners' load is the pool's, not their hashing
HARD_BITS = 0x1D00FFFF  # difficulty 1: one hash in 2^32 would be a block; the test's never are


def template() -> BlockTemplate:
    return BlockTemplate(
        version=0x20000000, prev_hash=sha256d(b"durability"), height=101, bits=HARD_BITS,
        target=bits_to_target(HARD_BITS), curtime=1_700_000_000, mintime=1_699_999_400,
        coinbase_value=50 * 100_000_000, transactions=(), rules=("csv", "!segwit", "taproot"),
    )


async def main(database: str) -> None:
    cfg = PoolConfig(mode="pool", network="regtest", pool_address=POOL_ADDRESS, min_difficulty=SHARE_DIFFICULTY,
                     max_difficulty=SHARE_DIFFICULTY, start_difficulty=SHARE_DIFFICULTY, refresh_interval=3600.0)
    bus = MemoryBus("pool")
    server = build_server(cfg, StaticTemplateSource(template()), bus)
    ledger = Ledger(open_store(f"sqlite:///{database}"), LedgerSettings())
    stop = asyncio.Event()
    consumer = asyncio.create_task(run_ledger(ledger, bus, stop))
    _, port = await server.start("127.0.0.1", 0)
    print(port, flush=True)
    await consumer  # runs until the process is killed


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1]))

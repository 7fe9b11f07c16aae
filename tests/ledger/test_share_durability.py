"""The durability promise, tested the hard way: kill -9 a real pool+ledger process under a share load, then
count what the ledger holds against what the miners were told was accepted.

The promise (pithead.ledger.consumer, README "What a crash can lose"): a share is acknowledged before it is
durable; a kill -9 of the process holding the in-memory bus loses only accepted shares not yet committed,
which while the ledger keeps up are those of the last two commits, well under DURABILITY_WARN_S; when the
ledger falls behind, it says so before it loses more. So for every miner, after each kill:
- the ledger holds a prefix of what the miner was told (nothing older than a kept share is lost, no hole);
- what is missing was acknowledged within DURABILITY_WARN_S of the kill; this load is one the ledger keeps
  up with (under a loaded machine too: the pool slows with the ledger), so the process never had cause to
  warn that the ledger was behind, and must not have;
- the ledger holds nothing the pool did not accept (at most the one submission in flight per miner).

The child is tests/ledger/durability_child.py: the real Stratum pool, MemoryBus and run_ledger on SQLite.
Several kills, each with fresh worker names, on the same ledger file (each restart resumes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pithead.chain.hashes import prevhash_from_stratum, sha256d
from pithead.events import ShareEvent
from pithead.ledger.bus.memory import MemoryBus
from pithead.ledger.consumer import DURABILITY_WARN_S, ConsumeCounters, consume_once
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.store import open_store
from pithead.ledger.store.base import LedgerStore
from stratum.helpers import find_nonces
from stratum.rawclient import RawClient

pytestmark = [pytest.mark.timeout(300)]

CHILD = Path(__file__).with_name("durability_child.py")
ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
MINERS = 4
KILLS = 3
SHARES_BEFORE_KILL = 1200  # per kill, all miners together: a load the ledger commits in many batches
START_S = 60.0  # generous: two shared cores
SEARCH_LIMIT = 1 << 12  # nonces tried per extranonce2; a share is one in ~43


class QuickClient(RawClient):
    """`RawClient` whose search stops near the first share (at 1e-8 one hash in ~43 is one), so a miner's
    pace is the pool's round trip, not a million hashes per share."""

    def solve(self, job: list[Any], target: int, version_bits: int = 0) -> tuple[str, str, str, str]:
        while True:
            self.en2_counter += 1
            en2 = self.en2_counter.to_bytes(self.extranonce2_size, "big")
            root = sha256d(bytes.fromhex(job[2]) + self.extranonce1 + en2 + bytes.fromhex(job[3]))
            for b in job[4]:
                root = sha256d(root + bytes.fromhex(b))
            version = int(job[5], 16) | version_bits
            header76 = (version.to_bytes(4, "little") + prevhash_from_stratum(job[1]) + root
                        + int(job[7], 16).to_bytes(4, "little") + int(job[6], 16).to_bytes(4, "little"))
            found = find_nonces(header76, target, 1, limit=SEARCH_LIMIT)
            if found:
                return en2.hex(), job[7], f"{found[0]:08x}", f"{version_bits:08x}"


async def mine(port: int, user: str, told: list[float], stop: asyncio.Event) -> None:
    """Submit shares one after another; note when each acceptance arrives, until the pool dies."""
    client = await QuickClient.connect("127.0.0.1", port)
    try:
        await client.handshake(user)
        job = await client.wait_notify()
        while not stop.is_set():
            reply = await client.submit_one(user, job)
            assert reply["result"] is True, reply
            told.append(time.monotonic())
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass  # the pool was killed
    finally:
        await client.close()


async def one_kill(database: Path, kill: int) -> tuple[dict[str, list[float]], float, str]:
    """Run the child, load it, kill -9 it; returns (acceptance times per worker, kill time, its stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(database), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_S)
        assert line, (await proc.stderr.read()).decode()
        port = int(line)
        told: dict[str, list[float]] = {f"{ADDRESS}.k{kill}m{i}": [] for i in range(MINERS)}
        stop = asyncio.Event()
        miners = [asyncio.create_task(mine(port, user, times, stop)) for user, times in told.items()]
        async with asyncio.timeout(START_S * 2):
            while sum(len(t) for t in told.values()) < SHARES_BEFORE_KILL:
                await asyncio.sleep(0.01)
                for m in miners:
                    if m.done():
                        m.result()  # a miner that failed early: raise why
        killed_at = time.monotonic()
        proc.kill()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*miners), START_S)
        await proc.wait()
        return told, killed_at, (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()


async def test_a_kill_9_loses_no_more_than_the_promised_window(tmp_path: Path) -> None:
    database = tmp_path / "ledger.sqlite3"
    figures = []
    for kill in range(KILLS):
        told, killed_at, stderr = await one_kill(database, kill)
        assert "Traceback" not in stderr and "ledger behind the pool" not in stderr, stderr
        store = open_store(f"sqlite:///{database}")
        try:
            held = {w: (row.accepted if (row := store.worker(w)) is not None else 0) for w in told}
            shares = {w: len(store.recent_shares(10_000, worker=w)) for w in told}
        finally:
            store.close()
        lost_ages: list[float] = []
        for worker, times in told.items():
            assert shares[worker] == held[worker]  # the raw shares and the worker's count agree
            assert held[worker] <= len(times) + 1  # nothing the pool did not accept (one in flight at most)
            missing = len(times) - held[worker]
            if missing > 0:  # the ledger kept the first ones: what is gone is the newest
                lost_ages.extend(killed_at - t for t in times[-missing:])
        total = sum(len(t) for t in told.values())
        assert total >= SHARES_BEFORE_KILL and sum(held.values()) > 0
        assert all(age <= DURABILITY_WARN_S for age in lost_ages), sorted(lost_ages)[-5:]
        figures.append((total, len(lost_ages), max(lost_ages, default=0.0)))
    for total, lost, oldest in figures:  # shown with -s: the window measured
        print(f"kill -9: {total} shares acknowledged, {lost} lost, the oldest of them acknowledged "
              f"{max(0.0, oldest) * 1000:.0f} ms before the kill")


def old_share(age_s: float) -> ShareEvent:
    return ShareEvent(time.time() - age_s, f"{ADDRESS}.old", ADDRESS, 1.0, "j", 5, True)


async def test_the_ledger_says_when_it_falls_behind_a_volatile_bus(
    store: LedgerStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An accepted share that waited longer than the promise before its commit is reported (once a minute,
    not once a batch); a share that waited in Redis is durable there and says nothing."""
    ledger = Ledger(store, LedgerSettings())
    bus, counters = MemoryBus(), ConsumeCounters()
    bus.put(old_share(0.0))
    await consume_once(ledger, bus, counters)
    assert counters.max_wait_s < DURABILITY_WARN_S and not caplog.records
    for _ in range(2):
        bus.put(old_share(3 * DURABILITY_WARN_S))
        await consume_once(ledger, bus, counters)
    assert counters.max_wait_s >= 3 * DURABILITY_WARN_S
    (warning,) = [r for r in caplog.records if "ledger behind the pool" in r.getMessage()]
    assert warning.levelname == "WARNING"

    class DurableBus(MemoryBus):
        volatile = False  # as RedisEventSource: what it holds outlives the process

    durable, quiet = DurableBus("durable"), ConsumeCounters()
    durable.put(old_share(3600.0))  # an hour in Redis while the ledger was down: safe all along
    await consume_once(ledger, durable, quiet)
    assert quiet.applied == 1 and quiet.max_wait_s == 0.0
    assert len([r for r in caplog.records if "ledger behind" in r.getMessage()]) == 1

"""End to end on loopback: the reference miner against pithead's own pool server (pithead.stratum.server).

The pool is fed a regtest-shaped template by hand (StaticTemplateSource); the miner negotiates version
rolling, mines with the native core, and its shares are judged by the pool's own share check.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.miner.runner import Miner, MinerOptions, MinerStatus
from pithead.stratum.client.connection import PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v1.work import FoundShare
from pithead.template.block_template import BlockTemplate
from pithead.template.sources.static import StaticTemplateSource
from pithead.web.adapters import PoolServerLive

# A regtest address listed as valid in tests/vectors/addresses.json (P2WPKH on bcrt).
ADDRESS = "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9"
USER = ADDRESS + ".e2e"
HARD_BITS = 0x1D00FFFF  # difficulty-1 network target: our tiny shares are never blocks
REGTEST_BITS = 0x207FFFFF  # regtest: about every other hash is a block
#: Share difficulty asked of the pool: ~4e5 hashes per share, many shares a second on one thread.
EASY = 1e-4


def template(height: int, bits: int) -> BlockTemplate:
    return BlockTemplate(
        version=0x20000000,
        prev_hash=sha256d(b"e2e" + height.to_bytes(4, "little")),
        height=height,
        bits=bits,
        target=bits_to_target(bits),
        curtime=int(time.time()),
        mintime=int(time.time()) - 600,
        coinbase_value=50 * 100_000_000,
        transactions=(),
        rules=("csv", "!segwit", "taproot"),
    )


class Sink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


async def start_pool(bits: int) -> tuple[PoolServer, StaticTemplateSource, Sink, int]:
    source = StaticTemplateSource(template(101, bits))
    sink = Sink()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(5.0, 1e-6, 1e9), start_difficulty=EASY)
    server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=3600)
    _, port = await server.start("127.0.0.1", 0)
    return server, source, sink, port


#: Seconds any one condition may take on a loaded 2-core machine.
WAIT_LIMIT = 30.0


async def wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_miner_shares_are_accepted_by_pitheads_pool() -> None:
    server, source, sink, port = await start_pool(HARD_BITS)
    miner = Miner(
        MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=USER, threads=1, suggest_difficulty=EASY)
    )
    task = asyncio.create_task(miner.run())
    try:
        status: MinerStatus = miner.status
        await wait_for(lambda: status.accepted >= 5)
        assert miner.client is not None and miner.client.session is not None
        assert miner.client.session.version_mask != 0  # BIP310 negotiated with the pool
        first_job_shares = [e for e in sink.events if isinstance(e, ShareEvent) and e.accepted]
        assert len(first_job_shares) >= 5 and {e.worker for e in first_job_shares} == {USER}
        assert {e.height for e in first_job_shares} == {101}

        # A new block: the pool sends a clean job, and the miner's shares move to the new height.
        source.push(template(102, HARD_BITS), new_block=True)
        await wait_for(lambda: any(isinstance(e, ShareEvent) and e.accepted and e.height == 102 for e in sink.events))
        rejected = [e for e in sink.events if isinstance(e, ShareEvent) and not e.accepted]
        # Only a share already in flight when the block changed may be refused, as stale; never as a
        # duplicate (re-issued templates) or low difficulty (set_difficulty applies from the next job).
        assert all(e.height == 101 and e.reject_reason in ("stale", "job-not-found") for e in rejected), rejected
        assert status.rejected == len(rejected)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_two_threads_over_difficulty_changes_never_submit_duplicates() -> None:
    # Vardiff re-sends the same template (a new notify) as the difficulty climbs; every unit must still
    # be a header the pool has not seen (two threads, so units are handed out concurrently).
    server, _source, sink, port = await start_pool(HARD_BITS)
    miner = Miner(
        MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=USER, threads=2, suggest_difficulty=EASY)
    )
    found: list[FoundShare] = []
    miner.on_share_found = found.append
    task = asyncio.create_task(miner.run())
    try:
        # A vardiff step re-sends the job (same template, a new notify, so a new MinerWork generation); wait for
        # shares mined after it, then for the pool's verdict on everything submitted.
        await wait_for(lambda: sum(s.work.generation >= 2 for s in found) >= 10)
        await wait_for(lambda: miner.status.accepted + miner.status.rejected >= len(found) - miner.status.stale)
        shares = [e for e in sink.events if isinstance(e, ShareEvent)]
        assert [e.reject_reason for e in shares if not e.accepted] == []
        assert len({e.height for e in shares}) == 1  # all of it on one template
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_miner_finds_a_regtest_block_through_the_pool() -> None:
    server, source, sink, port = await start_pool(REGTEST_BITS)
    miner = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=USER, threads=1))
    task = asyncio.create_task(miner.run())
    try:
        await wait_for(lambda: bool(source.submitted))
        await wait_for(lambda: any(isinstance(e, BlockEvent) for e in sink.events))
        block = bytes.fromhex(source.submitted[0])
        header = block[:80]
        # The submitted block's header meets regtest's target and extends the template's tip.
        assert int.from_bytes(sha256d(header), "little") <= bits_to_target(REGTEST_BITS)
        assert header[4:36] == template(101, REGTEST_BITS).prev_hash
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_miner_reconnects_after_the_pool_restarts_and_mines_on() -> None:
    server, _source, _sink, port = await start_pool(HARD_BITS)
    miner = Miner(
        MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=USER, threads=1, suggest_difficulty=EASY)
    )
    task = asyncio.create_task(miner.run())
    second: PoolServer | None = None
    try:
        await wait_for(lambda: miner.status.accepted >= 3)
        await server.stop()
        await wait_for(lambda: not miner.status.connected)
        before = miner.status.accepted
        # The pool comes back on the same port (a restart): the miner reconnects with backoff and its
        # shares on the new session are submitted and accepted (none dropped as stale).
        source2 = StaticTemplateSource(template(101, HARD_BITS))
        sink2 = Sink()
        rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(5.0, 1e-6, 1e9), start_difficulty=EASY)
        second = PoolServer(rules=rules, source=source2, sink=sink2, refresh_interval=3600)
        await second.start("127.0.0.1", port)
        await wait_for(lambda: miner.status.accepted >= before + 3)
        assert any(isinstance(e, ShareEvent) and e.accepted for e in sink2.events)
        assert miner.status.rejected == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if second is not None:
            await second.stop()


async def test_the_pithead_miner_command_mines_on_the_pool_with_failover() -> None:
    import re
    import socket
    import sys

    server, _source, sink, port = await start_pool(HARD_BITS)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nobody listens there: the first -o fails and the miner moves to the second
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.cli", "miner",
            "-o", f"stratum+tcp://127.0.0.1:{dead_port}", "-o", f"stratum+tcp://127.0.0.1:{port}",
            "-u", USER, "-p", "x", "-t", "1", "--suggest-diff", str(EASY), "--duration", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT_LIMIT)
        text = out.decode()
        assert proc.returncode == 0, text
        done = re.search(r"accepted (\d+), rejected (\d+)", text)
        assert done is not None, text
        assert int(done.group(1)) > 0 and int(done.group(2)) == 0
        # The pool may have judged a last share whose reply the miner did not wait for when it stopped.
        assert sum(1 for e in sink.events if isinstance(e, ShareEvent) and e.accepted) >= int(done.group(1))
    finally:
        await server.stop()


async def test_pithead_miner_stops_when_the_pool_refuses_its_address_for_good() -> None:
    """A mainnet address on a regtest pool: the pool refuses it at mining.authorize, and will every time.
    `pithead miner` asks again once (after a backoff), then exits 1 with the pool's reason instead of
    saying "all pools down" for ever."""
    server, _source, sink, port = await start_pool(HARD_BITS)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.cli", "miner", "-o", f"stratum+tcp://127.0.0.1:{port}",
            "-u", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT.rig", "-t", "1", "--duration", "120",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(90):
            out, err = await proc.communicate()
    finally:
        await server.stop()
    assert proc.returncode == 1, (out, err)
    assert b"every pool refused user '1BoatSLRHtKNngkdXEeobR76b53LETtpyT.rig' for good" in err, err
    assert b"Not a regtest address" in err and b"Traceback" not in err, err
    assert sink.events == []


async def test_the_live_connections_carry_user_agent_and_last_share() -> None:
    """/api/connections reads each session's user agent and the time of its last accepted share."""
    server, _source, sink, port = await start_pool(HARD_BITS)
    miner = Miner(MinerOptions(pools=(PoolAddress("127.0.0.1", port),), username=USER, threads=1,
                               suggest_difficulty=EASY))
    task = asyncio.create_task(miner.run())
    try:
        await wait_for(lambda: any(isinstance(e, ShareEvent) and e.accepted for e in sink.events))
        live = PoolServerLive(server)
        await wait_for(lambda: any(s.last_share_at is not None for s in live.live_status().sessions))
        (session,) = live.live_status().sessions
        assert session.worker == USER and session.user_agent and session.user_agent.startswith("pithead")
        assert session.last_share_at is not None and session.last_share_at >= session.connected_at
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()

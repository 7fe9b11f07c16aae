"""The pool on several cores (`pithead pool --workers N`): worker processes sharing one port with
SO_REUSEPORT, one supervisor holding the node, the ledger sink, bans and statistics.

Real processes, real sockets, the embedded node: miners spread over the workers mine regtest blocks that
the node accepts; extranonce1 never repeats across workers; a ban made by one worker holds on all; a
worker killed with SIGKILL is restarted while the others keep serving; Ctrl-C/SIGTERM of `pithead pool
--workers 2` stops every process, and workers stop by themselves when their supervisor dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from pithead.chain.address import address_to_script
from pithead.chain.hashes import display_hex, prevhash_from_stratum
from pithead.chain.params import REGTEST
from pithead.config import ConfigError, PoolConfig, UpstreamNode
from pithead.events import BlockEvent, ShareEvent
from pithead.node.node import EmbeddedNode
from pithead.stratum.server.build import pool_workers
from pithead.stratum.server.workers import WorkerPool
from pithead.template.sources.failover import source_from_config
from pithead.template.sources.static import StaticTemplateSource

from .helpers import POOL_ADDRESS, SOLO_ADDRESS, regtest_template
from .rawclient import RawClient
from .test_e2e_node import ListSink, rpc, wait_until

pytestmark = pytest.mark.timeout(120)

USER = SOLO_ADDRESS + ".w"


def pool_cfg(**kw: object) -> PoolConfig:
    base: dict[str, object] = {"port": 0, "mode": "pool", "pool_address": POOL_ADDRESS, "start_difficulty": 1e-6,
                               "min_difficulty": 1e-8, "refresh_interval": 0.2}
    base.update(kw)
    return PoolConfig(**base)  # type: ignore[arg-type]


async def connect(port: int, src: str = "127.0.0.1") -> RawClient:
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    return RawClient(r, w)


def shard(client: RawClient, workers: int = 2) -> int:
    """Which worker serves this miner: the top bits of its extranonce1 name the worker's slice."""
    bits = (workers - 1).bit_length()
    return client.extranonce1[0] >> (8 - bits)


async def miners_on_every_worker(port: int, n: int, workers: int = 2) -> list[RawClient]:
    clients = []
    for i in range(n):
        c = await connect(port, f"127.0.0.{10 + i % 8}")
        await c.handshake(f"{USER}{i}")
        clients.append(c)
    # SO_REUSEPORT hashes the 4-tuple: with n=16 and 2 workers, all on one worker is a 2^-15 chance
    assert {shard(c, workers) for c in clients} == set(range(workers))
    return clients


def test_workers_setting() -> None:
    assert pool_workers(PoolConfig(workers=3)) == 3
    assert pool_workers(PoolConfig(workers=0)) == (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match=r"pool\.workers"):
        pool_workers(PoolConfig(workers=-1))


async def test_channel_carries_templates_and_events_exactly_and_refuses_garbage() -> None:
    import socket
    import struct

    from pithead.stratum.server.workers import _HEADER, Channel, _share_fields
    from pithead.template.interface import TemplateUpdate

    a, b = socket.socketpair()
    left, right = await Channel.open(a), await Channel.open(b)
    tpl = regtest_template(n_txs=50)
    share = ShareEvent(time=1.5, worker="w.1", address="a", difficulty=0.5, job_id="1f", height=101,
                       accepted=False, reject_reason="duplicate", share_difficulty=0.1, remote="127.0.0.9")
    left.send(("template", TemplateUpdate(tpl, True, 2.0)))
    left.send(("events", [_share_fields(share)], []))
    kind, update = await right.recv()
    assert kind == "template" and update.template == tpl and update.new_block is True
    kind, shares, blocks = await right.recv()
    assert ShareEvent(*shares[0]) == share and blocks == []
    left.send_frame(_HEADER.pack(4) + b"junk")  # not a pickle of a message
    with pytest.raises(EOFError, match="malformed frame"):
        await right.recv()
    c, d = socket.socketpair()
    l2, r2 = await Channel.open(c), await Channel.open(d)
    l2.send_frame(struct.pack(">I", 2**31))  # a frame too big to be ours
    with pytest.raises(EOFError, match="frame of"):
        await r2.recv()
    l2.send(("ok",))
    l2.close()
    left.close()
    with pytest.raises(EOFError):
        await right.recv()
    r2.close()
    right.close()


async def test_miners_on_several_workers_mine_blocks_the_node_accepts(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=20.0, seed=11) as node:
        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="regtest", refresh_interval=0.2)
        await source.start()
        sink = ListSink()
        pool = WorkerPool(pool_cfg(), source, sink, workers=2)
        _, port = await pool.start("127.0.0.1", 0)
        clients: list[RawClient] = []
        try:
            clients = await miners_on_every_worker(port, 16)
            en1 = [c.extranonce1 for c in clients]
            assert len(set(en1)) == len(en1)  # unique across the whole pool, not only per worker
            start_height = int(await rpc(node, "getblockcount"))  # type: ignore[arg-type]
            # one miner of each worker finds a block (every share at 1e-6 meets the regtest target)
            finders = [next(c for c in clients if shard(c) == k) for k in (0, 1)]
            found: list[str] = []
            for k, c in enumerate(finders):
                tip = await rpc(node, "getbestblockhash")

                async def on_tip(c: RawClient = c, tip: object = tip) -> bool:
                    return c.job is not None and display_hex(prevhash_from_stratum(c.job[1])) == tip

                await wait_until(on_tip, "a job on the node's tip")
                job = c.job
                assert job is not None
                r = await c.submit_one(f"{USER}{clients.index(c)}", job, diff=1e-6)
                assert r["result"] is True, r

                async def block_recorded(want: int = k + 1) -> bool:
                    return sum(isinstance(e, BlockEvent) for e in sink.events) >= want

                await wait_until(block_recorded, "the block event from the worker")
                ev = [e for e in sink.events if isinstance(e, BlockEvent)][-1]
                assert ev.accepted_by_node, pool.metrics.submit_results
                found.append(ev.block_hash)
                # every miner of the OTHER worker is told too (the supervisor relays the message)
                other = next(x for x in clients if shard(x) != k)
                texts: list[str] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(15):
                        while not texts or not texts[-1].endswith(f"found by {ev.worker}"):
                            texts.append((await other.wait_method("client.show_message"))["params"][0])
                assert texts and texts[-1].endswith(f"found by {ev.worker}"), (texts, shard(other), k)
            assert int(await rpc(node, "getblockcount")) == start_height + 2  # type: ignore[arg-type]
            for h in found:
                block = await rpc(node, "getblock", h, 2)
                coinbase = block["tx"][0]  # type: ignore[index]
                assert any(o["scriptPubKey"]["hex"] == address_to_script(POOL_ADDRESS, REGTEST).hex()
                           for o in coinbase["vout"])
            # the new tip reached miners on both workers as a clean job
            for c in (clients[0], clients[-1]):
                with contextlib.suppress(TimeoutError):
                    while True:
                        await c.wait_notify(wait_s=0.5)
                job = c.job
                assert job is not None
                tip = await rpc(node, "getbestblockhash")
                assert display_hex(prevhash_from_stratum(job[1])) == tip
            shares = [e for e in sink.events if isinstance(e, ShareEvent)]
            assert len(shares) == 2 and all(s.accepted for s in shares)
            # the supervisor's pool-wide statistics come from the workers' events and reports
            assert pool.stats.pool.accepted == 2 and pool.stats.pool.blocks == 2

            async def reported() -> bool:
                return pool.metrics.connections == 16 and pool.metrics.shares_judged == 2

            await wait_until(reported, "the workers' statistics")
            snap = pool.snapshot()
            assert sum(w["connections"] for w in snap["workers"]) == 16  # type: ignore[attr-defined]
        finally:
            for c in clients:
                await c.close()
            await pool.stop()
            await source.stop()


async def test_a_ban_on_one_worker_holds_on_every_worker() -> None:
    source = StaticTemplateSource(regtest_template())
    pool = WorkerPool(pool_cfg(ban_seconds=60.0), source, ListSink(), workers=2)
    _, port = await pool.start("127.0.0.1", 0)
    good: list[RawClient] = []
    try:
        good = await miners_on_every_worker(port, 16)
        bad = await connect(port, "127.0.0.77")
        await bad.send_raw(b"garbage\n" * 50)
        await asyncio.wait_for(bad._task, 10)  # its worker closed it and banned 127.0.0.77
        await bad.close()

        async def refused_everywhere() -> bool:
            # 8 fresh connections (different source ports → both workers): every one closed at once
            results = []
            for _ in range(8):
                c = await connect(port, "127.0.0.77")
                try:
                    await asyncio.wait_for(c._task, 2)
                    results.append(True)
                except TimeoutError:
                    results.append(False)
                await c.close()
            return all(results)

        await wait_until(refused_everywhere, "the ban on every worker", limit_s=20)
        # a worker restarted after the ban refuses the flooder too
        victim = pool.workers[0]

        async def reported() -> bool:
            return bool(victim.stats.get("pid"))

        await wait_until(reported, "the worker's report")
        old_pid = victim.stats["pid"]
        os.kill(old_pid, signal.SIGKILL)

        async def restarted() -> bool:
            return victim.stats.get("pid") not in (None, old_pid)

        await wait_until(restarted, "the worker's restart", limit_s=30)
        assert await refused_everywhere()
        survivors = [(i, c) for i, c in enumerate(good) if shard(c) == 1]  # worker 0's miners went with it
        for i, c in survivors[:2]:  # everyone else still served
            assert c.job is not None
            r = await c.submit_one(f"{USER}{i}", c.job)
            assert r["result"] is True, r
    finally:
        for c in good:
            await c.close()
        await pool.stop()


async def test_a_killed_worker_is_restarted_and_the_others_keep_serving() -> None:
    source = StaticTemplateSource(regtest_template())
    sink = ListSink()
    pool = WorkerPool(pool_cfg(), source, sink, workers=2)
    _, port = await pool.start("127.0.0.1", 0)
    clients: list[RawClient] = []
    try:
        clients = await miners_on_every_worker(port, 16)

        async def pids_known() -> bool:
            return all(w.stats.get("pid") for w in pool.workers)

        await wait_until(pids_known, "worker reports")
        victim = pool.workers[0]
        old_pid = victim.stats["pid"]
        os.kill(old_pid, signal.SIGKILL)
        survivors = [c for c in clients if shard(c) == 1]
        casualties = [c for c in clients if shard(c) == 0]
        for c in casualties:
            await asyncio.wait_for(c._task, 10)  # disconnected with their worker
        for c in survivors:  # unaffected: shares still judged and recorded
            assert c.job is not None
            r = await c.submit_one(f"{USER}{clients.index(c)}", c.job)
            assert r["result"] is True

        async def restarted() -> bool:
            return victim.stats.get("pid") not in (None, old_pid)

        await wait_until(restarted, "the worker's restart", limit_s=30)
        assert pool.metrics.worker_restarts == 1
        # the miners reconnect and get work from whichever worker the kernel picks
        again = [await connect(port, f"127.0.0.{20 + i}") for i in range(6)]
        for i, c in enumerate(again):
            await c.handshake(f"{USER}r{i}")
            job = await c.wait_notify()
            r = await c.submit_one(f"{USER}r{i}", job)
            assert r["result"] is True
        clients += again
        # a new block reaches miners on the restarted worker too
        source.push(regtest_template(height=2000), new_block=True)
        for c in again:
            job = await c.wait_notify(clean=True)
            assert job[8] is True
        accepted = [e for e in sink.events if isinstance(e, ShareEvent) and e.accepted]
        assert len(accepted) == len(survivors) + len(again)
    finally:
        for c in clients:
            await c.close()
        await pool.stop()


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(x) for x in f.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _start_cli(node: EmbeddedNode) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "pool", "--port", "0", "--node", node.rpc_url,
        "--cookie", str(node.cookie_path), "--mode", "solo", "--workers", "2", "-v",
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    port = None
    async with asyncio.timeout(60):
        while port is None:
            line = (await proc.stderr.readline()).decode()
            assert line, "pithead pool exited early"
            m = re.search(r"2 worker processes\) listening on 127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
    return proc, port


async def _drain(stream: asyncio.StreamReader | None) -> None:
    if stream is not None:
        while await stream.readline():
            pass


async def test_pool_command_with_workers_serves_and_stops_every_process(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0) as node:
        proc, port = await _start_cli(node)
        drain = asyncio.create_task(_drain(proc.stderr))
        try:
            workers = _children(proc.pid)
            assert len(workers) == 2
            client = await connect(port)
            await client.handshake(SOLO_ADDRESS + ".cli")
            job = await client.wait_notify(clean=True)
            r = await client.submit_one(SOLO_ADDRESS + ".cli", job, diff=1e-6)  # a regtest block
            assert r["result"] is True
            await client.close()
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert not any(_alive(p) for p in workers)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await drain


async def test_workers_stop_when_their_supervisor_dies(tmp_path: Path) -> None:
    async with EmbeddedNode(tmp_path, rpc_port=0) as node:
        proc, _ = await _start_cli(node)
        drain = asyncio.create_task(_drain(proc.stderr))
        workers = _children(proc.pid)
        try:
            assert len(workers) == 2
            proc.kill()  # no chance to stop them: they must notice the channel's end
            await proc.wait()
            for _ in range(100):
                if not any(_alive(p) for p in workers):
                    break
                await asyncio.sleep(0.1)
            assert not any(_alive(p) for p in workers)
        finally:
            for p in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            await drain


async def test_a_stuck_worker_is_killed_and_restarted() -> None:
    """A worker that stops answering (here: SIGSTOP) is killed after `stall_seconds` and replaced."""
    source = StaticTemplateSource(regtest_template())
    pool = WorkerPool(pool_cfg(), source, ListSink(), workers=2, stall_seconds=2.0)
    await pool.start("127.0.0.1", 0)
    try:
        victim = pool.workers[1]

        async def reported() -> bool:
            return bool(victim.stats.get("pid"))

        await wait_until(reported, "the worker's report")
        old_pid = victim.stats["pid"]
        os.kill(old_pid, signal.SIGSTOP)

        async def replaced() -> bool:
            return victim.stats.get("pid") not in (None, old_pid)

        await wait_until(replaced, "the stuck worker's replacement", limit_s=30)
        assert pool.metrics.worker_stalls == 1 and pool.metrics.worker_restarts == 1
        assert not _alive(old_pid)
    finally:
        await pool.stop()


async def test_a_busy_supervisor_does_not_take_its_workers_for_stuck() -> None:
    """The supervisor's own loop held up for several stall periods (a machine busy with something else; here
    a blocking call on its loop): the workers' beats wait in the socket meanwhile, and none of them is
    killed for the supervisor's delay. Then a worker that is really stopped still is."""
    source = StaticTemplateSource(regtest_template())
    pool = WorkerPool(pool_cfg(), source, ListSink(), workers=2, stall_seconds=2.0)
    await pool.start("127.0.0.1", 0)
    try:
        async def reported() -> bool:
            return all(w.stats.get("pid") for w in pool.workers)

        await wait_until(reported, "the workers' reports")
        pids = [w.stats["pid"] for w in pool.workers]
        time.sleep(5.0)  # noqa: ASYNC251 - on purpose: the supervisor's loop held up, its next tick 5 s late
        await asyncio.sleep(0.1)
        reports = [w.reports for w in pool.workers]

        async def reporting_again() -> bool:
            return all(w.reports > n for w, n in zip(pool.workers, reports, strict=True))

        await wait_until(reporting_again, "the workers' next reports")
        assert pool.metrics.worker_stalls == 0 and [w.stats["pid"] for w in pool.workers] == pids
        assert all(_alive(p) for p in pids)
    finally:
        await pool.stop()


async def test_a_worker_slow_to_start_is_not_taken_for_stuck() -> None:
    """A replacement worker that takes longer than `stall_seconds` to import and bind (a loaded machine;
    here: stopped for a while right after it was started) is given READY_TIMEOUT, not killed as silent —
    before, the watchdog counted its start-up as silence and killed the replacement too."""
    source = StaticTemplateSource(regtest_template())
    pool = WorkerPool(pool_cfg(), source, ListSink(), workers=2, stall_seconds=2.0)
    await pool.start("127.0.0.1", 0)
    try:
        victim = pool.workers[1]
        old_proc = victim.proc
        assert old_proc is not None
        old_proc.kill()

        async def respawned() -> bool:
            return victim.proc is not old_proc

        await wait_until(respawned, "the replacement process")
        new_proc = victim.proc
        assert new_proc is not None and not victim.ready  # caught while it imports (~0.3 s of CPU at least)
        os.kill(new_proc.pid, signal.SIGSTOP)
        await asyncio.sleep(3.0)  # longer than stall_seconds: the slow start-up
        os.kill(new_proc.pid, signal.SIGCONT)

        async def serving() -> bool:
            return victim.ready and victim.stats.get("pid") == new_proc.pid

        await wait_until(serving, "the slow replacement's first report")
        assert pool.metrics.worker_stalls == 0 and pool.metrics.worker_restarts == 1
    finally:
        await pool.stop()


def test_front_end_and_worker_slices_never_overlap() -> None:
    """Every worker of every front-end, whatever the mix of counts (powers of two or not, single-process
    front-ends beside multi-worker ones), allocates from a range no other one touches."""
    from pithead.stratum.extranonce import ExtranonceAllocator
    from pithead.stratum.server.build import front_end_shard
    from pithead.stratum.server.workers import worker_shard

    def span(shard: tuple[int, int]) -> tuple[int, int]:
        index, count = shard
        low = 32 - (count - 1).bit_length()
        return index << low, (index + 1) << low

    for fronts in (1, 2, 3, 5):
        for counts in ((1,) * fronts, tuple(range(1, fronts + 1)), (3,) * fronts, (2, 7, 1, 4, 6)[:fronts]):
            spans = []
            for first, workers in enumerate(counts):
                fe = front_end_shard(PoolConfig(front_end=f"{first}/{fronts}"))
                shards = [fe] if workers == 1 else [worker_shard(fe, i, workers) for i in range(workers)]
                spans += [span(s) for s in shards]
                for s in shards:  # the allocator agrees with the span
                    a = ExtranonceAllocator(salt=first, shard=s)
                    v = int.from_bytes(a.allocate(), "big")
                    assert span(s)[0] <= v < span(s)[1]
            spans.sort()
            assert all(hi <= lo2 for (_, hi), (lo2, _) in itertools.pairwise(spans)), (fronts, counts)
    for bad in ("2/2", "1", "x/3", "0/0", "0/999"):
        with pytest.raises(ConfigError, match=r"pool\.front_end"):
            front_end_shard(PoolConfig(front_end=bad))


async def test_a_miner_cannot_resume_its_extranonce_on_another_front_end() -> None:
    """Front-ends 0/2 and 1/2 (two pools on one share bus): a miner that asks front-end 1 for the
    extranonce1 it had on front-end 0 gets another one (else it could send every share to both)."""
    from pithead.stratum.server.build import build_server

    pools = [build_server(pool_cfg(front_end=f"{i}/2"), StaticTemplateSource(regtest_template()), ListSink())
             for i in range(2)]
    ports = [(await p.start("127.0.0.1", 0))[1] for p in pools]
    clients: list[RawClient] = []
    try:
        a = await connect(ports[0])
        clients.append(a)
        await a.handshake(USER + "a")
        assert a.extranonce1[0] >> 7 == 0
        b = await connect(ports[1])
        clients.append(b)
        r = await b.call("mining.subscribe", ["cpuminer/2.5.1", a.extranonce1.hex()])
        got = bytes.fromhex(r["result"][1])
        assert got != a.extranonce1 and got[0] >> 7 == 1
        c = await connect(ports[0])  # on its own front-end the id would be resumed once freed
        clients.append(c)
        await a.close()
        clients.remove(a)
        await asyncio.sleep(0.1)
        r = await c.call("mining.subscribe", ["cpuminer/2.5.1", a.extranonce1.hex()])
        assert bytes.fromhex(r["result"][1]) == a.extranonce1
    finally:
        for cl in clients:
            await cl.close()
        for p in pools:
            await p.stop()

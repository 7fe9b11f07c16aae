"""The asyncio server over loopback with the raw JSON client: handshake and notify, shares judged and
recorded, new blocks → clean jobs for everyone, block candidates submitted and announced, bounds
(line length, junk floods → ban, per-IP limit, handshake timeout), one bad client never affecting
another, graceful shutdown."""

from __future__ import annotations

import asyncio

import pytest

from pithead.chain.address import address_to_script
from pithead.chain.merkle import coinbase_branch
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.v1.pool import BlockFound, PoolRules, PoolWorker
from pithead.template.interface import SubmitResult
from pithead.template.job import Job, build_job, payout_outputs
from pithead.template.sources.static import StaticTemplateSource

from .helpers import POOL_ADDRESS, SOLO_ADDRESS, regtest_template
from .rawclient import RawClient

HARD = 0x1D00FFFF  # shares at tiny difficulty are not blocks
USER = SOLO_ADDRESS + ".rig1"


class ListSink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


async def start_pool(mode: str = "solo", bits: int = HARD, limits: ServerLimits | None = None,
                     start_diff: float = 1e-5, refresh: float = 3600
                     ) -> tuple[PoolServer, StaticTemplateSource, ListSink, int]:
    source = StaticTemplateSource(regtest_template(bits=bits))
    sink = ListSink()
    rules = PoolRules(mode=mode, network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9),
                      start_difficulty=start_diff)
    pool_script = address_to_script(POOL_ADDRESS, REGTEST) if mode == "pool" else None
    server = PoolServer(rules=rules, source=source, sink=sink, pool_script=pool_script, limits=limits,
                        refresh_interval=refresh)
    _, port = await server.start("127.0.0.1", 0)
    return server, source, sink, port


#: The refresh interval of the refresh test: long enough that a loaded machine still pushes the four
#: mempool refreshes inside one interval (the test then waits one interval for the coalesced notify).
REFRESH_S = 5.0
#: Bounded waits only (a broken build fails instead of hanging); nothing here measures time.
WAIT_S = 30.0


async def test_handshake_share_and_new_block() -> None:
    server, source, sink, port = await start_pool(refresh=REFRESH_S)
    c = await RawClient.connect("127.0.0.1", port)
    try:
        await c.handshake(USER)
        job = await c.wait_notify(clean=True)
        r = await c.submit_one(USER, job, version_bits=0x2000)
        assert r == {"id": r["id"], "result": True, "error": None}
        (ev,) = [e for e in sink.events if isinstance(e, ShareEvent)]
        assert ev.accepted and ev.worker == USER and ev.address == SOLO_ADDRESS and ev.remote == "127.0.0.1"
        assert server.stats.workers[USER].accepted == 1
        assert server.stats.addresses[SOLO_ADDRESS].hashrate(server.clock())["1m"] > 0
        # a new block: a clean job, and the old job's shares are now stale (21)
        source.push(regtest_template(height=102, bits=HARD), new_block=True)
        new_job = await c.wait_notify(clean=True, wait_s=WAIT_S)
        assert new_job[0] != job[0] and new_job[1] != job[1]
        # refreshes of the same tip (new transactions), pushed at once within one refresh interval of the
        # new block: clean_jobs false, one notify for all four, carrying the newest
        prev = source.current().prev_hash  # type: ignore[union-attr]
        for n in (4, 5, 6, 7):
            newest = regtest_template(height=102, n_txs=n, bits=HARD, prev=prev)
            source.push(newest, new_block=False)
        r = await c.submit_one(USER, job)
        assert r["error"][0] == 21
        refresh = await c.wait_notify(clean=False, wait_s=WAIT_S)
        assert refresh[1] == new_job[1] and refresh[0] != new_job[0]
        assert refresh[4] == [b.hex() for b in coinbase_branch(newest.txids())]  # the newest of the four
        with pytest.raises(TimeoutError):  # and nothing more while the template stays the same
            await c.wait_notify(wait_s=REFRESH_S * 1.5)
        r = await c.submit_one(USER, new_job)  # the previous job of the same tip still counts
        assert r["result"] is True
    finally:
        await c.close()
        await server.stop()


@pytest.mark.parametrize("mode", ["solo", "pool"])
async def test_block_found_submitted_recorded_and_announced(mode: str) -> None:
    server, source, sink, port = await start_pool(mode=mode, bits=0x207FFFFF)
    c = await RawClient.connect("127.0.0.1", port)
    other = await RawClient.connect("127.0.0.1", port)
    try:
        await c.handshake(USER)
        await other.handshake(SOLO_ADDRESS + ".other")
        job = await c.wait_notify()
        r = await c.submit_one(USER, job, diff=1e-5)
        assert r["result"] is True
        msg = await other.wait_method("client.show_message")
        assert "found by " + USER in msg["params"][0]
        assert len(source.submitted) == 1
        (blk,) = [e for e in sink.events if isinstance(e, BlockEvent)]
        assert blk.accepted_by_node and blk.worker == USER and blk.height == 101
        from pithead.chain.block import Block

        block = Block.from_hex(source.submitted[0])
        payee = block.txs[0].outputs[0].script_pubkey
        expected = SOLO_ADDRESS if mode == "solo" else POOL_ADDRESS
        assert payee == address_to_script(expected, REGTEST)
        assert block.computed_merkle_root()[0] == block.header.merkle_root
        assert block.hash_hex() == blk.block_hash
    finally:
        await c.close()
        await other.close()
        await server.stop()


async def test_junk_flood_is_banned_and_others_unaffected() -> None:
    server, _, _, port = await start_pool()
    good = await RawClient.connect("127.0.0.1", port)
    bad = await RawClient.connect("127.0.0.1", port)
    try:
        await good.handshake(USER)
        job = await good.wait_notify()
        await bad.send_raw(b"garbage\n" * 50)
        await asyncio.wait_for(bad._task, 5)  # the server closed it
        assert server.admission.is_banned("127.0.0.1", server.clock())
        # the good miner still works
        r = await good.submit_one(USER, job)
        assert r["result"] is True
        # and a new connection from the banned IP is refused
        again = await RawClient.connect("127.0.0.1", port)
        await asyncio.wait_for(again._task, 5)
        await again.close()
    finally:
        await good.close()
        await bad.close()
        await server.stop()


async def test_overlong_line_closes_only_that_connection() -> None:
    server, _, _, port = await start_pool()
    good = await RawClient.connect("127.0.0.1", port)
    bad = await RawClient.connect("127.0.0.1", port)
    try:
        await good.handshake(USER)
        await bad.send_raw(b"{" * 100_000)
        await asyncio.wait_for(bad._task, 5)
        r = await good.call("mining.ping", [])
        assert r["result"] == "pong"
    finally:
        await good.close()
        await bad.close()
        await server.stop()


async def test_per_ip_limit_and_handshake_timeout() -> None:
    server, _, _, port = await start_pool(limits=ServerLimits(max_connections_per_ip=2, handshake_timeout=0.2))
    a = await RawClient.connect("127.0.0.1", port)
    b = await RawClient.connect("127.0.0.1", port)
    c = await RawClient.connect("127.0.0.1", port)
    try:
        await asyncio.wait_for(c._task, 5)  # third from the same IP: refused
        await asyncio.sleep(0.3)
        server.sweep(server.clock())  # neither a nor b subscribed in time
        await asyncio.wait_for(a._task, 5)
        await asyncio.wait_for(b._task, 5)
        assert len(server.connections) == 0
    finally:
        for x in (a, b, c):
            await x.close()
        await server.stop()


async def test_graceful_shutdown_closes_clients() -> None:
    server, _, _, port = await start_pool()
    c = await RawClient.connect("127.0.0.1", port)
    await c.handshake(USER)
    await server.stop()
    await asyncio.wait_for(c._task, 5)
    await c.close()


async def test_long_pipeline_answered_in_order_while_others_are_served() -> None:
    server, _, _, port = await start_pool()
    flooder = await RawClient.connect("127.0.0.1", port)
    other = await RawClient.connect("127.0.0.1", port)
    try:
        await flooder.handshake(USER)
        await other.handshake(SOLO_ADDRESS + ".other")
        futs = []
        arrival: list[int] = []
        loop = asyncio.get_running_loop()
        for i in range(1000, 3000):
            fut = loop.create_future()
            fut.add_done_callback(lambda f: arrival.append(f.result()["id"]))
            flooder.pending[i] = fut
            futs.append(fut)
        await flooder.send_raw(b"".join(b'{"id":%d,"method":"mining.ping","params":[]}\n' % i for i in range(1000, 3000)))
        r = await other.call("mining.ping", [])
        assert r["result"] == "pong"
        answers = await asyncio.wait_for(asyncio.gather(*futs), 20)
        assert all(a["result"] == "pong" for a in answers)
        await asyncio.sleep(0)
        assert arrival == list(range(1000, 3000))  # replies came back in request order
    finally:
        await flooder.close()
        await other.close()
        await server.stop()


async def test_unusable_template_is_skipped_and_the_pool_keeps_going() -> None:
    import dataclasses

    server, source, _, port = await start_pool()
    c = await RawClient.connect("127.0.0.1", port)
    try:
        await c.handshake(USER)
        job = await c.wait_notify(clean=True)
        source.push(dataclasses.replace(regtest_template(height=102, bits=HARD), coinbase_aux_flags=b"\0" * 95),
                    new_block=True)
        r = await c.submit_one(USER, job)  # still on the old (still current) work
        assert r["result"] is True
        source.push(regtest_template(height=103, bits=HARD), new_block=True)
        new = await c.wait_notify(clean=True)
        assert new[0] != job[0]
    finally:
        await c.close()
        await server.stop()


class GatedSource(StaticTemplateSource):
    """Holds every submitblock until the test opens the gate; answers `verdicts` in turn."""

    def __init__(self, verdicts: list[bool]) -> None:
        super().__init__(regtest_template(bits=HARD))
        self.gate = asyncio.Event()
        self.verdicts = verdicts

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        self.submitted.append(block_hex)
        await self.gate.wait()
        ok = self.verdicts.pop(0)
        return [SubmitResult("gated", None if ok else "inconclusive", ok)]


def _candidate(job: Job, tag: int) -> BlockFound:
    worker = PoolWorker(USER, SOLO_ADDRESS, address_to_script(SOLO_ADDRESS, REGTEST))
    block_hash = bytes([tag]) * 32
    return BlockFound(worker, job, bytes([tag]) * 80, block_hash)


@pytest.mark.parametrize("first_accepted", [True, False])
async def test_one_candidate_per_parent_at_the_nodes(first_accepted: bool) -> None:
    """Siblings (candidates on the same parent) wait for the first's verdict: accepted, they are stale without
    a node hearing of them (a demo chain at low share difficulty once queued thousands at the node, every
    verdict minutes late); refused, the next one goes. Every candidate is recorded, none lost."""
    source = GatedSource([first_accepted, True])
    sink = ListSink()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9))
    server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=3600)
    tpl = source.current()
    assert tpl is not None
    job = build_job(tpl, job_id="j1", outputs=payout_outputs(
        "solo", tpl, pool_script=None, worker_script=address_to_script(SOLO_ADDRESS, REGTEST)))
    for tag in (1, 2, 3):
        server.found_block(_candidate(job, tag), 100.0 + tag)
    await asyncio.sleep(0.05)
    assert len(source.submitted) == 1  # the siblings wait
    source.gate.set()
    for _ in range(200):
        if len([e for e in sink.events if isinstance(e, BlockEvent)]) == 3:
            break
        await asyncio.sleep(0.01)
    blocks = [e for e in sink.events if isinstance(e, BlockEvent)]
    assert len(blocks) == 3
    if first_accepted:  # the pool's block took the height: both siblings stale, unheard by the node
        assert len(source.submitted) == 1
        assert [b.accepted_by_node for b in blocks] == [True, False, False]
        assert [b.node_result for b in blocks[1:]] == ["stale", "stale"]
    else:  # refused: the next went, was accepted, and the last is stale
        assert len(source.submitted) == 2
        assert [b.accepted_by_node for b in blocks] == [False, True, False] and blocks[2].node_result == "stale"
    assert server.metrics.block_candidates == 3 and server.metrics.blocks_found == 1
    await server.stop()

"""Bad input from either side gets a clear error and never touches other machines.

From the pools (scripted in tests/proxy/harness.py `FakePool`, each in front of a well-behaved backup): a
pool that sends garbage, one whose extranonce2 leaves no room for the machines or is larger than any
firmware takes, one that never says a word, one that stops answering shares or dies with shares in flight
(those are counted as lost, per pool and per machine, never dropped), one that grants a version mask the
machines cannot roll. Each time the operator's status names the problem, the machines get the backup's
work on the connection they have, and their shares keep being accepted.

From the machines: an oversized extranonce2 and a line that is not JSON get error replies; the other machine
on the proxy keeps mining as if nothing happened.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from pithead.proxy.proxy import FarmProxy
from pithead.stratum.client.v2 import miner_work
from pithead.stratum.v1.client import NewWork
from pithead.stratum.v2.client import ChannelWork
from pithead.stratum.version import BIP323_MASK
from stratum.rawclient import RawClient

from .harness import QUICK, WAIT_S, FakePool, start_proxy, stop_all, wait_for

pytestmark = pytest.mark.timeout(120)


async def machine(proxy: FarmProxy, name: str, mask: str | None = "ffffffff") -> RawClient:
    m = await RawClient.connect("127.0.0.1", proxy.port)
    await m.handshake(name, mask=mask)
    return m


def on(proxy: FarmProxy, m: RawClient) -> str | None:
    rj = proxy.book.lookup(m.job[0]) if m.job is not None else None
    return rj.route.upstream if rj is not None else None


async def next_job_from(proxy: FarmProxy, m: RawClient, upstream: str) -> list[Any]:
    await wait_for(lambda: on(proxy, m) == upstream, f"a job from {upstream}")
    assert m.job is not None
    return m.job


def problem(proxy: FarmProxy, name: str) -> str:
    up = next(u for u in proxy.snapshot()["upstreams"] if u["name"] == name)
    return f"{up['state']}: {up['problem']} / {up['last_error']} / {' | '.join(up['recent_errors'])}"


@pytest.mark.parametrize(("behaviour", "said"), [
    ("garbage", "protocol error"),
    ("small-extranonce2", "gives extranonce2_size 3, the proxy needs 4"),
    ("huge-extranonce2", "extranonce2_size must be an integer"),
    ("silent", "no answer to the handshake within"),
])
async def test_a_pool_that_misbehaves_is_named_and_left(behaviour: str, said: str) -> None:
    bad, good = FakePool(behaviour), FakePool("good")
    await bad.start()
    await good.start()
    proxy = await start_proxy([bad.spec("bad", 0), good.spec("good", 1)])
    try:
        m = await machine(proxy, "rack3.m1")
        await next_job_from(proxy, m, "good")
        await wait_for(lambda: said in problem(proxy, "bad"), f"the status to say {said!r}")
        assert problem(proxy, "bad").startswith("unhealthy")
        reply = await m.submit_one("rack3.m1", m.job)  # type: ignore[arg-type]
        assert reply["error"] is None and reply["result"] is True, reply
        await wait_for(lambda: proxy.figures["good"].counts.accepted == 1, "the share accepted by the backup")
        assert not bad.submits
        await m.close()
    finally:
        await stop_all(proxy, bad, good)


@pytest.mark.parametrize(("behaviour", "connections", "moved_to"), [
    ("no-answers", 1, "good"),  # unanswered for answer_timeout: the pool is unhealthy, its connection dropped
    ("die-on-submit", 1, "good"),  # the pool's only connection dies: the backup takes the machines
    ("die-on-submit", 2, "bad"),  # one of its two dies: the machines on it move to the sibling connection
])
async def test_shares_a_dying_pool_never_answered_are_counted_and_the_machines_move(
        behaviour: str, connections: int, moved_to: str) -> None:
    bad, good = FakePool(behaviour), FakePool("good")
    await bad.start()
    await good.start()
    # a long hysteresis: once on the backup the machines stay there, whatever the bad pool does next
    settings = replace(QUICK, connections_per_upstream=connections, failback_after=600.0)
    proxy = await start_proxy([bad.spec("bad", 0), good.spec("good", 1)], settings)
    try:
        m1 = await machine(proxy, "rack4.m1")
        m2 = await machine(proxy, "rack4.m2")
        await next_job_from(proxy, m1, "bad")
        await next_job_from(proxy, m2, "bad")
        route = proxy.book.route_of(m1.extranonce1)
        assert route is not None
        m2_before = m2.notes.qsize()
        for _ in range(2):
            reply = await m1.submit_one("rack4.m1", m1.job)  # type: ignore[arg-type]
            assert reply["result"] is True, reply  # the proxy answers on its own judgement
        await wait_for(lambda: len(bad.submits) >= 1, "the share to reach the pool")
        counts = proxy.figures["bad"].counts
        await wait_for(lambda: counts.in_flight == 0, "every forwarded share accounted for")
        assert counts.forwarded == 2 and counts.accepted == 0 and sum(counts.lost.values()) == 2, counts
        mine = proxy.machines.machines["rack4.m1"].counts
        assert sum(mine.lost.values()) == 2 and mine.accepted == 0
        assert "rack4.m2" not in proxy.machines.machines  # the other machine lost nothing
        await wait_for(lambda: proxy.book.route_of(m1.extranonce1) not in (None, route), "m1 placed elsewhere")
        job = await next_job_from(proxy, m1, moved_to)
        assert job[8] is True  # a clean job on its new connection, no reconnect
        if connections == 2 and proxy.book.route_of(m2.extranonce1) is not route:
            assert m2.notes.qsize() == m2_before  # a machine on the other connection was left alone
        if moved_to == "good":
            await next_job_from(proxy, m2, "good")
            reply = await m2.submit_one("rack4.m2", m2.job)  # type: ignore[arg-type]
            assert reply["result"] is True
            await wait_for(lambda: proxy.figures["good"].counts.accepted == 1, "the backup to credit m2")
        await m1.close()
        await m2.close()
    finally:
        await stop_all(proxy, bad, good)


async def test_the_pools_version_mask_reaches_the_machines_and_one_they_cannot_use_turns_rolling_off() -> None:
    """A machine negotiated 1fffe000 through a pool that grants it; the backup grants 00000003 (no BIP320
    bit): after the failover the machine is told mask 00000000, mines without rolling, and is accepted; the
    status says why. A machine that configures afterwards is refused rolling at once."""
    primary, odd = FakePool("good"), FakePool("odd-mask")
    await primary.start()
    await odd.start()
    proxy = await start_proxy([primary.spec("primary", 0), odd.spec("odd", 1)])
    try:
        m = await machine(proxy, "rack5.m1")
        await next_job_from(proxy, m, "primary")
        reply = await m.submit_one("rack5.m1", m.job, version_bits=0x00002000)  # type: ignore[arg-type]
        assert reply["result"] is True, reply
        await wait_for(lambda: proxy.figures["primary"].counts.accepted == 1, "the rolled share accepted")
        assert primary.submits[0][5] == "00002000"  # the version bits go upstream

        await primary.stop()
        await next_job_from(proxy, m, "odd")
        masks = [n["params"][0] for n in list(m.notes._queue) if n["method"] == "mining.set_version_mask"]  # type: ignore[attr-defined]
        assert masks == ["00000000"], masks
        reply = await m.submit_one("rack5.m1", m.job)  # type: ignore[arg-type]
        assert reply["result"] is True, reply
        reply = await m.submit_one("rack5.m1", m.job, version_bits=0x00002000)  # type: ignore[arg-type]
        assert reply["error"] is not None  # rolling is off now
        await wait_for(lambda: proxy.figures["odd"].counts.accepted == 1, "the odd pool to credit the plain share")
        odd_status = next(u for u in proxy.snapshot()["upstreams"] if u["name"] == "odd")
        assert "version rolling is off" in odd_status["version_rolling"], odd_status

        late = await RawClient.connect("127.0.0.1", proxy.port)
        r = await late.call("mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}])
        assert r["result"]["version-rolling"] is False, r
        await late.close()
        await m.close()
    finally:
        await stop_all(proxy, primary, odd)


async def test_a_machines_bad_input_touches_no_other_machine() -> None:
    pool = FakePool("good")
    await pool.start()
    proxy = await start_proxy([pool.spec("pool", 0)])
    try:
        bad = await machine(proxy, "rack6.bad")
        good = await machine(proxy, "rack6.good")
        await next_job_from(proxy, bad, "pool")
        await next_job_from(proxy, good, "pool")
        job = bad.job
        assert job is not None
        r = await bad.call("mining.submit", ["rack6.bad", job[0], "00" * 9, job[7], "00000000"])  # 9-byte extranonce2
        assert r["error"] is not None and r["error"][0] == 20, r
        r = await bad.call("mining.submit", ["rack6.bad", job[0], "zz", job[7], "00000000"])
        assert r["error"] is not None, r
        await bad.send_raw(b"this is not json\n")
        r = await bad.call("mining.ping", [])
        assert r["result"] == "pong"  # still served after the junk
        for _ in range(3):
            reply = await good.submit_one("rack6.good", good.job)  # type: ignore[arg-type]
            assert reply["result"] is True, reply
        await wait_for(lambda: proxy.figures["pool"].counts.accepted == 3, "the good machine's shares upstream")
        assert not any(p[2] == "00" * 9 for p in pool.submits)
        assert proxy.server.stats.workers["rack6.bad"].rejected  # counted against the bad machine only
        assert not proxy.server.stats.workers["rack6.good"].rejected
        await bad.close()
        await good.close()
    finally:
        await stop_all(proxy, pool)


async def test_garbage_from_a_pool_never_reaches_a_machine() -> None:
    """The machines only ever see lines the proxy wrote: every line a machine gets is valid JSON."""
    bad, good = FakePool("garbage"), FakePool("good")
    await bad.start()
    await good.start()
    proxy = await start_proxy([bad.spec("bad", 0), good.spec("good", 1)])
    try:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        w.write(b'{"id":1,"method":"mining.subscribe","params":[]}\n{"id":2,"method":"mining.authorize","params":["x","x"]}\n')
        await w.drain()
        seen = 0
        while seen < 4:  # two replies, set_difficulty, the first notify
            line = await asyncio.wait_for(r.readline(), 30)
            assert line, "the proxy closed the machine's connection"
            orjson.loads(line)
            seen += 1
        w.close()
    finally:
        await stop_all(proxy, bad, good)


async def test_a_machines_handshake_never_waits_on_a_pool() -> None:
    """No pool is up: the machine still subscribes and authorizes at once (its tag is the proxy's, not a
    pool's), is given a difficulty, and gets its first job as soon as a pool comes up."""
    later = FakePool("good")
    await later.start()
    await later.stop()  # its port is known and nobody answers there yet
    silent = FakePool("silent")
    await silent.start()
    proxy = await start_proxy([later.spec("later", 0), silent.spec("silent", 1)])
    try:
        m = await RawClient.connect("127.0.0.1", proxy.port)
        await asyncio.wait_for(m.handshake("rack10.m1"), WAIT_S)  # no pool is up: the proxy alone answers
        await m.wait_method("mining.set_difficulty")
        assert m.job is None and proxy.book.active is None
        await later.start()
        await next_job_from(proxy, m, "later")
        reply = await m.submit_one("rack10.m1", m.job)  # type: ignore[arg-type]
        assert reply["result"] is True, reply
        await m.close()
    finally:
        await stop_all(proxy, later, silent)


async def test_a_job_that_forbids_version_rolling_stops_the_machines_rolling() -> None:
    """An SV2 pool's extended job with version_rolling_allowed = false is work with mask 0 (`miner_work`):
    before it goes out the machines are told mask 00000000, a rolled share on it is refused to the machine
    with a clear error (not accepted and then lost upstream, sv2-apps #650), a plain one is forwarded and
    credited; a later job that allows rolling gives the machines their mask back. The job is the pool's
    own, delivered as the V2 link delivers one (a `NewWork` on the connection)."""
    for allowed, mask in ((False, 0), (True, BIP323_MASK)):
        job = ChannelWork(1, 7, b"\0" * 32, 0x20000000, 0x207FFFFF, 0, 1 << 250, allowed, merkle_root=b"\x11" * 32)
        assert miner_work(job, True, 1).version_mask == mask

    pool = FakePool("good")
    await pool.start()
    proxy = await start_proxy([pool.spec("v2ish", 0)])
    try:
        m = await machine(proxy, "rack6.m1")
        await next_job_from(proxy, m, "v2ish")
        up = proxy.upstreams["v2ish"]
        route = proxy.book.route_of(m.extranonce1)
        assert route is not None and route.current is not None
        work = route.current.work
        assert work.version_mask & 0x1FFFE000

        proxy._on_upstream(up, route.key[1], NewWork(replace(work, version_mask=0), False))
        await wait_for(lambda: any(n["method"] == "mining.set_version_mask" for n in list(m.notes._queue)),  # type: ignore[attr-defined]
                       "the machine told to stop rolling")
        masks = [n["params"][0] for n in list(m.notes._queue) if n["method"] == "mining.set_version_mask"]  # type: ignore[attr-defined]
        assert masks == ["00000000"], masks
        job = await next_job_from(proxy, m, "v2ish")
        rolled = await m.submit_one("rack6.m1", job, version_bits=0x00002000)
        assert rolled["result"] is not True and "version" in str(rolled["error"]).lower(), rolled
        plain = await m.submit_one("rack6.m1", job)
        assert plain["result"] is True, plain
        await wait_for(lambda: proxy.figures["v2ish"].counts.accepted == 1, "the plain share credited")
        assert not proxy.figures["v2ish"].counts.lost

        proxy._on_upstream(up, route.key[1], NewWork(work, False))  # rolling allowed again
        await wait_for(lambda: [n["params"][0] for n in list(m.notes._queue)  # type: ignore[attr-defined]
                                if n["method"] == "mining.set_version_mask"][-1:] == ["1fffe000"],
                       "the machine's mask given back")
        await m.close()
    finally:
        await stop_all(proxy, pool)

"""The misbehaviour score per address (issue 16, finding 5's last gap): an attacker who opens many
connections from one address and spends less than a connection's ban score on each is banned all the
same, while an honest miner from another address keeps mining; and a farm of honest miners behind one
address, each with a few shares of in-flight or stale work, is never banned."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from pithead.stratum.server.bans import ADDRESS_BAN_SCORE, AddressScores, Admission
from pithead.stratum.server.workers import WorkerPool
from pithead.stratum.v1.pool import BAN_SCORE, SCORE_PER_UNKNOWN_JOB
from pithead.template.sources.static import StaticTemplateSource

from .helpers import regtest_template
from .rawclient import RawClient
from .test_e2e_node import ListSink, wait_until
from .test_server import HARD, USER, start_pool
from .test_workers import pool_cfg

WAIT_S = 30.0


# --- the score table ----------------------------------------------------------------------------------------


def test_a_key_is_banned_when_its_score_reaches_the_limit_and_the_score_decays() -> None:
    scores = AddressScores(ban_score=300.0, per_connection=10.0, decay_per_second=1.0)
    assert not scores.add("10.0.0.1", 299.0, now=100.0)
    assert scores.score("10.0.0.1", 100.0) == 299.0
    assert scores.score("10.0.0.1", 150.0) == 249.0  # 1 per second forgiven
    assert not scores.add("10.0.0.1", 50.0, now=150.0)  # 299 at 150: below 300
    assert scores.add("10.0.0.1", 1.0, now=150.0)  # 300: the ban
    assert scores.score("10.0.0.1", 150.0) == 0.0  # and the score starts again
    assert scores.score("10.0.0.2", 150.0) == 0.0  # another key owes nothing


def test_each_open_connection_raises_its_keys_limit() -> None:
    scores = AddressScores(ban_score=300.0, per_connection=10.0, decay_per_second=0.0)
    for _ in range(50):
        scores.connected("10.0.0.1")
    assert scores.limit("10.0.0.1") == 800.0
    assert not scores.add("10.0.0.1", 799.0, now=0.0)
    for _ in range(50):
        scores.disconnected("10.0.0.1")
    assert scores.limit("10.0.0.1") == 300.0  # and nothing is kept for a key with no connection
    assert scores.add("10.0.0.1", 1.0, now=0.0)


def test_the_table_is_bounded_forgetting_the_least_recently_penalised() -> None:
    scores = AddressScores(ban_score=300.0, decay_per_second=0.0, max_keys=3)
    for i in range(3):
        scores.add(f"10.0.0.{i}", 100.0, now=0.0)
    scores.add("10.0.0.0", 100.0, now=1.0)  # touched again: now the most recent
    scores.add("10.0.0.9", 100.0, now=2.0)  # a fourth key: the least recently penalised (.1) goes
    assert len(scores) == 3
    assert scores.score("10.0.0.1", 2.0) == 0.0
    assert scores.score("10.0.0.0", 2.0) == 200.0 and scores.score("10.0.0.2", 2.0) == 100.0


def test_admission_scores_an_ipv6_host_by_its_prefix() -> None:
    adm = Admission(max_per_ip=10, ipv6_prefix=64)
    assert adm.admit("2001:db8:1:2::1", 0.0) is None
    assert not adm.penalize("2001:db8:1:2::1", 200.0, 0.0)
    # another address of the same /64 adds to the same score; the limit counts the open connection
    assert not adm.penalize("2001:db8:1:2:ffff::7", 105.0, 0.0)
    assert adm.penalize("2001:db8:1:2:ffff::7", 5.0, 0.0)
    assert not adm.penalize("2001:db8:1:3::1", 299.0, 0.0)  # the next /64 is someone else
    adm.release("2001:db8:1:2::1")
    assert adm.scores.limit(adm.bans.key("2001:db8:1:2::1")) == ADDRESS_BAN_SCORE


# --- the live server ------------------------------------------------------------------------------------------


async def _connect(port: int, source_ip: str) -> RawClient:
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_ip, 0))
    return RawClient(r, w)


async def _junk_connection(port: int, source_ip: str, job_ntime: str, submits: int) -> bool:
    """Subscribe, authorize, send `submits` shares for job ids never sent, read the replies, close.
    False when the server refused the connection (it closed it before answering anything)."""
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_ip, 0))
    lines = [{"id": 1, "method": "mining.subscribe", "params": ["junk/1"]},
             {"id": 2, "method": "mining.authorize", "params": [USER, "x"]}]
    lines += [{"id": 3 + i, "method": "mining.submit", "params": [USER, f"never{i}", "00000000", job_ntime,
                                                                   "00000000"]} for i in range(submits)]
    replies = 0
    try:
        w.write(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        await w.drain()
        while replies < len(lines):
            line = await asyncio.wait_for(r.readline(), WAIT_S)
            if not line:
                break
            msg = orjson.loads(line)
            if msg.get("id") is not None:
                replies += 1
    except ConnectionError:
        pass
    finally:
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()
    return replies > 0


async def test_junk_spread_over_many_connections_from_one_address_is_banned() -> None:
    """200 connections from one address, each with a few shares for job ids never sent (far below a
    connection's ban score) and then closed: before, never banned; now the address is banned once their sum
    reaches its score, later connections are refused, and a miner from another address keeps mining."""
    submits = 5
    assert submits * SCORE_PER_UNKNOWN_JOB < BAN_SCORE  # no connection earns a ban of its own
    server, _, _, port = await start_pool()
    honest = await _connect(port, "127.0.0.2")
    try:
        await honest.handshake(USER)
        job = await honest.wait_notify()
        answered = [await _junk_connection(port, "127.0.0.1", job[7], submits) for _ in range(200)]
        assert server.admission.is_banned("127.0.0.1", server.clock())
        assert not server.admission.is_banned("127.0.0.2", server.clock())
        first_refused = answered.index(False)
        # banned near its score (a connection's allowance and the decay of a slow run give a little more)
        per_connection = submits * SCORE_PER_UNKNOWN_JOB
        assert ADDRESS_BAN_SCORE / per_connection <= first_refused < 3 * ADDRESS_BAN_SCORE / per_connection, \
            first_refused
        assert not any(answered[first_refused:])  # refused from then on
        assert (await honest.submit_one(USER, job))["result"] is True
        fresh = await _connect(port, "127.0.0.2")  # and another address still gets in
        try:
            await fresh.handshake(USER)
            assert (await fresh.submit_one(USER, await fresh.wait_notify()))["result"] is True
        finally:
            await fresh.close()
    finally:
        await honest.close()
        await server.stop()


async def test_a_farm_behind_one_address_with_in_flight_and_stale_work_is_never_banned() -> None:
    """A farm of `miners` behind one NAT address: each sends three shares of work from before a restart
    (job ids its connection was never sent: 360 in all, more than the address's base score) and a stale
    share after a new block; none is banned, and they all keep mining."""
    miners = 120
    server, source, _, port = await start_pool()
    farm: list[RawClient] = []
    try:
        for _ in range(miners):
            c = await _connect(port, "127.0.0.3")
            farm.append(c)
            await c.handshake(USER)
        jobs = [await c.wait_notify() for c in farm]
        for c, job in zip(farm, jobs, strict=True):
            for i in range(3):  # in-flight work from before the reconnect
                r = await c.call("mining.submit", [USER, f"before{i}", "00000000", job[7], "00000000"])
                assert r["error"][0] == 21
        assert 3 * miners * SCORE_PER_UNKNOWN_JOB > ADDRESS_BAN_SCORE  # the open connections are what save it
        source.push(regtest_template(height=102, bits=HARD), new_block=True)
        for c, job in zip(farm, jobs, strict=True):
            await c.wait_notify(clean=True, wait_s=WAIT_S)
            r = await c.call("mining.submit", [USER, job[0], "00000000", job[7], "00000000"])
            assert r["error"] is not None and r["error"][0] == 21  # stale: the block changed
        assert not server.admission.is_banned("127.0.0.3", server.clock())
        assert server.admission.connections("127.0.0.3") == miners  # nobody was dropped
        for c in farm[:: miners // 4]:  # and they mine on (a few of them: solving costs time here)
            assert c.job is not None
            assert (await c.submit_one(USER, c.job))["result"] is True
    finally:
        for c in farm:
            await c.close()
        await server.stop()


@pytest.mark.timeout(120)
async def test_each_worker_of_the_multi_process_pool_scores_what_it_sees_and_its_ban_holds_on_all() -> None:
    """The same churn against the pool on two worker processes (the kernel spreads the connections): a
    worker whose share of them reaches the address's score bans it, the supervisor spreads the ban, and
    every worker refuses the address while a miner from another address keeps mining."""
    pool = WorkerPool(pool_cfg(ban_seconds=60.0), StaticTemplateSource(regtest_template()), ListSink(), workers=2)
    _, port = await pool.start("127.0.0.1", 0)
    honest = await _connect(port, "127.0.0.2")
    try:
        await honest.handshake(USER)
        job = await honest.wait_notify()
        for _ in range(300):  # 5 points each: ~1,500 over two workers, each bans past ~310 of its own
            await _junk_connection(port, "127.0.0.79", job[7], 5)

        async def refused_everywhere() -> bool:
            # fresh connections (different source ports → both workers): every one closed unanswered
            return not any([await _junk_connection(port, "127.0.0.79", job[7], 1) for _ in range(8)])

        await wait_until(refused_everywhere, "the address's ban on every worker", limit_s=20)
        assert honest.job is not None
        assert (await honest.submit_one(USER, honest.job))["result"] is True
    finally:
        await honest.close()
        await pool.stop()

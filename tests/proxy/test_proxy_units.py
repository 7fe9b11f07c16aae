"""The farm proxy's pure parts: the extranonce split, the relayed jobs and their routes, failover.

The split is checked on real coinbase bytes: a machine's coinbase (coinb1' ‖ tag ‖ extranonce2 ‖ coinb2) is
byte for byte the upstream's (coinb1 ‖ extranonce1 ‖ padding ‖ tag ‖ extranonce2 ‖ coinb2), and no two tags
give one coinbase. The book relays a job with a short local id, the pool's difficulty as its ceiling and its
notify lines; clean_jobs and a lost connection make jobs stale; machines go to the least loaded connection of
the active pool and move on a switch. Failover: at once away from an unhealthy pool, back only after the
hysteresis, the operator's pin and drain, nothing marked failed for good.
"""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.hashes import sha256d
from pithead.proxy.extranonce import ExtranonceTooSmall, split
from pithead.proxy.failover import MAX_REJECT_RUN, Failover, UpstreamHealth, UpstreamState
from pithead.proxy.jobs import MAX_JOBS_PER_ROUTE, RelayBook, coinbase_height
from pithead.stratum.difficulty import VarDiff, VarDiffConfig
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v1.work import MinerWork, NotifiedJob
from pithead.template.job import MAX_JOB_ID_LENGTH
from stratum.helpers import regtest_template, solo_script


def upstream_job(job_id: str = "abc123", clean: bool = True, ntime: int = 1_700_000_000) -> NotifiedJob:
    """A real coinbase split as a pool sends it (pithead's own job book, height 101)."""
    book = JobBook(mode="pool", pool_script=solo_script(), extranonce2_size=8)
    book.new_template(regtest_template())
    ij = book.job_for(None)
    assert ij is not None
    params = ij.job.notify_params(clean)
    params[0] = job_id
    params[7] = f"{ntime:08x}"
    return NotifiedJob.from_notify(params)


def work(job: NotifiedJob | None = None, en1: bytes = b"\x01\x02\x03\x04", en2_size: int = 8,
         difficulty: float = 512.0, mask: int = 0x1FFFE000) -> MinerWork:
    return MinerWork(job or upstream_job(), en1, en2_size, difficulty, mask)


# --- the split -------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)  # no deadline: the machine is shared and loaded
@given(en2_size=st.integers(4, 16), tag_bytes=st.integers(1, 4), machine=st.integers(2, 8),
       tag=st.binary(min_size=4, max_size=4), en2=st.binary(min_size=8, max_size=8))
def test_a_machines_coinbase_is_the_upstreams(en2_size: int, tag_bytes: int, machine: int, tag: bytes,
                                               en2: bytes) -> None:
    job = upstream_job()
    en1 = bytes.fromhex("deadbeef")
    if en2_size < tag_bytes + machine:
        with pytest.raises(ExtranonceTooSmall, match="lower"):
            split(en1, en2_size, tag_bytes, machine)
        return
    sp = split(en1, en2_size, tag_bytes, machine)
    t, e = tag[:tag_bytes], en2[:machine]
    machine_side = sp.coinb1(job.coinb1) + t + e + job.coinb2
    upstream_side = job.coinb1 + en1 + sp.upstream_extranonce2(t, e) + job.coinb2
    assert machine_side == upstream_side
    assert len(sp.upstream_extranonce2(t, e)) == en2_size


def test_distinct_tags_never_share_a_coinbase() -> None:
    """Fixed-width tags: every (tag, extranonce2) pair gives its own coinbase (slush's 1-or-2-byte tags would
    not: tag 01 + en2 02.. equals tag 0102 + ..)."""
    job = upstream_job()
    sp = split(b"\xaa" * 4, 4, 1, 3)
    seen = set()
    for tag, en2 in itertools.product(range(16), range(64)):
        cb = sp.coinb1(job.coinb1) + bytes([tag]) + en2.to_bytes(3, "big") + job.coinb2
        seen.add(sha256d(cb))
    assert len(seen) == 16 * 64
    with pytest.raises(ValueError, match="do not fit"):
        sp.upstream_extranonce2(b"\x01\x02", b"\x00\x00\x00")


def test_the_height_comes_from_the_coinbase() -> None:
    assert coinbase_height(upstream_job().coinb1) == 101
    assert coinbase_height(b"\x01" * 10) == 0


# --- the book --------------------------------------------------------------------------------------------


def ready_book(connections: int = 2, upstream: str = "a") -> RelayBook:
    book = RelayBook(tag_bytes=2, machine_extranonce2_size=2)
    for i in range(connections):
        book.open_route((upstream, i))
        book.route_ready((upstream, i), 0x1FFFE000)
    book.switch(upstream)
    return book


def test_a_relayed_job_is_the_upstreams_for_the_machine() -> None:
    book = ready_book(1)
    w = work()
    rj = book.relay(("a", 0), w, clean=True, now=100.0)
    job = rj.issued.job
    assert len(job.job_id) <= MAX_JOB_ID_LENGTH and job.job_id != w.job.job_id
    assert job.coinbase.coinb1 == w.job.coinb1 + w.extranonce1 + bytes(8 - 2 - 2)
    assert job.coinbase.extranonce1_size == 2 and job.coinbase.extranonce2_size == 2
    assert rj.issued.max_difficulty == 512.0 and job.height == 101 and job.mintime == w.job.ntime
    line = orjson.loads(rj.issued.line_clean)
    assert line["method"] == "mining.notify" and line["params"][0] == job.job_id and line["params"][8] is True
    assert book.lookup(job.job_id) is rj and book.get(job.job_id) is rj.issued
    assert book.job_for(extranonce1=b"\x00\x01") is rj.issued  # the machine is placed and gets it
    assert not book.is_stale(rj.issued)


def test_clean_jobs_and_lost_connections_make_jobs_stale() -> None:
    book = ready_book(1)
    first = book.relay(("a", 0), work(upstream_job("j1")), clean=True, now=1.0)
    update = book.relay(("a", 0), work(upstream_job("j2", clean=False)), clean=False, now=2.0)
    assert not book.is_stale(first.issued) and not book.is_stale(update.issued)  # the pool keeps both
    fresh = book.relay(("a", 0), work(upstream_job("j3")), clean=True, now=3.0)
    assert book.is_stale(first.issued) and book.is_stale(update.issued) and not book.is_stale(fresh.issued)
    assert book.job_for(extranonce1=b"\x00\x01") is fresh.issued
    moved = book.close_route(("a", 0))
    assert moved == [b"\x00\x01"] and book.is_stale(fresh.issued)
    assert book.job_for(extranonce1=b"\x00\x01") is None  # nowhere to go
    book.open_route(("a", 0))  # a new connection: a bounded window of jobs
    book.route_ready(("a", 0), 0)
    for i in range(MAX_JOBS_PER_ROUTE + 5):
        last = book.relay(("a", 0), work(upstream_job(f"k{i}", clean=False)), clean=False, now=10.0 + i)
    assert book.lookup(fresh.issued.job.job_id) is None  # the old connection's jobs are forgotten
    assert len(book) == MAX_JOBS_PER_ROUTE and book.lookup(last.issued.job.job_id) is last


def test_machines_go_to_the_least_loaded_connection_and_move_on_a_switch() -> None:
    book = ready_book(2)
    for i in range(2):
        book.relay(("a", i), work(), clean=True, now=1.0)
    tags = [i.to_bytes(2, "big") for i in range(10)]
    placed = [book.route_for(t) for t in tags]
    assert {r.key for r in placed if r is not None} == {("a", 0), ("a", 1)}
    assert sorted(r.machines for r in book.routes.values()) == [5, 5]
    assert book.route_for(tags[0]) is placed[0]  # it stays where it is
    book.open_route(("b", 0))
    book.route_ready(("b", 0), 0)
    book.switch("b")
    assert all(book.route_of(t) is None for t in tags)  # placed again as each asks
    assert book.route_for(tags[0]) is book.routes[("b", 0)]
    book.unplace(tags[0])
    assert book.routes[("b", 0)].machines == 0


def test_a_keepalive_resends_the_job_with_a_later_ntime() -> None:
    book = ready_book(1)
    w = work()
    rj = book.relay(("a", 0), w, clean=True, now=100.0)
    ka = book.keepalive(("a", 0), now=135.0)
    assert ka is not None and ka.keepalive and ka.work is w
    assert ka.issued.job.job_id != rj.issued.job.job_id and ka.issued.job.ntime == w.job.ntime + 35
    assert ka.issued.job.mintime == w.job.ntime and not book.is_stale(rj.issued)
    assert book.routes[("a", 0)].last_job_at == 135.0
    assert book.keepalive(("x", 0), now=1.0) is None
    # a header judged on one local id is a duplicate on the other: both are the pool's one job
    key = (b"\x00\x01", b"\x00\x02", w.job.ntime + 40, 7, 0)
    book.remember(rj.issued.job.job_id, key)
    assert key in book.seen(ka.issued.job.job_id)
    other = book.relay(("a", 0), work(upstream_job("other")), clean=False, now=140.0)
    assert key not in book.seen(other.issued.job.job_id)


def test_a_pool_with_too_little_extranonce2_is_refused() -> None:
    book = ready_book(1)
    with pytest.raises(ExtranonceTooSmall):
        book.relay(("a", 0), work(en2_size=3), clean=True, now=1.0)


# --- vardiff's ceiling -----------------------------------------------------------------------------------


def test_the_ceiling_lowers_and_bounds_vardiff() -> None:
    vd = VarDiff(VarDiffConfig(10.0, 1e-3, 1e6), 1000.0, 0.0)
    assert vd.set_ceiling(256.0, 1.0) == 256.0 and vd.difficulty == 256.0
    assert vd.set_ceiling(512.0, 2.0) is None and vd.difficulty == 256.0  # a higher ceiling changes nothing
    assert vd.set_ceiling(1.5, 3.0) == 1.5  # never rounded over the ceiling
    vd.set_floor(100.0, 4.0)
    assert vd.difficulty == 1.5  # the ceiling wins over a floor above it
    assert vd.suggest(10_000.0, 5.0) is None and vd.difficulty == 1.5
    with pytest.raises(ValueError):
        vd.set_ceiling(0.0, 6.0)


# --- failover --------------------------------------------------------------------------------------------


def healthy(h: UpstreamHealth, now: float) -> None:
    h.ready_connections = 1
    h.last_job_at = now
    h.last_error = None


def chooser(**kw: float) -> tuple[Failover, UpstreamHealth, UpstreamHealth]:
    a, b = UpstreamHealth("a", 0, 0), UpstreamHealth("b", 1, 1)
    f = Failover([a, b], failback_after=kw.get("failback", 60.0), stale_after=kw.get("stale", 120.0),
                 answer_timeout=10.0, start_grace=kw.get("grace", 3.0), started_at=0.0)
    return f, a, b


def test_failover_at_once_and_failback_after_the_hysteresis() -> None:
    f, a, b = chooser()
    healthy(b, 0.5)
    assert f.evaluate(0.5).active is None  # at start, the primary may still come up
    healthy(a, 1.0)
    assert f.evaluate(1.0).active == "a"
    a.ready_connections = 0
    a.last_error = "closed by pool"
    d = f.evaluate(2.0)
    assert (d.active, d.previous) == ("b", "a") and "closed by pool" in d.reason
    healthy(a, 3.0)
    assert f.evaluate(3.0).active == "b" and "waiting" in f.last_reason
    healthy(a, 62.0)  # still healthy, jobs keep coming
    healthy(b, 62.0)
    assert f.evaluate(62.0).active == "b"
    assert f.evaluate(63.5).active == "a" and f.switches == 2  # 60 s healthy without a break


def test_a_stale_or_silent_or_rejecting_pool_is_unhealthy() -> None:
    f, a, b = chooser(stale=120.0)
    healthy(a, 0.0)
    healthy(b, 0.0)
    f.evaluate(0.0)
    assert f.state("a", 0.0) is UpstreamState.ACTIVE and f.state("b", 0.0) is UpstreamState.STANDBY
    assert "no new job" in (f.problem("a", 121.0) or "")
    a.oldest_unanswered_at = 5.0
    assert "unanswered" in (f.problem("a", 16.0) or "")
    a.oldest_unanswered_at = None
    a.reject_run = MAX_REJECT_RUN
    assert "rejected in a row" in (f.problem("a", 1.0) or "")
    healthy(b, 1.0)
    assert f.evaluate(1.0).active == "b" and a.reject_run == 0  # tried again later, not failed for good


def test_the_operator_pins_and_drains() -> None:
    f, a, b = chooser()
    healthy(a, 0.0)
    healthy(b, 0.0)
    assert f.evaluate(0.0).active == "a"
    f.pin("b")
    assert f.evaluate(1.0).active == "b"  # at once: the operator asked
    f.unpin()
    assert f.evaluate(2.0).active == "b"  # a is better but must wait out the hysteresis
    f.drain("b")
    assert f.evaluate(3.0).active == "a" and f.state("b", 3.0) is UpstreamState.DRAINING
    f.drain("a")
    assert f.evaluate(4.0).active == "a" and "no healthy" in f.last_reason  # nowhere to go: stays
    f.resume("b")
    assert f.evaluate(5.0).active == "b"
    with pytest.raises(KeyError, match="no upstream named"):
        f.pin("c")

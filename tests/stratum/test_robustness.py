"""Hostile input never crashes a session (only typed replies come out), plus the pure server parts:
share statistics windows and per-IP admission/bans."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.params import REGTEST
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.bans import Admission
from pithead.stratum.server.stats import HASHES_PER_DIFF1, DecayingRate, StatsBook
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v1.pool import METHODS, PoolRules, PoolSession, PoolState

from .helpers import SOLO_ADDRESS, regtest_template

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
              st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
methods = st.one_of(st.sampled_from([m for m in METHODS if not m.startswith("<")]), st.text(max_size=20))
messages = st.one_of(
    st.builds(lambda i, m, p: json.dumps({"id": i, "method": m, "params": p}).encode(),
              st.one_of(st.none(), st.integers(0, 2**40), st.text(max_size=8)), methods,
              st.lists(json_values, max_size=7)),
    st.binary(max_size=200),
)


def _session() -> PoolSession:
    book = JobBook(mode="solo")
    book.new_template(regtest_template())
    return PoolSession(PoolRules(mode="solo", network=REGTEST), book, ExtranonceAllocator(), 1_700_000_000.0)


@settings(max_examples=120, deadline=None)
@given(st.lists(messages, max_size=12))
def test_random_messages_only_produce_well_formed_replies(msgs: list[bytes]) -> None:
    s = _session()
    s.receive(b'{"id":1,"method":"mining.subscribe","params":[]}\n', 1_700_000_000.0)
    s.receive(orjson.dumps({"id": 2, "method": "mining.authorize", "params": [SOLO_ADDRESS, "x"]}) + b"\n",
              1_700_000_000.0)
    for m in msgs:
        s.receive(m.replace(b"\n", b" ") + b"\n", 1_700_000_000.0)
    for line in s.data_to_send().splitlines():
        obj = orjson.loads(line)
        if obj.get("method") is None:
            assert set(obj) == {"id", "result", "error"}
            assert obj["error"] is None or (len(obj["error"]) == 3 and obj["error"][0] in range(20, 26))
    assert s.state in (PoolState.READY, PoolState.CLOSED)


def test_decaying_rate_and_hashrate() -> None:
    w = DecayingRate(60.0)
    for t in range(0, 600):
        w.add(1000.0 + t, 2.0)  # 2 per second for ten minutes
    assert abs(w.rate(1599.0) - 2.0) < 0.05
    assert w.rate(1599.0 + 600) < 0.001  # ten quiet minutes later: gone
    young = DecayingRate(3600.0)
    for t in range(0, 60):
        young.add(t, 1.0)
    assert abs(young.rate(59.0) - 1.0) < 0.05  # a one-minute-old series is not diluted by the hour
    book = StatsBook()
    for t in range(600):
        book.record(2000.0 + t, "a.rig", "a", True, 100.0, 150.0 + t, None)
    book.record(2600.0, "a.rig", "a", False, 100.0, 0.0, "low-difficulty")
    hr = book.workers["a.rig"].hashrate(2599.0)
    assert abs(hr["1m"] - 100.0 * HASHES_PER_DIFF1 / 1.0) / hr["1m"] < 0.05  # 1 share/s at diff 100
    assert abs(hr["1h"] - hr["1m"]) / hr["1m"] < 0.1  # ten minutes old: the hour estimate is corrected
    snap = book.addresses["a"].snapshot(2600.0)
    assert snap["accepted"] == 600 and snap["rejected"] == {"low-difficulty": 1} and snap["best_share"] == 749.0
    assert snap["last_share"] == 2600.0


def test_admission_limits_and_bans() -> None:
    a = Admission(max_per_ip=2, ban_seconds=10)
    assert a.admit("1.2.3.4", 0) is None and a.admit("1.2.3.4", 0) is None
    assert a.admit("1.2.3.4", 0) is not None
    a.release("1.2.3.4")
    assert a.admit("1.2.3.4", 0) is None
    a.ban("5.6.7.8", 100)
    assert a.admit("5.6.7.8", 105) == "banned" and a.admit("5.6.7.8", 111) is None


def test_a_ban_handed_on_keeps_its_end_and_never_shortens_one_in_force() -> None:
    """A restarted pool worker gets the pool's bans with the time they have left, not fresh ones."""
    a = Admission(max_per_ip=2, ban_seconds=600)
    a.ban("9.9.9.9", 1000, seconds=30)  # 30 s were left of it
    assert a.is_banned("9.9.9.9", 1029) and not a.is_banned("9.9.9.9", 1031)
    a.ban("8.8.8.8", 1000)  # a full ban
    a.ban("8.8.8.8", 1000, seconds=5)  # told again with little left: the longer one stands
    assert a.is_banned("8.8.8.8", 1500)

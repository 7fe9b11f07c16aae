"""Hostile input never crashes a session (only typed replies come out), plus the pure server parts:
share statistics windows and per-IP admission/bans."""

from __future__ import annotations

import ipaddress
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.params import REGTEST
from pithead.config import ConfigError, PoolConfig, validate
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.bans import Admission, BanTable, ban_key
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


def test_bans_are_bounded_and_the_earliest_to_end_is_forgotten_first() -> None:
    """At the bound, a new ban evicts the one that ends first (not an arbitrary or the newest one); a ban
    extended later is evicted by its new end, not its old one; expired bans make room by themselves."""
    t = BanTable(max_banned=3)
    t.ban("1.0.0.1", 100.0, 0.0)
    t.ban("1.0.0.2", 50.0, 0.0)
    t.ban("1.0.0.3", 200.0, 0.0)
    t.ban("1.0.0.2", 300.0, 1.0)  # extended: now ends last
    t.ban("1.0.0.4", 150.0, 1.0)  # full: 1.0.0.1 (ends at 100) goes, not 1.0.0.2 (its stale 50 is skipped)
    assert len(t) == 3
    assert not t.is_banned("1.0.0.1", 2.0)
    assert all(t.is_banned(ip, 2.0) for ip in ("1.0.0.2", "1.0.0.3", "1.0.0.4"))
    t.ban("1.0.0.2", 10.0, 2.0)  # a shorter ban never shortens the one in force
    assert t.until("1.0.0.2", 2.0) == 300.0
    # at 160 two have expired: two new bans fit without evicting the one still in force
    t.ban("1.0.0.5", 400.0, 160.0)
    t.ban("1.0.0.6", 400.0, 160.0)
    assert len(t) == 3 and t.is_banned("1.0.0.2", 160.0)
    assert sorted(k for k, _ in t.active(160.0)) == ["1.0.0.2", "1.0.0.5", "1.0.0.6"]


def test_ban_table_stays_bounded_under_a_flood_of_distinct_and_repeated_bans() -> None:
    t = BanTable(max_banned=1000)
    for i in range(20_000):  # distinct addresses, and the same ones banned again and again
        ip = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" if i % 3 else "10.9.9.9"
        t.ban(ip, 1000.0 + i, float(i) / 1000)
    assert len(t) == 1000
    assert len(t._heap) <= 2 * 1000 + 16  # stale heap entries are bounded too
    # the ones kept are the latest to end: the last thousand bans (the repeated one among them)
    assert t.is_banned("10.9.9.9", 20.0)
    assert t.is_banned(f"10.0.{19_999 // 256 % 256}.{19_999 % 256}", 20.0)
    assert not t.is_banned("10.0.0.1", 20.0)


def test_ipv6_bans_cover_the_prefix_and_mapped_ipv4_is_ipv4() -> None:
    a = Admission(max_per_ip=2, ban_seconds=60)
    a.ban("2001:db8:1:2:aaaa::1", 0.0)
    assert a.admit("2001:db8:1:2:ffff:ffff:ffff:fffe", 1.0) == "banned"  # same /64
    assert a.admit("2001:db8:1:3::1", 1.0) is None  # the next /64 is someone else
    assert a.admit("2001:db8:1:2::7", 61.0) is None  # expired
    # an IPv4 peer seen through a dual-stack socket is the IPv4 address: one ban, one connection count
    a.ban("::ffff:192.0.2.7", 100.0)
    assert a.is_banned("192.0.2.7", 101.0) and a.admit("192.0.2.7", 101.0) == "banned"
    assert a.admit("192.0.2.8", 101.0) is None and a.admit("::ffff:192.0.2.8", 101.0) is None
    assert a.connections("192.0.2.8") == 2 and a.admit("192.0.2.8", 101.0) is not None
    # the prefix is a setting; keys handed on (a restarted pool worker gets them) mean the same ban
    b = Admission(max_per_ip=2, ipv6_prefix=128)
    b.ban("2001:db8::1", 0.0)
    assert b.is_banned("2001:db8::1", 1.0) and not b.is_banned("2001:db8::2", 1.0)
    assert ban_key("2001:db8::1") == "2001:db8::/64" == ban_key("2001:db8::/64") == ban_key("2001:db8::/96")
    assert ban_key("::ffff:10.1.2.3") == "10.1.2.3" and ban_key("not an address") == "not an address"
    c = Admission(max_per_ip=2)
    for key, left in a.bans.active(101.0):
        c.ban(key, 101.0, left)
    assert c.is_banned("2001:db8:1:2::99", 101.0) is False  # that one had expired
    assert c.is_banned("192.0.2.7", 150.0) and not c.is_banned("192.0.2.7", 161.0)


def test_ban_prefix_setting_is_validated() -> None:
    validate(PoolConfig(ban_ipv6_prefix=56))
    with pytest.raises(ConfigError, match=r"pool\.ban_ipv6_prefix"):
        validate(PoolConfig(ban_ipv6_prefix=16))


@given(st.ip_addresses(v=6), st.integers(32, 128))
def test_the_fast_ipv6_ban_key_is_the_ipaddress_modules_network(addr: ipaddress.IPv6Address, prefix: int) -> None:
    """`ban_key`'s inet_pton path agrees with the ipaddress module for every IPv6 address and prefix (the
    IPv4-mapped ones: their IPv4 address), and a key given back gives itself."""
    expected = (str(addr.ipv4_mapped) if addr.ipv4_mapped is not None
                else str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False)))
    assert ban_key(str(addr), prefix) == expected == ban_key(expected, prefix)
    assert ban_key(addr.exploded, prefix) == expected

"""Properties: curtailment decisions respect order, ramp and anti-flapping; readings round-trip the store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.farm.curtailment import CurtailmentPolicy, Machine, decide
from pithead.farm.model import Board, Fan, PoolEntry, Reading
from pithead.farm.store import reading_from_json, reading_to_json

machines = st.lists(
    st.builds(
        Machine,
        device_id=st.text("abcdef0123", min_size=1, max_size=6),
        efficiency_j_per_th=st.one_of(st.none(), st.floats(5, 120)),
        power_w=st.one_of(st.none(), st.floats(10, 6000)),
        curtailed=st.booleans(),
        since=st.floats(0, 10_000),
    ),
    max_size=40,
    unique_by=lambda m: m.device_id,
)


@settings(max_examples=100, deadline=None)
@given(machines, st.floats(-50, 500), st.integers(1, 10), st.one_of(st.none(), st.floats(1, 50)),
       st.one_of(st.none(), st.floats(0.001, 0.2)))
def test_curtailment_invariants(ms: list[Machine], price: float, ramp: int, target: float | None,
                                hashprice: float | None) -> None:
    now = 10_000.0
    pol = CurtailmentPolicy(80.0, max_switches_per_step=ramp, target_kw=target)
    d = decide(ms, price, now, pol, hashprice)
    by_id = {m.device_id: m for m in ms}
    assert not (d.power_down and d.power_up)
    assert len(d.power_down) <= ramp and len(d.power_up) <= ramp
    assert len(set(d.power_down)) == len(d.power_down)
    for i in d.power_down:
        assert not by_id[i].curtailed and now - by_id[i].since >= pol.min_on_s
    for i in d.power_up:
        assert by_id[i].curtailed and now - by_id[i].since >= pol.min_off_s
    eff = [by_id[i].efficiency_j_per_th or pol.unknown_efficiency_j_per_th for i in d.power_down]
    assert eff == sorted(eff, reverse=True)  # least efficient first
    up = [by_id[i].efficiency_j_per_th or pol.unknown_efficiency_j_per_th for i in d.power_up]
    assert up == sorted(up)  # most efficient back first
    if price <= pol.strike_price_per_mwh:
        assert d.power_down == ()
    if price > pol.resume_price_per_mwh:
        assert d.power_up == ()


readings = st.builds(
    Reading,
    device_id=st.text(min_size=1, max_size=20),
    time=st.floats(0, 2e9),
    hashrate_ths=st.floats(0, 1000),
    expected_ths=st.one_of(st.none(), st.floats(0, 1000)),
    boards=st.lists(st.builds(Board, index=st.integers(0, 5), hashrate_ths=st.floats(0, 300),
                              chips=st.one_of(st.none(), st.integers(0, 200)),
                              expected_chips=st.one_of(st.none(), st.integers(0, 200)),
                              board_temp_c=st.one_of(st.none(), st.floats(1, 120)),
                              chip_temp_c=st.one_of(st.none(), st.floats(1, 120)),
                              serial=st.one_of(st.none(), st.text(max_size=10))), max_size=4).map(tuple),
    fans=st.lists(st.builds(Fan, index=st.integers(0, 8), rpm=st.integers(0, 10_000)), max_size=4).map(tuple),
    power_w=st.one_of(st.none(), st.floats(0, 10_000)),
    pools=st.lists(st.builds(PoolEntry, index=st.integers(0, 3), url=st.text(max_size=30), user=st.text(max_size=30),
                             alive=st.one_of(st.none(), st.booleans()), active=st.booleans(),
                             accepted=st.one_of(st.none(), st.integers(0, 10**9)),
                             rejected=st.one_of(st.none(), st.integers(0, 10**9))), max_size=3).map(tuple),
    errors=st.lists(st.text(max_size=12), max_size=3).map(tuple),
    uptime_s=st.one_of(st.none(), st.floats(0, 1e8)),
    is_mining=st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(readings)
def test_reading_round_trips_the_store_encoding(r: Reading) -> None:
    assert reading_from_json(reading_to_json(r)) == r

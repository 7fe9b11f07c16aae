"""AxeOS JSON and stock Antminer CGI payload codecs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.farm.protocol import antminer_web as aw
from pithead.farm.protocol import axeos
from pithead.farm.protocol.errors import AntminerWebPayloadError, AxeOSPayloadError

PAYLOADS = Path(__file__).parent / "payloads"


def test_recorded_gamma_info() -> None:
    info = axeos.parse_system_info(json.loads((PAYLOADS / "bitaxe_gamma_info.json").read_text()))
    assert info.asic_model == "BM1370"
    assert info.hash_rate_ghs == pytest.approx(1180.4)
    assert info.expected_hashrate_ghs == 1224
    assert (info.small_core_count, info.asic_count, info.frequency_mhz) == (2040, 1, 600)
    assert (info.power_w, info.temp_c, info.vr_temp_c, info.fan_rpm) == (17.2, 58.3, 61, 4800)
    assert info.best_diff == "1234"  # a number on this firmware, a "4.29G" string on others
    assert info.mac_addr == ""  # absent in this payload


def test_built_info_round_trips_and_has_required_fields() -> None:
    base = axeos.parse_system_info(json.loads((PAYLOADS / "bitaxe_gamma_info.json").read_text()))
    out = base.to_json()
    # every field the openapi spec marks required that a farm tool reads is present
    for key in (
        "ASICModel",
        "hashRate",
        "expectedHashrate",
        "power",
        "voltage",
        "current",
        "temp",
        "vrTemp",
        "fanrpm",
        "fanspeed",
        "autofanspeed",
        "frequency",
        "coreVoltage",
        "smallCoreCount",
        "hostname",
        "macAddr",
        "version",
        "axeOSVersion",
        "uptimeSeconds",
        "sharesAccepted",
        "sharesRejected",
        "stratumURL",
        "stratumPort",
        "stratumUser",
        "fallbackStratumURL",
        "isUsingFallbackStratum",
        "bestDiff",
    ):
        assert key in out, key
    assert axeos.parse_system_info(out) == base


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"hashRate": 1.0},
        {"ASICModel": "BM1370"},
        {"ASICModel": 5, "hashRate": 1.0},
        {"ASICModel": "BM1370", "hashRate": "fast"},
        {"ASICModel": "BM1370", "hashRate": 1.0, "power": True},
    ],
)
def test_bad_info_raises(body: object) -> None:
    with pytest.raises(AxeOSPayloadError):
        axeos.parse_system_info(body)  # type: ignore[arg-type]


def test_asic_info_figures() -> None:
    a = axeos.asic_info_for("BM1370")
    assert (a.device_model, a.default_frequency, a.asic_count) == ("Gamma", 525, 1)
    assert 525 in a.frequency_options
    assert axeos.parse_asic_info(a.to_json()) == a
    with pytest.raises(AxeOSPayloadError):
        axeos.asic_info_for("BM9999")


def test_settings_patch_validation() -> None:
    p = axeos.parse_settings_patch(
        {"stratumURL": "127.0.0.1", "stratumPort": 3333, "fanspeed": 80, "other": 1}
    )
    assert p.changes_pool and p.to_json() == {"stratumURL": "127.0.0.1", "stratumPort": 3333, "fanspeed": 80}
    assert not axeos.parse_settings_patch({"fanspeed": 50}).changes_pool
    for bad in (
        {"stratumPort": 0},
        {"fanspeed": 101},
        {"hostname": "bad name"},
        {"stratumURL": 5},
        {"stratumURL": "x" * (axeos.MAX_URL + 1)},
        {"frequency": "fast"},
        "nope",
    ):
        with pytest.raises(AxeOSPayloadError):
            axeos.parse_settings_patch(bad)


@given(st.integers(1, 65535), st.integers(0, 100), st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True))
def test_apply_settings(port: int, fan: int, host: str) -> None:
    base = axeos.parse_system_info(json.loads((PAYLOADS / "bitaxe_gamma_info.json").read_text()))
    patch = axeos.parse_settings_patch({"stratumPort": port, "fanspeed": fan, "hostname": host})
    after = axeos.apply_settings(base, patch)
    assert (after.stratum_port, after.fan_speed_pct, after.hostname) == (port, fan, host)
    assert after.asic_model == base.asic_model


def test_root_page_is_recognisable_as_axeos() -> None:
    assert b"AxeOS" in axeos.ROOT_HTML
    for other in (b"Braiins OS", b"Luxor Firmware", b"Avalon", b"Miner UI"):
        assert other not in axeos.ROOT_HTML


def test_antminer_conf_round_trip_and_validation() -> None:
    conf = aw.MinerConf(
        (aw.WebPool("stratum+tcp://10.0.0.1:3333", "w.1", "x"),), False, 100, aw.WORK_MODE_NORMAL
    )
    body = conf.to_json()
    assert body["pools"] == [{"url": "stratum+tcp://10.0.0.1:3333", "user": "w.1", "pass": "x"}]
    assert aw.parse_miner_conf(body) == conf
    with pytest.raises(AntminerWebPayloadError):
        aw.parse_miner_conf({"pools": [{"url": 1}]})
    with pytest.raises(AntminerWebPayloadError):
        aw.parse_miner_conf({"pools": [{"url": "a"}] * 4})
    with pytest.raises(AntminerWebPayloadError):
        aw.parse_miner_conf({"bitmain-fan-pwm": "200"})


def test_summary_cgi_errors() -> None:
    body = aw.summary_cgi(
        1,
        2,
        3.0,
        3.0,
        3.0,
        4.0,
        0,
        0,
        [aw.StatusItem("rate", True), aw.StatusItem("fans", False, "Fan 2 lost", 2)],
        "Antminer S19",
        "x",
    )
    errs = aw.parse_summary_errors(body)
    assert [(e.type, e.msg) for e in errs] == [("fans", "Fan 2 lost")]
    with pytest.raises(AntminerWebPayloadError):
        aw.parse_summary_errors({})

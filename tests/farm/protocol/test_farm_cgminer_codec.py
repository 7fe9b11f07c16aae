"""The cgminer/bmminer API codec against recorded device payloads, plus request/reply round trips."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.farm.protocol import cgminer as cg
from pithead.farm.protocol.errors import CgminerCommandError, CgminerReplyError, CgminerRequestError

PAYLOADS = Path(__file__).parent / "payloads"


def raw(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


# ---------------------------------------------------------------- recorded payloads


def test_recorded_s19xp_summary() -> None:
    s = cg.parse_summary(cg.decode_reply(raw("s19xp_vnish_summary.json") + b"\x00"))
    assert s.ghs_5s == pytest.approx(140258.58)  # sent as a string by the firmware
    assert s.ghs_av == pytest.approx(142562.73)
    assert (s.elapsed_s, s.accepted, s.rejected, s.hardware_errors) == (331780, 226146, 94, 8004)
    assert s.best_share == 11482220369


def test_recorded_s19xp_stats_legacy() -> None:
    st_ = cg.parse_stats(cg.decode_reply(raw("s19xp_vnish_stats.json")))
    assert st_.miner_type == "Antminer S19 XP"  # " (Vnish 1.2.0-rc1)" cut as pyasic does
    assert st_.fans_rpm == (2790, 2850, 2940, 2910)
    assert [c.chips for c in st_.chains] == [110, 110, 110]
    assert [c.hashrate_ghs for c in st_.chains] == pytest.approx([47016.68, 47262.92, 45978.98])
    assert [c.board_temp_c for c in st_.chains] == [60, 57, 59]
    assert [c.chip_temp_c for c in st_.chains] == [75, 72, 74]
    assert st_.expected_ghs == pytest.approx(144399.77)
    assert st_.elapsed_s == 331311
    assert st_.power_w is None


def test_recorded_s19xp_pools() -> None:
    pools = cg.parse_pools(cg.decode_reply(raw("s19xp_vnish_pools.json")))
    assert [p.url for p in pools][:3] == [
        "stratum+tcp://eu.ss.btc.com:1800",
        "stratum+tcp://eu.ss.btc.com:443",
        "stratum+tcp://eu.ss.btc.com:25",
    ]
    assert [p.alive for p in pools] == [True, True, False, True]
    assert [p.active for p in pools] == [True, False, False, False]
    assert pools[0].accepted == 19335 and pools[0].get_failures == 14
    assert cg.reply_status(cg.decode_reply(raw("s19xp_vnish_pools.json"))).msg == "6 Pool(s)"


def test_recorded_version_with_spaces() -> None:
    reply = cg.decode_reply(raw("s19xp_hyd_version.json"))
    v = cg.parse_version(reply)
    assert v.miner_type == "Antminer S19 XP+ Hyd"
    assert (v.api, v.firmware, v.software) == ("3.1", "x", "bmminer 1.0.0")
    status = cg.reply_status(reply)
    assert (status.severity, status.code, status.when) == (cg.Severity.SUCCESS, 22, 1782750427)


def test_recorded_devdetails_status() -> None:
    reply = cg.decode_reply(raw("cheetah_devdetails.json"))
    assert cg.reply_status(reply).code == cg.Code.DEVDETAILS
    assert [d["Name"] for d in reply["DEVDETAILS"]] == ["C3012"] * 3


def test_recorded_new_api_stats_mh_units() -> None:
    st_ = cg.parse_stats_new_api(cg.decode_reply(raw("dg1plus_web_stats.json")))
    # rate_unit "MH/s": figures come back in GH/s
    assert st_.chains[0].hashrate_ghs == pytest.approx(3.5535)
    assert st_.expected_ghs == pytest.approx(14.229)
    assert st_.fans_rpm == (5340, 5400, 5400, 5400)
    assert st_.chains[1].serial == "13HY245156N000579H11JB52"
    # temp_pcb [47, 46, 67, 66] averaged; empty chip sensors skipped
    assert st_.chains[0].board_temp_c == pytest.approx(56.5)
    assert st_.chains[0].chip_temp_c == pytest.approx((47125 + 50500) / 2)
    assert st_.miner_type == "DG1+"


def test_decode_repairs_bmminer_missing_comma() -> None:
    text = raw("s19xp_vnish_stats.json").replace(b'},{"STATS":0', b'}{"STATS":0')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    st_ = cg.parse_stats(cg.decode_reply(text + b"\x00"))
    assert len(st_.chains) == 3


def test_decode_repairs_trailing_commas_and_inf() -> None:
    reply = cg.decode_reply(
        b'{"STATUS":[,{"STATUS":"S","Code":11,"Msg":"Summary",}],"SUMMARY":[{"GHS 5s":"inf"}],"id":1}'
    )
    assert cg.reply_status(reply).ok
    assert reply["SUMMARY"][0]["GHS 5s"] == 0


@pytest.mark.parametrize("bad", [b"", b"\x00", b"asjdasldjakldjakle34124dqdqf", b"[1,2]", b'{"STATUS":'])
def test_decode_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(CgminerReplyError):
        cg.decode_reply(bad)


def test_error_status_raises_typed() -> None:
    reply = cg.access_denied_reply(1700000000, "addpool", "bmminer 1.0.0")
    with pytest.raises(CgminerCommandError) as ei:
        cg.check_status(reply, "addpool")
    assert ei.value.code == cg.Code.ACCDENY
    assert ei.value.msg == "Access denied to 'addpool' command"
    with pytest.raises(CgminerCommandError):
        cg.parse_summary(reply)


def test_restart_reply_is_ok() -> None:
    reply = cg.decode_reply(cg.frame_reply(cg.restart_reply()))
    assert reply == {"STATUS": "RESTART"}
    assert cg.reply_status(reply).ok


# ---------------------------------------------------------------- requests


def test_parse_json_request_with_new_api() -> None:
    req = cg.parse_request(b'{"command":"stats","new_api":true}')
    assert req.commands == ("stats",) and req.parameter is None
    assert req.extra("new_api") is True and req.is_json


def test_parse_joined_request() -> None:
    req = cg.parse_request(b'{"command":"version+summary+stats+pools"}\x00')
    assert req.commands == ("version", "summary", "stats", "pools")
    assert req.is_joined and req.command == "version+summary+stats+pools"


def test_parse_text_request_with_params() -> None:
    req = cg.parse_request(b"addpool|stratum+tcp://10.0.0.1:3333,worker.1,x\n")
    assert not req.is_json
    assert req.commands == ("addpool",)
    assert req.params == ("stratum+tcp://10.0.0.1:3333", "worker.1", "x")


def test_parse_int_parameter() -> None:
    assert cg.parse_request(b'{"command":"switchpool","parameter":1}').parameter == "1"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'{"command":', cg.Code.INVJSON),
        (b'{"parameter":"1"}', cg.Code.MISCMD),
        (b'{"command":5}', cg.Code.MISCMD),
        (b"[]", cg.Code.INVCMD),
        (b"", cg.Code.INVCMD),
        (b"summary++pools", cg.Code.INVCMD),
        (b"sum mary", cg.Code.INVCMD),
        (b"x" * (cg.MAX_REQUEST_BYTES + 1), cg.Code.INVCMD),
        (b"\xff\xfe", cg.Code.INVCMD),
        ("+".join(["summary"] * (cg.MAX_JOINED_COMMANDS + 1)).encode(), cg.Code.INVCMD),
    ],
)
def test_bad_requests_carry_cgminer_codes(data: bytes, code: int) -> None:
    with pytest.raises(CgminerRequestError) as ei:
        cg.parse_request(data)
    assert ei.value.code == code


_cmd = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


_wire_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # encodable


@given(st.lists(_cmd, min_size=1, max_size=5), st.one_of(st.none(), _wire_text), st.booleans())
def test_request_round_trip(cmds: list[str], param: str | None, new_api: bool) -> None:
    extras = {"new_api": True} if new_api else {}
    req = cg.parse_request(cg.encode_request(cmds, param, **extras))
    assert req.commands == tuple(cmds)
    assert req.parameter == param
    assert req.extra("new_api", False) is new_api


@given(
    _cmd,
    st.one_of(
        st.none(),
        st.text(
            alphabet=st.characters(blacklist_characters="\x00\r\n|", blacklist_categories=("Cs",)),
            max_size=40,
        ),
    ),
)
def test_text_request_round_trip(cmd: str, param: str | None) -> None:
    # the text form cannot carry trailing whitespace in the parameter (cgminer strips the line end)
    if param is not None:
        param = param.strip()
    req = cg.parse_request(cg.encode_text_request(cmd, param))
    assert req.commands == (cmd,) and req.parameter == param


# ---------------------------------------------------------------- builders → parsers


def _stats_figures() -> cg.StatsFigures:
    chains = tuple(
        cg.ChainFigures(
            index=i,
            asic_num=110 if i != 2 else 0,
            rate_real_ghs=47000.0 + i if i != 2 else 0.0,
            rate_ideal_ghs=48000.0,
            freq_avg=490.0,
            temp_pcb=(40 + i, 45, 58, 60),
            temp_chip=(55, 60, 72 + i, 75),
            temp_pic=(55, 60, 72, 75),
            hw=3,
            sn=f"SN{i}",
        )
        for i in range(3)
    )
    return cg.StatsFigures(
        version=cg.VersionInfo("Antminer S19 XP"),
        device_id="BTM_SOC0",
        elapsed=1234,
        ghs_5s=94000.5,
        ghs_av=94010.0,
        ghs_30m=94005.0,
        rate_ideal_ghs=144000.0,
        frequency=490,
        fans=(2790, 0, 2940, 2910),
        fan_pwm=60,
        chains=chains,
    )


def test_built_stats_parse_back_both_shapes() -> None:
    f = _stats_figures()
    legacy = cg.decode_reply(
        cg.frame_reply(
            cg.build_reply(
                cg.Status(cg.Severity.SUCCESS, 5, 70, "CGMiner stats", "bmminer 1.0.0"),
                "STATS",
                f.legacy_section(),
            )
        )
    )
    p = cg.parse_stats(legacy)
    assert p.miner_type == "Antminer S19 XP"
    assert p.fans_rpm == (2790, 0, 2940, 2910)
    assert [c.chips for c in p.chains] == [110, 110, 0]
    assert [c.board_temp_c for c in p.chains] == [60, 60, 60]
    assert [c.chip_temp_c for c in p.chains] == [75, 75, 75]
    assert p.expected_ghs == 144000.0
    assert legacy["STATS"][1]["chain_acs1"].replace(" ", "") == "o" * 110

    n = cg.parse_stats_new_api(cg.decode_reply(cg.frame_reply(f.new_api_reply(5))))
    assert [c.hashrate_ghs for c in n.chains] == [47000.0, 47001.0, 0.0]
    assert n.chains[0].board_temp_c == pytest.approx((40 + 45 + 58 + 60) / 4)
    assert n.chains[1].serial == "SN1"
    assert n.fans_rpm == (2790, 0, 2940, 2910)


def test_joined_reply_shape_and_split() -> None:
    st_ok = cg.Status(cg.Severity.SUCCESS, 7, 11, "Summary", "bmminer 1.0.0")
    summ = cg.SummaryFigures(
        elapsed=60, ghs_5s=100.0, ghs_av=99.0, ghs_30m=98.0, accepted=3, rejected=1, hardware_errors=0
    )
    one = cg.build_reply(st_ok, "SUMMARY", [summ.to_section()])
    pools = cg.build_reply(
        cg.Status(cg.Severity.SUCCESS, 7, 7, "1 Pool(s)", "bmminer 1.0.0"),
        "POOLS",
        [cg.PoolEntry(0, "stratum+tcp://127.0.0.1:3333", "w.1", "Alive", 0, True, accepted=3).to_section()],
    )
    joined = cg.decode_reply(cg.frame_reply(cg.build_joined_reply({"summary": one, "pools": pools})))
    assert set(joined) == {"summary", "pools", "id"}
    assert "id" not in joined["summary"][0]
    parts = cg.split_joined_reply(cg.check_status(joined))
    assert cg.parse_summary(parts["summary"]).ghs_5s == 100.0
    assert cg.parse_pools(parts["pools"])[0].user == "w.1"
    # pyasic reads joined replies as data[cmd][0]
    assert joined["summary"][0]["SUMMARY"][0]["GHS 5s"] == "100.00"


def test_frame_reply_is_nul_terminated_json() -> None:
    framed = cg.frame_reply(cg.invalid_command_reply(1, "bmminer 1.0.0"))
    assert framed.endswith(b"\x00") and framed.count(b"\x00") == 1
    body = json.loads(framed[:-1])
    assert body["STATUS"][0] == {
        "STATUS": "E",
        "When": 1,
        "Code": 14,
        "Msg": "Invalid command",
        "Description": "bmminer 1.0.0",
    }
    assert body["id"] == 1


def test_text_reply_round_trip_with_escapes() -> None:
    reply = cg.build_reply(
        cg.Status(cg.Severity.SUCCESS, 9, 7, "2 Pool(s)", "bmminer 1.0.0"),
        "POOLS",
        [
            cg.PoolEntry(0, "stratum+tcp://a:1", "w,1|x=y", "Alive", 0, True, accepted=5).to_section(),
            cg.PoolEntry(1, "stratum+tcp://b:2", "w.2", "Dead", 1, False).to_section(),
        ],
    )
    raw = cg.encode_text_reply(reply)
    assert raw.startswith(b"STATUS=S,When=9,Code=7,Msg=2 Pool(s),Description=bmminer 1.0.0|POOL=0,")
    assert raw.endswith(b"|\x00") and b"User=w\\,1\\|x\\=y" in raw
    pools = cg.parse_pools(cg.decode_text_reply(raw))
    assert [(p.url, p.user, p.alive, p.active, p.accepted) for p in pools] == [
        ("stratum+tcp://a:1", "w,1|x=y", True, True, 5),
        ("stratum+tcp://b:2", "w.2", False, False, 0),
    ]
    summ = cg.build_reply(
        cg.Status(cg.Severity.SUCCESS, 9, 11, "Summary", "bmminer 1.0.0"),
        "SUMMARY",
        [
            cg.SummaryFigures(
                elapsed=60, ghs_5s=12.5, ghs_av=12.0, ghs_30m=12.0, accepted=1, rejected=0, hardware_errors=0
            ).to_section()
        ],
    )
    text = cg.encode_text_reply(summ)
    assert b"|SUMMARY,Elapsed=60,GHS 5s=12.50," in text
    assert cg.parse_summary(cg.decode_text_reply(text)).ghs_5s == 12.5
    assert cg.decode_text_reply(cg.encode_text_reply(cg.restart_reply())) == {"STATUS": "RESTART"}
    with pytest.raises(CgminerReplyError):
        cg.decode_text_reply(b"garbage|\x00")


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20), min_size=1, max_size=4
    )
)
def test_text_reply_escaping_round_trips(users: list[str]) -> None:
    users = [u.replace("\x00", "") for u in users]
    entries = [
        cg.PoolEntry(i, f"stratum+tcp://h{i}:3333", u, "Alive", i, i == 0).to_section()
        for i, u in enumerate(users)
    ]
    reply = cg.build_reply(
        cg.Status(cg.Severity.SUCCESS, 1, 7, f"{len(users)} Pool(s)", "bmminer 1.0.0"), "POOLS", entries
    )
    pools = cg.parse_pools(cg.decode_text_reply(cg.encode_text_reply(reply)))
    assert [p.user for p in pools] == users


def test_unencodable_requests_raise_typed_errors() -> None:
    with pytest.raises(CgminerRequestError):
        cg.encode_text_request("summary", "\ud800")
    with pytest.raises(CgminerRequestError):
        cg.encode_request("summary", "\ud800")

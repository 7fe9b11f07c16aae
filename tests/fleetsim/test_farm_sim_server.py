"""The wire servers in shared bind mode: one listener per port, dispatch on the destination address.

Ephemeral ports (port 0) keep these tests clear of anything else on the machine; clients connect to
each device's own 127.x.y.z address with our own codecs and httpx.
"""

from __future__ import annotations

import asyncio
import os
import socket

import httpx
import orjson
import pytest

from pithead.farm.protocol import axeos
from pithead.farm.protocol.cgminer import parse as cgp
from pithead.farm.protocol.cgminer import wire as cg
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def served():
    clock = ManualClock()
    fleet = Fleet.build(6, mix="s19xp:1,s19:1,bitaxe-gamma:1", seed=5, network="127.16.0.0/24", clock=clock)
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    await srv.start()
    api, web = srv.bound_ports()
    try:
        yield fleet, srv, api, web, clock
    finally:
        await srv.close()


def _dev(fleet: Fleet, key: str, k: int = 0):
    return [d for d in fleet if d.spec.key == key][k]


async def test_dispatch_on_destination_address(served, api) -> None:
    fleet, srv, port, _web, _clock = served
    a, b = _dev(fleet, "s19xp"), _dev(fleet, "s19")
    ra = cg.decode_reply(await api(a.ip, port, cg.encode_request("version")))
    rb = cg.decode_reply(await api(b.ip, port, cg.encode_request("version")))
    assert cgp.parse_version(ra).miner_type == "Antminer S19 XP"
    assert cgp.parse_version(rb).miner_type == "Antminer S19"
    assert srv.stats.api_requests == 2


async def test_reply_is_nul_terminated_then_closed(served, api) -> None:
    fleet, _srv, port, _web, _clock = served
    raw = await api(_dev(fleet, "s19").ip, port, b'{"command":"summary"}')
    assert raw.endswith(b"\x00") and raw.count(b"\x00") == 1  # read() returned: the server closed
    s = cgp.parse_summary(cg.decode_reply(raw))
    snap = _dev(fleet, "s19").snapshot(fleet.ctx, fleet.now())
    assert s.ghs_5s == pytest.approx(snap.rate_5s_ghs, abs=0.01)
    assert s.accepted == snap.accepted


async def test_joined_command_and_text_form(served, api) -> None:
    fleet, _srv, port, _web, _clock = served
    ip = _dev(fleet, "s19xp").ip
    joined = cg.decode_reply(await api(ip, port, cg.encode_request(["version", "summary", "stats", "pools"])))
    parts = cg.split_joined_reply(cg.check_status(joined))
    assert set(parts) == {"version", "summary", "stats", "pools"}
    assert len(cgp.parse_stats(parts["stats"]).chains) == 3
    assert cgp.parse_pools(parts["pools"])[0].active
    # the plain-text form gets cgminer's plain-text reply: STATUS=S,…|POOL=0,URL=…|
    raw_text = await api(ip, port, b"pools")
    assert raw_text.startswith(b"STATUS=S,When=") and b"|POOL=0,URL=stratum+tcp://127.0.0.1:3333," in raw_text
    assert cgp.parse_pools(cg.decode_text_reply(raw_text))[0].url == "stratum+tcp://127.0.0.1:3333"
    summ = cgp.parse_summary(cg.decode_text_reply(await api(ip, port, b"summary")))
    assert summ.accepted > 0
    assert cg.reply_status(cg.decode_text_reply(await api(ip, port, b"summary+pools"))).code == cg.Code.INVCMD
    # a non-joinable command inside a join is denied in its own slot
    mixed = cg.decode_reply(await api(ip, port, b'{"command":"summary+restart"}'))
    assert cg.reply_status(mixed["restart"][0]).code == cg.Code.ACCDENY
    assert cg.reply_status(mixed["summary"][0]).ok
    assert fleet.now() >= _dev(fleet, "s19xp").down_until  # nothing restarted


async def test_stats_new_api_and_other_reports(served, api) -> None:
    fleet, _srv, port, _web, _clock = served
    ip = _dev(fleet, "s19xp").ip
    new = cgp.parse_stats_new_api(
        cg.decode_reply(await api(ip, port, cg.encode_request("stats", new_api=True)))
    )
    assert [c.chips for c in new.chains] == [110, 110, 110]
    assert all(c.serial for c in new.chains)
    devs = cgp.parse_devs(cg.decode_reply(await api(ip, port, cg.encode_request("devs"))))
    assert len(devs) == 3 and all(d.alive for d in devs)
    for cmd, code in (("devdetails", cg.Code.DEVDETAILS), ("config", cg.Code.MINECONFIG)):
        r = cg.decode_reply(await api(ip, port, cg.encode_request(cmd)))
        assert cg.reply_status(r).code == code
    bad = cg.decode_text_reply(await api(ip, port, b"nonsense"))
    assert cg.reply_status(bad).code == cg.Code.INVCMD
    badjson = cg.decode_reply(await api(ip, port, b'{"command":"summary",}'))
    assert cg.reply_status(badjson).code == cg.Code.INVJSON


async def test_privileged_pool_commands(served, api) -> None:
    fleet, _srv, port, _web, clock = served
    dev = _dev(fleet, "s19")

    async def call(cmd: str, param: str | None = None) -> dict:
        return cg.decode_reply(await api(dev.ip, port, cg.encode_request(cmd, param)))

    r = await call("addpool", "stratum+tcp://127.0.0.9:3334,farm.w2,x")
    assert cg.reply_status(r).code == cg.Code.ADDPOOL
    assert cg.reply_status(await call("addpool")).code == cg.Code.MISPDP
    assert cg.reply_status(await call("addpool", "only-a-url")).code == cg.Code.INVPDP
    assert cg.reply_status(await call("switchpool", "7")).code == cg.Code.INVPID
    assert cg.reply_status(await call("switchpool")).code == cg.Code.MISPID
    assert cg.reply_status(await call("switchpool", "1")).code == cg.Code.SWITCHP
    pools = cgp.parse_pools(await call("pools"))
    assert [p.active for p in pools] == [False, True]
    assert cg.reply_status(await call("removepool", "1")).code == cg.Code.ACTPOOL
    assert cg.reply_status(await call("disablepool", "0")).code == cg.Code.DISPOOL
    r = await call("disablepool", "1")
    assert cg.reply_status(r).code == cg.Code.DISLASTP
    assert cg.reply_status(await call("enablepool", "1")).severity == cg.ReplySeverity.INFO  # already enabled
    assert cg.reply_status(await call("enablepool", "0")).code == cg.Code.ENAPOOL
    assert cg.reply_status(await call("removepool", "0")).code == cg.Code.REMPOOL
    assert [p.url for p in cgp.parse_pools(await call("pools"))] == ["stratum+tcp://127.0.0.9:3334"]
    assert [a.kind for a in fleet.log] == ["addpool", "switchpool", "disablepool", "enablepool", "removepool"]
    # restart: the bare RESTART reply, then the unit is gone for its boot time
    clock.advance(1)
    assert cg.decode_reply(await api(dev.ip, port, cg.encode_request("restart"))) == {"STATUS": "RESTART"}
    with pytest.raises((ConnectionError, OSError, cg.CgminerReplyError)):
        cg.decode_reply(await api(dev.ip, port, cg.encode_request("summary")))
    clock.advance(dev.down_until - clock.now() + 1)
    s = cgp.parse_summary(cg.decode_reply(await api(dev.ip, port, cg.encode_request("summary"))))
    assert s.elapsed_s == 1


async def test_privileged_api_can_be_closed(served, api) -> None:
    fleet, _srv, port, _web, _clock = served
    fleet.ctx.api_write_allowed = False
    r = cg.decode_reply(await api(_dev(fleet, "s19").ip, port, cg.encode_request("switchpool", 0)))
    st = cg.reply_status(r)
    assert (st.severity, st.code, st.msg) == (cg.ReplySeverity.ERROR, 45, "Access denied to 'switchpool' command")


async def test_resets_for_bitaxe_on_api_port_and_unknown_addresses(served, api) -> None:
    fleet, srv, port, _web, _clock = served
    for ip in (_dev(fleet, "bitaxe-gamma").ip, "127.16.0.250"):
        try:
            data = await api(ip, port, cg.encode_request("version"))
        except (ConnectionError, OSError):
            data = b""
        assert data == b""
    assert srv.stats.resets == 2


async def test_foreign_destination_is_rejected(served, api) -> None:
    _fleet, srv, port, _web, _clock = served
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 9))
        own = probe.getsockname()[0]
    except OSError:
        own = ""
    finally:
        probe.close()
    if not own or own.startswith("127."):
        pytest.skip("no non-loopback local address on this machine")
    try:
        data = await api(own, port, cg.encode_request("version"))
    except (ConnectionError, OSError):
        data = b""
    assert data == b""
    assert srv.stats.api_requests == 0


async def test_antminer_web_digest_and_cgi(served, api) -> None:
    fleet, _srv, _api, web, clock = served
    dev = _dev(fleet, "s19xp")
    base = f"http://{dev.ip}:{web}"
    async with httpx.AsyncClient() as client:
        r = await client.get(base + "/")
        assert r.status_code == 401
        assert 'Digest realm="antMiner Configuration"' in r.headers["www-authenticate"]
        bad = await client.get(base + "/cgi-bin/get_system_info.cgi", auth=httpx.DigestAuth("root", "nope"))
        assert bad.status_code == 401
        auth = httpx.DigestAuth("root", "root")
        info = (await client.get(base + "/cgi-bin/get_system_info.cgi", auth=auth)).json()
        assert info["minertype"] == "Antminer S19 XP" and info["macaddr"] == dev.mac()
        kaonsu = await client.get(base + "/kaonsu/v1/brief", auth=auth)
        assert kaonsu.status_code == 404
        with pytest.raises(ValueError):
            kaonsu.json()  # a JSON body here would make pyasic call this a Marathon miner
        stats = (await client.get(base + "/cgi-bin/stats.cgi", auth=auth)).json()
        assert len(cgp.parse_stats_new_api(stats).chains) == 3
        blink = await client.post(base + "/cgi-bin/blink.cgi", auth=auth, json={"blink": "true"})
        assert blink.json() == {"code": "B000"}
        assert (await client.get(base + "/cgi-bin/get_blink_status.cgi", auth=auth)).json() == {"blink": True}
        conf = (await client.get(base + "/cgi-bin/get_miner_conf.cgi", auth=auth)).json()
        conf["pools"] = [{"url": "stratum+tcp://127.0.0.9:3333", "user": "farm.x", "pass": "x"}]
        ok = await client.post(base + "/cgi-bin/set_miner_conf.cgi", auth=auth, json=conf)
        assert ok.json()["code"] == "M000"
    # the pool change reboots the unit for 2–3 minutes, then it mines on the new pool
    assert not dev.snapshot(fleet.ctx, clock.now()).online
    clock.advance(181)
    assert dev.snapshot(fleet.ctx, clock.now()).pools[0].url == "stratum+tcp://127.0.0.9:3333"


async def test_axeos_api(served, api) -> None:
    fleet, _srv, _api, web, clock = served
    dev = _dev(fleet, "bitaxe-gamma")
    base = f"http://{dev.ip}:{web}"
    async with httpx.AsyncClient() as client:
        root = await client.get(base + "/")
        assert root.status_code == 200 and "AxeOS" in root.text
        info = axeos.parse_system_info((await client.get(base + axeos.INFO_PATH)).json())
        assert info.asic_model == "BM1370" and info.stratum_port == 3333
        asic = axeos.parse_asic_info((await client.get(base + axeos.ASIC_PATH)).json())
        assert asic.device_model == "Gamma"
        bad = await client.patch(base + axeos.SYSTEM_PATH, content=b'{"fanspeed": 300}')
        assert bad.status_code == 400
        ok = await client.patch(
            base + axeos.SYSTEM_PATH,
            json={
                "stratumURL": "127.0.0.9",
                "stratumPort": 4444,
                "stratumUser": "bc1q.w",
                "autofanspeed": 0,
                "fanspeed": 90,
            },
        )
        assert ok.status_code == 200
        info2 = axeos.parse_system_info((await client.get(base + axeos.INFO_PATH)).json())
        assert (info2.stratum_url, info2.stratum_port, info2.stratum_user) == ("127.0.0.9", 4444, "bc1q.w")
        assert info2.fan_speed_pct == 90 and info2.autofanspeed == 0
        # stored, not yet applied: the unit still mines on the old pool until it restarts
        assert dev.snapshot(fleet.ctx, clock.now()).pools[0].url == "stratum+tcp://127.0.0.1:3333"
        r = await client.post(base + axeos.RESTART_PATH)
        assert r.status_code == 200 and r.text == "System will restart shortly."
    clock.advance(30)
    assert dev.snapshot(fleet.ctx, clock.now()).pools[0].url == "stratum+tcp://127.0.0.9:4444"


async def test_bad_http_input_never_kills_the_server(served, api) -> None:
    fleet, _srv, port, web, _clock = served
    ip = _dev(fleet, "bitaxe-gamma").ip
    for junk in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"X" * 9000,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(ip, web)
        writer.write(junk)
        await writer.drain()
        head = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 4")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{ip}:{web}{axeos.INFO_PATH}")).status_code == 200
    raw = await api(_dev(fleet, "s19").ip, port, b"\xff" * 100)
    assert cg.reply_status(cg.decode_text_reply(raw)).code == cg.Code.INVCMD
    raw = await api(_dev(fleet, "s19").ip, port, b'{"command": 7}')
    assert cg.reply_status(cg.decode_reply(raw)).code == cg.Code.MISCMD
    assert orjson.loads(raw[:-1])["id"] == 1


async def test_one_process_serves_24000_devices(api) -> None:
    """24,000 addresses behind two listening sockets: a sample across the whole range answers as itself."""
    import random

    fleet = Fleet.build(24_000, seed=8, clock=ManualClock())
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    await srv.start()
    try:
        port, web = srv.bound_ports()
        sample = [*random.Random(3).sample(fleet.devices, 60), fleet.devices[0], fleet.devices[-1]]
        async with httpx.AsyncClient() as client:
            for dev in sample:
                if dev.spec.family.value == "antminer":
                    reply = cg.decode_reply(await api(dev.ip, port, cg.encode_request("version")))
                    assert cgp.parse_version(reply).miner_type == dev.spec.type_string
                else:
                    info = (await client.get(f"http://{dev.ip}:{web}{axeos.INFO_PATH}")).json()
                    assert info["hostname"] == dev.hostname and info["macAddr"] == dev.mac()
        assert srv.stats.resets == 0
    finally:
        await srv.close()


async def test_whatsminer_btminer_api(api) -> None:
    fleet = Fleet.build(1, mix="m30s:1", seed=2, network="127.16.1.0/24", clock=ManualClock())
    srv = FleetServer(fleet, api_port=0, web_port=0, bind="shared")
    await srv.start()
    try:
        port, web = srv.bound_ports()
        dev = fleet.devices[0]
        details = await api(dev.ip, port, cg.encode_request("devdetails"))
        assert b"BTMINER" in details.upper() or b"BITMICRO" in details.upper()  # how pyasic tells the make
        assert cg.decode_reply(details)["DEVDETAILS"][0]["Model"] == "M30S_V50"
        version = cg.decode_reply(await api(dev.ip, port, cg.encode_request("get_version")))
        assert version["STATUS"] == "S" and version["Code"] == 131 and version["Msg"]["fw_ver"]
        joined = cg.split_joined_reply(
            cg.decode_reply(await api(dev.ip, port, b'{"command":"summary+devs+pools"}'))
        )
        summ = joined["summary"]["SUMMARY"][0]
        assert summ["Factory GHS"] == 88000 and summ["Power"] > 3000
        assert [d["Effective Chips"] for d in joined["devs"]["DEVS"]] == [156, 156, 156]
        locked = cg.decode_reply(await api(dev.ip, port, cg.encode_request("update_pools", "x")))
        assert locked["STATUS"] == "E" and locked["Msg"] == "can't access write cmd"
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{dev.ip}:{web}/")
            assert r.status_code == 307 and r.headers["location"].startswith("https://")
    finally:
        await srv.close()


async def test_a_failing_request_gets_500_and_the_server_lives_on(served) -> None:
    import dataclasses

    fleet, _srv, _port, web, _clock = served
    dev = _dev(fleet, "bitaxe-gamma")
    dev.spec = dataclasses.replace(dev.spec, type_string="BM9999")  # no such chip: asic info cannot be built
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://{dev.ip}:{web}{axeos.ASIC_PATH}")
        assert r.status_code == 500
        assert (await client.get(f"http://{dev.ip}:{web}{axeos.INFO_PATH}")).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_two_simulators_on_other_networks_share_the_ports(api) -> None:
    """Issue 15: `pithead farm sim run --network 127.0.88.0/24` beside another simulator failed with
    "Address already in use", since each listened on every loopback address. A simulator of a few hundred
    devices now listens on its own network's addresses only (the default bind), so both run on the same
    ports and each answers as its own devices."""
    api_port, web_port = _free_port(), _free_port()
    nets = [f"127.{n}.{os.getpid() % 200 + 20}.0/24" for n in (88, 89)]
    fleets = [Fleet.build(3, mix="s19:1", seed=k, network=net, clock=ManualClock()) for k, net in enumerate(nets)]
    servers = [FleetServer(f, api_port=api_port, web_port=web_port) for f in fleets]  # the default bind
    try:
        for srv in servers:
            await srv.start()
        assert [srv.bind for srv in servers] == ["per-device", "per-device"]
        for fleet in fleets:
            for dev in fleet:
                reply = cg.decode_reply(await api(dev.ip, api_port, cg.encode_request("version")))
                assert cgp.parse_version(reply).miner_type == dev.spec.type_string
        assert all(srv.stats.api_requests == 3 for srv in servers)
    finally:
        for srv in servers:
            await srv.close()


async def test_a_taken_port_is_named_with_the_reason() -> None:
    """When a port cannot be had, the error says which port, for what, and why."""
    from pithead.fleetsim.server import SimServerError

    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        fleet = Fleet.build(2, mix="s19:1", seed=1, network="127.16.9.0/24", clock=ManualClock())
        for bind in ("shared", "per-device"):
            srv = FleetServer(fleet, api_port=taken, web_port=_free_port(), bind=bind)  # type: ignore[arg-type]
            with pytest.raises(SimServerError) as err:
                await srv.start()
            msg = str(err.value)
            assert f":{taken}, the cgminer API port" in msg and "already" in msg, msg
            assert ("every address" in msg) if bind == "shared" else ("127.16.9.1" in msg), msg
            assert srv._servers == []  # nothing is left listening
    # a big fleet, or port 0, still gets the shared wildcard listener (two descriptors for 24,000 devices)
    big = Fleet.build(1000, seed=1, clock=ManualClock())
    assert FleetServer(big, api_port=4028, web_port=80).bind == "shared"
    assert FleetServer(fleet, api_port=0, web_port=0).bind == "shared"

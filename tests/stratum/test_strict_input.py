"""Hostile input that looks almost right (issue 16, finding 5): hex fields that Python's own parsers would
take ("-1", "+1", "0x1", " 1", "1_0", bytes with spaces) are protocol violations on both sides of Stratum
V1, never a traceback; and spam that is well formed (unknown methods, shares for job ids that never
existed) is banned on the live server while an honest miner beside it keeps mining."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
import pytest

from pithead.stratum.v1.client import ClientConfig, ClientSession
from pithead.stratum.v1.errors import ProtocolViolation
from pithead.stratum.v1.wire import parse_hex32, parse_hex_bytes, parse_submit
from pithead.stratum.v1.work import NotifiedJob

from .rawclient import RawClient
from .test_server import USER, start_pool

#: What `int(x, 16)` or `bytes.fromhex` accept and no Stratum field may hold.
LAX_HEX = ["-1", "+1", "0x1", " 1", "1 ", "1_0", "-0", "0X1", "١", "\t1", "1\n"]
WAIT_S = 30.0


@pytest.mark.parametrize("bad", LAX_HEX)
def test_hex_u32_fields_take_hex_digits_only(bad: str) -> None:
    with pytest.raises(ProtocolViolation, match="hex digits"):
        parse_hex32(bad, "nonce")
    with pytest.raises(ProtocolViolation):
        parse_submit(("a.w", "1", "00000000", "6553f100", bad))
    with pytest.raises(ProtocolViolation):
        parse_submit(("a.w", "1", "00000000", bad, "00000000"))
    with pytest.raises(ProtocolViolation):
        parse_submit(("a.w", "1", "00000000", "6553f100", "00000000", bad))


def test_hex_fields_keep_what_miners_really_send() -> None:
    assert parse_hex32("1", "nonce") == 1  # unpadded (NerdMiner)
    assert parse_hex32("DEADbeef", "nonce") == 0xDEADBEEF  # either case
    sub = parse_submit(("a.w", "1", "00Ff0000", "6553f100", "0", "1fffe000"))
    assert (sub.extranonce2, sub.ntime, sub.nonce, sub.version_bits) == (b"\x00\xff\x00\x00", 0x6553F100, 0, 0x1FFFE000)
    for bad in ("123456789", "", None, 5):  # too long, empty, not a string
        with pytest.raises(ProtocolViolation):
            parse_hex32(bad, "nonce")


@pytest.mark.parametrize("bad", ["00 000000", " 0000000", "0000000", "-0000000", "0x000000", "00_00000", "", "zz"])
def test_byte_fields_take_whole_bytes_of_hex_digits_only(bad: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_hex_bytes(bad, "extranonce2", 16, min_bytes=1)
    with pytest.raises(ProtocolViolation):
        parse_submit(("a.w", "1", bad, "6553f100", "00000000"))


def _notify(**change: object) -> list[object]:
    params: dict[str, object] = {
        "job_id": "1", "prevhash": "00" * 32, "coinb1": "01000000", "coinb2": "ffffffff", "branch": ["11" * 32],
        "version": "20000000", "nbits": "1d00ffff", "ntime": "6553f100", "clean": True,
    }
    params.update(change)
    return list(params.values())


@pytest.mark.parametrize("field", ["version", "nbits", "ntime"])
@pytest.mark.parametrize("bad", ["-0000001", "+0000001", "0x000001", " 0000001", "0000_001", "0000001"])
def test_a_pools_notify_with_lax_hex_is_refused(field: str, bad: str) -> None:
    """The client's side: a pool's u32 fields are exactly 8 hex digits."""
    assert NotifiedJob.from_notify(_notify()).version == 0x20000000
    with pytest.raises(ProtocolViolation):
        NotifiedJob.from_notify(_notify(**{field: bad}))


@pytest.mark.parametrize(("field", "bad"), [("coinb1", "01 000000"), ("coinb2", " ffffffff"),
                                            ("branch", ["11" * 31 + " 1"]), ("prevhash", "00" * 31 + " 0")])
def test_a_pools_notify_with_spaced_bytes_is_refused(field: str, bad: object) -> None:
    with pytest.raises(ProtocolViolation):
        NotifiedJob.from_notify(_notify(**{field: bad}))


def _client() -> tuple[ClientSession, int]:
    """A client session that has sent its handshake; returns it and its subscribe's request id."""
    client = ClientSession(ClientConfig("a.w"))
    client.start()
    sent = [orjson.loads(x) for x in client.data_to_send().splitlines()]
    (sub,) = [m["id"] for m in sent if m["method"] == "mining.subscribe"]
    return client, sub


@pytest.mark.parametrize("en1", ["-1000000", "0x000001", "00 00000", "0000_000"])
def test_a_pools_subscribe_result_with_lax_extranonce1_is_refused(en1: str) -> None:
    client, sub = _client()
    client.receive_data(orjson.dumps({"id": sub, "result": [[], "0000000a", 4], "error": None}) + b"\n")
    assert client.subscribed
    client, sub = _client()
    with pytest.raises(ProtocolViolation, match="extranonce1"):
        client.receive_data(orjson.dumps({"id": sub, "result": [[], en1, 4], "error": None}) + b"\n")


@pytest.mark.parametrize("mask", ["-1", "0x1fffe0", " 1fffe00", "1fff_e000"])
def test_a_pools_version_mask_with_lax_hex_is_refused(mask: str) -> None:
    client, _ = _client()
    with pytest.raises(ProtocolViolation, match="set_version_mask"):
        client.receive_data(orjson.dumps({"id": None, "method": "mining.set_version_mask", "params": [mask]})
                            + b"\n")


# --- the live server ---------------------------------------------------------------------------------------


async def _closed(client: RawClient) -> None:
    await asyncio.wait_for(client._task, WAIT_S)


async def test_nonce_minus_one_on_a_live_job_is_a_protocol_error_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's exact reproducer: {"id":3,"method":"mining.submit","params":["ADDR.w","<live job>",
    "00000000","<job ntime>","-1"]} raised struct.error in the share hash (a traceback per line, the
    connection dropped, no ban score). Now: error 20 with the field named, the connection kept; ten of
    them are a flood, banned; an honest miner beside it keeps mining."""
    server, _, _, port = await start_pool()
    good = await RawClient.connect("127.0.0.1", port)
    bad = await RawClient.connect("127.0.0.1", port)
    try:
        await good.handshake(USER)
        await bad.handshake(USER)
        job = await bad.wait_notify()
        with caplog.at_level(logging.DEBUG):
            reply = await bad.call("mining.submit", [USER, job[0], "00000000", job[7], "-1"])
            assert reply["result"] is None and reply["error"][0] == 20 and "nonce" in reply["error"][1]
            for lax in LAX_HEX[1:]:  # the other forms, each a violation on the same live connection
                reply = await bad.call("mining.submit", [USER, job[0], "00000000", job[7], "00000000", lax])
                assert reply["error"][0] == 20, (lax, reply)
                if bad._task.done():
                    break
            await _closed(bad)  # ten violations: the ban
        assert server.admission.is_banned("127.0.0.1", server.clock())
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        good_job = await good.wait_notify()
        assert (await good.submit_one(USER, good_job))["result"] is True
    finally:
        await good.close()
        await bad.close()
        await server.stop()


@pytest.mark.parametrize("spam", ["unknown-method", "made-up-job-id"])
async def test_well_formed_spam_on_one_connection_is_banned_and_an_honest_miner_keeps_mining(spam: str) -> None:
    """20,000 unknown methods, or 20,000 submits for job ids that never existed, on one connection: banned
    within a bounded number; the honest miner beside it (same IP, connected before) still gets its shares
    accepted. A miner's few shares for a job id it was never sent (from before a restart) are not banned."""
    server, _, _, port = await start_pool()
    good = await RawClient.connect("127.0.0.1", port)
    bad = await RawClient.connect("127.0.0.1", port)
    try:
        await good.handshake(USER)
        job = await good.wait_notify()
        await bad.handshake(USER)
        for i in range(5):  # in-flight work from before a pool restart: answered, not banned
            r = await bad.call("mining.submit", [USER, f"before{i}", "00000000", job[7], "00000000"])
            assert r["error"][0] == 21
        if spam == "unknown-method":
            lines = [{"id": i, "method": "mining.nonsense", "params": []} for i in range(20_000)]
        else:
            lines = [{"id": i, "method": "mining.submit", "params": [USER, f"{i:x}x", "00000000", job[7], "0"]}
                     for i in range(20_000)]
        with contextlib.suppress(ConnectionError):
            await bad.send_raw(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        await _closed(bad)
        assert server.admission.is_banned("127.0.0.1", server.clock())
        assert server.metrics.shares_judged < 500  # banned long before the 20,000th
        r = await good.submit_one(USER, job)
        assert r["result"] is True
    finally:
        await good.close()
        await bad.close()
        await server.stop()

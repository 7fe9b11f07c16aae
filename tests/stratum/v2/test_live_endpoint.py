"""Attacks through the live SV2 endpoint (a `PoolServer` on loopback with its `Sv2Endpoint` beside it), each
next to an honest miner that must not notice: a tampered ciphertext, a replayed frame, an oversized frame,
a message of another subprotocol, a submit on another connection's channel id — each closes that one
connection with its reason logged, credits nothing, and crashes nothing. On the miner's side: a pool
certified by another authority, an expired certificate, a genuine certificate of the authority captured
for another static key — the miner refuses the pool once, with the reason, and does not retry (`pithead
miner` exits 1); a Reconnect is followed only to a server of the same authority. Also: the handshake
timeout, and a ban earned on V2 refusing the IP on V1 too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest

from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.stratum.client.connection import Backoff
from pithead.stratum.client.v2 import PoolRefused, Sv2Client, Sv2PoolAddress
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.server.v2 import Sv2Endpoint
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v2 import cert, noise, secp256k1
from pithead.stratum.v2.client import MinerChannelConfig
from pithead.stratum.v2.framing import encode_header
from pithead.stratum.v2.messages.mining import SubmitSharesError, SubmitSharesStandard, SubmitSharesSuccess
from pithead.template.sources.static import StaticTemplateSource
from stratum.helpers import regtest_template
from stratum.v2.harness import EASY_DIFFICULTY, HARD, USER, Mined, nonces, share_target, standard_work
from stratum.v2.rawclient import WAIT_S, Sv2Raw

pytestmark = pytest.mark.timeout(120)


class Sink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)

    def accepted(self, worker: str | None = None) -> list[ShareEvent]:
        return [e for e in self.events if isinstance(e, ShareEvent) and e.accepted
                and (worker is None or e.worker == worker)]


class LivePool:
    def __init__(self, server: PoolServer, endpoint: Sv2Endpoint, sink: Sink, v1_port: int, port: int) -> None:
        self.server, self.endpoint, self.sink, self.v1_port, self.port = server, endpoint, sink, v1_port, port

    @property
    def key(self) -> bytes:
        return self.endpoint.authority_key

    async def client(self) -> Sv2Raw:
        return await Sv2Raw.connect(self.port, self.key)


async def start(limits: ServerLimits | None = None, clock: Callable[[], float] | None = None,
                authority: bytes | None = None) -> LivePool:
    sink = Sink()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(1e6, EASY_DIFFICULTY, EASY_DIFFICULTY),
                      start_difficulty=EASY_DIFFICULTY)
    server = PoolServer(rules=rules, source=StaticTemplateSource(regtest_template(bits=HARD, curtime=int(time.time()))),
                        sink=sink, refresh_interval=3600, limits=limits)
    _, v1_port = await server.start("127.0.0.1", 0)
    endpoint = Sv2Endpoint(server, authority or secp256k1.new_secret(), clock=clock)
    _, port = await endpoint.start("127.0.0.1", 0)
    return LivePool(server, endpoint, sink, v1_port, port)


@pytest.fixture
async def live() -> AsyncIterator[LivePool]:
    pool = await start()
    try:
        yield pool
    finally:
        await pool.endpoint.stop()
        await pool.server.stop()


async def wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Honest:
    """A miner beside the attack: one standard channel; `share()` submits a good share and checks that it
    is acknowledged."""

    def __init__(self, client: Sv2Raw, channel_id: int, work: Mined) -> None:
        self.client, self.channel_id, self.work = client, channel_id, work
        self.next_nonce = 0
        self.seq = 0

    @classmethod
    async def join(cls, live: LivePool) -> Honest:
        client = await live.client()
        ok, job, prev = await client.standard_channel(USER.replace(".sv2", ".honest"))
        return cls(client, ok.channel_id, standard_work(job, prev))

    def wire(self) -> bytes:
        (nonce,) = nonces(self.work.header, share_target(), start=self.next_nonce)
        self.next_nonce = nonce + 1
        self.seq += 1
        return self.client.wire(SubmitSharesStandard(self.channel_id, self.seq, self.work.job_id, nonce,
                                                     self.work.ntime, self.work.version))

    async def share(self) -> None:
        self.client.send_raw(self.wire())
        reply = await self.client.recv()
        assert reply == SubmitSharesSuccess(self.channel_id, self.seq, 1, 0), reply


async def attack_closes(live: LivePool, data: Callable[[Sv2Raw, int, Mined], bytes], reason: str,
                        caplog: pytest.LogCaptureFixture) -> Sv2Raw:
    """Open an attacker's channel, send `data`, and check: its connection closes with `reason` in the log,
    nothing it sent is credited, and the honest miner beside it goes on."""
    honest = await Honest.join(live)
    await honest.share()
    attacker = await live.client()
    ok, job, prev = await attacker.standard_channel()
    credited = len(live.sink.accepted())
    with caplog.at_level(logging.INFO, logger="pithead.stratum.server.v2"):
        attacker.send_raw(data(attacker, ok.channel_id, standard_work(job, prev)))
        assert await attacker.closed()
        await wait_for(lambda: reason in caplog.text)
    assert len(live.sink.accepted()) == credited
    await honest.share()
    assert len(live.sink.accepted()) == credited + 1
    assert len(live.endpoint.connections) == 1  # only the honest one is left
    await honest.client.close()
    return attacker


def good_share(client: Sv2Raw, channel_id: int, work: Mined) -> bytes:
    (nonce,) = nonces(work.header, share_target(), start=1 << 20)
    return client.wire(SubmitSharesStandard(channel_id, 1, work.job_id, nonce, work.ntime, work.version))


async def test_a_tampered_ciphertext_closes_that_connection_only(live: LivePool, caplog: pytest.LogCaptureFixture
                                                                  ) -> None:
    def tampered(client: Sv2Raw, cid: int, work: Mined) -> bytes:
        wire = bytearray(good_share(client, cid, work))
        wire[-5] ^= 0x01  # inside the payload's MAC-protected ciphertext
        return bytes(wire)

    await attack_closes(live, tampered, "fails authentication", caplog)


async def test_a_replayed_frame_closes_that_connection_and_is_credited_once(live: LivePool,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    honest = await Honest.join(live)
    attacker = await live.client()
    ok, job, prev = await attacker.standard_channel()
    wire = good_share(attacker, ok.channel_id, standard_work(job, prev))
    attacker.send_raw(wire)
    assert isinstance(await attacker.recv(), SubmitSharesSuccess)
    with caplog.at_level(logging.INFO, logger="pithead.stratum.server.v2"):
        attacker.send_raw(wire)  # the same bytes again
        assert await attacker.closed()
        await wait_for(lambda: "fails authentication" in caplog.text)
    assert len([e for e in live.sink.accepted() if e.worker == USER]) == 1
    await honest.share()
    await honest.client.close()


async def test_an_oversized_frame_closes_that_connection(live: LivePool, caplog: pytest.LogCaptureFixture) -> None:
    def oversized(client: Sv2Raw, cid: int, work: Mined) -> bytes:
        return client.transport.encrypt(encode_header(0, True, 0x1A, 100_000) + bytes(100_000))

    await attack_closes(live, oversized, "frame of 100000 bytes", caplog)


async def test_a_message_of_another_subprotocol_closes_that_connection(live: LivePool,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    def template_distribution(client: Sv2Raw, cid: int, work: Mined) -> bytes:
        return client.transport.encrypt(encode_header(0, False, 0x71, 0))  # NewTemplate on a Mining connection

    await attack_closes(live, template_distribution, "Template Distribution subprotocol", caplog)


async def test_a_submit_on_another_connections_channel_is_refused_and_closes_the_submitter(
        live: LivePool, caplog: pytest.LogCaptureFixture) -> None:
    honest = await Honest.join(live)
    attacker = await live.client()
    await attacker.standard_channel()
    with caplog.at_level(logging.INFO, logger="pithead.stratum.server.v2"):
        # the honest miner's channel id and a share of its work: an attempt to steal its credit
        (nonce,) = nonces(honest.work.header, share_target(), start=1 << 21)
        await attacker.send(SubmitSharesStandard(honest.channel_id, 1, honest.work.job_id, nonce, honest.work.ntime,
                                                 honest.work.version))
        assert await attacker.recv() == SubmitSharesError(honest.channel_id, 1, "invalid-channel-id")
        assert await attacker.closed()
        await wait_for(lambda: "no channel of this connection" in caplog.text)
    assert live.sink.accepted() == []
    await honest.share()
    await honest.client.close()


async def test_a_client_that_never_sets_up_is_closed_after_the_handshake_timeout() -> None:
    live = await start(limits=ServerLimits(handshake_timeout=0.3, sweep_interval=0.1))
    try:
        silent = await live.client()  # Noise done, then nothing
        assert await silent.closed()
    finally:
        await live.endpoint.stop()
        await live.server.stop()


async def test_a_ban_earned_on_v2_refuses_the_ip_on_v1_too(live: LivePool) -> None:
    flooder = await live.client()
    ok, job, prev = await flooder.standard_channel()
    work = standard_work(job, prev)
    # shares that miss the target: a miner that never did the work, 150 times (each costs 1 of the 100
    # points of a ban, less what the wall clock forgives meanwhile)
    misses = nonces(work.header, share_target(), meeting=False, count=150)
    await flooder.send(*[SubmitSharesStandard(ok.channel_id, i, work.job_id, n, work.ntime, work.version)
                         for i, n in enumerate(misses)])
    assert await flooder.closed()
    assert live.server.admission.is_banned("127.0.0.1", time.time())
    reader, writer = await asyncio.open_connection("127.0.0.1", live.v1_port)
    try:
        async with asyncio.timeout(WAIT_S):
            assert await reader.read(100) == b""  # refused at once
    except ConnectionError:
        pass  # reset: refused all the same
    finally:
        writer.close()


# --- the miner's side ------------------------------------------------------------------------------------


async def miner_against(live: LivePool, pinned: bytes) -> Sv2Client:
    client = Sv2Client([Sv2PoolAddress("127.0.0.1", live.port, authority_key=pinned)], MinerChannelConfig(USER),
                       backoff=Backoff(initial=0.01, maximum=0.01), connect_timeout=WAIT_S)
    events: list[object] = []
    with pytest.raises(PoolRefused) as refused:
        async with asyncio.timeout(WAIT_S):
            await client.run(events.append)
    assert client.connect_attempts == 1  # refused once: no retry storm
    assert "certificate" in str(refused.value)
    return client


async def test_the_miner_refuses_a_pool_of_another_authority(live: LivePool) -> None:
    client = await miner_against(live, secp256k1.xonly_public(secp256k1.new_secret()))
    assert "not signed by the pinned authority key" in next(iter(client.refused.values()))
    assert live.sink.events == []


async def test_the_miner_refuses_an_expired_certificate() -> None:
    live = await start(clock=lambda: time.time() - 2 * cert.DEFAULT_VALIDITY)  # the pool's clock: hours behind
    try:
        client = await miner_against(live, live.key)
        assert "expired" in next(iter(client.refused.values()))
    finally:
        await live.endpoint.stop()
        await live.server.stop()


async def test_pithead_miner_stops_with_the_reason_when_the_key_does_not_match(live: LivePool) -> None:
    wrong = cert.encode_public_key(secp256k1.xonly_public(secp256k1.new_secret()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pithead.cli", "miner", "-o", f"stratum2+tcp://127.0.0.1:{live.port}/{wrong}",
        "-u", USER, "-t", "1", "--duration", "60",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert b"refusing every pool" in err and b"not signed by the pinned authority key" in err, err


async def test_the_miner_follows_a_reconnect_only_to_a_server_of_the_same_authority(live: LivePool) -> None:
    authority = live.endpoint.authority_secret
    same = Sv2Endpoint(live.server, authority)  # another server of the same pool (same key)
    _, same_port = await same.start("127.0.0.1", 0)
    other = Sv2Endpoint(live.server, secp256k1.new_secret())  # one that holds another key
    _, other_port = await other.start("127.0.0.1", 0)
    client = Sv2Client([Sv2PoolAddress("127.0.0.1", live.port, authority_key=live.key)], MinerChannelConfig(USER),
                       backoff=Backoff(initial=0.01, maximum=0.01), connect_timeout=WAIT_S)
    events: list[object] = []
    task = asyncio.create_task(client.run(events.append))
    try:
        await wait_for(lambda: any(c.connection is not None and c.connection.ready for c in live.endpoint.connections))
        (first,) = live.endpoint.connections
        assert first.connection is not None
        first.connection.reconnect("", same_port)
        first.flush()
        await wait_for(lambda: any(c.connection is not None and c.connection.ready for c in same.connections))
        assert client.current_pool is not None and client.current_pool.port == same_port
        (second,) = same.connections
        assert second.connection is not None
        second.connection.reconnect("127.0.0.1", other_port)  # to a server the pinned key does not vouch for
        second.flush()
        await wait_for(lambda: any(p.port == other_port for p in client.refused))
        assert "not signed by the pinned authority key" in " ".join(client.refused.values())
        # refused, and back to the pool it was configured with (which the redirect did not discredit)
        await wait_for(lambda: any(c.connection is not None and c.connection.ready for c in live.endpoint.connections))
        assert not task.done() and client.current_pool is not None and client.current_pool.port == live.port
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await same.stop()
        await other.stop()


async def test_the_miner_refuses_a_certificate_issued_for_another_static_key(live: LivePool) -> None:
    """A man in the middle with a genuine certificate of the pool's authority — captured from another
    connection, so signed for that connection's static key — and a static key of its own: the signature
    does not cover its key, and the miner refuses it."""
    authority = live.endpoint.authority_secret
    captured = cert.issue(authority, secp256k1.xonly_public(secp256k1.new_secret()), int(time.time()),
                          int(time.time()) + cert.DEFAULT_VALIDITY)

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        responder = noise.Responder(secp256k1.new_secret(), captured)
        step = responder.feed(await reader.readexactly(noise.ACT1_SIZE))
        writer.write(step.send)
        with contextlib.suppress(Exception):
            await reader.read()  # until the miner hangs up
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = Sv2Client([Sv2PoolAddress("127.0.0.1", port, authority_key=live.key)], MinerChannelConfig(USER),
                           backoff=Backoff(initial=0.01, maximum=0.01), connect_timeout=WAIT_S)
        with pytest.raises(PoolRefused, match="not signed by the pinned authority key for this server's static key"):
            async with asyncio.timeout(WAIT_S):
                await client.run(lambda event: None)
        assert client.connect_attempts == 1
    finally:
        server.close()
        await server.wait_closed()

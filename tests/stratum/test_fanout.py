"""The native notify fan-out (`pithead.stratum.server._fanout`) and the pool's broadcast path over it.

The C function on raw sockets: whole lines delivered, a full socket buffer reported as a partial write
(the caller hands the rest to the transport), errors as -errno, bad input refused. The pool: with the
fan-out on (several threads) or off, every miner gets every notify exactly once and in order — including
a miner that stopped reading, whose notifies queue behind what its socket could not take.
"""

from __future__ import annotations

import asyncio
import errno
import socket

import orjson
import pytest

from pithead.chain.address import address_to_script
from pithead.chain.params import REGTEST
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server import pool as pool_mod
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.static import StaticTemplateSource

from .helpers import POOL_ADDRESS, SOLO_ADDRESS, regtest_template
from .rawclient import RawClient

_fanout = pool_mod._fanout
needs_native = pytest.mark.skipif(_fanout is None, reason="the native fan-out is not built")

USER = SOLO_ADDRESS + ".fan"


@needs_native
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_send_all_delivers_whole_lines_and_reports_the_rest(threads: int) -> None:
    pairs = [socket.socketpair() for _ in range(7)]
    try:
        line = b'{"id":null,"method":"mining.notify","params":["1"]}\n'
        assert _fanout.send_all([a.fileno() for a, _ in pairs], line, threads) == []
        assert all(b.recv(4096) == line for _, b in pairs)
        # a socket whose buffer is full takes nothing (or part): reported with what it took
        full_a = pairs[3][0]
        full_a.setblocking(False)
        with pytest.raises(BlockingIOError):
            while True:
                full_a.send(b"x" * 65536)
        big = b"y" * 300_000  # more than any socket buffer: every socket takes only part of it
        out = dict(_fanout.send_all([a.fileno() for a, _ in pairs], big, threads))
        assert set(out) == set(range(7))
        assert 0 <= out[3] < len(big) and all(0 < out[i] < len(big) for i in out if i != 3)
        # a peer that has gone: -EPIPE (no SIGPIPE), the others still served
        fresh = [socket.socketpair() for _ in range(3)]
        pairs += fresh
        fresh[1][1].close()
        out = dict(_fanout.send_all([a.fileno() for a, _ in fresh], b"z\n", threads))
        assert out.get(1) in (-errno.EPIPE, -errno.ECONNRESET) and 0 not in out and 2 not in out
        assert fresh[0][1].recv(10) == b"z\n" and fresh[2][1].recv(10) == b"z\n"
    finally:
        for a, b in pairs:
            a.close()
            b.close()


@needs_native
def test_send_all_refuses_bad_input() -> None:
    with pytest.raises(TypeError):
        _fanout.send_all((1, 2), b"x", 1)  # a list, not a tuple
    with pytest.raises(ValueError, match="file descriptor"):
        _fanout.send_all([-1], b"x", 1)
    with pytest.raises(TypeError):
        _fanout.send_all(["3"], b"x", 1)
    assert _fanout.send_all([], b"x", 4) == []
    (i, err), = _fanout.send_all([1_000_000], b"x", 1)  # not open: -EBADF, nothing else happens
    assert (i, err) == (0, -errno.EBADF)


async def _notifies(c: RawClient, count: int) -> list[str]:
    ids = []
    while len(ids) < count:
        ids.append((await c.wait_notify(wait_s=20))[0])
    return ids


@pytest.mark.parametrize("threads", [0, 1, 2])
async def test_every_miner_gets_every_notify_once_and_in_order(threads: int) -> None:
    if threads and _fanout is None:
        pytest.skip("the native fan-out is not built")
    source = StaticTemplateSource(regtest_template())
    rules = PoolRules(mode="pool", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9), start_difficulty=1e-5)
    server = PoolServer(rules=rules, source=source, pool_script=address_to_script(POOL_ADDRESS, REGTEST),
                        refresh_interval=3600, broadcast_threads=threads)
    _, port = await server.start("127.0.0.1", 0)
    clients: list[RawClient] = []
    stalled_r = stalled_w = None
    try:
        for i in range(12):
            c = await RawClient.connect("127.0.0.1", port)
            await c.handshake(f"{USER}{i}")
            await c.wait_notify(clean=True)
            clients.append(c)
        # a miner that subscribes, then stops reading while asking for replies, until the pool holds some
        # of its bytes in the transport (its socket full): its notifies must queue behind them, in order
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", port))
        raw.setblocking(False)
        stalled_r, stalled_w = await asyncio.open_connection(sock=raw)
        stalled_w.transport.pause_reading()
        stalled_w.write(b'{"id":1,"method":"mining.subscribe","params":[]}\n'
                        b'{"id":2,"method":"mining.authorize","params":["' + USER.encode() + b'.s","x"]}\n')
        conn = None
        pings = 0
        async with asyncio.timeout(20):
            while conn is None or conn.transport is None or not conn.transport.get_write_buffer_size():
                stalled_w.write(b"".join(b'{"id":%d,"method":"mining.ping","params":[]}\n' % (100 + pings + i)
                                         for i in range(3000)))
                pings += 3000
                await stalled_w.drain()
                await asyncio.sleep(0.02)
                conn = next((c for c in server.connections if c.session is not None
                             and c.session.primary_worker is not None
                             and c.session.primary_worker.name.endswith(".s")), None)
        blocks = 40
        for h in range(blocks):
            source.push(regtest_template(height=200 + h, n_txs=40), new_block=True)
            await asyncio.sleep(0.01)
        for c in clients:  # exactly one notify per block, in the order the blocks came
            ids = await _notifies(c, blocks)
            assert len(set(ids)) == blocks
            assert c.notes.empty() or all(m["method"] != "mining.notify" for m in list(c.notes._queue))  # type: ignore[attr-defined]
        assert server.metrics.last_broadcast_miners == 13
        # the stalled miner now reads everything: its replies, then every notify in order, none lost
        stalled_w.transport.resume_reading()
        ids: list[object] = []
        jobs: list[str] = []
        async with asyncio.timeout(30):
            while len(jobs) < blocks + 1:
                msg = orjson.loads(await stalled_r.readline())
                if msg.get("method") == "mining.notify":
                    jobs.append(msg["params"][0])
                elif msg.get("id") is not None:
                    ids.append(msg["id"])
        assert len(set(jobs)) == blocks + 1  # the first job plus one per block, none twice
        assert ids[:2] == [1, 2]
        answered = [i for i in ids if isinstance(i, int) and i >= 100]
        assert answered == sorted(answered) and len(answered) >= 1  # replies in order, before the notifies
    finally:
        for c in clients:
            await c.close()
        if stalled_w is not None:
            stalled_w.close()
        await server.stop()


@needs_native
@pytest.mark.parametrize("threads", [1, 2])
async def test_a_notify_never_jumps_ahead_of_bytes_the_transport_still_holds(threads: int) -> None:
    """The dangerous moment for a writer that bypasses the transport: the miner's socket has drained, but
    the transport still holds the tail of an earlier line (the event loop has not run to flush it). A
    notify written by fd then would land in the middle of that line. The pool must queue it instead."""
    import threading
    import time

    source = StaticTemplateSource(regtest_template())
    rules = PoolRules(mode="pool", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9), start_difficulty=1e-5)
    server = PoolServer(rules=rules, source=source, pool_script=address_to_script(POOL_ADDRESS, REGTEST),
                        refresh_interval=3600, broadcast_threads=threads)
    _, port = await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await loop.sock_connect(raw, ("127.0.0.1", port))
    got = bytearray()
    stop = threading.Event()
    reader: threading.Thread | None = None
    try:
        await loop.sock_sendall(raw, b'{"id":1,"method":"mining.subscribe","params":[]}\n'
                                     b'{"id":2,"method":"mining.authorize","params":["' + USER.encode() + b'","x"]}\n')
        await asyncio.sleep(0.2)
        (conn,) = list(server.connections)
        assert conn.transport is not None
        # a small, fixed send buffer on the pool's side (no autotuning to megabytes): fills in a few batches
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        pings = 0
        async with asyncio.timeout(20):  # not reading: replies fill the socket, then the transport holds some
            while not conn.transport.get_write_buffer_size():
                await loop.sock_sendall(raw, b"".join(
                    b'{"id":%d,"method":"mining.ping","params":[]}\n' % (100 + pings + i) for i in range(300)))
                pings += 300
                await asyncio.sleep(0.02)

        def drain() -> None:
            raw.setblocking(True)
            raw.settimeout(0.2)
            while not stop.is_set():
                try:
                    chunk = raw.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        time.sleep(0.3)  # noqa: ASYNC251 - on purpose: the loop blocked, the socket drains, the transport keeps its bytes
        assert conn.transport.get_write_buffer_size() > 0
        server.on_template(regtest_template(height=500), new_block=True)  # at exactly that moment
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.to_thread(reader.join, 5)
        reader = None
        lines = bytes(got).split(b"\n")
        assert lines[-1] == b"" or lines[-1].startswith(b"{")  # a line may still be arriving
        parsed = [orjson.loads(x) for x in lines[:-1]]  # every line whole: nothing wrote into the middle
        notifies = [m for m in parsed if m.get("method") == "mining.notify"]
        assert len(notifies) == 2 and notifies[1]["params"][8] is True
    finally:
        stop.set()
        if reader is not None:
            reader.join(5)
        raw.close()
        await server.stop()

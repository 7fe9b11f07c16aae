"""stratum+ssl: the pool's Stratum endpoint over TLS, from `[pool] tls_cert_file`/`tls_key_file` (a throwaway
self-signed certificate made in the test), and the client shell's stratum+ssl pools.

A miner over TLS handshakes, gets its clean job, and gets a new block's notify through the broadcast path:
with TLS the native fan-out (which writes plaintext straight to the socket) must stay off, so every byte
goes through the TLS transport. A plain-TCP miner on the TLS port gets nothing it could take for Stratum,
and a certificate the client does not trust is refused.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import orjson
import pytest

from pithead.config import ConfigError, PoolConfig, validate
from pithead.stratum.client.connection import (
    Connected,
    Disconnected,
    PoolAddress,
    StratumClient,
    parse_pool_url,
    tls_context,
)
from pithead.stratum.server.build import build_server, tls_from_config
from pithead.stratum.v1.client import ClientConfig, NewWork
from pithead.template.sources.static import StaticTemplateSource

from .helpers import SOLO_ADDRESS, regtest_template
from .rawclient import RawClient
from .tlscert import write_self_signed

WAIT_S = 20.0


async def test_a_miner_over_tls_gets_its_jobs(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    cfg = PoolConfig(port=0, tls_cert_file=str(cert), tls_key_file=str(key), start_difficulty=1e-6,
                     min_difficulty=1e-6)
    source = StaticTemplateSource(regtest_template(bits=0x1D00FFFF))
    server = build_server(cfg, source)
    assert server.ssl is not None
    _, port = await server.start("127.0.0.1", 0)
    try:
        ctx = tls_context(str(cert))
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        miner = RawClient(r, w)
        await miner.handshake(SOLO_ADDRESS + ".tls")
        first = await miner.wait_notify(clean=True, wait_s=WAIT_S)
        assert all(c.fd == -1 for c in server.connections)  # the fan-out never writes to a TLS socket
        # a new block goes out through the broadcast path, readable through TLS
        server.on_template(regtest_template(bits=0x1D00FFFF, height=102), new_block=True)
        second = await miner.wait_notify(clean=True, wait_s=WAIT_S)
        assert second[0] != first[0]
        reply = await miner.submit_one(SOLO_ADDRESS + ".tls", second)
        assert reply["error"] is None and reply["result"] is True, reply
        await miner.close()

        # plain TCP on the TLS port: the server answers nothing a miner could read as Stratum
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(orjson.dumps({"id": 1, "method": "mining.subscribe", "params": []}) + b"\n")
        await w.drain()
        data = await asyncio.wait_for(r.read(4096), WAIT_S)
        assert b"mining" not in data and b"result" not in data
        w.close()

        # a client that does not trust the certificate is refused
        with pytest.raises(ssl.SSLError):
            await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context())
    finally:
        await server.stop()


async def test_the_client_shell_mines_through_stratum_ssl(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    source = StaticTemplateSource(regtest_template(bits=0x1D00FFFF))
    server = build_server(PoolConfig(port=0, tls_cert_file=str(cert), tls_key_file=str(key)), source)
    _, port = await server.start("127.0.0.1", 0)
    pool = parse_pool_url(f"stratum+ssl://127.0.0.1:{port}")
    assert pool == PoolAddress("127.0.0.1", port, tls=True) and str(pool).startswith("stratum+ssl://")
    client = StratumClient([pool], ClientConfig(SOLO_ADDRESS + ".shell"), ssl_context=tls_context(str(cert)))
    got: asyncio.Future[NewWork] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    def on_event(ev: object) -> None:
        seen.append(ev)
        if isinstance(ev, NewWork) and not got.done():
            got.set_result(ev)

    task = asyncio.create_task(client.run(on_event))
    try:
        work = await asyncio.wait_for(got, WAIT_S)
        assert work.work.extranonce1 and any(isinstance(e, Connected) for e in seen)
    finally:
        client.stop()
        await asyncio.wait_for(task, WAIT_S)
        await server.stop()
    assert any(isinstance(e, Disconnected) for e in seen)


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pool\.tls_cert_file"):
        validate(PoolConfig(tls_cert_file="cert.pem"))  # a certificate without its key
    with pytest.raises(ConfigError, match=r"pool\.tls_cert_file: no such file"):
        tls_from_config(str(tmp_path / "missing.pem"), str(tmp_path / "missing.key"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot use certificate"):
        tls_from_config(str(tmp_path / "junk.pem"), str(tmp_path / "junk.pem"))
    assert tls_from_config(None, None) is None

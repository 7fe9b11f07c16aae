"""`pithead pool --sv2-port 0 --sv2-authority-secret-key-file KEY` against the embedded node: the banner
names the SV2 endpoint with the key miners pin, a miner opens a channel there and gets a share accepted,
and SIGTERM stops both endpoints cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from pithead.node.node import EmbeddedNode
from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.channels import HASHES_PER_DIFF1
from pithead.stratum.v2.messages.mining import SubmitSharesStandard, SubmitSharesSuccess
from pithead.stratum.v2.types import int_from_u256
from stratum.helpers import SOLO_ADDRESS
from stratum.v2.harness import nonces, open_standard, setup_connection, standard_work
from stratum.v2.rawclient import Sv2Raw

pytestmark = pytest.mark.timeout(120)

#: The pool's default minimum difficulty (1e-4, a hash in 65,536 meets it) asked for through the nominal
#: hashrate, so the test finds a share with hashlib in a moment.
HASHRATE = 1e-4 * HASHES_PER_DIFF1 / 10.0


async def test_pithead_pool_serves_sv2_beside_v1(tmp_path: Path) -> None:
    secret = secp256k1.new_secret()
    key_file = tmp_path / "authority.key"
    key_file.write_text(cert.encode_secret_key(secret) + "\n")
    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pithead.cli", "pool", "--port", "0", "--node", node.rpc_url,
            "--cookie", str(node.cookie_path), "--mode", "solo", "--sv2-port", "0",
            "--sv2-authority-secret-key-file", str(key_file), "-v",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        try:
            found = None
            async with asyncio.timeout(60):
                while found is None:
                    line = (await proc.stdout.readline()).decode()
                    assert line, "pithead pool exited early"
                    found = re.search(r"Stratum V2 on stratum2\+tcp://127\.0\.0\.1:(\d+)/(\w+)", line)
            port, key = int(found.group(1)), found.group(2)
            assert cert.decode_public_key(key) == secp256k1.xonly_public(secret)  # the file's key
            client = await Sv2Raw.connect(port, cert.decode_public_key(key))
            await client.send(setup_connection(), open_standard(user=SOLO_ADDRESS + ".cli", hashrate=HASHRATE))
            await client.recv_until("SetupConnection.Success")
            ok, job, prev = await client.recv(), await client.recv(), await client.recv()
            work = standard_work(job, prev)  # type: ignore[arg-type]
            (nonce,) = nonces(work.header, int_from_u256(ok.target))  # type: ignore[attr-defined]
            await client.send(SubmitSharesStandard(ok.channel_id, 1, work.job_id, nonce, work.ntime,  # type: ignore[attr-defined]
                                                   work.version))
            assert isinstance(await client.recv_until("SubmitShares.Success"), SubmitSharesSuccess)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await proc.wait() == 0
            assert await client.closed()  # the pool closed our connection on the way out
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

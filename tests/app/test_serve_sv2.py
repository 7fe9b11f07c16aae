"""`pithead serve` with `[pool] sv2_port`: the Stratum V2 endpoint starts beside the V1 one from the config
(the authority key read from its file), a V1 and a V2 reference miner mine on the one pool at once, and
the ledger credits both workers alike. A key file that is missing or holds no key stops the start with
the key named."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from pithead.app.parts import read_sv2_authority
from pithead.config import ConfigError, PoolConfig
from pithead.miner.runner import Miner, MinerOptions
from pithead.node.node import EmbeddedNode
from pithead.stratum.client.connection import parse_pool_url
from pithead.stratum.client.v2 import parse_sv2_url
from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.channels import HASHES_PER_DIFF1, ChannelKind
from stratum.helpers import POOL_ADDRESS, SOLO_ADDRESS

pytestmark = [pytest.mark.timeout(150)]

WAIT_S = 60.0  # generous: two shared cores, two miners hashing
SHARE_DIFF = 0.002  # regtest: every share is a block too; ~8.6M hashes each keeps them to a few a second
SHARE_INTERVAL = 10.0


async def _rpc(node: EmbeddedNode, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(node.rpc_url, auth=node.auth, json={"id": 1, "method": method, "params": list(params)})
        data = r.json()
        assert data["error"] is None, data
        return data["result"]


def _key_file(path: Path) -> tuple[Path, bytes]:
    secret = secp256k1.new_secret()
    path.write_text(cert.encode_secret_key(secret) + "\n")
    return path, secp256k1.xonly_public(secret)


def _config(path: Path, node: EmbeddedNode, pool_address: str, key_file: Path, workers: int = 1) -> Path:
    path.write_text(
        f'data_dir = "{path.parent / "data"}"\n'
        "[pool]\n"
        f'bind = "127.0.0.1"\nport = 0\nmode = "pool"\nnetwork = "regtest"\npool_address = "{pool_address}"\n'
        f"min_difficulty = 1e-8\nstart_difficulty = {SHARE_DIFF}\nshare_interval = {SHARE_INTERVAL}\n"
        f'refresh_interval = 0.5\nsv2_port = 0\nsv2_authority_secret_key_file = "{key_file}"\nworkers = {workers}\n'
        f'[[pool.nodes]]\nurl = "{node.rpc_url}"\ncookie_file = "{node.cookie_path}"\n'
        '[ledger]\nmaturity_interval = 0.2\npayouts = "off"\n'
        '[web]\nbind = "127.0.0.1"\nport = 0\n'
    )
    return path


@pytest.mark.parametrize("workers", [1, 2])  # serve runs the pool in worker processes: V2 in each, beside V1
async def test_serve_runs_v1_and_v2_side_by_side_and_the_ledger_credits_both(tmp_path: Path, workers: int) -> None:
    from pithead.app.demo import Running
    from pithead.app.production import ServeOptions, serve

    async with EmbeddedNode(tmp_path / "node", rpc_port=0) as node:
        pool_address = str(await _rpc(node, "getnewaddress", "pool"))
        key_file, authority_key = _key_file(tmp_path / "sv2.key")
        config = _config(tmp_path / "pithead.toml", node, pool_address, key_file, workers)
        stop = asyncio.Event()
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        lines: list[str] = []
        task = asyncio.create_task(serve(ServeOptions(str(config), print_fn=lines.append), stop, ready.set_result))
        done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        running = ready.result()
        miners: list[asyncio.Task[Any]] = []
        try:
            assert running.sv2_url is not None and running.stratum_url is not None and running.web_url is not None
            sv2 = parse_sv2_url(running.sv2_url)
            assert sv2.authority_key == authority_key  # the key of the file, as miners pin it
            assert f"  stratum v2   {running.sv2_url}" in lines  # the banner says where, and the key
            v1_user, v2_user = f"{SOLO_ADDRESS}.v1", f"{POOL_ADDRESS}.v2"
            v1 = Miner(MinerOptions(pools=(parse_pool_url(running.stratum_url),), username=v1_user, threads=1,
                                    suggest_difficulty=SHARE_DIFF))
            v2 = Miner(MinerOptions(pools=(sv2,), username=v2_user, threads=1, sv2_channel=ChannelKind.STANDARD,
                                    nominal_hash_rate=SHARE_DIFF * HASHES_PER_DIFF1 / SHARE_INTERVAL))
            miners = [asyncio.create_task(m.run()) for m in (v1, v2)]
            async with httpx.AsyncClient(base_url=running.web_url, timeout=10) as client:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT_S
                workers: dict[str, Any] = {}
                while not (workers.get(v1_user, {}).get("accepted", 0) >= 2
                           and workers.get(v2_user, {}).get("accepted", 0) >= 2):
                    assert loop.time() < deadline, f"the ledger did not credit both: {workers}"
                    await asyncio.sleep(0.2)
                    r = await client.get("/api/workers")
                    if r.status_code == 200:
                        workers = {w["worker"]: w for w in r.json()}
                assert workers[v1_user]["address"] == SOLO_ADDRESS and workers[v2_user]["address"] == POOL_ADDRESS
                assert workers[v2_user]["last_difficulty"] > 0
        finally:
            for m in miners:
                m.cancel()
            await asyncio.gather(*miners, return_exceptions=True)
            stop.set()
            await asyncio.wait_for(task, 60)


def test_a_missing_or_bad_key_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    assert read_sv2_authority(PoolConfig()) is None  # off: nothing is read
    missing = PoolConfig(sv2_port=3336, sv2_authority_secret_key_file=str(tmp_path / "nope.key"))
    with pytest.raises(ConfigError, match=r"pool\.sv2_authority_secret_key_file: cannot read"):
        read_sv2_authority(missing)
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"pool\.sv2_authority_secret_key_file: .*base58check"):
        read_sv2_authority(PoolConfig(sv2_port=3336, sv2_authority_secret_key_file=str(bad)))
    good, key = _key_file(tmp_path / "good.key")
    secret = read_sv2_authority(PoolConfig(sv2_port=3336, sv2_authority_secret_key_file=str(good)))
    assert secret is not None and secp256k1.xonly_public(secret) == key

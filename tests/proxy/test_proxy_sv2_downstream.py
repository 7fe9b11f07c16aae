"""The proxy's Stratum V2 side for the machines: `pithead miner` over SV2 (a standard channel and an
extended one) -> the proxy (its own authority key; the pool's SV2 shell on the proxy's server) -> a V1 pool
(pithead's, `pithead.app.pool.serve`, on a hand-fed template with a difficulty-1 network target).

Each channel's extranonce1 is a tag from the proxy's allocator, routed to an upstream connection like a V1
machine; every share the channels' miners are told is accepted was judged by the proxy; every one the proxy
forwarded was accepted upstream exactly once, none rejected or lost; a channel's difficulty is never set
above the pool's.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pithead.chain.compact import DIFF1_TARGET
from pithead.config import ConfigError, PoolConfig, ProxyConfig, UpstreamPool
from pithead.miner.runner import Miner, MinerOptions
from pithead.proxy.build import build_proxy
from pithead.proxy.proxy import FarmProxy
from pithead.stratum.client.v2 import Sv2PoolAddress, parse_sv2_url
from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.channels import ChannelKind
from pithead.template.sources.static import StaticTemplateSource
from pithead.web.proxy import credited as credited_ages
from pithead.web.proxy import racks
from stratum.helpers import regtest_template

from .harness import QUICK, Upstream, stop_all, sv2_key_file, wait_for

pytestmark = pytest.mark.timeout(180)

UPSTREAM_DIFFICULTY = 1e-4
"""~430,000 hashes per share the pool credits: a few a second from one thread of the native core."""
MACHINE_DIFFICULTY = 1e-2
"""What a channel starts at: above the pool's, so the proxy must bring it down (a SetTarget) first."""


async def test_pithead_miner_over_sv2_mines_through_the_proxy_to_a_v1_pool() -> None:
    cfg = PoolConfig(port=0, mode="solo", network="regtest", refresh_interval=3600.0,
                     start_difficulty=UPSTREAM_DIFFICULTY, min_difficulty=UPSTREAM_DIFFICULTY,
                     max_difficulty=UPSTREAM_DIFFICULTY, share_interval=1000.0)
    up = Upstream("a", cfg, lambda: StaticTemplateSource(regtest_template(bits=0x1D00FFFF, height=200,
                                                                          curtime=int(time.time()))))
    await up.start()
    settings = replace(QUICK, start_difficulty=MACHINE_DIFFICULTY, min_difficulty=1e-9, share_interval=1000.0)
    proxy = FarmProxy(settings, [up.spec(0)], sv2_authority=secp256k1.new_secret())
    await proxy.start("127.0.0.1", 0, sv2_port=0)
    assert proxy.sv2_url is not None and proxy.sv2 is not None
    address = parse_sv2_url(proxy.sv2_url)
    miners = {kind: Miner(MinerOptions(pools=(address,), username=f"rack3.{kind.value}", threads=1,
                                       sv2_channel=kind))
              for kind in (ChannelKind.STANDARD, ChannelKind.EXTENDED)}
    runs = [asyncio.create_task(m.run(duration=None)) for m in miners.values()]
    try:
        def credited(worker: str) -> int:
            figures = proxy.machines.machines.get(worker)
            return 0 if figures is None else figures.counts.accepted

        await wait_for(lambda: all(credited(f"rack3.{k.value}") >= 3 for k in miners),
                       "shares of both channels credited upstream")
        # both channels were brought down to the pool's difficulty, routed like V1 machines
        targets = [ch.level.target for c in proxy.sv2.connections if c.connection is not None
                   for ch in c.connection._channels.values()]
        assert len(targets) == 2
        assert all(DIFF1_TARGET / t <= UPSTREAM_DIFFICULTY * (1 + 1e-9) for t in targets)
        assert proxy.snapshot()["machines"]["sv2_connections"] == 2
        # the SV2 machines are machines like V1 ones: in the per-machine figures, the racks and the farm's feed
        snap = {m["worker"]: m for m in proxy.machine_snapshot(time.time())}
        for k in miners:
            got = snap[f"rack3.{k.value}"]
            assert (got["sessions"], got["protocols"], got["remote"], got["upstream"]) == (1, ["sv2"], ["127.0.0.1"], "a")
            assert got["difficulty"] <= UPSTREAM_DIFFICULTY * (1 + 1e-9) and len(got["tags"]) == 1
            assert got["pool"]["accepted"] >= 3
        (rack,) = racks(proxy)
        assert rack["machines"] == rack["mining"] == 2 and rack["accepted"] >= 6
        assert set(credited_ages(proxy)["machines"]) == {"rack3.standard", "rack3.extended"}
        for m in miners.values():
            assert m.client is not None
            m.client.stop()
        await asyncio.wait_for(asyncio.gather(*runs), 30)
        await wait_for(lambda: proxy.figures["a"].counts.in_flight == 0, "every answer upstream")
        counts = proxy.figures["a"].counts
        assert not counts.rejected and not counts.lost, counts
        assert counts.forwarded == counts.accepted == len(up.sink.accepted) and not up.sink.rejected
        for m in miners.values():
            assert m.status.accepted > 0 and m.status.rejected == 0
    finally:
        for m in miners.values():
            if m.client is not None:
                m.client.stop()
        await asyncio.wait(runs, timeout=30)
        await stop_all(proxy, up)


def test_the_sv2_settings_of_proxy_config(tmp_path: Path) -> None:
    key_file, public = sv2_key_file(tmp_path / "proxy.key")
    pool_key = cert.encode_public_key(secp256k1.xonly_public(secp256k1.new_secret()))
    upstreams = (UpstreamPool(url=f"stratum2+tcp://127.0.0.1:3336/{pool_key}", user="acct.farm", name="v2"),
                 UpstreamPool(url="stratum+tcp://127.0.0.1:3333", user="acct.farm", name="v1"))
    proxy = build_proxy(ProxyConfig(upstreams=upstreams, sv2_port=0, sv2_authority_secret_key_file=str(key_file)))
    assert proxy.sv2 is not None and proxy.sv2.authority_key == public
    assert isinstance(proxy.upstreams["v2"].address, Sv2PoolAddress)
    assert not isinstance(proxy.upstreams["v1"].address, Sv2PoolAddress)
    assert build_proxy(ProxyConfig(upstreams=upstreams)).sv2 is None  # V1 only unless sv2_port is set
    bad = {
        "proxy.sv2_authority_secret_key_file: the Stratum V2 side needs": ProxyConfig(upstreams=upstreams, sv2_port=0),
        "proxy.sv2_port: is the V1 port": ProxyConfig(upstreams=upstreams, port=3334, sv2_port=3334,
                                                       sv2_authority_secret_key_file=str(key_file)),
        "proxy.sv2_authority_secret_key_file: cannot read": ProxyConfig(
            upstreams=upstreams, sv2_port=0, sv2_authority_secret_key_file=str(tmp_path / "nope")),
        "proxy.upstreams[0].url: a Stratum V2 pool is pinned by its authority key": ProxyConfig(
            upstreams=(UpstreamPool(url="stratum2+tcp://127.0.0.1:3336", user="acct.farm"),)),
        "proxy.upstreams[0]: 'stratum2+tcp://127.0.0.1:3336/notakey'": ProxyConfig(
            upstreams=(UpstreamPool(url="stratum2+tcp://127.0.0.1:3336/notakey", user="acct.farm"),)),
    }
    for message, cfg in bad.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_proxy(cfg)

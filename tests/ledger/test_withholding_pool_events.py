"""The pool tells the ledger each share's odds: every ShareEvent (and BlockEvent) carries the network
difficulty of its own job, so blocks expected are summed with the D in force for each share, not with
whatever the ledger last heard (on the demo chain D changes with every block). Against pithead's pool on
loopback, with a raw Stratum client (tests/stratum/rawclient.py)."""

from __future__ import annotations

import pytest

from pithead.chain.compact import bits_to_target, target_to_difficulty
from pithead.chain.params import REGTEST
from pithead.events import BlockEvent, ShareEvent
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.static import StaticTemplateSource
from stratum.helpers import SOLO_ADDRESS, regtest_template
from stratum.rawclient import RawClient

HARD = 0x1D00FFFF  # difficulty 1: tiny shares are never blocks
REGTEST_BITS = 0x207FFFFF  # every other hash is a block
USER = SOLO_ADDRESS + ".rig1"


class ListSink:
    def __init__(self) -> None:
        self.events: list[ShareEvent | BlockEvent] = []

    def put(self, event: ShareEvent | BlockEvent) -> None:
        self.events.append(event)


@pytest.mark.parametrize("bits", [HARD, REGTEST_BITS])
async def test_share_and_block_events_carry_their_jobs_network_difficulty(bits: int) -> None:
    source = StaticTemplateSource(regtest_template(bits=bits))
    sink = ListSink()
    rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9), start_difficulty=1e-5)
    server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=3600)
    _, port = await server.start("127.0.0.1", 0)
    c = await RawClient.connect("127.0.0.1", port)
    try:
        await c.handshake(USER)
        job = await c.wait_notify(clean=True)
        r = await c.submit_one(USER, job, diff=1e-5 if bits == HARD else 1e-9)
        assert r["result"] is True, r
        (share,) = [e for e in sink.events if isinstance(e, ShareEvent)]
        expected = target_to_difficulty(bits_to_target(bits))
        assert share.network_difficulty == expected and share.network_difficulty > 0
        if bits == REGTEST_BITS:  # the share was a block: its event, once submitted, carries the same D
            await server.stop()  # waits for the submission (a static source accepts nothing: refused)
            (found,) = [e for e in sink.events if isinstance(e, BlockEvent)]
            assert found.network_difficulty == expected
    finally:
        await c.close()
        await server.stop()

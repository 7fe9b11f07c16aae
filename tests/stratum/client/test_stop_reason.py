"""A miner that stops says so: its last Disconnected is not blamed on the pool.

Operator QA: every `pithead miner --duration N` ended with "<pool>: closed by pool", because stop() closes
the connection and the read loop took the end of the stream for the pool hanging up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pithead.stratum.client.connection import STOPPED_REASON, Disconnected, StratumClient
from pithead.stratum.v1.client import ClientConfig, NewWork

from .test_connection import ScriptedPeer


async def test_stopping_is_not_reported_as_the_pool_closing() -> None:
    events: list[Any] = []
    async with ScriptedPeer() as peer:  # holds the connection open until the client leaves
        client = StratumClient([peer.address], ClientConfig("w"))

        def on_event(ev: Any) -> None:
            events.append(ev)
            if isinstance(ev, NewWork):
                client.stop()

        await asyncio.wait_for(client.run(on_event), 10)
    (gone,) = [e for e in events if isinstance(e, Disconnected)]
    assert gone.pool == peer.address and gone.reason == STOPPED_REASON


async def test_a_pool_that_hangs_up_is_still_reported_as_such() -> None:
    events: list[Any] = []

    async def hang_up(writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with ScriptedPeer(after=hang_up) as peer:
        client = StratumClient([peer.address], ClientConfig("w"))

        def on_event(ev: Any) -> None:
            events.append(ev)
            if isinstance(ev, Disconnected):
                client.stop()

        await asyncio.wait_for(client.run(on_event), 10)
    gone = next(e for e in events if isinstance(e, Disconnected))
    assert gone.reason == "closed by pool"

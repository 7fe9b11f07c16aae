"""`pithead pool` (serve) says at start when pool-mode shares have no ledger to go to.

Operator QA found the standalone pool in pool mode silently dropping every share into an in-process queue
while the README promised they were recorded for the ledger; now it says so (and `pithead serve` or `pithead up` keep them).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from pithead.app.pool import no_ledger_note, serve
from pithead.config import PoolConfig
from pithead.ledger.bus.memory import MemoryBus
from pithead.template.sources.static import StaticTemplateSource

from .helpers import POOL_ADDRESS, regtest_template


def test_note_only_for_pool_mode_without_a_sink() -> None:
    pool = PoolConfig(mode="pool", pool_address=POOL_ADDRESS)
    note = no_ledger_note(pool, None)
    assert note is not None and "no share is recorded" in note and "pithead serve" in note
    assert no_ledger_note(pool, MemoryBus("ledger")) is None  # a caller that keeps the shares
    assert no_ledger_note(PoolConfig(mode="solo"), None) is None  # solo: the coinbase pays each worker


@pytest.mark.parametrize(("mode", "warned"), [("pool", True), ("solo", False)])
async def test_serve_warns_at_start(caplog: pytest.LogCaptureFixture, mode: str, warned: bool) -> None:
    cfg = PoolConfig(mode=mode, pool_address=POOL_ADDRESS, port=0)
    source = StaticTemplateSource(regtest_template())
    with caplog.at_level(logging.INFO, logger="pithead.app.pool"):
        task = asyncio.create_task(serve(cfg, source=source))
        try:
            for _ in range(200):
                if any("listening on" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the pool did not start")
            await asyncio.sleep(0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    messages = [r.getMessage() for r in caplog.records]
    assert any("no share is recorded" in m for m in messages) is warned

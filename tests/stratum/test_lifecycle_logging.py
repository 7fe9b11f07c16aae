"""`pithead pool` logs its normal start and stop at INFO, and keeps WARNING for real problems.

Operator QA: every start ("listening on") and stop ("shutting down") was a WARNING, so a log watcher
alerting on warnings fired on every restart. The start banner is still shown by the CLI at its default
level, printed rather than logged (`on_listening`).
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from pithead.app.pool import serve
from pithead.config import PoolConfig
from pithead.template.sources.static import StaticTemplateSource

from .helpers import POOL_ADDRESS, regtest_template

LOGGER = "pithead.app.pool"
#: Bounded waits only (a broken build fails instead of hanging); nothing here measures time.
WAIT = 20.0


async def _serve_then_stop(cfg: PoolConfig) -> list[str]:
    """Run serve() until it listens, stop it as SIGTERM would (the command's lifecycle sets `stop`), and
    return the banners it announced."""
    banners: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, source=StaticTemplateSource(regtest_template()),
                                     on_listening=banners.append, stop=stop))
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if banners:
                    break
                await asyncio.sleep(0.01)
        stop.set()  # what SIGTERM does through the command's lifecycle: a graceful stop
        await asyncio.wait_for(task, WAIT)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return banners


async def test_normal_start_and_stop_are_info_and_the_banner_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    cfg = PoolConfig(mode="solo", port=0)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        banners = await _serve_then_stop(cfg)
    (banner,) = banners
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)$", banner)
    assert m is not None and int(m.group(1)) > 0
    records = [r for r in caplog.records if r.name == LOGGER]
    start = [r for r in records if "listening on" in r.getMessage()]
    stop = [r for r in records if "shutting down" in r.getMessage()]
    assert len(start) == 1 and start[0].levelno == logging.INFO and start[0].getMessage() == banner
    assert len(stop) == 1 and stop[0].levelno == logging.INFO
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []  # a normal run warns of nothing


async def test_a_real_problem_still_warns(caplog: pytest.LogCaptureFixture) -> None:
    cfg = PoolConfig(mode="pool", pool_address=POOL_ADDRESS, port=0)  # pool mode with no ledger: shares lost
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        await _serve_then_stop(cfg)
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no share is recorded" in warnings[0]

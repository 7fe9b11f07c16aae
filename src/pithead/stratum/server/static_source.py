"""`StaticTemplateSource`: a TemplateSource fed by hand, for the load generator and the server tests.

What it is: templates are pushed in with `push(template, new_block)`; every subscriber of `updates()`
gets each one; `submit_block` records the block and answers with a configurable result. What it is not:
a node client — the pool's real sources (Bitcoin Core or the embedded node) live in pithead.template.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from pithead.template.block_template import BlockTemplate
from pithead.template.interface import SubmitResult, TemplateUpdate

MAX_QUEUED_UPDATES = 64
"""Updates held per slow subscriber; older ones are dropped (only the newest template matters)."""


class StaticTemplateSource:
    def __init__(self, template: BlockTemplate | None = None, accept_blocks: bool = True) -> None:
        self._current = template
        self._subscribers: list[asyncio.Queue[TemplateUpdate]] = []
        self.submitted: list[str] = []
        self.accept_blocks = accept_blocks

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def current(self) -> BlockTemplate | None:
        return self._current

    def push(self, template: BlockTemplate, new_block: bool) -> TemplateUpdate:
        self._current = template
        update = TemplateUpdate(template, new_block, time.time())
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(update)
        return update

    async def updates(self) -> AsyncIterator[TemplateUpdate]:
        q: asyncio.Queue[TemplateUpdate] = asyncio.Queue(MAX_QUEUED_UPDATES)
        self._subscribers.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.remove(q)

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        self.submitted.append(block_hex)
        if self.accept_blocks:
            return [SubmitResult("static", None, True)]
        return [SubmitResult("static", "rejected", False)]

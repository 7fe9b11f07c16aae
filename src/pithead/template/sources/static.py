"""`StaticTemplateSource`: a TemplateSource fed by hand, for the load generator and the server tests.

What it is: templates are pushed in with `push(template, new_block)`; every subscriber of `updates()`
gets each one; `submit_block` records the block and answers with a configurable result. What it is not:
a node client — the pool's real sources (Bitcoin Core or the embedded node) live in pithead.template.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from pithead.template.block_template import BlockTemplate
from pithead.template.interface import SubmitResult, TemplateUpdate
from pithead.template.sources.fanout import UpdateFanout


class StaticTemplateSource:
    def __init__(self, template: BlockTemplate | None = None, accept_blocks: bool = True) -> None:
        self._current = template
        self._fanout = UpdateFanout()
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
        self._fanout.publish(update)
        return update

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        return self._fanout.subscribe()

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        self.submitted.append(block_hex)
        if self.accept_blocks:
            return [SubmitResult("static", None, True)]
        return [SubmitResult("static", "rejected", False)]

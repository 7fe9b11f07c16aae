"""One template stream to many consumers: every subscriber gets every update from the time it subscribed.

Each subscriber has its own bounded queue; a slow one loses its oldest updates (stale work anyway) and
never holds up the others or the source.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pithead.template.interface import TemplateUpdate

SUBSCRIBER_QUEUE = 64  # updates buffered per consumer; a slower consumer loses the oldest (stale anyway)


class UpdateFanout:
    """Every subscriber gets every update from the time it subscribed (bounded, dropping the oldest)."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[TemplateUpdate]] = []

    def publish(self, update: TemplateUpdate) -> None:
        for q in self._queues:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(update)

    def subscribe(self) -> AsyncIterator[TemplateUpdate]:
        q: asyncio.Queue[TemplateUpdate] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._queues.append(q)
        fanout = self

        class _Sub:
            def __aiter__(self) -> _Sub:
                return self

            async def __anext__(self) -> TemplateUpdate:
                return await q.get()

            async def aclose(self) -> None:
                if q in fanout._queues:
                    fanout._queues.remove(q)

        return _Sub()

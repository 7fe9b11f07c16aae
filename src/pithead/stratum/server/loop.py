"""The event loop every pithead process runs on: uvloop when it is installed, asyncio's own otherwise.

One place for it, so the pool's worker processes, `pithead pool`, `serve` and `up` all run on the same
loop (uvloop roughly halves the pool's per-connection overhead). What it is not: the lifecycle of the parts
(`pithead.app.lifecycle`: signals, ordered stop, exit codes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed (not on Windows), else None (asyncio's default)."""
    try:
        import uvloop  # optional: pithead runs on plain asyncio without it
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)

"""The farm store for async code: every call runs on the store's own thread, in the order made.

In `pithead serve` one event loop runs the Stratum pool beside the farm, so the farm never waits on
SQLite there: a batch of 24,000 poll results, an alert evaluation or a rollup takes tens to hundreds of
milliseconds, and miners would wait that long for their replies. `AsyncFarmStore` wraps a `FarmStore`
and runs each call on one dedicated thread (a one-worker executor), so:

- the loop only awaits; it keeps serving while SQLite works (the GIL is released inside SQLite and
  handed back at least every few milliseconds while Python code runs on the store's thread);
- calls run one at a time in the order they were made, so writes keep their order (a batch of results
  and the alert evaluation after it; an action's audit row before its outcome);
- one thread uses the connection (the store's lock makes any other use wait, see `pithead.farm.store`).

`call(FarmStore.method, *args)` runs one store method; `call(fn, *args)` runs any function of the store
(`fn(store, *args)`), so sync code that reads and writes several times (the alert evaluation) costs one
hop. A call, once made, always runs to its end: a caller cancelled while waiting stops waiting, but a
queued write is never dropped (its failure is then logged, as nobody awaits it).

This module is NOT the storage (`pithead.farm.store`) and owns neither the store nor its closing: the
code that opened the `FarmStore` closes it, after the last call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from pithead.farm.store import FarmStore

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# One worker: the calls are serialised anyway (one connection), and one thread keeps them in order.
STORE_THREADS = 1


class AsyncFarmStore:
    """A `FarmStore` for async code (see the module docstring)."""

    def __init__(self, store: FarmStore) -> None:
        self._store = store
        self._thread = ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="farm-store")

    async def call(self, fn: Callable[Concatenate[FarmStore, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(store, *args, **kwargs)` on the store's thread, after every call made before it."""
        done = asyncio.get_running_loop().run_in_executor(
            self._thread, functools.partial(fn, self._store, *args, **kwargs)
        )
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(_log_unawaited_failure)
            raise

    def close(self) -> None:
        """Let the store's thread end once the calls already made have run (the store stays open)."""
        self._thread.shutdown(wait=False)


def _log_unawaited_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("a farm store call failed after its caller stopped waiting", exc_info=exc)

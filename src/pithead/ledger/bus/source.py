"""What the ledger reads events from: the `EventSource` protocol and the order of its positions.

Exactly once: a source delivers at least once (Redis redelivers what was not acknowledged); the ledger
stores the position of the last entry it applied in the same transaction as the entries, and skips
anything at or before it on redelivery; only then are the entries acknowledged. So a crash anywhere in
the loop neither loses nor double-counts a share. This needs positions that increase in delivery order
and one consumer per stream, which is how the ledger is deployed (it is the single writer of the book).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pithead.events import Event


class EventSource(Protocol):
    name: str
    # True when what the source holds dies with this process (the in-memory bus): the consumer then watches
    # how long events wait to be committed, the window a kill -9 can lose (see pithead.ledger.consumer).
    volatile: bool

    async def read(self, max_count: int, block_s: float) -> list[tuple[str, Event | None]]:
        """Up to `max_count` (position, event) pairs in position order; event None for undecodable entries."""
        ...

    async def ack(self, positions: Sequence[str]) -> None: ...


def position_key(position: str) -> tuple[int, int]:
    """Order of a position "<major>-<minor>" (a Redis stream id, or the memory bus's id of the same form)."""
    major, _, minor = position.partition("-")
    return int(major), int(minor or 0)

"""What the pool needs from a source of work, as a Protocol: implemented by the node-backed sources in
this package (one Bitcoin Core or embedded node, or several with failover).

A `TemplateUpdate` says whether the update is a new block (the pool must send clean_jobs=true) or only a
refresh of the same tip (new transactions; clean_jobs=false).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from pithead.template.block_template import BlockTemplate


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    template: BlockTemplate
    new_block: bool  # True when the previous block hash changed since the last update
    received_at: float  # time.time() when the source got it (for template-age metrics)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    node: str  # which node (name/url) answered
    result: str | None  # BIP22: None means accepted; else "duplicate", "high-hash", ... or an error text
    accepted: bool


class TemplateSource(Protocol):
    async def start(self) -> None:
        """Connect and fetch the first template (raise a clear error if no node answers)."""

    async def stop(self) -> None: ...

    def current(self) -> BlockTemplate | None:
        """The last good template, if any."""

    def updates(self) -> AsyncIterator[TemplateUpdate]:
        """New templates as they arrive (each consumer gets every update from the time it subscribes)."""

    async def submit_block(self, block_hex: str) -> list[SubmitResult]:
        """Submit a solved block to every node at once; one result per node."""

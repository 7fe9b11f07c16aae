"""What the pool needs from a source of work, as a Protocol: implemented by the node-backed sources in
this package (one Bitcoin Core or embedded node, or several with failover).

A `TemplateUpdate` says whether the update is a new block (the pool must send clean_jobs=true) or only a
refresh of the same tip (new transactions; clean_jobs=false).

A solved block is submitted to every node; each answers with a `SubmitResult` (Core's BIP22 string, and
whether that node is on the best chain the source knows). `judge_submission` (pure) turns the answers into
one `BlockVerdict`: found (a node on the best chain took it), on a stale fork (only nodes off the best
chain took it: the best chain does not contain it, so it is no found block), or refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
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
    # Whether this node was on the best chain (the failover's leader's tip) once the block was judged. A
    # source of one node is its own best chain; a node that accepted while off it holds a stale fork.
    best_chain: bool = True


class BlockOutcome(StrEnum):
    FOUND = "found"  # a node on the best chain accepted it
    STALE_FORK = "stale-fork"  # accepted only by nodes off the best chain: the best chain lacks it
    REFUSED = "refused"  # no node accepted it


@dataclass(frozen=True, slots=True)
class BlockVerdict:
    outcome: BlockOutcome
    # Core's BIP22 string when not found: a refusal's first one; for a stale fork, the best chain's node's
    # own answer ("inconclusive", "prev-blk-not-found", ...). None when found.
    node_result: str | None
    accepted_by: tuple[str, ...]  # the nodes that accepted it (for the log)


def judge_submission(results: list[SubmitResult]) -> BlockVerdict:
    """One verdict on a block from every node's answer (see the module's docstring)."""
    accepted_by = tuple(r.node for r in results if r.accepted)
    if any(r.accepted and r.best_chain for r in results):
        return BlockVerdict(BlockOutcome.FOUND, None, accepted_by)
    refusals = [r for r in results if not r.accepted]
    if accepted_by:
        own = next((r.result for r in refusals if r.best_chain), None)
        return BlockVerdict(BlockOutcome.STALE_FORK, own, accepted_by)
    return BlockVerdict(BlockOutcome.REFUSED, refusals[0].result if refusals else None, ())


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

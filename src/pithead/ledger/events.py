"""The events the pool hands to the ledger: one per judged share and one per block found.

These are the whole interface between `pithead.stratum.server` and `pithead.ledger`: the pool emits them
through a `ShareSink` (an in-process queue today, a Redis Streams bus when one machine is outgrown), and
the ledger consumes them. Values are frozen; times are UNIX seconds as floats, passed in, never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ShareEvent:
    """A share the pool judged. `accepted` False carries the reject reason (e.g. "low-difficulty")."""

    time: float
    worker: str  # full worker name as authorized, e.g. "bcrt1q...\u002erig1"
    address: str  # payout address the worker belongs to
    difficulty: float  # the share target's difficulty in force for the job (pool difficulty)
    job_id: str
    height: int  # block height the job was mining
    accepted: bool
    reject_reason: str | None = None
    share_difficulty: float = 0.0  # the difficulty the hash actually reached (for best-share stats)
    remote: str | None = None  # peer address, for per-IP statistics
    # What the job was worth, for PPS pricing; 0 when the pool does not say (the ledger then uses the
    # last values it was told, see `Ledger.set_network`).
    network_difficulty: float = 0.0
    block_value_sat: int = 0  # the job's coinbase value (subsidy + fees)


@dataclass(frozen=True, slots=True)
class BlockEvent:
    """A block candidate that met the network target and was submitted to the node(s)."""

    time: float
    height: int
    block_hash: str  # display hex
    worker: str
    address: str
    reward_sat: int  # coinbase value: subsidy + fees
    fees_sat: int
    accepted_by_node: bool
    node_result: str | None = None  # BIP22 result string when refused
    network_difficulty: float = 0.0  # the block's network difficulty (sizes the PPLNS window); 0 = unknown


class ShareSink(Protocol):
    """Where the pool puts events. Must not block the pool: implementations queue and return."""

    def put(self, event: ShareEvent | BlockEvent) -> None: ...

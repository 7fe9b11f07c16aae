"""The events the pool hands to the ledger: one per judged share and one per block found, and their codec.

These are the whole interface between `pithead.stratum.server` and `pithead.ledger`: the pool emits them
through a `ShareSink` (an in-process queue today, a Redis Streams bus when one machine is outgrown), and
the ledger consumes them. Values are frozen; times are UNIX seconds as floats, passed in, never read here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import orjson

# Longest worker name, address, job id, hash or reason the ledger stores. Worker names come from miners;
# this keeps one bad client from writing kilobytes per share into the book.
MAX_TEXT_LEN = 256


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
    accepted_by_node: bool  # accepted by a node on the best chain: a found block
    node_result: str | None = None  # BIP22 result string when refused (or the best chain's node's answer)
    network_difficulty: float = 0.0  # the block's network difficulty (sizes the PPLNS window); 0 = unknown
    # Accepted only by nodes off the best chain (a node behind, another fork): the best chain does not
    # contain it. accepted_by_node is then False; the ledger records it orphaned and credits nothing.
    stale_fork: bool = False


Event = ShareEvent | BlockEvent


class ShareSink(Protocol):
    """Where the pool puts events. Must not block the pool: implementations queue and return."""

    def put(self, event: ShareEvent | BlockEvent) -> None: ...


# --- notices: what an operator is told ------------------------------------------------------------------

NoticeKind = Literal[
    "block.found", "block.confirmed", "block.orphaned", "block.stale",
    "payout.sent", "payout.failed", "payout.stuck",
    "node.down", "node.failover", "node.back",
    "worker.quiet", "worker.withholding",
    "farm.alert",
]
"""Every kind of notice a part can raise; `pithead.notify` routes them by kind (`[notify]` in the config)."""
NoticeSeverity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator should hear about, raised by the part that saw it (the ledger, a template
    source, the farm) and delivered by `pithead.notify` (which parts never import: they are handed a
    `NoticeSink`). `key` identifies the condition for deduplication (a block hash, a node URL, a worker):
    the same kind and key raised again within the notifier's window is one message, not many."""

    kind: NoticeKind
    severity: NoticeSeverity
    title: str  # one line, e.g. "Block 812345 found by bc1q...rig1"
    body: str  # a few lines of detail: the figures, what to look at
    key: str
    time: float  # UNIX seconds, passed in


class NoticeSink(Protocol):
    """Where a part raises notices. Must not block the caller: implementations queue and return."""

    def notify(self, notice: Notice) -> None: ...


class InvalidEvent(ValueError):
    """An event the ledger will not record (wrong type or impossible value in some field)."""


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _text(x: Any) -> bool:
    return isinstance(x, str) and len(x) <= MAX_TEXT_LEN


def validate(event: Any) -> None:
    """Check every field of a share or block event; raise `InvalidEvent` naming the first bad one."""

    def need(name: str, ok: bool) -> None:
        if not ok:
            raise InvalidEvent(f"bad {type(event).__name__} field {name}={getattr(event, name, None)!r}")

    if not isinstance(event, ShareEvent | BlockEvent):
        raise InvalidEvent(f"not a ledger event: {type(event).__name__}")
    need("time", _finite(event.time) and event.time >= 0)
    need("worker", _text(event.worker))
    # "@" names the pool's own account in the book (schemes.POOL_ACCOUNT); no real address starts with it
    need("address", _text(event.address) and not event.address.startswith("@"))
    need("height", isinstance(event.height, int) and not isinstance(event.height, bool) and event.height >= 0)
    need("network_difficulty", _finite(event.network_difficulty) and event.network_difficulty >= 0)
    if isinstance(event, ShareEvent):
        need("accepted", isinstance(event.accepted, bool))
        # an accepted share must prove some work; a rejected one may carry whatever the pool judged
        need("difficulty", _finite(event.difficulty) and (event.difficulty > 0 or not event.accepted))
        need("share_difficulty", _finite(event.share_difficulty) and event.share_difficulty >= 0)
        need("job_id", _text(event.job_id))
        need("reject_reason", event.reject_reason is None or _text(event.reject_reason))
        need("remote", event.remote is None or _text(event.remote))
        need("block_value_sat", isinstance(event.block_value_sat, int) and event.block_value_sat >= 0)
    else:
        need("block_hash", _text(event.block_hash) and len(event.block_hash) > 0)
        need("reward_sat", isinstance(event.reward_sat, int) and not isinstance(event.reward_sat, bool) and event.reward_sat >= 0)
        need("fees_sat", isinstance(event.fees_sat, int) and not isinstance(event.fees_sat, bool) and event.fees_sat >= 0)
        need("accepted_by_node", isinstance(event.accepted_by_node, bool))
        need("node_result", event.node_result is None or _text(event.node_result))
        need("stale_fork", isinstance(event.stale_fork, bool) and not (event.stale_fork and event.accepted_by_node))


class EventDecodeError(InvalidEvent):
    """Bytes on the bus that are not a ledger event."""


# --- events on a wire (the Redis share bus, the pool's worker channel) ----------------------------
_KINDS: dict[str, type] = {"share": ShareEvent, "block": BlockEvent}
_SHARE_FIELDS = {f for f in ShareEvent.__dataclass_fields__}
_BLOCK_FIELDS = {f for f in BlockEvent.__dataclass_fields__}


def encode_event(event: Event) -> bytes:
    kind = "share" if isinstance(event, ShareEvent) else "block"
    return orjson.dumps({"kind": kind, **asdict(event)})


def decode_event(data: bytes | str) -> Event:
    """Parse one encoded event, checking every field's type; unknown fields are ignored (newer pools)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") not in _KINDS:
        raise EventDecodeError("missing or unknown event kind")
    cls = _KINDS[obj["kind"]]
    fields = _SHARE_FIELDS if cls is ShareEvent else _BLOCK_FIELDS
    kwargs = {k: v for k, v in obj.items() if k in fields}
    try:
        event = cls(**kwargs)
    except TypeError as exc:
        raise EventDecodeError(f"bad {obj['kind']} event: {exc}") from exc
    try:
        validate(event)
    except InvalidEvent as exc:
        raise EventDecodeError(str(exc)) from exc
    return event  # type: ignore[no-any-return]

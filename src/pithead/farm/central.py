"""The central side of collector forwarding: turns POSTed batches into store writes, and keeps the counts.

`IngestService.handle(body, content_encoding)` is what `POST /farm/api/ingest` calls (after the bearer
token check in `pithead.web.farm`): it decodes and validates the batch (`pithead.farm.ingest`), writes it
with `FarmStore.ingest` on the store's thread (idempotent by batch id and by (device, time); batches are
written in the order they arrive), and answers what happened:

    {"batch": id, "duplicate_batch": false, "written": n, "duplicates": n, "devices": n, "devices_new": n,
     "refused": n, "refusals": [{"kind", "index", "device_id", "reason"}, ...], "unknown_devices": [ids]}

`refusals` lists at most `MAX_REFUSALS_LISTED` (the count is exact); `unknown_devices` are ids the central
inventory does not have, which the collector answers by sending those devices again. Per-collector
counters (`status()`, served as `GET /farm/api/ingest`) say who is forwarding and when each was last
heard from; `redo_since` tells the central service's rollup which buckets got late readings.

This module is NOT the wire format (ingest) nor the HTTP route (web); it holds no policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pithead.farm.ingest import MAX_REFUSALS_LISTED, IngestError, Refusal, decode_batch
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore

log = logging.getLogger(__name__)

# Collectors tracked in the status; a name beyond this many is counted under "(other)" so a caller
# inventing names cannot grow the table without bound.
MAX_COLLECTORS = 10_000


@dataclass
class CollectorCounts:
    batches: int = 0
    duplicate_batches: int = 0
    written: int = 0
    duplicates: int = 0
    refused: int = 0
    devices: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "duplicate_batches": self.duplicate_batches, "written": self.written,
                "duplicates": self.duplicates, "refused": self.refused, "devices": self.devices,
                "first_at": self.first_at, "last_at": self.last_at}


class IngestService:
    def __init__(self, store: AsyncFarmStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.collectors: dict[str, CollectorCounts] = {}
        self.total = CollectorCounts()
        # the oldest reading accepted since the last rollup (None: nothing late); the service resets it
        self.redo_since: float | None = None

    async def handle(self, body: bytes, content_encoding: str | None) -> dict[str, Any]:
        """Ingest one batch; raises IngestError (with its HTTP status) for a batch refused as a whole."""
        now = self.clock()
        batch = decode_batch(body, content_encoding, now)
        out = await self.store.call(FarmStore.ingest, batch.batch_id, batch.collector, batch.devices, batch.results,
                                    now)
        refusals = list(batch.refused)
        unknown: set[str] = set()
        for why, idxs in (("unknown device: not in the central inventory (send the device first)", out.unknown),
                          ("device removed from the central inventory", out.removed)):
            for k in idxs:
                res = batch.results[k]
                refusals.append(Refusal("results", batch.result_index[k], res.device_id, why))
                if idxs is out.unknown:
                    unknown.add(res.device_id)
        refusals.sort(key=lambda r: (r.kind, r.index))
        c = self._counts(batch.collector)
        for counts in (c, self.total):
            counts.first_at = counts.first_at if counts.first_at is not None else now
            counts.last_at = now
            if out.duplicate_batch:
                counts.duplicate_batches += 1
                continue
            counts.batches += 1
            counts.written += out.written
            counts.duplicates += out.duplicates
            counts.refused += len(refusals)
            counts.devices += len(batch.devices)
        if out.earliest is not None:
            self.redo_since = out.earliest if self.redo_since is None else min(self.redo_since, out.earliest)
        if refusals:
            log.warning("ingest from %s: batch %s: %d item(s) refused, e.g. %s[%d] %s: %s", batch.collector,
                        batch.batch_id, len(refusals), refusals[0].kind, refusals[0].index,
                        refusals[0].device_id, refusals[0].reason)
        return {"batch": batch.batch_id, "duplicate_batch": out.duplicate_batch, "written": out.written,
                "duplicates": out.duplicates, "devices": len(batch.devices), "devices_new": out.devices_new,
                "refused": len(refusals), "refusals": [r.to_json() for r in refusals[:MAX_REFUSALS_LISTED]],
                "unknown_devices": sorted(unknown)}

    def _counts(self, name: str) -> CollectorCounts:
        c = self.collectors.get(name)
        if c is None:
            if len(self.collectors) >= MAX_COLLECTORS:
                name = "(other)"
            c = self.collectors.setdefault(name, CollectorCounts())
        return c

    def take_redo_since(self) -> float | None:
        """The oldest reading ingested since the last call (for `FarmStore.rollup(redo_since=...)`)."""
        t, self.redo_since = self.redo_since, None
        return t

    def status(self) -> dict[str, Any]:
        return {"total": self.total.to_json(),
                "collectors": {k: v.to_json() for k, v in sorted(self.collectors.items())}}


__all__ = ["CollectorCounts", "IngestError", "IngestService"]

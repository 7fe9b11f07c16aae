"""`/api/pool` under a flood of worker names that only ever submit rejected shares; a stuck payout shown.

The issue: 1,600 connections created 102,400 permanent worker rows in 48 s and `/api/pool` went from 23 ms
to 2 s, because every name got a row and the summary read every row. Now a name enters the book only with
an accepted share, and the summary sums the workers in one statement: the flood shows in the reject
counts, and the rows `/api/pool` reads do not grow with it (counted, not timed).
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from webseed import BUCKET, Seed, fixed_clock

from pithead.events import ShareEvent
from pithead.ledger.store.records import BatchStatus
from pithead.web.app import create_app
from pithead.web.services import PoolInfo, Services


class RowCounter:
    """Counts the rows the store's statements return (a tally around the real store, which still answers)."""

    def __init__(self, store: Any) -> None:
        self.rows = 0
        self._all = store._all
        store._all = self.counted

    def counted(self, sql: str, args: Any = ()) -> list[Any]:
        out = self._all(sql, args)
        self.rows += len(out)
        return list(out)


def flood(seed: Seed, first: int, names: int) -> None:
    events = [
        ShareEvent(seed.now - 30 + (i % 20), f"bcrt1qflood{i}.w{i}", f"bcrt1qflood{i}", 1.0, "j", 100, False,
                   "low-difficulty" if i % 2 else "job-not-found", remote=f"198.51.100.{i % 50}")
        for i in range(first, first + names)
    ]
    for k in range(0, len(events), 2000):  # the ledger's consumer batch size
        seed.store.add_shares(events[k : k + 2000], BUCKET)


def pool(seed: Seed) -> tuple[dict[str, Any], int]:
    counter = RowCounter(seed.store)
    try:
        services = Services(store=seed.store, clock=fixed_clock(seed.now), bucket_width_s=BUCKET,
                            info=PoolInfo(mode="pool"))
        r = TestClient(create_app(services)).get("/api/pool")
        assert r.status_code == 200
        return r.json(), counter.rows
    finally:
        del seed.store._all  # type: ignore[attr-defined]


def test_rejected_only_names_leave_the_workers_alone_and_the_summary_cheap(seeded: Seed) -> None:
    before, rows_before = pool(seeded)
    workers = seeded.store.workers()
    flood(seeded, 0, 500)
    small, rows_small = pool(seeded)
    flood(seeded, 500, 5000)
    big, rows_big = pool(seeded)
    assert seeded.store.workers() == workers and big["workers"] == before["workers"] == 2
    assert big["rejected_shares"] == before["rejected_shares"] + 5500
    assert big["rejects_1h"]["total"] == before["rejects_1h"]["total"] + 5500
    # what the summary reads does not grow with the names: 500 or 5,500 of them cost the same rows
    assert rows_big == rows_small
    assert rows_small - rows_before <= 4  # at most the new reasons' rows in the reject counts
    assert small["workers"] == 2


def test_a_stuck_payout_is_shown_held(seeded: Seed) -> None:
    """A batch whose transaction left the mempool unconfirmed: the API says "stuck", with why, and its
    amount is reserved, not paid."""
    store = seeded.store
    (batch,) = [b for b in store.batches() if b.status is BatchStatus.INTENT]
    store.update_batch(batch.id, BatchStatus.STUCK, seeded.now, "ef" * 32, "left the mempool unconfirmed: x")
    services = Services(store=store, clock=fixed_clock(seeded.now), bucket_width_s=BUCKET, info=PoolInfo())
    c = TestClient(create_app(services))
    (shown,) = [p for p in c.get("/api/payouts").json() if p["id"] == batch.id]
    assert shown["status"] == "stuck" and shown["txid"] == "ef" * 32 and "left the mempool" in shown["error"]
    held = {b["address"]: b for b in c.get("/api/balances").json()}
    for address, sat in batch.items:
        assert held[address]["reserved_sat"] >= sat and held[address]["paid_sat"] == 0

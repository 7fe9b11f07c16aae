"""The uptime record (one row per run of the process that takes shares, moved on by its heartbeat) on
SQLite and PostgreSQL, and its migration into a ledger created before it existed."""

from __future__ import annotations

import math

import pytest

from pithead.events import ShareEvent
from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import UptimeRun
from pithead.ledger.store.sqlite import SqliteStore


def reopen(store: LedgerStore) -> LedgerStore:
    """A new connection to the same database (what the next run of the process opens), migrated."""
    if isinstance(store, SqliteStore):
        return open_store(f"sqlite:///{store.path}")
    return open_store(f"{store.conninfo}?schema={store.schema}")  # type: ignore[attr-defined]


def test_a_heartbeat_moves_last_seen_forward_never_back(store: LedgerStore) -> None:
    store.record_uptime("run-a", 1000.0, 1000.0)
    store.record_uptime("run-a", 1000.0, 1010.0)
    store.record_uptime("run-a", 1000.0, 1005.0)  # a late beat (two writers, a slow commit) changes nothing
    assert store.uptime_runs(0.0) == [UptimeRun("run-a", 1000.0, 1010.0)]


def test_runs_since_a_time_come_with_the_earliest_run(store: LedgerStore) -> None:
    store.record_uptime("first", 100.0, 200.0)
    store.record_uptime("second", 1000.0, 1100.0)
    store.record_uptime("third", 5000.0, 5050.0)
    # runs up at or after 1050, oldest first, plus the first one: where the record begins
    assert [r.run for r in store.uptime_runs(1050.0)] == ["first", "second", "third"]
    assert [r.run for r in store.uptime_runs(1101.0)] == ["first", "third"]
    assert [r.run for r in store.uptime_runs(150.0)] == ["first", "second", "third"]
    assert [r.run for r in store.uptime_runs(9999.0)] == ["first"]
    assert store.delete_uptime_before(1100.0) == 1  # "first"; "second" was last seen at 1100, kept
    assert [r.run for r in store.uptime_runs(9999.0)] == ["second"]


def test_an_empty_record_reads_empty(store: LedgerStore) -> None:
    assert store.uptime_runs(0.0) == []
    assert store.delete_uptime_before(1e12) == 0


@pytest.mark.parametrize(("run", "started", "now"), [("", 1.0, 2.0), ("r", 2.0, 1.0), ("r", math.nan, 1.0), ("r", 1.0, math.inf)])
def test_bad_heartbeats_are_refused(store: LedgerStore, run: str, started: float, now: float) -> None:
    with pytest.raises(StoreError):
        store.record_uptime(run, started, now)
    assert store.uptime_runs(0.0) == []


def test_heartbeats_survive_a_restart(store: LedgerStore) -> None:
    store.record_uptime("before", 1000.0, 1600.0)
    store.close()
    again = reopen(store)
    try:
        assert again.uptime_runs(0.0) == [UptimeRun("before", 1000.0, 1600.0)]
        again.record_uptime("after", 5000.0, 5010.0)
        assert [r.run for r in again.uptime_runs(0.0)] == ["before", "after"]
    finally:
        again.close()


def test_a_ledger_from_before_the_uptime_record_gets_it_empty_at_migrate(store: LedgerStore) -> None:
    """The schema change is additive: the next migrate of an older ledger creates the table, keeps
    everything else and the schema version, and the empty record reads as "nothing known"."""
    store.add_shares([ShareEvent(1000.0, "a.rig", "a", 2.0, "j", 1, True, None, 3.0)], 10)
    store._exec("DROP TABLE uptime")  # type: ignore[attr-defined]  # what a ledger made before it looks like
    store.close()
    again = reopen(store)
    try:
        assert again.uptime_runs(0.0) == []
        assert again.share_count() == 1 and again.get_meta("schema_version") == "1"
        again.record_uptime("first-run-after-upgrade", 2000.0, 2010.0)
        assert [r.run for r in again.uptime_runs(0.0)] == ["first-run-after-upgrade"]
    finally:
        again.close()

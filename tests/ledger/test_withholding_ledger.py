"""The ledger's withholding evidence on a real store (each test on SQLite and on PostgreSQL): blocks
expected accumulate per worker, address and pool as shares are recorded and survive rollups; each block is
found by its worker and carries its effort; a withholder is flagged (a notice raised once committed), an
honest worker is not, and the flag is lifted when the evidence fades; an older ledger is migrated."""

from __future__ import annotations

import pytest

from pithead.events import BlockEvent, Notice, ShareEvent
from pithead.ledger.ledger import RAW_MIN_RETENTION_S, Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import OddsKind
from pithead.ledger.withholding import UNFLAG_FACTOR, anytime_p, min_expected_blocks

NOW = 1_800_000_000.0
HONEST, THIEF = "bcrt1qhonest", "bcrt1qthief"
D_NET = 100.0  # network difficulty of these tests' jobs: a share at difficulty 10 solves one in ten


class Notices:
    """A NoticeSink that keeps the withholding notices it is told (the notify part delivers them; the ledger
    only raises; its block notices are `tests/notify`'s)."""

    def __init__(self) -> None:
        self.got: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        if notice.kind == "worker.withholding":
            self.got.append(notice)


class Broken:
    def notify(self, notice: Notice) -> None:
        raise OSError("the notifier is down")


def share(t: float, address: str, d: float = 10.0, d_net: float = D_NET, rig: str = "rig",
          accepted: bool = True, reject_reason: str | None = None) -> ShareEvent:
    return ShareEvent(t, f"{address}.{rig}", address, d, "j", 100, accepted, reject_reason,
                      network_difficulty=d_net)


def block(t: float, address: str, tag: str, rig: str = "rig", accepted: bool = True) -> BlockEvent:
    return BlockEvent(t, 101, (tag * 64)[:64], f"{address}.{rig}", address, 5_000_000_000, 0, accepted,
                      network_difficulty=D_NET)


def odds(store: LedgerStore, kind: OddsKind, name: str) -> tuple[float, int, int, float | None]:
    (row,) = store.block_odds(kind, [name])
    return row.expected, row.found, row.unpriced, row.flagged_since


def test_blocks_expected_accumulate_per_worker_address_and_pool(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([share(NOW, HONEST), share(NOW + 1, HONEST, d=20.0), share(NOW + 2, THIEF, rig="a"),
                  share(NOW + 3, THIEF, d=500.0, rig="b")])  # harder than the network: a block for sure
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig") == (pytest.approx(0.3), 0, 0, None)
    assert odds(store, OddsKind.WORKER, f"{THIEF}.b") == (1.0, 0, 0, None)
    assert odds(store, OddsKind.ADDRESS, THIEF) == (pytest.approx(1.1), 0, 0, None)
    assert odds(store, OddsKind.POOL, "") == (pytest.approx(1.4), 0, 0, None)
    assert store.block_odds(OddsKind.ADDRESS, [HONEST])[0].since == NOW
    # rejected shares are no work; a share without its own network difficulty takes the last one told
    ledger.apply([share(NOW + 4, HONEST, accepted=False, reject_reason="stale"), share(NOW + 5, HONEST, d_net=0.0)])
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig")[0] == pytest.approx(0.4)
    # ...and with none ever told, it is unpriced: counted, but left out of the blocks expected
    fresh = Ledger(store, LedgerSettings())
    fresh.apply([share(NOW + 6, HONEST, d_net=0.0)])
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig") == (pytest.approx(0.4), 0, 1, None)


def test_blocks_expected_survive_the_rollup_of_raw_shares(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.PPS))  # PPS keeps no raw share past the minimum
    ledger.apply([share(NOW + i, HONEST) for i in range(50)])
    before = odds(store, OddsKind.WORKER, f"{HONEST}.rig")
    done = ledger.rollup(NOW + 50 + RAW_MIN_RETENTION_S + 1)
    assert done.shares_deleted == 50 and store.share_count() == 0
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig") == before
    assert before[0] == pytest.approx(5.0)


def test_a_block_is_found_by_its_worker_and_carries_its_effort(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([share(NOW + i, HONEST) for i in range(25)] + [block(NOW + 30, HONEST, "a")])
    first = store.get_block("a" * 64)
    assert first is not None and first.effort == pytest.approx(2.5)  # a fresh ledger counts its first round
    ledger.apply([share(NOW + 40 + i, THIEF) for i in range(5)]
                 + [block(NOW + 50, HONEST, "b", accepted=False), block(NOW + 51, HONEST, "b")])  # a repeat
    second = store.get_block("b" * 64)
    assert second is not None and second.effort == pytest.approx(0.5)
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig")[1] == 2  # a block the node refused still counts
    assert odds(store, OddsKind.ADDRESS, HONEST)[1] == 2 and odds(store, OddsKind.POOL, "")[1] == 2
    assert odds(store, OddsKind.ROUND, "")[0] == 0.0  # the next round starts at the block


def test_a_withholder_is_flagged_and_an_honest_worker_is_not(store: LedgerStore) -> None:
    notices = Notices()
    ledger = Ledger(store, LedgerSettings(), notices=notices)
    # the honest worker: 12 blocks expected (120 shares at odds 1/10), 12 found; the thief: as much work, none
    events: list[ShareEvent | BlockEvent] = []
    for i in range(120):
        events += [share(NOW + i, HONEST), share(NOW + i, THIEF)]
        if i % 10 == 9:
            events.append(block(NOW + i, HONEST, f"{i:02x}"))
    flagged_in: list[tuple[float, float]] = []  # the thief's work before and after the batch that flagged it
    before = 0.0
    for start in range(0, len(events), 30):  # batches, as the consumer applies them
        result = ledger.apply(events[start : start + 30])
        after = odds(store, OddsKind.WORKER, f"{THIEF}.rig")[0]
        if result.flagged:
            flagged_in.append((before, after))
            assert set(result.flagged) == {f"{THIEF}.rig", THIEF}
        before = after
    expected, found, _, since = odds(store, OddsKind.WORKER, f"{THIEF}.rig")
    assert expected == pytest.approx(12.0) and found == 0 and since is not None
    assert odds(store, OddsKind.ADDRESS, THIEF)[3] is not None
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig")[3] is None
    # flagged once, in the batch where its work passed the least that can be flagged (9.12 blocks)
    assert len(flagged_in) == 1
    assert flagged_in[0][0] < min_expected_blocks() <= flagged_in[0][1]
    assert [(n.kind, n.severity, n.key) for n in notices.got] == [
        ("worker.withholding", "warning", f"withholding:worker:{THIEF}.rig"),
        ("worker.withholding", "warning", f"withholding:address:{THIEF}"),
    ]
    body = notices.got[0].body
    assert "12" not in notices.got[0].title and THIEF in notices.got[0].title
    assert "0 found" in body and "pithead ledger hold" in body
    flagged = store.flagged_odds(10)
    assert {(r.kind, r.name) for r in flagged} == {(OddsKind.WORKER, f"{THIEF}.rig"), (OddsKind.ADDRESS, THIEF)}


def test_the_flag_is_lifted_when_the_evidence_fades(store: LedgerStore) -> None:
    notices = Notices()
    ledger = Ledger(store, LedgerSettings(), notices=notices)
    ledger.apply([share(NOW + i, THIEF) for i in range(100)])  # 10 expected, none found
    assert odds(store, OddsKind.WORKER, f"{THIEF}.rig")[3] is not None
    # It starts submitting its blocks: while anytime_p stays under ten times the level the flag stays.
    found = 0
    while anytime_p(found + 1, 10.0) < UNFLAG_FACTOR * 0.001:
        found += 1
        ledger.apply([block(NOW + 200 + found, THIEF, f"{found:02x}")])
        assert odds(store, OddsKind.WORKER, f"{THIEF}.rig")[3] is not None
    result = ledger.apply([block(NOW + 300, THIEF, "ff")])
    assert f"{THIEF}.rig" in result.unflagged
    assert odds(store, OddsKind.WORKER, f"{THIEF}.rig")[3] is None
    lifted = [n for n in notices.got if n.severity == "info"]
    assert lifted and lifted[0].key == f"withholding-lifted:worker:{THIEF}.rig"


def test_a_broken_notifier_never_fails_the_book(store: LedgerStore) -> None:
    ledger = Ledger(store, LedgerSettings(), notices=Broken())
    result = ledger.apply([share(NOW + i, THIEF) for i in range(100)])
    assert result.shares == 100 and result.flagged
    assert odds(store, OddsKind.WORKER, f"{THIEF}.rig")[3] is not None


def test_the_configured_level_is_the_ledgers(store: LedgerStore) -> None:
    lenient = Ledger(store, LedgerSettings(withholding_level=0.01))
    result = lenient.apply([share(NOW + i, THIEF) for i in range(70)])  # 7 expected: 6.47 flags at 1 %
    assert f"{THIEF}.rig" in result.flagged


def test_an_older_ledger_starts_counting_at_its_migration(store: LedgerStore) -> None:
    """A ledger written before the withholding evidence: no block_odds, holds or effort; blocks on record.
    After the migration it counts from then on; the round it is in when it starts is not counted whole,
    so the next block's effort is unknown (None), not understated; the one after is counted."""
    ledger = Ledger(store, LedgerSettings())
    ledger.apply([share(NOW, HONEST), block(NOW + 1, HONEST, "a")])
    exec_ = store._exec  # type: ignore[attr-defined]
    for table in ("block_odds", "payout_holds", "payout_hold_log"):
        exec_(f"DROP TABLE {table}")
    exec_("ALTER TABLE blocks DROP COLUMN effort")
    exec_("DELETE FROM meta WHERE key = 'migrated:block_odds_round'")
    store.migrate()
    assert store.get_block("a" * 64) is not None and store.get_block("a" * 64).effort is None  # type: ignore[union-attr]
    assert store.block_odds(OddsKind.WORKER) == [] and store.payout_holds() == []
    ledger.apply([share(NOW + 10 + i, HONEST) for i in range(10)] + [block(NOW + 30, HONEST, "b")])
    ledger.apply([share(NOW + 40 + i, HONEST) for i in range(30)] + [block(NOW + 80, HONEST, "c")])
    assert store.get_block("b" * 64).effort is None  # type: ignore[union-attr]
    assert store.get_block("c" * 64).effort == pytest.approx(3.0)  # type: ignore[union-attr]
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig")[:2] == (pytest.approx(4.0), 2)
    store.migrate()  # again: nothing more to do
    assert odds(store, OddsKind.WORKER, f"{HONEST}.rig")[:2] == (pytest.approx(4.0), 2)

"""`pithead ledger ...` on a seeded SQLite ledger, through the real `pithead` entry point's Typer app."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from pithead.cli.ledger import app
from pithead.events import BlockEvent, ShareEvent
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.store import open_store
from pithead.ledger.store.records import BatchStatus, BlockStatus


def seed(path: Path) -> str:
    url = f"sqlite:///{path}"
    store = open_store(url)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    now = time.time()
    ledger.apply([ShareEvent(now - i, "bcrt1qcli.rig", "bcrt1qcli", 2.0, "j", 5, True, share_difficulty=9.0)
                  for i in range(30)])
    ledger.apply([BlockEvent(now, 6, "ab" * 32, "bcrt1qcli.rig", "bcrt1qcli", 5_000_000_000, 0, True)])
    store.set_block_status("ab" * 32, BlockStatus.CONFIRMED, 100, now)
    store.create_batch({"bcrt1qcli": 1_000_000}, now)
    store.close()
    return url


def test_ledger_commands(tmp_path: Path) -> None:
    url = seed(tmp_path / "l.sqlite3")
    runner = CliRunner()
    out = runner.invoke(app, ["summary", "--database", url])
    assert out.exit_code == 0, out.output
    assert "workers 1/1 online" in out.output and "confirmed" in out.output
    out = runner.invoke(app, ["blocks", "--database", url])
    assert out.exit_code == 0 and "ab" * 32 in out.output and "confirmed" in out.output
    out = runner.invoke(app, ["balances", "--database", url])
    assert out.exit_code == 0 and "payable   4999000000" in out.output and "reserved      1000000" in out.output
    out = runner.invoke(app, ["payouts", "--database", url])
    assert out.exit_code == 0 and "intent" in out.output and "1000000 sat to 1 addresses" in out.output
    out = runner.invoke(app, ["workers", "--database", url])
    assert out.exit_code == 0 and "accepted        30" in out.output
    out = runner.invoke(app, ["rollup", "--database", url])
    assert out.exit_code == 0 and "pruned 0 shares" in out.output
    bad = runner.invoke(app, ["summary", "--database", "mysql://nope"])
    assert bad.exit_code == 1 and "cannot open the ledger" in bad.output


def test_a_stuck_payout_is_shown(tmp_path: Path) -> None:
    url = seed(tmp_path / "l.sqlite3")
    store = open_store(url)
    (batch,) = store.batches()
    store.update_batch(batch.id, BatchStatus.STUCK, time.time(), "cd" * 32, "left the mempool unconfirmed: mempool full")
    store.close()
    runner = CliRunner()
    out = runner.invoke(app, ["payouts", "--database", url])
    assert out.exit_code == 0 and "stuck" in out.output and "mempool full" in out.output
    out = runner.invoke(app, ["summary", "--database", url])
    assert out.exit_code == 0 and "payouts STUCK: 1 batch(es), 1000000 sat held" in out.output
    out = runner.invoke(app, ["balances", "--database", url])
    assert out.exit_code == 0 and "reserved      1000000 paid            0" in out.output

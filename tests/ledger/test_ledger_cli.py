"""`pithead ledger ...` on a seeded SQLite ledger, through the real `pithead` entry point's Typer app."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from pithead.cli.ledger import app
from pithead.events import BlockEvent, ShareEvent
from pithead.ledger.ledger import HASHRATE_WINDOWS_S, Ledger, LedgerSettings
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
    assert "workers online" in out.output and "│ 1/1 " in out.output and "confirmed" in out.output
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


def test_withholding_and_an_audited_payout_hold(tmp_path: Path) -> None:
    """A thief's 12 blocks' worth of work with none found: `withholding` shows it flagged; `hold` refuses in
    solo mode and for an unflagged worker, holds it in pool mode; `holds` lists the hold and its audit line;
    `release` lifts it."""
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    store = open_store(url)
    ledger = Ledger(store, LedgerSettings())
    now = time.time()
    thief, honest = "bcrt1qthief", "bcrt1qhonest"
    ledger.apply([ShareEvent(now - 200 + i, f"{a}.rig", a, 10.0, "j", 5, True, network_difficulty=100.0)
                  for i in range(120) for a in (thief, honest) if a == thief or i < 20])
    store.close()
    pool_cfg = tmp_path / "pool.toml"
    pool_cfg.write_text('[pool]\nmode = "pool"\npool_address = "bcrt1qpool"\n')
    runner = CliRunner()
    out = runner.invoke(app, ["withholding", "--database", url])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "flagged after 9.12 blocks" in lines[0]
    assert any(f"{thief}.rig" in line and "expected      12.00 found      0" in line and "FLAGGED" in line
               for line in lines), out.output
    assert any(f"{honest}.rig" in line and line.rstrip().endswith("ok") for line in lines)

    solo = runner.invoke(app, ["hold", f"{thief}.rig", "--reason", "none found", "--database", url])
    assert solo.exit_code == 1 and "pool mode" in solo.output
    unflagged = runner.invoke(app, ["hold", f"{honest}.rig", "--reason", "hunch", "--database", url,
                                    "--config", str(pool_cfg)])
    assert unflagged.exit_code == 1 and "not flagged" in unflagged.output
    held = runner.invoke(app, ["hold", f"{thief}.rig", "--reason", "12 expected, none found", "--actor", "alice",
                               "--database", url, "--config", str(pool_cfg)])
    assert held.exit_code == 0 and f"payouts of {thief} held (audit #1)" in held.output, held.output
    listed = runner.invoke(app, ["holds", "--database", url])
    assert listed.exit_code == 0
    assert f"HELD {thief}" in listed.output and "by alice" in listed.output
    assert "#1" in listed.output and "hold" in listed.output and "expected 12.00 found 0" in listed.output
    assert "payouts HELD" in runner.invoke(app, ["withholding", "--database", url]).output
    released = runner.invoke(app, ["release", thief, "--reason", "firmware fixed", "--actor", "bob",
                                   "--database", url])
    assert released.exit_code == 0 and "released (audit #2)" in released.output
    listed = runner.invoke(app, ["holds", "--database", url]).output
    assert "HELD" not in listed and "release" in listed and "by bob (cli): firmware fixed" in listed


def test_summary_is_a_table_and_json_for_scripts(tmp_path: Path) -> None:
    """Not a Python dict: a table per topic, and `--json` one object a script can read."""
    url = seed(tmp_path / "l.sqlite3")
    runner = CliRunner()
    out = runner.invoke(app, ["summary", "--database", url])
    assert out.exit_code == 0, out.output
    assert "{" not in out.output and "'confirmed'" not in out.output
    table_line = next(line for line in out.output.splitlines() if "confirmed" in line)
    assert [c.strip() for c in table_line.split("│") if c.strip()] == ["confirmed", "1"]
    assert "immature" in out.output and "payable" in out.output
    js = runner.invoke(app, ["summary", "--database", url, "--json"])
    assert js.exit_code == 0, js.output
    data = json.loads(js.output)
    assert data["blocks"] == {"confirmed": 1} and data["workers"] == 1 and data["payable_sat"] == 4_999_000_000
    assert set(data["hashrate"]) == {str(w) for w in HASHRATE_WINDOWS_S}


def test_a_data_dir_that_does_not_exist_is_said_so_and_nothing_is_created(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "no-such-dir"
    for command in (["summary"], ["blocks"], ["balances"], ["payouts"], ["rollup"], ["holds"]):
        out = runner.invoke(app, [*command, "--data-dir", str(missing)])
        assert out.exit_code == 1, (command, out.output)
        assert f"no such data directory: {missing}" in out.output
    assert not missing.exists()
    # The directory is there but holds no ledger: said so too, and no empty ledger is left behind.
    empty = tmp_path / "empty"
    empty.mkdir()
    out = runner.invoke(app, ["summary", "--data-dir", str(empty)])
    assert out.exit_code == 1 and "no ledger at" in out.output
    assert list(empty.iterdir()) == []
    # An SQLite URL whose file is missing likewise.
    out = runner.invoke(app, ["blocks", "--database", f"sqlite:///{tmp_path / 'nope.sqlite3'}"])
    assert out.exit_code == 1 and "no ledger at" in out.output and not (tmp_path / "nope.sqlite3").exists()


def test_a_block_that_lost_a_race_is_stale_not_rejected(tmp_path: Path) -> None:
    """The node said "inconclusive" (a valid block at a height it already had): recorded "stale", its own
    status, never credited; a block the node judged invalid stays "rejected"."""
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    store = open_store(url)
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO, fee_ppm=0))
    now = time.time()
    ledger.apply([
        BlockEvent(now, 7, "aa" * 32, "bcrt1qcli.rig", "bcrt1qcli", 5_000_000_000, 0, False,
                   node_result="inconclusive"),
        BlockEvent(now, 8, "bb" * 32, "bcrt1qcli.rig", "bcrt1qcli", 5_000_000_000, 0, False,
                   node_result="bad-txns-inputs-duplicate"),
    ])
    by_hash = {b.hash: b for b in store.blocks(10)}
    assert by_hash["aa" * 32].status is BlockStatus.STALE
    assert by_hash["bb" * 32].status is BlockStatus.REJECTED
    assert [b for b in store.balances() if b.immature_sat or b.payable_sat] == []
    store.close()
    out = CliRunner().invoke(app, ["summary", "--database", url, "--json"])
    assert json.loads(out.output)["blocks"] == {"stale": 1, "rejected": 1}

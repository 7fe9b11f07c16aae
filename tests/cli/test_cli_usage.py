"""`pithead node|pool|miner` are single commands: their usage must not promise subcommands.

Operator QA: `pithead node --help` read "Usage: pithead node [OPTIONS] COMMAND [ARGS]..." although node,
pool and miner have no subcommands (they were mounted as groups); `farm`, `ledger`, `bench` still are.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pithead.cli.main import _mount, app

_mount()
runner = CliRunner()


@pytest.mark.parametrize("name", ["node", "pool", "miner"])
def test_single_command_areas_have_plain_usage(name: str) -> None:
    r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f"pithead {name} [OPTIONS]" in r.output
    assert "COMMAND" not in r.output


@pytest.mark.parametrize("name", ["farm", "ledger", "bench"])
def test_groups_keep_their_subcommands(name: str) -> None:
    r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f"pithead {name} [OPTIONS] COMMAND [ARGS]..." in r.output


def test_single_command_areas_still_take_their_options() -> None:
    r = runner.invoke(app, ["miner"])  # no -o and no --benchmark: the miner's own usage error
    assert r.exit_code == 2 and "give at least one -o" in r.output
    r = runner.invoke(app, ["pool", "--mode", "nonsense", "--port", "0"])
    assert r.exit_code == 2 and "mode" in r.output

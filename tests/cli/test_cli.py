"""The `pithead` command mounts every area and reports its version."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pithead import __version__
from pithead.cli.main import SIGINT_EXIT, _mount, app
from pithead.config import ConfigError, load
from pithead.ledger.store import open_store


def test_version_command_prints_package_version() -> None:
    _mount()
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_config_rejects_unknown_keys(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[pool]\nport = 4444\nbogus = 1\n")
    try:
        load(p)
    except ConfigError as exc:
        assert "bogus" in str(exc)
    else:
        raise AssertionError("unknown key accepted")


def test_config_loads_sections(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[pool]\nport = 4444\nmode = "pool"\npool_address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"\n'
                 '[[pool.nodes]]\nurl = "http://127.0.0.1:1"\npriority = 2\n')
    cfg = load(p)
    assert cfg.pool.port == 4444 and cfg.pool.mode == "pool"
    assert cfg.pool.nodes[0].url == "http://127.0.0.1:1" and cfg.pool.nodes[0].priority == 2


# --- The console entry point: broken pipes and Ctrl-C (as an operator meets them, in a real process) ---

#: Bounded waits only, so a broken build fails instead of hanging (nothing here measures time).
PROCESS_WAIT = 60.0


def _pithead(*args: str) -> list[str]:
    return [sys.executable, "-m", "pithead.cli", *args]


def _into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader has already gone (`... | head` after head exited)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(args, stdout=w, stderr=subprocess.PIPE, timeout=PROCESS_WAIT, check=False)
    finally:
        os.close(w)


@pytest.mark.parametrize("command", [
    ["version"],                                 # typer.echo
    ["farm", "status", "--db", "{tmp}/farm.sqlite3"],  # a Rich table
    ["ledger", "summary", "--data-dir", "{tmp}/data"],  # typer.echo, several lines
])
def test_a_reader_that_goes_away_ends_the_command_quietly_with_status_0(command: list[str], tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    if command[0] == "ledger":  # a ledger to read: `ledger` refuses a data directory without one
        (tmp_path / "data").mkdir()
        open_store("sqlite:///ledger.sqlite3", data_dir=tmp_path / "data").close()
    done = _into_closed_pipe(_pithead(*args))
    assert done.stderr == b""
    assert done.returncode == 0


def test_real_errors_keep_their_status_and_message(tmp_path: Path) -> None:
    done = _into_closed_pipe(_pithead("farm", "no-such-command"))
    assert done.returncode == 2 and b"No such command" in done.stderr


def test_ctrl_c_on_a_long_running_command_stops_it_with_130_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        _pithead("farm", "poll", "--db", str(tmp_path / "farm.sqlite3"), "--interval", "3600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first sweep's line: the command is running its loop
        assert b"devices" in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=PROCESS_WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in err and err.strip() == b""
    assert proc.returncode == SIGINT_EXIT

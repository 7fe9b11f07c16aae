"""The one lifecycle of every long-running command (`pithead.app.lifecycle`): ordered stop, a failing part
stops the whole operation and names itself, Ctrl-C while starting stops what has started, and the
command's exit statuses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pithead.app.lifecycle import EXIT_CONFIG, EXIT_FAILED, Running, StartError, run_command, run_parts
from pithead.config import ConfigError

#: Bounded waits only (a broken lifecycle fails instead of hanging); nothing here measures time.
WAIT = 30.0


async def test_parts_stop_first_named_then_in_reverse_start_order(tmp_path: Path) -> None:
    stopped: list[str] = []
    running = Running(tmp_path)

    async def start() -> None:
        for name in ("node", "ledger", "pool", "web"):
            running.on_stop_sync(name, lambda name=name: stopped.append(name))

    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(run_parts(running, start, stop, started=lambda: None, on_ready=None, duration=None,
                                     first=("pool", "ledger")), WAIT)
    assert stopped == ["pool", "ledger", "web", "node"]


async def test_a_part_that_fails_stops_everything_and_is_named(tmp_path: Path) -> None:
    """A part's task that raises (a ledger whose database went away for good) must not leave the rest
    running half an operation: everything stops in order and the command says which part failed."""
    stopped: list[str] = []
    other_cancelled = asyncio.Event()
    running = Running(tmp_path)

    async def healthy() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            other_cancelled.set()
            raise

    async def broken() -> None:
        await asyncio.sleep(0)
        raise OSError("disk full")

    async def start() -> None:
        running.on_stop_sync("pool", lambda: stopped.append("pool"))
        running.spawn("status", healthy())
        running.spawn("ledger", broken())

    with pytest.raises(StartError, match="ledger failed: disk full"):
        await asyncio.wait_for(run_parts(running, start, asyncio.Event(), started=lambda: None, on_ready=None,
                                         duration=None), WAIT)
    assert stopped == ["pool"] and other_cancelled.is_set()


async def test_a_stop_request_while_starting_stops_what_started(tmp_path: Path) -> None:
    stopped: list[str] = []
    running = Running(tmp_path)
    stop = asyncio.Event()
    reached = asyncio.Event()

    async def start() -> None:
        running.on_stop_sync("node", lambda: stopped.append("node"))
        reached.set()
        await asyncio.Event().wait()  # a part that takes forever to start

    async def press_ctrl_c() -> None:
        await reached.wait()
        stop.set()

    announced: list[bool] = []
    await asyncio.wait_for(asyncio.gather(
        run_parts(running, start, stop, started=lambda: announced.append(True), on_ready=None, duration=None),
        press_ctrl_c()), WAIT)
    assert stopped == ["node"] and announced == []


@pytest.mark.parametrize(("error", "status"), [(ConfigError("pool.mode: bad"), EXIT_CONFIG),
                                                (StartError("node down"), EXIT_FAILED)])
def test_run_command_ends_with_one_line_and_its_status(error: Exception, status: int) -> None:
    lines: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        raise error

    with pytest.raises(SystemExit) as info:
        run_command("pithead test", main, print_fn=lines.append, err_fn=lines.append)
    assert info.value.code == status and lines == [f"pithead test: {error}"]


def test_run_command_runs_on_uvloop() -> None:
    seen: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run_command("pithead test", main, print_fn=lambda _: None, quiet_stop=True)
    assert seen and seen[0].startswith("uvloop")


def test_a_broken_command_module_fails_loudly() -> None:
    """An import error in one area's module is not turned into "No such command": the command fails with
    the traceback naming the module."""
    code = ("import sys; sys.modules['pithead.cli.farm'] = None\n"
            "from pithead.cli.main import main\nsys.argv = ['pithead', '--help']\nmain()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "pithead.cli.farm" in r.stderr

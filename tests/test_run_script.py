"""`./run` sets itself up out loud, and only with what the verb needs: `up` and `pithead` install the
runtime dependencies only, `test`, `lint` and `setup` the test and lint tools as well, in the one .venv
(a stamp per set, redone when the build inputs change); `test` says what it does about the services.

The script runs for real on a copy of itself beside a stand-in `.venv` whose `python`, `pithead` and
tools record how they were called (no package is installed, nothing is started)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RECORDER = '#!/bin/sh\necho "$(basename "$0")${*:+ $*}" >> "$RUN_LOG"\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "run", tmp_path / "run")
    for name in ("pyproject.toml", "setup.py"):
        (tmp_path / name).write_text("# stand-in\n")
    (tmp_path / "src").mkdir()
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "pithead", "ruff", "mypy"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def run(tree: Path, *args: str) -> tuple[list[str], list[str]]:
    """`./run ARGS` in `tree`: (the calls the stand-ins recorded, the script's lines on stderr)."""
    log = tree / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "RUN_LOG": str(log), "PITHEAD_START_SERVICES": "0"}
    done = subprocess.run(["bash", "./run", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return calls, done.stderr.splitlines()


def test_up_installs_the_runtime_only_and_says_so(tree: Path) -> None:
    calls, said = run(tree, "up", "--duration", "1")
    assert calls == ["python -m pip install -q -e .", "pithead up --duration 1"]
    assert said == ["run: installing pithead (editable, building its native hashing core) with its runtime "
                    "dependencies"]
    assert (tree / ".venv/.pithead-installed").exists()
    assert not (tree / ".venv/.pithead-installed-test").exists()
    # Set up: the next start installs nothing and says nothing.
    assert run(tree, "up") == (["pithead up"], [])


def test_test_installs_the_tools_once_and_up_reuses_them(tree: Path) -> None:
    calls, said = run(tree, "test", "-x")
    assert calls == ["python -m pip install -q -e .[test]", "python -m pytest -n 2 -q -x"]
    assert said == [
        "run: installing pithead (editable, building its native hashing core) with its runtime dependencies "
        "and the test and lint tools",
        "run: leaving PostgreSQL and Redis as they are (PITHEAD_START_SERVICES=0)",
    ]
    assert run(tree, "up")[0] == ["pithead up"]  # the tools' install holds the runtime too
    assert run(tree, "lint")[0] == ["ruff check src tests", "mypy"]
    assert run(tree, "pithead", "ledger", "summary")[0] == ["pithead ledger summary"]


def test_a_changed_build_input_reinstalls(tree: Path) -> None:
    run(tree, "setup")
    assert run(tree, "setup") == ([], [])
    later = time.time() + 5
    os.utime(tree / "pyproject.toml", (later, later))
    assert run(tree, "pithead", "--version")[0] == ["python -m pip install -q -e .", "pithead --version"]
    assert run(tree, "setup")[0] == ["python -m pip install -q -e .[test]"]

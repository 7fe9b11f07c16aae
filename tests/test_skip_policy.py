"""No silent skips: a test skipped for want of PostgreSQL, Redis or Chromium is listed with its reason at
the end of the run, and under CI (`CI=true`) it fails instead (tests/skips.py, hooked in by conftest.py).

Each case runs pytest on a small suite of its own in a subprocess, with the same hooks, so the policy is
seen as `./run test` shows it: plain, and across xdist's worker processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUITE = '''
import pytest
from skips import missing

def test_needs_postgresql():
    missing("postgresql", "connection refused")

@pytest.mark.browser
def test_marked_browser_skips_its_own_way():
    pytest.skip("no chromium on this machine")

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def backend(request):
    if request.param == "postgres":
        pytest.skip("PostgreSQL not available")
    return request.param

def test_on_each_backend(backend):
    assert backend == "sqlite"

def test_an_optional_build():
    pytest.skip("the native fan-out is not built")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False

def test_fine():
    pass
'''


def _run(tmp_path: Path, *args: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SUITE)
    (tmp_path / "conftest.py").write_text("from skips import pytest_runtest_makereport, pytest_terminal_summary\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    services: x\n    browser: x\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_skips_are_listed_at_the_end(tmp_path: Path, workers: list[str]) -> None:
    run = _run(tmp_path, *workers, ci=None)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "4 skipped" in out and "2 passed" in out and "1 xfailed" in out
    summary = out[out.index("skipped: what this run did not test"):]
    assert "1 skipped: they need PostgreSQL on 127.0.0.1:5432" in summary
    assert "    connection refused" in summary
    assert "1 skipped: they need Chromium" in summary and "no chromium on this machine" in summary
    assert "1 skipped: they need PostgreSQL or Redis (the tests are marked `services`)" in summary
    assert "under CI=true these are failures" in summary
    assert "1 skipped: the native fan-out is not built" in summary  # other skips are listed too


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_such_a_skip_fails(tmp_path: Path, ci: str) -> None:
    run = _run(tmp_path, "-rfE", ci=ci)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "2 failed" in out and "1 error" in out  # the fixture's skip fails its setup
    assert "needs postgresql: connection refused (CI=true" in out
    assert "skipped under CI=true, which must run every test: no chromium on this machine" in out
    assert "skipped under CI=true, which must run every test: PostgreSQL not available" in out
    assert "1 skipped" in out  # the optional build is not a service: still a skip
    assert "1 xfailed" in out


def test_ci_false_is_not_ci(tmp_path: Path) -> None:
    assert _run(tmp_path, ci="false").returncode == 0

"""What the full suite needs beyond Python, and the one policy for a test that cannot have it.

The full suite needs PostgreSQL, Redis and Chromium (NEEDS). A test that finds one missing calls
`missing(need, why)`; a test marked `services` or `browser` that skips for any reason is treated the same:

* outside CI it is skipped, and the end of the run lists every such skip with its reason (`summary`,
  printed by the terminal-summary hook), so a run without PostgreSQL never looks like the whole suite;
* under CI (`CI=true`, as CI services set it and `.ci/run` runs) it is a failure with that reason: CI
  starts the services and installs the browser, so their absence is a broken CI, not something to skip.

`tests/conftest.py` registers the two hooks (`pytest_runtest_makereport`, `pytest_terminal_summary`);
this module holds no fixtures and starts nothing (`./run test` starts the services when installed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterable
from typing import Any, NoReturn

import pytest

# What the full suite needs, as the README lists it.
NEEDS: dict[str, str] = {
    "postgresql": "PostgreSQL on 127.0.0.1:5432 with a database `test` (user postgres, no password)",
    "redis": "Redis on 127.0.0.1:6379",
    "chromium": "Chromium (Debian's `chromium` package)",
    "services": "PostgreSQL or Redis (the tests are marked `services`)",
}
# The markers of tests that need one of them (pyproject.toml registers them), and what each stands for.
MARKERS = {"services": "services", "browser": "chromium"}
# A skip reason `missing` writes: "needs <need>: <why>".
_NEED = re.compile(r"^needs (\w+): ")
# The reason pytest stores for a skip begins with this.
_SKIPPED = "Skipped: "
# Distinct reasons listed per group in the summary (the rest are counted).
SHOWN_REASONS = 3


def in_ci() -> bool:
    """Whether this run is CI's (`CI` set to 1, true or yes, in any case), where nothing may be skipped
    for want of a service or the browser."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(need: str, why: str) -> NoReturn:
    """`need` (a key of NEEDS) is not there: skip, listed at the end of the run; under CI, fail."""
    reason = f"needs {need}: {why}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: CI must run every test; {NEEDS[need]})", pytrace=False)
    pytest.skip(reason)


def skip_reason(report: Any) -> str:
    """The reason of a skipped test or collection report (its longrepr, whichever form it took)."""
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple | list) and len(longrepr) == 3 else str(longrepr)
    return text[len(_SKIPPED):] if text.startswith(_SKIPPED) else text


def need_of(item_markers: Iterable[str], reason: str) -> str | None:
    """What a skip was for want of: the need `missing` named, else the marker the test carries; None
    for a skip that is not about the suite's needs (an optional build, a port in use)."""
    m = _NEED.match(reason)
    if m:
        return m.group(1)
    needs = [MARKERS[m] for m in item_markers if m in MARKERS]
    return needs[0] if needs else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A skip for want of a service or the browser: recorded for the summary, or under CI a failure."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        need = need_of([m.name for m in item.iter_markers()], reason)
        if need is not None:
            if in_ci():
                report.outcome = "failed"
                report.longrepr = f"skipped under CI=true, which must run every test: {reason}"
            else:
                report.user_properties.append(("needs", need))
    return report


def summary(skipped: Iterable[Any]) -> list[str]:
    """The end-of-run lines about skipped reports: those for want of a service or the browser grouped by
    what was missing, then the others grouped by reason; empty when nothing was skipped."""
    by_need: dict[str, list[str]] = {}
    others: dict[str, int] = {}
    for report in skipped:
        if hasattr(report, "wasxfail"):
            continue
        reason = skip_reason(report)
        need = dict(getattr(report, "user_properties", ()) or ()).get("needs") or need_of((), reason)
        if need is None:
            others[reason] = others.get(reason, 0) + 1
        else:
            by_need.setdefault(need, []).append(_NEED.sub("", reason))
    lines = []
    for need, reasons in sorted(by_need.items()):
        what = NEEDS[need]
        lines.append(f"{len(reasons)} skipped: they need {what}")
        distinct = sorted(set(reasons))
        lines += [f"    {r}" for r in distinct[:SHOWN_REASONS]]
        if len(distinct) > SHOWN_REASONS:
            lines.append(f"    ... and {len(distinct) - SHOWN_REASONS} more reasons")
    if by_need:
        lines.append("Start them (`./run test` starts PostgreSQL and Redis when installed; see README, Tests) "
                     "for the whole suite; under CI=true these are failures.")
    for reason, n in sorted(others.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"{n} skipped: {reason}")
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = summary(terminalreporter.stats.get("skipped", []))
    if lines:
        terminalreporter.section("skipped: what this run did not test", sep="=", bold=True, yellow=True)
        for line in lines:
            terminalreporter.line(line)

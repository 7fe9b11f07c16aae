"""`pithead miner`'s plain (not a terminal) output: every event line is printed, promptly, even past the
bounded status log's size and when the miner stops between two status lines.

Operator QA found both broken: after MAX_LOG_LINES events the plain output printed no event line again
(the log's length stopped growing), and a short run (--duration under the status interval) never showed
why it was not mining ("connect failed", "all pools down").
"""

from __future__ import annotations

import socket
from collections import deque

from typer.testing import CliRunner

from pithead.cli.miner import app, unprinted
from pithead.miner.runner import MAX_LOG_LINES


def test_unprinted_keeps_finding_new_lines_once_the_log_is_full() -> None:
    log: deque[str] = deque(maxlen=MAX_LOG_LINES)
    printed: list[str] = []
    shown: list[str] = []
    for i in range(3 * MAX_LOG_LINES):
        log.append(f"event {i}")
        if i % 3 == 2:  # several events between two looks, as between two refreshes
            current = list(log)
            shown += unprinted(printed, current)
            printed = current
    assert shown == [f"event {i}" for i in range(3 * MAX_LOG_LINES)]


def test_unprinted_edge_cases() -> None:
    assert unprinted([], ["a"]) == ["a"]
    assert unprinted(["a", "b"], ["a", "b"]) == []
    assert unprinted(["x", "x"], ["x", "x", "x"]) == ["x"]  # repeated lines are not collapsed
    assert unprinted(["a"], ["b", "c"]) == ["b", "c"]  # everything rolled over: all of it is new


def test_short_run_prints_why_it_is_not_mining() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = CliRunner().invoke(app, ["-o", f"stratum+tcp://127.0.0.1:{port}", "-u", "worker", "-t", "1",
                                 "--duration", "2", "--path", "python"])
    assert r.exit_code == 0, r.output
    assert "connect failed" in r.output
    assert r.output.rstrip().splitlines()[-1].startswith("pithead miner: done")

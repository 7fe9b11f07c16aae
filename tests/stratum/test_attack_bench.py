"""`pithead bench attack --quick` runs end to end at a tiny size and prints every row it promises, each with
its figures: the honest miner's reply times alone and under every attack of issue 16, the attack's own
counts, and the new-block notify figures with idle miners on one address and on distinct addresses. No
timing is asserted: speed is for the report."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pithead.cli.bench import available

pytestmark = pytest.mark.timeout(420)

NUM = r"([\d,]+(?:\.\d+)?)"
ROWS = {
    "alone": None,
    "ban table at 2,000, then new bans": r"closed by pool [\d,]+",
    'bad hex submits (nonce "-1")': r"sent [\d,]+",
    "unknown-method spam": r"sent [\d,]+",
    "unknown-job-id spam": r"sent [\d,]+",
    "rejected work, 8 conns x 64 names": r"worker names 512",
    "web API readers (4)": r"sent [\d,]+",
    "60 idle logged-in conns, one address": r"connections 60",
    "60 idle logged-in conns, distinct addresses": r"connections 60",
}


def test_quick_run_prints_every_row_with_numbers() -> None:
    out = subprocess.run([sys.executable, "-m", "pithead.bench.attack", "--quick"], capture_output=True, text=True,
                         timeout=400, check=True).stdout
    table = out[out.index("phase "):]
    for name, load in ROWS.items():
        m = re.search(re.escape(name) + rf" +{NUM} +{NUM} +(\d+) +{NUM} +(.*)", table)
        assert m, f"no row {name!r} in:\n{table}"
        assert int(m.group(3)) > 0  # the honest miner got replies
        assert float(m.group(1).replace(",", "")) > 0 and float(m.group(2).replace(",", "")) > 0
        if load is not None:
            assert re.search(load, m.group(5)) and "pool log +" in m.group(5), m.group(5)
    for what in ("one address", "distinct addresses"):
        assert re.search(rf"60 idle, {what}: pool worker RSS \+-?{NUM} MiB after login \(-?{NUM} KiB per connection\), "
                         rf"\+-?{NUM} MiB after 2 new blocks \(-?{NUM} KiB per connection\)", out), out
        m = re.search(rf"new block with 60 idle, {what}: the pool wrote every notify in median {NUM} ms \(max {NUM}\), "
                      rf"the last miner's arrived median -?{NUM} ms after the push \((\d+) miners, 2 new blocks\); "
                      rf"pool CPU per new block median {NUM} ms", out)
        assert m, out
        assert int(m.group(4)) == 60
    assert "goal (issue 16): every attack within 2x of the alone median: " in out


def test_the_child_module_is_no_subcommand() -> None:
    assert "attack" in available() and "_attackers" not in available()

"""`pithead bench chain` runs and prints its figures (no timing is asserted: speed is for the report)."""

from __future__ import annotations

import re

import pytest

from pithead.bench import chain as bench_chain
from pithead.cli.bench import available


def test_bench_chain_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert "chain" in available()
    bench_chain.main(["--seconds", "0.01", "--branch", "12"])
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
    labels = ["header sha256d/s", "merkle-branch folds/s (12 entries)", "share rebuilds/s", "midstates/s"]
    for label in labels:
        (line,) = [ln for ln in lines if label in ln]
        rate = float(re.sub(r"[^0-9.]", "", line.rsplit(maxsplit=1)[-1]))
        assert rate > 0

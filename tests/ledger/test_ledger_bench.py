"""`pithead bench ledger` runs and prints its figures (their values are not asserted)."""

from __future__ import annotations

import pytest

from pithead.bench import ledger as bench


def test_bench_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--shares", "300", "--backend", "sqlite"])
    out = capsys.readouterr().out
    for what in ("shares/s", "PPLNS", "pool summary", "rollup"):
        assert what in out

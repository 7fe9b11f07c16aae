"""`pithead bench node` runs to the end and prints its figures (no timing is asserted: speed is for the report)."""

from __future__ import annotations

import re

import pytest

from pithead.bench import node as bench_node
from pithead.cli.bench import available


def test_bench_node_with_fewer_blocks_than_coinbase_maturity(capsys: pytest.CaptureFixture[str]) -> None:
    """--blocks below the wallet's maturity once crashed the sendmany phase with 'Insufficient funds'."""
    assert "node" in available()
    assert bench_node.WALLET_SPENDABLE_BLOCKS > 5
    bench_node.main(["--blocks", "5", "--txs", "3", "--mempool", "300", "--tips", "1"])
    out = capsys.readouterr().out
    assert "(5 blocks)" in out
    assert "(3 chained wallet transactions)" in out
    m = re.search(r"getblocktemplate with (\d+) txs: .* -> (\S+)", out)
    assert m is not None, out
    assert int(m.group(1)) == 3 and m.group(2) == "None"  # submitblock's null result: accepted
    for shape in bench_node.MEMPOOL_SHAPES:
        m = re.search(rf"template from a 300-tx mempool \({shape}\): .* \((\d+) txs fit", out)
        assert m is not None and int(m.group(1)) == 300, out  # 300 small transactions all fit a block
    for mode in ("zmq", "longpoll", "poll"):
        assert f"new tip -> NodeSource update by {mode}: median" in out

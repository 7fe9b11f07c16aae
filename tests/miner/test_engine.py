"""The hashing engine and the miner runner: threads find valid shares, switch work, and the CLI runs."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from typer.testing import CliRunner

from pithead.chain.compact import difficulty_to_target
from pithead.miner import core
from pithead.miner.engine import Engine
from pithead.miner.runner import Miner, MinerOptions, benchmark_work
from pithead.stratum.v1.work import FoundShare, MinerWork, NotifiedJob

#: Easy share difficulty: about one share per 2^18 hashes, so a second of hashing yields dozens.
EASY = 2**-14


def _work(job_id: str, generation: int, mask: int = 0x1FFFE000, en2_size: int = 4) -> MinerWork:
    job = NotifiedJob(job_id, bytes(range(32)), b"\x01\x00\x00\x00cb1", b"cb2", (bytes(32),), 0x20000000, 0x207FFFFF, 1_700_000_000, True)
    return MinerWork(job, b"\xde\xad\xbe\xef", en2_size, EASY, mask, generation)


def _collect(engine_threads: int, work: MinerWork, want: int, path: str | None = None) -> tuple[list[FoundShare], Engine]:
    shares: list[FoundShare] = []
    got = threading.Event()
    lock = threading.Lock()

    def on_share(s: FoundShare) -> None:
        with lock:
            shares.append(s)
            if len(shares) >= want:
                got.set()

    engine = Engine(engine_threads, on_share, path=path)
    engine.start()
    engine.set_work(work)
    try:
        assert got.wait(30), f"only {len(shares)} shares"
    finally:
        engine.stop()
    return shares, engine


def _independent_hash(s: FoundShare) -> int:
    """Rebuild the header from the share's submit fields alone and hash it with hashlib."""
    from pithead.stratum.v1.work import coinbase, header76

    w = s.work
    cb = coinbase(w.job, w.extranonce1, s.extranonce2)
    h = hashlib.sha256(hashlib.sha256(cb).digest()).digest()
    for b in w.job.merkle_branch:
        h = hashlib.sha256(hashlib.sha256(h + b).digest()).digest()
    version = (w.job.version & ~w.version_mask) | (s.version_bits & w.version_mask)
    hdr = header76(version, w.job.prevhash, h, s.ntime, w.job.nbits) + s.nonce.to_bytes(4, "little")
    return int.from_bytes(hashlib.sha256(hashlib.sha256(hdr).digest()).digest(), "little")


@pytest.mark.parametrize("path", [p for p in core.available_paths() if p != core.PATH_PYTHON])
def test_engine_threads_find_valid_distinct_shares(path: str) -> None:
    shares, engine = _collect(2, _work("a", 1), 20, path)
    target = difficulty_to_target(EASY)
    for s in shares:
        assert _independent_hash(s) <= target
    keys = {(s.extranonce2, s.version, s.ntime, s.nonce) for s in shares}
    assert len(keys) == len(shares)
    # Each thread worked on its own unit: at least two different (extranonce2, version) pairs produced shares.
    assert len({(s.extranonce2, s.version) for s in shares}) >= 2
    assert all(st.hw_errors == 0 for st in engine.stats) and engine.total_hashes > 0


def test_engine_switches_to_new_work() -> None:
    shares: list[FoundShare] = []
    engine = Engine(1, shares.append)
    engine.start()
    try:
        engine.set_work(_work("old", 1))
        deadline = time.monotonic() + 20
        while not any(s.work.job.job_id == "old" for s in shares) and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.set_work(_work("new", 2))
        n = len(shares)
        while sum(s.work.job.job_id == "new" for s in shares[n:]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.set_work(None)
    finally:
        engine.stop()
    later = shares[n:]
    assert sum(s.work.job.job_id == "new" for s in later) >= 3
    # After the switch at most one in-flight scan chunk of the old job can still report.
    first_new = next(i for i, s in enumerate(later) if s.work.job.job_id == "new")
    assert all(s.work.job.job_id == "new" for s in later[first_new:])


def test_engine_without_version_rolling_or_extranonce2_rolls_ntime() -> None:
    shares, _ = _collect(1, _work("n", 1, mask=0, en2_size=0), 5)
    assert all(s.version == 0x20000000 and s.extranonce2 == b"" for s in shares)
    assert all(_independent_hash(s) <= difficulty_to_target(EASY) for s in shares)


def test_engine_refuses_silly_thread_counts_and_unknown_paths() -> None:
    with pytest.raises(ValueError):
        Engine(0, lambda s: None)
    with pytest.raises(core.HashPathUnavailable):
        Engine(1, lambda s: None, path="abacus")


async def test_benchmark_miner_finds_shares_without_a_pool() -> None:
    found: list[FoundShare] = []
    miner = Miner(MinerOptions(pools=(), username="", threads=1, benchmark=True, benchmark_difficulty=EASY))
    miner.on_share_found = found.append
    status = await miner.run(duration=1.0)
    assert status.found == len(found) > 0
    assert all(_independent_hash(s) <= difficulty_to_target(EASY) for s in found)
    assert status.accepted == status.rejected == 0


def test_benchmark_work_is_random_and_valid() -> None:
    a, b = benchmark_work(), benchmark_work()
    assert a.job.prevhash != b.job.prevhash and a.version_mask == 0x1FFFE000


def test_cli_benchmark_and_argument_errors() -> None:
    from pithead.cli.main import _mount, app

    _mount()
    runner = CliRunner()
    res = runner.invoke(app, ["miner", "--benchmark", "-t", "1", "--duration", "0.5", "--path", "portable"])
    assert res.exit_code == 0, res.output
    assert "portable" in res.output and "hashes" in res.output
    res = runner.invoke(app, ["miner", "-u", "x"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["miner", "-o", "http://nope:1", "-u", "x"])
    assert res.exit_code == 2 and "stratum+tcp" in res.output
    res = runner.invoke(app, ["miner", "--benchmark", "--path", "abacus"])
    assert res.exit_code == 2


def test_bench_hash_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from pithead.bench import hash as bench_hash

    bench_hash.main(["--seconds", "0.2", "--repeat", "1", "--threads", "1", "--paths", "portable,python"])
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines() if ln.startswith(("portable", "python"))]
    assert [ln[0] for ln in lines] == ["portable", "python"]
    assert all(float(ln[2]) > 0 and float(ln[-1]) > 0 for ln in lines)


def test_suggest_difficulty_option() -> None:
    from pithead.cli.miner import parse_suggest

    one = parse_suggest("auto", 1, core.PATH_SHANI)
    assert one is not None and 0 < one < 1  # a CPU thread: far below difficulty 1
    four = parse_suggest("auto", 4, core.PATH_SHANI)
    assert four is not None and four == pytest.approx(4 * one, rel=0.01)
    assert parse_suggest("off", 2, core.PATH_SHANI) is None
    assert parse_suggest("512", 2, core.PATH_SHANI) == 512.0
    for bad in ("-3", "zero", "nan"):
        with pytest.raises(ValueError):
            parse_suggest(bad, 1, core.PATH_SHANI)


def test_hashrate_of_an_idle_engine_decays() -> None:
    engine = Engine(1, lambda s: None)
    engine.start()
    try:
        engine.set_work(_work("r", 1))
        deadline = time.monotonic() + 20
        while engine.total_rate() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        busy = engine.total_rate()
        assert busy > 0
        engine.set_work(None)  # disconnected: the threads idle
        time.sleep(0.5)
        hashes = engine.total_hashes
        time.sleep(1.0)
        assert engine.total_hashes == hashes  # no hashing while idle
        assert engine.total_rate() < 0.8 * busy
    finally:
        engine.stop()

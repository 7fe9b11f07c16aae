"""`pithead bench stratum` runs end to end at a tiny size and prints every figure it promises, in both
pool shapes (one process; worker processes with the load generator in client processes and the paused
round). No timing is asserted: speed is for the report."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def run_bench(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "pithead.bench.stratum", *args], capture_output=True, text=True,
                         timeout=150, check=True)
    return out.stdout


def figure(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1).replace(",", ""))


def test_single_process_figures() -> None:
    out = run_bench("--shares", "2000", "--share-conns", "2", "--conns", "60", "--sessions", "200", "--rounds", "2",
                    "--sv2-handshakes", "20")
    assert figure(out, r"200 READY sessions without sockets: \d+ MiB, ([\d.]+) KiB per session") >= 0
    assert figure(out, r"accepted (\d+), rejected \{\}") == 2000
    assert figure(out, r"pool CPU [\d.]+ s → ([\d,]+) shares judged per CPU-second") > 0
    # Stratum V2 in the same run, against the same pool's SV2 endpoint
    assert figure(out, r"SV2 handshakes: (\d+) Noise NX handshakes") == 20
    assert figure(out, r"→ ([\d,]+) handshakes per CPU-second") > 0
    assert figure(out, r"SV2 share throughput: (\d+) shares from 2 pipelining standard channels") == 2000
    assert figure(out, r"acknowledged (\d+), refused 0") == 2000
    assert figure(out, r"V2 (\d+) \+ [\d.]+ = \d+ \(encrypted") == 62  # a standard share: 22 + 24 + 16 bytes
    assert figure(out, r"shares judged per CPU-second: V1 ([\d,]+), V2") > 0
    assert figure(out, r"N=60: (\d+) miners held \(ready\)") == 60
    assert figure(out, r"block 2/2: new block → last miner's notify [\d.]+ ms \(median [\d.]+ ms\) over (\d+)") == 60
    assert figure(out, r"CPU per new block \(least of 2\): pool ([\d.]+) ms") > 0


def test_worker_processes_client_processes_and_paused_round() -> None:
    out = run_bench("--workers", "2", "--client-procs", "2", "--paused-miners", "--shares", "1000",
                    "--share-conns", "2", "--conns", "40", "--sessions", "0", "--rounds", "1")
    assert "with 2 worker processes" in out
    assert "SV2: not measured (the SV2 endpoint runs in the one-process pool only)" in out
    assert figure(out, r"accepted (\d+), rejected \{\}") == 1000
    assert figure(out, r"N=40: (\d+) miners held \(ready\) from 2 client processes") == 40
    assert figure(out, r"pool wrote (\d+) notifies in [\d.]+ ms \(the slowest worker\)") == 40
    assert figure(out, r"miners paused: template push → the pool's last notify written ([\d.]+) ms") > 0
    assert figure(out, r"; (\d+) received after the miners resumed") == 40

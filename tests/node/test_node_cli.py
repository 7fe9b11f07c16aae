"""`pithead node` as a process: starts, writes its cookie, answers RPC, and the `stop` RPC ends it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 20.0


def test_pithead_node_runs_and_stops_by_rpc(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pithead.cli.main import main; main()",
            "node",
            "--datadir",
            str(tmp_path),
            "--rpcport",
            "0",
            "--zmqpubhashblock",
            "tcp://127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"RPC (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1)
        assert url is not None, "pithead node did not print its RPC address"
        cookie = (tmp_path / "regtest" / ".cookie").read_text()
        user, _, password = cookie.partition(":")
        reply = httpx.post(
            url, json={"method": "getblockchaininfo", "params": [], "id": 1}, auth=(user, password)
        )
        assert reply.json()["result"]["chain"] == "regtest"
        reply = httpx.post(url, json={"method": "stop", "params": [], "id": 2}, auth=(user, password))
        assert reply.status_code == 200
        assert proc.wait(timeout=START_TIMEOUT_S) == 0
        assert not (tmp_path / "regtest" / ".cookie").exists()  # removed on shutdown, as bitcoind does
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

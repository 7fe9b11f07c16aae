"""The long fuzz run, by hand: ``PYTHONPATH=src python -m tests.fuzz --minutes N [--target pool|node|all]``.

Runs the harness's properties (`tests/fuzz/harness.py`) against a live pool and a live embedded node, in
rounds of fresh random examples, until the time is up; prints how many inputs each target was given and
every finding (shrunk by hypothesis to a small input). Exits 1 if anything was found.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' shared helpers (`stratum.helpers`)

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import (
    LiveNode,
    LivePool,
    junk_lines,
    node_bodies,
    node_paths,
    stratum_requests,
    submit_fields,
)

ROUND = 100
"""Examples per round of one property (then the next property; a finding ends only its round)."""


def _properties(pool: LivePool | None, node: LiveNode | None) -> list[tuple[str, Callable[[], None]]]:
    props: list[tuple[str, Callable[[], None]]] = []
    run = settings(max_examples=ROUND, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    if pool is not None:
        p = pool

        @run
        @given(lines=junk_lines)
        def junk(lines: list[bytes]) -> None:
            p.try_lines(lines)

        @run
        @given(requests=st.lists(stratum_requests, max_size=8), handshake=st.booleans())
        def requests(requests: list[dict[str, Any]], handshake: bool) -> None:
            p.try_requests(requests, handshake)

        @run
        @given(fields=st.lists(submit_fields, min_size=1, max_size=6))
        def submits(fields: list[tuple[Any, Any, Any, Any, Any]]) -> None:
            p.try_submits(fields)

        props += [("pool: junk lines", junk), ("pool: requests", requests), ("pool: submits on live jobs", submits)]
    if node is not None:
        n = node

        @run
        @given(body=node_bodies, path=node_paths)
        def rpc(body: bytes, path: str) -> None:
            n.try_body(body, path)

        props.append(("node: JSON-RPC over HTTP", rpc))
    return props


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="how long to run (default 3)")
    ap.add_argument("--target", choices=("pool", "node", "all"), default="all")
    args = ap.parse_args(argv)
    pool = LivePool() if args.target in ("pool", "all") else None
    node = LiveNode() if args.target in ("node", "all") else None
    findings: list[str] = []
    deadline = time.monotonic() + 60 * args.minutes
    started = time.monotonic()
    try:
        props = _properties(pool, node)
        while time.monotonic() < deadline:
            for name, prop in props:
                if time.monotonic() >= deadline:
                    break
                try:
                    prop()
                except Exception as exc:  # a finding: hypothesis re-raised it after shrinking the input
                    text = "".join(traceback.format_exception_only(exc)).strip()
                    note = "\n".join(getattr(exc, "__notes__", []))
                    findings.append(f"[{name}] {text}\n{note}".strip())
                    print(f"FOUND in {name}: {text.splitlines()[0][:300]}", flush=True)
    finally:
        for target in (pool, node):
            if target is not None:
                target.close()
    minutes = (time.monotonic() - started) / 60
    counts = {"pool": pool.inputs if pool else 0, "node": node.inputs if node else 0}
    print(f"fuzzed for {minutes:.1f} min: {counts['pool'] + counts['node']} inputs "
          f"(pool {counts['pool']}, node {counts['node']}; each a connection or request with its checks); "
          f"{len(findings)} finding(s)")
    for f in findings:
        print("---\n" + f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

"""A short run of the fuzz harness (bounded examples, a few seconds): hypothesis against the live pool
(junk lines, well-shaped requests with random fields, before and after the handshake, submits on live
jobs) and the embedded node's JSON-RPC over HTTP. The long run is `python -m tests.fuzz --minutes N`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import LiveNode, LivePool, junk_lines, node_bodies, node_paths, stratum_requests, submit_fields

SHORT = settings(max_examples=25, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def pool() -> Iterator[LivePool]:
    p = LivePool()
    yield p
    p.close()


@pytest.fixture(scope="module")
def node() -> Iterator[LiveNode]:
    n = LiveNode()
    yield n
    n.close()


@SHORT
@given(lines=junk_lines)
def test_pool_junk_lines(pool: LivePool, lines: list[bytes]) -> None:
    pool.try_lines(lines)


@SHORT
@given(requests=st.lists(stratum_requests, max_size=8), handshake=st.booleans())
def test_pool_requests_with_random_fields(pool: LivePool, requests: list[dict[str, Any]], handshake: bool) -> None:
    pool.try_requests(requests, handshake)


@SHORT
@given(fields=st.lists(submit_fields, min_size=1, max_size=6))
def test_pool_submits_on_live_jobs(pool: LivePool, fields: list[tuple[Any, Any, Any, Any, Any]]) -> None:
    pool.try_submits(fields)


def test_the_harness_reaches_the_live_server(pool: LivePool) -> None:
    """The harness is not vacuous: a submit on the live job is judged, the issue's reproducer (nonce "-1")
    is answered and a flood of junk is banned, each through the same checks as the fuzzed inputs."""
    judged, banned = pool.server.metrics.shares_judged, len(pool.server.admission.bans)
    pool.try_submits([(None, None, None, None, None), (None, None, None, "-1", None)])
    pool.try_lines([b"junk"] * 12)
    assert pool.server.metrics.shares_judged == judged + 1
    assert len(pool.server.admission.bans) == banned + 1


@SHORT
@given(body=node_bodies, path=node_paths)
def test_node_rpc_bodies(node: LiveNode, body: bytes, path: str) -> None:
    node.try_body(body, path)

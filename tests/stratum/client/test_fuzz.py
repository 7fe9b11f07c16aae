"""Properties: hostile or broken pool input only ever raises the client's typed error, and work math holds."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.stratum.v1.client import ClientConfig, ClientSession
from pithead.stratum.v1.errors import ProtocolViolation
from pithead.stratum.v1.work import NotifiedJob, deposit_bits, roll_version

METHODS = [
    "mining.notify",
    "mining.set_difficulty",
    "mining.set_extranonce",
    "mining.set_version_mask",
    "client.reconnect",
    "client.show_message",
    "client.get_version",
    "mining.ping",
    "mining.unknown",
]

json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=80)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=10) | st.dictionaries(st.text(max_size=8), c, max_size=5), max_leaves=30)


def _session() -> ClientSession:
    s = ClientSession(ClientConfig("w"))
    s.start()
    s.data_to_send()
    return s


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(METHODS), rid=st.none() | st.integers(0, 2**40), params=json_value)
def test_any_server_message_is_handled_or_refused_with_a_typed_error(method: str, rid: Any, params: Any) -> None:
    s = _session()
    try:
        s.receive_data(json.dumps({"id": rid, "method": method, "params": params}).encode() + b"\n")
    except ProtocolViolation:
        pass


@settings(max_examples=100, deadline=None)
@given(rid=st.integers(0, 10), result=json_value, error=json_value)
def test_any_reply_to_our_requests_is_handled_or_refused_with_a_typed_error(rid: int, result: Any, error: Any) -> None:
    s = _session()
    try:
        s.receive_data(json.dumps({"id": rid, "result": result, "error": error}).encode() + b"\n")
    except ProtocolViolation:
        pass


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_only_raise_the_typed_error(data: bytes) -> None:
    s = _session()
    try:
        s.receive_data(data + b"\n")
    except ProtocolViolation:
        pass


@settings(max_examples=100, deadline=None)
@given(params=st.lists(json_value, max_size=12))
def test_notify_params_parse_or_raise_the_typed_error(params: list[Any]) -> None:
    try:
        NotifiedJob.from_notify(params)
    except ProtocolViolation:
        pass


@given(index=st.integers(0, 2**16 - 1), mask=st.integers(0, 2**32 - 1))
def test_deposit_bits_stays_inside_the_mask_and_is_injective(index: int, mask: int) -> None:
    width = bin(mask).count("1")
    bits = deposit_bits(index, mask)
    assert bits & ~mask == 0
    if index < 2**width:
        other = deposit_bits((index + 1) % 2**width, mask)
        assert (other != bits) or width == 0


@given(job_version=st.integers(0, 2**32 - 1), mask=st.integers(0, 2**32 - 1), bits=st.integers(0, 2**32 - 1))
def test_rolled_version_changes_only_masked_bits(job_version: int, mask: int, bits: int) -> None:
    v = roll_version(job_version, mask, bits)
    assert v & ~mask == job_version & ~mask & 0xFFFFFFFF
    assert v & mask == bits & mask

"""The ZMQ subscriber's message parsing (the subscriber itself is driven end to end by the template
sources' tests, against the embedded node's publisher)."""

from __future__ import annotations

import pytest

from pithead.bitcoind.zmq import ZmqMessageError, parse_message


def test_a_core_notification_parses() -> None:
    body = bytes(range(32))
    assert parse_message([b"hashblock", body, (7).to_bytes(4, "little")]) == ("hashblock", body, 7)


@pytest.mark.parametrize(
    "frames",
    [[b"hashblock", b"x"], [b"hashblock", b"x", b"\x00\x00\x00"], [b"hashblock", b"x", b"\x00" * 4, b""]],
)
def test_anything_else_is_refused(frames: list[bytes]) -> None:
    with pytest.raises(ZmqMessageError):
        parse_message(frames)

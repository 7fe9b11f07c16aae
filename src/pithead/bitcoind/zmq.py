"""A ZMQ subscriber for Bitcoin Core's `-zmqpubhashblock` notifications (and pithead's node's).

Messages are three frames: topic, body (the block hash in display byte order), 4-byte little-endian
sequence. A gap in the sequence means messages were lost (the publisher's high-water mark, a reconnect);
the caller should treat it like a notification and refetch. Uses pyzmq's asyncio sockets; `LINGER 0` so
closing never blocks.

Not here: anything done about a notification (`pithead.template.sources.node` fetches a template over
`pithead.bitcoind.rpc` on each one), decoding `rawblock`/`rawtx` bodies, and the publishing side (the
embedded node's publisher is `pithead.node.zmqpub`). A notification is a hint, never the truth: ZMQ may drop
messages, so a subscriber's user also polls.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq
import zmq.asyncio

RECV_HWM = 1000  # messages buffered before the oldest are dropped; hashblock is ~1 per block


class ZmqMessageError(ValueError):
    """A message that is not topic/body/4-byte-sequence."""


@dataclass(frozen=True, slots=True)
class ZmqNotification:
    topic: str
    body: bytes
    sequence: int
    gap: bool  # True when messages before this one were lost


def parse_message(frames: list[bytes]) -> tuple[str, bytes, int]:
    if len(frames) != 3 or len(frames[2]) != 4:
        raise ZmqMessageError(f"expected 3 frames with a 4-byte sequence, got {len(frames)} frames")
    return frames[0].decode("ascii", "replace"), frames[1], int.from_bytes(frames[2], "little")


class HashBlockSubscriber:
    def __init__(self, address: str, topics: tuple[str, ...] = ("hashblock",)) -> None:
        self.address = address
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, RECV_HWM)
        for t in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self._sock.connect(address)
        self._last: dict[str, int] = {}

    async def receive(self) -> ZmqNotification:
        while True:
            frames = await self._sock.recv_multipart()
            try:
                topic, body, seq = parse_message(frames)
            except ZmqMessageError:
                continue  # not a Core notification: ignore rather than stop listening
            last = self._last.get(topic)
            self._last[topic] = seq
            gap = last is not None and seq != (last + 1) & 0xFFFFFFFF
            return ZmqNotification(topic, body, seq, gap)

    def close(self) -> None:
        self._sock.close(linger=0)

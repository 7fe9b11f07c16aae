"""A bare Stratum V2 client for tests against the live endpoint: the real Noise handshake and transport over
a socket, messages sent and read one by one, and the raw encrypted bytes at hand for attacks."""

from __future__ import annotations

import asyncio
import time

from pithead.stratum.v2 import noise
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.mining import NewMiningJob, OpenStandardMiningChannelSuccess, SetNewPrevHash
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from stratum.v2.harness import USER, open_standard, setup_connection

WAIT_S = 30.0
"""Seconds any one read may take on a loaded two-core machine."""


class Sv2Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 transport: noise.NoiseTransport) -> None:
        self.reader, self.writer, self.transport = reader, writer, transport
        self._queue: list[Message] = []

    @classmethod
    async def connect(cls, port: int, authority_key: bytes) -> Sv2Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        initiator = noise.Initiator(authority_key)
        writer.write(initiator.start())
        async with asyncio.timeout(WAIT_S):
            while True:
                data = await reader.read(4096)
                assert data, "the pool closed the connection during the handshake"
                step = initiator.feed(data, time.time())
                if step.transport is not None:
                    assert step.leftover == b""
                    return cls(reader, writer, step.transport)

    def wire(self, *messages: Message) -> bytes:
        """The encrypted bytes of `messages` (the transport's nonces advance: send them, or lose step)."""
        return b"".join(self.transport.encrypt(encode_frame(m)) for m in messages)

    async def send(self, *messages: Message) -> None:
        self.send_raw(self.wire(*messages))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv(self) -> Message:
        async with asyncio.timeout(WAIT_S):
            while not self._queue:
                data = await self.reader.read(65536)
                assert data, "the pool closed the connection"
                self._queue += [decode_frame(f, protocol=Subprotocol.MINING)[0] for f in self.transport.feed(data)]
        return self._queue.pop(0)

    async def recv_until(self, name: str) -> Message:
        while True:
            message = await self.recv()
            if message.NAME == name:
                return message

    async def closed(self) -> bool:
        """Read (and decode what decrypts) until the pool closes the connection: True once it has."""
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return True
                if not data:
                    return True
                self._queue += [decode_frame(f, protocol=Subprotocol.MINING)[0] for f in self.transport.feed(data)]

    async def standard_channel(self, user: str = USER) -> tuple[OpenStandardMiningChannelSuccess, NewMiningJob,
                                                                  SetNewPrevHash]:
        await self.send(setup_connection(), open_standard(user=user))
        assert (await self.recv()).NAME == "SetupConnection.Success"
        ok, job, prev = await self.recv(), await self.recv(), await self.recv()
        assert isinstance(ok, OpenStandardMiningChannelSuccess), ok
        assert isinstance(job, NewMiningJob) and isinstance(prev, SetNewPrevHash)
        return ok, job, prev

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(5):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ConnectionError):
            self.writer.transport.abort()

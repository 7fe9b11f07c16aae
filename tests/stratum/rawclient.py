"""A small Stratum V1 client for the tests: raw JSON lines over asyncio streams, nothing from pithead.

It sends requests with increasing ids, routes replies to their futures and collects notifications
(notify, set_difficulty, show_message, ...) in a queue, like a miner's receive loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from pithead.chain.compact import difficulty_to_target
from pithead.chain.hashes import prevhash_from_stratum, sha256d

from .helpers import find_nonces


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.next_id = 1
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.notes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.extranonce1 = b""
        self.extranonce2_size = 4
        self.difficulty = 1.0
        self.job: list[Any] | None = None
        self.en2_counter = 0
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        r, w = await asyncio.open_connection(host, port)
        return cls(r, w)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                msg = orjson.loads(line)
                if msg.get("method"):
                    if msg["method"] == "mining.set_difficulty":
                        self.difficulty = float(msg["params"][0])
                    elif msg["method"] == "mining.notify":
                        self.job = msg["params"]
                    await self.notes.put(msg)
                else:
                    fut = self.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def call(self, method: str, params: list[Any], wait_s: float = 10.0) -> dict[str, Any]:
        i = self.next_id
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.send_raw(orjson.dumps({"id": i, "method": method, "params": params}) + b"\n")
        return await asyncio.wait_for(fut, wait_s)

    async def handshake(self, user: str, password: str = "x", mask: str | None = "ffffffff") -> None:
        if mask is not None:
            r = await self.call("mining.configure", [["version-rolling"], {"version-rolling.mask": mask}])
            assert r["error"] is None
        r = await self.call("mining.subscribe", ["pithead-test/1"])
        assert r["error"] is None, r
        self.extranonce1 = bytes.fromhex(r["result"][1])
        self.extranonce2_size = r["result"][2]
        r = await self.call("mining.authorize", [user, password])
        assert r["result"] is True, r

    async def wait_notify(self, clean: bool | None = None, wait_s: float = 10.0) -> list[Any]:
        while True:
            msg = await asyncio.wait_for(self.notes.get(), wait_s)
            if msg["method"] == "mining.notify" and (clean is None or msg["params"][8] is clean):
                return msg["params"]  # type: ignore[no-any-return]

    async def wait_method(self, method: str, wait_s: float = 10.0) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.notes.get(), wait_s)
            if msg["method"] == method:
                return msg

    def solve(self, job: list[Any], target: int, version_bits: int = 0) -> tuple[str, str, str, str]:
        """Find one share for `job` meeting `target`: (extranonce2, ntime, nonce, version_bits) hex."""
        while True:
            self.en2_counter += 1
            en2 = self.en2_counter.to_bytes(self.extranonce2_size, "big")
            coinbase = bytes.fromhex(job[2]) + self.extranonce1 + en2 + bytes.fromhex(job[3])
            root = sha256d(coinbase)
            for b in job[4]:
                root = sha256d(root + bytes.fromhex(b))
            version = int(job[5], 16) | version_bits
            ntime = int(job[7], 16)
            header76 = (
                version.to_bytes(4, "little") + prevhash_from_stratum(job[1]) + root
                + ntime.to_bytes(4, "little") + int(job[6], 16).to_bytes(4, "little")
            )
            found = find_nonces(header76, target, 1, limit=1 << 20)
            if found:
                return en2.hex(), job[7], f"{found[0]:08x}", f"{version_bits:08x}"

    async def submit_one(self, user: str, job: list[Any], diff: float | None = None,
                         version_bits: int = 0) -> dict[str, Any]:
        target = difficulty_to_target(diff if diff is not None else self.difficulty)
        en2, ntime, nonce, vb = self.solve(job, target, version_bits)
        return await self.call("mining.submit", [user, job[0], en2, ntime, nonce, vb])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

"""Scripted Stratum V1 miners that speak the dialects of real firmware, for tests/stratum/test_miner_dialects.py.

What it is: one class per firmware. Each writes its requests with the byte layout, the ids and the ORDER
that firmware uses (printf-style, as the firmware formats them, not re-serialized JSON), reads the
pool's replies the way that firmware reads them, applies `mining.set_difficulty`, `mining.set_version_mask`
and `mining.set_extranonce` with that firmware's rules, and finds real shares with `find_nonces`. The
hashing is not the firmware's (an ASIC or an ESP32 does that), so each miner has a small "hashing
stand-in" (`solve`) that returns a share at the difficulty the firmware applies to that job — or, asked
for a block, one that meets the network target.

Sources (collected in /work/shared/notes/stratum-field-notes.md §5, "Stratum V1 details that break real
miners"; read in the firmware's public code where the notes are terse):
  * cpuminer (pooler/cpuminer util.c `stratum_subscribe`, `stratum_authorize`, `stratum_notify`,
    `stratum_set_difficulty`; session resume util.c:1183);
  * cgminer (util.c:2236-2244 configure; util.c:3293 / cgminer.c:7765-7768 extranonce2 from a uint64;
    cgminer.c:7158-7163 6th submit param only with a mask; util.c:2473-2479 one diff per notify);
  * bfgminer (no version rolling at all: luke-jr in bfgminer #858);
  * ESP-Miner / Bitaxe (main/tasks/stratum_v1_task.c:327-341, 494-501 handshake order;
    components/stratum/stratum_api.c: request formats, `valueint` for set_difficulty, set_version_mask,
    set_extranonce; main/tasks/asic_result_task.c:78 + stratum_api.c:735 version_bits = rolled ^ job);
  * ESP-Miner 2.1.5 (suggest_difficulty before authorize: the log in ESP-Miner #182);
  * NerdMiner v2 (src/stratum.cpp:97-100 subscribe result fields; :215 `String(nonce, HEX)`;
    src/mining.h:9 DEFAULT_DIFFICULTY 0.00015).
Nothing here imports the pool: only pithead.chain for hashing helpers, as tests/stratum/client.py does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pithead.chain.compact import DIFF1_TARGET, bits_to_target, difficulty_to_target
from pithead.chain.hashes import display_hex, prevhash_from_stratum, sha256d

from .helpers import find_nonces

WAIT_S = 20.0
"""Safety net for every wait on the pool (never an assertion about speed: a hung pool fails, not a slow one)."""

NONCE_WINDOW = 256
"""Nonces scanned per `find_nonces` call: at these tiny difficulties most nonces qualify, and the native scan
returns every match in its range."""


def printf(fmt: str, *args: object) -> str:
    """C's sprintf: each request is built from its firmware's own format string, kept verbatim."""
    return fmt % args


def check_reply(msg: dict[str, Any]) -> None:
    """The reply shape every one of these firmwares relies on: `id`, `result` and `error` all present;
    success has `"error": null`, failure has `"result": null` and `[code, message, null]` (NiceHash
    needs the null present, MC #1709; ESP-Miner reads error[1], NerdMiner error[0] and error[1])."""
    assert {"id", "result", "error"} <= msg.keys(), msg
    err = msg["error"]
    if err is None:
        assert msg["result"] is not None, msg
    else:
        assert msg["result"] is None, msg
        assert isinstance(err, list) and len(err) == 3, msg
        assert isinstance(err[0], int) and 20 <= err[0] <= 25 and isinstance(err[1], str) and err[2] is None, msg


@dataclass
class Work:
    """A mining.notify as the firmware keeps it, plus what the firmware decided for it."""

    params: list[Any]
    difficulty: float  # the share difficulty this firmware applies to shares of this job
    extranonce1: bytes
    extranonce2: bytes  # chosen by the firmware for this job
    received: int  # order of arrival (0, 1, ...)
    next_nonce: int = 0  # the nonce scan continues here (no two shares of a job collide)

    @property
    def job_id(self) -> str:
        return str(self.params[0])

    @property
    def prev_hex(self) -> str:
        """The previous block hash in display order (as getbestblockhash returns it)."""
        return display_hex(prevhash_from_stratum(self.params[1]))

    @property
    def version(self) -> int:
        return int(self.params[5], 16)

    @property
    def network_target(self) -> int:
        return bits_to_target(int(self.params[6], 16))


@dataclass
class Share:
    work: Work
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int  # the header nVersion hashed
    version_bits: int | None  # the 6th submit param (None: the firmware sends 5 params)
    hash_int: int

    @property
    def difficulty(self) -> float:
        """What the hash reached, computed as the pool computes it (for matching its share events)."""
        return DIFF1_TARGET / self.hash_int

    @property
    def is_block(self) -> bool:
        return self.hash_int <= self.work.network_target

    @property
    def block_hash(self) -> str:
        return f"{self.hash_int:064x}"


@dataclass
class Reply:
    msg: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.msg["error"] is None and self.msg["result"] is True

    @property
    def code(self) -> int | None:
        err = self.msg["error"]
        return None if err is None else int(err[0])


class Firmware:
    """The common part: a TCP connection, a receive loop, the firmware's state. Subclasses give the dialect."""

    name = "firmware"
    rolls_version = False  # asks for version rolling with mining.configure
    next_notify_difficulty = True  # set_difficulty applies from the next notify (else at once)

    def __init__(self, user: str, password: str = "x", seed: int = 0) -> None:
        self.user = user
        self.password = password
        self.rng = random.Random(seed)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent: list[bytes] = []  # every line written, as written
        self.replies: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._on_reply: dict[int, Callable[[dict[str, Any]], None]] = {}
        self.error: Exception | None = None  # what broke the receive loop
        self._changed = asyncio.Event()
        self.next_id = 1
        # what the firmware holds
        self.session_id: str | None = None
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.difficulty = 0.0  # the difficulty in force for new work
        self.next_difficulty: float | None = None
        self.version_mask = 0  # negotiated (0: no rolling)
        self.works: list[Work] = []
        self.closed = False
        self.violations: list[str] = []  # messages this firmware would not understand or expect

    # --- connection ----------------------------------------------------------------------------------
    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.closed = False
        self._task = asyncio.create_task(self._read(), name=f"{self.name}-read")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.writer = None

    async def _read(self) -> None:
        """The firmware's receive loop: every line handled in order, replies and notifications alike."""
        assert self.reader is not None
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if msg.get("method"):
                    self.notifications.append(msg)
                    self.on_notification(msg["method"], msg.get("params") or [])
                else:
                    check_reply(msg)
                    self.replies.append(msg)
                    handler = self._on_reply.pop(msg["id"], None)
                    if handler is not None:
                        handler(msg)
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                self._wake()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a reply or message this firmware could not take: fail the test with it
            self.error = exc
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.name}: connection closed ({self.error!r})"))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, pred: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not pred():
            if self.error is not None:
                raise AssertionError(f"{self.name}: receive loop failed: {self.error!r}") from self.error
            if self.closed:
                raise AssertionError(f"{self.name}: connection closed while waiting for {what}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def write(self, line: str, msg_id: int | None,
              on_reply: Callable[[dict[str, Any]], None] | None = None) -> asyncio.Future[dict[str, Any]]:
        """Write one request line exactly as given (the firmware's own formatting) and return the future of
        its reply; `on_reply` runs in the receive loop, in order with the notifications around it (as a
        firmware's single loop handles a result before the notify that follows it)."""
        assert self.writer is not None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # a lost reply is not an error by itself
        if msg_id is not None:
            self._pending[msg_id] = fut
            if on_reply is not None:
                self._on_reply[msg_id] = on_reply
        data = line.encode() + b"\n"
        self.sent.append(data)
        self.writer.write(data)
        return fut

    async def call(self, line: str, msg_id: int) -> dict[str, Any]:
        fut = self.write(line, msg_id)
        assert self.writer is not None
        await self.writer.drain()
        return await asyncio.wait_for(fut, WAIT_S)

    def take_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    # --- what the pool sends -------------------------------------------------------------------------
    def on_notification(self, method: str, params: list[Any]) -> None:
        if method == "mining.set_difficulty":
            self.on_set_difficulty(params[0])
        elif method == "mining.notify":
            self.on_notify(params)
        elif method == "mining.set_version_mask":
            self.on_set_version_mask(params)
        elif method == "mining.set_extranonce":
            self.on_set_extranonce(params)
        # client.show_message and the rest: logged by every firmware, nothing to do

    def on_set_difficulty(self, value: Any) -> None:
        diff = float(value)
        assert diff > 0, value
        if self.next_notify_difficulty:
            self.next_difficulty = diff
        else:
            self.difficulty = diff
            for w in self.works:  # the mining loop compares every hash with the global difficulty
                w.difficulty = diff

    def on_notify(self, params: list[Any]) -> None:
        assert len(params) == 9, params
        if self.next_notify_difficulty and self.next_difficulty is not None:
            self.difficulty = self.next_difficulty
            self.next_difficulty = None
        work = Work(params, self.difficulty, self.extranonce1, b"", len(self.works))
        work.extranonce2 = self.extranonce2_for(work)
        self.works.append(work)

    def on_set_version_mask(self, params: list[Any]) -> None:
        self.violations.append(f"mining.set_version_mask {params} without a negotiated mask")

    def on_set_extranonce(self, params: list[Any]) -> None:
        self.violations.append(f"mining.set_extranonce {params} without mining.extranonce.subscribe")

    # --- work ------------------------------------------------------------------------------------------
    @property
    def work(self) -> Work | None:
        return self.works[-1] if self.works else None

    async def wait_work(self, pred: Callable[[Work], bool] = lambda w: True, what: str = "job") -> Work:
        await self.wait_for(lambda: self.work is not None and pred(self.work), what)
        assert self.work is not None
        return self.work

    def extranonce2_for(self, work: Work) -> bytes:
        return (work.received + 1).to_bytes(self.extranonce2_size, "big")

    def roll(self, work: Work) -> tuple[int, int | None]:
        """(header nVersion, 6th submit param or None)."""
        return work.version, None

    def solve(self, work: Work, block: bool = False) -> Share:
        """The hashing stand-in: the next share of `work` at the difficulty this firmware applies to it that
        is NOT a block (a block changes the tip for the whole farm, so blocks are asked for explicitly), or
        with `block`, one that meets the network target."""
        p = work.params
        coinbase = bytes.fromhex(p[2]) + work.extranonce1 + work.extranonce2 + bytes.fromhex(p[3])
        root = sha256d(coinbase)
        for b in p[4]:
            root = sha256d(root + bytes.fromhex(b))
        version, vbits = self.roll(work)
        ntime = int(p[7], 16)
        header76 = (version.to_bytes(4, "little") + prevhash_from_stratum(p[1]) + root
                    + ntime.to_bytes(4, "little") + int(p[6], 16).to_bytes(4, "little"))
        net = work.network_target
        target = net if block else difficulty_to_target(work.difficulty)
        while True:
            start = work.next_nonce
            work.next_nonce += NONCE_WINDOW
            for n in find_nonces(header76, target, NONCE_WINDOW, start=start, limit=NONCE_WINDOW):
                h = int.from_bytes(sha256d(header76 + n.to_bytes(4, "little")), "little")
                assert h <= target
                if block or h > net:
                    work.next_nonce = n + 1
                    return Share(work, work.extranonce2, ntime, n, version, vbits, h)

    def submit_line(self, share: Share, msg_id: int) -> str:
        raise NotImplementedError

    def submit_id(self) -> int:
        return self.take_id()

    async def submit(self, share: Share) -> Reply:
        msg_id = self.submit_id()
        return Reply(await self.call(self.submit_line(share, msg_id), msg_id))

    async def handshake(self) -> None:
        raise NotImplementedError


class CpuMiner(Firmware):
    """pooler/cpuminer 2.5.1: subscribe id 1 (with the previous session id when resuming), authorize id 2,
    submits with id 4 and its own key order; no configure, no suggest_difficulty; set_difficulty takes effect
    at the next notify (`job.diff = next_diff`)."""

    name = "cpuminer"
    agent = "cpuminer/2.5.1"
    _last_job_id: str | None = None
    _xnonce2 = 0

    def subscribe_line(self) -> str:
        if self.session_id:  # util.c:1183: params[1] = the previous session id
            return printf('{"id": 1, "method": "mining.subscribe", "params": ["%s", "%s"]}',
                          self.agent, self.session_id)
        return printf('{"id": 1, "method": "mining.subscribe", "params": ["%s"]}', self.agent)

    async def handshake(self) -> None:
        r = await self.call(self.subscribe_line(), 1)
        assert r["error"] is None, r
        res = r["result"]
        # get_stratum_session_id: the id of the "mining.notify" subscription in result[0]
        sid = next((s[1] for s in res[0] if isinstance(s, list) and str(s[0]).lower() == "mining.notify"), None)
        assert isinstance(sid, str) and sid, res
        self.session_id = sid
        assert isinstance(res[1], str) and res[1], res
        self.extranonce1 = bytes.fromhex(res[1])
        assert isinstance(res[2], int) and 0 < res[2] <= 100, res  # "Invalid value of extranonce2_size"
        self.extranonce2_size = res[2]
        self.next_difficulty = 1.0  # sctx->next_diff = 1.0 until the pool says otherwise
        r = await self.call(printf('{"id": 2, "method": "mining.authorize", "params": ["%s", "%s"]}',
                                   self.user, self.password), 2)
        assert r["error"] is None and r["result"] is True, r

    def on_notify(self, params: list[Any]) -> None:
        # stratum_notify refuses anything but 64-digit prevhash and 8-digit version/nbits/ntime
        assert len(params[1]) == 64 and len(params[5]) == len(params[6]) == len(params[7]) == 8, params
        assert all(len(b) == 64 for b in params[4]), params
        super().on_notify(params)

    def extranonce2_for(self, work: Work) -> bytes:
        # stratum_notify zeroes xnonce2 only when the job id changes (it survives a reconnect that brings
        # the same job back); stratum_gen_work increments it little-endian before each piece of work
        if work.job_id != self._last_job_id:
            self._xnonce2 = 0
        self._last_job_id = work.job_id
        self._xnonce2 += 1
        return self._xnonce2.to_bytes(self.extranonce2_size, "little")

    def submit_id(self) -> int:
        return 4

    def submit_line(self, share: Share, msg_id: int) -> str:
        return printf('{"method": "mining.submit", "params": ["%s", "%s", "%s", "%08x", "%08x"], "id":%d}',
                      self.user, share.work.job_id, share.extranonce2.hex(), share.ntime, share.nonce, msg_id)

    async def submit(self, share: Share) -> Reply:
        # every submit has id 4: replies come back in order on the one connection
        n = len(self.replies)
        self.write(self.submit_line(share, 4), None)
        assert self.writer is not None
        await self.writer.drain()
        await self.wait_for(lambda: any(r["id"] == 4 for r in self.replies[n:]), "submit reply")
        return Reply(next(r for r in self.replies[n:] if r["id"] == 4))


class CgMiner(Firmware):
    """cgminer 4.x (the base of Antminer firmware): mining.configure with {"version-rolling.mask":"ffffffff"}
    and no min-bit-count first (util.c:2236-2244), then subscribe and authorize; extranonce2 filled from a
    uint64 (cgminer.c:7765-7768), so it needs extranonce2_size <= 8; set_difficulty applies from the next
    notify (util.c:2473-2479); the 6th submit param only when a mask was negotiated (cgminer.c:7158-7163);
    handles mining.set_version_mask (util.c:2693-2714)."""

    name = "cgminer"
    agent = "cgminer/4.12.1"
    rolls_version = True

    async def handshake(self) -> None:
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.configure", "params": [["version-rolling"], '
                            '{"version-rolling.mask": "ffffffff"}]}', i), i)
        assert r["error"] is None, r
        if r["result"].get("version-rolling") is True:
            self.version_mask = int(r["result"]["version-rolling.mask"], 16)
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.subscribe", "params": ["%s"]}', i, self.agent), i)
        assert r["error"] is None, r
        res = r["result"]
        self.extranonce1 = bytes.fromhex(res[1])
        n2 = res[2]
        assert isinstance(n2, int) and 2 <= n2 <= 16, res  # what cgminer accepts at subscribe (util.c:3293)
        assert n2 <= 8, f"extranonce2_size {n2} > 8: cgminer fills extranonce2 from a uint64_t"
        self.extranonce2_size = n2
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.authorize", "params": ["%s", "%s"]}',
                                   i, self.user, self.password), i)
        assert r["error"] is None and r["result"] is True, r

    def extranonce2_for(self, work: Work) -> bytes:
        return (work.received + 1).to_bytes(8, "little")[: self.extranonce2_size]

    def on_set_version_mask(self, params: list[Any]) -> None:
        self.version_mask = int(params[0], 16)

    def roll(self, work: Work) -> tuple[int, int | None]:
        if not self.version_mask:
            return work.version, None
        top = 1 << (self.version_mask.bit_length() - 1)  # the highest bit the pool lets us roll
        rolled = (work.version & ~self.version_mask) | top
        return rolled, rolled ^ work.version

    def submit_line(self, share: Share, msg_id: int) -> str:
        if share.version_bits is None:
            return printf('{"params": ["%s", "%s", "%s", "%08x", "%08x"], "id": %d, "method": "mining.submit"}',
                          self.user, share.work.job_id, share.extranonce2.hex(), share.ntime, share.nonce, msg_id)
        return (printf('{"params": ["%s", "%s", "%s", "%08x", "%08x", "%08x"], "id": %d, "method": "mining.submit"}',
                       self.user, share.work.job_id, share.extranonce2.hex(), share.ntime, share.nonce,
                       share.version_bits, msg_id))


class BfgMiner(CgMiner):
    """BFGMiner 5.x: cgminer's wire format without version rolling ("ASICBoost … has never been supported by
    BFGMiner", luke-jr in bfgminer #858): no mining.configure, five submit params."""

    name = "bfgminer"
    agent = "bfgminer/5.5.0"
    rolls_version = False

    async def handshake(self) -> None:
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.subscribe", "params": ["%s"]}', i, self.agent), i)
        assert r["error"] is None, r
        res = r["result"]
        self.extranonce1 = bytes.fromhex(res[1])
        assert isinstance(res[2], int) and 2 <= res[2] <= 8, res
        self.extranonce2_size = res[2]
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.authorize", "params": ["%s", "%s"]}',
                                   i, self.user, self.password), i)
        assert r["error"] is None and r["result"] is True, r

    def on_set_version_mask(self, params: list[Any]) -> None:
        Firmware.on_set_version_mask(self, params)  # never negotiated: the pool must not send it


class EspMiner(Firmware):
    """ESP-Miner (Bitaxe, 2026): configure(id 1, mask "ffffffff") → subscribe(id 2, UA "bitaxe/BM1370/v2.x")
    → authorize(id 3), then, after authorize succeeds, suggest_difficulty(id 4) and
    mining.extranonce.subscribe(id 5) (main/tasks/stratum_v1_task.c:327-341, 494-501). It always sends the
    6th submit param, version_bits = rolled_version ^ job_version (asic_result_task.c:78, stratum_api.c:735),
    applies set_version_mask and set_extranonce (stratum_api.c:255-262), and reads set_difficulty with
    cJSON's `valueint` into a uint32 (so a sub-1 difficulty reads as 0 in the firmware: it then submits every
    nonce its ASIC reports; the ASIC's own hardware mask, >= 1 in a real chip, is far above what a regtest
    test can afford, so the hashing stand-in works at the difficulty the pool sent)."""

    name = "esp-miner"
    agent = "bitaxe/BM1370/v2.9.0"
    rolls_version = True
    suggest = 1000  # AxeOS's default suggested difficulty (a whole number: "%ld")
    extranonce_subscribe = True

    def __init__(self, user: str, password: str = "x", seed: int = 0) -> None:
        super().__init__(user, password, seed)
        self.firmware_difficulty: int | None = None  # what the firmware's uint32 holds

    def configure_line(self, i: int) -> str:
        return (printf('{"id": %d, "method": "mining.configure", "params": [["version-rolling"], '
                '{"version-rolling.mask": "ffffffff"}]}', i))

    def read_subscribe(self, r: dict[str, Any]) -> None:
        assert r["error"] is None, r
        res = r["result"]
        self.extranonce2_size = int(res[2])
        self.extranonce1 = bytes.fromhex(res[1])

    def read_configure(self, r: dict[str, Any]) -> None:
        assert r["error"] is None, r
        mask = r["result"].get("version-rolling.mask")
        if isinstance(mask, str):  # STRATUM_RESULT_VERSION_MASK
            self.version_mask = int(mask, 16)
        # else: "error setting version mask" is logged and mining goes on without rolling

    async def handshake(self) -> None:
        # the firmware writes configure, subscribe and authorize, then reads the replies in its main loop
        f1 = self.write(self.configure_line(1), 1, self.read_configure)
        f2 = self.write(printf('{"id": 2, "method": "mining.subscribe", "params": ["%s"]}', self.agent), 2,
                        self.read_subscribe)
        f3 = self.write(printf('{"id": 3, "method": "mining.authorize", "params": ["%s", "%s"]}',
                               self.user, self.password), 3)
        self.next_id = 4
        assert self.writer is not None
        await self.writer.drain()
        for f in (f1, f2):
            await asyncio.wait_for(f, WAIT_S)
        r = await asyncio.wait_for(f3, WAIT_S)
        assert r["error"] is None and r["result"] is True, r
        i = self.take_id()
        r = await self.call(printf('{"id": %d, "method": "mining.suggest_difficulty", "params": [%d]}',
                                   i, self.suggest), i)
        assert r["error"] is None and r["result"] is True, r
        if self.extranonce_subscribe:
            i = self.take_id()
            r = await self.call(printf('{"id": %d, "method": "mining.extranonce.subscribe", "params": []}', i), i)
            assert r["error"] is None and r["result"] is True, r

    def on_set_difficulty(self, value: Any) -> None:
        self.firmware_difficulty = int(value)  # cJSON valueint: truncates toward zero
        super().on_set_difficulty(value)

    def on_set_version_mask(self, params: list[Any]) -> None:
        self.version_mask = int(params[0], 16)  # BIP310: at once

    def on_set_extranonce(self, params: list[Any]) -> None:
        if not self.extranonce_subscribe:
            Firmware.on_set_extranonce(self, params)
            return
        self.extranonce1 = bytes.fromhex(params[0])
        self.extranonce2_size = int(params[1])

    def roll(self, work: Work) -> tuple[int, int | None]:
        top = 1 << (self.version_mask.bit_length() - 1) if self.version_mask else 0
        rolled = (work.version & ~self.version_mask) | top
        return rolled, rolled ^ work.version  # sent even when nothing was rolled

    def submit_line(self, share: Share, msg_id: int) -> str:
        assert share.version_bits is not None
        return (printf('{"id": %d, "method": "mining.submit", "params": ["%s", "%s", "%s", "%08x", "%08x", "%08x"]}',
                       msg_id, self.user, share.work.job_id, share.extranonce2.hex(), share.ntime, share.nonce,
                       share.version_bits))


class EspMinerOld(EspMiner):
    """ESP-Miner 2.1.5: suggest_difficulty went out BEFORE authorize (the log in ESP-Miner #182; ckpool
    drops a suggest from an unauthorised client, stratifier.c:6727-6738), suggesting 512, and no
    extranonce.subscribe. Configure/subscribe as the current firmware; each request waits for its reply."""

    name = "esp-miner-2.1.5"
    agent = "bitaxe/BM1366/v2.1.5"
    suggest = 512
    extranonce_subscribe = False

    async def handshake(self) -> None:
        self.read_configure(await self.call(self.configure_line(1), 1))
        self.read_subscribe(await self.call(
            printf('{"id": 2, "method": "mining.subscribe", "params": ["%s"]}', self.agent), 2))
        r = await self.call(printf('{"id": 3, "method": "mining.suggest_difficulty", "params": [%d]}', self.suggest), 3)
        assert r["error"] is None and r["result"] is True, r
        r = await self.call(printf('{"id": 4, "method": "mining.authorize", "params": ["%s", "%s"]}',
                                   self.user, self.password), 4)
        assert r["error"] is None and r["result"] is True, r
        self.next_id = 5


class NerdMiner(Firmware):
    """NerdMiner v2 (ESP32): subscribe id 1 with UA "NerdMinerV2" and reads result[0][0][1], result[1] and
    result[2] (src/stratum.cpp:97-100); authorize id 2 without waiting for its reply; suggest_difficulty id 3
    with DEFAULT_DIFFICULTY 0.00015 (src/mining.h:9, "%.10g"); set_difficulty is a double used by the
    mining loop at once; submits five params with the nonce as `String(nonce, HEX)` — lowercase and NOT
    zero-padded (src/stratum.cpp:215). An error is any non-empty "error" (checkError: error.size() != 0)."""

    name = "nerdminer"
    agent = "NerdMinerV2"
    next_notify_difficulty = False
    suggest = 0.00015

    async def handshake(self) -> None:
        r = await self.call(printf('{"id": 1, "method": "mining.subscribe", "params": ["%s"]}', self.agent), 1)
        assert r["error"] is None, r  # checkError: error.size() == 0
        res = r["result"]
        sub_details = res[0][0][1]
        assert isinstance(sub_details, str) and sub_details, res
        self.session_id = sub_details
        assert isinstance(res[1], str) and res[1], res  # "extranonce1 length: 0" aborts the worker
        self.extranonce1 = bytes.fromhex(res[1])
        self.extranonce2_size = int(res[2])
        self.next_id = 2
        f_auth = self.write(printf('{"params": ["%s", "%s"], "id": %d, "method": "mining.authorize"}',
                                   self.user, self.password, 2), 2)
        f_sugg = self.write(printf('{"id": %d, "method": "mining.suggest_difficulty", "params": [%.10g]}',
                                   3, self.suggest), 3)
        self.next_id = 4
        assert self.writer is not None
        await self.writer.drain()
        # the firmware does not read these replies in the handshake; its main loop sees "error": null
        for fut in (f_auth, f_sugg):
            r = await asyncio.wait_for(fut, WAIT_S)
            assert r["error"] is None and r["result"] is True, r

    def extranonce2_for(self, work: Work) -> bytes:
        return self.rng.getrandbits(8 * self.extranonce2_size).to_bytes(self.extranonce2_size, "big")

    def submit_line(self, share: Share, msg_id: int) -> str:
        # ntime is echoed as received; the nonce is String(nonce, HEX): lowercase, no zero padding
        return printf('{"id": %d, "method": "mining.submit", "params": ["%s","%s","%s","%s","%x"]}',
                      msg_id, self.user, share.work.job_id, share.extranonce2.hex(), share.work.params[7],
                      share.nonce)


@dataclass
class Outcome:
    """What one miner did, for the test's assertions after the farm has run."""

    miner: Firmware
    shares: list[Share] = field(default_factory=list)  # accepted
    duplicate: Reply | None = None
    stale: Reply | None = None
    block: Share | None = None
    stale_retries: int = 0  # shares answered 21 because another miner's block landed first

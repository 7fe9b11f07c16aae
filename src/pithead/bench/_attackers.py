"""The child processes of `pithead bench attack`: the honest miner that times its share replies, and the
attackers of issue 16 (see `pithead.bench.attack`). Their own module, importing no web stack, so each
starts in a fraction of a second; started as `python -m pithead.bench._attackers --role ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from pithead.bench.stratum import raise_nofile
from pithead.chain.address import script_to_address
from pithead.chain.params import REGTEST

READ_PATHS = ("/api/pool", "/api/workers?limit=100", "/api/hashrate?range=1d", "/api/shares/recent?limit=50",
              "/metrics")
"""What the web readers read (as `pithead bench webload`'s do)."""
SHARE_EVERY_S = 0.02
"""The honest miner's pace: 50 shares a second."""
HONEST_DIFFICULTY = 1e-12
"""So low that every nonce is a valid share: the reply is the pool's whole share path."""
WARMUP_S = 1.0
"""The attack runs this long before the honest miner starts timing."""
CONNECT_BATCH = 500
"""Concurrent connection attempts while opening the idle miners."""
WORKER_NAMES = 64
"""Worker names each rejected-work connection authorizes (the pool's per-connection bound)."""
WAIT_S = 120.0
"""Bound on every wait of the driver (a broken pool fails the bench instead of hanging it)."""


def address(i: int) -> str:
    """The i-th payout address of the bench (regtest P2WPKH, distinct for every i)."""
    a = script_to_address(bytes.fromhex("0014") + (0xB0000000 + i).to_bytes(20, "big"), REGTEST)
    assert a is not None
    return a


HONEST = address(0)


def fresh_ips(block: int) -> itertools.count[int]:
    """Source addresses 127.<block>.x.y: each attacker connection from one never used before."""
    return itertools.count(block << 16 | 1)


def _ip(n: int) -> str:
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}"


def _line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


# --- the honest miner (child) ------------------------------------------------------------------------------


async def _honest(port: int, seconds: float) -> None:
    """Submit a share every SHARE_EVERY_S for `seconds`; print each reply time in ms, one per line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    user = HONEST + ".honest"
    writer.write(_line({"id": 1, "method": "mining.subscribe", "params": ["bench-honest"]})
                 + _line({"id": 2, "method": "mining.authorize", "params": [user, f"d={HONEST_DIFFICULTY:g}"]}))
    job = ntime = ""
    while not job:
        msg = orjson.loads(await asyncio.wait_for(reader.readline(), WAIT_S))
        if msg.get("method") == "mining.notify":
            job, ntime = msg["params"][0], msg["params"][7]
    times: list[float] = []
    deadline = time.monotonic() + seconds
    for rid in itertools.count(10):
        if time.monotonic() >= deadline:
            break
        t0 = time.perf_counter()
        writer.write(_line({"id": rid, "method": "mining.submit",
                            "params": [user, job, f"{rid:08x}", ntime, f"{rid:08x}"]}))
        while True:
            line = await asyncio.wait_for(reader.readline(), WAIT_S)
            if not line:
                raise SystemExit("the pool closed the honest miner's connection")
            msg = orjson.loads(line)
            if msg.get("method") == "mining.notify":  # a new block: the next share goes on the new job
                job, ntime = msg["params"][0], msg["params"][7]
            elif msg.get("id") == rid:
                break
        times.append((time.perf_counter() - t0) * 1000.0)
        await asyncio.sleep(max(0.0, SHARE_EVERY_S - (time.perf_counter() - t0)))
    writer.close()
    print("\n".join(f"{t:.4f}" for t in times), flush=True)


# --- the attackers (child) ---------------------------------------------------------------------------------


@dataclass
class AttackTally:
    """What an attacker did: lines sent, connections opened and closed by the pool, other counts."""

    sent: int = 0
    connections: int = 0
    closed_by_pool: int = 0
    refused: int = 0
    extra: dict[str, int] = field(default_factory=dict)


async def _open(port: int, ip: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0)), 10.0)
    except (OSError, TimeoutError):
        return None


async def _drain_until_closed(reader: asyncio.StreamReader, wait_s: float) -> bool:
    """Read and drop what the pool sends until it closes (True) or `wait_s` passes (False)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(wait_s):
            while await reader.read(65536):
                pass
            return True
    return False


async def _login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str,
                 extra_users: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """Subscribe and authorize `user` (and `extra_users`); the first job's (id, ntime), or None."""
    msgs = [_line({"id": 1, "method": "mining.subscribe", "params": ["bench-attack"]}),
            _line({"id": 2, "method": "mining.authorize", "params": [user, "x"]})]
    msgs += [_line({"id": 3 + i, "method": "mining.authorize", "params": [u, "x"]}) for i, u in enumerate(extra_users)]
    writer.write(b"".join(msgs))
    with contextlib.suppress(TimeoutError, ConnectionError, ValueError):
        async with asyncio.timeout(30.0):
            while True:
                line = await reader.readline()
                if not line:
                    return None
                msg = orjson.loads(line)
                if msg.get("method") == "mining.notify":
                    return msg["params"][0], msg["params"][7]
    return None


async def _churn(port: int, tally: AttackTally, stop: asyncio.Event, ips: itertools.count[int],
                 one: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
    """Open a connection from a fresh address, run `one` on it, count how it ended; again until `stop`."""
    while not stop.is_set():
        conn = await _open(port, _ip(next(ips)))
        if conn is None:
            tally.refused += 1
            await asyncio.sleep(0.05)
            continue
        reader, writer = conn
        tally.connections += 1
        try:
            await one(reader, writer)
            if await _drain_until_closed(reader, 3.0):
                tally.closed_by_pool += 1
        except (ConnectionError, OSError):
            tally.closed_by_pool += 1
        finally:
            writer.close()


async def attack_bans(port: int, tally: AttackTally, stop: asyncio.Event) -> None:
    """Earn bans: ten junk lines from each fresh address (a malformed message costs a tenth of a ban)."""
    ips = fresh_ips(1)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'{"junk\n' * 12)
        tally.sent += 12

    await asyncio.gather(*(_churn(port, tally, stop, ips, one) for _ in range(4)))


async def attack_bad_hex(port: int, tally: AttackTally, stop: asyncio.Event) -> None:
    """Submits on the live job with nonce "-1" (issue 16 finding 5), 40 per connection."""
    ips = fresh_ips(2)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        user = address(1) + ".x"
        job = await _login(reader, writer, user)
        if job is None:
            return
        job_id, ntime = job
        writer.write(b"".join(_line({"id": 10 + i, "method": "mining.submit",
                                     "params": [user, job_id, "00000000", ntime, "-1"]}) for i in range(40)))
        tally.sent += 40

    await asyncio.gather(*(_churn(port, tally, stop, ips, one) for _ in range(4)))


async def _spam(port: int, tally: AttackTally, stop: asyncio.Event, block: int, login: bool,
                make: Callable[[int, str, tuple[str, str] | None], bytes]) -> None:
    """Pipelined spam on a few connections: a batch of lines, its replies read, again; a new connection
    (from a fresh address) when the pool closes one."""
    ips = fresh_ips(block)

    async def conn_loop() -> None:
        while not stop.is_set():
            conn = await _open(port, _ip(next(ips)))
            if conn is None:
                tally.refused += 1
                await asyncio.sleep(0.05)
                continue
            reader, writer = conn
            tally.connections += 1
            user = address(2) + ".spam"
            try:
                job = await _login(reader, writer, user) if login else None
                n = 0
                while not stop.is_set():
                    batch = b"".join(make(100 + n + i, user, job) for i in range(256))
                    n += 256
                    writer.write(batch)
                    await writer.drain()
                    tally.sent += 256
                    got = 0
                    async with asyncio.timeout(30.0):
                        while got < 256:
                            line = await reader.readline()
                            if not line:
                                raise ConnectionError("closed")
                            got += line.startswith(b'{"id":')
            except (ConnectionError, OSError, TimeoutError):
                tally.closed_by_pool += 1
            finally:
                writer.close()

    await asyncio.gather(*(conn_loop() for _ in range(4)))


async def attack_unknown_method(port: int, tally: AttackTally, stop: asyncio.Event) -> None:
    await _spam(port, tally, stop, 3, False,
                lambda i, user, job: _line({"id": i, "method": "mining.nonsense", "params": []}))


async def attack_unknown_job(port: int, tally: AttackTally, stop: asyncio.Event) -> None:
    def make(i: int, user: str, job: tuple[str, str] | None) -> bytes:
        ntime = job[1] if job is not None else "00000000"
        return _line({"id": i, "method": "mining.submit", "params": [user, "7ffffff0", f"{i:08x}", ntime, f"{i:08x}"]})

    await _spam(port, tally, stop, 4, True, make)


async def attack_rejected_work(port: int, tally: AttackTally, stop: asyncio.Event, conns: int, ready: asyncio.Event,
                               per_second: float) -> None:
    """`conns` connections, each with WORKER_NAMES worker names, sending low-difficulty shares from them in
    turn at `per_second` per connection (below the ban score's decay, as the issue's attacker did)."""
    ips = fresh_ips(5)
    opened = 0
    names: set[str] = set()

    async def conn_loop(k: int) -> None:
        nonlocal opened
        conn = await _open(port, _ip(next(ips)))
        if conn is None:
            tally.refused += 1
            return
        reader, writer = conn
        tally.connections += 1
        base = address(1000 + k)
        users = [f"{base}.w{j}" for j in range(WORKER_NAMES)]
        names.update(users)
        try:
            job = await _login(reader, writer, users[0], tuple(users[1:]))
            opened += 1
            if opened >= conns:
                ready.set()
            if job is None:
                return
            reader_task = asyncio.create_task(_drain_until_closed(reader, 1e9))
            rng = random.Random(k)
            for i in itertools.count():
                if stop.is_set() or reader_task.done():
                    break
                writer.write(_line({"id": 1000 + i, "method": "mining.submit",
                                    "params": [users[i % WORKER_NAMES], job[0], f"{i:08x}", job[1],
                                               f"{rng.getrandbits(32):08x}"]}))
                tally.sent += 1
                await asyncio.sleep(1.0 / per_second)
            if reader_task.done():
                tally.closed_by_pool += 1
            reader_task.cancel()
        finally:
            writer.close()

    await asyncio.gather(*(conn_loop(k) for k in range(conns)))
    tally.extra["worker names"] = len(names)


async def attack_web(web_port: int, tally: AttackTally, stop: asyncio.Event, readers: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}", timeout=30.0,
                                 limits=httpx.Limits(max_connections=readers)) as client:

        async def one(k: int) -> None:
            for i in itertools.count(k):
                if stop.is_set():
                    break
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(READ_PATHS[i % len(READ_PATHS)])
                    tally.sent += 1

        await asyncio.gather(*(one(k) for k in range(readers)))


class _Idle(asyncio.Protocol):
    """An idle miner: logs in, then only counts the notifies it receives (and when the last one came)."""

    __slots__ = ("_board", "_hello", "last_at", "notifies", "transport")

    def __init__(self, hello: bytes, board: _IdleBoard) -> None:
        self.notifies = 0
        self.last_at = 0.0
        self._hello = hello
        self._board = board
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self._hello)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        n = data.count(b'"mining.notify"')
        if n:
            if not self.notifies:
                self._board.working += 1
                self._board.check()
            self.notifies += n
            self.last_at = time.time()
            self._board.last_at = self.last_at

    def connection_lost(self, exc: Exception | None) -> None:
        self._board.lost += 1
        self._board.check()


@dataclass
class _IdleBoard:
    last_at: float = 0.0
    lost: int = 0
    working: int = 0  # miners that got their first job
    expected: int = -1  # miners connected (-1: still connecting)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.expected >= 0 and self.working + self.lost >= self.expected:
            self.all_in.set()


async def attack_idle(port: int, tally: AttackTally, stop: asyncio.Event, n: int, distinct: bool,
                      ready: asyncio.Event, commands: asyncio.Queue[str]) -> None:
    """`n` logged-in idle miners (over 127.0.9.x sources); answers `count` on stdin with how many got a
    notify since the last `mark`, and when the last came."""
    loop = asyncio.get_running_loop()
    board = _IdleBoard()
    miners: list[_Idle] = []
    sem = asyncio.Semaphore(CONNECT_BATCH)

    async def connect(i: int) -> None:
        user = (address(10_000 + i) if distinct else address(10_000)) + f".idle{i}"
        hello = (_line({"id": 1, "method": "mining.subscribe", "params": ["bench-idle"]})
                 + _line({"id": 2, "method": "mining.authorize", "params": [user, "x"]}))
        async with sem:
            with contextlib.suppress(OSError):
                _, proto = await loop.create_connection(lambda: _Idle(hello, board), "127.0.0.1", port,
                                                        local_addr=(f"127.0.9.{1 + i % 200}", 0))
                miners.append(proto)

    await asyncio.gather(*(connect(i) for i in range(n)))
    tally.connections = board.expected = len(miners)
    board.check()
    await asyncio.wait_for(board.all_in.wait(), WAIT_S)
    ready.set()
    marks = {id(m): m.notifies for m in miners}
    while not stop.is_set():
        cmd = await commands.get()
        if cmd == "mark":
            marks = {id(m): m.notifies for m in miners}
            board.last_at = 0.0
            _say({"marked": True})
        elif cmd == "count":
            got = sum(1 for m in miners if m.notifies > marks[id(m)])
            _say({"got": got, "of": len(miners) - board.lost, "last_at": board.last_at})
    tally.extra["lost"] = board.lost
    for m in miners:
        if m.transport is not None:
            m.transport.close()


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _attacker(args: argparse.Namespace) -> None:
    """The attacker child: `ready` once warmed up, then attack until `stop` on stdin, then its tally."""
    raise_nofile()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.Event()
    ready = asyncio.Event()
    commands: asyncio.Queue[str] = asyncio.Queue()
    tally = AttackTally()
    kind = args.kind
    port = args.port
    attacks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "bans": lambda: attack_bans(port, tally, stop),
        "bad-hex": lambda: attack_bad_hex(port, tally, stop),
        "unknown-method": lambda: attack_unknown_method(port, tally, stop),
        "unknown-job": lambda: attack_unknown_job(port, tally, stop),
        "rejected-work": lambda: attack_rejected_work(port, tally, stop, args.flood_conns, ready, args.flood_rate),
        "web": lambda: attack_web(args.web_port, tally, stop, args.readers),
        "idle": lambda: attack_idle(port, tally, stop, args.idle, True, ready, commands),
        "idle-one": lambda: attack_idle(port, tally, stop, args.idle, False, ready, commands),
    }
    task = asyncio.create_task(attacks[kind]())
    if kind not in ("rejected-work", "idle", "idle-one"):
        ready.set()
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # an attacker that failed says why
    _say({"ready": True})
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "stop":
            break
        commands.put_nowait(line)
    stop.set()
    commands.put_nowait("stop")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task, 30.0)
    _say({"tally": {"sent": tally.sent, "connections": tally.connections, "closed_by_pool": tally.closed_by_pool,
                    "refused": tally.refused, **tally.extra}})


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m pithead.bench._attackers")
    ap.add_argument("--role", choices=("honest", "attack"), required=True)
    ap.add_argument("--kind", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--web-port", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--flood-conns", type=int, default=0)
    ap.add_argument("--flood-rate", type=float, default=1.0)
    ap.add_argument("--readers", type=int, default=0)
    args = ap.parse_args(argv)
    if args.role == "honest":
        asyncio.run(_honest(args.port, args.seconds))
    else:
        asyncio.run(_attacker(args))


if __name__ == "__main__":
    main(sys.argv[1:])

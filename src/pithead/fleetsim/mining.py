"""The mining bridge: simulated devices that really mine, so a pool sees a fleet's connections and shares.

What it is: for a chosen fraction of the fleet (deterministic from the seed), one Stratum connection per
device to the pool its simulated firmware is configured for, opened *from the device's own loopback
address* (so the pool sees 24 distinct 127.x.y.z peers for 24 devices, like a farm's 10.x.y.z), with
pithead's sans-IO Stratum client session (`pithead.stratum.v1.client`) under a thin asyncio
shell, and shares found for real by pithead's hashing core (`pithead.miner.core.scan`) at the low share
difficulty the bridge suggests (`mining.suggest_difficulty`).

The simulated hashrate (what the device *reports*: ~140 TH/s for an S19 XP) and the real hashing (a
few MH/s of CPU shared by all mining devices) are different things and are always reported apart:
`BridgeStats.pool_side_hps` is what the pool can infer from the accepted shares' difficulty; the
simulated figure comes from the device model and is labelled "simulated".

A device stops mining while its model says it is not hashing (rebooting, asleep, fan lost, overheated)
and reconnects to the new pool after a pool change takes effect. Hashing runs in a worker thread in
short batches (the native core releases the GIL) and is paced to a duty cycle, so the simulator's
servers keep answering while devices mine.

What it is not: a reference miner (see `pithead.miner`), nor a hashrate-faithful one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from pithead.fleetsim.clock import unit
from pithead.fleetsim.device import SimDevice
from pithead.fleetsim.fleet import Fleet
from pithead.miner.core import scan
from pithead.stratum.client.connection import parse_pool_url
from pithead.stratum.v1.client import (
    ClientConfig,
    ClientSession,
    NewWork,
    ShareAccepted,
    ShareRejected,
)
from pithead.stratum.v1.errors import ProtocolViolation, StratumClientError, WorkExhausted
from pithead.stratum.v1.work import WorkRoller, WorkUnit

# One TCP connection per mining device: under the 20,000-descriptor limit together with the servers'
# live connections (server.MAX_CONNECTIONS) and the process's own files.
MAX_MINING_DEVICES = 8000
# How often each device re-checks its model state (hashing? same pool?) while connected or idle; with
# many mining devices the interval grows (devices / CHECKS_PER_SECOND) so checks cost ~constant CPU.
CHECK_INTERVAL_S = 2.0
CHECKS_PER_SECOND = 200.0
# Nonces per scan batch: ~10–20 ms on the SHA-NI core (~60 ms portable), short enough to stay responsive.
SCAN_BATCH = 1 << 19
# Default fraction of one CPU spent hashing; the rest is left to the device servers.
DEFAULT_HASH_DUTY = 0.25
# Default share difficulty asked of the pool: ~4.3M hashes per share (pithead's pool floor is 0.001).
DEFAULT_SHARE_DIFFICULTY = 0.001
# Connecting to a pool that does not answer in this long counts as a failure; retry after a backoff.
CONNECT_TIMEOUT_S = 10.0
RETRY_BACKOFF_S = (2.0, 30.0)  # first and longest wait between reconnects to a failing pool
READ_CHUNK = 65536
S_MINE = 11  # random stream: which devices mine


@dataclass(slots=True)
class MinerStats:
    """What one mining device did on the wire (real shares, not the simulated figures)."""

    ip: str
    pool: str = ""
    connected: bool = False
    connects: int = 0
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    diff_accepted: float = 0.0
    last_error: str = ""


@dataclass(slots=True)
class BridgeStats:
    started: float = field(default_factory=time.monotonic)
    hashes: int = 0
    miners: dict[str, MinerStats] = field(default_factory=dict)

    @property
    def connected(self) -> int:
        return sum(m.connected for m in self.miners.values())

    @property
    def accepted(self) -> int:
        return sum(m.accepted for m in self.miners.values())

    @property
    def rejected(self) -> int:
        return sum(m.rejected for m in self.miners.values())

    @property
    def submitted(self) -> int:
        return sum(m.submitted for m in self.miners.values())

    def pool_side_hps(self) -> float:
        """The hashrate a pool infers from our accepted shares: Σ difficulty × 2^32 / elapsed."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        return sum(m.diff_accepted for m in self.miners.values()) * 2**32 / elapsed

    def local_hps(self) -> float:
        """Hashes actually computed per second by the bridge (all devices together)."""
        return self.hashes / max(1e-9, time.monotonic() - self.started)


def choose_miners(fleet: Fleet, fraction: float, limit: int = MAX_MINING_DEVICES) -> list[SimDevice]:
    """The devices that mine: each with probability `fraction`, fixed by the fleet seed; at most `limit`."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("mining fraction must be within 0..1")
    chosen = [d for d in fleet if fraction >= 1.0 or unit(d.seed, S_MINE, 0) < fraction]
    return chosen[: min(limit, MAX_MINING_DEVICES)]


class _DeviceMiner:
    """One device's Stratum connection (thin shell over ClientSession) and its current work."""

    def __init__(self, bridge: MiningBridge, dev: SimDevice) -> None:
        self.bridge = bridge
        self.dev = dev
        self.stats = MinerStats(dev.ip)
        self.session: ClientSession | None = None  # while connected
        self.writer: asyncio.StreamWriter | None = None
        self.roller: WorkRoller | None = None  # of the current job
        self.unit: WorkUnit | None = None  # being scanned
        self.nonce = 0

    def _pool(self) -> tuple[str, str, str] | None:
        """(url, user, password) of the active pool while the model says the device hashes."""
        fleet = self.bridge.fleet
        snap = self.dev.snapshot(fleet.ctx, fleet.now())
        if not snap.hashing:
            return None
        for p in snap.pools:
            if p.active:
                return p.url, p.user, p.password
        return None

    async def run(self) -> None:
        backoff = RETRY_BACKOFF_S[0]
        while True:
            pool = self._pool()
            if pool is None:
                await asyncio.sleep(self.bridge.check_interval)
                continue
            url, user, password = pool
            try:
                addr = parse_pool_url(url)
            except StratumClientError as exc:
                self.stats.last_error = str(exc)
                await asyncio.sleep(RETRY_BACKOFF_S[1])
                continue
            ok = await self._session(addr.host, addr.port, url, user, password)
            if ok:
                backoff = RETRY_BACKOFF_S[0]
            else:
                await asyncio.sleep(backoff)
                backoff = min(RETRY_BACKOFF_S[1], backoff * 2)

    async def _session(self, host: str, port: int, url: str, user: str, password: str) -> bool:
        cfg = ClientConfig(
            username=user,
            password=password,
            user_agent=f"pithead-sim/{self.dev.spec.type_string.replace(' ', '-')}",
            suggest_difficulty=self.bridge.share_difficulty,
        )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(self.dev.ip, 0)), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            self.stats.last_error = f"connect {host}:{port}: {exc}"
            return False
        session = ClientSession(cfg)
        self.session, self.writer = session, writer
        self.stats.connected, self.stats.pool = True, url
        self.stats.connects += 1
        productive = False
        try:
            session.start()
            writer.write(session.data_to_send())
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK), self.bridge.check_interval)
                except TimeoutError:
                    data = None
                if data == b"":
                    self.stats.last_error = "closed by pool"
                    break
                if data:
                    for ev in session.receive_data(data):
                        if isinstance(ev, NewWork):
                            productive = True
                            if (
                                ev.clean
                                or self.roller is None
                                or self.roller.work.extranonce1 != ev.work.extranonce1
                            ):
                                self.roller = WorkRoller(ev.work)
                            else:
                                self.roller = WorkRoller(ev.work, start=self.roller.handed_out)
                            self.unit, self.nonce = None, 0
                        elif isinstance(ev, ShareAccepted):
                            self.stats.accepted += 1
                            self.stats.diff_accepted += ev.share.work.difficulty
                        elif isinstance(ev, ShareRejected):
                            self.stats.rejected += 1
                            self.stats.last_error = ev.reason
                    out = session.data_to_send()
                    if out:
                        writer.write(out)
                    await writer.drain()
                pool = self._pool()
                if pool is None or pool[0] != url or pool[1] != user:
                    break  # the unit stopped hashing or now mines elsewhere
        except (ProtocolViolation, StratumClientError, OSError, ConnectionError) as exc:
            self.stats.last_error = str(exc)
        finally:
            self.session, self.writer, self.roller, self.unit = None, None, None, None
            self.stats.connected = False
            session.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return productive

    def next_batch(self) -> tuple[WorkUnit, int, int] | None:
        """(work unit, first nonce, count) to scan next, or None when there is no work."""
        if self.roller is None or self.session is None:
            return None
        if self.unit is None or self.nonce >= 1 << 32:
            try:
                self.unit = self.roller.next_unit()
            except WorkExhausted:
                self.roller = None
                return None
            self.nonce = 0
        start = self.nonce
        count = min(SCAN_BATCH, (1 << 32) - start)
        self.nonce += count
        return self.unit, start, count

    def submit(self, unit_: WorkUnit, nonces: list[int]) -> None:
        session, writer = self.session, self.writer
        if session is None or writer is None or writer.is_closing() or unit_ is not self.unit:
            return  # the work went stale while it was being scanned
        for n in nonces:
            share = unit_.share(n)
            try:
                session.submit(share)
            except StratumClientError as exc:  # TooManyPending / SessionClosed: drop, the connection will recycle
                self.stats.last_error = str(exc)
                return
            self.stats.submitted += 1
        writer.write(session.data_to_send())


class MiningBridge:
    """Runs the chosen devices' pool connections and one paced hashing loop for all of them."""

    def __init__(
        self,
        fleet: Fleet,
        devices: list[SimDevice],
        *,
        share_difficulty: float = DEFAULT_SHARE_DIFFICULTY,
        hash_duty: float = DEFAULT_HASH_DUTY,
    ) -> None:
        if not 0.0 < hash_duty <= 1.0:
            raise ValueError("hash duty must be within (0, 1]")
        if len(devices) > MAX_MINING_DEVICES:
            raise ValueError(f"at most {MAX_MINING_DEVICES} mining devices per process")
        self.fleet = fleet
        self.share_difficulty = share_difficulty
        self.hash_duty = hash_duty
        self.stats = BridgeStats()
        self.check_interval = max(CHECK_INTERVAL_S, len(devices) / CHECKS_PER_SECOND)
        self._miners = [_DeviceMiner(self, d) for d in devices]
        for m in self._miners:
            self.stats.miners[m.dev.ip] = m.stats
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for m in self._miners:
            self._tasks.append(asyncio.create_task(m.run(), name=f"mine-{m.dev.ip}"))
        self._tasks.append(asyncio.create_task(self._hash_loop(), name="mine-hash"))

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), []
        for t in tasks:
            t.cancel()
        # gather, not a loop that suppresses CancelledError: a close that is itself cancelled (a part's stop
        # timing out) must end, not swallow that and wait on
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> MiningBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _hash_loop(self) -> None:
        i = 0
        while True:
            batch = None
            for _ in range(len(self._miners)):
                m = self._miners[i % len(self._miners)]
                i += 1
                batch = m.next_batch()
                if batch is not None:
                    break
            if batch is None:
                await asyncio.sleep(0.2)
                continue
            unit_, start, count = batch
            target = unit_.work.share_target
            t0 = time.perf_counter()
            hits = await asyncio.to_thread(scan, unit_.header76, start, count, target)
            spent = time.perf_counter() - t0
            self.stats.hashes += count
            if hits:
                m.submit(unit_, hits)
            # pace to the duty cycle: hash for `spent`, rest for spent × (1 − duty) / duty
            await asyncio.sleep(spent * (1.0 - self.hash_duty) / self.hash_duty)

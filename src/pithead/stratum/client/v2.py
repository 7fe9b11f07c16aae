"""The asyncio shell of a Stratum V2 mining connection: pools pinned by their authority key, failover, backoff.

What it is: `Sv2Client` keeps one connection to the first pool that works out of an ordered list of
`stratum2+tcp://HOST:PORT/AUTHORITY_KEY` addresses, runs the sans-IO `stratum.v2.client.MinerConnection`
on it (the Noise handshake checking the pool's certificate against the pinned key, then one standard or
extended channel), and hands the miner the same events a V1 `StratumClient` does: `NewWork` with a
`MinerWork` (a standard channel's carries the pool's merkle root; an extended one's the coinbase halves
around the channel's extranonce prefix), `ShareAccepted` / `ShareRejected`, `DifficultySet`,
`AuthorizationFailed`, and the shell's `Connected` / `Disconnected` / `BackingOff`; an opened channel is
`Subscribed` (its extranonce prefix and the bytes left to roll), `AuthorizationGranted` and
`VersionRollingNegotiated` (the BIP323 bits every SV2 job may roll), as V1's handshake reports. So the
reference miner mines over either protocol with one engine, and the farm proxy's upstream connections
are V1 or V2 behind one interface (`pithead.proxy.upstream`). Extended jobs are BIP141-stripped if a pool
sent the witness serialization (`stratum.v2.translate`).

A pool whose certificate does not verify against its key — signed by another authority, expired, not
yet valid, or no SV2 server at all behind the port — is refused for the rest of the run (a wrong key
does not fix itself, and retrying would only hammer a server we must not trust): the others are tried;
when every pool has been refused, `run` raises `PoolRefused` with the reason. Other failures (connection
refused, a dropped link, a protocol error) fail over and back off exactly as V1's client does, with its
constants. `Reconnect` is honoured to any host: the new server must prove the same authority.

What it is not: protocol logic (`stratum.v2.client`), or hashing (`miner`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlsplit

from pithead.chain.compact import DIFF1_TARGET, difficulty_to_target
from pithead.stratum.client.connection import (
    CONNECT_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_QUICK_RECONNECTS,
    READ_CHUNK,
    STABLE_SESSION,
    STOP_DRAIN,
    STOPPED_REASON,
    BackingOff,
    Backoff,
    Connected,
    Disconnected,
    EventCallback,
    PoolAddress,
    close_writer,
    deliver_event,
)
from pithead.stratum.v1.client import (
    AuthorizationFailed,
    AuthorizationGranted,
    ClientEvent,
    DifficultySet,
    NewWork,
    RequestFailed,
    ShareAccepted,
    ShareRejected,
    Subscribed,
    VersionRollingNegotiated,
)
from pithead.stratum.v1.errors import InvalidPoolUrl
from pithead.stratum.v1.work import FoundShare, MinerWork, NotifiedJob
from pithead.stratum.v2 import cert
from pithead.stratum.v2.client import (
    ChannelClosedByPool,
    ChannelDenied,
    ChannelGranted,
    ChannelWork,
    MinerChannelConfig,
    MinerConnection,
    ReconnectAsked,
    SetupDenied,
    ShareAcknowledged,
    ShareDenied,
    TargetSet,
    UpdateRefused,
    WorkReady,
)
from pithead.stratum.v2.errors import (
    CertificateError,
    HandshakeError,
    KeyEncodingError,
    Sv2Error,
    TooManyInFlight,
)
from pithead.stratum.v2.translate import strip_bip141
from pithead.stratum.version import BIP323_MASK

SCHEME: Final = "stratum2+tcp"
#: Work a session remembers by generation, so a share of it can still be sent (and one of an earlier
#: connection recognised and dropped); the engine only ever mines the newest.
MAX_WORKS_KEPT: Final = 64


class PoolRefused(Exception):
    """Every pool was refused: none proved it holds the authority key it was pinned with."""


@dataclass(frozen=True, slots=True)
class Sv2PoolAddress(PoolAddress):
    """A pool's SV2 address: where, and the authority key (x-only) its certificate must be signed by."""

    authority_key: bytes = field(kw_only=True)  # x-only, as `parse_sv2_url` decodes it from the URL

    def __str__(self) -> str:
        return f"{SCHEME}://{self.host}:{self.port}/{cert.encode_public_key(self.authority_key)}"


def parse_sv2_url(url: str) -> Sv2PoolAddress:
    """`stratum2+tcp://HOST:PORT/AUTHORITY_KEY` (the key in the spec's base58check encoding) → address."""
    parts = urlsplit(url.strip())
    if parts.scheme != SCHEME:
        raise InvalidPoolUrl(f"{url!r}: a Stratum V2 pool is {SCHEME}://HOST:PORT/AUTHORITY_KEY")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidPoolUrl(f"{url!r}: bad port") from exc
    key = parts.path.strip("/")
    if not parts.hostname or port is None or not key:
        raise InvalidPoolUrl(f"{url!r}: expected {SCHEME}://HOST:PORT/AUTHORITY_KEY (the pool's authority "
                             "public key, as `pithead keys show` prints it)")
    try:
        authority_key = cert.decode_public_key(key)
    except KeyEncodingError as exc:
        raise InvalidPoolUrl(f"{url!r}: {exc}") from exc
    return Sv2PoolAddress(parts.hostname, port, authority_key=authority_key)


def miner_difficulty(target: int) -> float:
    """The difficulty whose share target (`difficulty_to_target`, what the engine scans for) is no easier
    than the pool's `target`: the pool's difficulty, nudged up past any float rounding."""
    difficulty = DIFF1_TARGET / target
    while difficulty_to_target(difficulty) > target:
        difficulty = math.nextafter(difficulty, math.inf)
    return difficulty


class Sv2Client:
    """Mine through the first working SV2 pool of an ordered list; see the module docstring."""

    def __init__(self, pools: Sequence[Sv2PoolAddress], config: MinerChannelConfig, *, backoff: Backoff | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 stable_session: float = STABLE_SESSION, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not pools:
            raise ValueError("at least one pool is needed")
        self.pools = list(pools)
        self.config = config
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.stable_session = stable_session
        self.clock = clock
        self._sleep = sleep
        self._connection: MinerConnection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._works: OrderedDict[int, MinerWork] = OrderedDict()  # this session's, by generation
        self._generation = 0
        self._stopping = asyncio.Event()
        self.refused: dict[Sv2PoolAddress, str] = {}
        """Pools refused for the rest of the run, and why (their certificate did not verify)."""
        self.current_pool: Sv2PoolAddress | None = None
        self.connect_attempts = 0

    @property
    def connection(self) -> MinerConnection | None:
        """The live connection (None while disconnected)."""
        return self._connection

    def submit(self, share: FoundShare) -> bool:
        """Send a share on the live connection; False (dropped) when disconnected or it is not this
        connection's work."""
        connection, writer = self._connection, self._writer
        if connection is None or writer is None or writer.is_closing() or self._stopping.is_set():
            return False
        if self._works.get(share.work.generation) is not share.work:
            return False  # work of an earlier connection: the pool would not know its job
        extranonce = share.extranonce2 if share.work.fixed_merkle_root is None else b""
        try:
            connection.submit(int(share.work.job.job_id), share.nonce, share.ntime, share.version, extranonce, share)
        except TooManyInFlight:
            writer.close()  # the pool stopped answering: run() reconnects
            return False
        except Sv2Error:
            return False  # the channel is gone (closed by the pool): the session is ending
        writer.write(connection.data_to_send())
        return True

    def update_channel(self, nominal_hash_rate: float) -> bool:
        """Tell the pool the channel's hashrate changed (UpdateChannel; its target may follow with SetTarget);
        False when there is no open channel to tell."""
        connection, writer = self._connection, self._writer
        if connection is None or writer is None or writer.is_closing() or self._stopping.is_set():
            return False
        try:
            connection.update_channel(nominal_hash_rate)
        except Sv2Error:
            return False  # not open yet, or closed
        writer.write(connection.data_to_send())
        return True

    def drop(self) -> None:
        """Close the live connection now (a pool that stopped answering); `run` goes on and reconnects as
        after any lost connection (V1's `StratumClient.drop`). Nothing happens while disconnected."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.close()

    def stop(self) -> None:
        """Stop mining; shares already sent keep the connection open until answered, for at most
        STOP_DRAIN seconds (as V1's client)."""
        self._stopping.set()
        writer, connection = self._writer, self._connection
        if writer is None:
            return
        if connection is None or connection.pending_shares == 0:
            writer.close()
        else:
            asyncio.get_running_loop().call_later(STOP_DRAIN, writer.close)

    def run(self, on_event: EventCallback) -> Coroutine[Any, Any, None]:
        """Connect, mine, fail over and back off until `stop` (or every pool is refused: `PoolRefused`)."""
        self._stopping.clear()
        return self._run_loop(on_event)

    async def _run_loop(self, on_event: EventCallback) -> None:
        index = 0
        failures_in_row = 0
        quick_reconnects = 0
        redirect: Sv2PoolAddress | None = None
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            usable = [p for p in self.pools if p not in self.refused]
            if not usable:
                raise PoolRefused("; ".join(f"{pool}: {why}" for pool, why in self.refused.items()))
            pool = redirect or usable[index % len(usable)]
            redirect = None
            started = loop.time()
            outcome = await self._one_session(pool, on_event)
            if self._stopping.is_set():
                break
            if isinstance(outcome, ReconnectAsked):
                redirect = replace(pool, host=outcome.host or pool.host, port=outcome.port or pool.port)
                quick_reconnects = quick_reconnects + 1 if loop.time() - started < self.stable_session else 0
                if quick_reconnects > MAX_QUICK_RECONNECTS:
                    delay = self.backoff.next_delay()
                    await deliver_event(on_event, BackingOff(delay))
                    await self._interruptible_sleep(delay)
                continue
            quick_reconnects = 0
            if outcome is True:
                failures_in_row = 0
                index = 0
                if loop.time() - started >= self.stable_session:
                    self.backoff.reset()
                    continue
                delay = self.backoff.next_delay()  # productive but short-lived: do not hammer
            else:
                failures_in_row += 1
                index += 1
                remaining = len([p for p in self.pools if p not in self.refused])
                if remaining and failures_in_row < remaining:
                    continue  # try the next pool at once
                if not remaining:
                    continue  # the loop's top raises PoolRefused
                failures_in_row = 0
                delay = self.backoff.next_delay()
            await deliver_event(on_event, BackingOff(delay))
            await self._interruptible_sleep(delay)

    async def _interruptible_sleep(self, delay: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        nap = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait({stop, nap}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stop, nap):
                t.cancel()
            await asyncio.wait({stop, nap})

    async def _one_session(self, pool: Sv2PoolAddress, on_event: EventCallback) -> bool | ReconnectAsked:
        """One connection: True if it produced work, False if it failed first, or a reconnect request."""
        self.connect_attempts += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(pool.host, pool.port)
        except (OSError, TimeoutError) as exc:
            await deliver_event(on_event, Disconnected(pool, f"connect failed: {exc or type(exc).__name__}"))
            return False
        config = replace(self.config, endpoint_host=pool.host, endpoint_port=pool.port)
        connection = MinerConnection(config, pool.authority_key)
        self._connection, self._writer, self.current_pool = connection, writer, pool
        self._works.clear()
        self._generation = 0
        productive = False
        reason = "closed by pool"
        outcome: bool | ReconnectAsked = False
        try:
            await deliver_event(on_event, Connected(pool))
            connection.start()
            writer.write(connection.data_to_send())
            while not self._stopping.is_set() or connection.pending_shares:
                # until the pool has proved itself, it gets the connect timeout to answer Act 1
                wait = self.idle_timeout if connection.handshake_done else self.connect_timeout
                try:
                    async with asyncio.timeout(wait):
                        data = await reader.read(READ_CHUNK)
                except TimeoutError:
                    reason = f"no message for {wait:.0f} s"
                    break
                if not data:
                    if not connection.handshake_done:
                        reason = "closed by pool during the Noise handshake (is it an SV2 endpoint?)"
                    break
                try:
                    events = connection.receive(data, self.clock())
                except CertificateError as exc:
                    self.refused[pool] = f"its certificate does not verify against the pinned key: {exc}"
                    reason = f"refused: {self.refused[pool]}"
                    break
                except HandshakeError as exc:
                    self.refused[pool] = f"the Noise handshake failed: {exc}"
                    reason = f"refused: {self.refused[pool]}"
                    break
                writer.write(connection.data_to_send())
                for event in events:
                    converted, end = self._convert(event)
                    for ev in converted:
                        productive = productive or isinstance(ev, NewWork)
                        await deliver_event(on_event, ev)
                    if isinstance(event, ReconnectAsked):
                        outcome = event
                    if end is not None:
                        reason = end
                        raise _SessionOver
                await writer.drain()
        except _SessionOver:
            pass
        except Sv2Error as exc:
            reason = f"protocol error: {exc}"
        except (OSError, ConnectionError) as exc:
            reason = f"connection error: {exc}"
        finally:
            self._connection, self._writer = None, None
            connection.close()
            await close_writer(writer)
        if self._stopping.is_set():
            reason = STOPPED_REASON
        await deliver_event(on_event, Disconnected(pool, reason))
        if isinstance(outcome, ReconnectAsked):
            return outcome
        return productive

    def _convert(self, event: object) -> tuple[tuple[ClientEvent, ...], str | None]:
        """A V2 session event as the miner's (V1-shaped) events, and why the session ends (None: it goes on)."""
        user = self.config.user_identity
        if isinstance(event, WorkReady):
            return (NewWork(self._work(event.work, event.clean), event.clean),), None
        if isinstance(event, ShareAcknowledged) and isinstance(event.token, FoundShare):
            return (ShareAccepted(event.token),), None
        if isinstance(event, ShareDenied) and isinstance(event.token, FoundShare):
            return (ShareRejected(event.token, None, event.code),), None
        if isinstance(event, TargetSet):
            return (DifficultySet(miner_difficulty(event.target)),), None
        if isinstance(event, ChannelGranted):
            return (Subscribed(event.extranonce_prefix, event.extranonce_size), AuthorizationGranted(user),
                    VersionRollingNegotiated(True, BIP323_MASK)), None
        if isinstance(event, SetupDenied):
            return (AuthorizationFailed(user, f"SetupConnection refused: {event.code}"),), f"setup refused: {event.code}"
        if isinstance(event, ChannelDenied):
            return (AuthorizationFailed(user, event.code),), f"channel refused: {event.code}"
        if isinstance(event, ChannelClosedByPool):
            return (), f"the pool closed the channel: {event.reason}"
        if isinstance(event, ReconnectAsked):
            return (), "pool asked to reconnect"
        if isinstance(event, UpdateRefused):
            return (RequestFailed("UpdateChannel", event.code),), None
        return (), None

    def _work(self, work: ChannelWork, clean: bool) -> MinerWork:
        """A V2 job as the engine's work, remembered by its generation (see `miner_work`)."""
        self._generation += 1
        mined = miner_work(work, clean, self._generation)
        if len(self._works) >= MAX_WORKS_KEPT:
            self._works.popitem(last=False)
        self._works[self._generation] = mined
        return mined


def miner_work(work: ChannelWork, clean: bool, generation: int) -> MinerWork:
    """A V2 job as V1-shaped work: header-only for a standard channel, coinbase rolling for an extended one
    (its `extranonce1` is the channel's extranonce prefix, its `extranonce2` the part the channel lets the
    miner roll). The SV2 -> SV1 job mapping of SRI's translator (`sv2_to_sv1.rs`): the job id as a decimal
    string, the coinbase halves BIP141-stripped, the merkle path as the branch, ntime the job's `min_ntime`
    or the SetNewPrevHash's (`ChannelWork.ntime` is already that). `PeerViolation` for coinbase halves too
    short to be one."""
    prefix, suffix = work.coinbase_prefix, work.coinbase_suffix
    if work.merkle_root is None:
        prefix, suffix = strip_bip141(prefix, suffix)
    job = NotifiedJob(str(work.job_id), work.prev_hash, prefix, suffix, work.merkle_path, work.version, work.nbits,
                      work.ntime, clean)
    mask = BIP323_MASK if work.version_rolling else 0
    return MinerWork(job, work.extranonce_prefix, work.extranonce_size, miner_difficulty(work.target), mask,
                     generation, fixed_merkle_root=work.merkle_root)


class _SessionOver(Exception):
    """The session ends (the pool refused us, closed our channel, asked us to reconnect)."""

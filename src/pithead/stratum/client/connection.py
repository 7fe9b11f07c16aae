"""The asyncio shell around :class:`~pithead.stratum.v1.client.ClientSession`: pools, failover, backoff.

What it is: :class:`StratumClient` keeps one connection to the first pool that works out of an ordered
list (``-o`` order), reads with an idle timeout, feeds the sans-IO session, hands events to a callback
and writes what the session queues. When a connection fails it tries the next pool; once every pool has
failed in a row it sleeps an exponential backoff (never a busy loop when all pools are down). After a
session that produced work ends, it starts again from the primary pool. ``client.reconnect`` is honoured
for the same host (another port) unless redirects to other hosts are allowed. ``stratum+ssl://`` pools are
reached over TLS (the certificate is checked against the system's CAs, or the ``ssl`` context given, e.g.
`tls_context(ca_file)` for a pool with its own CA).

Reusable by anything that mines through Stratum (the reference miner, simulated devices): give it pools,
a :class:`ClientConfig` and an event callback; call :meth:`submit` from the event loop.

What it is not: protocol logic (:mod:`pithead.stratum.v1.client`), hashing or threads (:mod:`pithead.miner`).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from pithead.stratum.v1.client import (
    AuthorizationFailed,
    ClientConfig,
    ClientEvent,
    ClientSession,
    NewWork,
    ReconnectRequested,
)
from pithead.stratum.v1.errors import InvalidPoolUrl, ProtocolViolation, StratumClientError
from pithead.stratum.v1.work import FoundShare

#: Connecting to a pool that does not answer within this is a failure; move on to the next one.
CONNECT_TIMEOUT: Final = 10.0
#: Pools send a notify at least every ~30-120 s; five minutes of silence means the connection is dead.
IDLE_TIMEOUT: Final = 300.0
#: Backoff after every pool failed in a row: start small, double, cap (a down pool is retried about twice a
#: minute, not hammered), with +-20 % jitter so a fleet does not reconnect in lockstep.
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 30.0
BACKOFF_JITTER: Final = 0.2
#: A session shorter than this that still produced work counts as unstable: back off before reconnecting,
#: so a pool that accepts, sends a job and drops us at once is not reconnected in a tight loop.
STABLE_SESSION: Final = 30.0
#: Disconnected.reason when the miner itself stopped (not "closed by pool", which is what the read sees).
STOPPED_REASON = "stopped by the miner"
#: client.reconnect requests honoured at once in a row (each within STABLE_SESSION) before backoff applies.
MAX_QUICK_RECONNECTS: Final = 3
#: How many times in a row a pool must refuse mining.authorize for the same user before the miner takes it
#: for good (`AuthorizationRefused`, when the client was asked to give up; see StratumClient): the second
#: answer alike, after a backoff, shows the refusal is about the user (an address of another network, a
#: malformed name) and not a passing state of the pool.
AUTH_REFUSALS_FOR_GOOD: Final = 2
#: Seconds to let a closing connection flush before it is aborted.
CLOSE_TIMEOUT: Final = 2.0
#: Bytes per read.
READ_CHUNK: Final = 65536
# On stop, how long to wait for the pool's answers to shares already sent: long enough for a loaded pool
# to answer, short enough that Ctrl-C still feels immediate (the runner's STOP_GRACE is longer).
STOP_DRAIN: Final = 2.0


#: URL schemes of plain TCP pools and of pools over TLS.
TCP_SCHEMES: Final = ("stratum+tcp", "stratum", "tcp")
TLS_SCHEMES: Final = ("stratum+ssl", "stratum+tls", "ssl", "tls")


@dataclass(frozen=True, slots=True)
class PoolAddress:
    host: str
    port: int
    tls: bool = False  # stratum+ssl://

    def __str__(self) -> str:
        return f"stratum+{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_pool_url(url: str) -> PoolAddress:
    """``stratum+tcp://HOST:PORT`` (also bare ``HOST:PORT``) or ``stratum+ssl://HOST:PORT`` → PoolAddress."""
    text = url.strip()
    if "://" not in text:
        text = "stratum+tcp://" + text
    parts = urlsplit(text)
    if parts.scheme not in TCP_SCHEMES + TLS_SCHEMES:
        raise InvalidPoolUrl(f"{url!r}: only stratum+tcp:// and stratum+ssl:// are supported")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidPoolUrl(f"{url!r}: bad port") from exc
    if not parts.hostname or port is None:
        raise InvalidPoolUrl(f"{url!r}: expected stratum+tcp://HOST:PORT")
    return PoolAddress(parts.hostname, port, parts.scheme in TLS_SCHEMES)


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A client context that checks the pool's certificate and host name: against the system's CAs, or
    against `ca_file` (PEM) for a pool with its own CA or a self-signed certificate."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidPoolUrl(f"cannot use CA file {ca_file}: {exc}") from None


class Backoff:
    """Exponential backoff with jitter (sans-IO: returns delays, never sleeps)."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
        jitter: float = BACKOFF_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rng = rng or random.Random()
        self._current = initial

    def next_delay(self) -> float:
        base = self._current
        self._current = min(self._current * 2, self.maximum)
        return base * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._current = self.initial


@dataclass(frozen=True, slots=True)
class Connected:
    pool: PoolAddress


@dataclass(frozen=True, slots=True)
class Disconnected:
    pool: PoolAddress
    reason: str


@dataclass(frozen=True, slots=True)
class BackingOff:
    delay: float


ShellEvent = Connected | Disconnected | BackingOff
EventCallback = Callable[[ClientEvent | ShellEvent], Awaitable[None] | None]


class AuthorizationRefused(Exception):
    """Every pool refused this user's mining.authorize, each AUTH_REFUSALS_FOR_GOOD times in a row, with no
    work between: retrying cannot help (raised by `run` only for a client made with `give_up_on_refusal`)."""

    def __init__(self, refusals: dict[str, str]) -> None:
        self.refusals = dict(refusals)  # pool -> the pool's last reason
        super().__init__("; ".join(f"{pool}: {why}" for pool, why in refusals.items()))


class StratumClient:
    """Mine through the first working pool of an ordered list; see the module docstring.

    `give_up_on_refusal`: when every pool has refused the user's authorization AUTH_REFUSALS_FOR_GOOD
    times in a row, `run` raises `AuthorizationRefused` instead of backing off for ever (the reference
    miner's choice; a simulated device keeps retrying as a real one does)."""

    def __init__(
        self,
        pools: Sequence[PoolAddress],
        config: ClientConfig,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        stable_session: float = STABLE_SESSION,
        allow_redirect: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssl_context: ssl.SSLContext | None = None,
        give_up_on_refusal: bool = False,
    ) -> None:
        if not pools:
            raise ValueError("at least one pool is needed")
        self.pools = list(pools)
        self.config = config
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.stable_session = stable_session
        self.allow_redirect = allow_redirect
        self._sleep = sleep
        self.ssl_context = ssl_context  # for stratum+ssl pools (None: the system's CAs)
        self._session: ClientSession | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._stopping = asyncio.Event()
        self.current_pool: PoolAddress | None = None
        self.connect_attempts = 0
        self.give_up_on_refusal = give_up_on_refusal
        # pool -> (authorize refusals in a row, the last reason); a session with work clears its pool's entry
        self._refusals: dict[PoolAddress, tuple[int, str]] = {}

    @property
    def session(self) -> ClientSession | None:
        """The live session (None while disconnected)."""
        return self._session

    def submit(self, share: FoundShare) -> bool:
        """Send a share on the live session; False (dropped) when disconnected or the share is stale."""
        session, writer = self._session, self._writer
        if session is None or writer is None or writer.is_closing() or self._stopping.is_set():
            return False
        current = session.current_work
        if current is None or share.work.extranonce1 != session.extranonce1:
            return False  # work from an earlier connection: the pool would not know its job
        try:
            session.submit(share)
        except StratumClientError:
            writer.close()  # too many unanswered: the connection is dead; run() reconnects
            return False
        writer.write(session.data_to_send())
        return True

    def drop(self) -> None:
        """Close the live connection now (a pool that stopped answering); :meth:`run` goes on and
        reconnects as after any lost connection. Nothing happens while disconnected."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.close()

    def stop(self) -> None:
        """Stop mining. Shares already sent are not abandoned: the live session keeps reading until each
        has its answer (so the miner's accepted/rejected counts agree with the pool's), for at most
        STOP_DRAIN seconds, then the connection closes. The client can run again afterwards (see run)."""
        self._stopping.set()
        writer, session = self._writer, self._session
        if writer is None:
            return
        if session is None or session.pending_requests == 0:
            writer.close()
        else:
            asyncio.get_running_loop().call_later(STOP_DRAIN, writer.close)

    def run(self, on_event: EventCallback) -> Coroutine[Any, Any, None]:
        """Connect, mine, fail over and back off until :meth:`stop`; returns the coroutine to await.

        A client runs again after it stopped (start, stop, start): the stop flag is cleared here, when
        run() is *called*, not when its coroutine first runs, so a stop() made between the two (a task
        created for the run and stopped before it was ever scheduled) still stops that run. One run at a
        time: await (or cancel and await) the previous run before calling run() again."""
        self._stopping.clear()
        return self._run_loop(on_event)

    async def _run_loop(self, on_event: EventCallback) -> None:
        index = 0
        failures_in_row = 0
        quick_reconnects = 0
        redirect: PoolAddress | None = None
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            pool = redirect or self.pools[index]
            redirect = None
            started = loop.time()
            outcome = await self._one_session(pool, on_event)
            if self._stopping.is_set():
                break
            if isinstance(outcome, ReconnectRequested):
                target = PoolAddress(outcome.host or pool.host, outcome.port or pool.port, pool.tls)
                if target.host == pool.host or self.allow_redirect:
                    redirect = target
                wait = outcome.wait
                # A pool that keeps asking us to reconnect at once would make us loop: after a few quick
                # ones in a row, the backoff applies too.
                quick_reconnects = quick_reconnects + 1 if loop.time() - started < self.stable_session else 0
                if quick_reconnects > MAX_QUICK_RECONNECTS:
                    wait = max(wait, self.backoff.next_delay())
                    await deliver_event(on_event, BackingOff(wait))
                if wait:
                    await self._interruptible_sleep(wait)
                continue
            quick_reconnects = 0
            productive = outcome is True
            if productive:
                failures_in_row = 0
                index = 0
                if loop.time() - started >= self.stable_session:
                    self.backoff.reset()
                    continue
                delay = self.backoff.next_delay()  # productive but short-lived: do not hammer
            else:
                if self.give_up_on_refusal and all(
                    self._refusals.get(p, (0, ""))[0] >= AUTH_REFUSALS_FOR_GOOD for p in self.pools
                ):
                    raise AuthorizationRefused({str(p): self._refusals[p][1] for p in self.pools})
                failures_in_row += 1
                index = (index + 1) % len(self.pools)
                if failures_in_row < len(self.pools):
                    continue  # try the next pool at once
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
            # asyncio.wait never raises for its tasks' outcomes, so our own cancellation is not swallowed.
            await asyncio.wait({stop, nap})

    async def _one_session(self, pool: PoolAddress, on_event: EventCallback) -> bool | ReconnectRequested:
        """One connection. True if it produced work, False if it failed first, or a reconnect request."""
        self.connect_attempts += 1
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races with
            # the inner result, and a miner being stopped must stop.
            async with asyncio.timeout(self.connect_timeout):
                if pool.tls:
                    reader, writer = await asyncio.open_connection(
                        pool.host, pool.port, ssl=self.ssl_context or tls_context())
                else:
                    reader, writer = await asyncio.open_connection(pool.host, pool.port)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError (a certificate refused) is an OSError
            await deliver_event(on_event, Disconnected(pool, f"connect failed: {exc or type(exc).__name__}"))
            return False
        session = ClientSession(self.config)
        self._session, self._writer, self.current_pool = session, writer, pool
        productive = refused = False
        reason = "closed by pool"
        outcome: bool | ReconnectRequested = False
        try:
            await deliver_event(on_event, Connected(pool))
            session.start()
            writer.write(session.data_to_send())
            while not self._stopping.is_set() or session.pending_requests:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.read(READ_CHUNK)
                except TimeoutError:
                    reason = f"no message for {self.idle_timeout:.0f} s"
                    break
                if not data:
                    break
                events = session.receive_data(data)
                out = session.data_to_send()
                if out:
                    writer.write(out)
                for event in events:
                    if isinstance(event, NewWork):
                        productive = True
                    await deliver_event(on_event, event)
                    if isinstance(event, AuthorizationFailed):
                        reason = f"authorization failed: {event.reason}"
                        self._refusals[pool] = (self._refusals.get(pool, (0, ""))[0] + 1, event.reason)
                        refused = True
                        raise _EndSession
                    if isinstance(event, ReconnectRequested):
                        reason = "pool asked to reconnect"
                        outcome = event
                        raise _EndSession
                await writer.drain()
        except _EndSession:
            pass
        except (ProtocolViolation, StratumClientError) as exc:
            reason = f"protocol error: {exc}"
        except (OSError, ConnectionError) as exc:
            reason = f"connection error: {exc}"
        finally:
            self._session, self._writer = None, None
            session.close()
            await close_writer(writer)
        if self._stopping.is_set():
            reason = STOPPED_REASON  # we closed it (stop()), whatever the read loop last saw
        await deliver_event(on_event, Disconnected(pool, reason))
        if refused:
            productive = False  # a job sent before the refusal was no work we could submit
        elif productive:
            self._refusals.pop(pool, None)
        if isinstance(outcome, ReconnectRequested):
            return outcome
        return productive


class _EndSession(Exception):
    pass


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection without ever hanging: a peer that stopped reading would keep unsent bytes (and
    wait_closed) pending forever, so after CLOSE_TIMEOUT the transport is aborted."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError, ConnectionError):
        writer.transport.abort()


async def deliver_event(callback: EventCallback, event: ClientEvent | ShellEvent) -> None:
    """Hand `event` to the callback, awaiting it when it is a coroutine function's."""
    result = callback(event)
    if result is not None:
        await result

"""The collector's side of forwarding: a bounded spool of batches and the sender that drains it in order.

A collector (`FarmService` in the COLLECTOR role, `pithead farm collect`) hands every flush of poll results
and every inventory change to `Forwarder.submit_results` / `submit_devices`. Each becomes one batch
(`pithead.farm.ingest`: a fresh random batch id, compact orjson, gzip) appended to the `Spool`, always --
also when the central service is up -- so there is one path, in one order. One sender task POSTs the
spool's head to `<central>/farm/api/ingest` and removes it only once the central has answered 200; so
batches reach the central strictly in the order they were made, one at a time.

What happens on each answer:
- 200: delivered (the central may still refuse single items; they are counted and logged, and devices it
  says it does not know are handed to `on_unknown` so the collector sends them again);
  the central writes a batch id once, so a batch resent after a lost reply is never counted twice.
- connection errors, timeouts, 404 (no ingest endpoint there yet), 408, 429, 5xx: the batch stays; retried
  with exponential backoff (`BACKOFF_START_S` doubling to `backoff_max_s`) while new batches queue up
  behind it.
- 401 / 403: the token is refused. Said loudly (with the central's reason) and retried with backoff, spool
  kept: fixing the token on either side resumes delivery with nothing lost.
- any other 4xx: the central will never take this batch (it says why); it is dropped and counted as
  rejected, so one bad batch cannot block everything behind it.

The spool is bounded (`max_items`, results and devices counted together): past the bound the OLDEST
batches are dropped -- the freshest readings matter most to a fleet view -- and every drop is counted and
logged with how many readings it lost. A spool file (SQLite) survives a collector restart and is sent at
the next start; ":memory:" does not. `status()` says what is spooled, sent, dropped and what the central
last said.

This module is NOT the poller and holds no farm policy; it knows the central only by URL and token.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from pithead.farm.ingest import MAX_BATCH_DEVICES, MAX_BATCH_RESULTS, compress, encode_batch, new_batch_id
from pithead.farm.model import Device, FarmError, PollResult

log = logging.getLogger(__name__)

# Spool bound in items (results + devices). A reading is ~920 bytes of JSON, ~125 bytes gzipped in a batch
# (measured on the simulated fleet's mix), so one hour of a 25,000-device shard at one poll a minute
# (1.5 M readings) is ~190 MB on disk: enough to ride out a central restart or an hour-long WAN outage;
# beyond it the oldest readings go first.
SPOOL_MAX_ITEMS = 1_500_000
# One POST may take this long: the central writes a 2,000-reading batch in tens of milliseconds.
SEND_TIMEOUT_S = 15.0
# Retry backoff after a failed send: starts here, doubles each failure, capped at BACKOFF_MAX_S.
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
# On stop, the sender keeps draining for at most this long (then whatever is left stays spooled).
STOP_DRAIN_S = 5.0
INGEST_PATH = "/farm/api/ingest"
# Answers after which the same batch is tried again later (the central is down, restarting, or busy).
RETRY_STATUSES = frozenset({404, 408, 425, 429})

SPOOL_SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, batch TEXT NOT NULL, results INTEGER NOT NULL,
  devices INTEGER NOT NULL, created REAL NOT NULL, body BLOB NOT NULL
);
"""


class ForwardError(FarmError):
    """A forwarding misconfiguration (bad URL, unusable spool file)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    batch_id: str
    results: int
    devices: int
    created: float
    body: bytes

    @property
    def items(self) -> int:
        return self.results + self.devices


class Spool:
    """A FIFO of encoded batches in SQLite, bounded in items; the oldest go first past the bound."""

    def __init__(self, path: str | Path = ":memory:", max_items: int = SPOOL_MAX_ITEMS) -> None:
        if max_items < 1:
            raise ForwardError("the spool bound must be at least 1 item")
        self.path = str(path)
        self.max_items = max_items
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.executescript(SPOOL_SCHEMA)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(results + devices), 0) FROM spool").fetchone()
        except sqlite3.Error as exc:
            raise ForwardError(f"cannot open the spool {self.path}: {exc}") from exc
        self.batches, self.items = int(row[0]), int(row[1])
        self.dropped_batches = 0
        self.dropped_items = 0

    def close(self) -> None:
        self._db.close()

    def push(self, batch_id: str, results: int, devices: int, body: bytes, now: float) -> int:
        """Append a batch; returns how many items were dropped (oldest first) to stay within the bound.
        The batch just pushed is never dropped by its own push."""
        self._db.execute("INSERT INTO spool (batch, results, devices, created, body) VALUES (?,?,?,?,?)",
                         (batch_id, results, devices, now, body))
        self.batches += 1
        self.items += results + devices
        dropped = 0
        while self.items > self.max_items and self.batches > 1:
            row = self._db.execute("SELECT seq, results + devices FROM spool ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM spool WHERE seq=?", (row[0],))
            self.batches -= 1
            self.items -= int(row[1])
            dropped += int(row[1])
            self.dropped_batches += 1
        self.dropped_items += dropped
        return dropped

    def head(self) -> SpoolEntry | None:
        row = self._db.execute(
            "SELECT seq, batch, results, devices, created, body FROM spool ORDER BY seq LIMIT 1").fetchone()
        return SpoolEntry(int(row[0]), row[1], int(row[2]), int(row[3]), float(row[4]), bytes(row[5])) if row else None

    def pop(self, entry: SpoolEntry) -> None:
        cur = self._db.execute("DELETE FROM spool WHERE seq=?", (entry.seq,))
        if cur.rowcount:
            self.batches -= 1
            self.items -= entry.items

    def oldest(self) -> float | None:
        row = self._db.execute("SELECT created FROM spool ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None


class CentralState(enum.StrEnum):
    UNKNOWN = "unknown"  # nothing sent yet
    OK = "ok"  # the last send was answered 200
    UNREACHABLE = "unreachable"  # connection error, timeout, or a retryable status: retrying
    AUTH_REFUSED = "auth refused"  # 401/403: retrying with backoff, spool kept


@dataclass(frozen=True, slots=True)
class ForwardStatus:
    central: CentralState
    detail: str | None  # the last error or refusal, as the central (or the network) said it
    spooled_batches: int
    spooled_items: int
    oldest_spooled_age_s: float | None
    sent_batches: int
    sent_results: int
    refused_items: int  # items the central refused one by one (in delivered batches)
    rejected_batches: int  # whole batches the central refused for good (4xx) and that were dropped
    rejected_items: int
    dropped_items: int  # items dropped from the spool to stay within its bound
    failures: int  # consecutive failed sends

    def line(self) -> str:
        """One status line for the collector's log."""
        age = f", oldest {self.oldest_spooled_age_s:.0f} s" if self.oldest_spooled_age_s is not None else ""
        text = (f"central {self.central.value}"
                + (f" ({self.detail})" if self.detail and self.central is not CentralState.OK else "")
                + f"; sent {self.sent_results} readings in {self.sent_batches} batches; spooled "
                f"{self.spooled_items} items in {self.spooled_batches} batches{age}")
        if self.dropped_items or self.rejected_items or self.refused_items:
            text += (f"; LOST {self.dropped_items} dropped from the full spool, {self.rejected_items} in "
                     f"{self.rejected_batches} rejected batches; {self.refused_items} refused by the central")
        return text


class Forwarder:
    """Spools batches and sends them, in order, to the central ingest endpoint."""

    def __init__(self, central_url: str, token: str | None, spool: Spool, collector: str,
                 clock: Callable[[], float] = time.time, on_unknown: Callable[[Sequence[str]], None] | None = None,
                 backoff_max_s: float = BACKOFF_MAX_S, timeout_s: float = SEND_TIMEOUT_S,
                 gzip: bool = True) -> None:
        url = central_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ForwardError(f"--forward must be the central service's http(s) URL, not {central_url!r}")
        self.url = url + INGEST_PATH
        self.token = token
        self.spool = spool
        self.collector = collector
        self.clock = clock
        self.on_unknown = on_unknown
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.gzip = gzip
        self._wake = asyncio.Event()
        self.central = CentralState.UNKNOWN
        self.detail: str | None = None
        self.failures = 0
        self.sent_batches = self.sent_results = 0
        self.refused_items = 0
        self.rejected_batches = self.rejected_items = 0
        self.delivered = asyncio.Event()  # set after every delivered batch (for callers waiting on progress)
        self.attempted = asyncio.Event()  # set after every send attempt, whatever its outcome

    # ---- the poller's side (synchronous, cheap: encode and append) -------------------------------------

    def submit_results(self, results: Sequence[PollResult]) -> None:
        for k in range(0, len(results), MAX_BATCH_RESULTS):
            self._push(results=results[k: k + MAX_BATCH_RESULTS])

    def submit_devices(self, devices: Sequence[Device]) -> None:
        for k in range(0, len(devices), MAX_BATCH_DEVICES):
            self._push(devices=devices[k: k + MAX_BATCH_DEVICES])

    def _push(self, devices: Sequence[Device] = (), results: Sequence[PollResult] = ()) -> None:
        if not devices and not results:
            return
        batch_id = new_batch_id()
        body = encode_batch(batch_id, self.collector, devices, results)
        if self.gzip:
            body = compress(body)
        dropped = self.spool.push(batch_id, len(results), len(devices), body, self.clock())
        if dropped:
            log.error("forward spool full (%d items): dropped the oldest %d items; %d dropped in all",
                      self.spool.max_items, dropped, self.spool.dropped_items)
        self._wake.set()

    # ---- the sender ----------------------------------------------------------------------------------

    def status(self) -> ForwardStatus:
        oldest = self.spool.oldest()
        return ForwardStatus(
            central=self.central, detail=self.detail, spooled_batches=self.spool.batches,
            spooled_items=self.spool.items, oldest_spooled_age_s=self.clock() - oldest if oldest is not None else None,
            sent_batches=self.sent_batches, sent_results=self.sent_results, refused_items=self.refused_items,
            rejected_batches=self.rejected_batches, rejected_items=self.rejected_items,
            dropped_items=self.spool.dropped_items, failures=self.failures)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop`; then keep draining for up to STOP_DRAIN_S while the central answers."""
        headers = {"Content-Type": "application/json", "User-Agent": "pithead-collector"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=headers) as client:
            backoff = 0.0
            while not stop.is_set():
                entry = self.spool.head()
                if entry is None or backoff > 0:
                    self._wake.clear()
                    waiters = [asyncio.ensure_future(stop.wait())]
                    if entry is None:
                        waiters.append(asyncio.ensure_future(self._wake.wait()))
                    try:
                        await asyncio.wait(waiters, timeout=backoff or None, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waiters:
                            w.cancel()
                    backoff = 0.0 if entry is None else backoff
                    if entry is None:
                        continue
                if stop.is_set():
                    break
                if await self._send(client, entry):
                    backoff = 0.0
                else:
                    backoff = min(self.backoff_max_s, BACKOFF_START_S * 2 ** min(self.failures - 1, 16))
            await self._drain_on_stop(client)

    async def _drain_on_stop(self, client: httpx.AsyncClient) -> None:
        # bounded as a whole, also when a send hangs (a batch cut off mid-send stays spooled; if the central
        # had taken it after all, its batch id makes the resend harmless)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_DRAIN_S):
                while (entry := self.spool.head()) is not None:
                    if not await self._send(client, entry):
                        break
        if self.spool.batches:
            where = ("kept in " + self.spool.path + " and sent at the next start" if self.spool.path != ":memory:"
                     else "LOST (the spool is in memory)")
            log.warning("stopping with %d batches (%d items) not delivered: %s", self.spool.batches,
                        self.spool.items, where)

    async def _send(self, client: httpx.AsyncClient, entry: SpoolEntry) -> bool:
        """One attempt at the spool's head; True when it left the spool (delivered or rejected for good)."""
        try:
            return await self._attempt(client, entry)
        finally:
            self.attempted.set()

    async def _attempt(self, client: httpx.AsyncClient, entry: SpoolEntry) -> bool:
        try:
            r = await client.post(self.url, content=entry.body)
        except httpx.HTTPError as exc:
            self._failed(CentralState.UNREACHABLE, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return False
        if r.status_code == 200:
            self._delivered(entry, r)
            return True
        reason = _detail(r)
        if r.status_code in (401, 403):
            self._failed(CentralState.AUTH_REFUSED, f"{r.status_code}: {reason}")
            return False
        if r.status_code in RETRY_STATUSES or r.status_code >= 500:
            self._failed(CentralState.UNREACHABLE, f"{r.status_code}: {reason}")
            return False
        # the central will never take this batch: drop it, loudly, so it cannot block the ones behind it
        self.spool.pop(entry)
        self.rejected_batches += 1
        self.rejected_items += entry.items
        log.error("central REJECTED batch %s (%d results, %d devices) for good: %d %s; dropped it",
                  entry.batch_id, entry.results, entry.devices, r.status_code, reason)
        return True

    def _failed(self, state: CentralState, detail: str) -> None:
        self.failures += 1
        if state is not self.central or detail != self.detail:
            level = logging.ERROR if state is CentralState.AUTH_REFUSED else logging.WARNING
            what = ("central unreachable at " if state is not CentralState.AUTH_REFUSED
                    else "central REFUSED our token at " if self.token is not None
                    else "central REFUSED us (we send no token; give the collector the central's) at ")
            log.log(level, "%s%s: %s; keeping %d batches (%d items) spooled and retrying", what, self.url,
                    detail, self.spool.batches, self.spool.items)
        self.central, self.detail = state, detail

    def _delivered(self, entry: SpoolEntry, r: httpx.Response) -> None:
        self.spool.pop(entry)
        if self.central is not CentralState.OK and self.failures:
            log.warning("central back at %s after %d failed sends; draining %d spooled batches (%d items)",
                        self.url, self.failures, self.spool.batches, self.spool.items)
        self.central, self.detail, self.failures = CentralState.OK, None, 0
        self.sent_batches += 1
        self.sent_results += entry.results
        try:
            reply = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            reply = {}
        refused = reply.get("refused", 0) if isinstance(reply, dict) else 0
        if isinstance(refused, int) and refused:
            self.refused_items += refused
            first = (reply.get("refusals") or [{}])[0]
            log.warning("central refused %d item(s) of batch %s, e.g. %s", refused, entry.batch_id, first)
        unknown = reply.get("unknown_devices") if isinstance(reply, dict) else None
        if unknown and self.on_unknown is not None:
            self.on_unknown([u for u in unknown if isinstance(u, str)])
        self.delivered.set()


def _detail(r: httpx.Response) -> str:
    try:
        d = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return r.text[:200] or r.reason_phrase
    if isinstance(d, dict) and "detail" in d:
        return str(d["detail"])[:500]
    return r.text[:200]


async def wait_drained(fwd: Forwarder, stop: asyncio.Event | None = None) -> None:
    """Until the spool is empty (for shells and tests that want to know everything was delivered)."""
    while fwd.spool.batches and not (stop is not None and stop.is_set()):
        fwd.delivered.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await fwd.delivered.wait()

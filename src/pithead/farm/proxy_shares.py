"""The farm's pool-side share source when the machines mine through a farm proxy: "hashing but no shares"
judged on what the proxy's upstream pools credited each machine.

What it is: `ProxyShareActivity`, the farm's `ShareActivity` (`pithead.farm.alerts`) over a `CreditSource`
— for each machine behind the proxy (by worker name), when the pool last credited a share of it (never
credited: since when the proxy has seen it, so a machine that just came is given the whole alert window);
machines the proxy has never seen are left out (the farm does not judge them on the proxy's word). The farm
asks from its store's thread, so the answer is a snapshot, taken on the event loop every `interval_s`
(`run`). Two sources:

- `ProxyApiCredits`: a proxy in another process (`pithead proxy run`), read over its HTTP API
  (`GET /proxy/api/credited`: each machine's age since its last credit, on the proxy's clock, so the two
  hosts' clocks never need to agree: an age is turned into a time on the farm's clock when it arrives);
- `pithead.app.proxy.LocalProxyCredits`: a proxy in this process (`pithead up`), read directly.

A proxy that cannot be read (down, slow, answering something else) is never taken for machines without
shares: `last_share_times` raises `ShareSourceDown` with the reason until a read succeeds again, and the
alert manager then neither opens nor resolves a "no shares" alert (the open ones stay as they are) and
shows the reason (`AlertManager.shares_problem`, the farm API's `/farm/api/shares`).

What it is not: the proxy (the farm never imports it) or the alert rules (`pithead.farm.alerts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from pithead.farm.alerts import ShareSourceDown

log = logging.getLogger(__name__)

SHARE_SNAPSHOT_S = 5.0
"""How often the proxy's last-credited times are read in one process (its alert waits minutes)."""
REMOTE_SNAPSHOT_S = 15.0
"""How often a proxy in another process is read: a few reads per minute is enough for a 10-minute window,
and one read of 24,000 machines is ~1 MB of JSON."""
READ_TIMEOUT_S = 10.0
"""Longest wait for the proxy's answer; past it the read failed (and the reason is shown)."""
MAX_MACHINES = 1_000_000
"""Most machines accepted in one answer (a proxy holds tens of thousands; more is not a proxy's answer)."""
MAX_WORKER_LEN = 256
"""Longest worker name accepted (the Stratum server's own bound on a worker name is below it)."""
CREDITED_PATH = "/proxy/api/credited"


class CreditSource(Protocol):
    """Where a proxy's machines' last-credited times come from."""

    @property
    def where(self) -> str:
        """What is read, for the operator ("the proxy at http://...", "the proxy in this process")."""
        ...

    async def read(self) -> Mapping[str, float]:
        """Worker name -> when the pool last credited a share of it (or since when the proxy has seen it),
        on this process's clock; raises on a failed read (the reason is its message)."""
        ...


class ProxyShareActivity:
    """The farm's `ShareActivity` over a `CreditSource` (see the module docstring)."""

    def __init__(self, source: CreditSource, interval_s: float = SHARE_SNAPSHOT_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.interval_s = interval_s
        self.clock = clock
        self._times: dict[str, float] = {}
        self.read_at: float | None = None  # the last successful read
        self.problem: str | None = "not read yet"  # why the snapshot cannot be used (None: it can)
        self._down_logged = False

    async def take(self) -> None:
        """Read the source once; a failure keeps no snapshot (see the module docstring) and says why."""
        try:
            times = await self.source.read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the proxy down, slow or answering nonsense: no judgement, the reason shown
            why = f"cannot read {self.source.where}: {type(exc).__name__}: {exc}" if str(exc) else \
                f"cannot read {self.source.where}: {type(exc).__name__}"
            if not self._down_logged:  # once per outage, not every interval
                log.warning("farm: %s (no 'no shares' alert is judged until it answers)", why)
                self._down_logged = True
            self._times = {}
            self.problem = why
            return
        if self._down_logged:
            log.info("farm: %s answers again", self.source.where)
            self._down_logged = False
        self._times = dict(times)
        self.read_at = self.clock()
        self.problem = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Read every `interval_s` until `stop` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.take()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def last_share_times(self, workers: Sequence[str]) -> Mapping[str, float | None]:
        if self.problem is not None:
            raise ShareSourceDown(self.problem)
        times = self._times
        return {w: times[w] for w in workers if w in times}

    def status(self) -> dict[str, Any]:
        return {"source": self.source.where, "ok": self.problem is None, "problem": self.problem,
                "read_at": self.read_at, "machines": len(self._times)}


class ProxyApiCredits:
    """A `CreditSource` over a proxy's HTTP API at `url` (`[proxy] api_bind`/`api_port` of `pithead proxy
    run`, e.g. http://10.0.0.2:8090); reads are open, no token is needed."""

    def __init__(self, url: str, *, timeout_s: float = READ_TIMEOUT_S, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        self.transport = transport

    @property
    def where(self) -> str:
        return f"the proxy at {self.url}"

    async def read(self) -> Mapping[str, float]:
        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s, transport=self.transport) as c:
            r = await c.get(CREDITED_PATH)
            r.raise_for_status()
            body = r.json()
        now = self.clock()
        return {w: now - age for w, age in parse_credited(body).items()}


def parse_credited(body: object) -> dict[str, float]:
    """`{"machines": {worker: age_s}}` checked field by field (ValueError naming what is wrong)."""
    if not isinstance(body, dict) or not isinstance(body.get("machines"), dict):
        raise ValueError(f"{CREDITED_PATH} answered something other than {{\"machines\": {{worker: age_s}}}}")
    machines: dict[str, Any] = body["machines"]
    if len(machines) > MAX_MACHINES:
        raise ValueError(f"{CREDITED_PATH} named {len(machines)} machines (at most {MAX_MACHINES})")
    out: dict[str, float] = {}
    for worker, age in machines.items():
        if not isinstance(worker, str) or not 0 < len(worker) <= MAX_WORKER_LEN:
            raise ValueError(f"{CREDITED_PATH}: a worker name of 1-{MAX_WORKER_LEN} characters, not {worker!r}")
        if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age) or age < 0:
            raise ValueError(f"{CREDITED_PATH}: the age of {worker!r} must be seconds >= 0, not {age!r}")
        out[worker] = float(age)
    return out

"""Fleet alerts: pure rules over device status, a stateful open/resolve tracker, and delivery sinks.

Rules (`evaluate`) are a pure function of one device's latest status, the pool's last-share time for its
worker, the clock (passed in) and `AlertThresholds`:

- OFFLINE        the device has failed every poll (timeout / refused / error) for `offline_after_s`
- OVERHEAT       hottest chip or board sensor above its limit
- FAN_FAILURE    a fan below `fan_min_rpm`, or fewer fans than the model has
- BOARD_MISSING  fewer hashboards than the model has, or a board with no/too few chips found
- LOW_HASHRATE   hashrate below `low_hashrate_ratio` x the expected hashrate the device reports
- NO_SHARES      the device says it is hashing, but the pool has seen no share from its worker for
                 `no_shares_after_s` -- the cross-check between device telemetry and the pool ledger
                 that single-source monitors miss (a miner "healthy" on its own page for hours while
                 the pool saw nothing).
Fan, board, hashrate and share checks wait `boot_grace_s` after a (re)boot; heat is judged at once.

The pool side comes in through `ShareActivity`, a one-method protocol (worker names -> last accepted
share time), so the farm never imports the ledger: `pithead up` plugs the ledger in, tests plug a dict.

`AlertManager` is the thin shell: `evaluate(store, now)` diffs the conditions against the store's open
alerts and opens and resolves rows (synchronous store work: the farm service runs it on the store's own
thread, `AsyncFarmStore.call`), and `deliver` hands every change to the sinks on the event loop (the
dashboard reads the store; `WebhookSink` POSTs JSON with a bounded queue, a timeout and bounded retries, so
a dead webhook never blocks polling; `NoticeAlertSink` raises `farm.alert` notices for an operator's phone,
one per kind of change in each batch, so a rack going dark is one message with its count, not one per
machine). `run_once` does both, for callers with no event loop to spare.

This module does NOT poll devices and does not decide curtailment.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from pithead.events import Notice, NoticeSeverity, NoticeSink
from pithead.farm.alert_groups import Damper, Placement, Wanted, rack_key, silenced, site_key
from pithead.farm.alert_groups import group as group_alerts
from pithead.farm.model import ERROR_STATES, DeviceState
from pithead.farm.store import DeviceStatus, FarmStore

log = logging.getLogger(__name__)

# Webhook deliveries waiting to be sent; beyond this the oldest are dropped (and counted) so a dead
# receiver costs bounded memory. Alerts stay in the store either way.
MAX_PENDING_WEBHOOKS = 10_000
# One POST may take this long before it counts as failed: a webhook receiver is a small service on a LAN
# or a chat relay; anything slower is broken.
WEBHOOK_TIMEOUT_S = 5.0
# Attempts per delivery (first try + retries), with exponential backoff starting at WEBHOOK_BACKOFF_S.
WEBHOOK_ATTEMPTS = 4
WEBHOOK_BACKOFF_S = 0.5
# Machines a farm notice lists by name before "and N more": what a phone screen shows.
NOTICE_MAX_LISTED = 10


class AlertKind(enum.StrEnum):
    OFFLINE = "offline"
    OVERHEAT = "overheat"
    FAN_FAILURE = "fan_failure"
    BOARD_MISSING = "board_missing"
    LOW_HASHRATE = "low_hashrate"
    NO_SHARES = "no_shares"


class Severity(enum.StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    # Two missed 60 s polls and a half: one dropped packet or a reboot is not an outage.
    offline_after_s: float = 150.0
    # Antminer firmware protects chips near 95 °C; operators alarm PCB at 75-80 °C (MiningOS defaults).
    chip_temp_max_c: float = 90.0
    board_temp_max_c: float = 80.0
    # A spinning fan reads thousands of rpm; below this it is stalled or its tach wire is gone.
    fan_min_rpm: int = 500
    # Hashrate wobbles +-5 % around ideal; 80 % catches a lost board or a Bitaxe stuck at half rate.
    low_hashrate_ratio: float = 0.8
    # N minutes without a share at pool difficulty: at vardiff's ~10 s per share, 10 min is ~60 missed.
    no_shares_after_s: float = 600.0
    # A (re)booting miner reports low hashrate, missing chips and idle fans for its first minutes (stock
    # Antminer: 2-3 min until hashing); those checks wait this long after boot. Heat is checked at once.
    boot_grace_s: float = 300.0


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """An alert that should be open right now."""

    device_id: str
    kind: AlertKind
    severity: Severity
    message: str


class ShareSourceDown(Exception):
    """The pool-side source cannot answer now (a farm proxy that is down): its message says why. NO_SHARES
    is then neither opened nor resolved: the open ones stay as they are, until the source answers again."""


class ShareActivity(Protocol):
    """The pool's ledger, seen from the farm: last accepted share time per worker (None = never).

    Called from `AlertManager.evaluate`, which the farm service runs on the store's thread: an
    implementation must be safe to call off the event loop (a snapshot, or its own connection). A worker
    left out of the answer is one the source knows nothing of (a farm proxy answers for the machines behind
    it only): NO_SHARES is not judged for it; a worker answered with None has never had a share. A source
    that cannot answer now raises `ShareSourceDown` (never an empty answer that would resolve every alert)."""

    def last_share_times(self, workers: Sequence[str]) -> Mapping[str, float | None]: ...


class MappingShareActivity:
    """A ShareActivity over a plain mapping (tests, or a snapshot taken from the ledger)."""

    def __init__(self, times: Mapping[str, float]) -> None:
        self._times = dict(times)

    def last_share_times(self, workers: Sequence[str]) -> Mapping[str, float | None]:
        return {w: self._times.get(w) for w in workers}


class CallableShareActivity:
    """A ShareActivity over any function (e.g. a query over the ledger's worker rows), so the ledger plugs
    in without the farm importing it."""

    def __init__(self, fn: Callable[[Sequence[str]], Mapping[str, float | None]]) -> None:
        self._fn = fn

    def last_share_times(self, workers: Sequence[str]) -> Mapping[str, float | None]:
        return self._fn(workers)


def evaluate(
    st: DeviceStatus,
    now: float,
    thresholds: AlertThresholds = AlertThresholds(),
    last_share: float | None = None,
    share_data: bool = False,
) -> list[AlertCondition]:
    """Which alerts should be open for this device now. `share_data` says whether the pool's ledger was
    consulted at all (without it NO_SHARES is never raised, rather than raised for every device)."""
    did = st.device.id
    out: list[AlertCondition] = []
    if st.state is DeviceState.CURTAILED or st.state is DeviceState.UNKNOWN:
        return out
    if st.state in ERROR_STATES:
        down_for = now - st.state_since
        if down_for >= thresholds.offline_after_s:
            out.append(AlertCondition(did, AlertKind.OFFLINE, Severity.CRITICAL,
                                      f"{st.state.value} for {down_for:.0f} s: {st.error}"))
        return out  # the last good reading is stale: judge nothing else on it
    r = st.reading
    if r is None:
        return out
    ident = st.device.identity
    chip, board = r.max_chip_temp_c, r.max_board_temp_c
    if chip is not None and chip > thresholds.chip_temp_max_c:
        out.append(AlertCondition(did, AlertKind.OVERHEAT, Severity.CRITICAL,
                                  f"chip {chip:.1f} °C > {thresholds.chip_temp_max_c:.0f} °C"))
    elif board is not None and board > thresholds.board_temp_max_c:
        out.append(AlertCondition(did, AlertKind.OVERHEAT, Severity.CRITICAL,
                                  f"board {board:.1f} °C > {thresholds.board_temp_max_c:.0f} °C"))
    booting = r.uptime_s is not None and r.uptime_s < thresholds.boot_grace_s
    if r.is_mining and not booting:
        slow = [f for f in r.fans if f.rpm < thresholds.fan_min_rpm]
        if slow:
            out.append(AlertCondition(did, AlertKind.FAN_FAILURE, Severity.CRITICAL,
                                      "fan " + ", ".join(f"{f.index}: {f.rpm} rpm" for f in slow)))
        elif ident.expected_fans is not None and len(r.fans) < ident.expected_fans:
            out.append(AlertCondition(did, AlertKind.FAN_FAILURE, Severity.CRITICAL,
                                      f"{len(r.fans)} of {ident.expected_fans} fans reported"))
        missing = [b for b in r.boards if b.missing]
        if ident.expected_boards is not None and len(r.boards) < ident.expected_boards:
            out.append(AlertCondition(did, AlertKind.BOARD_MISSING, Severity.CRITICAL,
                                      f"{len(r.boards)} of {ident.expected_boards} hashboards present"))
        elif missing:
            out.append(AlertCondition(did, AlertKind.BOARD_MISSING, Severity.CRITICAL, "board " + ", ".join(
                f"{b.index}: {b.chips}/{b.expected_chips if b.expected_chips is not None else '?'} chips"
                for b in missing)))
        expected = r.expected_ths if r.expected_ths else ident.expected_ths
        if expected and r.hashrate_ths < thresholds.low_hashrate_ratio * expected:
            out.append(AlertCondition(did, AlertKind.LOW_HASHRATE, Severity.WARNING,
                                      f"{r.hashrate_ths:.2f} TH/s < {thresholds.low_hashrate_ratio:.0%} "
                                      f"of expected {expected:.2f} TH/s"))
        if share_data and r.hashrate_ths > 0 and r.worker:
            # Judge only after the device has been hashing for the whole window (a rebooted device, or
            # one that just changed pools, has not had the chance to submit yet).
            # The device's own uptime is the better clock (we may have started polling it just now).
            hashing_for = r.uptime_s if r.uptime_s is not None else now - st.state_since
            if hashing_for >= thresholds.no_shares_after_s:
                silent = now - last_share if last_share is not None else None
                if silent is None or silent >= thresholds.no_shares_after_s:
                    what = "no share ever" if silent is None else f"no share for {silent / 60:.0f} min"
                    out.append(AlertCondition(did, AlertKind.NO_SHARES, Severity.CRITICAL,
                                              f"reports {r.hashrate_ths:.2f} TH/s but the pool has {what} "
                                              f"from worker {r.worker!r}"))
    return out


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert that was opened or resolved."""

    id: int
    action: str  # "opened" | "resolved"
    device_id: str
    kind: str
    severity: str
    message: str
    time: float
    machines: int = 1  # a group alert (device_id "rack:SITE/RACK" or "site:SITE"): its machines
    silenced: bool = False  # covered by a silence: kept in the store, not delivered to the sinks

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "device_id": self.device_id, "kind": self.kind,
                "severity": self.severity, "message": self.message, "time": self.time,
                "machines": self.machines}


class AlertSink(Protocol):
    def deliver(self, events: Sequence[AlertEvent]) -> None:
        """Take events without blocking the caller."""
        ...


class AlertManager:
    """Evaluate all devices, open/resolve alerts in the store, and fan changes out to sinks.

    For a big site (`pithead.farm.alert_groups`): `group_min` machines of a rack in the same trouble are
    one rack alert (every rack of a site: one site alert); a condition opens after holding `open_after_s`
    and resolves after being gone `clear_after_s`; silenced changes are stored but not delivered. The
    defaults (no groups, no damping) judge each machine on its own at once."""

    def __init__(self, thresholds: AlertThresholds = AlertThresholds(), shares: ShareActivity | None = None,
                 sinks: Iterable[AlertSink] = (), group_min: int = 0, open_after_s: float = 0.0,
                 clear_after_s: float = 0.0) -> None:
        self.thresholds = thresholds
        self.shares = shares
        self.sinks = list(sinks)
        self.group_min = group_min
        self.damper = Damper(open_after_s, clear_after_s)
        self.shares_problem: str | None = None  # why the last evaluation could not judge NO_SHARES (None: it did)

    def run_once(self, store: FarmStore, now: float,
                 statuses: Sequence[DeviceStatus] | None = None) -> list[AlertEvent]:
        """`evaluate`, then `deliver` what changed."""
        events = self.evaluate(store, now, statuses)
        self.deliver(events)
        return events

    def deliver(self, events: Sequence[AlertEvent]) -> None:
        """Hand alert changes to every sink (on the event loop: a sink may be an asyncio queue), but those
        a silence covers."""
        events = [e for e in events if not e.silenced]
        if events:
            for sink in self.sinks:
                sink.deliver(events)

    def evaluate(self, store: FarmStore, now: float,
                 statuses: Sequence[DeviceStatus] | None = None) -> list[AlertEvent]:
        """Open the alerts whose condition holds, resolve those whose condition is gone; the changes.
        `statuses`: judge only these devices (default: the whole fleet, from the store), e.g. the racks of
        one evaluation partition."""
        sts = store.statuses() if statuses is None else list(statuses)
        share_times: Mapping[str, float | None] = {}
        shares_down = False
        if self.shares is not None:
            workers = sorted({s.reading.worker for s in sts if s.reading and s.reading.worker})
            try:
                share_times = self.shares.last_share_times(workers)
                self.shares_problem = None
            except ShareSourceDown as exc:
                shares_down = True
                self.shares_problem = str(exc)
        machine_wanted: list[Wanted] = []
        for st in sts:
            worker = st.reading.worker if st.reading else None
            for c in evaluate(st, now, self.thresholds, share_times.get(worker) if worker else None,
                              share_data=self.shares is not None and worker is not None and worker in share_times):
                machine_wanted.append(Wanted(c.device_id, c.kind.value, c.severity.value, c.message))
        where = {st.device.id: Placement(st.device.labels.site, st.device.labels.rack) for st in sts}
        racks = Counter((p.site, p.rack) for p in where.values())
        whole_fleet = statuses is None  # then a device missing from the inventory was forgotten
        judged: set[str] | None = None if whole_fleet else (
            set(where) | {rack_key(*r) for r in racks} | {site_key(site) for site, _ in racks})
        open_rows = {(a.device_id, a.kind): a for a in store.open_alerts()}
        wanted = {(w.key, w.kind): w for w in group_alerts(machine_wanted, where, racks, self.group_min, open_rows,
                                                                sites=whole_fleet)}
        ready = self.damper.to_open(wanted, judged, now)
        silences = [(x.target, x.kind) for x in store.silences(now)]

        def hushed(key: str, kind: str) -> bool:
            return bool(silences) and silenced(key, kind, where.get(key), silences)

        events: list[AlertEvent] = []
        gone = [k for k in open_rows if k not in wanted and (judged is None or k[0] in judged)
                # a share source that cannot answer now: NO_SHARES is neither resolved nor re-opened
                and not (shares_down and k[1] == AlertKind.NO_SHARES.value)]
        # a machine taken out of the inventory: its alerts end now (no damping: nobody has it any more)
        forgotten = {k for k in gone if whole_fleet and k[0] not in where and not k[0].startswith(("rack:", "site:"))}
        for key in sorted(set(self.damper.to_resolve([k for k in gone if k not in forgotten], now)) | forgotten):
            a = open_rows[key]
            store.resolve_alert(a.id, now)
            events.append(AlertEvent(a.id, "resolved", a.device_id, a.kind, a.severity, a.message, now,
                                     a.machines, hushed(*key)))
        for key, w in wanted.items():
            row = open_rows.get(key)
            if row is not None:
                if row.machines != w.machines:  # a group grew or shrank: its count, no new notice
                    store.update_alert(row.id, w.message, w.machines)
                continue
            if key not in ready:
                continue
            new_id = store.open_alert(w.key, w.kind, w.severity, w.message, now, w.machines)
            if new_id is not None:
                events.append(AlertEvent(new_id, "opened", w.key, w.kind, w.severity, w.message, now,
                                         w.machines, hushed(*key)))
        return events


class WebhookSink:
    """POST each batch of alert events as JSON `{"events": [...]}` to a URL, in the background.

    `start()` must be called inside the running loop; `aclose()` drains what it can within the timeout.
    Deliveries that fail every attempt are logged and counted in `failed`, never raised into polling."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None,
                 timeout_s: float = WEBHOOK_TIMEOUT_S, attempts: int = WEBHOOK_ATTEMPTS,
                 backoff_s: float = WEBHOOK_BACKOFF_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s): {url!r}")
        self.url = url
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._queue: asyncio.Queue[list[AlertEvent]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> None:
        self._queue = asyncio.Queue(MAX_PENDING_WEBHOOKS)
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="farm-webhook")

    def deliver(self, events: Sequence[AlertEvent]) -> None:
        if self._queue is None:
            raise RuntimeError("WebhookSink.start() was not called")
        batch = list(events)
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._queue.get_nowait()  # drop the oldest batch, keep the newest
            self.dropped += 1
            self._queue.put_nowait(batch)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._queue.get()
            try:
                await self._post(batch)
            finally:
                self._queue.task_done()

    async def _post(self, batch: list[AlertEvent]) -> None:
        assert self._client is not None
        body = orjson.dumps({"events": [e.to_json() for e in batch]})
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                resp = await self._client.post(self.url, content=body, headers=self.headers)
                if resp.status_code < 300:
                    self.sent += len(batch)
                    return
                err = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                err = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += len(batch)
        log.warning("webhook %s failed after %d attempts: %s", self.url, self.attempts, err)

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued batch was sent or given up on (bounded by `timeout_s`)."""
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._queue.join()

    async def aclose(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()


# What an operator reads for each kind of alert (a group of machines "...") and what to look at.
_NOTICE_WORDS: dict[str, tuple[str, str]] = {
    AlertKind.OFFLINE: ("offline", "power, network and the machines' controllers (a rack or a switch if many)"),
    AlertKind.OVERHEAT: ("overheating", "airflow, intake temperature and fans; curtail or power down if it rises"),
    AlertKind.FAN_FAILURE: ("with a fan failure", "the fans and their cables; the chips overheat next"),
    AlertKind.BOARD_MISSING: ("missing a hashboard", "the hashboards' cables and power; a reboot, or a repair"),
    AlertKind.LOW_HASHRATE: ("below their expected hashrate", "temperatures, boards and the power target"),
    AlertKind.NO_SHARES: ("hashing with no shares at the pool", "the pool URL and worker name they mine with"),
}


class NoticeAlertSink:
    """An `AlertSink` that raises `farm.alert` notices: of each batch of changes the manager hands over,
    one notice per (opened or resolved, kind), naming the machines (up to NOTICE_MAX_LISTED) and their
    messages. Opened alerts keep their severity (the worst of the group), resolved ones are info. The key is
    the group's kind, action and machines, so the notifier folds the same group flapping."""

    def __init__(self, notices: NoticeSink) -> None:
        self.notices = notices

    def deliver(self, events: Sequence[AlertEvent]) -> None:
        groups: dict[tuple[str, str], list[AlertEvent]] = {}
        for e in events:
            groups.setdefault((e.action, e.kind), []).append(e)
        for (action, kind), group in groups.items():
            self.notices.notify(_farm_notice(action, kind, group))


def _who(e: AlertEvent) -> str:
    return e.device_id if e.machines <= 1 else f"{e.device_id} ({e.machines} machines)"


def _farm_notice(action: str, kind: str, group: Sequence[AlertEvent]) -> Notice:
    what, look_at = _NOTICE_WORDS.get(kind, (kind.replace("_", " "), "the farm page"))
    devices = sorted(group, key=lambda e: e.device_id)
    n = len(devices)
    machines = sum(e.machines for e in devices)  # a rack or site alert stands for its machines
    who = _who(devices[0]) if n == 1 else f"{machines} machines"
    lines = [f"{_who(e)}: {e.message}" for e in devices[:NOTICE_MAX_LISTED]]
    if n > NOTICE_MAX_LISTED:
        lines.append(f"… and {n - NOTICE_MAX_LISTED} more")
    severity: NoticeSeverity
    if action == "resolved":
        title = f"Farm: {who} no longer {what}"
        severity = "info"
    else:
        title = f"Farm: {who} {what}"
        severity = "critical" if any(e.severity == Severity.CRITICAL for e in devices) else "warning"
        lines.append(f"Look at: {look_at}.")
    # the group itself, in a bounded key whatever its size
    digest = hashlib.sha256("\n".join(e.device_id for e in devices).encode()).hexdigest()[:16]
    key = f"{action}:{kind}:{n}:{digest}"
    return Notice("farm.alert", severity, title, "\n".join(lines), key, max(e.time for e in devices))

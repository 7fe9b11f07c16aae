"""The machines' jobs, relayed from the upstream connections (pure): the farm proxy's `JobSource`.

What it is: `RelayBook` keeps one `UpstreamRoute` per upstream connection (its upstream's name and index). Each
`mining.notify` an upstream connection gets (a `MinerWork` from the client session: the job, that
connection's extranonce1 and extranonce2 size, the difficulty and version mask in force) is relayed as a
machine-side job: a proxy-local job id (short: stock S21 firmware drops long ones), coinb1' with the
upstream extranonce1 and the padding folded in (`pithead.proxy.extranonce`), the machine's tag as its
extranonce1, and the upstream's difficulty as the job's difficulty ceiling (no machine is set above it).
Its notify lines are serialized once for every machine on that connection. A share names the local id;
`lookup` maps it back to the upstream job, the connection and the split, so the proxy can forward it.

Routing: every machine (by its tag, its extranonce1) is on one connection of the *active* upstream, the
least loaded when it is placed (`route_for`), and stays there while that connection lives and that
upstream stays active; a failover (`switch`) or a lost connection (`close_route`) moves machines, and the
pool session asks `job_for(extranonce1=tag)` for its current job, so the same call that routes a machine
hands it its work.

Duplicates: the shares already judged are remembered per *upstream* job, whatever local ids it went out
under (a keepalive, or a pool that sends one job twice): a machine that rolls ntime on the old id up to the
keepalive's cannot get one header forwarded twice.

Staleness: a job is stale once its connection is gone, or once the upstream sent `clean_jobs` after it
(the pool has abandoned it: sharing on it would only be rejected upstream). Older jobs than the last
MAX_JOBS_PER_ROUTE of a connection are not found. Keepalive (`keepalive`): when an upstream is quiet, its
current job goes out again under a new local id with a later ntime, so machines that drop a silent pool
(Antminer D9 after 60 s, cpuminer after 120 s) keep mining; a share on it maps to the same upstream job.

What it is not: sockets, the clock (times are parameters) or the choice of the active upstream
(`pithead.proxy.failover`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableSet
from dataclasses import dataclass, field

from pithead.chain.errors import ChainDecodeError
from pithead.chain.script import parse_bip34_height
from pithead.proxy.extranonce import ExtranonceSplit, split
from pithead.stratum.share import ShareKey
from pithead.stratum.v1.jobs import MAX_SEEN_PER_JOB, IssuedJob, issue
from pithead.stratum.v1.work import MinerWork
from pithead.template.job import Job

MAX_JOBS_PER_ROUTE = 32
"""Jobs of one upstream connection machines may still submit on: pools refresh every 30-60 s without
clean_jobs, and a share found on a job several refreshes old is still credited; older ones are "not found"."""

JOB_ID_SPACE = 1 << 32
"""Local job ids are a counter in hex, at most 8 digits (MAX_JOB_ID_LENGTH: S21 firmware drops long ids);
it wraps after 2^32 jobs, long after any job it could collide with is forgotten."""

_COINBASE_SCRIPT_AT = 42
"""Where the coinbase scriptSig starts in coinb1: version (4), one input (1), the null prevout (36), the
script length (1 byte: a coinbase script is at most 100 bytes)."""

RouteKey = tuple[str, int]
"""(upstream name, connection index)."""
UpstreamJobKey = tuple[int, str, bytes]
"""One upstream job on one connection: (id of its UpstreamRoute, the pool's job id, the connection's extranonce1)."""


def coinbase_height(coinb1: bytes) -> int:
    """The block height a job mines, read from the BIP34 push in coinb1 (0 when coinb1 does not show it)."""
    if len(coinb1) <= _COINBASE_SCRIPT_AT or coinb1[4] != 1:
        return 0
    try:
        return parse_bip34_height(coinb1[_COINBASE_SCRIPT_AT:])
    except ChainDecodeError:
        return 0


@dataclass(eq=False)
class UpstreamRoute:
    """One upstream connection as the book sees it."""

    key: RouteKey
    ready: bool = False  # subscribed and authorized: machines may be placed on it
    alive: bool = True  # False once the connection is gone: its jobs are stale
    version_mask: int = 0  # what the upstream granted this connection (0: no rolling)
    current: RelayedJob | None = None
    stale_before: int = 0  # jobs issued before this sequence number are stale (the pool said clean_jobs)
    last_job_at: float = 0.0  # when the last job (an upstream one or a keepalive) went out
    machines: int = 0  # machines placed on it
    job_ids: deque[str] = field(default_factory=deque)

    @property
    def upstream(self) -> str:
        return self.key[0]


@dataclass(frozen=True, slots=True)
class RelayedJob:
    """A machine-side job and the upstream job it relays."""

    issued: IssuedJob
    route: UpstreamRoute
    work: MinerWork  # the upstream's job, as that connection's client session issued it
    split: ExtranonceSplit
    received_at: float  # when the upstream job arrived
    keepalive: bool = False  # a re-send of the upstream's job with a later ntime

    @property
    def origin(self) -> UpstreamJobKey:
        """The upstream job this relays (what duplicate shares are remembered by)."""
        return (id(self.route), self.work.job.job_id, self.work.extranonce1)

    @property
    def upstream_difficulty(self) -> float:
        """The upstream's share difficulty for this job: what a share must meet to be forwarded."""
        return self.work.difficulty


class RelayBook:
    """The farm proxy's jobs and routes (see the module docstring); a `JobSource` for the pool sessions."""

    builds_blocks = False  # the upstream pool holds the transactions: it builds and submits the block

    def __init__(self, tag_bytes: int, machine_extranonce2_size: int, *,
                 max_jobs_per_route: int = MAX_JOBS_PER_ROUTE) -> None:
        self.tag_bytes = tag_bytes
        self.machine_extranonce2_size = machine_extranonce2_size
        self.max_jobs_per_route = max_jobs_per_route
        self.routes: dict[RouteKey, UpstreamRoute] = {}
        self.active: str | None = None  # the upstream machines mine on
        self._by_id: dict[str, RelayedJob] = {}
        self._seen: dict[UpstreamJobKey, set[ShareKey]] = {}
        self._seen_refs: dict[UpstreamJobKey, int] = {}  # local ids per upstream job still known
        self._assigned: dict[bytes, UpstreamRoute] = {}
        self._seq = 0
        self._next_id = 0

    # --- JobSource ---------------------------------------------------------------------------------------
    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        if extranonce1 is None:
            return None
        route = self.route_for(extranonce1)
        if route is None or route.current is None:
            return None
        return route.current.issued

    def get(self, job_id: str, payout_script: bytes | None = None) -> IssuedJob | None:
        rj = self._by_id.get(job_id)  # a relayed job's id is its own: the machine's script does not matter
        return rj.issued if rj is not None else None

    def is_stale(self, ij: IssuedJob) -> bool:
        rj = self._by_id.get(ij.job.job_id)
        return rj is None or not rj.route.alive or ij.seq < rj.route.stale_before

    def seen(self, job_id: str) -> MutableSet[ShareKey]:
        rj = self._by_id.get(job_id)
        if rj is None:
            return set()  # an unknown job's shares are never judged
        return self._seen.setdefault(rj.origin, set())

    def remember(self, job_id: str, key: ShareKey) -> None:
        self.seen(job_id).add(key)

    def is_full(self, job_id: str) -> bool:
        rj = self._by_id.get(job_id)
        s = self._seen.get(rj.origin) if rj is not None else None
        return s is not None and len(s) >= MAX_SEEN_PER_JOB

    # --- what a share maps back to -------------------------------------------------------------------------
    def lookup(self, job_id: str) -> RelayedJob | None:
        return self._by_id.get(job_id)

    def __len__(self) -> int:
        return len(self._by_id)

    # --- routing -------------------------------------------------------------------------------------------
    def route_of(self, tag: bytes | None) -> UpstreamRoute | None:
        """Where a machine is now (None: not placed), without placing it."""
        return None if tag is None else self._assigned.get(tag)

    def route_for(self, tag: bytes) -> UpstreamRoute | None:
        """The connection a machine mines on: its current one while that lives and its upstream is active,
        else the least loaded ready connection of the active upstream (None while there is none)."""
        route = self._assigned.get(tag)
        if route is not None and route.alive and route.ready and route.upstream == self.active:
            return route
        if route is not None:
            self.unplace(tag)
        best: UpstreamRoute | None = None
        for r in self.routes.values():
            if r.upstream == self.active and r.alive and r.ready and (best is None or r.machines < best.machines):
                best = r
        if best is not None:
            self._assigned[tag] = best
            best.machines += 1
        return best

    def unplace(self, tag: bytes) -> None:
        """A machine left (or is moved): it no longer counts on its connection."""
        route = self._assigned.pop(tag, None)
        if route is not None:
            route.machines -= 1

    def placed(self) -> dict[bytes, UpstreamRoute]:
        return dict(self._assigned)

    def switch(self, upstream: str | None) -> None:
        """Make `upstream` the one machines mine on; each is placed on one of its connections as it asks."""
        if upstream == self.active:
            return
        self.active = upstream
        for tag in list(self._assigned):
            self.unplace(tag)

    # --- the upstream side ---------------------------------------------------------------------------------
    def open_route(self, key: RouteKey) -> UpstreamRoute:
        """A (new) connection: its jobs start afresh; an earlier connection's under this key are forgotten."""
        old = self.routes.get(key)
        if old is not None:
            self._drop(old)
        route = self.routes[key] = UpstreamRoute(key)
        return route

    def route_ready(self, key: RouteKey, version_mask: int) -> UpstreamRoute | None:
        route = self.routes.get(key)
        if route is not None:
            route.ready = True
            route.version_mask = version_mask
        return route

    def close_route(self, key: RouteKey) -> list[bytes]:
        """The connection is gone: its jobs are stale from now on; returns the tags of the machines that
        were on it (to be placed elsewhere)."""
        route = self.routes.get(key)
        if route is None:
            return []
        route.alive = False
        route.ready = False
        moved = [tag for tag, r in self._assigned.items() if r is route]
        for tag in moved:
            self.unplace(tag)
        return moved

    def _drop(self, route: UpstreamRoute) -> None:
        route.alive = False
        for job_id in route.job_ids:
            self._forget(job_id)
        route.job_ids.clear()
        for tag in [t for t, r in self._assigned.items() if r is route]:
            self.unplace(tag)

    def relay(self, key: RouteKey, work: MinerWork, clean: bool, now: float) -> RelayedJob:
        """An upstream job for the machines on `key`: its machine-side job (clean: every earlier job of this
        connection is stale). `ExtranonceTooSmall` when the connection leaves no room for the tags."""
        route = self.routes.get(key)
        if route is None or not route.alive:
            raise KeyError(f"no live connection {key}")
        sp = split(work.extranonce1, work.extranonce2_size, self.tag_bytes, self.machine_extranonce2_size)
        rj = self._issue(route, work, sp, work.job.ntime, now, keepalive=False)
        if clean:
            route.stale_before = rj.issued.seq
        return rj

    def keepalive(self, key: RouteKey, now: float) -> RelayedJob | None:
        """The connection's current job again, under a new local id, with ntime moved on by the time since
        the upstream sent it (None when the connection has no job)."""
        route = self.routes.get(key)
        if route is None or not route.alive or route.current is None:
            return None
        cur = route.current
        ntime = cur.work.job.ntime + max(0, int(now - cur.received_at))
        return self._issue(route, cur.work, cur.split, ntime, cur.received_at, keepalive=True, at=now)

    def _issue(self, route: UpstreamRoute, work: MinerWork, sp: ExtranonceSplit, ntime: int, received_at: float, *,
               keepalive: bool, at: float | None = None) -> RelayedJob:
        self._seq += 1
        self._next_id = (self._next_id + 1) % JOB_ID_SPACE
        job_id = f"{self._next_id:x}"
        up = work.job
        job = Job.from_parts(
            job_id=job_id, prev_hash=up.prevhash, coinb1=sp.coinb1(up.coinb1), coinb2=up.coinb2,
            extranonce1_size=self.tag_bytes, extranonce2_size=self.machine_extranonce2_size,
            branch=up.merkle_branch, version=up.version, bits=up.nbits, ntime=ntime & 0xFFFFFFFF,
            mintime=up.ntime, height=coinbase_height(up.coinb1),
        )
        rj = RelayedJob(issue(job, self._seq, 0, max_difficulty=work.difficulty, version_mask=work.version_mask),
                        route, work, sp, received_at, keepalive)
        self._forget(job_id)  # a wrapped id: whatever had it is long forgotten
        self._by_id[job_id] = rj
        self._seen_refs[rj.origin] = self._seen_refs.get(rj.origin, 0) + 1
        route.job_ids.append(job_id)
        while len(route.job_ids) > self.max_jobs_per_route:
            self._forget(route.job_ids.popleft())
        route.current = rj
        route.last_job_at = received_at if at is None else at
        return rj

    def _forget(self, job_id: str) -> None:
        """A local id is gone; the upstream job's shares are forgotten with its last local id."""
        rj = self._by_id.pop(job_id, None)
        if rj is None:
            return
        left = self._seen_refs.get(rj.origin, 1) - 1
        if left > 0:
            self._seen_refs[rj.origin] = left
        else:
            self._seen_refs.pop(rj.origin, None)
            self._seen.pop(rj.origin, None)

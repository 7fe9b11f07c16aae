"""The job book: the pool's current work, the recent jobs by id, and their pre-serialized notify lines.

What it is: pure bookkeeping over `pithead.template.job`. Each template starts a *generation*; in pool mode a
generation has one job (the coinbase pays the pool), in solo mode one coinbase per payout script. A generation
has one job id either way: in solo mode the job a share is judged against is the generation's, specialised by
the payout script of the connection that sent it (every worker of a solo connection has the same script). So a
solo miner costs the book nothing per generation: a new block's line for it is made from the generation's
coinbase layout without building its job (`broadcast`: a few byte joins, nothing kept); its job is built
(`JobLayout`) when it is needed — a share, a login, a resend — and kept only while its generation is the
current one; a late share on an older generation rebuilds it (a small bounded cache of those). 19,000 idle
miners on distinct addresses used to cost 16 generations x 19,000 stored jobs, each with two pre-serialized
notify lines (~2.6 KB a job, 790 MB), and ~24 µs of CPU a job on every new block (issue 16, finding 8). The
notify line of a generation is pre-serialized around its job id and coinb2 (`NotifyShape`), so notifying
10,000 pool-mode miners is 10,000 writes of one line made once. The book also holds, per job id, the set of
share keys already judged (duplicate detection across reconnects; a key holds the connection's extranonce1,
unique among live connections, so the miners of one solo generation do not collide; like pool mode's, the set
and its MAX_SEEN_PER_JOB bound are the generation's, all its miners'), and says whether a job is stale (its
previous block is no longer the tip). What it is not: it does no I/O and reads no clock.

`JobSource` is what a pool session needs of its jobs, whoever makes them: the `JobBook` here (jobs made
from a node's templates), or a farm proxy's book of jobs relayed from upstream pools
(`pithead.proxy.jobs`), which routes each machine by its extranonce1 and cannot build blocks itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, MutableSet
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from pithead.chain.varint import encode_varint
from pithead.stratum.share import ShareKey
from pithead.stratum.v1.wire import NOTIFY, encode_notification
from pithead.stratum.version import BIP320_MASK
from pithead.template.block_template import BlockTemplate
from pithead.template.job import (
    Job,
    JobError,
    JobLayout,
    PayoutMode,
    TemplateDerived,
    derive,
    job_layout,
    payout_outputs,
)

MAX_GENERATIONS = 16
"""Templates whose jobs stay known. Older ids answer "job not found"; within these, jobs on an old tip
answer "stale". 16 refreshes cover several minutes of in-flight work on slow devices."""

MAX_SOLO_JOBS_PER_GENERATION = 200_000
"""Solo jobs of the current generation kept built (one per payout script sent it); past it a miner's job
is built each time it is asked for (a few µs), never refused."""

MAX_REBUILT_JOBS = 4096
"""Solo jobs of older generations kept after a late share rebuilt them (in-flight work after a refresh:
a miner's next shares are likely on the same job)."""

MAX_SEEN_PER_JOB = 1_000_000
"""Bound on remembered share keys per job (~150 MB worst case). A job that reaches it takes no more
shares (they answer "stale": the miner moves to the newer job it already has), so a duplicate can never
slip through once the set stops growing; at 20,000 shares/s that is 50 s of one job, longer than the
template refresh interval."""


_ID_MARK = "~job-id~"
_COINB2_MARK = "~coinb2~"  # neither can occur in a notify line: its other fields are hex, numbers and booleans


@dataclass(frozen=True, slots=True)
class NotifyShape:
    """A job's `mining.notify` line with the job id and coinb2 left open: everything else of it (the
    prevhash, coinb1, branch, version, nbits, ntime) is the same for every job of one generation, so it is
    serialized once and each job's line is six byte strings joined."""

    head: bytes  # up to the job id
    middle: bytes  # from the job id to coinb2
    tail: bytes  # from coinb2 to the clean_jobs flag

    @classmethod
    def of(cls, job: Job) -> NotifyShape:
        params = job.notify_params(True)
        params[0], params[3] = _ID_MARK, _COINB2_MARK
        line = encode_notification(NOTIFY, params)
        head, rest = line.split(orjson.dumps(_ID_MARK), 1)
        middle, tail = rest.split(_COINB2_MARK.encode(), 1)
        if not tail.endswith(b"true]}\n"):  # pragma: no cover - the wire layer's encoding changed
            raise ValueError("mining.notify does not end with its clean_jobs flag")
        return cls(head, middle, tail[: -len(b"true]}\n")])

    def line(self, job: Job, clean: bool) -> bytes:
        return self.render(job.job_id, job.coinbase.coinb2, clean)

    def render(self, job_id: str, coinb2: bytes, clean: bool) -> bytes:
        return b"".join((self.head, orjson.dumps(job_id), self.middle, coinb2.hex().encode(), self.tail,
                         b"true]}\n" if clean else b"false]}\n"))


@dataclass(frozen=True, slots=True)
class IssuedJob:
    job: Job
    seq: int  # global issue order: larger is newer
    generation: int
    shape: NotifyShape  # its notify line, made when sent (see `line`)
    # The hardest share difficulty a miner may be given while on this job (None: the pool's own bounds):
    # a farm proxy's job carries its upstream's difficulty, so no machine is set above it.
    max_difficulty: float | None = None
    # The version bits a share on this job may roll (None: the pool's own rules): a farm proxy's job carries
    # what its upstream allows, which the V2 channels follow per job (V1 sessions follow the server's limit).
    version_mask: int | None = None

    def line(self, clean: bool) -> bytes:
        """The `mining.notify` line (made on each call: a pool-mode broadcast makes it once for everyone)."""
        return self.shape.line(self.job, clean)

    @property
    def line_clean(self) -> bytes:
        """The notify line with clean_jobs = true."""
        return self.shape.line(self.job, True)

    @property
    def line_update(self) -> bytes:
        """The notify line with clean_jobs = false."""
        return self.shape.line(self.job, False)


def issue(job: Job, seq: int, generation: int, max_difficulty: float | None = None,
          version_mask: int | None = None) -> IssuedJob:
    return IssuedJob(job, seq, generation, NotifyShape.of(job), max_difficulty, version_mask)


class JobSource(Protocol):
    """The jobs a pool session hands out and judges shares against."""

    @property
    def builds_blocks(self) -> bool:
        """Whether a block-solving share can be turned into a block here (a `BlockFound` event); a proxy's
        relayed jobs lack the block's transactions, and the upstream pool builds the block."""
        ...

    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        """The current job for a miner: by its payout script (solo), or by its extranonce1 (a proxy routes
        each machine to one upstream connection by it)."""
        ...

    def get(self, job_id: str, payout_script: bytes | None = None) -> IssuedJob | None:
        """The job with this id as sent to a miner paid to `payout_script` (solo mode: the job ids of one
        generation are shared, each miner's coinbase is its own); None when unknown."""
        ...

    def is_stale(self, ij: IssuedJob) -> bool: ...

    def seen(self, job_id: str) -> MutableSet[ShareKey]: ...

    def remember(self, job_id: str, key: ShareKey) -> None: ...

    def is_full(self, job_id: str) -> bool: ...


@dataclass
class _Generation:
    number: int
    template: BlockTemplate
    clean: bool
    seq: int  # the issue order of its jobs
    job_id: str  # the id of its jobs (solo: all of them, one coinbase per payout script)
    layout: JobLayout
    shape: NotifyShape
    first: IssuedJob  # the job built when the generation started (pool mode: its one job)
    jobs: dict[bytes, IssuedJob] = field(default_factory=dict)  # by payout script (solo: current one only)


class JobBook:
    """Jobs made from a node's templates (see the module docstring); a `JobSource`."""

    builds_blocks = True

    def __init__(
        self,
        *,
        mode: PayoutMode,
        pool_script: bytes | None = None,
        tag: bytes = b"/pithead/",
        extranonce1_size: int = 4,
        extranonce2_size: int = 4,
        max_generations: int = MAX_GENERATIONS,
        clear_version_bits: int = BIP320_MASK,
    ) -> None:
        if mode == "pool" and not pool_script:
            raise ValueError("pool mode needs the pool's payout script")
        self.mode: PayoutMode = mode
        self.pool_script = pool_script
        self.tag = tag
        self.extranonce1_size = extranonce1_size
        self.extranonce2_size = extranonce2_size
        self.max_generations = max_generations
        # the rollable BIP320 bits are sent as zeros so every miner's way of combining them agrees
        self.clear_version_bits = clear_version_bits & BIP320_MASK
        self._seq = 0
        self._generations: OrderedDict[int, _Generation] = OrderedDict()
        self._gen_by_id: dict[str, _Generation] = {}
        self._by_id: dict[str, IssuedJob] = {}  # jobs registered by `add_job`
        self._rebuilt: OrderedDict[tuple[int, bytes], IssuedJob] = OrderedDict()  # older solo jobs, bounded
        self._seen: dict[str, set[ShareKey]] = {}
        self._gen_number = 0
        self.tip: bytes | None = None

    # --- templates -------------------------------------------------------------------------------------
    @property
    def current_template(self) -> BlockTemplate | None:
        if not self._generations:
            return None
        return next(reversed(self._generations.values())).template

    @property
    def current_clean(self) -> bool:
        """Whether the current generation started a new block (its first notify has clean_jobs)."""
        return bool(self._generations) and next(reversed(self._generations.values())).clean

    def new_template(self, template: BlockTemplate, new_block: bool | None = None, ntime: int | None = None) -> int:
        """Start a generation; returns its number. `new_block` defaults to "the tip changed"."""
        derived = derive(template)
        # Build one job now, before anything changes: whatever can fail (coinbase sizes, outputs) fails
        # here with a JobError and the book keeps serving the previous template, instead of every miner's
        # next job failing later.
        self._seq += 1
        job_id = f"{self._seq:x}"
        try:
            layout = self._layout(template, derived, ntime)
            first = self._build(layout, job_id, self.pool_script or b"\x51")
        except ValueError as exc:
            raise JobError(f"no job from the template at height {template.height}: {exc}") from exc
        if new_block is None:
            new_block = template.prev_hash != self.tip
        self.tip = template.prev_hash
        self._gen_number += 1
        shape = NotifyShape.of(first)
        gen = _Generation(self._gen_number, template, new_block, self._seq, job_id, layout, shape,
                          IssuedJob(first, self._seq, self._gen_number, shape))
        if self.mode == "pool":
            gen.jobs[first.payout_script] = gen.first
        elif self._generations:  # solo: the generation before is no longer current; its jobs go
            next(reversed(self._generations.values())).jobs.clear()
        self._generations[gen.number] = gen
        self._gen_by_id[job_id] = gen
        while len(self._generations) > self.max_generations:
            _, old = self._generations.popitem(last=False)
            self._gen_by_id.pop(old.job_id, None)
            self._seen.pop(old.job_id, None)
            for key in [k for k in self._rebuilt if k[0] == old.number]:
                del self._rebuilt[key]
        return gen.number

    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        """The current job for a miner (solo: its script; pool: the pool's). Every miner of a pool is on the
        same template, so `extranonce1` does not matter here."""
        if not self._generations:
            return None
        gen = next(reversed(self._generations.values()))
        script = self.pool_script if self.mode == "pool" else payout_script
        if not script:
            return None
        ij = gen.jobs.get(script)
        if ij is None:
            ij = IssuedJob(self._build(gen.layout, gen.job_id, script), gen.seq, gen.number, gen.shape)
            if len(gen.jobs) < MAX_SOLO_JOBS_PER_GENERATION:
                gen.jobs[script] = ij
        return ij

    def broadcast(self, payout_scripts: Iterable[bytes | None], clean: bool) -> tuple[IssuedJob, dict[bytes, bytes]] | None:
        """A new generation's notify lines for miners paid to `payout_scripts`, by script, made without building
        their jobs (solo: each a few byte joins, nothing kept: an idle miner costs the book no job until it
        sends a share or is sent its job again), and the generation's own job, whose id and seq every one of
        them shares (the sessions' bookkeeping: `PoolSession.take_job`). Pool mode: one line, under the pool's
        script. None before the first template."""
        if not self._generations:
            return None
        gen = next(reversed(self._generations.values()))
        if self.mode == "pool":
            assert self.pool_script is not None
            return gen.first, {self.pool_script: gen.first.line(clean)}
        # every line is `head` + the script, length-prefixed, in hex + `tail`: the rest of coinb2 (the value,
        # checked by the generation's first job, and the trailing outputs) is the same for everyone
        before, after = gen.layout.coinbase.coinb2_around(gen.template.coinbase_value)
        shape = gen.shape
        head = b"".join((shape.head, orjson.dumps(gen.job_id), shape.middle, before.hex().encode()))
        tail = b"".join((after.hex().encode(), shape.tail, b"true]}\n" if clean else b"false]}\n"))
        lines = {}
        for script in payout_scripts:
            if script and script not in lines:
                lines[script] = b"".join((head, (encode_varint(len(script)) + script).hex().encode(), tail))
        return gen.first, lines

    def _layout(self, template: BlockTemplate, derived: TemplateDerived, ntime: int | None) -> JobLayout:
        return job_layout(template, tag=self.tag, extranonce1_size=self.extranonce1_size,
                          extranonce2_size=self.extranonce2_size, ntime=ntime, derived=derived,
                          clear_version_bits=self.clear_version_bits)

    def _build(self, layout: JobLayout, job_id: str, script: bytes) -> Job:
        outputs = payout_outputs(self.mode, layout.template, pool_script=self.pool_script, worker_script=script)
        return layout.job(job_id, outputs)

    def add_job(self, job: Job) -> IssuedJob:
        """Register a job built elsewhere (replayed vectors, tests) as part of the current tip."""
        self._seq += 1
        ij = issue(job, self._seq, self._gen_number)
        self._by_id[job.job_id] = ij
        if self.tip is None:
            self.tip = job.prev_hash
        return ij

    # --- shares ----------------------------------------------------------------------------------------
    def get(self, job_id: str, payout_script: bytes | None = None) -> IssuedJob | None:
        """The job `job_id` for a miner paid to `payout_script` (solo; pool mode: the pool's job, whatever
        the script). A solo job of an older generation is rebuilt (and kept in a small bounded cache)."""
        ij = self._by_id.get(job_id)
        if ij is not None:
            return ij
        gen = self._gen_by_id.get(job_id)
        if gen is None:
            return None
        script = self.pool_script if self.mode == "pool" else payout_script
        if not script:
            return None
        ij = gen.jobs.get(script)
        if ij is not None:
            return ij
        key = (gen.number, script)
        ij = self._rebuilt.get(key)
        if ij is None:
            ij = IssuedJob(self._build(gen.layout, gen.job_id, script), gen.seq, gen.number, gen.shape)
            self._rebuilt[key] = ij
            while len(self._rebuilt) > MAX_REBUILT_JOBS:
                self._rebuilt.popitem(last=False)
        else:
            self._rebuilt.move_to_end(key)
        return ij

    def is_stale(self, ij: IssuedJob) -> bool:
        return ij.job.prev_hash != self.tip

    def seen(self, job_id: str) -> set[ShareKey]:
        s = self._seen.get(job_id)
        if s is None:
            s = self._seen[job_id] = set()
        return s

    def remember(self, job_id: str, key: ShareKey) -> None:
        self.seen(job_id).add(key)

    def is_full(self, job_id: str) -> bool:
        """True when the job has judged MAX_SEEN_PER_JOB shares and takes no more."""
        s = self._seen.get(job_id)
        return s is not None and len(s) >= MAX_SEEN_PER_JOB

    def __len__(self) -> int:
        """Job ids known (one per generation, plus the jobs registered by `add_job`)."""
        return len(self._by_id) + len(self._gen_by_id)

    def jobs_held(self) -> int:
        """Jobs this book holds built (the current generation's, the rebuilt older ones, the registered):
        what the payout scripts of its miners cost it (a regression test counts these)."""
        return sum(len(g.jobs) for g in self._generations.values()) + len(self._rebuilt) + len(self._by_id)

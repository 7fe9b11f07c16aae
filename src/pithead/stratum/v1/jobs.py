"""The job book: the pool's current work, the recent jobs by id, and their pre-serialized notify lines.

What it is: pure bookkeeping over `pithead.template.job`. Each template starts a *generation*; in pool
mode a generation has one job (the coinbase pays the pool), in solo mode one job per payout script, built
lazily when a miner with that script first needs it. Every job's `mining.notify` line is serialized once,
in both clean_jobs variants, so notifying 10,000 miners is 10,000 writes of the same bytes. The book also
holds, per job, the set of share keys already judged (duplicate detection across reconnects), and says
whether a job is stale (its previous block is no longer the tip). What it is not: it does no I/O and
reads no clock.

`JobSource` is what a pool session needs of its jobs, whoever makes them: the `JobBook` here (jobs made
from a node's templates), or a farm proxy's book of jobs relayed from upstream pools
(`pithead.proxy.jobs`), which routes each machine by its extranonce1 and cannot build blocks itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableSet
from dataclasses import dataclass, field
from typing import Protocol

from pithead.stratum.share import ShareKey
from pithead.stratum.v1.wire import NOTIFY, encode_notification
from pithead.stratum.version import BIP320_MASK
from pithead.template.block_template import BlockTemplate
from pithead.template.job import (
    Job,
    JobError,
    PayoutMode,
    TemplateDerived,
    build_job,
    derive,
    payout_outputs,
)

MAX_GENERATIONS = 16
"""Templates whose jobs stay known. Older ids answer "job not found"; within these, jobs on an old tip
answer "stale". 16 refreshes cover several minutes of in-flight work on slow devices."""

MAX_SOLO_JOBS_PER_GENERATION = 200_000
"""Bound on distinct payout scripts per generation in solo mode (one coinbase each)."""

MAX_SEEN_PER_JOB = 1_000_000
"""Bound on remembered share keys per job (~150 MB worst case). A job that reaches it takes no more
shares (they answer "stale": the miner moves to the newer job it already has), so a duplicate can never
slip through once the set stops growing; at 20,000 shares/s that is 50 s of one job, longer than the
template refresh interval."""


@dataclass(frozen=True, slots=True)
class IssuedJob:
    job: Job
    seq: int  # global issue order: larger is newer
    generation: int
    line_clean: bytes  # the notify line with clean_jobs = true
    line_update: bytes  # and with clean_jobs = false
    # The hardest share difficulty a miner may be given while on this job (None: the pool's own bounds):
    # a farm proxy's job carries its upstream's difficulty, so no machine is set above it.
    max_difficulty: float | None = None
    # The version bits a share on this job may roll (None: the pool's own rules): a farm proxy's job carries
    # what its upstream allows, which the V2 channels follow per job (V1 sessions follow the server's limit).
    version_mask: int | None = None

    def line(self, clean: bool) -> bytes:
        return self.line_clean if clean else self.line_update


def issue(job: Job, seq: int, generation: int, max_difficulty: float | None = None,
          version_mask: int | None = None) -> IssuedJob:
    return IssuedJob(
        job,
        seq,
        generation,
        encode_notification(NOTIFY, job.notify_params(True)),
        encode_notification(NOTIFY, job.notify_params(False)),
        max_difficulty,
        version_mask,
    )


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

    def get(self, job_id: str) -> IssuedJob | None: ...

    def is_stale(self, ij: IssuedJob) -> bool: ...

    def seen(self, job_id: str) -> MutableSet[ShareKey]: ...

    def remember(self, job_id: str, key: ShareKey) -> None: ...

    def is_full(self, job_id: str) -> bool: ...


@dataclass
class _Generation:
    number: int
    template: BlockTemplate
    clean: bool
    ntime: int | None
    derived: TemplateDerived
    jobs: dict[bytes, IssuedJob] = field(default_factory=dict)  # by payout script


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
        self._by_id: dict[str, IssuedJob] = {}
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
        try:
            self._build(template, derived, ntime, self.pool_script or b"\x51", "0")
        except ValueError as exc:
            raise JobError(f"no job from the template at height {template.height}: {exc}") from exc
        if new_block is None:
            new_block = template.prev_hash != self.tip
        self.tip = template.prev_hash
        self._gen_number += 1
        gen = _Generation(self._gen_number, template, new_block, ntime, derived)
        self._generations[gen.number] = gen
        while len(self._generations) > self.max_generations:
            _, old = self._generations.popitem(last=False)
            for ij in old.jobs.values():
                self._by_id.pop(ij.job.job_id, None)
                self._seen.pop(ij.job.job_id, None)
        return gen.number

    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        """The current job for a miner (solo: its script; pool: the pool's), built on first use. Every miner
        of a pool is on the same template, so `extranonce1` does not matter here."""
        if not self._generations:
            return None
        gen = next(reversed(self._generations.values()))
        script = self.pool_script if self.mode == "pool" else payout_script
        if not script:
            return None
        ij = gen.jobs.get(script)
        if ij is not None:
            return ij
        if len(gen.jobs) >= MAX_SOLO_JOBS_PER_GENERATION:
            return None  # bounded: this miner waits for the next template
        self._seq += 1
        job = self._build(gen.template, gen.derived, gen.ntime, script, f"{self._seq:x}")
        ij = issue(job, self._seq, gen.number)
        gen.jobs[script] = ij
        self._by_id[job.job_id] = ij
        return ij

    def _build(self, template: BlockTemplate, derived: TemplateDerived, ntime: int | None, script: bytes,
               job_id: str) -> Job:
        outputs = payout_outputs(self.mode, template, pool_script=self.pool_script, worker_script=script)
        return build_job(
            template,
            job_id=job_id,
            outputs=outputs,
            tag=self.tag,
            extranonce1_size=self.extranonce1_size,
            extranonce2_size=self.extranonce2_size,
            ntime=ntime,
            derived=derived,
            clear_version_bits=self.clear_version_bits,
        )

    def add_job(self, job: Job) -> IssuedJob:
        """Register a job built elsewhere (replayed vectors, tests) as part of the current tip."""
        self._seq += 1
        ij = issue(job, self._seq, self._gen_number)
        self._by_id[job.job_id] = ij
        if self.tip is None:
            self.tip = job.prev_hash
        return ij

    # --- shares ----------------------------------------------------------------------------------------
    def get(self, job_id: str) -> IssuedJob | None:
        return self._by_id.get(job_id)

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
        return len(self._by_id)

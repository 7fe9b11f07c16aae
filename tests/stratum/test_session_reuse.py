"""The pool session as a farm proxy reuses it: a job source other than the template book (jobs that carry a
difficulty ceiling and build no blocks), difficulty caps, version masks that narrow and widen again, and
the share's hash and header version in its event (what the proxy forwards by).
"""

from __future__ import annotations

from collections.abc import MutableSet

from pithead.chain.params import REGTEST
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.share import ShareKey
from pithead.stratum.v1.jobs import IssuedJob, JobBook, issue
from pithead.stratum.v1.pool import BlockFound, PoolRules, PoolSession, ShareJudged

from .helpers import find_nonces, header_for, regtest_template
from .test_session import NOW, lines, req

REGTEST_BITS = 0x207FFFFF  # half of all hashes are blocks


class CappedJobs:
    """A job source like a proxy's: one job, a difficulty ceiling on it, no blocks built here."""

    builds_blocks = False

    def __init__(self, ceiling: float, bits: int = 0x1D00FFFF) -> None:
        book = JobBook(mode="solo")
        book.new_template(regtest_template(bits=bits))
        ij = book.job_for(b"\x51")
        assert ij is not None
        self.ij = issue(ij.job, ij.seq, ij.generation, max_difficulty=ceiling)
        self._seen: set[ShareKey] = set()
        self.asked: list[bytes | None] = []

    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        self.asked.append(extranonce1)
        return self.ij

    def get(self, job_id: str, payout_script: bytes | None = None) -> IssuedJob | None:
        return self.ij if job_id == self.ij.job.job_id else None

    def is_stale(self, ij: IssuedJob) -> bool:
        return False

    def seen(self, job_id: str) -> MutableSet[ShareKey]:
        return self._seen

    def remember(self, job_id: str, key: ShareKey) -> None:
        self._seen.add(key)

    def is_full(self, job_id: str) -> bool:
        return False


def session(jobs: CappedJobs, mask: str = "1fffe000", rules_mask: int = 0x1FFFE000) -> PoolSession:
    rules = PoolRules(mode="pool", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-9, 1e9), start_difficulty=1.0,
                      user_rule="any", version_mask=rules_mask)
    s = PoolSession(rules, jobs, ExtranonceAllocator(), NOW)
    s.receive(req(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": mask}])
              + req(2, "mining.subscribe", ["t"]) + req(3, "mining.authorize", ["rack.m1", "x"]), NOW)
    return s


def test_a_jobs_ceiling_lowers_the_difficulty_before_the_first_set_difficulty() -> None:
    jobs = CappedJobs(ceiling=0.25)
    s = session(jobs)
    out = lines(s.data_to_send())
    methods = [o.get("method") for o in out if "method" in o]
    assert methods == ["mining.set_difficulty", "mining.notify"]
    assert [o["params"][0] for o in out if o.get("method") == "mining.set_difficulty"] == [0.25]
    assert jobs.asked[-1] == s.extranonce1  # the job source is asked with the miner's extranonce1
    s.receive(req(4, "mining.suggest_difficulty", [1000]), NOW)  # a miner cannot go above the ceiling
    assert s.difficulty == 0.25


def test_cap_difficulty_sends_set_difficulty_only() -> None:
    s = session(CappedJobs(ceiling=1e9))
    s.data_to_send()
    assert s.difficulty == 1.0
    s.cap_difficulty(0.5, NOW + 1)
    out = lines(s.data_to_send())
    assert [(o["method"], o["params"]) for o in out] == [("mining.set_difficulty", [0.5])]  # no job re-sent
    s.cap_difficulty(4.0, NOW + 2)  # a higher ceiling changes nothing now
    assert s.data_to_send() == b"" and s.difficulty == 0.5


def test_a_block_solving_share_is_judged_but_not_built_when_the_jobs_cannot_build_blocks() -> None:
    jobs = CappedJobs(ceiling=1.0, bits=REGTEST_BITS)
    s = session(jobs)
    s.cap_difficulty(1e-9, NOW)
    s.data_to_send()
    job = jobs.ij.job
    assert s.extranonce1 is not None
    version = job.version | 0x00002000
    nonces = find_nonces(header_for(job, s.extranonce1, b"\0\0\0\1", job.ntime, version), job.network_target, 1)
    events = s.receive(req(9, "mining.submit", ["rack.m1", job.job_id, "00000001", f"{job.ntime:08x}",
                                                f"{nonces[0]:08x}", "00002000"]), NOW)
    (judged,) = [e for e in events if isinstance(e, ShareJudged)]
    assert judged.accepted and judged.is_block and judged.version == version
    assert 0 < judged.hash_int <= job.network_target
    assert not [e for e in events if isinstance(e, BlockFound)]  # the upstream pool builds it


def test_a_narrowed_mask_widens_again_within_what_the_miner_asked() -> None:
    s = session(CappedJobs(ceiling=1.0), mask="00ffe000", rules_mask=0x1FFFE000)
    s.data_to_send()
    assert s.version_mask == 0x00FFE000
    s.set_version_mask(0)  # an upstream that allows no rolling
    assert [o["params"] for o in lines(s.data_to_send())] == [["00000000"]] and s.version_mask == 0
    s.set_version_mask(0x1FFFE000)  # back on one that does: what the miner asked for, no more
    assert [o["params"] for o in lines(s.data_to_send())] == [["00ffe000"]]
    s.set_version_mask(0x1FFFE000)  # unchanged: nothing sent
    assert s.data_to_send() == b""


def test_a_limit_set_before_configure_bounds_the_negotiation() -> None:
    rules = PoolRules(mode="solo", network=REGTEST)
    s = PoolSession(rules, CappedJobs(ceiling=1.0), ExtranonceAllocator(), NOW)
    s.set_version_mask(0x00000003)  # nothing a miner may roll within the rules: refused at configure
    assert s.data_to_send() == b""
    s.receive(req(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}]), NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["result"]["version-rolling"] is False
    s.set_version_mask(0x1FFFE000)  # never negotiated: nothing to tell this miner
    assert s.data_to_send() == b"" and s.version_mask == 0

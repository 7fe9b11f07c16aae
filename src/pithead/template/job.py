"""Jobs: the pure translation of a BlockTemplate into Stratum work, and of a winning share into a block.

What it is: `build_job` makes a frozen `Job` from a template, a payout (solo: the worker's own script;
pool: the pool's script — `payout_outputs` says which), the coinbase tag and the extranonce sizes. A Job
holds exactly what `mining.notify` sends (coinb1/coinb2 around the extranonces, the merkle branch in
internal order, version/nbits/ntime as big-endian hex, the word-swapped prevhash) plus what block
assembly needs (the raw transactions). `assemble_block` turns a winning share into the block bytes for
submitblock. What it is not: it knows nothing of sessions, difficulty or sockets, and never reads a
clock (ntime comes in).

A Job can also be made directly from raw coinb1/coinb2 (`Job.from_parts`), which is how real pools'
recorded jobs are replayed in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pithead.chain.coinbase import CoinbaseLayout, CoinbaseParts, coinbase_layout
from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import prevhash_to_stratum, sha256d
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import fold_branch
from pithead.chain.tx import TxOut
from pithead.chain.varint import encode_varint
from pithead.template.block_template import BlockTemplate

PayoutMode = Literal["solo", "pool"]

MAX_JOB_ID_LENGTH = 8
"""Job ids stay short: stock Antminer S21+ firmware silently drops notifies with long (39-digit) ids."""


class JobError(ValueError):
    """A job or block that cannot be built as asked."""


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    prev_hash: bytes  # internal order
    coinbase: CoinbaseParts
    branch: tuple[bytes, ...]  # internal order
    version: int
    bits: int
    ntime: int
    mintime: int
    height: int
    coinbase_value: int
    fees: int
    tx_data: tuple[bytes, ...]  # raw non-coinbase transactions (with witness), block order
    payout_script: bytes = b""

    @property
    def network_target(self) -> int:
        return bits_to_target(self.bits)

    def notify_params(self, clean_jobs: bool) -> list[object]:
        """mining.notify params: [job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean]."""
        return [
            self.job_id,
            prevhash_to_stratum(self.prev_hash),
            self.coinbase.coinb1.hex(),
            self.coinbase.coinb2.hex(),
            [b.hex() for b in self.branch],
            f"{self.version:08x}",
            f"{self.bits:08x}",
            f"{self.ntime:08x}",
            clean_jobs,
        ]

    def merkle_root(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        return fold_branch(self.coinbase.txid(extranonce1, extranonce2), self.branch)

    def header(self, extranonce1: bytes, extranonce2: bytes, ntime: int, nonce: int, version: int) -> BlockHeader:
        # nVersion is a signed int32 in the header (BlockHeader packs "<i"); a rolled version with bit 31
        # set (old firmware masks such as 0x80000000, btcpool #425) is the same 4 bytes read as negative.
        signed = version - (1 << 32) if version >= 1 << 31 else version
        return BlockHeader(signed, self.prev_hash, self.merkle_root(extranonce1, extranonce2), ntime, self.bits, nonce)

    @classmethod
    def from_parts(
        cls,
        *,
        job_id: str,
        prev_hash: bytes,
        coinb1: bytes,
        coinb2: bytes,
        extranonce1_size: int,
        extranonce2_size: int,
        branch: Sequence[bytes],
        version: int,
        bits: int,
        ntime: int,
        mintime: int = 0,
        height: int = 0,
        coinbase_value: int = 0,
        tx_data: Sequence[bytes] = (),
        has_witness_commitment: bool = False,
    ) -> Job:
        parts = CoinbaseParts(coinb1, coinb2, extranonce1_size, extranonce2_size, has_witness_commitment)
        return cls(job_id, prev_hash, parts, tuple(branch), version, bits, ntime, mintime, height,
                   coinbase_value, 0, tuple(tx_data))


@dataclass(frozen=True, slots=True)
class TemplateDerived:
    """What every job of one template shares, computed once: the merkle branch, the witness commitment
    (None when segwit is not active), the fees and the raw transactions."""

    branch: tuple[bytes, ...]
    witness_commitment: bytes | None
    fees: int
    tx_data: tuple[bytes, ...]


def derive(template: BlockTemplate) -> TemplateDerived:
    return TemplateDerived(
        branch=tuple(template.merkle_branch()),
        witness_commitment=template.witness_commitment() if template.needs_witness_commitment() else None,
        fees=template.fees(),
        tx_data=tuple(tx.data for tx in template.transactions),
    )


def payout_outputs(
    mode: PayoutMode, template: BlockTemplate, *, pool_script: bytes | None, worker_script: bytes | None
) -> list[TxOut]:
    """The coinbase payouts for a payout mode: solo pays the whole reward to the worker's own script;
    pool pays it to the pool's script (the ledger splits it later from the recorded shares)."""
    if mode == "solo":
        if not worker_script:
            raise JobError("solo mode needs the worker's payout script")
        return [TxOut(template.coinbase_value, worker_script)]
    if mode == "pool":
        if not pool_script:
            raise JobError("pool mode needs the pool's payout script")
        return [TxOut(template.coinbase_value, pool_script)]
    raise JobError(f"unknown payout mode {mode!r}")


def build_job(
    template: BlockTemplate,
    *,
    job_id: str,
    outputs: Sequence[TxOut],
    tag: bytes = b"/pithead/",
    extranonce1_size: int = 4,
    extranonce2_size: int = 4,
    ntime: int | None = None,
    derived: TemplateDerived | None = None,
    clear_version_bits: int = 0,
) -> Job:
    """A Job for `template` paying `outputs`; ntime defaults to the template's curtime (never below mintime).

    `derived` (from `derive(template)`) saves recomputing the merkle branch and witness commitment when
    many jobs are built from one template; `job_layout` saves the rest (solo mode: one coinbase per payout
    address).

    `clear_version_bits` are cleared from the template's version: the pool clears the BIP320 bits it lets
    miners roll, because miners disagree on how rolled bits combine with set ones (BIP310's
    `(v & ~mask) | (bits & mask)`, ckpool's OR, ESP-Miner/public-pool's XOR) and agree only when the job
    has zeros there. BIP320 reserves those bits from soft-fork signalling, so nothing is lost."""
    layout = job_layout(template, tag=tag, extranonce1_size=extranonce1_size, extranonce2_size=extranonce2_size,
                        ntime=ntime, derived=derived, clear_version_bits=clear_version_bits)
    return layout.job(job_id, outputs)


@dataclass(frozen=True, slots=True)
class JobLayout:
    """What every job of one template shares (the coinbase but its payouts, the branch, the header fields),
    computed once; `job(job_id, outputs)` is then a few byte joins. Solo mode makes one job per payout
    address from each template, so this is its per-address cost."""

    template: BlockTemplate
    coinbase: CoinbaseLayout
    derived: TemplateDerived
    version: int
    ntime: int

    def job(self, job_id: str, outputs: Sequence[TxOut]) -> Job:
        if not job_id or len(job_id) > MAX_JOB_ID_LENGTH:
            raise JobError(f"job id must be 1..{MAX_JOB_ID_LENGTH} characters")
        t = self.template
        d = self.derived
        # positional, in the field order (job_id, prev_hash, coinbase, branch, version, bits, ntime, mintime,
        # height, coinbase_value, fees, tx_data, payout_script): solo mode makes one per miner per new block
        return Job(job_id, t.prev_hash, self.coinbase.parts(outputs), d.branch, self.version, t.bits, self.ntime,
                   t.mintime, t.height, t.coinbase_value, d.fees, d.tx_data,
                   outputs[0].script_pubkey if outputs else b"")


def job_layout(
    template: BlockTemplate,
    *,
    tag: bytes = b"/pithead/",
    extranonce1_size: int = 4,
    extranonce2_size: int = 4,
    ntime: int | None = None,
    derived: TemplateDerived | None = None,
    clear_version_bits: int = 0,
) -> JobLayout:
    """The layout of `template`'s jobs (the arguments as `build_job`'s)."""
    d = derived if derived is not None else derive(template)
    layout = coinbase_layout(
        height=template.height,
        extranonce1_size=extranonce1_size,
        extranonce2_size=extranonce2_size,
        tag=tag,
        aux_flags=template.coinbase_aux_flags,
        witness_commitment=d.witness_commitment,
    )
    t = template.curtime if ntime is None else ntime
    return JobLayout(template, layout, d, template.version & ~clear_version_bits & 0xFFFFFFFF,
                     max(t, template.mintime))


def assemble_block(job: Job, extranonce1: bytes, extranonce2: bytes, ntime: int, nonce: int, version: int) -> bytes:
    """The full block (as submitblock wants it) for a share on `job`."""
    header = job.header(extranonce1, extranonce2, ntime, nonce, version)
    coinbase_tx = job.coinbase.transaction(extranonce1, extranonce2)
    return b"".join(
        [header.serialize(), encode_varint(1 + len(job.tx_data)), coinbase_tx.serialize(True), *job.tx_data]
    )


def block_hash(block: bytes) -> bytes:
    """Internal-order hash of an assembled block (sha256d of its 80-byte header)."""
    return sha256d(block[:80])

"""The V1 <-> V2 translation cases of SRI (tests/vectors/sv2/translation.json, copied from
shared/vectors/sv2/ with PROVENANCE.md; each case names its `owner/repo@commit:path:line`) against the
code the farm proxy translates with:

- SV2 job -> V1 notify: the pool's messages through the miner side of a connection (`MinerConnection`, which
  picks ntime from the job or from its SetNewPrevHash), `miner_work` (job id, BIP141 stripping) and the
  proxy's `RelayBook` (what the machines get: `mining.notify` with the upstream's coinbase halves, the
  word-swapped prev hash, the merkle path as the branch; coinb1 carries the channel's extranonce prefix and
  the padding before the machine's tag, `pithead.proxy.extranonce`);
- V1 submit -> SubmitSharesExtended: the extranonce copied verbatim (the channel's prefix not included),
  the version as BIP310 rebuilds it;
- SV2 targets (U256 little-endian) as the difficulty the proxy forwards at; BIP141 stripping with its
  errors; the prev hash's word order.

Not applied here, and why: SRI's power-of-two rounding of V1 difficulties (the proxy sends each machine its
own vardiff difficulty, capped at the pool's; not rounded), its hashrate <-> target formulas (pithead's
channels run pithead's vardiff), its mining.configure parsing (V1's session, tested with V1), its
extranonce allocator's index width (the proxy's tag width is a setting), and the "version bits absent but a
mask negotiated" error (a V1 machine that negotiated rolling and sends no bits mines the job's version,
which is what the pool session judges).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pithead.chain.compact import DIFF1_TARGET
from pithead.chain.hashes import prevhash_to_stratum
from pithead.proxy.extranonce import split
from pithead.proxy.jobs import RelayBook
from pithead.stratum.client.v2 import miner_difficulty, miner_work
from pithead.stratum.v2.channels import ChannelKind
from pithead.stratum.v2.client import ChannelWork, MinerChannelConfig, MinerConnection, MinerState, WorkReady
from pithead.stratum.v2.errors import PeerViolation
from pithead.stratum.v2.messages.mining import NewExtendedMiningJob, SetNewPrevHash, SubmitSharesExtended
from pithead.stratum.v2.translate import strip_bip141
from pithead.stratum.version import rolled_version

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "sv2" / "translation.json").read_text())
PREFIX = bytes.fromhex("aabbccdd")  # the channel's extranonce prefix (SRI's allocator example)
TAG_BYTES, MACHINE_EN2 = 2, 2


def _channel(extranonce_size: int) -> MinerConnection:
    """The miner side of an extended channel that is open (the handshake and the opening have their own
    tests): what the pool's messages then turn into."""
    conn = MinerConnection(MinerChannelConfig("proxy", kind=ChannelKind.EXTENDED), None)
    conn.state = MinerState.WAITING
    conn.channel_id = 1
    conn.extranonce_prefix, conn.extranonce_size = PREFIX, extranonce_size
    return conn


def _works(conn: MinerConnection, *messages: Any) -> list[WorkReady]:
    events: list[Any] = []
    for m in messages:
        conn.handle(type(m), m, events)
    return [e for e in events if isinstance(e, WorkReady)]


def _messages(case: dict[str, Any], job_id: int, min_ntime: int | None) -> tuple[NewExtendedMiningJob, SetNewPrevHash]:
    j, p = case["input"]["new_extended_mining_job"], case["input"]["set_new_prev_hash"]
    job = NewExtendedMiningJob(1, job_id, min_ntime, j["version"], j["version_rolling_allowed"],
                               tuple(bytes.fromhex(h) for h in j["merkle_path"]),
                               bytes.fromhex(j["coinbase_tx_prefix"]), bytes.fromhex(j["coinbase_tx_suffix"]))
    prev = SetNewPrevHash(1, job_id, bytes.fromhex(p["prev_hash"]), p["min_ntime"], p["nbits"])
    return job, prev


def _notify(work: ChannelWork, clean: bool) -> list[object]:
    """What the machines behind the proxy get for this upstream work."""
    book = RelayBook(TAG_BYTES, MACHINE_EN2)
    book.open_route(("sv2", 0))
    rj = book.relay(("sv2", 0), miner_work(work, clean, 1), clean, 0.0)
    return rj.issued.job.notify_params(clean)


def test_sv2_jobs_become_the_notify_sri_derives() -> None:
    cases = VECTORS["notify_from_sv2"]["cases"]
    base, future = cases[0], cases[1]
    derived = base["derived_sv1_fields"]
    conn = _channel(extranonce_size=8)
    # the future job and its SetNewPrevHash: ntime is the SetNewPrevHash's, and it is clean
    job, prev = _messages(base, base["input"]["new_extended_mining_job"]["job_id"], None)
    (activated,) = _works(conn, job, prev)
    assert activated.clean is True
    assert activated.work.ntime == future["expected_asserted"]["time"]
    notify = _notify(activated.work, activated.clean)
    assert notify[7] == future["derived_sv1_fields"]["ntime"]
    # a job on the same tip: its own min_ntime, not clean
    j = base["input"]["new_extended_mining_job"]
    job2, _ = _messages(base, j["job_id"] + 1, j["min_ntime"])
    (active,) = _works(conn, job2)
    assert active.clean is base["expected_asserted"]["clean_jobs"]
    work = active.work
    assert (work.version, work.nbits, work.ntime) == (base["expected_asserted"]["version"],
                                                       base["expected_asserted"]["bits"],
                                                       base["expected_asserted"]["time"])
    upstream = miner_work(work, active.clean, 2).job
    assert upstream.job_id == str(j["job_id"] + 1)  # the SV2 job id as a decimal string
    assert len(upstream.merkle_branch) == base["expected_asserted"]["merkle_branch_len"]
    notify = _notify(work, active.clean)
    _, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean = notify
    padding = bytes(8 - TAG_BYTES - MACHINE_EN2)
    assert prevhash == derived["prevhash"]
    assert coinb1 == derived["coinb1"] + (PREFIX + padding).hex()  # stripped, then the channel's prefix
    assert coinb2 == derived["coinb2"]
    assert branch == derived["merkle_branch"]
    assert (version, nbits, ntime, clean) == (derived["version"], derived["nbits"], derived["ntime"],
                                              derived["clean_jobs"])


def test_the_prev_hash_word_order() -> None:
    for case in VECTORS["prevhash"]["cases"]:
        assert prevhash_to_stratum(bytes.fromhex(case["sv2_prev_hash_hex"])) == case["sv1_prevhash"]


@pytest.mark.parametrize("case", VECTORS["bip141_strip"]["cases"], ids=lambda c: c["name"])
def test_bip141_strip(case: dict[str, Any]) -> None:
    prefix, suffix = bytes.fromhex(case["coinbase_tx_prefix"]), bytes.fromhex(case["coinbase_tx_suffix"])
    expected = case["expected"]
    got = strip_bip141(prefix, suffix)
    if expected is None:
        assert got == (prefix, suffix)
    else:
        assert got == (bytes.fromhex(expected["coinbase_tx_prefix"]), bytes.fromhex(expected["coinbase_tx_suffix"]))


def test_bip141_strip_errors() -> None:
    errors = {c["error"]: c for c in VECTORS["bip141_strip"]["error_cases"] if "error" in c}
    assert set(errors) == {"FailedToDeserializeCoinbaseInputs", "FailedToDeserializeCoinbaseLockTime",
                           "FailedToDeserializeCoinbaseWitness"}
    with pytest.raises(PeerViolation):
        strip_bip141(bytes(5), bytes(40))  # prefix shorter than 6 bytes
    with pytest.raises(PeerViolation):
        strip_bip141(bytes.fromhex("000000000001"), bytes(3))  # marker+flag, suffix < 4
    for n in (4, 37):
        with pytest.raises(PeerViolation):
            strip_bip141(bytes.fromhex("000000000001"), bytes(n))  # marker+flag, 4 <= suffix < 38
    (ok,) = [c for c in VECTORS["bip141_strip"]["error_cases"] if "expected" in c]
    assert strip_bip141(bytes.fromhex("000000000001"), bytes.fromhex("0120") + bytes(36)) == (
        bytes.fromhex(ok["expected"]["prefix"]), bytes.fromhex(ok["expected"]["suffix"]))


def test_a_witness_coinbase_from_the_pool_is_stripped_before_machines_hash_it() -> None:
    case = VECTORS["notify_from_sv2"]["cases"][0]
    job, prev = _messages(case, 7, None)
    (ready,) = _works(_channel(extranonce_size=4), job, prev)
    upstream = miner_work(ready.work, True, 1).job
    assert upstream.coinb1.hex() == case["derived_sv1_fields"]["coinb1"]
    assert upstream.coinb2.hex() == case["derived_sv1_fields"]["coinb2"]


@pytest.mark.parametrize("case", [c for c in VECTORS["version_rolling"]["cases"] if "version" in c["expected"]],
                         ids=lambda c: c["name"])
def test_a_v1_submit_version_as_the_sv2_share_carries_it(case: dict[str, Any]) -> None:
    i = case["input"]
    bits = int(i["version_bits"], 16) if i["version_bits"] is not None else 0
    mask = int(i["version_rolling_mask"], 16) if i["version_rolling_mask"] is not None else 0
    assert rolled_version(int(i["job_version"], 16), bits, mask) == int(case["expected"]["version"], 16)


def test_a_v1_submit_as_submit_shares_extended() -> None:
    """The machine's extranonce2 behind its tag (and the padding) is the share's extranonce, verbatim: the
    channel's prefix is not in it (translation_cases[0] and submit_from_sv1.cases[0])."""
    (case,) = [c for c in VECTORS["extranonce"]["translation_cases"] if c["name"].startswith("sv1 extra_nonce2")]
    sub = VECTORS["submit_from_sv1"]["cases"][0]
    en = bytes.fromhex(case["input"]["extra_nonce2"])
    sp = split(PREFIX, case["expected"]["extranonce_len"], TAG_BYTES, MACHINE_EN2)
    extranonce = sp.upstream_extranonce2(en[:TAG_BYTES], en[TAG_BYTES:])
    assert extranonce.hex() == case["expected"]["extranonce"]
    conn = _channel(extranonce_size=case["expected"]["extranonce_len"])
    job, prev = _messages(VECTORS["notify_from_sv2"]["cases"][0], sub["expected"]["job_id"], None)
    _works(conn, job, prev)
    i, e = sub["input"], sub["expected"]
    version = rolled_version(int(i["job_version"], 16), i["version_bits"], int(i["mask"], 16))
    conn.submit(int(i["job_id"]), i["nonce"], i["time"], version, extranonce, object())
    (msg,) = [m for m in conn._messages if isinstance(m, SubmitSharesExtended)]  # what goes on the wire next
    assert (msg.channel_id, msg.job_id, msg.nonce, msg.ntime, msg.version) == (
        e["channel_id"], e["job_id"], e["nonce"], e["ntime"], int(e["version"], 16))
    assert len(msg.extranonce) == e["extranonce_len"] and msg.extranonce == extranonce


def test_sv2_targets_as_the_difficulty_the_proxy_forwards_at() -> None:
    cases = {c["name"]: c for c in VECTORS["difficulty_target"]["target_cases"]}
    nbits = cases["nBits 0x1b00ffff"]
    d = miner_difficulty(int.from_bytes(bytes.fromhex(nbits["target_le_hex"]), "little"))
    assert nbits["difficulty"] <= d <= nbits["difficulty"] * (1 + 1e-12)
    top = cases["maximum U256 target (all 0xff) is below threshold -> unchanged"]
    target = int.from_bytes(bytes.fromhex(top["input"]["target_le_hex"]), "little")
    assert miner_difficulty(target) == pytest.approx(top["derived_difficulty"], rel=1e-12)
    assert miner_difficulty(target) == pytest.approx(DIFF1_TARGET / target, rel=1e-12)

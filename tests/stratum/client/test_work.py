"""Miner-side work building on real Stratum material: job → coinbase → merkle root → header → hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pithead.chain.compact import bits_to_target
from pithead.chain.hashes import display_hex, from_display_hex, prevhash_to_stratum
from pithead.miner import core
from pithead.stratum.v1.errors import ProtocolViolation, WorkExhausted
from pithead.stratum.v1.work import (
    MinerWork,
    NotifiedJob,
    WorkRoller,
    coinbase,
    deposit_bits,
    merkle_root,
    roll_version,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def _shares() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "stratum_shares.json").read_text())["vectors"]


def _vec(fragment: str) -> dict[str, Any]:
    return next(v for v in _shares() if fragment in v["name"])


def _rolling() -> dict[str, Any]:
    return json.loads((VECTORS / "version_rolling.json").read_text())


def _version_index(bits: int, mask: int) -> int:
    """Inverse of deposit_bits (for picking the unit that carries given version bits)."""
    index, pos = 0, 0
    while mask:
        low = mask & -mask
        if bits & low:
            index |= 1 << pos
        mask ^= low
        pos += 1
    return index


def test_public_pool_bitaxe_share_is_reproduced_end_to_end() -> None:
    vec = _vec("public-pool testnet3")
    given, derived = vec["given"], vec["derived"]
    job = NotifiedJob.from_notify(given["mining.notify_expected"]["params"])
    mask = int(given["mining.configure_response"]["result"]["version-rolling.mask"], 16)
    work = MinerWork(job, bytes.fromhex(given["extranonce1"]), given["extranonce2_size"], 512.0, mask)
    worker, job_id, en2, ntime, nonce, vbits = given["mining.submit"]["params"]
    assert job.job_id == job_id and display_hex(job.prevhash) == derived["prev_block_hash_display"]
    assert coinbase(job, work.extranonce1, bytes.fromhex(en2)).hex() == derived["coinbase_tx_hex"]
    assert merkle_root(job, work.extranonce1, bytes.fromhex(en2)).hex() == derived["merkle_root_internal_hex"]

    unit = work.unit(int(en2, 16), int(ntime, 16) - job.ntime, _version_index(int(vbits, 16), mask))
    assert f"{unit.version:08x}" == derived["rolled_version_hex"]
    assert unit.header76.hex() == derived["header_hex"][:152]
    share = unit.share(int(nonce, 16))
    assert display_hex(share.hash) == derived["share_hash"]
    assert share.difficulty == pytest.approx(derived["share_difficulty"], rel=1e-12)
    assert share.submit_params(worker) == given["mining.submit"]["params"]

    # The native core finds that nonce in a range straddling it, at the session's share target (diff 512).
    hits = core.scan(unit.header76, int(nonce, 16) - 40_000, 80_000, work.share_target)
    assert int(nonce, 16) in hits
    for h in hits:
        assert unit.share(h).difficulty >= 512


def test_esp_miner_slush_job_gives_difficulty_683() -> None:
    vec = _vec("difficulty 683")
    g, d = vec["given"], vec["derived"]
    cb = bytes.fromhex(g["coinbase_tx_hex"])
    params = [
        "x", g["prevhash_stratum"], cb.hex(), "", g["merkle_branch"], g["version"], g["nbits"], g["ntime"], False
    ]
    job = NotifiedJob.from_notify(params)
    assert merkle_root(job, b"", b"").hex() == g["expected_merkle_root_internal_hex"]
    work = MinerWork(job, b"", 0, 1.0, 0)
    unit = work.unit(0)
    assert unit.header76.hex() == d["header_hex"][:152]
    share = unit.share(int(g["nonce"], 16))
    assert display_hex(share.hash) == d["share_hash"]
    assert int(share.difficulty) == g["expected_difficulty_truncated"]
    assert share.submit_params("w") == ["w", "x", "", g["ntime"], g["nonce"]]  # no version bits: not negotiated


def test_miningcore_regtest_share_is_the_recorded_block() -> None:
    vec = _vec("Miningcore")
    g, d = vec["given"], vec["derived"]
    cb_hex = d["coinbase_tx_hex"]
    en1, en2 = g["extranonce1"], g["submit"]["extranonce2"]
    cut = cb_hex.index(en1 + en2)
    tpl = g["blocktemplate"]
    params = [
        "1",
        prevhash_to_stratum(from_display_hex(tpl["PreviousBlockhash"])),
        cb_hex[:cut],
        cb_hex[cut + len(en1 + en2) :],
        [],
        f"{tpl['Version']:08x}",
        tpl["Bits"],
        f"{tpl['CurTime']:08x}",
        True,
    ]
    job = NotifiedJob.from_notify(params)
    work = MinerWork(job, bytes.fromhex(en1), 4, g["worker_difficulty"], 0)
    unit = work.unit(int(en2, 16), int(g["submit"]["ntime"], 16) - job.ntime)
    assert unit.header76.hex() == d["header_hex"][:152]
    share = unit.share(int(g["submit"]["nonce"], 16))
    assert display_hex(share.hash) == g["expected_block_hash"]
    # A regtest block candidate: the hash meets the template's nBits target, and the core finds it there.
    block_target = bits_to_target(int(tpl["Bits"], 16))
    assert int.from_bytes(share.hash, "little") <= block_target
    assert share.nonce in core.scan(unit.header76, share.nonce - 100, 200, block_target)


def test_slush_documentation_coinbase_and_merkle_root() -> None:
    vec = _vec("Slush Stratum V1 documentation")
    g, d = vec["given"], vec["derived"]
    job = NotifiedJob.from_notify(g["mining.notify"]["params"])
    cc = g["coinbase_construction"]
    en1, en2 = bytes.fromhex(cc["extranonce1"]), bytes.fromhex(cc["extranonce2"])
    assert coinbase(job, en1, en2).hex() == cc["expected_coinbase_hex"]
    assert merkle_root(job, en1, en2).hex() == d["no_branch_merkle_root_internal_hex"]
    assert display_hex(job.prevhash) == d["prev_block_hash_display"]
    mt = g["merkle_root_test"]
    branched = NotifiedJob.from_notify([*g["mining.notify"]["params"][:4], mt["merkle_branch"], *g["mining.notify"]["params"][5:]])
    assert merkle_root(branched, en1, en2).hex() == mt["expected_merkle_root_internal_hex"]


def test_esp_miner_notify_parse_and_ten_param_variant() -> None:
    vec = _vec("parser tests")
    g = vec["given"]
    params = g["mining.notify"]["params"]
    job = NotifiedJob.from_notify(params)
    exp = g["expected_parse"]
    assert (job.job_id, job.version, job.nbits, job.ntime, job.clean_jobs, len(job.merkle_branch)) == (
        exp["job_id"], exp["version"], exp["nbits"], exp["ntime"], exp["clean_jobs"], exp["merkle_branch_count"]
    )
    assert display_hex(job.prevhash) == vec["derived"]["prev_block_hash_display"]
    ten = [*params[:7], params[7], params[7], True]
    assert NotifiedJob.from_notify(ten).clean_jobs is True


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[:8],  # too few params
        lambda p: [123, *p[1:]],  # job id not a string
        lambda p: ["", *p[1:]],  # empty job id
        lambda p: [p[0], p[1][:-2], *p[2:]],  # short prevhash
        lambda p: [*p[:2], "zz", *p[3:]],  # coinb1 not hex
        lambda p: [*p[:4], ["00" * 31], *p[5:]],  # branch entry of 31 bytes
        lambda p: [*p[:4], ["00" * 32] * 33, *p[5:]],  # branch too deep
        lambda p: [*p[:5], "2000000", *p[6:]],  # version of 7 digits
        lambda p: [*p[:6], "1705c73g", *p[7:]],  # nbits not hex
        lambda p: [*p[:8], "yes"],  # clean_jobs not a bool
        lambda p: "not a list",
    ],
)
def test_malformed_notify_is_a_typed_error(mutate: Any) -> None:
    params = _vec("parser tests")["given"]["mining.notify"]["params"]
    with pytest.raises(ProtocolViolation):
        NotifiedJob.from_notify(mutate(list(params)))


def test_bip310_version_formula_vectors() -> None:
    data = _rolling()
    shares = [v for v in data["vectors"] if "expected_nversion" in v]
    assert shares
    for v in shares:
        got = roll_version(int(v["job_version"], 16), int(v["mask"], 16), int(v["version_bits"], 16))
        assert f"{got:08x}" == v["expected_nversion"]
    block = next(v for v in data["vectors"] if "881423" in v["name"])
    dv = block["derived"]
    got = roll_version(int(dv["assumed_job_version"], 16), int(data["bip320"]["general_purpose_mask"], 16), int(dv["version_bits"], 16))
    assert f"{got:08x}" == block["nversion"] == dv["roundtrip"]
    # Bits outside the mask never leak into the header, whatever the miner sends.
    assert roll_version(0x20000000, 0x1FFFE000, 0xFFFFFFFF) == 0x3FFFE000


def test_version_rolling_walks_the_mask_like_esp_miner() -> None:
    v = next(x for x in _rolling()["vectors"] if "increment_bitmask" in x["name"])
    start, mask = int(v["start"], 16), int(v["mask"], 16)
    job = NotifiedJob("j", bytes(32), b"", b"", (), start, 0x1D00FFFF, 0, False)
    work = MinerWork(job, b"", 0, 1.0, mask)
    got = [f"{work.unit(0, 0, i).version:08x}" for i in range(1, len(v["expected_sequence"]) + 1)]
    assert got == v["expected_sequence"]
    assert work.unit(0, 0, 0).version == start  # index 0 is the job's own version
    assert deposit_bits(0b101, 0b1011_0000) == 0b1000_0000 | 0b1_0000


def test_roller_hands_out_distinct_units_versions_first_then_extranonce2_then_ntime() -> None:
    job = NotifiedJob("j", bytes(32), b"\x01", b"\x02", (), 0x20000000, 0x207FFFFF, 1000, False)
    work = MinerWork(job, b"\xaa", 1, 1.0, 0x00006000)  # 4 version choices, 256 extranonce2 values
    roller = WorkRoller(work, max_ntime_roll=1)
    units = [roller.next_unit() for _ in range(4 * 256 * 2)]
    assert len({u.header76 for u in units}) == len(units)
    assert [u.version for u in units[:5]] == [0x20000000, 0x20002000, 0x20004000, 0x20006000, 0x20000000]
    assert units[4].extranonce2 == b"\x01" and units[0].extranonce2 == b"\x00"
    assert units[4 * 256].ntime == 1001 and units[4 * 256 - 1].ntime == 1000
    with pytest.raises(WorkExhausted):
        roller.next_unit()


def test_submit_params_carry_version_bits_only_when_negotiated() -> None:
    job = NotifiedJob("abc", bytes(32), b"", b"", (), 0x20000000, 0x207FFFFF, 0x5F5E1000, False)
    rolled = MinerWork(job, b"\x00\x01", 4, 1.0, 0x1FFFE000).unit(7, 3, 2).share(0x0A)
    assert rolled.submit_params("me.w1") == ["me.w1", "abc", "00000007", "5f5e1003", "0000000a", "00004000"]
    plain = MinerWork(job, b"\x00\x01", 4, 1.0, 0).unit(7).share(0xDEADBEEF)
    assert plain.submit_params("me.w1") == ["me.w1", "abc", "00000007", "5f5e1000", "deadbeef"]


def test_roller_can_continue_a_counter_so_a_reissued_job_gets_new_headers() -> None:
    job = NotifiedJob("j", bytes(32), b"\x01", b"\x02", (), 0x20000000, 0x207FFFFF, 1000, False)
    first = WorkRoller(MinerWork(job, b"\xaa", 2, 1.0, 0x6000, generation=1))
    seen = {first.next_unit().header76 for _ in range(10)}
    # The pool re-sends the same job (say after a difficulty change): same coinbase, same headers space.
    again = WorkRoller(MinerWork(job, b"\xaa", 2, 2.0, 0x6000, generation=2), start=first.handed_out)
    assert not seen & {again.next_unit().header76 for _ in range(10)}
    assert WorkRoller(MinerWork(job, b"\xaa", 0, 1.0, 0), max_ntime_roll=3, start=99).handed_out == 0  # wraps

"""Real Stratum exchanges replayed: every share judged the way the real pool judged it.

Vectors (tests/vectors/stratum_shares.json, version_rolling.json, with provenance): the public-pool
testnet Bitaxe session (configure → subscribe → authorize → suggest 512 → a rolled share at diff 669.87,
accepted), the ESP-Miner/Slush mainnet job (diff 683), the Miningcore regtest block candidate and its five
reject cases, Slush's documented coinbase/merkle example, and BIP310's negotiation examples.
"""

from __future__ import annotations

import orjson
import pytest

from pithead.chain.compact import bits_to_target, difficulty_to_target
from pithead.chain.hashes import display_hex, from_display_hex, prevhash_from_stratum, sha256d
from pithead.chain.merkle import fold_branch
from pithead.chain.params import REGTEST, TESTNET
from pithead.chain.tx import TxOut
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.share import Submission, check_share
from pithead.stratum.v1.errors import rejection
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v1.pool import BlockFound, PoolRules, PoolSession, ShareJudged
from pithead.stratum.v1.wire import decode, parse_submit, version_rolling_result
from pithead.stratum.version import FULL_MASK, negotiate, rolled_version
from pithead.template.block_template import BlockTemplate, TemplateTx
from pithead.template.job import Job, build_job

from .helpers import load, share_vector


def _lines(data: bytes) -> list[dict]:
    return [orjson.loads(x) for x in data.splitlines() if x]


def _req(obj: dict) -> bytes:
    return orjson.dumps(obj) + b"\n"


# --- public-pool: the recorded Bitaxe session ---------------------------------------------------------


def _public_pool_template(v: dict) -> BlockTemplate:
    gbt = v["given"]["getblocktemplate"]
    txs = tuple(
        TemplateTx(b"", from_display_hex(t["txid"]), from_display_hex(t["hash"]), 0, 0, 0, ())
        for t in gbt["transactions_txid_hash_fee_weight"]
    )
    return BlockTemplate(
        version=gbt["version"],
        prev_hash=from_display_hex(gbt["previousblockhash"]),
        height=gbt["height"],
        bits=int(gbt["bits"], 16),
        target=int(gbt["target"], 16),
        curtime=gbt["curtime"],
        mintime=gbt["mintime"],
        coinbase_value=gbt["coinbasevalue"],
        transactions=txs,
        rules=tuple(gbt["rules"]),
        # public-pool puts its tag right after the BIP34 height, where our builder puts coinbaseaux flags
        coinbase_aux_flags=b"\\public-pool\\",
        default_witness_commitment=bytes.fromhex(gbt["default_witness_commitment"]),
    )


def test_public_pool_notify_rebuilt_from_the_template_exactly() -> None:
    v = share_vector("public-pool testnet3")
    tpl = _public_pool_template(v)
    script = bytes.fromhex("0014e6f22ca44dc800e9d049621a3b9a42c509f1c4bc")
    job = build_job(
        tpl,
        job_id="1",
        outputs=[TxOut(36986, script), TxOut(2428731, script)],
        tag=b"",
        extranonce1_size=4,
        extranonce2_size=4,
        ntime=0x64B3F3EC,
    )
    expected = v["given"]["mining.notify_expected"]
    assert job.notify_params(False) == expected["params"]
    assert tpl.witness_commitment().hex() == v["derived"]["witness_commitment_from_template_wtxids"]


def _public_pool_job(v: dict) -> Job:
    p = v["given"]["mining.notify_expected"]["params"]
    gbt = v["given"]["getblocktemplate"]
    return Job.from_parts(
        job_id=p[0],
        prev_hash=prevhash_from_stratum(p[1]),
        coinb1=bytes.fromhex(p[2]),
        coinb2=bytes.fromhex(p[3]),
        extranonce1_size=4,
        extranonce2_size=v["given"]["extranonce2_size"],
        branch=[bytes.fromhex(b) for b in p[4]],
        version=int(p[5], 16),
        bits=int(p[6], 16),
        ntime=int(p[7], 16),
        mintime=gbt["mintime"],
        height=gbt["height"],
        has_witness_commitment=True,
    )


def test_public_pool_bitaxe_session_replayed() -> None:
    v = share_vector("public-pool testnet3")
    g = v["given"]
    job = _public_pool_job(v)
    book = JobBook(mode="pool", pool_script=b"\x51")
    book.add_job(job)
    rules = PoolRules(mode="solo", network=TESTNET, vardiff=VarDiffConfig(10.0, 0.001, 1e9))
    now = g["getblocktemplate"]["curtime"]
    s = PoolSession(rules, book, ExtranonceAllocator(), now)

    # configure: Bitaxe asks for ffffffff, the pool answers 1fffe000 (the exact line public-pool sent)
    s.receive(_req(g["mining.configure"]), now)
    assert _lines(s.data_to_send()) == [g["mining.configure_response"]]
    # subscribe with the recorded extranonce1 as the resumed session id
    sub = dict(g["mining.subscribe"])
    sub["params"] = [*sub["params"], g["extranonce1"]]
    s.receive(_req(sub), now)
    (reply,) = _lines(s.data_to_send())
    assert reply["error"] is None
    assert reply["result"][1] == g["extranonce1"] and reply["result"][2] == g["extranonce2_size"]
    assert reply["result"][0] == [["mining.set_difficulty", g["extranonce1"]], ["mining.notify", g["extranonce1"]]]
    s.receive(_req(g["mining.authorize"]), now)
    out = _lines(s.data_to_send())
    assert out[0] == {"id": 3, "result": True, "error": None}
    # suggest 512 after authorize → set_difficulty 512, sent as an integer
    s.receive(_req(g["mining.suggest_difficulty"]), now)
    out = _lines(s.data_to_send())
    assert {"id": 4, "result": True, "error": None} in out
    assert g["set_difficulty_after_suggest"] in out
    # the real share: accepted at 512 with version bits 00002000 → nVersion 20002000
    events = s.receive(_req(g["mining.submit"]), now)
    assert _lines(s.data_to_send()) == [g["submit_result"] | {"result": True}]
    (judged,) = [e for e in events if isinstance(e, ShareJudged)]
    assert judged.accepted and judged.difficulty == 512 and not judged.is_block
    assert judged.share_difficulty == pytest.approx(v["derived"]["share_difficulty"], rel=1e-12)
    # the same share again is a duplicate (22)
    s.receive(_req(g["mining.submit"] | {"id": 6}), now)
    (dup,) = _lines(s.data_to_send())
    assert dup["error"][0] == 22 and dup["result"] is None


def test_public_pool_share_header_and_hash() -> None:
    v = share_vector("public-pool testnet3")
    job = _public_pool_job(v)
    en1 = bytes.fromhex(v["given"]["extranonce1"])
    sub = parse_submit(tuple(v["given"]["mining.submit"]["params"]))
    version = rolled_version(job.version, sub.version_bits or 0, 0x1FFFE000)
    assert f"{version:08x}" == v["derived"]["rolled_version_hex"]
    header = job.header(en1, sub.extranonce2, sub.ntime, sub.nonce, version)
    assert header.serialize().hex() == v["derived"]["header_hex"]
    assert header.hash_hex() == v["derived"]["share_hash"]
    # judged at a difficulty above what it reached → low difficulty (23)
    verdict = check_share(job, sub, extranonce1=en1, version_mask=0x1FFFE000,
                          share_target=difficulty_to_target(1000), now=v["given"]["getblocktemplate"]["curtime"])
    assert not verdict.accepted and verdict.reason is not None and rejection(verdict.reason).code == 23
    # without negotiated rolling the same bits are refused (never silently ignored)
    verdict = check_share(job, sub, extranonce1=en1, version_mask=0,
                          share_target=difficulty_to_target(1), now=v["given"]["getblocktemplate"]["curtime"])
    assert verdict.reason == "version-rolling-not-negotiated"


# --- ESP-Miner / Slush mainnet job: diff 683 -----------------------------------------------------------


def test_esp_miner_slush_share_difficulty_683() -> None:
    v = share_vector("ESP-Miner (Bitaxe firmware) unit test")
    g = v["given"]
    cb = bytes.fromhex(g["coinbase_tx_hex"])
    k = 60  # any split point: the coinbase bytes are what is hashed
    job = Job.from_parts(
        job_id="x", prev_hash=prevhash_from_stratum(g["prevhash_stratum"]), coinb1=cb[:k], coinb2=cb[k + 8 :],
        extranonce1_size=4, extranonce2_size=4, branch=[bytes.fromhex(b) for b in g["merkle_branch"]],
        version=int(g["version"], 16), bits=int(g["nbits"], 16), ntime=int(g["ntime"], 16),
    )
    en1, en2 = cb[k : k + 4], cb[k + 4 : k + 8]
    assert job.merkle_root(en1, en2).hex() == g["expected_merkle_root_internal_hex"]
    sub = Submission("w", "x", en2, int(g["ntime"], 16), int(g["nonce"], 16), None)
    ok = check_share(job, sub, extranonce1=en1, version_mask=0, share_target=difficulty_to_target(683),
                     now=int(g["ntime"], 16))
    assert ok.accepted and int(ok.share_difficulty) == g["expected_difficulty_truncated"]
    assert not ok.is_block  # 683 is far from the mainnet target
    low = check_share(job, sub, extranonce1=en1, version_mask=0, share_target=difficulty_to_target(684),
                      now=int(g["ntime"], 16))
    assert low.reason == "low-difficulty"


# --- Miningcore regtest block candidate and its five rejects -------------------------------------------


def _miningcore() -> tuple[dict, Job, bytes]:
    v = share_vector("Miningcore")
    g = v["given"]
    t = g["blocktemplate"]
    cb = bytes.fromhex(v["derived"]["coinbase_tx_hex"])
    en1 = bytes.fromhex(g["extranonce1"])
    en2 = bytes.fromhex(g["submit"]["extranonce2"])
    i = cb.index(en1 + en2)
    job = Job.from_parts(
        job_id="1", prev_hash=from_display_hex(t["PreviousBlockhash"]), coinb1=cb[:i], coinb2=cb[i + 8 :],
        extranonce1_size=4, extranonce2_size=4, branch=[], version=t["Version"], bits=int(t["Bits"], 16),
        ntime=t["CurTime"], mintime=t["CurTime"], height=t["Height"], coinbase_value=t["CoinbaseValue"],
    )
    return v, job, en1


def _miningcore_session(now: int) -> tuple[PoolSession, JobBook]:
    _v, job, en1 = _miningcore()
    book = JobBook(mode="pool", pool_script=b"\x51")
    book.add_job(job)
    rules = PoolRules(mode="pool", network=REGTEST, user_rule="any", vardiff=VarDiffConfig(10.0, 0.001, 1e9))
    s = PoolSession(rules, book, ExtranonceAllocator(), now)
    s.receive(_req({"id": 1, "method": "mining.subscribe", "params": ["test", en1.hex()]}), now)
    s.receive(_req({"id": 2, "method": "mining.authorize", "params": ["worker", "d=0.5"]}), now)
    s.data_to_send()
    return s, book


def _submit(s: PoolSession, sub: dict, now: int, msg_id: int = 10) -> tuple[dict, list]:
    events = s.receive(
        _req({"id": msg_id, "method": "mining.submit",
              "params": ["worker", "1", sub["extranonce2"], sub["ntime"], sub["nonce"]]}), now
    )
    (reply,) = _lines(s.data_to_send())
    return reply, events


def test_miningcore_block_candidate_is_built_exactly() -> None:
    v, _, _ = _miningcore()
    g = v["given"]
    s, _ = _miningcore_session(g["submission_clock_unix"])
    reply, events = _submit(s, g["submit"], g["submission_clock_unix"])
    assert reply == {"id": 10, "result": True, "error": None}
    (judged,) = [e for e in events if isinstance(e, ShareJudged)]
    assert judged.accepted and judged.is_block and judged.difficulty == g["expected_share_difficulty_recorded"]
    (found,) = [e for e in events if isinstance(e, BlockFound)]
    assert found.block.hex() == g["expected_block_hex"]
    assert display_hex(found.block_hash) == g["expected_block_hash"]


@pytest.mark.parametrize("case", range(5))
def test_miningcore_rejects(case: int) -> None:
    v, _, _ = _miningcore()
    g = v["given"]
    rej = g["rejections"][case]
    now = g["submission_clock_unix"]
    s, _ = _miningcore_session(now)
    if "duplicate" in rej["case"]:
        first, _ = _submit(s, g["submit"], now, 9)
        assert first["result"] is True
    if "server clock" in rej["case"]:
        now = 1408869907
    reply, events = _submit(s, rej["submit"], now)
    assert reply["result"] is None and reply["error"] is not None
    code, message, data = reply["error"]
    assert data is None and isinstance(message, str)
    expected = {
        "extranonce2": ("low-difficulty", 23),
        "duplicate": ("duplicate", 22),
        "ntime 69": ("ntime-too-new", 20),
        "wrong nonce": ("low-difficulty", 23),
        "server clock": ("ntime-too-new", 20),
    }
    (reason, want_code), = [val for key, val in expected.items() if key in rej["case"]]
    assert code == want_code
    (judged,) = [e for e in events if isinstance(e, ShareJudged)]
    assert not judged.accepted and judged.reason == reason
    assert not any(isinstance(e, BlockFound) for e in events)


# --- Slush documented example --------------------------------------------------------------------------


def test_slush_coinbase_and_merkle_root() -> None:
    v = share_vector("Slush Stratum V1 documentation")
    g = v["given"]
    c = g["coinbase_construction"]
    p = g["mining.notify"]["params"]
    job = Job.from_parts(
        job_id=p[0], prev_hash=prevhash_from_stratum(p[1]), coinb1=bytes.fromhex(p[2]), coinb2=bytes.fromhex(p[3]),
        extranonce1_size=4, extranonce2_size=4, branch=[], version=int(p[5], 16), bits=int(p[6], 16),
        ntime=int(p[7], 16),
    )
    en1, en2 = bytes.fromhex(c["extranonce1"]), bytes.fromhex(c["extranonce2"])
    assert job.coinbase.serialize(en1, en2).hex() == c["expected_coinbase_hex"]
    assert job.notify_params(False) == p
    assert job.merkle_root(en1, en2).hex() == v["derived"]["no_branch_merkle_root_internal_hex"]
    m = g["merkle_root_test"]
    root = fold_branch(sha256d(bytes.fromhex(m["coinbase_hex"])), [bytes.fromhex(b) for b in m["merkle_branch"]])
    assert root.hex() == m["expected_merkle_root_internal_hex"]


def test_slush_notify_parses_as_a_request() -> None:
    v = share_vector("ESP-Miner: real Slush mainnet mining.notify")
    msg = decode(orjson.dumps(v["given"]["mining.notify"]))
    assert msg.method == "mining.notify"  # type: ignore[union-attr]
    assert len(msg.params[4]) == v["given"]["expected_parse"]["merkle_branch_count"]  # type: ignore[union-attr]


# --- BIP310 version rolling ----------------------------------------------------------------------------


def _vr(prefix: str) -> dict:
    for v in load("version_rolling.json")["vectors"]:
        if v["name"].startswith(prefix):
            return v  # type: ignore[no-any-return]
    raise KeyError(prefix)


def test_bip310_configure_example() -> None:
    v = _vr("BIP310 mining.configure example")
    opts = v["request"]["params"][1]
    expected_mask = int(v["response_success"]["result"]["version-rolling.mask"], 16)
    # the BIP's server allows 18000000: answering pool ∧ miner gives the BIP's answer
    ans = negotiate(0x18000000, int(opts["version-rolling.mask"], 16), opts["version-rolling.min-bit-count"])
    assert version_rolling_result(ans) == v["response_success"]["result"] and ans.mask == expected_mask
    # a pool mask leaving fewer bits than min-bit-count refuses rolling
    assert version_rolling_result(negotiate(0x08000000, 0x1FFFE000, 2)) == v["response_unknown_extension"]["result"]
    # through a session: the answer line
    rules = PoolRules(mode="solo", network=REGTEST, version_mask=0x18000000)
    s = PoolSession(rules, JobBook(mode="solo"), ExtranonceAllocator(), 0)
    s.receive(_req(v["request"]), 0)
    assert _lines(s.data_to_send()) == [v["response_success"]]


def test_public_pool_configure_line() -> None:
    v = _vr("public-pool: Bitaxe asks for mask ffffffff")
    s = PoolSession(PoolRules(mode="solo", network=REGTEST), JobBook(mode="solo"), ExtranonceAllocator(), 0)
    s.receive(_req(v["request"]), 0)
    assert orjson.loads(s.data_to_send()) == orjson.loads(v["expected_response_line"])


def test_set_version_mask_notification() -> None:
    v = _vr("BIP310 mining.set_version_mask")
    s = PoolSession(PoolRules(mode="solo", network=REGTEST, version_mask=FULL_MASK), JobBook(mode="solo"),
                    ExtranonceAllocator(), 0)
    s.receive(_req({"id": 1, "method": "mining.configure", "params": [["version-rolling"], {}]}), 0)
    s.data_to_send()
    s.set_version_mask(int(v["expected_mask"], 16))
    assert _lines(s.data_to_send()) == [v["notification"]]
    assert s.version_mask == int(v["expected_mask"], 16)


@pytest.mark.parametrize("name", ["public-pool testnet share", "mainnet block 881423"])
def test_rolled_versions(name: str) -> None:
    v = _vr(name)
    if "job_version" in v:
        job_v, bits, want = v["job_version"], v["version_bits"], v["expected_nversion"]
    else:
        job_v, bits, want = v["derived"]["assumed_job_version"], v["derived"]["version_bits"], v["nversion"]
    assert f"{rolled_version(int(job_v, 16), int(bits, 16), 0x1FFFE000):08x}" == want


def test_network_target_of_miningcore_job() -> None:
    _, job, _ = _miningcore()
    assert job.network_target == bits_to_target(0x207FFFFF)

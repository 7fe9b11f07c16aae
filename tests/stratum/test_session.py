"""The pool session's state machine: every (state, input) pair of the transition table, and the flows
real miners use (ESP-Miner, old ESP-Miner, cgminer, NerdMiner), difficulty handover, resume, extranonce."""

from __future__ import annotations

import orjson
import pytest

from pithead.chain.compact import difficulty_to_target
from pithead.chain.params import REGTEST
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.v1.errors import StratumError
from pithead.stratum.v1.jobs import MAX_GENERATIONS, JobBook
from pithead.stratum.v1.pool import (
    BANNED,
    INPUTS,
    LOST,
    METHODS,
    RESPONSE,
    TRANSITIONS,
    UNFRAMEABLE,
    UNKNOWN,
    Allow,
    BlockFound,
    Close,
    CloseRequested,
    Gone,
    Ignore,
    PoolEvent,
    PoolRules,
    PoolSession,
    PoolState,
    Refuse,
    ShareJudged,
)
from pithead.stratum.v1.wire import Request, decode

from .helpers import SOLO_ADDRESS, find_nonces, header_for, regtest_template, solo_script

NOW = 1_700_000_000.0
HARD = 0x1D00FFFF  # difficulty-1 network target: tiny-difficulty shares are not blocks


def lines(data: bytes) -> list[dict]:
    return [orjson.loads(x) for x in data.splitlines() if x]


def req(i: object, method: str, params: list) -> bytes:
    return orjson.dumps({"id": i, "method": method, "params": params}) + b"\n"


def make(mode: str = "solo", **rules_kw: object) -> tuple[PoolSession, JobBook]:
    book = JobBook(mode=mode, pool_script=solo_script() if mode == "pool" else None)  # type: ignore[arg-type]
    book.new_template(regtest_template(bits=HARD))
    rules = PoolRules(mode=mode, network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9), **rules_kw)  # type: ignore[arg-type]
    return PoolSession(rules, book, ExtranonceAllocator(), NOW), book


# A representative, valid request for each method (submit uses a job id that does not exist: in READY
# it must get "job not found", proving the call was allowed).
SAMPLE = {
    "mining.configure": [["version-rolling"], {"version-rolling.mask": "ffffffff"}],
    "mining.subscribe": ["test/1.0"],
    "mining.authorize": [SOLO_ADDRESS + ".rig", "x"],
    "mining.suggest_difficulty": [4],
    "mining.extranonce.subscribe": [],
    "mining.submit": [SOLO_ADDRESS + ".rig", "zz", "00000000", "6553f100", "00000000"],
    "mining.ping": [],
    "client.get_version": [],
    UNKNOWN: [],
}


def drive_to(state: PoolState) -> PoolSession:
    """A session brought to `state` the way a miner (or the shell) brings it there."""
    s, _ = make()
    if state in (PoolState.SUBSCRIBED, PoolState.READY, PoolState.CLOSED):
        s.receive(req(1, "mining.subscribe", ["t"]), NOW)
    if state in (PoolState.AUTHORIZED, PoolState.READY):
        s.receive(req(2, "mining.authorize", [SOLO_ADDRESS + ".rig", "x"]), NOW)
    if state is PoolState.CLOSED:
        s.close()
    s.data_to_send()
    assert s.state is state
    return s


def test_table_is_complete() -> None:
    assert set(TRANSITIONS) == {(st, m) for st in PoolState for m in INPUTS}
    assert len(set(INPUTS)) == len(INPUTS)


def test_every_state_is_left_only_through_the_table() -> None:
    """READY is entered by whichever of subscribe and authorize completes the pair, and then the first
    work goes out; CLOSED is entered only by the session inputs."""
    into_ready = {k for k, r in TRANSITIONS.items() if isinstance(r, Allow) and r.next_state is PoolState.READY}
    assert into_ready == {(PoolState.SUBSCRIBED, "mining.authorize"), (PoolState.AUTHORIZED, "mining.subscribe")}
    assert all(TRANSITIONS[k].then is PoolSession._start_work for k in into_ready)  # type: ignore[union-attr]
    into_closed = {k for k, r in TRANSITIONS.items() if isinstance(r, Close | Gone)}
    assert {m for _, m in into_closed} == {UNFRAMEABLE, BANNED, LOST}


@pytest.mark.parametrize("state", list(PoolState))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_state_method_pair(state: PoolState, method: str) -> None:
    s = drive_to(state)
    name = "mining.bogus" if method == UNKNOWN else method
    line = req(7, name, SAMPLE[method])
    if state is PoolState.CLOSED:  # a closed session reads nothing: straight to the table
        events: list[PoolEvent] = []
        request = decode(line)
        assert isinstance(request, Request)
        s.handle(request, NOW, events)
    else:
        events = s.receive(line, NOW)
    out = lines(s.data_to_send())
    rule = TRANSITIONS[(state, method)]
    if isinstance(rule, Ignore):
        assert out == [] and events == [] and s.state is state
        return
    reply = out[0]
    assert reply["id"] == 7
    assert "error" in reply and "result" in reply  # both always present
    if isinstance(rule, Refuse):
        assert reply["result"] is None
        assert reply["error"][0] == rule.error.code and reply["error"][2] is None
        assert s.state is state and len(out) == 1
        return
    assert isinstance(rule, Allow)
    if method == "mining.submit":  # allowed: judged, and the unknown job is reported as such
        assert reply["error"][0] == 21
    else:
        assert reply["error"] is None, reply
    assert s.state is (rule.next_state or state)
    if rule.then is not None:  # entering READY: the difficulty, then a clean job, after the reply
        assert [o.get("method") for o in out[1:]] == ["mining.set_difficulty", "mining.notify"]
        assert out[2]["params"][8] is True


@pytest.mark.parametrize("state", list(PoolState))
@pytest.mark.parametrize("kind", [RESPONSE, UNFRAMEABLE, BANNED, LOST])
def test_every_state_session_input_pair(state: PoolState, kind: str) -> None:
    s = drive_to(state)
    en1 = s.extranonce1
    events: list[PoolEvent] = []
    s.session_input(kind, "why", events)
    rule = TRANSITIONS[(state, kind)]
    assert s.data_to_send() == b""  # none of these is answered
    if isinstance(rule, Ignore):
        assert events == [] and s.state is state
    elif isinstance(rule, Close):
        assert events == [CloseRequested("why", rule.ban)] and s.state is PoolState.CLOSED
        assert s.close_reason == "why"
    else:
        assert isinstance(rule, Gone)
        assert events == [] and s.state is PoolState.CLOSED
        assert en1 is None or not s.allocator.in_use(en1)  # free for a resuming miner


@pytest.mark.parametrize("state", [st for st in PoolState if st is not PoolState.CLOSED])
def test_session_inputs_arrive_the_way_the_table_says(state: PoolState) -> None:
    """The same inputs fed for real: a response line, an over-long line, a flood of junk, a lost
    connection."""
    s = drive_to(state)
    assert s.receive(b'{"id":"s1","result":"pithead-miner/1","error":null}\n', NOW) == []
    assert s.data_to_send() == b"" and s.state is state
    assert s.receive(b"x" * 20_000, NOW) == [CloseRequested(f"framing: line longer than {16 * 1024} bytes", False)]
    assert s.state is PoolState.CLOSED
    s = drive_to(state)
    events: list[PoolEvent] = []
    for _ in range(20):
        events += s.receive(b"[1,2,3]\n", NOW)
    assert [e for e in events if isinstance(e, CloseRequested)] == [
        CloseRequested("too many invalid messages or shares", True)]
    s = drive_to(state)
    s.close()
    assert s.state is PoolState.CLOSED


def test_unknown_method_is_answered_never_silent() -> None:
    s = drive_to(PoolState.READY)
    s.receive(req(9, "mining.get_transactions", []), NOW)
    assert lines(s.data_to_send()) == [{"id": 9, "result": None, "error": [20, "Unknown method", None]}]


def test_malformed_lines_get_an_error_and_count_towards_a_ban() -> None:
    s, _ = make()
    events = s.receive(b"this is not json\n", NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 20 and not events
    for _ in range(20):
        events = s.receive(b"[1,2,3]\n", NOW)
        if events:
            break
    assert any(isinstance(e, CloseRequested) and e.ban for e in events)
    assert s.state is PoolState.CLOSED


def test_over_long_line_closes_without_ban() -> None:
    s, _ = make()
    events = s.receive(b"x" * 20_000, NOW)
    assert [type(e) for e in events] == [CloseRequested] and s.state is PoolState.CLOSED


def test_esp_miner_flow_configure_subscribe_authorize_suggest() -> None:
    s, _book = make()
    s.receive(req(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}])
              + req(2, "mining.subscribe", ["bitaxe/BM1370/v2.4"])
              + req(3, "mining.authorize", [SOLO_ADDRESS + ".bitaxe", "x"]), NOW)
    out = lines(s.data_to_send())
    assert out[0]["result"] == {"version-rolling": True, "version-rolling.mask": "1fffe000"}
    assert out[1]["result"][2] == 4 and len(out[1]["result"][1]) == 8
    assert out[2] == {"id": 3, "result": True, "error": None}
    assert out[3] == {"id": None, "method": "mining.set_difficulty", "params": [1]}
    notify = out[4]
    assert notify["method"] == "mining.notify" and notify["params"][8] is True
    assert len(notify["params"][0]) <= 8 and s.user_agent == "bitaxe/BM1370/v2.4"
    s.receive(req(4, "mining.suggest_difficulty", [1000]), NOW)
    out = lines(s.data_to_send())
    assert out[0] == {"id": 4, "result": True, "error": None}
    assert out[1] == {"id": None, "method": "mining.set_difficulty", "params": [1000]}
    assert out[2]["method"] == "mining.notify"  # the job again, so the new difficulty applies


def test_a_cpu_miner_starts_at_its_class_difficulty() -> None:
    """Issue 19: cpuminer at the pool's start difficulty of 1 found no share in 60 s. Its subscribe names
    it: the first set_difficulty is a CPU's (AGENT_STARTS); its own suggestion still wins; an unnamed
    miner starts where the operator said."""
    s, _ = make()
    s.receive(req(1, "mining.subscribe", ["cpuminer/2.5.1"]) + req(2, "mining.authorize", [SOLO_ADDRESS, "x"]), NOW)
    assert lines(s.data_to_send())[2] == {"id": None, "method": "mining.set_difficulty", "params": [0.001]}
    s, _ = make()
    s.receive(req(1, "mining.suggest_difficulty", [0.5]) + req(2, "mining.subscribe", ["cpuminer/2.5.1"])
              + req(3, "mining.authorize", [SOLO_ADDRESS, "x"]), NOW)
    assert lines(s.data_to_send())[3] == {"id": None, "method": "mining.set_difficulty", "params": [0.5]}
    s, _ = make()
    s.receive(req(1, "mining.subscribe", []) + req(2, "mining.authorize", [SOLO_ADDRESS, "x"]), NOW)
    assert lines(s.data_to_send())[2] == {"id": None, "method": "mining.set_difficulty", "params": [1]}


def test_old_esp_miner_suggest_before_authorize() -> None:
    s, _ = make()
    s.receive(req(1, "mining.subscribe", ["bitaxe 2.1.5"]) + req(2, "mining.suggest_difficulty", [0.25]), NOW)
    assert lines(s.data_to_send())[1] == {"id": 2, "result": True, "error": None}
    s.receive(req(3, "mining.authorize", [SOLO_ADDRESS, ""]), NOW)
    out = lines(s.data_to_send())
    assert out[1] == {"id": None, "method": "mining.set_difficulty", "params": [0.25]}


def test_password_fixed_difficulty_and_bounds() -> None:
    s, _ = make()
    s.receive(req(1, "mining.subscribe", []) + req(2, "mining.authorize", [SOLO_ADDRESS, "x,d=65536"]), NOW)
    out = lines(s.data_to_send())
    assert {"id": None, "method": "mining.set_difficulty", "params": [65536]} in out
    assert s.vardiff.fixed
    s.receive(req(3, "mining.suggest_difficulty", [2]), NOW)  # ignored by a fixed difficulty
    assert s.difficulty == 65536
    s2, _ = make()
    s2.receive(req(1, "mining.subscribe", []) + req(2, "mining.authorize", [SOLO_ADDRESS, "d=1e15"]), NOW)
    assert s2.difficulty == 1e9  # clamped to the pool's max


def test_authorize_rules() -> None:
    s, _ = make()
    s.receive(req(1, "mining.authorize", ["not-an-address.rig", "x"]), NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 24 and s.state is PoolState.NEW
    s.receive(req(2, "mining.authorize", ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "x"]), NOW)
    assert lines(s.data_to_send())[0]["error"][0] == 24  # mainnet address on a regtest pool
    p, _ = make("pool", user_rule="any")
    p.receive(req(1, "mining.authorize", ["alice.rig1", "x"]), NOW)
    assert lines(p.data_to_send())[0]["result"] is True


def test_minimum_difficulty_and_subscribe_extranonce_extensions() -> None:
    s, _ = make()
    s.receive(req(1, "mining.configure", [["minimum-difficulty", "subscribe-extranonce", "foo"],
                                         {"minimum-difficulty.value": 64}]), NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["result"] == {"minimum-difficulty": True, "subscribe-extranonce": True, "foo": False}
    assert s.difficulty == 64 and s.extranonce_subscribed


def _ready(mode: str = "solo", **kw: object) -> tuple[PoolSession, JobBook, dict]:
    s, book = make(mode, **kw)
    s.receive(req(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": "1fffe000"}])
              + req(2, "mining.subscribe", ["t"]) + req(3, "mining.authorize", [SOLO_ADDRESS + ".r", "x"]), NOW)
    notify = [o for o in lines(s.data_to_send()) if o.get("method") == "mining.notify"][-1]
    return s, book, notify


def _mine(s: PoolSession, book: JobBook, job_id: str, diff: float, count: int, vbits: int = 0,
          en2: bytes = b"\0\0\0\1", nonce_from: int = 0) -> list[bytes]:
    ij = book.get(job_id, solo_script() if book.mode == "solo" else None)
    assert ij is not None and s.extranonce1 is not None
    version = ij.job.version | vbits
    h = header_for(ij.job, s.extranonce1, en2, ij.job.ntime, version)
    nonces = find_nonces(h, difficulty_to_target(diff), count, start=nonce_from)
    return [
        req(100 + i, "mining.submit", [SOLO_ADDRESS + ".r", job_id, en2.hex(), f"{ij.job.ntime:08x}",
                                       f"{n:x}", f"{vbits:08x}"])
        for i, n in enumerate(nonces)
    ]


def test_valid_shares_unpadded_nonce_and_version_bits() -> None:
    s, book, notify = _ready()
    s.receive(req(5, "mining.suggest_difficulty", [1e-5]), NOW)
    s.data_to_send()
    msgs = _mine(s, book, notify["params"][0], 1e-5, 3, vbits=0x00002000)
    assert len(msgs) == 3
    for m in msgs:
        events = s.receive(m, NOW)
        (reply,) = [o for o in lines(s.data_to_send()) if "result" in o]
        assert reply["result"] is True and reply["error"] is None, reply
        (j,) = [e for e in events if isinstance(e, ShareJudged)]
        assert j.accepted and j.share_difficulty >= 1e-5 and not j.is_block
        assert not any(isinstance(e, BlockFound) for e in events)


def test_version_bits_outside_mask_rejected() -> None:
    s, book, notify = _ready()
    (m,) = _mine(s, book, notify["params"][0], 1e-6, 1, vbits=0x00001000)
    s.receive(m, NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 20 and "mask" in reply["error"][1]


def test_wrong_extranonce2_size_and_bad_hex_rejected() -> None:
    s, _book, notify = _ready()
    jid = notify["params"][0]
    s.receive(req(9, "mining.submit", [SOLO_ADDRESS + ".r", jid, "0000", "6553f100", "00000000"]), NOW)
    assert lines(s.data_to_send())[0]["error"][0] == 20
    s.receive(req(9, "mining.submit", [SOLO_ADDRESS + ".r", jid, "00000000", "zz", "00000000"]), NOW)
    assert lines(s.data_to_send())[0]["error"][0] == 20
    s.receive(req(9, "mining.submit", [SOLO_ADDRESS + ".other", jid, "00000000", "6553f100", "0"]), NOW)
    assert lines(s.data_to_send())[0]["error"][0] == 24  # worker not authorized on this connection


def test_stale_after_new_block_and_clean_jobs() -> None:
    s, book, notify = _ready()
    old = notify["params"][0]
    msgs = _mine(s, book, old, 1e-6, 1)
    book.new_template(regtest_template(height=102, bits=HARD))
    ij = s.current_job()
    assert ij is not None and ij.job.job_id != old
    line = s.push_job(ij, clean=True)
    assert orjson.loads(line)["params"][8] is True
    s.receive(msgs[0], NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 21


def test_no_reject_storm_after_difficulty_change() -> None:
    """Shares on a job sent at a low difficulty stay acceptable at it after the difficulty is raised;
    new jobs use the new difficulty."""
    s, book, notify = _ready()
    s.receive(req(4, "mining.suggest_difficulty", [1e-5]), NOW)
    s.data_to_send()
    jid = notify["params"][0]
    msgs = _mine(s, book, jid, 1e-5, 1)  # found at 1e-5 on the job sent at 1e-5
    s.receive(req(5, "mining.suggest_difficulty", [1e6]), NOW)
    s.data_to_send()
    assert s.difficulty == 1e6
    s.receive(msgs[0], NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["result"] is True
    book.new_template(regtest_template(height=102, bits=HARD))
    ij = s.current_job()
    assert ij is not None
    s.push_job(ij, clean=True)
    (m,) = _mine(s, book, ij.job.job_id, 1e-5, 1)
    ev = s.receive(m, NOW)
    (j,) = [e for e in ev if isinstance(e, ShareJudged)]
    assert not j.accepted and j.reason == "low-difficulty" and j.difficulty == 1e6


def test_lowering_difficulty_applies_immediately() -> None:
    s, book, _notify = _ready()
    s.receive(req(5, "mining.suggest_difficulty", [1e6]), NOW)
    s.data_to_send()
    book.new_template(regtest_template(height=102, bits=HARD))
    ij = s.current_job()
    assert ij is not None
    s.push_job(ij, clean=True)
    s.receive(req(6, "mining.suggest_difficulty", [1e-5]), NOW)
    s.data_to_send()
    (m,) = _mine(s, book, ij.job.job_id, 1e-5, 1)
    s.receive(m, NOW)
    assert lines(s.data_to_send())[0]["result"] is True


def test_session_resume_and_extranonce_change() -> None:
    alloc = ExtranonceAllocator()
    book = JobBook(mode="solo")
    book.new_template(regtest_template())
    rules = PoolRules(mode="solo", network=REGTEST)
    a = PoolSession(rules, book, alloc, NOW)
    a.receive(req(1, "mining.subscribe", ["m"]), NOW)
    sid = lines(a.data_to_send())[0]["result"][1]
    b = PoolSession(rules, book, alloc, NOW)
    b.receive(req(1, "mining.subscribe", ["m", sid]), NOW)  # still in use → a fresh one
    assert lines(b.data_to_send())[0]["result"][1] != sid
    a.close()
    c = PoolSession(rules, book, alloc, NOW)
    c.receive(req(1, "mining.subscribe", ["m", sid]), NOW)
    assert lines(c.data_to_send())[0]["result"][1] == sid
    # extranonce change: subscribed miners get mining.set_extranonce, others a reconnect
    c.receive(req(2, "mining.extranonce.subscribe", []) + req(3, "mining.authorize", [SOLO_ADDRESS, ""]), NOW)
    c.data_to_send()
    new = alloc.allocate()
    assert c.set_extranonce(new)
    out = lines(c.data_to_send())
    assert out[0] == {"id": None, "method": "mining.set_extranonce", "params": [new.hex(), 4]}
    assert out[1]["method"] == "mining.notify" and out[1]["params"][8] is True
    assert not b.set_extranonce(alloc.allocate())
    assert lines(b.data_to_send())[0]["method"] == "client.reconnect"


def test_server_messages() -> None:
    s, _ = make()
    s.show_message("block found")
    s.reconnect("127.0.0.1", 3334, 5)
    assert lines(s.data_to_send()) == [
        {"id": None, "method": "client.show_message", "params": ["block found"]},
        {"id": None, "method": "client.reconnect", "params": ["127.0.0.1", 3334, 5]},
    ]


def test_invalid_share_flood_bans() -> None:
    s, _book, notify = _ready()
    events: list = []
    bad = req(9, "mining.submit", [SOLO_ADDRESS + ".r", notify["params"][0], "00000000", "00000001", "0"])
    for _ in range(200):
        events = s.receive(bad, NOW)
        if s.state is PoolState.CLOSED:
            break
    assert any(isinstance(e, CloseRequested) and e.ban for e in events)


def test_stale_shares_never_ban() -> None:
    """Shares on jobs this miner was sent never count towards a ban: stale ones (the tip moved), and ones
    whose job has aged out of the pool's book since (job not found) — slow devices do that."""
    s, book, notify = _ready()
    job_id = notify["params"][0]
    for height in range(102, 102 + MAX_GENERATIONS + 1):  # new blocks: the first job is stale, then forgotten
        book.new_template(regtest_template(height=height, bits=HARD))
        s.push_job(book.job_for(s._payout_script()), clean=True)  # type: ignore[arg-type]
        for i in range(20):
            s.receive(req(i, "mining.submit", [SOLO_ADDRESS + ".r", job_id, "00000000", "6553f100", f"{i:x}"]), NOW)
    assert book.get(job_id) is None  # aged out: "job not found" by now
    out = lines(s.data_to_send())
    assert {o["error"][0] for o in out if o.get("id") is not None} == {21}
    assert s.state is PoolState.READY and s.score == 0


def test_a_few_unknown_job_ids_after_a_restart_pass_a_flood_of_them_bans() -> None:
    """Job ids this connection was never sent: a miner's in-flight work from before a pool restart (a few
    shares) is answered "job not found" and forgiven with time; a loop of made-up ids is banned."""
    s, _, _ = _ready()
    for i in range(30):  # an honest reconnect: a burst of in-flight shares on the old connection's jobs
        s.receive(req(i, "mining.submit", [SOLO_ADDRESS + ".r", f"old{i}", "00000000", "6553f100", "0"]), NOW)
    assert s.state is PoolState.READY
    later = NOW + 60  # a minute on, the score has decayed
    events: list = []
    for i in range(20_000):
        events = s.receive(req(i, "mining.submit", [SOLO_ADDRESS + ".r", f"{i:x}z", "00000000", "6553f100", "0"]),
                           later)
        if s.state is PoolState.CLOSED:
            break
    assert s.state is PoolState.CLOSED and i < 200
    assert any(isinstance(e, CloseRequested) and e.ban for e in events)


@pytest.mark.parametrize("spam", [
    ("mining.no_such_method", []),  # an unknown method
    ("mining.subscribe", ["again"]),  # a second subscribe
    ("mining.authorize", ["not-an-address.w", "x"]),  # a failed authorize
])
def test_well_formed_spam_is_banned(spam: tuple[str, list]) -> None:
    """20,000 well-formed but useless requests on one connection: each is answered, and the connection is
    banned within a bounded number of them; one or two (an honest miner's optional method) never are."""
    method, params = spam
    s, _, _ = _ready()
    s.receive(req(1, method, params) + req(2, method, params), NOW)
    assert s.state is PoolState.READY
    events: list = []
    for i in range(20_000):
        events = s.receive(req(i, method, params), NOW + 60)
        if s.state is PoolState.CLOSED:
            break
    assert s.state is PoolState.CLOSED and i < 100
    assert any(isinstance(e, CloseRequested) and e.ban for e in events)


def test_errors_carry_codes() -> None:
    from pithead.stratum.v1 import errors as e

    codes = {c.code for c in (e.OtherError, e.JobNotFound, e.DuplicateShare, e.LowDifficulty,
                              e.Unauthorized, e.NotSubscribed)}
    assert codes == {20, 21, 22, 23, 24, 25}
    assert e.LowDifficulty().wire() == [23, "Low difficulty share", None]
    assert issubclass(e.JobNotFound, StratumError)


def test_every_reject_reason_of_the_share_check_has_its_v1_error() -> None:
    """The share check says why in version-neutral words; V1 answers each with its code and message."""
    from pithead.stratum.share import RejectReason
    from pithead.stratum.v1.errors import rejection

    wire = {r: rejection(r).wire() for r in RejectReason}
    assert wire == {
        RejectReason.JOB_NOT_FOUND: [21, "Job not found", None],
        RejectReason.STALE: [21, "Stale job", None],
        RejectReason.BAD_EXTRANONCE2: [20, "Incorrect size of extranonce2", None],
        RejectReason.NTIME_TOO_OLD: [20, "ntime out of range (too old)", None],
        RejectReason.NTIME_TOO_NEW: [20, "ntime out of range (too new)", None],
        RejectReason.VERSION_ROLLING_NOT_NEGOTIATED: [20, "Version rolling was not negotiated", None],
        RejectReason.BAD_VERSION_BITS: [20, "Version bits outside the negotiated mask", None],
        RejectReason.DUPLICATE: [22, "Duplicate share", None],
        RejectReason.LOW_DIFFICULTY: [23, "Low difficulty share", None],
    }


def test_two_quick_raises_still_accept_a_share_found_before_both() -> None:
    """vardiff's fast phase can raise twice before a share found at the first difficulty arrives (found
    by pithead's own miner in the interop test): it is judged, and credited, at that difficulty."""
    s, book, notify = _ready()
    s.receive(req(4, "mining.suggest_difficulty", [1e-5]), NOW)
    s.data_to_send()
    (m,) = _mine(s, book, notify["params"][0], 1e-5, 1)
    for i, d in enumerate((1e-2, 1e3)):
        s.receive(req(5 + i, "mining.suggest_difficulty", [d]), NOW)
    s.data_to_send()
    events = s.receive(m, NOW)
    assert lines(s.data_to_send())[0]["result"] is True
    (j,) = [e for e in events if isinstance(e, ShareJudged)]
    assert j.accepted and j.difficulty == 1e-5


def test_pipelined_backlog_is_handled_in_bounded_turns_in_order() -> None:
    s, _ = make()
    data = req(1, "mining.subscribe", []) + b"".join(req(i, "mining.ping", []) for i in range(2, 12))
    s.receive(data, NOW, max_lines=4)
    assert [o["id"] for o in lines(s.data_to_send())] == [1, 2, 3, 4]
    assert s.pending_requests == 7
    s.receive(req(12, "mining.ping", []), NOW, max_lines=4)  # more arrives: queued behind the backlog
    assert [o["id"] for o in lines(s.data_to_send())] == [5, 6, 7, 8]
    s.continue_pending(NOW, max_lines=4)
    s.continue_pending(NOW, max_lines=4)
    assert [o["id"] for o in lines(s.data_to_send())] == [9, 10, 11, 12]
    assert s.pending_requests == 0


def test_signalling_bits_inside_the_mask_are_cleared_so_xor_and_bip310_agree() -> None:
    """A template with bit 28 set (regtest's testdummy signal, inside 1fffe000): the job goes out as
    20000000, so ESP-Miner's `rolled ^ job` bits and BIP310's formula give the same nVersion."""
    import dataclasses

    book = JobBook(mode="solo")
    book.new_template(dataclasses.replace(regtest_template(bits=HARD), version=0x30000004))
    s = PoolSession(PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9),
                          start_difficulty=1e-5), book, ExtranonceAllocator(), NOW)
    s.receive(req(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}])
              + req(2, "mining.subscribe", ["bitaxe"]) + req(3, "mining.authorize", [SOLO_ADDRESS + ".r", "x"]), NOW)
    notify = [o for o in lines(s.data_to_send()) if o.get("method") == "mining.notify"][-1]
    assert notify["params"][5] == "20000004"
    rolled = 0x20000004 | 0x00a4e000  # what an ASIC hashed
    (m,) = _mine(s, book, notify["params"][0], 1e-5, 1, vbits=rolled ^ 0x20000004)
    s.receive(m, NOW)
    assert lines(s.data_to_send())[0]["result"] is True


def test_quiet_miner_gets_a_lower_difficulty_on_tick() -> None:
    s, _book, _notify = _ready()
    start = s.difficulty
    assert s.tick(NOW + 5) == []  # too early
    events = s.tick(NOW + 3600)
    out = lines(s.data_to_send())
    assert s.difficulty < start and events
    assert out[0] == {"id": None, "method": "mining.set_difficulty", "params": [s.difficulty]}
    assert out[1]["method"] == "mining.notify" and out[1]["params"][8] is False


def test_rejected_shares_carry_ckpools_reject_reason_and_other_errors_do_not() -> None:
    """cgminer-derived firmware shows `reject-reason` beside a rejected share; the error array stays the
    standard one, and failures of other methods keep the plain shape."""
    s = drive_to(PoolState.READY)
    s.receive(req(7, "mining.submit", SAMPLE["mining.submit"]), NOW)  # job "zz" does not exist
    (reply,) = lines(s.data_to_send())
    assert reply["id"] == 7 and reply["result"] is None
    assert reply["error"] == [21, "Job not found", None] and reply["reject-reason"] == "Job not found"
    s2 = drive_to(PoolState.SUBSCRIBED)  # submit before authorize: refused by the transition table
    s2.receive(req(8, "mining.submit", SAMPLE["mining.submit"]), NOW)
    (reply,) = lines(s2.data_to_send())
    assert reply["error"][0] == 24 and reply["reject-reason"] == reply["error"][1]
    s.receive(req(9, "mining.bogus", []), NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 20 and "reject-reason" not in reply


def test_work_rolled_under_a_narrowed_mask_is_rejected_but_not_held_against_the_miner() -> None:
    """After mining.set_version_mask narrows the mask, a share still in flight with bits the old mask
    allowed gets the usual rejection (BIP310: the new mask applies at once) but adds nothing to the ban
    score; bits no mask ever allowed still count as junk."""
    s, book, notify = _ready()
    s.set_version_mask(0x00FFE000)  # the pool narrows 1fffe000 → 00ffe000
    assert [o["params"] for o in lines(s.data_to_send())] == [["00ffe000"]]
    base = s.score
    (m,) = _mine(s, book, notify["params"][0], 1e-6, 1, vbits=0x10000000)  # allowed before, not now
    s.receive(m, NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 20 and "mask" in reply["error"][1]
    assert s.score == base
    (m,) = _mine(s, book, notify["params"][0], 1e-6, 1, vbits=0x00001000)  # never allowed
    s.receive(m, NOW)
    (reply,) = lines(s.data_to_send())
    assert reply["error"][0] == 20 and s.score > base


def test_default_bounds_honour_a_nerdminers_own_suggestion() -> None:
    """NerdMiner suggests 0.00015 (NerdMiner src/mining.h); with the default [pool] settings it gets it."""
    from pithead.config import PoolConfig
    from pithead.stratum.server.build import rules_from_config

    book = JobBook(mode="solo")
    book.new_template(regtest_template(bits=HARD))
    s = PoolSession(rules_from_config(PoolConfig()), book, ExtranonceAllocator(), NOW)
    s.receive(req(1, "mining.subscribe", ["NerdMinerV2"]) + req(2, "mining.suggest_difficulty", [0.00015])
              + req(3, "mining.authorize", [SOLO_ADDRESS + ".nerd", "x"]), NOW)
    diffs = [o["params"][0] for o in lines(s.data_to_send()) if o.get("method") == "mining.set_difficulty"]
    assert diffs and diffs[-1] == 0.00015


def test_a_made_up_job_id_is_answered_and_scored_but_no_share_event() -> None:
    """Issue 16: a flood of submits for job ids this connection was never sent cost an event to the
    supervisor and the ledger per line. Such a submit is answered (21, job not found) and scored towards a
    ban, but it is no share of the connection's work: no ShareJudged. A job id it was sent still is one."""
    s, _book, notify = _ready()
    events = s.receive(req(9, "mining.submit", [SOLO_ADDRESS + ".r", "zz99", "00000000", notify["params"][7],
                                                "00000000"]), NOW)
    assert not [e for e in events if isinstance(e, ShareJudged)]
    (reply,) = [o for o in lines(s.data_to_send()) if o.get("id") == 9]
    assert reply["error"][0] == 21 and s.penalties > 0
    events = s.receive(req(10, "mining.submit", [SOLO_ADDRESS + ".r", notify["params"][0], "00000000",
                                                 notify["params"][7], "00000000"]), NOW)
    assert [e for e in events if isinstance(e, ShareJudged)]  # judged (low difficulty, most likely): an event

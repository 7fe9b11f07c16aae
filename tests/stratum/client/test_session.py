"""The sans-IO client session: handshake, pool messages, submits and results, without any socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from pithead.stratum.v1.client import (
    AUTHORIZE_GRANTED,
    AUTHORIZE_REFUSED,
    CALLS,
    CLIENT_TRANSITIONS,
    CLOSE,
    CONFIGURE_RESULT,
    EXTRANONCE_SUBSCRIBE_RESULT,
    INPUTS,
    MAX_PENDING_REQUESTS,
    METHODS,
    RESULTS,
    START,
    SUBMIT_RESULT,
    SUBSCRIBE_RESULT,
    SUGGEST_DIFFICULTY_RESULT,
    UNKNOWN,
    Answer,
    AuthorizationFailed,
    AuthorizationGranted,
    ClientConfig,
    ClientSession,
    ClientState,
    DifficultySet,
    Disregard,
    ExtranonceChanged,
    Misuse,
    NewWork,
    OnCall,
    OnMethod,
    OnResult,
    PoolMessage,
    ReconnectRequested,
    RequestFailed,
    SentRequest,
    ShareAccepted,
    ShareRejected,
    Subscribed,
    VersionRollingNegotiated,
    Violation,
)
from pithead.stratum.v1.errors import ProtocolViolation, SessionClosed, TooManyPending
from pithead.stratum.v1.wire import MAX_LINE_FROM_POOL, ReplyError, Request, Response, decode
from pithead.stratum.v1.wire import NOTIFY as NOTIFY_METHOD
from pithead.stratum.v1.work import FoundShare, MinerWork, NotifiedJob

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
PUBLIC_POOL = next(
    v for v in json.loads((VECTORS / "stratum_shares.json").read_text())["vectors"] if "public-pool testnet3" in v["name"]
)["given"]
NOTIFY = PUBLIC_POOL["mining.notify_expected"]
WORKER = PUBLIC_POOL["mining.authorize"]["params"][0]


def line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def sent(session: ClientSession) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in session.data_to_send().splitlines()]


def handshake(config: ClientConfig | None = None, mask: str = "1fffe000") -> tuple[ClientSession, list[Any]]:
    """A session taken through configure/subscribe/authorize with public-pool's recorded replies."""
    s = ClientSession(config or ClientConfig(WORKER, suggest_difficulty=512))
    s.start()
    reqs = {r["method"]: r["id"] for r in sent(s)}
    events: list[Any] = []
    if "mining.configure" in reqs:
        events += s.receive_data(
            line({"id": reqs["mining.configure"], "error": None, "result": {"version-rolling": True, "version-rolling.mask": mask}})
        )
    sub = PUBLIC_POOL["subscribe_response_template"].replace("<extranonce1>", PUBLIC_POOL["extranonce1"])
    sub_msg = json.loads(sub)
    sub_msg["id"] = reqs["mining.subscribe"]
    events += s.receive_data(line(sub_msg))
    events += s.receive_data(line({"id": reqs["mining.authorize"], "error": None, "result": True}))
    return s, events


def test_handshake_order_and_params() -> None:
    s = ClientSession(ClientConfig("addr.w", "pw", user_agent="pithead/test"))
    s.start()
    msgs = sent(s)
    assert [m["method"] for m in msgs] == ["mining.configure", "mining.subscribe", "mining.authorize"]
    assert msgs[0]["params"] == [["version-rolling"], {"version-rolling.mask": "1fffe000"}]
    assert msgs[1]["params"] == ["pithead/test"]
    assert msgs[2]["params"] == ["addr.w", "pw"]
    assert len({m["id"] for m in msgs}) == 3
    with pytest.raises(SessionClosed):
        s.start()


def test_full_flow_on_public_pool_material() -> None:
    s, events = handshake()
    assert VersionRollingNegotiated(True, 0x1FFFE000) in events
    assert Subscribed(bytes.fromhex(PUBLIC_POOL["extranonce1"]), 4) in events
    assert AuthorizationGranted(WORKER) in events
    assert s.state is ClientState.MINING
    after = sent(s)
    assert [m["method"] for m in after] == ["mining.suggest_difficulty", "mining.extranonce.subscribe"]
    assert after[0]["params"] == PUBLIC_POOL["mining.suggest_difficulty"]["params"]

    events = s.receive_data(line(PUBLIC_POOL["set_difficulty_after_suggest"]) + line(NOTIFY))
    assert events[0] == DifficultySet(512.0)
    work_event = events[1]
    assert isinstance(work_event, NewWork) and work_event.clean is False
    work = work_event.work
    assert (work.difficulty, work.version_mask, work.extranonce1.hex(), work.extranonce2_size) == (
        512.0, 0x1FFFE000, PUBLIC_POOL["extranonce1"], 4
    )
    # Mine the recorded share and submit it: the wire params are exactly the Bitaxe's.
    sub = PUBLIC_POOL["mining.submit"]["params"]
    unit = work.unit(int(sub[2], 16), 0, 1)
    share = unit.share(int(sub[4], 16))
    rid = s.submit(share)
    (msg,) = sent(s)
    assert msg == {"id": rid, "method": "mining.submit", "params": sub}
    assert s.receive_data(line({"id": rid, "error": None, "result": True})) == [ShareAccepted(share)]


def test_set_difficulty_applies_from_the_next_job() -> None:
    s, _ = handshake()
    s.receive_data(line({"id": None, "method": "mining.set_difficulty", "params": [512]}) + line(NOTIFY))
    assert s.current_work is not None and s.current_work.difficulty == 512
    s.receive_data(line({"id": None, "method": "mining.set_difficulty", "params": [1024.5]}))
    assert s.current_work.difficulty == 512  # the job in hand keeps its difficulty
    (ev,) = s.receive_data(line(NOTIFY))
    assert isinstance(ev, NewWork) and ev.work.difficulty == 1024.5


def test_set_extranonce_applies_to_the_next_job_and_makes_it_clean() -> None:
    s, _ = handshake()
    s.receive_data(line(NOTIFY))
    (ev,) = s.receive_data(line({"id": None, "method": "mining.set_extranonce", "params": ["0badf00d", 8]}))
    assert ev == ExtranonceChanged(bytes.fromhex("0badf00d"), 8)
    assert s.current_work is not None and s.current_work.extranonce1.hex() == PUBLIC_POOL["extranonce1"]
    (nw,) = s.receive_data(line(NOTIFY))
    assert isinstance(nw, NewWork) and nw.clean and nw.work.extranonce1.hex() == "0badf00d"
    assert nw.work.extranonce2_size == 8


def test_set_version_mask_applies_at_once_and_only_narrows() -> None:
    s, _ = handshake()
    (first,) = s.receive_data(line(NOTIFY))
    events = s.receive_data(line({"id": None, "method": "mining.set_version_mask", "params": ["00003000"]}))
    assert events[0] == VersionRollingNegotiated(True, 0x00002000)  # 0x1000 was never offered
    assert isinstance(events[1], NewWork) and events[1].work.version_mask == 0x2000
    assert events[1].work.job == first.work.job and events[1].work.generation > first.work.generation


def test_bip310_configure_example_negotiates_the_pool_subset() -> None:
    data = json.loads((VECTORS / "version_rolling.json").read_text())
    ex = next(v for v in data["vectors"] if v["name"].startswith("BIP310 mining.configure"))
    s = ClientSession(ClientConfig("w", version_mask=int(ex["request"]["params"][1]["version-rolling.mask"], 16)))
    s.start()
    cid = sent(s)[0]["id"]
    reply = dict(ex["response_success"], id=cid)
    assert s.receive_data(line(reply)) == [VersionRollingNegotiated(True, 0x18000000)]
    s2 = ClientSession(ClientConfig("w"))
    s2.start()
    cid = sent(s2)[0]["id"]
    assert s2.receive_data(line(dict(ex["response_unknown_extension"], id=cid))) == [VersionRollingNegotiated(False, 0)]


def test_without_negotiated_rolling_submits_have_five_params() -> None:
    s, _ = handshake(ClientConfig(WORKER, version_rolling=False))
    (nw,) = s.receive_data(line(NOTIFY))
    assert nw.work.version_mask == 0
    s.submit(nw.work.unit(5).share(1))
    (msg,) = sent(s)[-1:]
    assert len(msg["params"]) == 5


def test_configure_rejected_by_pool_means_no_rolling() -> None:
    s = ClientSession(ClientConfig("w"))
    s.start()
    cid = sent(s)[0]["id"]
    (ev,) = s.receive_data(line({"id": cid, "result": None, "error": [20, "Method 'mining.configure' not found", None]}))
    assert ev == VersionRollingNegotiated(False, 0)
    assert s.version_mask == 0


@pytest.mark.parametrize(
    ("reply", "code", "reason"),
    [
        ({"error": [23, "Low difficulty share", None], "result": None}, 23, "Low difficulty share"),
        ({"error": {"code": 21, "message": "Job not found"}, "result": None}, 21, "Job not found"),
        ({"error": None, "result": False, "reject-reason": "Stale"}, None, "Stale"),
        ({"error": "duplicate", "result": None}, None, "duplicate"),
    ],
)
def test_rejected_shares_in_every_error_form(reply: dict[str, Any], code: int | None, reason: str) -> None:
    s, _ = handshake()
    (nw,) = s.receive_data(line(NOTIFY))
    share = nw.work.unit(0).share(0)
    rid = s.submit(share)
    assert s.receive_data(line({"id": rid, **reply})) == [ShareRejected(share, code, reason)]
    assert s.receive_data(line({"id": rid, "error": None, "result": True})) == []  # duplicate reply ignored


def test_server_requests_are_answered() -> None:
    s, _ = handshake(ClientConfig(WORKER, user_agent="pithead/9"))
    sent(s)
    s.receive_data(line({"id": 77, "method": "client.get_version", "params": []}))
    s.receive_data(line({"id": 78, "method": "mining.ping", "params": []}))
    s.receive_data(line({"id": 79, "method": "mining.frobnicate", "params": []}))
    assert s.receive_data(line({"id": None, "method": "mining.frobnicate", "params": []})) == []
    replies = sent(s)
    assert replies[0] == {"id": 77, "result": "pithead/9", "error": None}
    assert replies[1] == {"id": 78, "result": "pong", "error": None}
    assert replies[2]["id"] == 79 and replies[2]["result"] is None and replies[2]["error"][0] == 20


def test_reconnect_and_show_message_events() -> None:
    s, _ = handshake()
    (ev,) = s.receive_data(line({"id": None, "method": "client.reconnect", "params": ["pool.example", "3334", 5]}))
    assert ev == ReconnectRequested("pool.example", 3334, 5.0)
    (ev,) = s.receive_data(line({"id": None, "method": "client.reconnect", "params": []}))
    assert ev == ReconnectRequested(None, None, 0.0)
    (ev,) = s.receive_data(line({"id": None, "method": "client.reconnect", "params": ["", 0, 10**9]}))
    assert ev.wait == 600.0 and ev.port is None
    (msg,) = s.receive_data(line({"id": None, "method": "client.show_message", "params": ["hello miners"]}))
    assert msg == PoolMessage("hello miners")


def test_authorization_failure_is_an_event() -> None:
    s = ClientSession(ClientConfig("bad.worker", version_rolling=False))
    s.start()
    ids = {m["method"]: m["id"] for m in sent(s)}
    evs = s.receive_data(line({"id": ids["mining.authorize"], "result": False, "error": [24, "Unauthorized worker", None]}))
    assert evs == [AuthorizationFailed("bad.worker", "Unauthorized worker")]
    assert not s.authorized and s.state is ClientState.HANDSHAKE


def test_failed_optional_request_is_reported_and_the_session_goes_on() -> None:
    s, _ = handshake()
    ids = {m["method"]: m["id"] for m in sent(s)}
    ev = s.receive_data(line({"id": ids["mining.extranonce.subscribe"], "result": None, "error": [20, "nope", None]}))
    assert ev == [RequestFailed("mining.extranonce.subscribe", "nope")]
    assert s.state is ClientState.MINING


def test_lines_split_across_reads_and_several_per_read() -> None:
    s, _ = handshake()
    data = line({"id": None, "method": "mining.set_difficulty", "params": [8]}) + line(NOTIFY)
    events = []
    for i in range(0, len(data), 7):
        events += s.receive_data(data[i : i + 7])
    assert [type(e) for e in events] == [DifficultySet, NewWork]


@pytest.mark.parametrize(
    "data",
    [
        b"this is not json\n",
        b"[1,2,3]\n",
        b'{"id": 1}\n',
        line({"id": None, "method": "mining.notify", "params": ["1", "00"]}),
        line({"id": None, "method": "mining.set_difficulty", "params": [-1]}),
        line({"id": None, "method": "mining.set_difficulty", "params": ["512"]}),
        line({"id": None, "method": "mining.set_extranonce", "params": ["zz", 4]}),
        line({"id": None, "method": "mining.set_extranonce", "params": ["00", 99]}),
        line({"id": None, "method": "mining.set_version_mask", "params": ["123456789"]}),
        line({"id": None, "method": "client.reconnect", "params": ["h", "port"]}),
        line({"id": None, "method": "mining.notify", "params": {"a": 1}}),
    ],
)
def test_bad_pool_input_is_a_typed_error(data: bytes) -> None:
    s, _ = handshake()
    with pytest.raises(ProtocolViolation):
        s.receive_data(data)


def test_subscribe_error_is_a_protocol_violation() -> None:
    s = ClientSession(ClientConfig("w", version_rolling=False))
    s.start()
    ids = {m["method"]: m["id"] for m in sent(s)}
    with pytest.raises(ProtocolViolation):
        s.receive_data(line({"id": ids["mining.subscribe"], "result": None, "error": [20, "busy", None]}))


def test_line_length_is_bounded() -> None:
    s, _ = handshake()
    with pytest.raises(ProtocolViolation):
        s.receive_data(b"x" * (MAX_LINE_FROM_POOL + 1))


def test_pending_requests_are_bounded() -> None:
    s, _ = handshake()
    (nw,) = s.receive_data(line(NOTIFY))
    share = nw.work.unit(0).share(0)
    with pytest.raises(TooManyPending):
        for _ in range(MAX_PENDING_REQUESTS + 1):
            s.submit(share)


def test_a_farm_proxy_sets_its_own_bound_on_pending_requests() -> None:
    """A proxy forwards a whole farm's shares on one connection: its bound is its own (ClientConfig)."""
    s, _ = handshake(ClientConfig(WORKER, max_pending=MAX_PENDING_REQUESTS * 4))
    (nw,) = s.receive_data(line(NOTIFY))
    share = nw.work.unit(0).share(0)
    for _ in range(MAX_PENDING_REQUESTS * 4 - s.pending_requests):
        s.submit(share)
    with pytest.raises(TooManyPending):
        s.submit(share)


def test_closed_session_refuses_everything() -> None:
    s, _ = handshake()
    s.close()
    with pytest.raises(SessionClosed):
        s.receive_data(line(NOTIFY))


# ------------------------------------------------------------------------------------------------------
# Every (session state, pool message) pair, fed as bytes: what the client does with it.

STATES = ["new", "handshake", "subscribed", "authorized", "mining", "closed"]
MESSAGES: dict[str, dict[str, Any]] = {
    "notify": NOTIFY,
    "set_difficulty": {"id": None, "method": "mining.set_difficulty", "params": [2]},
    "set_extranonce": {"id": 9, "method": "mining.set_extranonce", "params": ["abcd", 2]},
    "set_version_mask": {"id": None, "method": "mining.set_version_mask", "params": ["00006000"]},
    "reconnect": {"id": None, "method": "client.reconnect", "params": ["127.0.0.1", 1, 0]},
    "show_message": {"id": None, "method": "client.show_message", "params": ["hi"]},
    "get_version": {"id": 10, "method": "client.get_version", "params": []},
    "ping": {"id": 11, "method": "mining.ping", "params": []},
    "unknown_request": {"id": 12, "method": "mining.nope", "params": []},
    "unknown_notification": {"id": None, "method": "mining.nope", "params": []},
    "stray_reply": {"id": 999, "result": True, "error": None},
}
# (events the message yields, whether the client writes a reply) in an open session; CLOSED refuses all.
EXPECTED: dict[str, tuple[list[type], bool]] = {
    "set_difficulty": ([DifficultySet], False),
    "set_extranonce": ([ExtranonceChanged], True),
    "reconnect": ([ReconnectRequested], False),
    "show_message": ([PoolMessage], False),
    "get_version": ([], True),
    "ping": ([], True),
    "unknown_request": ([], True),
    "unknown_notification": ([], False),
    "stray_reply": ([], False),
}
STATE_OF = {"new": ClientState.NEW, "handshake": ClientState.HANDSHAKE, "subscribed": ClientState.SUBSCRIBED,
            "authorized": ClientState.AUTHORIZED, "mining": ClientState.MINING, "closed": ClientState.CLOSED}


def session_in(state: str) -> ClientSession:
    """A session brought to `state` by the pool's replies (subscribe and authorize in either order)."""
    s = ClientSession(ClientConfig(WORKER))
    if state == "new":
        return s
    s.start()
    reqs = {r["method"]: r["id"] for r in sent(s)}
    if state != "handshake":
        s.receive_data(line({"id": reqs["mining.configure"], "error": None, "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"}}))
    if state in ("subscribed", "mining", "closed"):
        s.receive_data(line({"id": reqs["mining.subscribe"], "error": None, "result": [[], "00000001", 4]}))
    if state in ("authorized", "mining", "closed"):
        s.receive_data(line({"id": reqs["mining.authorize"], "error": None, "result": True}))
    if state == "closed":
        s.close()
    sent(s)
    assert s.state is STATE_OF[state]
    return s


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", list(MESSAGES))
def test_every_state_and_message(state: str, name: str) -> None:
    s = session_in(state)
    data = line(MESSAGES[name])
    if state == "closed":
        with pytest.raises(SessionClosed):
            s.receive_data(data)
        return
    events = s.receive_data(data)
    replies = sent(s)
    if name == "notify":
        # Before the subscribe result there is no extranonce1: the job is held, not issued.
        assert [type(e) for e in events] == ([NewWork] if s.subscribed else [])
        assert replies == []
    elif name == "set_version_mask":
        expected = [VersionRollingNegotiated]
        assert [type(e) for e in events] == expected and s.version_mask == 0x6000
    else:
        kinds, replied = EXPECTED[name]
        assert [type(e) for e in events] == kinds
        assert [r.get("id") for r in replies] == ([MESSAGES[name]["id"]] if replied else [])
    assert s.state is STATE_OF[state]


def test_authorize_granted_before_the_subscribe_result() -> None:
    """Some pools answer authorize first: AUTHORIZED, then MINING with the subscribe result, and a notify
    that came in between is held until the extranonce1 is known."""
    s = ClientSession(ClientConfig(WORKER, version_rolling=False))
    s.start()
    reqs = {r["method"]: r["id"] for r in sent(s)}
    assert s.receive_data(line({"id": reqs["mining.authorize"], "error": None, "result": True})) == [
        AuthorizationGranted(WORKER)]
    assert s.state is ClientState.AUTHORIZED and s.authorized and not s.subscribed
    assert [m["method"] for m in sent(s)] == ["mining.extranonce.subscribe"]
    assert s.receive_data(line(NOTIFY)) == []
    events = s.receive_data(line({"id": reqs["mining.subscribe"], "error": None, "result": [[], "0a0b0c0d", 4]}))
    assert [type(e) for e in events] == [Subscribed, NewWork] and s.state is ClientState.MINING


# ------------------------------------------------------------------------------------------------------
# The transition table itself: every (state, input) pair, the illegal ones too, through `handle`.


def _share() -> FoundShare:
    work = MinerWork(NotifiedJob.from_notify(NOTIFY["params"]), b"\0\0\0\1", 4, 1.0, 0)
    return work.unit(0).share(0)


def _request(obj: dict[str, Any]) -> Request:
    msg = decode(line(obj))
    assert isinstance(msg, Request)
    return msg


REQUEST_MESSAGES: dict[str, Request] = {
    NOTIFY_METHOD: _request(NOTIFY),
    "mining.set_difficulty": _request(MESSAGES["set_difficulty"]),
    "mining.set_extranonce": _request(MESSAGES["set_extranonce"]),
    "mining.set_version_mask": _request(MESSAGES["set_version_mask"]),
    "client.reconnect": _request(MESSAGES["reconnect"]),
    "client.show_message": _request(MESSAGES["show_message"]),
    "client.get_version": _request(MESSAGES["get_version"]),
    "mining.ping": _request(MESSAGES["ping"]),
    UNKNOWN: _request(MESSAGES["unknown_request"]),
}
SHARE = _share()
ANSWERS: dict[str, Answer] = {
    CONFIGURE_RESULT: Answer(SentRequest("mining.configure"),
                             Response(1, {"version-rolling": True, "version-rolling.mask": "00006000"}, None)),
    SUBSCRIBE_RESULT: Answer(SentRequest("mining.subscribe"), Response(2, [[], "0a0b0c0d", 4], None)),
    AUTHORIZE_GRANTED: Answer(SentRequest("mining.authorize"), Response(3, True, None)),
    AUTHORIZE_REFUSED: Answer(SentRequest("mining.authorize"), Response(3, False, ReplyError(24, "Unauthorized"))),
    SUGGEST_DIFFICULTY_RESULT: Answer(SentRequest("mining.suggest_difficulty"), Response(4, True, None)),
    EXTRANONCE_SUBSCRIBE_RESULT: Answer(SentRequest("mining.extranonce.subscribe"),
                                        Response(5, None, ReplyError(20, "nope"))),
    SUBMIT_RESULT: Answer(SentRequest("mining.submit", SHARE), Response(6, True, None)),
}
# What a handled input yields: (event types, ids of the replies written, requests sent).
HANDLED: dict[str, tuple[list[type], list[Any], list[str]]] = {
    "mining.set_difficulty": ([DifficultySet], [], []),
    "mining.set_extranonce": ([ExtranonceChanged], [9], []),
    "mining.set_version_mask": ([VersionRollingNegotiated], [], []),
    "client.reconnect": ([ReconnectRequested], [], []),
    "client.show_message": ([PoolMessage], [], []),
    "client.get_version": ([], [10], []),
    "mining.ping": ([], [11], []),
    UNKNOWN: ([], [12], []),
    CONFIGURE_RESULT: ([VersionRollingNegotiated], [], []),
    SUBSCRIBE_RESULT: ([Subscribed], [], []),
    AUTHORIZE_GRANTED: ([AuthorizationGranted], [], ["mining.extranonce.subscribe"]),
    AUTHORIZE_REFUSED: ([AuthorizationFailed], [], []),
    SUGGEST_DIFFICULTY_RESULT: ([], [], []),
    EXTRANONCE_SUBSCRIBE_RESULT: ([RequestFailed], [], []),
    SUBMIT_RESULT: ([ShareAccepted], [], []),
    START: ([], [], ["mining.configure", "mining.subscribe", "mining.authorize"]),
    CLOSE: ([], [], []),
}


def _message(kind: str) -> Request | Answer | None:
    if kind in REQUEST_MESSAGES:
        return REQUEST_MESSAGES[kind]
    return ANSWERS.get(kind)  # STRAY_RESPONSE, START and CLOSE carry none


def test_client_table_is_complete() -> None:
    assert set(CLIENT_TRANSITIONS) == {(st, k) for st in ClientState for k in INPUTS}
    assert len(set(INPUTS)) == len(INPUTS) and set(METHODS) | set(RESULTS) | set(CALLS) == set(INPUTS)


def test_the_handshake_states_are_entered_only_as_the_pools_answers_say() -> None:
    moves = {k: r.next_state for k, r in CLIENT_TRANSITIONS.items()
             if isinstance(r, OnMethod | OnResult | OnCall) and r.next_state not in (None, k[0])}
    assert moves == {
        (ClientState.NEW, START): ClientState.HANDSHAKE,
        (ClientState.HANDSHAKE, SUBSCRIBE_RESULT): ClientState.SUBSCRIBED,
        (ClientState.HANDSHAKE, AUTHORIZE_GRANTED): ClientState.AUTHORIZED,
        (ClientState.SUBSCRIBED, AUTHORIZE_GRANTED): ClientState.MINING,
        (ClientState.AUTHORIZED, SUBSCRIBE_RESULT): ClientState.MINING,
        **{(st, CLOSE): ClientState.CLOSED for st in ClientState if st is not ClientState.CLOSED},
    }


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_state_and_input_through_the_table(state: str, kind: str) -> None:
    s = session_in(state)
    before = s.state
    rule = CLIENT_TRANSITIONS[(before, kind)]
    message = _message(kind)
    if isinstance(rule, Violation):
        with pytest.raises(ProtocolViolation):
            s.handle(kind, message)
        assert s.state is before and s.data_to_send() == b""
        return
    if isinstance(rule, Misuse):
        with pytest.raises(SessionClosed):
            s.handle(kind, message)
        assert s.state is before
        return
    events = s.handle(kind, message)
    out = sent(s)
    if isinstance(rule, Disregard):
        assert events == [] and out == [] and s.state is before
        return
    assert isinstance(rule, OnMethod | OnResult | OnCall)
    assert s.state is (rule.next_state or before)
    if kind == NOTIFY_METHOD:  # held before the subscribe result, issued after it
        assert [type(e) for e in events] == ([NewWork] if before in (ClientState.SUBSCRIBED, ClientState.MINING)
                                             else [])
        assert out == []
        return
    kinds, reply_ids, requests = HANDLED[kind]
    assert [type(e) for e in events] == kinds
    assert [m["id"] for m in out if "method" not in m] == reply_ids
    assert [m["method"] for m in out if "method" in m] == requests


def test_a_notify_before_the_subscribe_result_is_issued_once_subscribed() -> None:
    s = ClientSession(ClientConfig(WORKER, version_rolling=False))
    s.start()
    reqs = {r["method"]: r["id"] for r in sent(s)}
    assert s.receive_data(line(NOTIFY)) == []
    events = s.receive_data(line({"id": reqs["mining.subscribe"], "error": None, "result": [[], "0a0b0c0d", 4]}))
    assert [type(e) for e in events] == [Subscribed, NewWork]
    work = events[1].work
    assert work.extranonce1 == bytes.fromhex("0a0b0c0d") and work.job.job_id == NOTIFY["params"][0]

"""The miner side of SV2 (`MinerConnection`, `MINER_TRANSITIONS`) walked pair by pair for both channel
kinds: each state reached through a real handshake and the pool's messages, each input fed through the
table, its effect checked against the rule. Then the miner's side of the rules the table leaves to its
handlers: the first job must be a future one, SetNewPrevHash must name one, SetTarget hardens the job
being mined at once, acknowledgements cover every share up to the sequence number they name; and the
certificate: a wrong authority, an expired certificate, a tampered Act 2."""

from __future__ import annotations

import pytest

from pithead.chain.compact import difficulty_to_target
from pithead.stratum.v2 import cert, noise, secp256k1
from pithead.stratum.v2.channels import ChannelKind
from pithead.stratum.v2.client import (
    CLIENT_MESSAGE,
    MINER_INPUTS,
    MINER_TRANSITIONS,
    NOT_REQUESTED,
    START,
    STRAY_CHANNEL,
    Breach,
    ChannelGranted,
    LetBe,
    MinerChannelConfig,
    MinerConnection,
    MinerEvent,
    MinerState,
    OnOwnCall,
    OnServerMessage,
    ShareAcknowledged,
    ShareDenied,
    TargetSet,
    Unusable,
    WorkReady,
)
from pithead.stratum.v2.errors import (
    BadCertificateSignature,
    CertificateExpired,
    HandshakeError,
    NotMining,
    PeerViolation,
)
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.common import (
    ChannelEndpointChanged,
    Reconnect,
    SetupConnectionError,
    SetupConnectionSuccess,
)
from pithead.stratum.v2.messages.extensions import RequestExtensionsSuccess
from pithead.stratum.v2.messages.mining import (
    CloseChannel,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannelSuccess,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannelError,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.types import u256_from_int
from stratum.v2.harness import NOW, USER

CID = 5
TARGET = u256_from_int(difficulty_to_target(1e-6))
PREV = bytes(range(32))


class FakePool:
    """The pool's side of the wire, by hand: a real responder and its transport."""

    def __init__(self, kind: ChannelKind = ChannelKind.STANDARD, valid_from: int = int(NOW),
                 authority: bytes | None = None, pinned: bytes | None = None) -> None:
        self.authority = authority or secp256k1.new_secret()
        self.miner = MinerConnection(MinerChannelConfig(USER, kind),
                                     pinned if pinned is not None else secp256k1.xonly_public(self.authority))
        self.responder = noise.Responder.for_connection(self.authority, valid_from)
        self.transport: noise.NoiseTransport | None = None

    def handshake(self, now: float = NOW) -> list[MinerEvent]:
        self.miner.start()
        step = self.responder.feed(self.miner.data_to_send())
        self.transport = step.transport
        return self.miner.receive(step.send, now)

    def send(self, *messages: Message) -> list[MinerEvent]:
        assert self.transport is not None
        return self.miner.receive(b"".join(self.transport.encrypt(encode_frame(m)) for m in messages), NOW)

    def received(self) -> list[Message]:
        assert self.transport is not None
        return [decode_frame(f, protocol=Subprotocol.MINING)[0] for f in self.transport.feed(self.miner.data_to_send())]


def opened(kind: ChannelKind) -> Message:
    if kind is ChannelKind.STANDARD:
        return OpenStandardMiningChannelSuccess(1, CID, TARGET, bytes(8), 0)
    return OpenExtendedMiningChannelSuccess(1, CID, TARGET, 4, bytes(4), 0)


def future_job(kind: ChannelKind, job_id: int = 9) -> NewMiningJob | NewExtendedMiningJob:
    if kind is ChannelKind.STANDARD:
        return NewMiningJob(CID, job_id, None, 0x20000000, bytes(32))
    return NewExtendedMiningJob(CID, job_id, None, 0x20000000, True, (), b"\x01" * 42, b"\x02" * 60)


def drive(kind: ChannelKind, state: MinerState) -> FakePool:
    pool = FakePool(kind)
    if state is MinerState.NEW:
        pool.miner.start()
        return pool
    pool.handshake()
    pool.received()
    if state is MinerState.CLOSED:
        pool.miner.close()
        return pool
    if state is MinerState.SETTING_UP:
        return pool
    pool.send(SetupConnectionSuccess(2, 0))
    pool.received()
    if state is MinerState.OPENING:
        return pool
    pool.send(opened(kind))
    if state is MinerState.WAITING:
        return pool
    events = pool.send(future_job(kind), SetNewPrevHash(CID, 9, PREV, int(NOW), 0x1D00FFFF))
    assert [type(e) for e in events] == [WorkReady]
    pool.miner.submit(9, 1, int(NOW), 0x20000000, bytes(4) if kind is ChannelKind.EXTENDED else b"", "share")
    pool.received()
    assert pool.miner.state is state
    return pool


SAMPLES: dict[object, Message] = {
    SetupConnectionSuccess: SetupConnectionSuccess(2, 0),
    SetupConnectionError: SetupConnectionError(0, "unsupported-protocol"),
    OpenMiningChannelError: OpenMiningChannelError(1, "invalid-user-identity"),
    SetNewPrevHash: SetNewPrevHash(CID, 9, PREV, int(NOW), 0x1D00FFFF),
    SetTarget: SetTarget(CID, u256_from_int(difficulty_to_target(1e-9))),  # easier than the job's
    SetExtranoncePrefix: SetExtranoncePrefix(CID, b"\x09" * 4),
    SubmitSharesSuccess: SubmitSharesSuccess(CID, 1, 1, 0),
    SubmitSharesError: SubmitSharesError(CID, 1, "difficulty-too-low"),
    UpdateChannelError: UpdateChannelError(CID, "invalid-nominal-hashrate"),
    CloseChannel: CloseChannel(CID, "bye"),
    Reconnect: Reconnect("", 0),
    SetGroupChannel: SetGroupChannel(77, (CID,)),
    ChannelEndpointChanged: ChannelEndpointChanged(CID),
    NOT_REQUESTED: RequestExtensionsSuccess(1, ()),
    CLIENT_MESSAGE: SubmitSharesStandard(CID, 1, 9, 0, 0, 0),
    STRAY_CHANNEL: SetTarget(CID + 1, TARGET),
}

EFFECTS = {  # the events each handler makes of its sample
    MinerConnection._set_up: [],
    MinerConnection._setup_refused: ["SetupDenied"],
    MinerConnection._opened_standard: ["ChannelGranted"],
    MinerConnection._opened_extended: ["ChannelGranted"],
    MinerConnection._open_refused: ["ChannelDenied"],
    MinerConnection._job: [],  # a future job waits for its SetNewPrevHash
    MinerConnection._activate: ["WorkReady"],
    MinerConnection._set_target: ["TargetSet"],  # easier than the job's: the job keeps its own
    MinerConnection._set_extranonce_prefix: [],
    MinerConnection._acknowledged: ["ShareAcknowledged"],
    MinerConnection._denied: ["ShareDenied"],
    MinerConnection._update_refused: ["UpdateRefused"],
    MinerConnection._closed_by_pool: ["ChannelClosedByPool"],
    MinerConnection._reconnect: ["ReconnectAsked"],
    MinerConnection._group: [],
    MinerConnection._endpoint_changed: [],
}


def test_miner_table_is_complete() -> None:
    assert set(MINER_TRANSITIONS) == {(s, i) for s in MinerState for i in MINER_INPUTS}
    assert len(set(MINER_INPUTS)) == len(MINER_INPUTS)
    handlers = {r.handler for r in MINER_TRANSITIONS.values() if isinstance(r, OnServerMessage)}
    assert handlers == set(EFFECTS)


@pytest.mark.parametrize("kind", list(ChannelKind))
@pytest.mark.parametrize("state", list(MinerState))
@pytest.mark.parametrize("column", list(MINER_INPUTS), ids=lambda c: c if isinstance(c, str) else c.NAME)
def test_every_miner_state_input_pair(kind: ChannelKind, state: MinerState, column: object) -> None:
    pool = drive(kind, state)
    miner = pool.miner
    if column in (NewMiningJob, NewExtendedMiningJob):
        message: Message | None = future_job(ChannelKind.STANDARD if column is NewMiningJob else ChannelKind.EXTENDED)
    elif column in (OpenStandardMiningChannelSuccess, OpenExtendedMiningChannelSuccess):
        message = opened(ChannelKind.STANDARD if column is OpenStandardMiningChannelSuccess else ChannelKind.EXTENDED)
    else:
        message = SAMPLES.get(column)
    if column is SetNewPrevHash and state in (MinerState.WAITING, MinerState.MINING):
        pool.send(future_job(kind))  # it must name a future job
    rule = MINER_TRANSITIONS[(state, column)]  # type: ignore[index]
    if (state, column) == (MinerState.NEW, START):  # fed by the handshake's end, when there is a transport
        assert isinstance(rule, OnOwnCall) and pool.responder is not None
        step = pool.responder.feed(miner.data_to_send())
        pool.transport = step.transport
        assert miner.receive(step.send, NOW) == []
        assert [m.NAME for m in pool.received()] == ["SetupConnection"] and miner.state is rule.next_state
        return
    events: list[MinerEvent] = []
    wrong_kind = message is not None and (
        (isinstance(message, NewMiningJob | OpenStandardMiningChannelSuccess) and kind is ChannelKind.EXTENDED)
        or (isinstance(message, NewExtendedMiningJob | OpenExtendedMiningChannelSuccess) and kind is ChannelKind.STANDARD))
    if isinstance(rule, Breach) or (isinstance(rule, OnServerMessage) and wrong_kind):
        with pytest.raises(PeerViolation):
            miner.handle(column, message, events)  # type: ignore[arg-type]
        assert miner.state is state
        return
    if isinstance(rule, Unusable):
        with pytest.raises(NotMining):
            miner.handle(column, message, events)  # type: ignore[arg-type]
        return
    miner.handle(column, message, events)  # type: ignore[arg-type]
    sent = pool.received() if pool.transport is not None else []
    if isinstance(rule, LetBe):
        assert events == [] and sent == [] and miner.state is state
        return
    if isinstance(rule, OnOwnCall):
        assert events == []
        assert [m.NAME for m in sent] == (["SetupConnection"] if column == START else [])
        assert miner.state is (rule.next_state or state)
        return
    assert isinstance(rule, OnServerMessage)
    assert [type(e).__name__ for e in events] == EFFECTS[rule.handler]
    if rule.handler is MinerConnection._set_up:
        assert [m.NAME for m in sent] == [
            "OpenStandardMiningChannel" if kind is ChannelKind.STANDARD else "OpenExtendedMiningChannel"]
    assert miner.state is (rule.next_state or state)


def test_the_columns_arrive_as_the_table_says() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)
    assert pool.send(SetTarget(CID + 1, TARGET)) == []  # another channel's: let be
    with pytest.raises(PeerViolation, match="never makes"):
        pool.send(RequestExtensionsSuccess(1, ()))
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)
    with pytest.raises(PeerViolation, match="only a client sends"):
        pool.send(SubmitSharesStandard(CID, 1, 9, 0, 0, 0))


# --- the rules the handlers keep ----------------------------------------------------------------------------


def test_the_first_job_must_be_a_future_one_and_setnewprevhash_must_name_one() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.WAITING)
    with pytest.raises(PeerViolation, match="before any SetNewPrevHash"):
        pool.send(NewMiningJob(CID, 3, int(NOW), 0x20000000, bytes(32)))
    pool = drive(ChannelKind.STANDARD, MinerState.WAITING)
    with pytest.raises(PeerViolation, match="never sent as a future job"):
        pool.send(SetNewPrevHash(CID, 4, PREV, int(NOW), 0x1D00FFFF))


def test_a_new_prev_hash_drops_the_other_future_jobs_and_an_active_job_uses_it() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)
    pool.send(future_job(ChannelKind.STANDARD, 20), future_job(ChannelKind.STANDARD, 21))
    (ready,) = pool.send(SetNewPrevHash(CID, 21, b"\x07" * 32, int(NOW) + 5, 0x1D00FFFF))
    assert isinstance(ready, WorkReady) and ready.clean and ready.work.job_id == 21
    with pytest.raises(PeerViolation):
        pool.send(SetNewPrevHash(CID, 20, b"\x08" * 32, int(NOW) + 6, 0x1D00FFFF))
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)
    (ready,) = pool.send(NewMiningJob(CID, 30, int(NOW) + 9, 0x20000000, b"\x05" * 32))
    assert isinstance(ready, WorkReady) and not ready.clean
    assert ready.work.prev_hash == PREV and ready.work.ntime == int(NOW) + 9 and ready.work.merkle_root == b"\x05" * 32


def test_set_target_hardens_the_job_being_mined_at_once_and_applies_to_later_jobs() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)
    harder = difficulty_to_target(1e-3)
    events = pool.send(SetTarget(CID, u256_from_int(harder)))
    assert [type(e) for e in events] == [TargetSet, WorkReady]
    assert isinstance(events[1], WorkReady) and events[1].work.target == harder and not events[1].clean
    (ready,) = pool.send(NewMiningJob(CID, 31, int(NOW), 0x20000000, bytes(32)))
    assert isinstance(ready, WorkReady) and ready.work.target == harder


def test_one_success_acknowledges_every_share_up_to_its_sequence_number() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.MINING)  # share 1 is in flight
    for token in ("b", "c", "d"):
        pool.miner.submit(9, 2, int(NOW), 0x20000000, b"", token)
    events = pool.send(SubmitSharesError(CID, 3, "duplicate-share"), SubmitSharesSuccess(CID, 4, 3, 0))
    assert events == [ShareDenied("c", 3, "duplicate-share"), ShareAcknowledged("share", 1),
                      ShareAcknowledged("b", 2), ShareAcknowledged("d", 4)]
    assert pool.miner.pending_shares == 0


def test_no_share_before_mining() -> None:
    pool = drive(ChannelKind.STANDARD, MinerState.WAITING)
    with pytest.raises(NotMining):
        pool.miner.submit(9, 0, 0, 0, b"", "x")


# --- the certificate -----------------------------------------------------------------------------------------


def test_a_pool_signed_by_another_authority_is_refused_before_anything_is_sent() -> None:
    pool = FakePool(pinned=secp256k1.xonly_public(secp256k1.new_secret()))
    with pytest.raises(BadCertificateSignature):
        pool.handshake()
    assert pool.miner.state is MinerState.NEW and pool.miner.data_to_send() == b""


def test_an_expired_certificate_is_refused() -> None:
    pool = FakePool(valid_from=int(NOW) - 2 * cert.DEFAULT_VALIDITY)
    with pytest.raises(CertificateExpired):
        pool.handshake()


def test_a_tampered_act_2_is_refused() -> None:
    pool = FakePool()
    pool.miner.start()
    step = pool.responder.feed(pool.miner.data_to_send())
    act2 = bytearray(step.send)
    act2[100] ^= 1
    with pytest.raises(HandshakeError):
        pool.miner.receive(bytes(act2), NOW)


def test_the_certificate_of_the_pinned_authority_opens_the_channel() -> None:
    pool = FakePool()
    assert pool.handshake() == [] and pool.miner.authenticated and pool.miner.state is MinerState.SETTING_UP
    assert pool.miner.certificate_valid_until == int(NOW) + cert.DEFAULT_VALIDITY
    (setup,) = pool.received()
    assert setup.NAME == "SetupConnection" and setup.flags == 0b101  # type: ignore[attr-defined]
    assert isinstance(pool.send(SetupConnectionSuccess(2, 0), opened(ChannelKind.STANDARD))[0], ChannelGranted)


def test_a_new_extranonce_prefix_applies_to_the_jobs_after_it() -> None:
    pool = drive(ChannelKind.EXTENDED, MinerState.MINING)
    mined = pool.miner.current_work
    assert mined is not None and mined.extranonce_prefix == bytes(4)
    assert pool.send(SetExtranoncePrefix(CID, b"\x0a\x0b\x0c\x0d")) == []
    (ready,) = pool.send(NewExtendedMiningJob(CID, 40, int(NOW), 0x20000000, True, (), b"\x01" * 42, b"\x02" * 60))
    assert isinstance(ready, WorkReady) and ready.work.extranonce_prefix == b"\x0a\x0b\x0c\x0d"
    assert ready.work.extranonce_size == 4
    with pytest.raises(PeerViolation, match="32 bytes"):
        pool.send(SetExtranoncePrefix(CID, b"\x01" * 29))

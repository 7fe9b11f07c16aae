"""The SV2 pool's two tables walked pair by pair: the connection's (`CONNECTION_TRANSITIONS`) and the
channels' (`CHANNEL_TRANSITIONS`). Each (state, input) is driven for real — the state reached through
the protocol, the input fed through the table — and its effect checked against the rule the table holds:
what is sent back, the events, the state after. Then every input is shown to arrive the way the table
says when it comes as bytes."""

from __future__ import annotations

import pytest

from pithead.stratum.v2.channels import (
    BLOCK,
    CHANNEL_INPUTS,
    CHANNEL_TRANSITIONS,
    JOB,
    BookJob,
    ChannelKind,
    ChannelState,
    OnChannelMessage,
    OnPoolWork,
    PassOver,
    PoolChannel,
    RefuseOnChannel,
)
from pithead.stratum.v2.framing import encode_header
from pithead.stratum.v2.messages.base import Message
from pithead.stratum.v2.messages.extensions import RequestExtensions
from pithead.stratum.v2.messages.mining import (
    CloseChannel,
    NewMiningJob,
    SetCustomMiningJob,
    SubmitSharesExtended,
    SubmitSharesStandard,
    UpdateChannel,
)
from pithead.stratum.v2.pool import (
    BANNED,
    CHANNEL,
    CONNECTION_INPUTS,
    CONNECTION_TRANSITIONS,
    FOREIGN_CHANNEL,
    SERVER_MESSAGE,
    ConnectionState,
    CutOff,
    Departed,
    HangUp,
    Overlook,
    Take,
)
from stratum.v2.harness import NOW, Peer, Pool, open_extended, open_standard, setup_connection

FOREIGN_ID = 987_654


def test_connection_table_is_complete() -> None:
    assert set(CONNECTION_TRANSITIONS) == {(s, i) for s in ConnectionState for i in CONNECTION_INPUTS}
    assert len(set(CONNECTION_INPUTS)) == len(CONNECTION_INPUTS)


def test_channel_table_is_complete() -> None:
    assert set(CHANNEL_TRANSITIONS) == {(s, i) for s in ChannelState for i in CHANNEL_INPUTS}
    assert len(set(CHANNEL_INPUTS)) == len(CHANNEL_INPUTS)


def test_states_change_only_where_the_tables_say() -> None:
    into_set_up = {k for k, r in CONNECTION_TRANSITIONS.items() if isinstance(r, Take) and r.next_state}
    assert into_set_up == {(ConnectionState.AWAIT_SETUP, type(setup_connection()))}
    into_closed = {k for k, r in CONNECTION_TRANSITIONS.items()
                   if isinstance(r, CutOff | Departed) or (isinstance(r, Take) and r.refused_state)}
    assert {s for s, _ in into_closed} <= {ConnectionState.AWAIT_SETUP, ConnectionState.SET_UP,
                                           ConnectionState.CLOSED}
    bans = {k for k, r in CONNECTION_TRANSITIONS.items() if isinstance(r, CutOff) and r.ban}
    assert {i for _, i in bans} == {BANNED}  # nothing but the score bans an IP (a tampered frame may be
    #                                          an attacker on the path, not the miner)
    closes = {k for k, r in CHANNEL_TRANSITIONS.items() if isinstance(r, OnChannelMessage) and
              r.next_state is ChannelState.CLOSED}
    assert {i for _, i in closes} == {CloseChannel}
    to_mining = {k: r.next_state for k, r in CHANNEL_TRANSITIONS.items() if isinstance(r, OnPoolWork) and r.next_state}
    assert set(to_mining) == {(w, i) for w in (ChannelState.STANDARD_WAITING, ChannelState.EXTENDED_WAITING)
                              for i in (JOB, BLOCK)}


# --- the connection's table ----------------------------------------------------------------------------


def drive_connection(pool: Pool, state: ConnectionState) -> tuple[Peer, int]:
    """A connection in `state`; in SET_UP with one standard channel open (its id returned)."""
    peer = pool.connect()
    if state is ConnectionState.AWAIT_SETUP:
        return peer, 0
    peer.set_up()
    _events, out = peer.send(open_standard())
    channel_id = out[0].channel_id  # type: ignore[attr-defined]
    if state is ConnectionState.CLOSED:
        peer.conn.close()
    return peer, channel_id


def sample(kind: object, channel_id: int) -> Message | None:
    """A representative input of each column (None for the ones that carry no message)."""
    samples: dict[object, Message] = {
        type(setup_connection()): setup_connection(),
        RequestExtensions: RequestExtensions(3, (2,)),
        type(open_standard()): open_standard(request_id=7),
        type(open_extended()): open_extended(request_id=8),
        # job 999 exists nowhere: in SET_UP the channel's table must judge it and say so
        CHANNEL: SubmitSharesStandard(channel_id, 1, 999, 0, int(NOW), 0x20000000),
        FOREIGN_CHANNEL: SubmitSharesStandard(FOREIGN_ID, 1, 999, 0, int(NOW), 0x20000000),
        SERVER_MESSAGE: NewMiningJob(channel_id, 5, None, 0x20000000, bytes(32)),
    }
    return samples.get(kind)


@pytest.mark.parametrize("state", list(ConnectionState))
@pytest.mark.parametrize("kind", list(CONNECTION_INPUTS), ids=lambda k: k if isinstance(k, str) else k.NAME)
def test_every_connection_state_input_pair(state: ConnectionState, kind: object) -> None:
    pool = Pool()
    peer, channel_id = drive_connection(pool, state)
    conn = peer.conn
    extranonces = {c.extranonce1 for c in conn.channels.values()}
    message = sample(kind, channel_id)
    events: list = []
    conn.handle(kind, message, NOW, events, "detail")  # type: ignore[arg-type]
    out = peer.replies() if conn.handshake_done else []
    rule = CONNECTION_TRANSITIONS[(state, kind)]  # type: ignore[index]
    if isinstance(rule, Overlook):
        assert out == [] and events == [] and conn.state is state
    elif isinstance(rule, CutOff):
        assert conn.state is ConnectionState.CLOSED
        assert events == [HangUp(f"{rule.reason}: detail", rule.ban)]
        names = [m.NAME for m in out]
        assert names == (["SubmitShares.Error"] if rule.answer else [])
        if rule.answer:
            assert out[0].error_code == "invalid-channel-id"  # type: ignore[attr-defined]
    elif isinstance(rule, Departed):
        assert conn.state is ConnectionState.CLOSED and out == [] and events == []
        assert not any(pool.allocator.in_use(e) for e in extranonces)  # free for anyone else
    else:
        assert isinstance(rule, Take)
        names = [m.NAME for m in out]
        expected = {
            type(setup_connection()): ["SetupConnection.Success"],
            RequestExtensions: ["RequestExtensions.Error"],  # nothing offered: every one unsupported
            type(open_standard()): ["OpenStandardMiningChannel.Success", "NewMiningJob", "SetNewPrevHash"],
            type(open_extended()): ["OpenExtendedMiningChannel.Success", "NewExtendedMiningJob", "SetNewPrevHash"],
            CHANNEL: ["SubmitShares.Error"],
        }[kind]
        assert names == expected, out
        if kind == CHANNEL:
            assert out[0].error_code == "invalid-job-id"  # type: ignore[attr-defined]
        assert conn.state is (rule.next_state or state)


@pytest.mark.parametrize("state", [s for s in ConnectionState if s is not ConnectionState.CLOSED])
def test_inputs_arrive_as_the_table_says(state: ConnectionState) -> None:
    """Each column, fed as bytes through the transport, lands where the table says."""
    pool = Pool()

    def fresh() -> tuple[Peer, int]:
        return drive_connection(pool, state)

    peer, cid = fresh()
    # an unknown (extension, type) is dropped, as the spec says
    events, out = peer.send_raw(peer.transport.encrypt(encode_header(0x7ABC, False, 0x01, 0)))
    assert events == [] and out == [] and peer.conn.state is state
    # a message only a server sends
    peer, cid = fresh()
    events, _ = peer.send(NewMiningJob(cid, 5, None, 0x20000000, bytes(32)))
    assert [type(e) for e in events] == [HangUp] and "only a server sends" in events[0].reason  # type: ignore[union-attr]
    # a payload that does not decode (a SubmitSharesStandard cut short)
    peer, cid = fresh()
    events, _ = peer.send_raw(peer.transport.encrypt(encode_header(0, True, 0x1A, 3) + b"\x01\x02\x03"))
    assert isinstance(events[0], HangUp) and "does not decode" in events[0].reason
    # a Template Distribution message on a Mining connection
    peer, cid = fresh()
    events, _ = peer.send_raw(peer.transport.encrypt(encode_header(0, False, 0x71, 0)))
    assert isinstance(events[0], HangUp) and "another subprotocol" in events[0].reason
    # a tampered frame: the stream is dead
    peer, cid = fresh()
    wire = bytearray(peer.transport.encrypt(encode_header(0, False, 0x71, 0)))
    wire[3] ^= 1
    events, _ = peer.send_raw(bytes(wire))
    assert isinstance(events[0], HangUp) and "stream failed" in events[0].reason
    assert peer.conn.state is ConnectionState.CLOSED


# --- the channels' table -------------------------------------------------------------------------------


def drive_channel(state: ChannelState) -> tuple[Pool, Peer, PoolChannel]:
    """A channel in `state`: WAITING ones are opened before the pool has a template."""
    waiting = state in (ChannelState.STANDARD_WAITING, ChannelState.EXTENDED_WAITING)
    pool = Pool(with_template=not waiting)
    peer = pool.connect()
    peer.set_up()
    extended = state in (ChannelState.EXTENDED_WAITING, ChannelState.EXTENDED_MINING)
    _, out = peer.send(open_extended() if extended else open_standard())
    channel = peer.conn.channels[out[0].channel_id]  # type: ignore[attr-defined]
    if state is ChannelState.CLOSED:
        peer.send(CloseChannel(channel.channel_id, "done"))
    assert channel.state is state
    return pool, peer, channel


def channel_sample(kind: object, channel_id: int) -> Message:
    return {
        SubmitSharesStandard: SubmitSharesStandard(channel_id, 4, 999, 0, int(NOW), 0x20000000),
        SubmitSharesExtended: SubmitSharesExtended(channel_id, 4, 999, 0, int(NOW), 0x20000000, bytes(4)),
        UpdateChannel: UpdateChannel(channel_id, 0.0, b"\xff" * 32),
        CloseChannel: CloseChannel(channel_id, "bye"),
        SetCustomMiningJob: SetCustomMiningJob(channel_id, 2, b"token", 0x20000000, bytes(32), int(NOW), 0x1D00FFFF,
                                               2, b"", 0xFFFFFFFF, b"\x00", 0, ()),
    }[kind]  # type: ignore[index]


@pytest.mark.parametrize("state", list(ChannelState))
@pytest.mark.parametrize("kind", list(CHANNEL_INPUTS), ids=lambda k: k if isinstance(k, str) else k.NAME)
def test_every_channel_state_input_pair(state: ChannelState, kind: object) -> None:
    pool, peer, channel = drive_channel(state)
    out: list[Message] = []
    events: list = []
    score = peer.conn.score
    if isinstance(kind, str):  # the pool's own inputs: a job of the book for this channel
        if state in (ChannelState.STANDARD_WAITING, ChannelState.EXTENDED_WAITING):
            pool.new_block()
        elif kind == BLOCK:
            pool.new_block()
        else:
            pool.refresh()
        book = pool.feed.current(channel.worker.payout_script)
        assert isinstance(book, BookJob)
        channel.handle_work(kind, book, NOW, out, events)
    else:
        channel.handle(channel_sample(kind, channel.channel_id), NOW, out, events)
    rule = CHANNEL_TRANSITIONS[(state, kind)]  # type: ignore[index]
    names = [m.NAME for m in out]
    job_message = "NewMiningJob" if channel.kind is ChannelKind.STANDARD else "NewExtendedMiningJob"
    if isinstance(rule, PassOver):
        assert out == [] and events == [] and channel.state is state
    elif isinstance(rule, RefuseOnChannel):
        assert channel.state is state
        if kind is CloseChannel:
            assert out == []
        else:
            assert len(out) == 1 and out[0].error_code == rule.code  # type: ignore[attr-defined]
        assert peer.conn.score == score + rule.penalty
    elif isinstance(rule, OnPoolWork):
        if rule.handler is PoolChannel._activate:  # future job, then the SetNewPrevHash that activates it
            assert names == [job_message, "SetNewPrevHash"]
            assert out[0].min_ntime is None and out[1].job_id == out[0].job_id  # type: ignore[attr-defined]
        else:
            assert names == [job_message] and out[0].min_ntime == int(NOW)  # type: ignore[attr-defined]
        assert channel.state is (rule.next_state or state)
    else:
        assert isinstance(rule, OnChannelMessage)
        if kind in (SubmitSharesStandard, SubmitSharesExtended):
            assert names == ["SubmitShares.Error"] and out[0].error_code == "invalid-job-id"  # type: ignore[attr-defined]
            assert [e.reason.value for e in events] == ["job-not-found"]
        elif kind is UpdateChannel:
            assert out == []  # the same hashrate and target: nothing to say
        else:
            assert kind is CloseChannel and out == []
            assert not pool.allocator.in_use(channel.extranonce1)
        assert channel.state is (rule.next_state or state)

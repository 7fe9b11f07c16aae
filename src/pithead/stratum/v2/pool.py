"""The pool side of one Stratum V2 connection as a pure state machine: bytes in, events out, bytes to send.

What it is: `PoolConnection.receive(data, now)` completes the Noise handshake as the responder (the
pool's certificate, signed by its authority key, goes out in Act 2), then decrypts frames, decodes each
message (`messages.registry`, strictly, for the Mining subprotocol) and looks it up in the transition
table `CONNECTION_TRANSITIONS` — every (state, input) pair listed, the illegal ones too. The states:
`AWAIT_SETUP` (SetupConnection must come first), `SET_UP` (channels may be opened), `CLOSED`. The inputs:
the client's connection-level messages by class (SetupConnection, RequestExtensions,
OpenStandardMiningChannel, OpenExtendedMiningChannel); a channel message for one of this connection's
channels (`CHANNEL`, handed to that channel's own table, `stratum.v2.channels.CHANNEL_TRANSITIONS`) or
for none of them (`FOREIGN_CHANNEL`: another connection's id or a made-up one); a message only a server
sends (`SERVER_MESSAGE`); one this side does not know (`UNKNOWN`: dropped, as the spec says); one that
does not decode (`MALFORMED`) or belongs to another subprotocol (`WRONG_SUBPROTOCOL`); a stream that
failed below the messages — a handshake, MAC or framing error (`BROKEN`: a tampered, replayed or
oversized frame); a misbehaviour score that reached the ban (`BANNED`); the connection gone (`LOST`).
Every state change is made by the table. The shell takes the bytes with `data_to_send()`, feeds new work
with `push_work(now)` and housekeeping with `tick(now)` (and may move a channel to a new extranonce, or the
client to another server: `set_extranonce_prefix`, `reconnect`), and acts on the events: `ShareJudgement` and
`BlockSolved` (from the channels), `ChannelOpened`, `HangUp`.

Setup (spec §3.6.1, §5.3.1): the Mining subprotocol, version 2, the client flags REQUIRES_STANDARD_JOBS
and REQUIRES_VERSION_ROLLING (every job may roll the BIP323 bits); work selection is refused with
SetupConnection.Error naming the flag, as is any unknown flag. Extensions: none are offered (a
RequestExtensions is answered with every requested one unsupported). Channels: standard and extended,
up to `ChannelRules.max_channels` open at once, each with its own extranonce1 from the allocator the V1
sessions use (so no two miners anywhere in the pool share a coinbase), the user identity authorized by
the pool's rule (`ChannelRules.authorize`), the nominal hashrate as the starting difficulty and the
maximum target as its floor. No group channels: `group_channel_id` is 0, which names no channel (ids
start at 1), and each channel gets its own jobs.

Beside the table, not in it: the handshake and the transport, decoding, the misbehaviour score
(`_penalize`; reaching `BAN_SCORE` feeds the table `BANNED`), the frame backlog (`max_frames` per turn,
so one pipelining client cannot hold the event loop), the share batches closed at the end of each turn.
What it is not: no socket, no clock (`now` is a parameter), no asyncio; the blocks it assembles are
handed out as events and submitted by the shell (`stratum.server.v2`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from pithead.stratum.difficulty import VarDiff, VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator, ExtranonceExhausted
from pithead.stratum.v2.cert import DEFAULT_VALIDITY
from pithead.stratum.v2.channels import (
    CLIENT_MESSAGES,
    ChannelEvent,
    ChannelKind,
    ChannelWorker,
    JobFeed,
    PoolChannel,
    channel_id_of,
    error_reply,
    floor_difficulty,
    max_target_in_range,
    starting_difficulty,
)
from pithead.stratum.v2.errors import (
    DecodeError,
    FramingError,
    NoiseError,
    UnknownMessage,
    WrongSubprotocol,
)
from pithead.stratum.v2.framing import Frame
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.common import (
    ERROR_PROTOCOL_VERSION_MISMATCH,
    ERROR_UNSUPPORTED_FEATURE_FLAGS,
    ERROR_UNSUPPORTED_PROTOCOL,
    PROTOCOL_VERSION,
    MiningSetupFlags,
    Reconnect,
    SetupConnection,
    SetupConnectionError,
    SetupConnectionSuccess,
)
from pithead.stratum.v2.messages.extensions import (
    RequestExtensions,
    RequestExtensionsError,
    RequestExtensionsSuccess,
)
from pithead.stratum.v2.messages.mining import (
    ERROR_INVALID_CHANNEL_ID,
    ERROR_INVALID_USER_IDENTITY,
    ERROR_MAX_TARGET_OUT_OF_RANGE,
    ERROR_MIN_EXTRANONCE_SIZE_TOO_LARGE,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.noise import NoiseTransport, Responder
from pithead.stratum.v2.types import int_from_u256, u256_from_int

MAX_FRAME_FROM_MINER = 16 * 1024
"""Largest payload the pool reads from a mining client. Its biggest message we take is SetupConnection
(five STR0_255 and 11 bytes: 1.3 KiB); a share is 24-60 bytes. SetCustomMiningJob (~74 KiB) needs work
selection, which this pool refuses, so 16 KiB bounds what one client can make us buffer and decrypt."""

MAX_CHANNELS_PER_CONNECTION = 256
"""Channels one connection may hold open: a device opens one; a transparent proxy one per device behind
it (each costs its own job per template, hence the bound); a bigger farm opens one extended channel."""

MAX_CLOSED_CHANNELS_KEPT = 64
"""Closed channels remembered per connection, so a share that crossed its CloseChannel is answered
`invalid-channel-id` instead of closing the connection; older ones are forgotten."""

MAX_FRAMES_PER_TURN = 64
"""Frames of one connection handled per event-loop turn (as V1's MAX_REQUESTS_PER_TURN): 64 shares are a
few ms of hashing; a longer pipeline waits, reading paused, while other connections run."""

GROUP_CHANNEL_NONE = 0
"""`group_channel_id` of every channel: channel ids start at 1, so 0 names no group (none is made)."""

BAN_SCORE = 100.0
"""Misbehaviour score at which the connection is closed and its IP banned (as V1)."""
SCORE_DECAY_PER_SECOND = 1.0
"""Score forgiven per second: an honest miner's occasional reject never adds up; a flood does."""
SCORE_PER_REFUSED_OPEN = 10.0
"""An open channel refused (an unknown user, a bad target ...): a client looping on it is banned."""

SUPPORTED_SETUP_FLAGS = MiningSetupFlags.REQUIRES_STANDARD_JOBS | MiningSetupFlags.REQUIRES_VERSION_ROLLING
"""Client flags the pool takes: standard jobs are its own, version rolling is always allowed. Work
selection (custom jobs, Job Declaration) is not offered."""

ERROR_TOO_MANY_CHANNELS = "too-many-channels"
"""OpenMiningChannel.Error when MAX_CHANNELS_PER_CONNECTION are open (error codes are free-form)."""
ERROR_EXTRANONCE_EXHAUSTED = "extranonce-exhausted"
"""OpenMiningChannel.Error when no extranonce1 is free (only with ~2^32 live sessions)."""
ERROR_EXTENDED_FOR_STANDARD_JOBS = "extended-channels-not-supported-for-standard-jobs"
"""SRI's code: an extended channel on a connection that required standard jobs."""


def pool_responder(authority_secret: bytes, now: int, validity: int = DEFAULT_VALIDITY) -> Responder:
    """The Noise responder of one connection: a fresh static key, its certificate signed by the authority
    (valid from `now` for `validity` seconds), frames bounded by MAX_FRAME_FROM_MINER."""
    return Responder.for_connection(authority_secret, now, validity, max_payload=MAX_FRAME_FROM_MINER)


class IdentityRefused(Exception):
    """The pool's rule refused a channel's `user_identity`; the message says why."""


@dataclass(frozen=True)
class ChannelRules:
    """What every connection of one pool shares (immutable)."""

    authorize: Callable[[str], ChannelWorker]
    """The pool's user rule (V1's `PoolRules.authorize`, through the shell): a user identity → the
    worker, or `IdentityRefused`."""
    vardiff: VarDiffConfig
    start_difficulty: float
    extranonce2_size: int
    """Bytes after extranonce1 in every coinbase (the job book's): what an extended channel's client
    rolls, and a standard channel's fixed, zero filled, part."""
    max_channels: int = MAX_CHANNELS_PER_CONNECTION


class ConnectionState(enum.Enum):
    AWAIT_SETUP = "awaiting SetupConnection"  # the handshake is done (or going on); nothing else yet
    SET_UP = "set up"  # a Mining connection: channels may be opened and used
    CLOSED = "closed"  # closing or gone: nothing more is read or answered


# The table's inputs: the connection-level messages by class, then what else a frame or the stream can be.
CHANNEL = "<channel message>"  # for one of this connection's channels (its own table takes it)
FOREIGN_CHANNEL = "<foreign channel>"  # a channel message naming no channel of this connection
SERVER_MESSAGE = "<server message>"  # a message only a server sends
UNKNOWN = "<unknown message>"  # an (extension, type) this side does not know
MALFORMED = "<malformed>"  # a payload that is not the message it claims to be
WRONG_SUBPROTOCOL = "<wrong subprotocol>"  # a Template Distribution or Job Declaration message
BROKEN = "<broken stream>"  # handshake, MAC or framing failure: the stream is dead
BANNED = "<banned>"  # the misbehaviour score reached BAN_SCORE
LOST = "<connection lost>"  # the shell says the connection is gone

CONNECTION_MESSAGES: tuple[type[Message], ...] = (SetupConnection, RequestExtensions, OpenStandardMiningChannel,
                                                  OpenExtendedMiningChannel)
"""The table's message columns."""
CONNECTION_INPUTS: tuple[type[Message] | str, ...] = (*CONNECTION_MESSAGES, CHANNEL, FOREIGN_CHANNEL,
                                                      SERVER_MESSAGE, UNKNOWN, MALFORMED, WRONG_SUBPROTOCOL,
                                                      BROKEN, BANNED, LOST)
"""Every column of the table."""


# --- events for the shell --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    channel_id: int
    kind: ChannelKind
    worker: ChannelWorker


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the connection (after writing what is queued), and ban its IP when `ban`."""

    reason: str
    ban: bool


ConnectionEvent = ChannelEvent | ChannelOpened | HangUp


# --- the rules a table cell can hold --------------------------------------------------------------------


class RequestRefused(Exception):
    """A handler's refusal: `reply` answers the message, `reason` says why (for the log)."""

    def __init__(self, reply: Message, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


ConnectionHandler = Callable[["PoolConnection", Message, float, list[ConnectionEvent]], None]


@dataclass(frozen=True, slots=True)
class Take:
    """Run `handler` on the message; on success move to `next_state`, on its refusal (its reply sent) to
    `refused_state` (None: stay; CLOSED: the connection is hung up)."""

    handler: ConnectionHandler
    next_state: ConnectionState | None = None
    refused_state: ConnectionState | None = None


@dataclass(frozen=True, slots=True)
class CutOff:
    """Move to CLOSED and ask the shell to hang up (banning the IP when `ban`); with `answer`, first reply
    `invalid-channel-id` to the channel message that caused it."""

    reason: str
    ban: bool = False
    answer: bool = False


@dataclass(frozen=True, slots=True)
class Overlook:
    """No reply, no change."""


@dataclass(frozen=True, slots=True)
class Departed:
    """The connection is gone: move to CLOSED and free every channel's extranonce1."""


ConnectionRule = Take | CutOff | Overlook | Departed


class PoolConnection:
    """One connection's protocol state. Not thread-safe; one per connection."""

    def __init__(self, rules: ChannelRules, feed: JobFeed, allocator: ExtranonceAllocator, responder: Responder,
                 now: float, *, next_channel_id: Callable[[], int], remote: str | None = None) -> None:
        """`responder` holds the pool's static key and its certificate for this connection (see
        `noise.Responder.for_connection`); `next_channel_id()` gives ids unique across the server, so a
        channel id names one channel of one connection."""
        self.rules = rules
        self.feed = feed
        self.allocator = allocator
        self.remote = remote
        self.state = ConnectionState.AWAIT_SETUP
        self.connected_at = now
        self.last_activity = now
        self.setup: SetupConnection | None = None  # the client's, once accepted (vendor, firmware ...)
        self.close_reason: str | None = None
        self._next_channel_id = next_channel_id
        self._responder: Responder | None = responder
        self._transport: NoiseTransport | None = None
        self._channels: dict[int, PoolChannel] = {}
        self._raw_out: list[bytes] = []  # Act 2 of the handshake: sent before any encrypted frame
        self._messages: list[Message] = []
        self._backlog: list[Frame] = []
        self._backlog_pos = 0
        self._score = 0.0
        self._score_at = now

    # --- I/O boundary ----------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Everything queued, encrypted: the handshake's Act 2, then each message's frame."""
        parts = self._raw_out
        self._raw_out = []
        if self._messages:
            transport = self._transport
            assert transport is not None  # no message is queued before the handshake is done
            for message in self._messages:
                parts.append(transport.encrypt(encode_frame(message)))
            self._messages.clear()
        return b"".join(parts)

    @property
    def handshake_done(self) -> bool:
        return self._transport is not None

    @property
    def channels(self) -> dict[int, PoolChannel]:
        """Every channel of this connection, by id (closed ones too, until forgotten)."""
        return self._channels

    @property
    def open_channels(self) -> int:
        return sum(1 for c in self._channels.values() if c.is_open)

    @property
    def ready(self) -> bool:
        """Set up with at least one channel open: the handshake timeout no longer applies."""
        return self.state is ConnectionState.SET_UP and self.open_channels > 0

    @property
    def pending_frames(self) -> int:
        return len(self._backlog) - self._backlog_pos

    @property
    def score(self) -> float:
        return self._score

    def receive(self, data: bytes, now: float, max_frames: int | None = None) -> list[ConnectionEvent]:
        """Feed received bytes; returns the events; what to send waits in `data_to_send`.

        With `max_frames`, at most that many frames are handled now; the rest wait in order
        (`pending_frames`) for `continue_pending`."""
        events: list[ConnectionEvent] = []
        if self.state is ConnectionState.CLOSED:
            return events
        self.last_activity = now
        responder = self._responder
        if responder is not None:
            try:
                step = responder.feed(data)
            except NoiseError as exc:
                self.handle(BROKEN, None, now, events, f"handshake: {exc}")
                return events
            if step.transport is None:
                return events
            self._responder = None
            self._transport = step.transport
            self._raw_out.append(step.send)
            data = step.leftover
            if not data:
                return events
        transport = self._transport
        assert transport is not None
        try:
            frames = transport.feed(data)
        except (NoiseError, FramingError) as exc:
            self.handle(BROKEN, None, now, events, str(exc))
            return events
        if self._backlog:
            self._backlog.extend(frames)
        else:
            self._backlog = frames
        self._run_backlog(now, events, max_frames)
        return events

    def continue_pending(self, now: float, max_frames: int | None = None) -> list[ConnectionEvent]:
        """Handle the next frames of the backlog left by `receive(..., max_frames)`."""
        events: list[ConnectionEvent] = []
        if self.state is not ConnectionState.CLOSED:
            self._run_backlog(now, events, max_frames)
        return events

    def _run_backlog(self, now: float, events: list[ConnectionEvent], max_frames: int | None) -> None:
        backlog = self._backlog
        pos = self._backlog_pos
        end = len(backlog) if max_frames is None else min(len(backlog), pos + max_frames)
        while pos < end and self.state is not ConnectionState.CLOSED:
            self.receive_frame(backlog[pos], now, events)
            pos += 1
        if pos >= len(backlog) or self.state is ConnectionState.CLOSED:
            self._backlog = []
            self._backlog_pos = 0
        else:
            self._backlog_pos = pos
        self._flush_batches()

    def receive_frame(self, frame: Frame, now: float, events: list[ConnectionEvent]) -> None:
        """One decrypted frame: decoded, classified, through the table."""
        try:
            message, _ = decode_frame(frame, protocol=Subprotocol.MINING)
        except WrongSubprotocol as exc:
            self.handle(WRONG_SUBPROTOCOL, None, now, events, str(exc))
            return
        except UnknownMessage as exc:
            self.handle(UNKNOWN, None, now, events, str(exc))
            return
        except DecodeError as exc:
            self.handle(MALFORMED, None, now, events, str(exc))
            return
        kind: type[Message] | str
        if type(message) in CONNECTION_MESSAGES:
            kind = type(message)
        elif type(message) in CLIENT_MESSAGES:
            kind = CHANNEL if channel_id_of(message) in self._channels else FOREIGN_CHANNEL
        else:
            kind = SERVER_MESSAGE
        self.handle(kind, message, now, events, type(message).NAME)
        if self._score >= BAN_SCORE and self.state is not ConnectionState.CLOSED:
            self.handle(BANNED, None, now, events, "too many invalid shares or messages")

    def handle(self, kind: type[Message] | str, message: Message | None, now: float,
               events: list[ConnectionEvent], detail: str = "") -> None:
        """One input through the transition table; `detail` says what it was (for a hang-up's reason)."""
        rule = CONNECTION_TRANSITIONS[(self.state, kind)]
        if isinstance(rule, Take):
            assert message is not None, f"{kind} needs its message"
            try:
                rule.handler(self, message, now, events)
            except RequestRefused as refusal:
                self._messages.append(refusal.reply)
                if rule.refused_state is not None:
                    self.state = rule.refused_state
                    if rule.refused_state is ConnectionState.CLOSED:
                        self.close_reason = refusal.reason
                        events.append(HangUp(refusal.reason, False))
                return
            if rule.next_state is not None:
                self.state = rule.next_state
        elif isinstance(rule, CutOff):
            if rule.answer and message is not None:
                reply = error_reply(message, ERROR_INVALID_CHANNEL_ID)
                if reply is not None:
                    self._messages.append(reply)
            self.state = ConnectionState.CLOSED
            self.close_reason = f"{rule.reason}: {detail}" if detail else rule.reason
            events.append(HangUp(self.close_reason, rule.ban))
        elif isinstance(rule, Departed):
            self.state = ConnectionState.CLOSED
            for channel in self._channels.values():
                channel.release()
        elif not isinstance(rule, Overlook):
            raise AssertionError(f"unknown rule {rule!r}")

    def close(self) -> None:
        """The connection is gone (the shell's connection_lost): the table's LOST input."""
        self.handle(LOST, None, self.last_activity, [])

    # --- the pool's calls ------------------------------------------------------------------------------
    def push_work(self, now: float) -> list[ConnectionEvent]:
        """The job book has new work: each open channel gets its newest job (a new tip is activated); a
        channel whose newest job is the one it has already got is left alone."""
        events: list[ConnectionEvent] = []
        if self.state is not ConnectionState.SET_UP:
            return events
        out: list[Message] = []
        channel_events: list[ChannelEvent] = []
        for channel in self._channels.values():
            if channel.is_open:
                book = self.feed.current(channel.worker.payout_script, channel.extranonce1)
                if book is not None and not (channel.current is not None and channel.current.book_id == book.book_id):
                    channel.take_work(book, now, out, channel_events)
        self._messages.extend(out)
        events.extend(channel_events)
        return events

    def reconnect(self, host: str = "", port: int = 0) -> None:
        """Ask the client to reconnect (Reconnect, spec §3.6.5) to `host`:`port` (empty / 0: the same). The
        new server must prove the same authority: a client never follows one to another pool's key."""
        if self.state is ConnectionState.SET_UP:
            self._messages.append(Reconnect(host, port))

    def set_extranonce_prefix(self, channel_id: int, now: float) -> bytes:
        """Give an open channel a new extranonce1 (SetExtranoncePrefix); returns it. The earlier one is
        freed once no job the channel remembers was sent for it."""
        channel = self._channels.get(channel_id)
        if channel is None or not channel.is_open:
            raise ValueError(f"no open channel {channel_id} on this connection")
        out: list[Message] = []
        channel.set_extranonce_prefix(self.allocator.allocate(), now, out)
        self._messages.extend(out)
        return channel.extranonce1

    def tick(self, now: float) -> None:
        """Housekeeping: vardiff for quiet channels."""
        if self.state is not ConnectionState.SET_UP:
            return
        out: list[Message] = []
        for channel in self._channels.values():
            channel.tick(now, out)
        self._messages.extend(out)

    # --- bookkeeping beside the table ------------------------------------------------------------------
    def _penalize(self, amount: float, now: float) -> None:
        """Add to the decaying misbehaviour score (checked after each frame, once it is answered)."""
        self._score = max(0.0, self._score - (now - self._score_at) * SCORE_DECAY_PER_SECOND) + amount
        self._score_at = now

    def _flush_batches(self) -> None:
        """The end of a turn: every channel acknowledges the shares it accepted in it."""
        out: list[Message] = []
        for channel in self._channels.values():
            channel.flush(out)
        self._messages.extend(out)

    def _forget_closed(self) -> None:
        closed = [cid for cid, c in self._channels.items() if not c.is_open]
        for cid in closed[:max(0, len(closed) - MAX_CLOSED_CHANNELS_KEPT)]:
            del self._channels[cid]

    # --- handlers (referenced by the table) ------------------------------------------------------------
    def _setup_connection(self, message: Message, now: float, events: list[ConnectionEvent]) -> None:
        assert isinstance(message, SetupConnection)
        if message.protocol != Subprotocol.MINING:
            raise RequestRefused(SetupConnectionError(0, ERROR_UNSUPPORTED_PROTOCOL),
                                 f"SetupConnection for subprotocol {message.protocol}; this is a Mining endpoint")
        if not message.min_version <= PROTOCOL_VERSION <= message.max_version:
            raise RequestRefused(SetupConnectionError(0, ERROR_PROTOCOL_VERSION_MISMATCH),
                                 f"versions {message.min_version}..{message.max_version} exclude "
                                 f"{PROTOCOL_VERSION}")
        # int(): `~` of an IntFlag complements only its defined bits, and would let unknown flags through
        unsupported = message.flags & ~int(SUPPORTED_SETUP_FLAGS) & 0xFFFFFFFF
        if unsupported:
            raise RequestRefused(SetupConnectionError(unsupported, ERROR_UNSUPPORTED_FEATURE_FLAGS),
                                 f"unsupported SetupConnection flags 0x{unsupported:x}")
        self.setup = message
        self._messages.append(SetupConnectionSuccess(PROTOCOL_VERSION, 0))

    def _request_extensions(self, message: Message, now: float, events: list[ConnectionEvent]) -> None:
        assert isinstance(message, RequestExtensions)
        if message.requested_extensions:
            self._messages.append(RequestExtensionsError(message.request_id, message.requested_extensions, ()))
        else:
            self._messages.append(RequestExtensionsSuccess(message.request_id, ()))

    def _open_standard(self, message: Message, now: float, events: list[ConnectionEvent]) -> None:
        assert isinstance(message, OpenStandardMiningChannel)
        channel = self._open(message, ChannelKind.STANDARD, now, events)
        self._messages.append(OpenStandardMiningChannelSuccess(
            message.request_id, channel.channel_id, u256_from_int(channel.level.target), channel.extranonce_prefix,
            GROUP_CHANNEL_NONE))
        self._first_work(channel, now, events)

    def _open_extended(self, message: Message, now: float, events: list[ConnectionEvent]) -> None:
        assert isinstance(message, OpenExtendedMiningChannel)
        setup = self.setup
        if setup is not None and setup.flags & MiningSetupFlags.REQUIRES_STANDARD_JOBS:
            self._refuse_open(message.request_id, ERROR_EXTENDED_FOR_STANDARD_JOBS, now)
        if message.min_extranonce_size > self.rules.extranonce2_size:
            self._refuse_open(message.request_id, ERROR_MIN_EXTRANONCE_SIZE_TOO_LARGE, now,
                              f"asks {message.min_extranonce_size} bytes of extranonce; the pool gives "
                              f"{self.rules.extranonce2_size}")
        channel = self._open(message, ChannelKind.EXTENDED, now, events)
        self._messages.append(OpenExtendedMiningChannelSuccess(
            message.request_id, channel.channel_id, u256_from_int(channel.level.target), channel.extranonce_size,
            channel.extranonce_prefix, GROUP_CHANNEL_NONE))
        self._first_work(channel, now, events)

    def _open(self, message: OpenStandardMiningChannel | OpenExtendedMiningChannel, kind: ChannelKind,
              now: float, events: list[ConnectionEvent]) -> PoolChannel:
        """The checks both kinds share, then the channel (not yet announced)."""
        rid = message.request_id
        if self.open_channels >= self.rules.max_channels:
            self._refuse_open(rid, ERROR_TOO_MANY_CHANNELS, now)
        try:
            worker = self.rules.authorize(message.user_identity)
        except IdentityRefused as exc:
            self._refuse_open(rid, ERROR_INVALID_USER_IDENTITY, now, str(exc))
        try:
            start = starting_difficulty(message.nominal_hash_rate, self.rules.vardiff.target_interval)
        except ValueError as exc:
            self._refuse_open(rid, str(exc), now)
        max_target = int_from_u256(message.max_target)
        if not max_target_in_range(max_target, self.rules.vardiff.max_difficulty):
            self._refuse_open(rid, ERROR_MAX_TARGET_OUT_OF_RANGE, now,
                              f"max_target allows no difficulty up to the pool's {self.rules.vardiff.max_difficulty:g}")
        floor = floor_difficulty(max_target)
        try:
            extranonce1 = self.allocator.allocate()
        except ExtranonceExhausted:
            self._refuse_open(rid, ERROR_EXTRANONCE_EXHAUSTED, now)
        vardiff = VarDiff(self.rules.vardiff, self.rules.start_difficulty, now)
        if start is not None:
            vardiff.suggest(start, now)
        vardiff.set_floor(floor, now)
        size = self.rules.extranonce2_size
        standard = kind is ChannelKind.STANDARD
        channel = PoolChannel(
            self._next_channel_id(), kind, worker, feed=self.feed, allocator=self.allocator,
            extranonce1=extranonce1, extranonce2=bytes(size) if standard else b"",
            extranonce_size=0 if standard else size, vardiff=vardiff, max_target=max_target,
            share_interval=self.rules.vardiff.target_interval, penalize=self._penalize)
        self._forget_closed()
        self._channels[channel.channel_id] = channel
        events.append(ChannelOpened(channel.channel_id, kind, worker))
        return channel

    def _first_work(self, channel: PoolChannel, now: float, events: list[ConnectionEvent]) -> None:
        book = self.feed.current(channel.worker.payout_script, channel.extranonce1)
        if book is not None:
            out: list[Message] = []
            channel_events: list[ChannelEvent] = []
            channel.take_work(book, now, out, channel_events)
            self._messages.extend(out)
            events.extend(channel_events)

    def _refuse_open(self, request_id: int, code: str, now: float, reason: str | None = None) -> NoReturn:
        self._penalize(SCORE_PER_REFUSED_OPEN, now)
        raise RequestRefused(OpenMiningChannelError(request_id, code), reason or code)

    def _to_channel(self, message: Message, now: float, events: list[ConnectionEvent]) -> None:
        channel = self._channels[channel_id_of(message)]
        out: list[Message] = []
        channel_events: list[ChannelEvent] = []
        channel.handle(message, now, out, channel_events)
        self._messages.extend(out)
        events.extend(channel_events)


# --- the transition table: the spec ----------------------------------------------------------------------
# Every (state, input) pair, legal or not. SetupConnection comes first and once; a refused one is answered
# and the connection hung up (the client has nothing else to do on it). Channels are opened and used only
# once set up. A frame that breaks the stream, does not decode, belongs to another subprotocol, comes from
# the wrong side or names another connection's channel hangs up the connection (a clear reason in the
# log); none of them bans the IP — a tampered frame may be an attacker on the path, not the miner — only
# the misbehaviour score does. Unknown messages are dropped, as the spec says (§3.4).

_SETUP_FIRST = CutOff("SetupConnection must come first")
_NOT_FROM_CLIENT = CutOff("a message only a server sends")
_NOT_OURS = CutOff("a channel message for no channel of this connection", answer=True)
_UNDECODABLE = CutOff("a message that does not decode")
_OTHER_SUBPROTOCOL = CutOff("a message of another subprotocol")
_DEAD_STREAM = CutOff("the stream failed")
_BAN = CutOff("banned", ban=True)

CONNECTION_TRANSITIONS: dict[tuple[ConnectionState, type[Message] | str], ConnectionRule] = {
    # AWAIT_SETUP: the first message must be SetupConnection for the Mining subprotocol
    (ConnectionState.AWAIT_SETUP, SetupConnection): Take(PoolConnection._setup_connection, ConnectionState.SET_UP,
                                                         ConnectionState.CLOSED),
    (ConnectionState.AWAIT_SETUP, RequestExtensions): _SETUP_FIRST,
    (ConnectionState.AWAIT_SETUP, OpenStandardMiningChannel): _SETUP_FIRST,
    (ConnectionState.AWAIT_SETUP, OpenExtendedMiningChannel): _SETUP_FIRST,
    (ConnectionState.AWAIT_SETUP, CHANNEL): _SETUP_FIRST,
    (ConnectionState.AWAIT_SETUP, FOREIGN_CHANNEL): _SETUP_FIRST,
    (ConnectionState.AWAIT_SETUP, SERVER_MESSAGE): _NOT_FROM_CLIENT,
    (ConnectionState.AWAIT_SETUP, UNKNOWN): Overlook(),
    (ConnectionState.AWAIT_SETUP, MALFORMED): _UNDECODABLE,
    (ConnectionState.AWAIT_SETUP, WRONG_SUBPROTOCOL): _OTHER_SUBPROTOCOL,
    (ConnectionState.AWAIT_SETUP, BROKEN): _DEAD_STREAM,
    (ConnectionState.AWAIT_SETUP, BANNED): _BAN,
    (ConnectionState.AWAIT_SETUP, LOST): Departed(),
    # SET_UP: a Mining connection — channels are opened and mined on
    (ConnectionState.SET_UP, SetupConnection): CutOff("SetupConnection sent twice"),
    (ConnectionState.SET_UP, RequestExtensions): Take(PoolConnection._request_extensions),
    (ConnectionState.SET_UP, OpenStandardMiningChannel): Take(PoolConnection._open_standard),
    (ConnectionState.SET_UP, OpenExtendedMiningChannel): Take(PoolConnection._open_extended),
    (ConnectionState.SET_UP, CHANNEL): Take(PoolConnection._to_channel),
    (ConnectionState.SET_UP, FOREIGN_CHANNEL): _NOT_OURS,
    (ConnectionState.SET_UP, SERVER_MESSAGE): _NOT_FROM_CLIENT,
    (ConnectionState.SET_UP, UNKNOWN): Overlook(),
    (ConnectionState.SET_UP, MALFORMED): _UNDECODABLE,
    (ConnectionState.SET_UP, WRONG_SUBPROTOCOL): _OTHER_SUBPROTOCOL,
    (ConnectionState.SET_UP, BROKEN): _DEAD_STREAM,
    (ConnectionState.SET_UP, BANNED): _BAN,
    (ConnectionState.SET_UP, LOST): Departed(),
    # CLOSED: nothing more is read or answered; the connection going away still frees the extranonces
    (ConnectionState.CLOSED, SetupConnection): Overlook(),
    (ConnectionState.CLOSED, RequestExtensions): Overlook(),
    (ConnectionState.CLOSED, OpenStandardMiningChannel): Overlook(),
    (ConnectionState.CLOSED, OpenExtendedMiningChannel): Overlook(),
    (ConnectionState.CLOSED, CHANNEL): Overlook(),
    (ConnectionState.CLOSED, FOREIGN_CHANNEL): Overlook(),
    (ConnectionState.CLOSED, SERVER_MESSAGE): Overlook(),
    (ConnectionState.CLOSED, UNKNOWN): Overlook(),
    (ConnectionState.CLOSED, MALFORMED): Overlook(),
    (ConnectionState.CLOSED, WRONG_SUBPROTOCOL): Overlook(),
    (ConnectionState.CLOSED, BROKEN): Overlook(),
    (ConnectionState.CLOSED, BANNED): Overlook(),
    (ConnectionState.CLOSED, LOST): Departed(),
}

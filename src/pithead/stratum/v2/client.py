"""The miner side of one Stratum V2 connection as a pure state machine: bytes in, events out, bytes to send.

What it is: `MinerConnection` — the Noise handshake as the initiator, checking the pool's certificate
against the pinned authority key and a `now` passed in (a wrong or expired certificate raises its
`CertificateError` before anything is sent in the clear or encrypted), then one mining channel, standard
or extended, driven by the transition table `MINER_TRANSITIONS`: every (state, input) pair listed, the
illegal ones too. The states: `NEW` (the handshake is not done), `SETTING_UP` (SetupConnection sent),
`OPENING` (the channel asked for), `WAITING` (the channel is open, no job active yet), `MINING`,
`CLOSED`. The inputs: the pool's messages by class, the replies to requests this side never makes
(`NOT_REQUESTED`), a message only a client sends (`CLIENT_MESSAGE`), a channel message for another
channel (`STRAY_CHANNEL`, dropped), an unknown one (`UNKNOWN`, dropped as the spec says), and our own
`START` (once the handshake is done) and `CLOSE`.

Work (spec §5.3.15-17): a job without `min_ntime` is a future job, kept until the SetNewPrevHash that
names it activates it (every other queued job is then dropped, and the work is `clean`); a job with
`min_ntime` is active at once on the last prev hash. Each `WorkReady` carries a `ChannelWork`: a
standard job's merkle root, or an extended job's coinbase halves, merkle path and the channel's
extranonce prefix and size — the miner's shell turns it into headers. Targets: a job takes the channel's
target when it is activated; SetTarget changes it for the jobs after it and, for the job being mined, to
the harder of the two at once — so no share is sent that a pool applying either reading of §5.3.21
would refuse. Shares: `submit` sends SubmitSharesStandard or SubmitSharesExtended with a sequence number
and keeps the caller's token; SubmitShares.Error answers one at once, SubmitShares.Success every share
up to its `last_sequence_number` still waiting (errors always come first, §5.3.13).

Beside the table, not in it: the handshake and the transport, decoding and routing by channel id, the
future jobs, the shares in flight. A pool's bad input raises `PeerViolation` (or a `DecodeError`, a Noise
error): the shell drops the connection. What it is not: sockets, timers, reconnect policy or hashing
(`stratum.client.v2` and `miner`); nothing here reads the clock.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from pithead.stratum.v2.channels import CLIENT_MESSAGES, ChannelKind
from pithead.stratum.v2.errors import NotMining, PeerViolation, TooManyInFlight, UnknownMessage
from pithead.stratum.v2.framing import MAX_PAYLOAD_FROM_SERVER
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.common import (
    PROTOCOL_VERSION,
    ChannelEndpointChanged,
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
    CloseChannel,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    SetCustomMiningJobError,
    SetCustomMiningJobSuccess,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
    UpdateChannelError,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.noise import Initiator, NoiseTransport
from pithead.stratum.v2.types import int_from_u256, u256_from_int

MAX_PENDING_SHARES = 1024
"""Shares sent and not yet answered. A pool batches its acknowledgements (SRI: 10 at a time); one that
leaves 1024 unanswered is dead, and the shell reconnects rather than keep tokens without bound."""
MAX_FUTURE_JOBS = 16
"""Future jobs kept until a SetNewPrevHash names one (pools send one or two per block); the oldest go."""
MAX_GROUPS = 16
"""Group channel ids remembered for our channel (SetGroupChannel; a pool uses one)."""
MAX_TARGET = (1 << 256) - 1
"""The easiest target: a `max_target` that leaves the pool free to choose."""

SETUP_FLAGS = MiningSetupFlags.REQUIRES_VERSION_ROLLING
"""SetupConnection flags of every miner: it rolls the BIP323 bits of every job (the pool must not send
jobs that forbid it); a standard channel's miner also requires standard jobs."""


@dataclass(frozen=True, slots=True)
class MinerChannelConfig:
    """What the miner asks of the pool: who it is and which channel."""

    user_identity: str  # ADDRESS[.worker] on pithead's pool
    kind: ChannelKind = ChannelKind.STANDARD
    nominal_hash_rate: float = 0.0  # H/s; the pool's starting difficulty follows it
    max_target: int = MAX_TARGET  # the easiest share target this miner wants
    min_extranonce_size: int = 0  # extended channels: bytes of extranonce the miner needs to roll
    vendor: str = "pithead"
    hardware_version: str = "cpu"
    firmware: str = "pithead-miner"
    device_id: str = ""
    endpoint_host: str = ""  # the host and port the miner dialled (SetupConnection says so)
    endpoint_port: int = 0
    max_pending_shares: int = MAX_PENDING_SHARES  # a farm proxy's channel carries a farm's burst: more


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ChannelWork:
    """A job made mineable: everything the header needs. A standard job gives `merkle_root`; an extended
    one the coinbase halves around `extranonce_prefix` and `extranonce_size` bytes the miner rolls, and
    the merkle path (deepest first)."""

    channel_id: int
    job_id: int
    prev_hash: bytes  # raw header bytes (internal order)
    version: int
    nbits: int
    ntime: int  # the job's min_ntime (or the SetNewPrevHash's): where nTime starts
    target: int  # the share target it is mined at
    version_rolling: bool
    merkle_root: bytes | None = None
    coinbase_prefix: bytes = b""
    coinbase_suffix: bytes = b""
    merkle_path: tuple[bytes, ...] = ()
    extranonce_prefix: bytes = b""
    extranonce_size: int = 0


@dataclass(frozen=True, slots=True)
class SetupDenied:
    code: str
    flags: int  # the flags the pool does not support (0: another reason)


@dataclass(frozen=True, slots=True)
class ChannelGranted:
    channel_id: int
    kind: ChannelKind
    target: int
    extranonce_prefix: bytes
    extranonce_size: int


@dataclass(frozen=True, slots=True)
class ChannelDenied:
    code: str


@dataclass(frozen=True, slots=True)
class WorkReady:
    """Mine this now; `clean`: a new block — work (and unsent shares) of earlier jobs is stale."""

    work: ChannelWork
    clean: bool


@dataclass(frozen=True, slots=True)
class TargetSet:
    target: int


@dataclass(frozen=True, slots=True)
class ShareAcknowledged:
    token: object
    sequence_number: int


@dataclass(frozen=True, slots=True)
class ShareDenied:
    token: object
    sequence_number: int
    code: str


@dataclass(frozen=True, slots=True)
class UpdateRefused:
    code: str


@dataclass(frozen=True, slots=True)
class ChannelClosedByPool:
    reason: str


@dataclass(frozen=True, slots=True)
class ReconnectAsked:
    """Reconnect to `host`:`port` (None: the same); the new server must prove the same authority."""

    host: str | None
    port: int | None


MinerEvent = (SetupDenied | ChannelGranted | ChannelDenied | WorkReady | TargetSet | ShareAcknowledged | ShareDenied
              | UpdateRefused | ChannelClosedByPool | ReconnectAsked)


class MinerState(enum.Enum):
    NEW = "new"  # the handshake is not done: nothing sent but Act 1
    SETTING_UP = "setting up"  # SetupConnection sent
    OPENING = "opening"  # the channel asked for
    WAITING = "waiting"  # the channel is open; no job active yet
    MINING = "mining"  # a job is active
    CLOSED = "closed"  # closed (by us, or the pool refused or closed our channel)


# The table's inputs: the pool's messages by class, then:
NOT_REQUESTED = "<reply to no request of ours>"  # RequestExtensions.*, SetCustomMiningJob.* (never sent)
CLIENT_MESSAGE = "<client message>"  # a message only a client sends
STRAY_CHANNEL = "<stray channel message>"  # for a channel (or group) that is not ours
UNKNOWN = "<unknown message>"
START = "<start>"  # the handshake is done: set up and open the channel
CLOSE = "<close>"

SERVER_MESSAGES: tuple[type[Message], ...] = (
    SetupConnectionSuccess, SetupConnectionError, OpenStandardMiningChannelSuccess, OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError, NewMiningJob, NewExtendedMiningJob, SetNewPrevHash, SetTarget, SetExtranoncePrefix,
    SubmitSharesSuccess, SubmitSharesError, UpdateChannelError, CloseChannel, Reconnect, SetGroupChannel,
    ChannelEndpointChanged)
"""The pool's messages: the table's message columns."""
MINER_INPUTS: tuple[type[Message] | str, ...] = (*SERVER_MESSAGES, NOT_REQUESTED, CLIENT_MESSAGE, STRAY_CHANNEL,
                                                 UNKNOWN, START, CLOSE)
"""Every column of the table."""
_NOT_REQUESTED = frozenset({RequestExtensionsSuccess, RequestExtensionsError, SetCustomMiningJobSuccess,
                            SetCustomMiningJobError})
_CLIENT_ONLY = frozenset({SetupConnection, RequestExtensions, OpenStandardMiningChannel, OpenExtendedMiningChannel,
                          *(m for m in CLIENT_MESSAGES if m is not CloseChannel)})
_CONNECTION_MESSAGES = frozenset({SetupConnectionSuccess, SetupConnectionError, OpenStandardMiningChannelSuccess,
                                  OpenExtendedMiningChannelSuccess, OpenMiningChannelError, Reconnect,
                                  SetGroupChannel})
"""The pool's messages that name no channel (the rest are channel messages: routed by their id)."""


# --- the rules a table cell can hold --------------------------------------------------------------------

PoolMessageHandler = Callable[["MinerConnection", Message, list[MinerEvent]], None]
OwnCallHandler = Callable[["MinerConnection"], None]


@dataclass(frozen=True, slots=True)
class OnServerMessage:
    """Run `handler` on the pool's message; on success move to `next_state` (None: stay)."""

    handler: PoolMessageHandler
    next_state: MinerState | None = None


@dataclass(frozen=True, slots=True)
class OnOwnCall:
    """One of our calls (start, close): run `handler` (if any), then move to `next_state`."""

    handler: OwnCallHandler | None
    next_state: MinerState | None = None


@dataclass(frozen=True, slots=True)
class Breach:
    """The pool broke the protocol: `PeerViolation` (the shell drops the connection)."""

    why: str


@dataclass(frozen=True, slots=True)
class Unusable:
    """Our side cannot do this now: `NotMining`."""

    why: str


@dataclass(frozen=True, slots=True)
class LetBe:
    """Nothing to do, no change."""


MinerRule = OnServerMessage | OnOwnCall | Breach | Unusable | LetBe


class MinerConnection:
    """One connection's protocol state (see the module docstring). Not thread-safe."""

    def __init__(self, config: MinerChannelConfig, authority_key: bytes | None, *,
                 max_payload: int = MAX_PAYLOAD_FROM_SERVER, initiator: Initiator | None = None) -> None:
        """`authority_key` is the pool's pinned x-only authority key; None checks no certificate (a LAN
        only: the shell must say so). `initiator` replaces the handshake's (tests: fixed keys)."""
        self.config = config
        self.state = MinerState.NEW
        self.channel_id: int | None = None
        self.target = config.max_target
        self.extranonce_prefix = b""
        self.extranonce_size = 0
        self.current_work: ChannelWork | None = None
        self.authenticated = False
        self._initiator: Initiator | None = initiator or Initiator(authority_key, max_payload=max_payload)
        self._transport: NoiseTransport | None = None
        self._future: OrderedDict[int, NewMiningJob | NewExtendedMiningJob] = OrderedDict()
        self._prev: SetNewPrevHash | None = None
        self._groups: set[int] = set()
        self._next_sequence = 1
        self._pending: OrderedDict[int, object] = OrderedDict()
        self._raw_out: list[bytes] = []
        self._messages: list[Message] = []
        self._started = False

    @property
    def handshake_done(self) -> bool:
        """The pool proved itself (or, with no pinned key, the handshake merely completed)."""
        return self._transport is not None

    @property
    def pending_shares(self) -> int:
        return len(self._pending)

    @property
    def certificate_valid_until(self) -> int | None:
        """The pool certificate's `not_valid_after`, once the handshake has read it."""
        certificate = self._initiator.certificate if self._initiator is not None else None
        return certificate.not_valid_after if certificate is not None else None

    # --- I/O boundary ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Queue the handshake's Act 1 (the channel follows once the pool has proved itself)."""
        if self._initiator is None or self._started:
            raise NotMining("start() is called once per connection")
        self._started = True
        self._raw_out.append(self._initiator.start())

    def data_to_send(self) -> bytes:
        parts = self._raw_out
        self._raw_out = []
        if self._messages:
            transport = self._transport
            assert transport is not None  # nothing is queued before the handshake is done
            for message in self._messages:
                parts.append(transport.encrypt(encode_frame(message)))
            self._messages.clear()
        return b"".join(parts)

    def receive(self, data: bytes, now: float) -> list[MinerEvent]:
        """Feed bytes from the pool; returns the events. Raises a `CertificateError` (a pool the pinned
        key does not vouch for), another Noise error, a `DecodeError` or a `PeerViolation`."""
        events: list[MinerEvent] = []
        initiator = self._initiator
        if self._transport is None:
            if initiator is None or not self._started:
                raise NotMining("receive() before start()")
            step = initiator.feed(data, now)
            if step.transport is None:
                return events
            self._transport = step.transport
            self.authenticated = step.transport.authenticated
            self.handle(START, None, events)
            data = step.leftover
            if not data:
                return events
        for frame in self._transport.feed(data):
            try:
                message, _ = decode_frame(frame, protocol=Subprotocol.MINING)
            except UnknownMessage:
                self.handle(UNKNOWN, None, events)
                continue
            self.handle(self._input_of(message), message, events)
        return events

    def _input_of(self, message: Message) -> type[Message] | str:
        """Which column a decoded message is (routing beside the table)."""
        kind = type(message)
        if kind in _NOT_REQUESTED:
            return NOT_REQUESTED
        if kind in _CLIENT_ONLY:
            return CLIENT_MESSAGE
        if kind not in _CONNECTION_MESSAGES:  # a channel message: ours, our group's, or stray
            channel_id = getattr(message, "channel_id", None)
            if channel_id is None or (channel_id != self.channel_id and channel_id not in self._groups):
                return STRAY_CHANNEL
        return kind

    def handle(self, kind: type[Message] | str, message: Message | None, events: list[MinerEvent]) -> None:
        """One input through the transition table."""
        rule = MINER_TRANSITIONS[(self.state, kind)]
        if isinstance(rule, OnServerMessage):
            assert message is not None, f"{kind} needs its message"
            rule.handler(self, message, events)
        elif isinstance(rule, OnOwnCall):
            if rule.handler is not None:
                rule.handler(self)
        elif isinstance(rule, Breach):
            name = kind if isinstance(kind, str) else kind.NAME
            raise PeerViolation(f"{name} in state {self.state.value}: {rule.why}")
        elif isinstance(rule, Unusable):
            raise NotMining(rule.why)
        else:
            return  # LetBe
        if rule.next_state is not None:
            self.state = rule.next_state

    def close(self) -> None:
        self.handle(CLOSE, None, [])

    # --- our calls -------------------------------------------------------------------------------------
    def submit(self, job_id: int, nonce: int, ntime: int, version: int, extranonce: bytes, token: object) -> int:
        """Queue a share of the channel's job `job_id` (with the extranonce rolled, on an extended channel);
        returns its sequence number. `token` comes back in its ShareAcknowledged / ShareDenied."""
        channel_id = self.channel_id
        if self.state is not MinerState.MINING or channel_id is None:
            raise NotMining(f"no share can be sent in state {self.state.value}")
        if len(self._pending) >= self.config.max_pending_shares:
            raise TooManyInFlight(f"{len(self._pending)} shares unanswered")
        seq = self._next_sequence
        self._next_sequence = seq + 1 if seq < 0xFFFFFFFF else 1
        self._pending[seq] = token
        if self.config.kind is ChannelKind.STANDARD:
            self._messages.append(SubmitSharesStandard(channel_id, seq, job_id, nonce, ntime, version))
        else:
            self._messages.append(SubmitSharesExtended(channel_id, seq, job_id, nonce, ntime, version, extranonce))
        return seq

    def update_channel(self, nominal_hash_rate: float) -> None:
        """Queue UpdateChannel (§5.3.7): the channel's hashrate changed (a farm proxy's channel carries the
        machines behind it), so the pool's target can follow; the maximum target stays the configured one.
        No reply on success (the pool may answer SetTarget); an `UpdateRefused` event if it refuses."""
        channel_id = self.channel_id
        if self.state not in (MinerState.WAITING, MinerState.MINING) or channel_id is None:
            raise NotMining(f"no channel to update in state {self.state.value}")
        if not math.isfinite(nominal_hash_rate) or nominal_hash_rate < 0:
            raise ValueError(f"a nominal hashrate is H/s >= 0, not {nominal_hash_rate!r}")
        self._messages.append(UpdateChannel(channel_id, nominal_hash_rate, u256_from_int(self.config.max_target)))

    def _start(self) -> None:
        cfg = self.config
        flags = SETUP_FLAGS
        if cfg.kind is ChannelKind.STANDARD:
            flags |= MiningSetupFlags.REQUIRES_STANDARD_JOBS
        self._messages.append(SetupConnection(Subprotocol.MINING, PROTOCOL_VERSION, PROTOCOL_VERSION, int(flags),
                                              cfg.endpoint_host, cfg.endpoint_port, cfg.vendor, cfg.hardware_version,
                                              cfg.firmware, cfg.device_id))

    # --- the pool's messages (referenced by the table) -------------------------------------------------
    def _set_up(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, SetupConnectionSuccess)
        cfg = self.config
        max_target = u256_from_int(cfg.max_target)
        if cfg.kind is ChannelKind.STANDARD:
            self._messages.append(OpenStandardMiningChannel(1, cfg.user_identity, cfg.nominal_hash_rate, max_target))
        else:
            self._messages.append(OpenExtendedMiningChannel(1, cfg.user_identity, cfg.nominal_hash_rate, max_target,
                                                            cfg.min_extranonce_size))

    def _setup_refused(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, SetupConnectionError)
        events.append(SetupDenied(message.error_code, message.flags))

    def _opened_standard(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, OpenStandardMiningChannelSuccess)
        self._opened(ChannelKind.STANDARD, message.channel_id, message.target, message.extranonce_prefix, 0,
                     message.group_channel_id, events)

    def _opened_extended(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, OpenExtendedMiningChannelSuccess)
        if message.extranonce_size < self.config.min_extranonce_size:
            raise PeerViolation(f"extranonce_size {message.extranonce_size} < the {self.config.min_extranonce_size} "
                                "asked for")
        if len(message.extranonce_prefix) + message.extranonce_size > 32:
            raise PeerViolation("extranonce prefix and size exceed the 32 bytes of an extended extranonce")
        self._opened(ChannelKind.EXTENDED, message.channel_id, message.target, message.extranonce_prefix,
                     message.extranonce_size, message.group_channel_id, events)

    def _opened(self, kind: ChannelKind, channel_id: int, target: bytes, prefix: bytes, size: int, group: int,
                events: list[MinerEvent]) -> None:
        if kind is not self.config.kind:
            raise PeerViolation(f"a {kind.value} channel opened; a {self.config.kind.value} one was asked for")
        self.channel_id = channel_id
        self.target = _target(target)
        self.extranonce_prefix, self.extranonce_size = prefix, size
        if group and group != channel_id:
            self._groups.add(group)
        events.append(ChannelGranted(channel_id, kind, self.target, prefix, size))

    def _open_refused(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, OpenMiningChannelError)
        events.append(ChannelDenied(message.error_code))

    def _job(self, message: Message, events: list[MinerEvent]) -> None:
        """NewMiningJob / NewExtendedMiningJob: a future job is kept; an active one is mined at once."""
        assert isinstance(message, NewMiningJob | NewExtendedMiningJob)
        standard = isinstance(message, NewMiningJob)
        if standard is not (self.config.kind is ChannelKind.STANDARD):
            raise PeerViolation(f"{message.NAME} on a {self.config.kind.value} channel")
        if message.min_ntime is None:
            if len(self._future) >= MAX_FUTURE_JOBS:
                self._future.popitem(last=False)
            self._future[message.job_id] = message
            return
        prev = self._prev
        if prev is None:
            raise PeerViolation("an active job before any SetNewPrevHash (the first job must be a future job)")
        self._issue(message, prev, message.min_ntime, False, events)

    def _activate(self, message: Message, events: list[MinerEvent]) -> None:
        """SetNewPrevHash: the future job it names is mined from now on; every other queued job is gone."""
        assert isinstance(message, SetNewPrevHash)
        job = self._future.pop(message.job_id, None)
        if job is None:
            raise PeerViolation(f"SetNewPrevHash names job {message.job_id}, never sent as a future job")
        self._future.clear()
        self._prev = message
        self._issue(job, message, message.min_ntime, True, events)

    def _set_target(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, SetTarget)
        self.target = _target(message.maximum_target)
        events.append(TargetSet(self.target))
        work = self.current_work
        if work is not None and self.target < work.target:  # the harder of the two, at once
            self.current_work = replace(work, target=self.target)
            events.append(WorkReady(self.current_work, False))

    def _set_extranonce_prefix(self, message: Message, events: list[MinerEvent]) -> None:
        """For the jobs sent after it (§5.3.9); the work being mined keeps its own."""
        assert isinstance(message, SetExtranoncePrefix)
        if len(message.extranonce_prefix) + self.extranonce_size > 32:
            raise PeerViolation("extranonce prefix and size exceed the 32 bytes of an extended extranonce")
        self.extranonce_prefix = message.extranonce_prefix

    def _acknowledged(self, message: Message, events: list[MinerEvent]) -> None:
        """SubmitShares.Success: every share up to `last_sequence_number` still waiting is accepted."""
        assert isinstance(message, SubmitSharesSuccess)
        last = message.last_sequence_number
        while self._pending:
            seq = next(iter(self._pending))
            if seq > last:
                break
            events.append(ShareAcknowledged(self._pending.pop(seq), seq))

    def _denied(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, SubmitSharesError)
        token = self._pending.pop(message.sequence_number, None)
        if token is not None:  # one we no longer wait for (answered, or never sent) is nothing to act on
            events.append(ShareDenied(token, message.sequence_number, message.error_code))

    def _update_refused(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, UpdateChannelError)
        events.append(UpdateRefused(message.error_code))

    def _closed_by_pool(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, CloseChannel)
        events.append(ChannelClosedByPool(message.reason_code))

    def _reconnect(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, Reconnect)
        events.append(ReconnectAsked(message.new_host or None, message.new_port or None))

    def _group(self, message: Message, events: list[MinerEvent]) -> None:
        assert isinstance(message, SetGroupChannel)
        if self.channel_id in message.channel_ids and len(self._groups) < MAX_GROUPS:
            self._groups.add(message.group_channel_id)

    def _endpoint_changed(self, message: Message, events: list[MinerEvent]) -> None:
        """ChannelEndpointChanged: reset extension state — this side negotiates none."""

    # --- work bookkeeping (beside the table) -------------------------------------------------------------
    def _issue(self, job: NewMiningJob | NewExtendedMiningJob, prev: SetNewPrevHash, ntime: int, clean: bool,
               events: list[MinerEvent]) -> None:
        assert self.channel_id is not None
        if isinstance(job, NewMiningJob):
            work = ChannelWork(self.channel_id, job.job_id, prev.prev_hash, job.version, prev.nbits, ntime, self.target,
                               True, merkle_root=job.merkle_root)
        else:
            work = ChannelWork(self.channel_id, job.job_id, prev.prev_hash, job.version, prev.nbits, ntime, self.target,
                               job.version_rolling_allowed, coinbase_prefix=job.coinbase_tx_prefix,
                               coinbase_suffix=job.coinbase_tx_suffix, merkle_path=job.merkle_path,
                               extranonce_prefix=self.extranonce_prefix, extranonce_size=self.extranonce_size)
        self.current_work = work
        events.append(WorkReady(work, clean))


def _target(value: bytes) -> int:
    target = int_from_u256(value)
    if target == 0:
        raise PeerViolation("a zero target, which no share can meet")
    return target


# --- the transition table: the spec ----------------------------------------------------------------------
# Every (state, input) pair, legal or not. Nothing comes before our SetupConnection; the channel's messages
# only once it is open; a job may arrive as soon as the channel is (the first must be a future job, which
# `_job` checks with the prev hash it needs); submit replies, target changes and a CloseChannel are taken
# whenever the channel is open. A pool's Reconnect is honoured in any open state. After close, whatever is
# still in flight is let be.

_BEFORE_SETUP = Breach("nothing comes before the answer to SetupConnection")
_NO_CHANNEL = Breach("the channel is not open yet")
_ANSWERED = Breach("answered already")
_NEVER_ASKED = Breach("a reply to a request this miner never makes")
_FROM_CLIENT = Breach("a message only a client sends")
_STARTED = Unusable("start() is called once per connection")

MINER_TRANSITIONS: dict[tuple[MinerState, type[Message] | str], MinerRule] = {
    # NEW: the handshake is not done — no message can have been decoded yet
    (MinerState.NEW, SetupConnectionSuccess): _BEFORE_SETUP,
    (MinerState.NEW, SetupConnectionError): _BEFORE_SETUP,
    (MinerState.NEW, OpenStandardMiningChannelSuccess): _BEFORE_SETUP,
    (MinerState.NEW, OpenExtendedMiningChannelSuccess): _BEFORE_SETUP,
    (MinerState.NEW, OpenMiningChannelError): _BEFORE_SETUP,
    (MinerState.NEW, NewMiningJob): _BEFORE_SETUP,
    (MinerState.NEW, NewExtendedMiningJob): _BEFORE_SETUP,
    (MinerState.NEW, SetNewPrevHash): _BEFORE_SETUP,
    (MinerState.NEW, SetTarget): _BEFORE_SETUP,
    (MinerState.NEW, SetExtranoncePrefix): _BEFORE_SETUP,
    (MinerState.NEW, SubmitSharesSuccess): _BEFORE_SETUP,
    (MinerState.NEW, SubmitSharesError): _BEFORE_SETUP,
    (MinerState.NEW, UpdateChannelError): _BEFORE_SETUP,
    (MinerState.NEW, CloseChannel): _BEFORE_SETUP,
    (MinerState.NEW, Reconnect): _BEFORE_SETUP,
    (MinerState.NEW, SetGroupChannel): _BEFORE_SETUP,
    (MinerState.NEW, ChannelEndpointChanged): _BEFORE_SETUP,
    (MinerState.NEW, NOT_REQUESTED): _NEVER_ASKED,
    (MinerState.NEW, CLIENT_MESSAGE): _FROM_CLIENT,
    (MinerState.NEW, STRAY_CHANNEL): _BEFORE_SETUP,
    (MinerState.NEW, UNKNOWN): LetBe(),
    (MinerState.NEW, START): OnOwnCall(MinerConnection._start, MinerState.SETTING_UP),
    (MinerState.NEW, CLOSE): OnOwnCall(None, MinerState.CLOSED),
    # SETTING_UP: SetupConnection sent
    (MinerState.SETTING_UP, SetupConnectionSuccess): OnServerMessage(MinerConnection._set_up, MinerState.OPENING),
    (MinerState.SETTING_UP, SetupConnectionError): OnServerMessage(MinerConnection._setup_refused, MinerState.CLOSED),
    (MinerState.SETTING_UP, OpenStandardMiningChannelSuccess): _BEFORE_SETUP,
    (MinerState.SETTING_UP, OpenExtendedMiningChannelSuccess): _BEFORE_SETUP,
    (MinerState.SETTING_UP, OpenMiningChannelError): _BEFORE_SETUP,
    (MinerState.SETTING_UP, NewMiningJob): _BEFORE_SETUP,
    (MinerState.SETTING_UP, NewExtendedMiningJob): _BEFORE_SETUP,
    (MinerState.SETTING_UP, SetNewPrevHash): _BEFORE_SETUP,
    (MinerState.SETTING_UP, SetTarget): _BEFORE_SETUP,
    (MinerState.SETTING_UP, SetExtranoncePrefix): _BEFORE_SETUP,
    (MinerState.SETTING_UP, SubmitSharesSuccess): _BEFORE_SETUP,
    (MinerState.SETTING_UP, SubmitSharesError): _BEFORE_SETUP,
    (MinerState.SETTING_UP, UpdateChannelError): _BEFORE_SETUP,
    (MinerState.SETTING_UP, CloseChannel): _BEFORE_SETUP,
    (MinerState.SETTING_UP, Reconnect): OnServerMessage(MinerConnection._reconnect),
    (MinerState.SETTING_UP, SetGroupChannel): _BEFORE_SETUP,
    (MinerState.SETTING_UP, ChannelEndpointChanged): _BEFORE_SETUP,
    (MinerState.SETTING_UP, NOT_REQUESTED): _NEVER_ASKED,
    (MinerState.SETTING_UP, CLIENT_MESSAGE): _FROM_CLIENT,
    (MinerState.SETTING_UP, STRAY_CHANNEL): _BEFORE_SETUP,
    (MinerState.SETTING_UP, UNKNOWN): LetBe(),
    (MinerState.SETTING_UP, START): _STARTED,
    (MinerState.SETTING_UP, CLOSE): OnOwnCall(None, MinerState.CLOSED),
    # OPENING: the channel asked for, not answered
    (MinerState.OPENING, SetupConnectionSuccess): _ANSWERED,
    (MinerState.OPENING, SetupConnectionError): _ANSWERED,
    (MinerState.OPENING, OpenStandardMiningChannelSuccess): OnServerMessage(MinerConnection._opened_standard,
                                                                            MinerState.WAITING),
    (MinerState.OPENING, OpenExtendedMiningChannelSuccess): OnServerMessage(MinerConnection._opened_extended,
                                                                            MinerState.WAITING),
    (MinerState.OPENING, OpenMiningChannelError): OnServerMessage(MinerConnection._open_refused, MinerState.CLOSED),
    (MinerState.OPENING, NewMiningJob): _NO_CHANNEL,
    (MinerState.OPENING, NewExtendedMiningJob): _NO_CHANNEL,
    (MinerState.OPENING, SetNewPrevHash): _NO_CHANNEL,
    (MinerState.OPENING, SetTarget): _NO_CHANNEL,
    (MinerState.OPENING, SetExtranoncePrefix): _NO_CHANNEL,
    (MinerState.OPENING, SubmitSharesSuccess): _NO_CHANNEL,
    (MinerState.OPENING, SubmitSharesError): _NO_CHANNEL,
    (MinerState.OPENING, UpdateChannelError): _NO_CHANNEL,
    (MinerState.OPENING, CloseChannel): _NO_CHANNEL,
    (MinerState.OPENING, Reconnect): OnServerMessage(MinerConnection._reconnect),
    (MinerState.OPENING, SetGroupChannel): _NO_CHANNEL,
    (MinerState.OPENING, ChannelEndpointChanged): _NO_CHANNEL,
    (MinerState.OPENING, NOT_REQUESTED): _NEVER_ASKED,
    (MinerState.OPENING, CLIENT_MESSAGE): _FROM_CLIENT,
    (MinerState.OPENING, STRAY_CHANNEL): LetBe(),
    (MinerState.OPENING, UNKNOWN): LetBe(),
    (MinerState.OPENING, START): _STARTED,
    (MinerState.OPENING, CLOSE): OnOwnCall(None, MinerState.CLOSED),
    # WAITING: the channel is open; the first job (a future one) and its SetNewPrevHash are due
    (MinerState.WAITING, SetupConnectionSuccess): _ANSWERED,
    (MinerState.WAITING, SetupConnectionError): _ANSWERED,
    (MinerState.WAITING, OpenStandardMiningChannelSuccess): _ANSWERED,
    (MinerState.WAITING, OpenExtendedMiningChannelSuccess): _ANSWERED,
    (MinerState.WAITING, OpenMiningChannelError): _ANSWERED,
    (MinerState.WAITING, NewMiningJob): OnServerMessage(MinerConnection._job),
    (MinerState.WAITING, NewExtendedMiningJob): OnServerMessage(MinerConnection._job),
    (MinerState.WAITING, SetNewPrevHash): OnServerMessage(MinerConnection._activate, MinerState.MINING),
    (MinerState.WAITING, SetTarget): OnServerMessage(MinerConnection._set_target),
    (MinerState.WAITING, SetExtranoncePrefix): OnServerMessage(MinerConnection._set_extranonce_prefix),
    (MinerState.WAITING, SubmitSharesSuccess): Breach("no share was sent"),
    (MinerState.WAITING, SubmitSharesError): Breach("no share was sent"),
    (MinerState.WAITING, UpdateChannelError): OnServerMessage(MinerConnection._update_refused),
    (MinerState.WAITING, CloseChannel): OnServerMessage(MinerConnection._closed_by_pool, MinerState.CLOSED),
    (MinerState.WAITING, Reconnect): OnServerMessage(MinerConnection._reconnect),
    (MinerState.WAITING, SetGroupChannel): OnServerMessage(MinerConnection._group),
    (MinerState.WAITING, ChannelEndpointChanged): OnServerMessage(MinerConnection._endpoint_changed),
    (MinerState.WAITING, NOT_REQUESTED): _NEVER_ASKED,
    (MinerState.WAITING, CLIENT_MESSAGE): _FROM_CLIENT,
    (MinerState.WAITING, STRAY_CHANNEL): LetBe(),
    (MinerState.WAITING, UNKNOWN): LetBe(),
    (MinerState.WAITING, START): _STARTED,
    (MinerState.WAITING, CLOSE): OnOwnCall(None, MinerState.CLOSED),
    # MINING: a job is active; shares go out and come back answered
    (MinerState.MINING, SetupConnectionSuccess): _ANSWERED,
    (MinerState.MINING, SetupConnectionError): _ANSWERED,
    (MinerState.MINING, OpenStandardMiningChannelSuccess): _ANSWERED,
    (MinerState.MINING, OpenExtendedMiningChannelSuccess): _ANSWERED,
    (MinerState.MINING, OpenMiningChannelError): _ANSWERED,
    (MinerState.MINING, NewMiningJob): OnServerMessage(MinerConnection._job),
    (MinerState.MINING, NewExtendedMiningJob): OnServerMessage(MinerConnection._job),
    (MinerState.MINING, SetNewPrevHash): OnServerMessage(MinerConnection._activate),
    (MinerState.MINING, SetTarget): OnServerMessage(MinerConnection._set_target),
    (MinerState.MINING, SetExtranoncePrefix): OnServerMessage(MinerConnection._set_extranonce_prefix),
    (MinerState.MINING, SubmitSharesSuccess): OnServerMessage(MinerConnection._acknowledged),
    (MinerState.MINING, SubmitSharesError): OnServerMessage(MinerConnection._denied),
    (MinerState.MINING, UpdateChannelError): OnServerMessage(MinerConnection._update_refused),
    (MinerState.MINING, CloseChannel): OnServerMessage(MinerConnection._closed_by_pool, MinerState.CLOSED),
    (MinerState.MINING, Reconnect): OnServerMessage(MinerConnection._reconnect),
    (MinerState.MINING, SetGroupChannel): OnServerMessage(MinerConnection._group),
    (MinerState.MINING, ChannelEndpointChanged): OnServerMessage(MinerConnection._endpoint_changed),
    (MinerState.MINING, NOT_REQUESTED): _NEVER_ASKED,
    (MinerState.MINING, CLIENT_MESSAGE): _FROM_CLIENT,
    (MinerState.MINING, STRAY_CHANNEL): LetBe(),
    (MinerState.MINING, UNKNOWN): LetBe(),
    (MinerState.MINING, START): _STARTED,
    (MinerState.MINING, CLOSE): OnOwnCall(None, MinerState.CLOSED),
    # CLOSED: closed by us or by the pool; what is still in flight is let be, closing again is harmless
    (MinerState.CLOSED, SetupConnectionSuccess): LetBe(),
    (MinerState.CLOSED, SetupConnectionError): LetBe(),
    (MinerState.CLOSED, OpenStandardMiningChannelSuccess): LetBe(),
    (MinerState.CLOSED, OpenExtendedMiningChannelSuccess): LetBe(),
    (MinerState.CLOSED, OpenMiningChannelError): LetBe(),
    (MinerState.CLOSED, NewMiningJob): LetBe(),
    (MinerState.CLOSED, NewExtendedMiningJob): LetBe(),
    (MinerState.CLOSED, SetNewPrevHash): LetBe(),
    (MinerState.CLOSED, SetTarget): LetBe(),
    (MinerState.CLOSED, SetExtranoncePrefix): LetBe(),
    (MinerState.CLOSED, SubmitSharesSuccess): LetBe(),
    (MinerState.CLOSED, SubmitSharesError): LetBe(),
    (MinerState.CLOSED, UpdateChannelError): LetBe(),
    (MinerState.CLOSED, CloseChannel): LetBe(),
    (MinerState.CLOSED, Reconnect): LetBe(),
    (MinerState.CLOSED, SetGroupChannel): LetBe(),
    (MinerState.CLOSED, ChannelEndpointChanged): LetBe(),
    (MinerState.CLOSED, NOT_REQUESTED): LetBe(),
    (MinerState.CLOSED, CLIENT_MESSAGE): LetBe(),
    (MinerState.CLOSED, STRAY_CHANNEL): LetBe(),
    (MinerState.CLOSED, UNKNOWN): LetBe(),
    (MinerState.CLOSED, START): Unusable("the connection is closed"),
    (MinerState.CLOSED, CLOSE): OnOwnCall(None),
}

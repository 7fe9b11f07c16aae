"""Stratum V2's Common messages (spec `03-Protocol-Overview.md` §3.6, `08-Message-Types.md`): the ones
every subprotocol's connection carries, and the constants that go with them.

What it is: SetupConnection (0x00, the first message on every connection) with its Success (0x01) and
Error (0x02), ChannelEndpointChanged (0x03, a channel message: a proxy sends it when a channel's upstream
endpoint changed), Reconnect (0x04, connection-scoped; the client re-handshakes and MUST verify the new
server with the same authority key). Also the protocol version (2 in every spec snapshot, although the
wire changed under it: both ends must target one snapshot, `sv2-spec@0f38d51`), the SetupConnection flag
bits of each subprotocol, and the error codes named by SRI.

What it is not: the decision which flags to accept or which version to use (the sessions').
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pithead.stratum.v2.messages.base import Message, message
from pithead.stratum.v2.types import STR0_255, U8, U16, U32

PROTOCOL_VERSION = 2
"""The only SV2 protocol version (`min_version`, `max_version`, `used_version`)."""


class MiningSetupFlags(enum.IntFlag):
    """`SetupConnection.flags` on a Mining connection (spec §5.3.1; bit 0 is the U32's least significant)."""

    REQUIRES_STANDARD_JOBS = 1 << 0  # the client will only open standard channels (header-only mining)
    REQUIRES_WORK_SELECTION = 1 << 1  # the client will send SetCustomMiningJob
    REQUIRES_VERSION_ROLLING = 1 << 2  # the server MUST NOT send jobs that forbid version rolling


class MiningSuccessFlags(enum.IntFlag):
    """`SetupConnection.Success.flags` on a Mining connection (spec §5.3.1)."""

    REQUIRES_FIXED_VERSION = 1 << 0  # the client must not roll the version (never if it required rolling)
    REQUIRES_EXTENDED_CHANNELS = 1 << 1  # standard channels are refused


class JobDeclarationSetupFlags(enum.IntFlag):
    """`SetupConnection.flags` on a Job Declaration connection (spec §6.4.1)."""

    DECLARE_TX_DATA = 1 << 0  # the client will reveal transaction data (Full-Template mode)


# Error codes are free-form strings (spec §3.5, since `9fead06`): receivers log unknown ones and carry on.
ERROR_UNSUPPORTED_FEATURE_FLAGS = "unsupported-feature-flags"
ERROR_UNSUPPORTED_PROTOCOL = "unsupported-protocol"
ERROR_PROTOCOL_VERSION_MISMATCH = "protocol-version-mismatch"  # sv2-tp's, for a range without 2


@message(0x00, "SetupConnection", channel_msg=False, protocol=None)
@dataclass(frozen=True, slots=True)
class SetupConnection(Message):
    """Client → server, first on every connection: which subprotocol, versions, flags, and who it is."""

    protocol: U8
    min_version: U16
    max_version: U16
    flags: U32
    endpoint_host: STR0_255
    endpoint_port: U16
    vendor: STR0_255
    hardware_version: STR0_255
    firmware: STR0_255
    device_id: STR0_255


@message(0x01, "SetupConnection.Success", channel_msg=False, protocol=None)
@dataclass(frozen=True, slots=True)
class SetupConnectionSuccess(Message):
    """Server → client: the version used and the server's flags."""

    used_version: U16
    flags: U32


@message(0x02, "SetupConnection.Error", channel_msg=False, protocol=None)
@dataclass(frozen=True, slots=True)
class SetupConnectionError(Message):
    """Server → client: refused; `flags` lists every unsupported flag (0 when that is not the reason)."""

    flags: U32
    error_code: STR0_255


@message(0x03, "ChannelEndpointChanged", channel_msg=True, protocol=None)
@dataclass(frozen=True, slots=True)
class ChannelEndpointChanged(Message):
    """Proxy → client: the channel's upstream endpoint changed; the receiver resets extension state."""

    channel_id: U32


@message(0x04, "Reconnect", channel_msg=False, protocol=None)
@dataclass(frozen=True, slots=True)
class Reconnect(Message):
    """Server → client: reconnect to `new_host`:`new_port` (empty host / port 0 = the same)."""

    new_host: STR0_255
    new_port: U16

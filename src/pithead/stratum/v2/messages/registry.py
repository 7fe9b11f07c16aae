"""One registry from (extension type, message type) to message class, and frames ↔ messages (sans-IO).

What it is: `REGISTRY` holds every message this layer decodes (Common, extension negotiation, Mining);
`encode_frame` turns a message (and any TLV fields) into a whole plaintext frame, header included;
`decode_frame` turns a `Frame` into its message and TLVs for a connection of a given subprotocol,
strictly:

- a known message of another subprotocol (Mining on a Template Distribution connection, or a Job
  Declaration / Template Distribution type on a Mining connection — their type ranges are known before
  their classes are) raises `WrongSubprotocol`;
- an unknown (extension, type) raises `UnknownMessage`, which the session handles as the spec says
  (drop it, or forward it when it is a channel message and the session is a proxy);
- a frame whose channel-message bit disagrees with the message's raises `DecodeError`;
- bytes after the message are TLV fields only if the caller negotiated extensions (fields of other
  extensions are dropped, as the spec says); without extensions they are a `DecodeError`.

What it is not: a session. It keeps no state; the negotiated extensions and the subprotocol come in.
"""

from __future__ import annotations

from collections.abc import Iterable

from pithead.stratum.v2.errors import DecodeError, UnknownMessage, WrongSubprotocol
from pithead.stratum.v2.framing import Frame, encode_header
from pithead.stratum.v2.messages import common, extensions, mining
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.tlv import Tlv, decode_tlvs, encode_tlvs

MESSAGES: tuple[type[Message], ...] = (
    common.SetupConnection,
    common.SetupConnectionSuccess,
    common.SetupConnectionError,
    common.ChannelEndpointChanged,
    common.Reconnect,
    extensions.RequestExtensions,
    extensions.RequestExtensionsSuccess,
    extensions.RequestExtensionsError,
    mining.OpenStandardMiningChannel,
    mining.OpenStandardMiningChannelSuccess,
    mining.OpenMiningChannelError,
    mining.OpenExtendedMiningChannel,
    mining.OpenExtendedMiningChannelSuccess,
    mining.NewMiningJob,
    mining.UpdateChannel,
    mining.UpdateChannelError,
    mining.CloseChannel,
    mining.SetExtranoncePrefix,
    mining.SubmitSharesStandard,
    mining.SubmitSharesExtended,
    mining.SubmitSharesSuccess,
    mining.SubmitSharesError,
    mining.NewExtendedMiningJob,
    mining.SetNewPrevHash,
    mining.SetTarget,
    mining.SetCustomMiningJob,
    mining.SetCustomMiningJobSuccess,
    mining.SetCustomMiningJobError,
    mining.SetGroupChannel,
)

REGISTRY: dict[tuple[int, int], type[Message]] = {(m.EXTENSION_TYPE, m.MSG_TYPE): m for m in MESSAGES}

SUBPROTOCOL_TYPES: dict[Subprotocol, range] = {
    Subprotocol.MINING: range(0x10, 0x26),
    Subprotocol.JOB_DECLARATION: range(0x50, 0x61),
    Subprotocol.TEMPLATE_DISTRIBUTION: range(0x70, 0x77),
}
"""The core (extension 0) message types of each subprotocol (`08-Message-Types.md`)."""

# Names of the Job Declaration and Template Distribution messages this layer does not decode yet, so
# one arriving on the wrong connection is named in the error (`08-Message-Types.md`).
_NOT_YET_DECODED: dict[int, str] = {
    0x50: "AllocateMiningJobToken", 0x51: "AllocateMiningJobToken.Success",
    0x55: "ProvideMissingTransactions", 0x56: "ProvideMissingTransactions.Success",
    0x57: "DeclareMiningJob", 0x58: "DeclareMiningJob.Success", 0x59: "DeclareMiningJob.Error",
    0x60: "PushSolution",
    0x70: "CoinbaseOutputConstraints", 0x71: "NewTemplate", 0x72: "SetNewPrevHash (Template Distribution)",
    0x73: "RequestTransactionData", 0x74: "RequestTransactionData.Success",
    0x75: "RequestTransactionData.Error", 0x76: "SubmitSolution",
}

_PROTOCOL_NAMES = {
    Subprotocol.MINING: "Mining",
    Subprotocol.JOB_DECLARATION: "Job Declaration",
    Subprotocol.TEMPLATE_DISTRIBUTION: "Template Distribution",
}


def subprotocol_of(extension_type: int, msg_type: int) -> Subprotocol | None:
    """The core subprotocol a message type belongs to; None for Common and extension messages."""
    if extension_type != 0:
        return None
    for protocol, types in SUBPROTOCOL_TYPES.items():
        if msg_type in types:
            return protocol
    return None


def encode_frame(message: Message, tlvs: Iterable[Tlv] = ()) -> bytes:
    """The whole plaintext frame of `message`: header (with its channel-message bit) and payload, then
    the TLV fields, counted in the header's length."""
    payload = message.encode()
    if tlvs:
        payload += encode_tlvs(tlvs)
    return encode_header(message.EXTENSION_TYPE, message.CHANNEL_MSG, message.MSG_TYPE, len(payload)) + payload


def decode_frame(frame: Frame, *, protocol: Subprotocol,
                 extensions: frozenset[int] = frozenset()) -> tuple[Message, tuple[Tlv, ...]]:
    """`frame`'s message and TLV fields, on a connection of `protocol` that negotiated `extensions`."""
    cls = REGISTRY.get((frame.extension_type, frame.msg_type))
    if cls is None:
        other = subprotocol_of(frame.extension_type, frame.msg_type)
        if other is not None and other != protocol:
            name = _NOT_YET_DECODED.get(frame.msg_type, f"message type 0x{frame.msg_type:02x}")
            raise WrongSubprotocol(name, _PROTOCOL_NAMES[protocol], _PROTOCOL_NAMES[other])
        raise UnknownMessage(frame.extension_type, frame.msg_type, frame.channel_msg)
    if cls.PROTOCOL is not None and cls.PROTOCOL != protocol:
        raise WrongSubprotocol(cls.NAME, _PROTOCOL_NAMES[protocol], _PROTOCOL_NAMES[cls.PROTOCOL])
    if frame.channel_msg != cls.CHANNEL_MSG:
        raise DecodeError(f"the frame's channel-message bit is {int(frame.channel_msg)}, "
                          f"{cls.NAME} has {int(cls.CHANNEL_MSG)}", message=cls.NAME, field="channel_msg")
    if not extensions:
        return cls.decode(frame.payload), ()
    decoded, end = cls.read(frame.payload, 0)
    if end == len(frame.payload):
        return decoded, ()
    try:
        tlvs = decode_tlvs(frame.payload[end:])
    except DecodeError as exc:
        raise DecodeError(exc.reason, message=cls.NAME, field="tlv") from None
    return decoded, tuple(t for t in tlvs if t.extension_type in extensions)

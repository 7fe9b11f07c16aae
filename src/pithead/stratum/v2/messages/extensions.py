"""Stratum V2 extension negotiation (extension 0x0001, `extensions/0x0001-extensions-negotiation.md`).

What it is: RequestExtensions (0x00) and its Success (0x01) and Error (0x02), framed with
`extension_type = 0x0001` (their message types restart at 0 inside the extension) and no channel bit. A
client sends RequestExtensions right after SetupConnection.Success; once an extension is agreed, its TLV
fields may follow the messages it extends (`pithead.stratum.v2.tlv`: 0x0002's user_identity on
SubmitSharesExtended).

What it is not: the extensions themselves, or the policy of which to require.
"""

from __future__ import annotations

from dataclasses import dataclass

from pithead.stratum.v2.messages.base import Message, message
from pithead.stratum.v2.types import SEQ0_64K_U16, U16

EXTENSION_NEGOTIATION = 0x0001
"""The extension id these messages are framed with."""


@message(0x00, "RequestExtensions", channel_msg=False, protocol=None, extension_type=EXTENSION_NEGOTIATION)
@dataclass(frozen=True, slots=True)
class RequestExtensions(Message):
    """Client → server: the extensions the client wants to use."""

    request_id: U16
    requested_extensions: SEQ0_64K_U16


@message(0x01, "RequestExtensions.Success", channel_msg=False, protocol=None,
         extension_type=EXTENSION_NEGOTIATION)
@dataclass(frozen=True, slots=True)
class RequestExtensionsSuccess(Message):
    """Server → client: the requested extensions it supports (and will use)."""

    request_id: U16
    supported_extensions: SEQ0_64K_U16


@message(0x02, "RequestExtensions.Error", channel_msg=False, protocol=None,
         extension_type=EXTENSION_NEGOTIATION)
@dataclass(frozen=True, slots=True)
class RequestExtensionsError(Message):
    """Server → client: what it does not support, and what it requires that was not requested."""

    request_id: U16
    unsupported_extensions: SEQ0_64K_U16
    required_extensions: SEQ0_64K_U16

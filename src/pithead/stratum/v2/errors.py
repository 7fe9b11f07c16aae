"""Stratum V2's errors: one typed family for the wire, the Noise layer and the certificates (sans-IO).

What it is: `Sv2Error` and its branches. Untrusted input that is not a well-formed SV2 stream raises one
of them, never a bare `struct.error`, `IndexError` or `UnicodeDecodeError`:

- `FramingError`: a frame header or frame the reader refuses (an oversized frame, a stream that breaks
  off inside a frame when the caller says it ended).
- `DecodeError`: a payload that does not decode as the message it claims to be; it names the message,
  the field and the reason (`SubmitSharesExtended.extranonce: B0_32 length 33 > 32`).
- `UnknownMessage`: an (extension type, message type) this side does not know; the session decides
  (the spec says: drop it silently unless it is a channel message a proxy must forward).
- `WrongSubprotocol`: a known message of another subprotocol than the connection's (a Template
  Distribution message on a Mining connection).
- `EncodeError`: our own code asked to encode a value the field cannot carry (a 33-byte extranonce, a
  negative U32) — a bug on our side, raised before anything is sent.
- `NoiseError` and its branches: `HandshakeError` (a handshake message of the wrong size or that does
  not decrypt, an invalid key), `CertificateError` (the pool's certificate: bad signature, unsupported
  version, not yet valid or expired — which includes a certificate signed by another authority key),
  `DecryptionError` (a transport frame that fails its MAC: tampered, replayed, reordered or truncated),
  `TransportClosed` (a transport used after it failed).
- `KeyEncodingError`: an authority key string or key file that is not what the notes' encoding says.
- `PeerViolation`: a well-formed message the peer may not send now (a job for the other channel kind, a
  SetNewPrevHash for a job never sent as a future job, a reply to a request never made): the sessions
  raise it, the shell drops the connection.
- `NotMining`: our own side asked a session for something it cannot do now (a share on a closed
  channel); `TooManyInFlight`: more shares unanswered than the session keeps (the pool stopped answering).
- `Secp256k1Error`: a secret key or curve point libsecp256k1 refuses.

What it is not: a reply. SV2 replies carry free-form error-code strings (`SubmitShares.Error`,
`OpenMiningChannel.Error`, …); the message modules name those codes, the sessions choose them.
"""

from __future__ import annotations


class Sv2Error(Exception):
    """Base class of everything Stratum V2 raises."""


class FramingError(Sv2Error, ValueError):
    """A frame header or frame the reader refuses (oversized, truncated stream)."""


class DecodeError(Sv2Error, ValueError):
    """A payload (or a single field) that does not decode; names the message and field when known."""

    def __init__(self, reason: str, *, message: str | None = None, field: str | None = None) -> None:
        self.reason = reason
        self.message = message
        self.field = field
        where = ".".join(part for part in (message, field) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class EncodeError(Sv2Error, ValueError):
    """A value our own code asked to encode that its field cannot carry."""

    def __init__(self, reason: str, *, message: str | None = None, field: str | None = None) -> None:
        self.reason = reason
        self.message = message
        self.field = field
        where = ".".join(part for part in (message, field) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class UnknownMessage(Sv2Error):
    """A frame whose (extension type, message type) this side does not know."""

    def __init__(self, extension_type: int, msg_type: int, channel_msg: bool) -> None:
        self.extension_type = extension_type
        self.msg_type = msg_type
        self.channel_msg = channel_msg
        super().__init__(f"unknown message: extension 0x{extension_type:04x}, type 0x{msg_type:02x}"
                         f"{' (channel message)' if channel_msg else ''}")


class WrongSubprotocol(Sv2Error):
    """A message of another subprotocol than the one the connection was set up for."""

    def __init__(self, message: str, expected: str, actual: str) -> None:
        self.message = message
        self.expected = expected
        self.actual = actual
        super().__init__(f"{message} belongs to the {actual} subprotocol; this connection speaks {expected}")


class NoiseError(Sv2Error):
    """Base class of the Noise layer's errors (handshake, certificate, transport)."""


class HandshakeError(NoiseError):
    """A handshake message of the wrong size, one that does not decrypt, or a handshake used wrongly."""


class CertificateError(HandshakeError):
    """The pool's certificate does not prove the pinned authority vouches for this server, now."""


class BadCertificateSignature(CertificateError):
    """The signature does not verify under the pinned authority key (a wrong key, or a forged cert)."""


class UnsupportedCertificateVersion(CertificateError):
    """A certificate version other than 0, the only one the spec defines."""


class CertificateNotYetValid(CertificateError):
    """`now` is before the certificate's `valid_from` (beyond the clock leeway)."""


class CertificateExpired(CertificateError):
    """`now` is after the certificate's `not_valid_after` (beyond the clock leeway)."""


class DecryptionError(NoiseError):
    """A transport frame that fails its MAC: tampered, replayed, reordered or cut; the link must close."""


class TransportClosed(NoiseError):
    """The transport failed earlier (or ran out of nonces) and can carry nothing more."""


class KeyEncodingError(Sv2Error, ValueError):
    """An authority key (string or file) that does not follow the notes' base58check encoding."""


class PeerViolation(Sv2Error):
    """The peer sent a well-formed message the protocol does not allow it now; the connection must end."""


class NotMining(Sv2Error):
    """A share (or another call of ours) that the session cannot send now: no channel, or it closed."""


class TooManyInFlight(Sv2Error):
    """More shares unanswered than the session keeps: the pool stopped answering; reconnect."""


class Secp256k1Error(Sv2Error, ValueError):
    """A secret key or curve point that libsecp256k1 refuses."""

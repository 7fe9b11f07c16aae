"""The pool's certificate in Stratum V2's Noise handshake, and the authority key's encoding (sans-IO).

What it is:

- `Certificate`: SIGNATURE_NOISE_MESSAGE, the 74 bytes the server sends encrypted at the end of the
  handshake (spec `04-Protocol-Security.md` §4.5.3; SRI `noise-sv2/src/signature_message.rs`):

      version U16 | valid_from U32 | not_valid_after U32 | signature (64, BIP340)

  all little-endian. The authority key signs `SHA256(version ‖ valid_from ‖ not_valid_after ‖ the
  server's static x-only key)` — the ten header bytes as sent, then the x coordinate decoded from the
  server's ElligatorSwift static key (which is not inside the 74 bytes). `issue` signs one,
  `Certificate.verify` checks one against the pinned authority key and a `now` passed in: version 0 (the
  only one defined; sv2-tp refuses others, SRI does not look), the BIP340 signature, and the validity
  window with `CLOCK_LEEWAY` seconds either side (SRI's; sv2-tp has none). A certificate signed by
  another authority fails its signature: clients pin the authority key, never the static key (SRI pools
  make a fresh static key for every connection).
- The authority key's text form (spec §4.7): base58check of `01 00` (U16 version 1, little-endian) ‖ the
  32-byte x-only key, e.g. `9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh`; the secret key's, as
  SRI's configs write it: base58check of the 32 raw bytes, no version. `encode_public_key` /
  `decode_public_key`, `encode_secret_key` / `decode_secret_key`.

What it is not: the handshake (`noise`), key files on disk (`pithead keys`, in `pithead.cli.keys`) or a
clock: `now` is always a parameter (Unix seconds).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import base58

from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.errors import (
    BadCertificateSignature,
    CertificateExpired,
    CertificateNotYetValid,
    DecodeError,
    EncodeError,
    KeyEncodingError,
    Secp256k1Error,
    UnsupportedCertificateVersion,
)

CERTIFICATE_SIZE = 74
"""SIGNATURE_NOISE_MESSAGE: 2 + 4 + 4 + 64 bytes (SRI and sv2-tp agree)."""

CERTIFICATE_VERSION = 0
"""The only certificate version the spec defines (SRI `responder.rs` VERSION, sv2-tp `certificate_test`)."""

CLOCK_LEEWAY = 10
"""Seconds a certificate is accepted before `valid_from` and after `not_valid_after`: SRI's
`TIME_LEEWAY`. SRI pools issue with `valid_from = now`, so a client whose clock is a few seconds behind
would otherwise refuse every fresh certificate (the translator README's NTP warning)."""

DEFAULT_VALIDITY = 3600
"""Seconds a certificate issued per connection stays valid (SRI pool config `cert_validity_sec`). A
client checks it once, during the handshake, so this only bounds how long a captured certificate and
static key could be replayed by someone who also stole the static secret."""

AUTHORITY_KEY_VERSION = b"\x01\x00"
"""The U16 version (1, little-endian) in front of an encoded authority public key (spec §4.7)."""

_HEADER = struct.Struct("<HII")


@dataclass(frozen=True, slots=True)
class Certificate:
    """SIGNATURE_NOISE_MESSAGE: the authority's signature over the server's static key and a validity
    window (Unix seconds)."""

    version: int
    valid_from: int
    not_valid_after: int
    signature: bytes

    def header(self) -> bytes:
        """The ten bytes before the signature, as sent (and as signed)."""
        try:
            return _HEADER.pack(self.version, self.valid_from, self.not_valid_after)
        except struct.error as exc:
            raise EncodeError(f"certificate field out of range: {exc}", message="Certificate") from None

    def encode(self) -> bytes:
        if len(self.signature) != secp256k1.SIGNATURE_SIZE:
            raise EncodeError(f"signature of {len(self.signature)} bytes", message="Certificate",
                              field="signature")
        return self.header() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        if len(data) != CERTIFICATE_SIZE:
            raise DecodeError(f"{len(data)} bytes, not {CERTIFICATE_SIZE}", message="Certificate")
        version, valid_from, not_valid_after = _HEADER.unpack_from(data)
        return cls(version, valid_from, not_valid_after, bytes(data[_HEADER.size:]))

    def verify(self, authority_key: bytes, static_key: bytes, now: float) -> None:
        """Raise a `CertificateError` unless the authority (x-only key) signed this certificate for the
        server's static x-only key, and `now` lies within its validity (± `CLOCK_LEEWAY`)."""
        if self.version != CERTIFICATE_VERSION:
            raise UnsupportedCertificateVersion(f"certificate version {self.version}; only "
                                                f"{CERTIFICATE_VERSION} is defined")
        if not secp256k1.schnorr_verify(authority_key, self.signature, signed_digest(self, static_key)):
            raise BadCertificateSignature("the certificate is not signed by the pinned authority key "
                                          "for this server's static key")
        if now < self.valid_from - CLOCK_LEEWAY:
            raise CertificateNotYetValid(f"certificate valid from {self.valid_from}, now is {now:.0f} "
                                         "(check this machine's clock)")
        if now > self.not_valid_after + CLOCK_LEEWAY:
            raise CertificateExpired(f"certificate expired at {self.not_valid_after}, now is {now:.0f}")


def signed_digest(certificate: Certificate, static_key: bytes) -> bytes:
    """What the authority signs: SHA256(version ‖ valid_from ‖ not_valid_after ‖ static x-only key)."""
    return hashlib.sha256(certificate.header() + static_key).digest()


def issue(authority_secret: bytes, static_key: bytes, valid_from: int, not_valid_after: int,
          aux_rand: bytes | None = None) -> Certificate:
    """A certificate by the authority for the server's static x-only key, valid from `valid_from` to
    `not_valid_after` (Unix seconds). `aux_rand` makes the signature reproducible (tests)."""
    if not 0 <= valid_from <= not_valid_after <= 0xFFFFFFFF:
        raise EncodeError(f"validity {valid_from}..{not_valid_after} is not a window of U32 seconds",
                          message="Certificate")
    unsigned = Certificate(CERTIFICATE_VERSION, valid_from, not_valid_after, bytes(secp256k1.SIGNATURE_SIZE))
    signature = secp256k1.schnorr_sign(authority_secret, signed_digest(unsigned, static_key), aux_rand)
    return Certificate(CERTIFICATE_VERSION, valid_from, not_valid_after, signature)


# --- the authority key as text ------------------------------------------------------------------------


def encode_public_key(xonly: bytes) -> str:
    """An x-only public key (32 bytes) in the spec's encoding: base58check(01 00 ‖ key)."""
    if len(xonly) != secp256k1.XONLY_SIZE:
        raise KeyEncodingError(f"an x-only public key is {secp256k1.XONLY_SIZE} bytes, got {len(xonly)}")
    return base58.b58encode_check(AUTHORITY_KEY_VERSION + xonly).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """The x-only key of an encoded authority public key; refuses a bad checksum, version or point."""
    raw = _b58check(text.strip(), "authority public key")
    if len(raw) != 2 + secp256k1.XONLY_SIZE:
        raise KeyEncodingError(f"an SV2 authority public key holds 34 bytes (01 00 and the key), not {len(raw)}")
    if raw[:2] != AUTHORITY_KEY_VERSION:
        raise KeyEncodingError(f"authority key version {int.from_bytes(raw[:2], 'little')}; only 1 is defined")
    xonly = raw[2:]
    if not secp256k1.xonly_valid(xonly):
        raise KeyEncodingError("the authority public key is not a point on secp256k1")
    return xonly


def encode_secret_key(secret: bytes) -> str:
    """A secret key as SRI's configs write it: base58check of its 32 bytes."""
    try:
        secp256k1.check_secret(secret)
    except Secp256k1Error as exc:
        raise KeyEncodingError(str(exc)) from None
    return base58.b58encode_check(secret).decode("ascii")


def decode_secret_key(text: str) -> bytes:
    """The 32 bytes of an encoded secret key; refuses a bad checksum, length or value."""
    raw = _b58check(text.strip(), "authority secret key")
    try:
        secp256k1.check_secret(raw)
    except Secp256k1Error as exc:
        raise KeyEncodingError(f"not an SV2 authority secret key: {exc}") from None
    return raw


def _b58check(text: str, what: str) -> bytes:
    try:
        return base58.b58decode_check(text)
    except ValueError as exc:  # a bad character or checksum
        raise KeyEncodingError(f"{what} is not valid base58check: {exc}") from None

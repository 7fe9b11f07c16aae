"""Stratum V2's Noise layer (spec `04-Protocol-Security.md`; SRI `noise-sv2`), sans-IO.

What it is:

- The handshake `Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256` as one state machine per role, fed the
  bytes that arrive and answering with the bytes to send and, at the end, the established transport:

      Act 1  initiator → responder   e                                      64 bytes
      Act 2  responder → initiator   e, ee, s, es, SIGNATURE_NOISE_MESSAGE  234 bytes = 64 + (64+16) + (74+16)

  (the spec's text says Act 2 is 170 bytes, a leftover of the 32-byte-key era; SRI and sv2-tp send 234,
  and so do we). Keys travel as 64-byte ElligatorSwift encodings; `ECDH` is BIP324's, hashing the
  initiator's encoding first on both sides (`secp256k1.ellswift_ecdh`). The initiator (the client)
  checks the certificate in Act 2 against the authority key it pinned and a `now` passed in
  (`cert.Certificate.verify`): a wrong or expired certificate, or one from another authority, ends the
  handshake with a `CertificateError`. `Initiator` and `Responder` are the roles; `HandshakeStep` is
  what each `feed` returns.
- The Noise primitives, exactly as the notes give them (§6.1-6.2): ck = SHA256(protocol name), h =
  SHA256(ck) (no prologue), MixHash, MixKey through HKDF-SHA256 (RFC 5869, salt ck, empty info:
  `cryptography`'s HKDF), EncryptAndHash/DecryptAndHash with h as associated data — including the two
  `MixHash("")` steps of the empty Act 1 payload — and Split: the first key carries initiator →
  responder, the second the reverse.
- `NoiseTransport`: ChaCha20-Poly1305 (`cryptography`) with the 12-byte nonce 4 zero bytes ‖ u64
  little-endian counter, empty associated data. Each frame is sent as the encrypted 6-byte header (22
  bytes), then its payload in chunks of at most 65 519 plaintext bytes, each encrypted on its own (so
  each ciphertext ≤ 65 535 bytes); header and chunks take consecutive nonces, and `msg_length` stays
  the plaintext length. Receiving, the header is decrypted first and a frame larger than the bound is
  refused before its payload is read. Any MAC failure — a tampered byte, a replayed or reordered frame
  (its nonce is gone), a frame cut short — raises `DecryptionError`, after which the transport refuses
  everything (`TransportClosed`): the connection must close.

What it is not: sockets, timeouts or the clock (the shells own them; `now` is a parameter), or the
messages inside the frames (`messages`). Randomness (ephemeral keys, encodings, the certificate
signature) is drawn from the OS unless passed in, which is how the transcript vector is reproduced.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.cert import CERTIFICATE_SIZE, DEFAULT_VALIDITY, Certificate, issue
from pithead.stratum.v2.errors import (
    DecodeError,
    DecryptionError,
    EncodeError,
    FramingError,
    HandshakeError,
    TransportClosed,
)
from pithead.stratum.v2.framing import (
    CHANNEL_MSG_BIT,
    EXTENSION_MASK,
    HEADER_SIZE,
    MAX_PAYLOAD,
    MAX_PAYLOAD_FROM_CLIENT,
    MAX_PAYLOAD_FROM_SERVER,
    Frame,
)

PROTOCOL_NAME = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"
"""The Noise protocol name; longer than 32 bytes, so ck = SHA256(name)."""

MAC_SIZE = 16
"""Poly1305 tag."""

ACT1_SIZE = secp256k1.ELLSWIFT_SIZE
"""-> e: the initiator's ephemeral ElligatorSwift key, in the clear."""

ACT2_SIZE = secp256k1.ELLSWIFT_SIZE + (secp256k1.ELLSWIFT_SIZE + MAC_SIZE) + (CERTIFICATE_SIZE + MAC_SIZE)
"""<- e, ee, s, es, SIGNATURE_NOISE_MESSAGE: 64 + 80 + 90 = 234 bytes (SRI `noise-sv2/src/lib.rs:83`;
the spec's "170" is stale)."""

ENCRYPTED_HEADER_SIZE = HEADER_SIZE + MAC_SIZE
"""A frame header on the wire once encrypted: 22 bytes."""

MAX_CHUNK = 65535
"""Largest Noise message (ciphertext with its tag), as Noise defines it (SRI `SV2_FRAME_CHUNK_SIZE`)."""

MAX_CHUNK_PLAINTEXT = MAX_CHUNK - MAC_SIZE
"""Largest plaintext per encrypted chunk of a payload: 65 519 bytes."""

MAX_NONCE = (1 << 64) - 1
"""Noise reserves nonce 2^64-1 (sv2-tp refuses it); a transport that reaches it closes. At a frame per
microsecond that takes half a million years, so no rekeying is defined."""

_NONCE = struct.Struct("<4xQ")  # 4 zero bytes, then the counter as u64 little-endian
_HEADER = struct.Struct("<HBHB")  # as framing: U16 extension type, U8 type, U24 length as U16 + U8
_INITIAL_CK = hashlib.sha256(PROTOCOL_NAME).digest()
_INITIAL_H = hashlib.sha256(_INITIAL_CK).digest()  # MixHash of the empty prologue


def encrypted_size(length: int) -> int:
    """Ciphertext bytes of a payload of `length` plaintext bytes: a 16-byte tag per started chunk of
    65 519 (an empty payload has no ciphertext at all)."""
    return length + MAC_SIZE * -(-length // MAX_CHUNK_PLAINTEXT)


class CipherState:
    """One direction's key and nonce counter (Noise §5.1). A failed decryption leaves the counter where
    it was; the caller must drop the connection."""

    __slots__ = ("_aead", "_n")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._n = 0

    @property
    def nonce(self) -> int:
        """The counter the next encryption or decryption uses."""
        return self._n

    def encrypt(self, ad: bytes | None, plaintext: bytes) -> bytes:
        n = self._n
        if n >= MAX_NONCE:
            raise TransportClosed("nonce space exhausted")
        out = self._aead.encrypt(_NONCE.pack(n), plaintext, ad)
        self._n = n + 1
        return out

    def decrypt(self, ad: bytes | None, ciphertext: bytes) -> bytes:
        n = self._n
        if n >= MAX_NONCE:
            raise TransportClosed("nonce space exhausted")
        try:
            out = self._aead.decrypt(_NONCE.pack(n), ciphertext, ad)
        except InvalidTag:
            raise DecryptionError(f"message {n} fails authentication (tampered, replayed or reordered)") \
                from None
        self._n = n + 1
        return out


def _hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise's HKDF with two outputs: RFC 5869 HKDF-SHA256, salt = ck, empty info, 64 bytes."""
    out = HKDF(algorithm=SHA256(), length=64, salt=ck, info=b"").derive(ikm)
    return out[:32], out[32:]


class _SymmetricState:
    """Noise's SymmetricState (§5.2): the chaining key, the handshake hash and the handshake cipher."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self) -> None:
        self.ck = _INITIAL_CK
        self.h = _INITIAL_H
        self.cipher: CipherState | None = None

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, key = _hkdf2(self.ck, ikm)
        self.cipher = CipherState(key)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = plaintext if self.cipher is None else self.cipher.encrypt(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        if self.cipher is None:
            plaintext = ciphertext
        else:
            try:
                plaintext = self.cipher.decrypt(self.h, ciphertext)
            except DecryptionError:
                raise HandshakeError("handshake message fails authentication (tampered, or the peer "
                                     "is no SV2 server)") from None
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        first, second = _hkdf2(self.ck, b"")
        return CipherState(first), CipherState(second)


@dataclass(frozen=True, slots=True)
class HandshakeStep:
    """What a handshake `feed` produced: bytes to send now (maybe none); the transport once the handshake
    is complete (else None: more bytes are needed); and the bytes that arrived after the handshake's
    last message, which are the transport's first input."""

    send: bytes
    transport: NoiseTransport | None = None
    leftover: bytes = b""


class _State(enum.Enum):
    START = "start"
    WAIT_ACT1 = "wait act 1"
    WAIT_ACT2 = "wait act 2"
    DONE = "done"
    FAILED = "failed"


class Initiator:
    """The client's side: `start()` gives Act 1; `feed(data, now)` takes Act 2 (in pieces if need be),
    checks the certificate and returns the transport.

    `authority_key` is the pinned x-only authority key. None means *no authentication*: the certificate
    is not checked and the transport says `authenticated = False` — acceptable on a LAN only (SRI's
    initiator without a key does the same silently); the shell must say so in its log."""

    def __init__(self, authority_key: bytes | None, *, ephemeral_secret: bytes | None = None,
                 ephemeral_aux: bytes | None = None, max_payload: int = MAX_PAYLOAD_FROM_SERVER) -> None:
        if authority_key is not None and not secp256k1.xonly_valid(authority_key):
            raise HandshakeError("the authority key is not an x-only secp256k1 public key")
        self.authority_key = authority_key
        self.max_payload = max_payload
        self._e = ephemeral_secret if ephemeral_secret is not None else secp256k1.new_secret()
        self._ell_e = secp256k1.ellswift_create(self._e, ephemeral_aux)
        self._sym = _SymmetricState()
        self._buffer = b""
        self._state = _State.START
        self.certificate: Certificate | None = None
        """The server's certificate, once Act 2 has been read."""

    def start(self) -> bytes:
        """Act 1: the bytes to send first."""
        if self._state is not _State.START:
            raise HandshakeError(f"start() in state {self._state.value}")
        self._sym.mix_hash(self._ell_e)
        self._sym.encrypt_and_hash(b"")  # the empty payload: MixHash("") — not to be skipped
        self._state = _State.WAIT_ACT2
        return self._ell_e

    def feed(self, data: bytes, now: float) -> HandshakeStep:
        """Bytes from the server; `now` (Unix seconds) judges the certificate's validity."""
        if self._state is not _State.WAIT_ACT2:
            raise HandshakeError(f"feed() in state {self._state.value}")
        self._buffer += data
        if len(self._buffer) < ACT2_SIZE:
            return HandshakeStep(b"")
        act2, leftover = self._buffer[:ACT2_SIZE], self._buffer[ACT2_SIZE:]
        self._buffer = b""
        self._state = _State.FAILED  # until it has all been checked
        sym = self._sym
        ell_re = act2[:64]
        sym.mix_hash(ell_re)
        sym.mix_key(secp256k1.ellswift_ecdh(self._ell_e, ell_re, self._e, initiator=True))  # ee
        ell_rs = sym.decrypt_and_hash(act2[64:144])
        sym.mix_key(secp256k1.ellswift_ecdh(self._ell_e, ell_rs, self._e, initiator=True))  # es
        try:
            certificate = Certificate.decode(sym.decrypt_and_hash(act2[144:]))
        except DecodeError as exc:  # cannot happen with a good MAC; kept typed all the same
            raise HandshakeError(str(exc)) from None
        self.certificate = certificate
        if self.authority_key is not None:
            certificate.verify(self.authority_key, secp256k1.ellswift_decode(ell_rs), now)
        send, receive = sym.split()
        self._state = _State.DONE
        transport = NoiseTransport(send, receive, max_payload=self.max_payload, handshake_hash=sym.h,
                                   authenticated=self.authority_key is not None)
        return HandshakeStep(b"", transport, leftover)


class Responder:
    """The server's side: `feed(data)` takes Act 1 (in pieces if need be) and returns Act 2 and the
    transport at once. The static key and its certificate come in; `for_connection` makes both fresh,
    as SRI pools do for every connection."""

    def __init__(self, static_secret: bytes, certificate: Certificate, *, static_aux: bytes | None = None,
                 ephemeral_secret: bytes | None = None, ephemeral_aux: bytes | None = None,
                 max_payload: int = MAX_PAYLOAD_FROM_CLIENT) -> None:
        self._s = static_secret
        self._ell_s = secp256k1.ellswift_create(static_secret, static_aux)
        self._e = ephemeral_secret if ephemeral_secret is not None else secp256k1.new_secret()
        self._ell_e = secp256k1.ellswift_create(self._e, ephemeral_aux)
        self._certificate = certificate.encode()
        self.max_payload = max_payload
        self._buffer = b""
        self._state = _State.WAIT_ACT1

    @classmethod
    def for_connection(cls, authority_secret: bytes, now: int, validity: int = DEFAULT_VALIDITY, *,
                       max_payload: int = MAX_PAYLOAD_FROM_CLIENT) -> Responder:
        """A responder with a fresh static key and a certificate for it, valid from `now` (Unix seconds)
        for `validity` seconds, signed by the authority."""
        static = secp256k1.new_secret()
        certificate = issue(authority_secret, secp256k1.xonly_public(static), now, now + validity)
        return cls(static, certificate, max_payload=max_payload)

    def feed(self, data: bytes) -> HandshakeStep:
        """Bytes from the client: once Act 1 is whole, Act 2 to send and the transport."""
        if self._state is not _State.WAIT_ACT1:
            raise HandshakeError(f"feed() in state {self._state.value}")
        self._buffer += data
        if len(self._buffer) < ACT1_SIZE:
            return HandshakeStep(b"")
        if len(self._buffer) > ACT1_SIZE:  # the client cannot encrypt anything before it has Act 2
            self._state = _State.FAILED
            raise HandshakeError(f"{len(self._buffer) - ACT1_SIZE} bytes after Act 1, before Act 2 was "
                                 "sent (no SV2 client does that)")
        ell_re = self._buffer
        self._buffer = b""
        self._state = _State.FAILED  # until it is all done
        sym = _SymmetricState()
        sym.mix_hash(ell_re)
        sym.decrypt_and_hash(b"")  # the empty payload of Act 1: MixHash("")
        sym.mix_hash(self._ell_e)
        sym.mix_key(secp256k1.ellswift_ecdh(ell_re, self._ell_e, self._e, initiator=False))  # ee
        encrypted_static = sym.encrypt_and_hash(self._ell_s)
        sym.mix_key(secp256k1.ellswift_ecdh(ell_re, self._ell_s, self._s, initiator=False))  # es
        encrypted_certificate = sym.encrypt_and_hash(self._certificate)
        receive, send = sym.split()
        self._state = _State.DONE
        transport = NoiseTransport(send, receive, max_payload=self.max_payload, handshake_hash=sym.h,
                                   authenticated=True)
        return HandshakeStep(self._ell_e + encrypted_static + encrypted_certificate, transport)


class NoiseTransport:
    """An established link: `encrypt(frame)` for each plaintext frame to send, `feed(data)` for the bytes
    that arrive (→ whole plaintext `Frame`s, bounded by `max_payload`). After any error it refuses
    everything (`TransportClosed`)."""

    __slots__ = ("_buffer", "_failed", "_pending", "_receive", "_send", "authenticated", "handshake_hash",
                 "max_payload")

    def __init__(self, send: CipherState, receive: CipherState, *, max_payload: int, handshake_hash: bytes,
                 authenticated: bool) -> None:
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} outside 0..{MAX_PAYLOAD}")
        self._send = send
        self._receive = receive
        self.max_payload = max_payload
        self.handshake_hash = handshake_hash
        """The final handshake hash h (the same on both sides): a channel binding, and the transcript's."""
        self.authenticated = authenticated
        """Whether the peer proved itself (always for a server; for a client, unless it pinned no key)."""
        self._buffer = bytearray()
        self._pending: tuple[int, int, bool, int] | None = None  # (extension, type, channel bit, length)
        self._failed = False

    def encrypt(self, frame: bytes) -> bytes:
        """The wire bytes of one plaintext frame (header + payload, as `registry.encode_frame` makes it)."""
        if self._failed:
            raise TransportClosed("the transport failed earlier")
        if len(frame) < HEADER_SIZE:
            raise EncodeError(f"a frame is at least {HEADER_SIZE} bytes, got {len(frame)}")
        _, _, low, high = _HEADER.unpack_from(frame)
        length = low | (high << 16)
        if length != len(frame) - HEADER_SIZE:
            raise EncodeError(f"the header says {length} payload bytes, the frame has {len(frame) - HEADER_SIZE}")
        send = self._send
        try:
            out = send.encrypt(None, frame[:HEADER_SIZE])
            if length <= MAX_CHUNK_PLAINTEXT:
                return out + send.encrypt(None, frame[HEADER_SIZE:]) if length else out
            parts = [out]
            for start in range(HEADER_SIZE, len(frame), MAX_CHUNK_PLAINTEXT):
                parts.append(send.encrypt(None, frame[start:start + MAX_CHUNK_PLAINTEXT]))
            return b"".join(parts)
        except TransportClosed:
            self._failed = True
            raise

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return every frame they complete (possibly none)."""
        if self._failed:
            raise TransportClosed("the transport failed earlier")
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        receive = self._receive
        pos = 0
        try:
            while True:
                pending = self._pending
                if pending is None:
                    if len(buf) - pos < ENCRYPTED_HEADER_SIZE:
                        break
                    header = receive.decrypt(None, bytes(buf[pos:pos + ENCRYPTED_HEADER_SIZE]))
                    pos += ENCRYPTED_HEADER_SIZE
                    ext, msg_type, low, high = _HEADER.unpack(header)
                    length = low | (high << 16)
                    if length > self.max_payload:
                        raise FramingError(f"frame of {length} bytes (type 0x{msg_type:02x}) > the bound "
                                           f"of {self.max_payload}")
                    pending = self._pending = (ext & EXTENSION_MASK, msg_type, bool(ext & CHANNEL_MSG_BIT),
                                               length)
                ext_id, msg_type, channel_msg, length = pending
                size = encrypted_size(length)
                if len(buf) - pos < size:
                    break
                if length <= MAX_CHUNK_PLAINTEXT:
                    payload = receive.decrypt(None, bytes(buf[pos:pos + size])) if length else b""
                else:
                    chunks = []
                    for start in range(pos, pos + size, MAX_CHUNK):
                        chunks.append(receive.decrypt(None, bytes(buf[start:min(start + MAX_CHUNK, pos + size)])))
                    payload = b"".join(chunks)
                pos += size
                self._pending = None
                frames.append(Frame(ext_id, msg_type, payload, channel_msg))
        except (DecryptionError, FramingError, TransportClosed):
            self._failed = True
            buf.clear()
            raise
        if pos:
            del buf[:pos]
        return frames

    def close(self) -> None:
        """The stream ended: anything still buffered is a frame cut off."""
        if self._buffer or self._pending is not None:
            held = len(self._buffer)
            self._failed = True
            self._buffer.clear()
            raise FramingError(f"stream ended inside a frame ({held} bytes held)")

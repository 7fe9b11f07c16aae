"""The Noise NX handshake and transport: the notes' constants, both roles agreeing however the bytes are
split, the sizes (64 / 234, chunking at 65 519), our own transcript as a regression vector, and the
attacks — a tampered ciphertext, a replayed or reordered frame, a wrong or expired certificate, a wrong
authority key, an oversized frame, a server that is no SV2 server — each a typed error, never a crash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.stratum.v2 import cert, noise, secp256k1
from pithead.stratum.v2.errors import (
    BadCertificateSignature,
    CertificateExpired,
    CertificateNotYetValid,
    DecryptionError,
    EncodeError,
    FramingError,
    HandshakeError,
    Sv2Error,
    TransportClosed,
    UnsupportedCertificateVersion,
    WrongSubprotocol,
)
from pithead.stratum.v2.framing import Frame
from pithead.stratum.v2.messages.base import Subprotocol
from pithead.stratum.v2.messages.mining import SubmitSharesStandard
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from stratum.v2 import transcript
from stratum.v2.vectors import load_json

NOW = transcript.NOW
SHARE = encode_frame(SubmitSharesStandard(1, 2, 3, 4, 5, 0x20000000))


class Keys:
    """An authority and a server certified by it (fresh per test)."""

    def __init__(self, valid_from: int = NOW, validity: int = 3600) -> None:
        self.authority = secp256k1.new_secret()
        self.authority_key = secp256k1.xonly_public(self.authority)
        self.static = secp256k1.new_secret()
        self.certificate = cert.issue(self.authority, secp256k1.xonly_public(self.static), valid_from,
                                      valid_from + validity)

    def responder(self, **kw: object) -> noise.Responder:
        return noise.Responder(self.static, self.certificate, **kw)  # type: ignore[arg-type]


def handshake(keys: Keys, now: float = NOW, pinned: bytes | None = None,
              tamper: Callable[[bytes], bytes] = lambda b: b) -> tuple[noise.NoiseTransport, noise.NoiseTransport]:
    initiator = noise.Initiator(keys.authority_key if pinned is None else pinned)
    server = keys.responder().feed(initiator.start())
    assert server.transport is not None
    client = initiator.feed(tamper(server.send), now)
    assert client.transport is not None and client.leftover == b""
    return client.transport, server.transport


# --- constants and sizes -----------------------------------------------------------------------------


def test_constants_of_the_notes_and_both_implementations() -> None:
    c = load_json("sv2-constants.json")["noise"]
    assert noise.PROTOCOL_NAME.decode() == c["protocol_name"]["value"]
    ck = hashlib.sha256(noise.PROTOCOL_NAME).digest()
    assert ck.hex() == "2eb47881208e9eee1f669f67c66ee70ea9ea88090d503fe830dc4bc83e29bf10"
    assert hashlib.sha256(ck).digest().hex() == c["initial_handshake_hash"]["value"]
    assert noise.ACT1_SIZE == c["handshake_act1_size"]["value"] == 64
    assert noise.ACT2_SIZE == c["handshake_act2_size"]["value"] == 234  # not the spec's stale 170
    assert noise.ENCRYPTED_HEADER_SIZE == 22 and noise.MAX_CHUNK_PLAINTEXT == 65519


def test_encrypted_size_examples() -> None:
    for example in load_json("sv2-constants.json")["sizes"]["encrypted_payload_len"]["examples"]:
        assert noise.encrypted_size(example["plaintext_len"]) == example["ciphertext_len"], example


def test_handshake_sizes_and_agreement() -> None:
    keys = Keys()
    initiator = noise.Initiator(keys.authority_key)
    act1 = initiator.start()
    server = keys.responder().feed(act1)
    client = initiator.feed(server.send, NOW)
    assert len(act1) == 64 and len(server.send) == 234
    assert client.transport is not None and server.transport is not None
    assert client.transport.handshake_hash == server.transport.handshake_hash
    assert client.transport.authenticated and initiator.certificate == keys.certificate


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_split_of_the_bytes_gives_the_same_session(data: st.DataObject) -> None:
    keys = Keys()
    initiator = noise.Initiator(keys.authority_key)
    responder = keys.responder()
    act1 = initiator.start()
    cut1 = data.draw(st.integers(0, 63))
    assert responder.feed(act1[:cut1]).transport is None
    server = responder.feed(act1[cut1:])
    assert server.transport is not None
    # the server's first frame arrives glued to Act 2: it comes back as the transport's first input
    wire = server.send + server.transport.encrypt(SHARE)
    cut2 = data.draw(st.integers(0, 233))
    assert initiator.feed(wire[:cut2], NOW).transport is None
    client = initiator.feed(wire[cut2:], NOW)
    assert client.transport is not None
    assert client.transport.feed(client.leftover) == [Frame(0, 0x1A, SHARE[6:], True)]


def test_a_client_without_a_pinned_key_is_marked_unauthenticated() -> None:
    keys = Keys()
    initiator = noise.Initiator(None)
    client = initiator.feed(keys.responder().feed(initiator.start()).send, NOW + 10**6)  # dates unchecked
    assert client.transport is not None and not client.transport.authenticated


@pytest.mark.parametrize("length", [0, 1, 6, 65513, 65519, 65520, 131038, 131039, 200_000])
def test_chunking_at_65519_plaintext_bytes(length: int) -> None:
    keys = Keys()
    initiator = noise.Initiator(keys.authority_key, max_payload=1 << 20)
    server = keys.responder(max_payload=1 << 20).feed(initiator.start())
    client = initiator.feed(server.send, NOW)
    assert client.transport is not None and server.transport is not None
    frame = Frame(0, 0x1F, bytes(i % 251 for i in range(length)), True)
    wire = client.transport.encrypt(frame.encode())
    assert len(wire) == noise.ENCRYPTED_HEADER_SIZE + noise.encrypted_size(length)
    assert server.transport.feed(wire) == [frame]
    back = server.transport.encrypt(frame.encode())  # and the other way, byte by byte in big pieces
    got: list[Frame] = []
    for start in range(0, len(back), 40_000):
        got += client.transport.feed(back[start:start + 40_000])
    assert got == [frame]


def test_frames_in_sequence_take_consecutive_nonces() -> None:
    client, server = handshake(Keys())
    wires = [client.encrypt(SHARE) for _ in range(3)]
    assert len(set(wires)) == 3  # same plaintext, new nonce each time
    assert server.feed(b"".join(wires)) == [Frame(0, 0x1A, SHARE[6:], True)] * 3


def test_our_transcript_is_unchanged() -> None:
    """The regression vector: pithead's deterministic handshake and session (see transcript.py)."""
    assert transcript.build() == load_json("handshake_transcript.json")


# --- attacks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 5, 21, 22, 30, len(SHARE) + 16 + 15])
def test_a_tampered_ciphertext_is_refused_and_closes_the_transport(position: int) -> None:
    client, server = handshake(Keys())
    wire = bytearray(client.encrypt(SHARE))
    wire[position] ^= 0x01
    with pytest.raises(DecryptionError):
        server.feed(bytes(wire))
    with pytest.raises(TransportClosed):
        server.feed(client.encrypt(SHARE))  # nothing more, not even a good frame
    with pytest.raises(TransportClosed):
        server.encrypt(SHARE)


def test_a_replayed_frame_is_refused() -> None:
    client, server = handshake(Keys())
    wire = client.encrypt(SHARE)
    assert len(server.feed(wire)) == 1
    with pytest.raises(DecryptionError):
        server.feed(wire)  # the same bytes again: its nonce is spent


def test_reordered_frames_are_refused() -> None:
    client, server = handshake(Keys())
    first, second = client.encrypt(SHARE), client.encrypt(SHARE)
    with pytest.raises(DecryptionError):
        server.feed(second + first)


def test_a_frame_from_another_session_is_refused() -> None:
    keys = Keys()
    client_a, _ = handshake(keys)
    _, server_b = handshake(keys)
    with pytest.raises(DecryptionError):
        server_b.feed(client_a.encrypt(SHARE))


def test_an_oversized_frame_is_refused_from_its_header() -> None:
    keys = Keys()
    initiator = noise.Initiator(keys.authority_key, max_payload=1 << 20)
    server_step = keys.responder(max_payload=1000).feed(initiator.start())
    client = initiator.feed(server_step.send, NOW).transport
    assert client is not None and server_step.transport is not None
    wire = client.encrypt(Frame(0, 0x1B, bytes(1001), True).encode())
    with pytest.raises(FramingError, match="1001 bytes"):
        server_step.transport.feed(wire[:noise.ENCRYPTED_HEADER_SIZE])  # refused before the payload
    with pytest.raises(TransportClosed):
        server_step.transport.feed(b"")


def test_a_frame_cut_short_at_the_end_of_the_stream() -> None:
    client, server = handshake(Keys())
    wire = client.encrypt(SHARE)
    assert server.feed(wire[:-1]) == []
    with pytest.raises(FramingError, match="inside a frame"):
        server.close()


def test_a_wrong_authority_key_fails_the_handshake() -> None:
    other = secp256k1.xonly_public(secp256k1.new_secret())
    with pytest.raises(BadCertificateSignature):
        handshake(Keys(), pinned=other)


def test_a_certificate_for_another_static_key_fails() -> None:
    """A server replaying someone else's certificate (it lacks that static secret)."""
    honest, thief = Keys(), Keys()
    thief.certificate = honest.certificate
    with pytest.raises(BadCertificateSignature):
        handshake(thief, pinned=honest.authority_key)


def test_an_expired_or_not_yet_valid_certificate_fails() -> None:
    with pytest.raises(CertificateExpired):
        handshake(Keys(valid_from=NOW - 7200, validity=3600))
    with pytest.raises(CertificateNotYetValid):
        handshake(Keys(valid_from=NOW + 60))


def test_an_unsupported_certificate_version_fails() -> None:
    keys = Keys()
    unsigned = cert.Certificate(1, NOW, NOW + 60, bytes(64))
    digest = cert.signed_digest(unsigned, secp256k1.xonly_public(keys.static))
    keys.certificate = cert.Certificate(1, NOW, NOW + 60, secp256k1.schnorr_sign(keys.authority, digest))
    with pytest.raises(UnsupportedCertificateVersion):
        handshake(keys)


@pytest.mark.parametrize("position", [0, 63, 64, 143, 144, 233])
def test_a_tampered_act2_fails_the_handshake(position: int) -> None:
    def flip(act2: bytes) -> bytes:
        b = bytearray(act2)
        b[position] ^= 0x80
        return bytes(b)

    with pytest.raises(HandshakeError):
        handshake(Keys(), tamper=flip)


@settings(max_examples=20, deadline=None)
@given(junk=st.binary(min_size=234, max_size=300))
def test_a_server_that_is_no_sv2_server_fails_the_handshake(junk: bytes) -> None:
    initiator = noise.Initiator(Keys().authority_key)
    initiator.start()
    with pytest.raises(HandshakeError):
        initiator.feed(junk, NOW)


def test_a_client_sending_more_than_act1_is_refused() -> None:
    responder = Keys().responder()
    with pytest.raises(HandshakeError, match="after Act 1"):
        responder.feed(noise.Initiator(None).start() + b"\x00")
    with pytest.raises(HandshakeError):
        responder.feed(b"")


def test_handshakes_used_out_of_order() -> None:
    initiator = noise.Initiator(None)
    with pytest.raises(HandshakeError):
        initiator.feed(b"", NOW)
    initiator.start()
    with pytest.raises(HandshakeError):
        initiator.start()
    with pytest.raises(HandshakeError):
        noise.Initiator(b"\xff" * 32)  # not a key


@settings(max_examples=40, deadline=None)
@given(junk=st.binary(max_size=400))
def test_junk_on_an_established_transport_is_a_typed_error(junk: bytes) -> None:
    _, server = handshake(Keys())
    try:
        frames = server.feed(junk)
    except Sv2Error:
        return
    assert frames == []  # fewer than 22 bytes: still waiting


def test_a_wrong_subprotocol_message_through_the_transport() -> None:
    client, server = handshake(Keys())
    (frame,) = server.feed(client.encrypt(SHARE))
    with pytest.raises(WrongSubprotocol):
        decode_frame(frame, protocol=Subprotocol.TEMPLATE_DISTRIBUTION)


def test_encrypt_refuses_a_malformed_frame() -> None:
    client, _ = handshake(Keys())
    with pytest.raises(EncodeError):
        client.encrypt(b"\x00" * 5)
    with pytest.raises(EncodeError):
        client.encrypt(SHARE + b"\x00")  # the header's length disagrees

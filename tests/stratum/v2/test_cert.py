"""The pool's certificate (version, validity with SRI's leeway, BIP340 by the authority key) and the
authority key's base58check encoding (the spec's vector and SRI's published test keypair)."""

from __future__ import annotations

import base58
import pytest

from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.errors import (
    BadCertificateSignature,
    CertificateExpired,
    CertificateNotYetValid,
    DecodeError,
    EncodeError,
    KeyEncodingError,
    UnsupportedCertificateVersion,
)
from stratum.v2.vectors import load_json

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def _key_vectors() -> dict[str, dict[str, str]]:
    return {v["name"]: v for v in load_json("sv2-constants.json")["authority_key_encoding"]["vectors"]}


def test_spec_authority_key_vector() -> None:
    v = _key_vectors()["sv2-spec 4.7.1 test vector (cross-check)"]
    xonly = bytes.fromhex(v["xonly_pubkey_hex"])
    assert cert.encode_public_key(xonly) == v["base58check"]
    assert cert.decode_public_key(v["base58check"]) == xonly


def test_sri_test_keypair() -> None:
    v = _key_vectors()["SRI codec-sv2 test authority keypair"]
    secret = cert.decode_secret_key(v["secret_base58check"])
    assert secret.hex() == v["secret_key_hex"]
    assert cert.encode_secret_key(secret) == v["secret_base58check"]
    assert secp256k1.xonly_public(secret).hex() == v["xonly_pubkey_hex"]
    assert cert.decode_public_key(v["public_base58check"]).hex() == v["xonly_pubkey_hex"]
    assert cert.encode_public_key(secp256k1.xonly_public(secret)) == v["public_base58check"]


def test_bad_key_strings_are_key_encoding_errors() -> None:
    v = _key_vectors()["SRI codec-sv2 test authority keypair"]
    public, secret = v["public_base58check"], v["secret_base58check"]
    for bad in (public[:-1] + ("1" if public[-1] != "1" else "2"),  # checksum
                "0OIl", "", secret):  # not base58; empty; a secret where a public key belongs
        with pytest.raises(KeyEncodingError):
            cert.decode_public_key(bad)
    with pytest.raises(KeyEncodingError):
        cert.decode_secret_key(public)  # 34 bytes with a version: not a secret
    with pytest.raises(KeyEncodingError, match="version"):  # version 2 in front of a good key
        cert.decode_public_key(base58.b58encode_check(b"\x02\x00" + bytes.fromhex(v["xonly_pubkey_hex"])).decode())
    with pytest.raises(KeyEncodingError, match="not a point"):
        cert.decode_public_key(base58.b58encode_check(b"\x01\x00" + b"\xff" * 32).decode())
    with pytest.raises(KeyEncodingError):
        cert.encode_secret_key(bytes(32))


@pytest.fixture
def keys() -> tuple[bytes, bytes, bytes]:
    authority = secp256k1.new_secret()
    return authority, secp256k1.xonly_public(authority), secp256k1.xonly_public(secp256k1.new_secret())


def test_a_certificate_verifies_within_its_window_and_leeway(keys: tuple[bytes, bytes, bytes]) -> None:
    authority, authority_key, static_key = keys
    c = cert.issue(authority, static_key, NOW, NOW + 3600)
    assert cert.Certificate.decode(c.encode()) == c and len(c.encode()) == cert.CERTIFICATE_SIZE
    for now in (NOW - cert.CLOCK_LEEWAY, NOW, NOW + 3600, NOW + 3600 + cert.CLOCK_LEEWAY):
        c.verify(authority_key, static_key, now)
    with pytest.raises(CertificateNotYetValid):
        c.verify(authority_key, static_key, NOW - cert.CLOCK_LEEWAY - 1)
    with pytest.raises(CertificateExpired):
        c.verify(authority_key, static_key, NOW + 3600 + cert.CLOCK_LEEWAY + 1)


def test_a_certificate_from_another_authority_or_for_another_key_fails(keys: tuple[bytes, bytes, bytes]) -> None:
    authority, authority_key, static_key = keys
    c = cert.issue(authority, static_key, NOW, NOW + 3600)
    other = secp256k1.xonly_public(secp256k1.new_secret())
    with pytest.raises(BadCertificateSignature):
        c.verify(other, static_key, NOW)  # the wrong authority pinned
    with pytest.raises(BadCertificateSignature):
        c.verify(authority_key, other, NOW)  # a certificate for another server's static key
    stretched = cert.Certificate(c.version, c.valid_from, c.not_valid_after + 1, c.signature)
    with pytest.raises(BadCertificateSignature):
        stretched.verify(authority_key, static_key, NOW)  # dates are signed


def test_only_version_0_is_accepted(keys: tuple[bytes, bytes, bytes]) -> None:
    authority, authority_key, static_key = keys
    unsigned = cert.Certificate(1, NOW, NOW + 60, bytes(64))
    signature = secp256k1.schnorr_sign(authority, cert.signed_digest(unsigned, static_key), bytes(32))
    with pytest.raises(UnsupportedCertificateVersion):
        cert.Certificate(1, NOW, NOW + 60, signature).verify(authority_key, static_key, NOW)


def test_signing_is_reproducible_given_aux_rand(keys: tuple[bytes, bytes, bytes]) -> None:
    authority, _, static_key = keys
    assert cert.issue(authority, static_key, NOW, NOW + 1, bytes(32)) == \
        cert.issue(authority, static_key, NOW, NOW + 1, bytes(32))


def test_malformed_certificates() -> None:
    with pytest.raises(DecodeError):
        cert.Certificate.decode(bytes(73))
    with pytest.raises(EncodeError):
        cert.issue(secp256k1.new_secret(), bytes(32), NOW, NOW - 1)
    with pytest.raises(EncodeError):
        cert.Certificate(0, -1, 0, bytes(64)).encode()

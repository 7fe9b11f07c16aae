"""The one module over libsecp256k1 (coincurve, partly through its private cffi module), against the
BIP324 vectors (ElligatorSwift decoding, the inverse map's preimages, the ECDH SV2 uses) and the BIP340
vectors (signing and verification). If a coincurve release changes the private surface, these fail."""

from __future__ import annotations

import pytest

from pithead.stratum.v2 import secp256k1
from pithead.stratum.v2.errors import Secp256k1Error
from stratum.v2.vectors import load_csv

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_ellswift_decode_vectors() -> None:
    rows = load_csv("bip-0324_ellswift_decode_test_vectors.csv")
    assert len(rows) == 76
    for row in rows:
        assert secp256k1.ellswift_decode(bytes.fromhex(row["ellswift"])).hex() == row["x"], row["comment"]


def test_xswiftec_inverse_preimages_decode_to_their_x() -> None:
    """Each (u, t) the inverse map gives for x is an encoding u ‖ t of x (libsecp256k1 exposes no inverse
    of its own; ellswift_create uses it, so its preimages must decode back)."""
    rows = load_csv("bip-0324_xswiftec_inv_test_vectors.csv")
    checked = 0
    for row in rows:
        for case in range(8):
            t = row[f"case{case}_t"]
            if t:
                assert secp256k1.ellswift_decode(bytes.fromhex(row["u"] + t)).hex() == row["x"], (row["u"], case)
                checked += 1
    assert checked > 50


def test_bip324_ecdh_vectors() -> None:
    """`mid_shared_secret` is exactly what SRI and sv2-tp feed Noise's MixKey: the initiator's encoding
    is hashed first whichever side computes it."""
    rows = load_csv("bip-0324_packet_encoding_test_vectors.csv")
    assert rows
    for row in rows:
        ours, theirs = bytes.fromhex(row["in_ellswift_ours"]), bytes.fromhex(row["in_ellswift_theirs"])
        initiating = row["in_initiating"] == "1"
        first, second = (ours, theirs) if initiating else (theirs, ours)
        secret = bytes.fromhex(row["in_priv_ours"])
        assert secp256k1.ellswift_ecdh(first, second, secret, initiator=initiating).hex() \
            == row["mid_shared_secret"], row["in_idx"]
        assert secp256k1.ellswift_decode(ours).hex() == row["mid_x_ours"]
        assert secp256k1.ellswift_decode(theirs).hex() == row["mid_x_theirs"]
        assert secp256k1.ellswift_ecdh(first, second, secret, initiator=not initiating).hex() \
            != row["mid_shared_secret"]  # the roles matter


def test_ellswift_create_encodes_the_key_and_is_reproducible_given_its_randomness() -> None:
    secret = bytes(31) + b"\x03"
    aux = bytes(range(32))
    encoding = secp256k1.ellswift_create(secret, aux)
    assert secp256k1.ellswift_decode(encoding) == secp256k1.xonly_public(secret)
    assert secp256k1.ellswift_create(secret, aux) == encoding
    assert secp256k1.ellswift_create(secret) != encoding  # fresh randomness, another encoding


def test_two_parties_agree_on_the_shared_secret() -> None:
    a, b = secp256k1.new_secret(), secp256k1.new_secret()
    ell_a, ell_b = secp256k1.ellswift_create(a), secp256k1.ellswift_create(b)
    assert secp256k1.ellswift_ecdh(ell_a, ell_b, a, initiator=True) == \
        secp256k1.ellswift_ecdh(ell_a, ell_b, b, initiator=False)


def test_bip340_vectors() -> None:
    rows = load_csv("bip-0340_test-vectors.csv")
    signed = 0
    for row in rows:
        key, sig, msg = (bytes.fromhex(row[c]) for c in ("public key", "signature", "message"))
        assert secp256k1.schnorr_verify(key, sig, msg) == (row["verification result"] == "TRUE"), row["index"]
        if row["secret key"] and len(msg) == 32:  # SV2 signs 32-byte digests only
            secret = bytes.fromhex(row["secret key"])
            assert secp256k1.xonly_public(secret) == key
            assert secp256k1.schnorr_sign(secret, msg, bytes.fromhex(row["aux_rand"])) == sig
            signed += 1
    assert signed == 4


@pytest.mark.parametrize("secret", [bytes(32), ORDER.to_bytes(32, "big"), b"\xff" * 32, bytes(31), b"x" * 33])
def test_invalid_secrets_are_refused(secret: bytes) -> None:
    with pytest.raises(Secp256k1Error):
        secp256k1.check_secret(secret)
    with pytest.raises(Secp256k1Error):
        secp256k1.ellswift_create(secret, bytes(32))
    with pytest.raises(Secp256k1Error):
        secp256k1.ellswift_ecdh(bytes(64), bytes(64), secret, initiator=True)


def test_wrong_sizes_are_refused() -> None:
    with pytest.raises(Secp256k1Error):
        secp256k1.ellswift_decode(bytes(63))
    with pytest.raises(Secp256k1Error):
        secp256k1.schnorr_sign(bytes(31) + b"\x01", bytes(31), bytes(32))
    assert not secp256k1.schnorr_verify(bytes(31), bytes(64), bytes(32))
    assert not secp256k1.xonly_valid(b"\xff" * 32)  # above the field size: no point

"""secp256k1 for Stratum V2's Noise handshake: the one module that touches libsecp256k1.

What it is: thin, typed functions over the libsecp256k1 that coincurve's wheel bundles (coincurve is
pinned in pyproject.toml):

- `ellswift_create`, `ellswift_decode`: BIP324's ElligatorSwift encoding of public keys (64 bytes that
  look uniformly random; every 64-byte string decodes to some x coordinate), used for both handshake
  keys of SV2's Noise NX.
- `ellswift_ecdh`: BIP324's `v2_ecdh` — x-only ECDH hashed with the tag "bip324_ellswift_xonly_ecdh"
  over *initiator's encoding ‖ responder's encoding ‖ x*: the initiator's encoding always comes first,
  whichever side computes it (libsecp256k1 party A is the initiator).
- `schnorr_sign`, `schnorr_verify`: BIP340, for the certificate the authority key signs.
- `xonly_public`, `xonly_valid`, `new_secret`, `check_secret`: keys.

coincurve's public API covers BIP340 and keys; it has no wrapper for ElligatorSwift, so those three
functions call the bundled library's `secp256k1_ellswift_*` through coincurve's private cffi module
`coincurve._libsecp256k1` (its `lib` and `ffi`). That private surface may change between coincurve
releases, which is why the version is pinned, why nothing else in pithead imports coincurve, and why
`tests/stratum/v2/test_secp256k1.py` runs the BIP324 vectors (decoding, ECDH) and the BIP340 vectors
against this module.

What it is not: Noise (`noise`), the certificate format (`cert`), or a general-purpose curve library.
Everything here is deterministic given its inputs; only `new_secret` draws randomness (the OS's CSPRNG).
"""

from __future__ import annotations

import secrets

from coincurve import PrivateKey, PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from pithead.stratum.v2.errors import Secp256k1Error

SECRET_SIZE = 32
XONLY_SIZE = 32
ELLSWIFT_SIZE = 64
SIGNATURE_SIZE = 64
AUX_RAND_SIZE = 32
"""BIP340's and ElligatorSwift's auxiliary randomness is 32 bytes."""

_COMPRESSED_SIZE = 33
_CTX = GLOBAL_CONTEXT.ctx
_BIP324_HASH = lib.secp256k1_ellswift_xdh_hash_function_bip324
_PARTY_INITIATOR = 0  # libsecp256k1's party A: its encoding is hashed first
_PARTY_RESPONDER = 1


def _need(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes | bytearray) else type(value).__name__
        raise Secp256k1Error(f"{name} must be {size} bytes, got {got}")


def check_secret(secret: bytes) -> None:
    """Raise `Secp256k1Error` unless `secret` is a valid secret key (32 bytes, 1 ≤ k < n)."""
    _need("secret key", secret, SECRET_SIZE)
    if not lib.secp256k1_ec_seckey_verify(_CTX, secret):
        raise Secp256k1Error("secret key out of range (zero, or not below the group order)")


def new_secret() -> bytes:
    """A fresh secret key from the OS's CSPRNG."""
    while True:
        secret = secrets.token_bytes(SECRET_SIZE)
        if lib.secp256k1_ec_seckey_verify(_CTX, secret):
            return secret


def xonly_public(secret: bytes) -> bytes:
    """The BIP340 x-only public key (32 bytes) of `secret`."""
    check_secret(secret)
    return PrivateKey(secret).public_key_xonly.format()


def xonly_valid(xonly: bytes) -> bool:
    """Whether `xonly` (32 bytes) is the x coordinate of a point on the curve (a usable BIP340 key)."""
    if not isinstance(xonly, bytes) or len(xonly) != XONLY_SIZE:
        return False
    try:
        PublicKeyXOnly(xonly)
    except ValueError:
        return False
    return True


def ellswift_create(secret: bytes, aux_rand: bytes | None = None) -> bytes:
    """The 64-byte ElligatorSwift encoding of `secret`'s public key. The encoding is one of many for the
    key, chosen by `aux_rand` (32 bytes; None draws them): passing it makes the result reproducible."""
    check_secret(secret)
    if aux_rand is None:
        aux_rand = secrets.token_bytes(AUX_RAND_SIZE)
    _need("aux_rand", aux_rand, AUX_RAND_SIZE)
    out = ffi.new("unsigned char[64]")
    if not lib.secp256k1_ellswift_create(_CTX, out, secret, aux_rand):
        raise Secp256k1Error("ellswift_create failed")
    return bytes(ffi.buffer(out))


def ellswift_decode(ellswift: bytes) -> bytes:
    """The x coordinate (32 bytes, x-only) an ElligatorSwift encoding stands for (every 64 bytes do)."""
    _need("ElligatorSwift encoding", ellswift, ELLSWIFT_SIZE)
    point = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ellswift_decode(_CTX, point, ellswift):
        raise Secp256k1Error("ellswift_decode failed")
    out = ffi.new("unsigned char[33]")
    size = ffi.new("size_t *", _COMPRESSED_SIZE)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, size, point, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out))[1:]


def ellswift_ecdh(ellswift_initiator: bytes, ellswift_responder: bytes, secret: bytes, *,
                  initiator: bool) -> bytes:
    """BIP324's shared secret: SHA256 tagged "bip324_ellswift_xonly_ecdh" of the initiator's encoding, the
    responder's encoding and the x-only ECDH point of `secret` with the *other* side's key. `initiator`
    says which of the two encodings is ours."""
    _need("initiator's ElligatorSwift encoding", ellswift_initiator, ELLSWIFT_SIZE)
    _need("responder's ElligatorSwift encoding", ellswift_responder, ELLSWIFT_SIZE)
    check_secret(secret)
    out = ffi.new("unsigned char[32]")
    party = _PARTY_INITIATOR if initiator else _PARTY_RESPONDER
    if not lib.secp256k1_ellswift_xdh(_CTX, out, ellswift_initiator, ellswift_responder, secret, party,
                                      _BIP324_HASH, ffi.NULL):
        raise Secp256k1Error("ellswift_xdh failed")
    return bytes(ffi.buffer(out))


def schnorr_sign(secret: bytes, message32: bytes, aux_rand: bytes | None = None) -> bytes:
    """BIP340 signature (64 bytes) of a 32-byte message; `aux_rand` (32 bytes) None draws fresh ones."""
    check_secret(secret)
    _need("message", message32, 32)
    if aux_rand is None:
        aux_rand = secrets.token_bytes(AUX_RAND_SIZE)
    _need("aux_rand", aux_rand, AUX_RAND_SIZE)
    try:
        return PrivateKey(secret).sign_schnorr(message32, aux_rand)
    except ValueError as exc:
        raise Secp256k1Error(f"BIP340 signing failed: {exc}") from None


def schnorr_verify(xonly: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is a valid BIP340 signature of `message` by the x-only key `xonly`. A key that
    is not on the curve, or a signature of the wrong size, is simply not valid."""
    if len(xonly) != XONLY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        key = PublicKeyXOnly(xonly)
    except ValueError:  # not the x coordinate of a curve point
        return False
    return key.verify(signature, message)

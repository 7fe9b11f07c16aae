"""Hash helpers: the RIPEMD-160 fallback (used where OpenSSL 3 hides ripemd160) against the published
test vectors and hashlib, hash160 → the genesis block's famous payout address, and the named byte orders."""

from __future__ import annotations

import hashlib

import pytest
from chain_vectors import load_vector
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.address import address_to_script, script_to_address
from pithead.chain.hashes import (
    _ripemd160,
    display_hex,
    from_display_hex,
    hash160,
    hash_to_int,
    sha256,
    sha256d,
)
from pithead.chain.params import MAINNET
from pithead.chain.script import p2pkh_script
from pithead.chain.tx import Transaction

# From the RIPEMD-160 paper's test vector table (Dobbertin, Bosselaers, Preneel).
RIPEMD160_VECTORS = [
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b"),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
    (b"a" * 1_000_000, "52783243c1697bdbe16d37f97f68f08325dc1528"),
]


@pytest.mark.parametrize(("msg", "digest"), RIPEMD160_VECTORS, ids=range(len(RIPEMD160_VECTORS)))
def test_ripemd160_fallback_matches_the_published_vectors(msg: bytes, digest: str) -> None:
    if len(msg) > 1000:
        # The million-'a' vector takes seconds in pure Python: check hash160's OpenSSL path with it instead.
        if not _openssl_has_ripemd():
            pytest.skip("OpenSSL without ripemd160")
        assert hashlib.new("ripemd160", msg).hexdigest() == digest
        return
    assert _ripemd160(msg).hex() == digest


def _openssl_has_ripemd() -> bool:
    try:
        hashlib.new("ripemd160")
    except ValueError:
        return False
    return True


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_ripemd160_fallback_matches_openssl(msg: bytes) -> None:
    if not _openssl_has_ripemd():
        pytest.skip("OpenSSL without ripemd160: the published vectors above are the check")
    assert _ripemd160(msg) == hashlib.new("ripemd160", msg).digest()


def test_hash160_of_the_genesis_pubkey_is_satoshis_address() -> None:
    genesis = next(v for v in load_vector("blocks.json")["vectors"] if v["height"] == 0)
    cb = Transaction.from_hex(genesis["coinbase_tx_hex"])
    spk = cb.outputs[0].script_pubkey  # P2PK: push 65-byte key, OP_CHECKSIG
    assert spk[0] == 65 and spk[-1] == 0xAC
    key_hash = hash160(spk[1:66])
    assert key_hash == _ripemd160(sha256(spk[1:66]))
    address = script_to_address(p2pkh_script(key_hash), MAINNET)
    assert address == "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    assert address_to_script(address, MAINNET) == p2pkh_script(key_hash)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_byte_orders(h: bytes) -> None:
    assert from_display_hex(display_hex(h)) == h
    assert int(display_hex(h), 16) == hash_to_int(h)
    assert sha256d(h) == hashlib.sha256(hashlib.sha256(h).digest()).digest()

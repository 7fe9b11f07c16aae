"""Hash functions and the named byte orders of Bitcoin hashes.

Internally a hash is the raw 32 bytes that SHA-256d produced ("internal order"). Bitcoin Core's RPC and
block explorers show it reversed ("display hex"); `b2lx`/`lx` in python-bitcoinlib. Stratum sends the
previous-block hash with each 4-byte word swapped; that encoding lives in its own named pair of functions
below, with a vector in the tests. Never write an ad-hoc `[::-1]` elsewhere: call these.
"""

from __future__ import annotations

import hashlib
import math
import struct

from pithead.chain.errors import ChainDecodeError

_sha256 = hashlib.sha256


def sha256(data: bytes) -> bytes:
    return _sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """SHA-256 of SHA-256: block header hashes, txids, merkle nodes."""
    return _sha256(_sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (P2PKH/P2WPKH key hashes). Uses OpenSSL's ripemd160 when present, else ours."""
    h = _sha256(data).digest()
    try:
        return hashlib.new("ripemd160", h).digest()
    except ValueError:  # OpenSSL 3 may not offer legacy ripemd160
        return _ripemd160(h)


def display_hex(h: bytes) -> str:
    """Internal-order hash → the hex Bitcoin Core prints (byte-reversed)."""
    return h[::-1].hex()


def from_display_hex(s: str) -> bytes:
    """Display hex (as in RPC, explorers) → internal-order 32 bytes."""
    b = unhex(s, "hash")
    if len(b) != 32:
        raise ChainDecodeError(f"hash must be 32 bytes, got {len(b)}")
    return b[::-1]


def hash_to_int(h: bytes) -> int:
    """A hash as the 256-bit integer compared against targets (little-endian of internal order)."""
    return int.from_bytes(h, "little")


def prevhash_to_stratum(prev: bytes) -> str:
    """Internal-order previous-block hash → Stratum `mining.notify` prevhash: the internal bytes with
    each 32-bit word byte-swapped (equivalently, display hex with its 8 words in reverse order)."""
    if len(prev) != 32:
        raise ChainDecodeError("prevhash must be 32 bytes")
    return b"".join(prev[i : i + 4][::-1] for i in range(0, 32, 4)).hex()


def prevhash_from_stratum(s: str) -> bytes:
    """Stratum prevhash hex → internal-order 32 bytes (inverse of `prevhash_to_stratum`)."""
    b = unhex(s, "prevhash")
    if len(b) != 32:
        raise ChainDecodeError("prevhash must be 32 bytes")
    return b"".join(b[i : i + 4][::-1] for i in range(0, 32, 4))


# --- SHA-256 midstate: the state after compressing the first 64-byte block of a header ---
# ASIC work (BM1397 and friends) and some proxies send the midstate of header[0:64] instead of the header,
# since those 64 bytes do not change while the nonce is rolled. hashlib does not expose its internal
# state, so the compression function is written out here (FIPS 180-4 §6.2.2). Its constants are derived
# rather than typed in: H0 are the first 32 fractional bits of the square roots of the first 8 primes, K
# those of the cube roots of the first 64 primes (FIPS 180-4 §4.2.2, §5.3.3). Tests check the whole
# function against hashlib by padding and chaining it.

SHA256_BLOCK_SIZE = 64


def _first_primes(n: int) -> list[int]:
    primes: list[int] = []
    k = 2
    while len(primes) < n:
        if all(k % p for p in primes if p * p <= k):
            primes.append(k)
        k += 1
    return primes


def _icbrt(n: int) -> int:
    """Integer cube root (floor) by Newton's method."""
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            return x
        x = y


_SHA256_H0 = tuple(math.isqrt(p << 64) & 0xFFFFFFFF for p in _first_primes(8))
_SHA256_K = tuple(_icbrt(p << 96) & 0xFFFFFFFF for p in _first_primes(64))


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def sha256_compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """One SHA-256 compression: 8 state words and a 64-byte block → the next 8 state words."""
    if len(state) != 8 or len(block) != SHA256_BLOCK_SIZE:
        raise ChainDecodeError("sha256_compress needs 8 state words and a 64-byte block")
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _SHA256_K[t] + w[t])
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & 0xFFFFFFFF, c, b, a, (t1 + t2) & 0xFFFFFFFF
    return tuple((x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True))


SHA256_INITIAL_STATE: tuple[int, ...] = _SHA256_H0


def sha256_midstate(first_block: bytes) -> bytes:
    """SHA-256 state after the first 64 bytes (e.g. header[0:64]), as 8 big-endian words (32 bytes).

    This is the standard word order; ESP-Miner/BM1397 wire formats serialize each word little-endian (and
    then reverse the whole thing) — convert at that edge, not here."""
    return struct.pack(">8I", *sha256_compress(SHA256_INITIAL_STATE, first_block))


def unhex(s: str, what: str = "hex") -> bytes:
    """bytes.fromhex with a typed error that names the field. Strict, like Core's IsHex: bytes.fromhex
    alone skips whitespace ("00 11"), which no RPC or Stratum peer of ours should send."""
    if not isinstance(s, str):
        raise ChainDecodeError(f"{what}: expected a hex string, got {type(s).__name__}")
    try:
        out = bytes.fromhex(s)
    except ValueError as exc:
        raise ChainDecodeError(f"{what}: not valid hex") from exc
    if 2 * len(out) != len(s):
        raise ChainDecodeError(f"{what}: not valid hex (whitespace)")
    return out


# --- RIPEMD-160 fallback (only used when OpenSSL lacks it). Straight from the 1996 spec's description. ---
_RL = [
    list(range(16)),
    [7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8],
    [3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12],
    [1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2],
    [4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13],
]
_RR = [
    [5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12],
    [6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2],
    [15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13],
    [8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14],
    [12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11],
]
_SL = [
    [11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8],
    [7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12],
    [11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5],
    [11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12],
    [9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6],
]
_SR = [
    [8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6],
    [9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11],
    [9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5],
    [15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8],
    [8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11],
]
_KL = [0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E]
_KR = [0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000]
_M = 0xFFFFFFFF


def _f(j: int, x: int, y: int, z: int) -> int:
    if j == 0:
        return x ^ y ^ z
    if j == 1:
        return (x & y) | (~x & z)
    if j == 2:
        return (x | ~y) ^ z
    if j == 3:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M


def _ripemd160(msg: bytes) -> bytes:
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    ml = len(msg) * 8
    msg = msg + b"\x80" + b"\x00" * ((55 - len(msg)) % 64) + ml.to_bytes(8, "little")
    for off in range(0, len(msg), 64):
        x = [int.from_bytes(msg[off + 4 * i : off + 4 * i + 4], "little") for i in range(16)]
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for r in range(5):
            for i in range(16):
                t = _rol((al + _f(r, bl, cl, dl) + x[_RL[r][i]] + _KL[r]) & _M, _SL[r][i]) + el
                al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t & _M
                t = _rol((ar + _f(4 - r, br, cr, dr) + x[_RR[r][i]] + _KR[r]) & _M, _SR[r][i]) + er
                ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t & _M
        t = (h[1] + cl + dr) & _M
        h[1] = (h[2] + dl + er) & _M
        h[2] = (h[3] + el + ar) & _M
        h[3] = (h[4] + al + br) & _M
        h[4] = (h[0] + bl + cr) & _M
        h[0] = t
    return b"".join(v.to_bytes(4, "little") for v in h)

"""Script building blocks a pool needs: data pushes, script numbers, the BIP34 height push, and the
standard output templates. This is not a script interpreter.

BIP34 (bip-0034.mediawiki): the coinbase scriptSig must start with the block height "serialized as a
CScript" — i.e. `CScript() << nHeight`, which is OP_0 for 0, OP_1..OP_16 for 1..16 (Core's
CScript::push_int64 uses the small-integer opcodes), else a minimal CScriptNum push. Bitcoin Core checks
it by comparing the scriptSig prefix with exactly that encoding (ContextualCheckBlock), so a non-minimal
push such as `03 010000` for height 1 is invalid.
"""

from __future__ import annotations

from pithead.chain.errors import ChainDecodeError, ChainError

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1NEGATE = 0x4F
OP_1 = 0x51
OP_16 = 0x60
OP_RETURN = 0x6A
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_TRUE = OP_1

MAX_SCRIPT_ELEMENT_SIZE = 520  # Core: script.h, max bytes pushable to the stack


def push_data(data: bytes) -> bytes:
    """Minimal push of a byte string (direct push, PUSHDATA1/2/4 by size)."""
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((OP_PUSHDATA1, n)) + data
    if n <= 0xFFFF:
        return bytes((OP_PUSHDATA2,)) + n.to_bytes(2, "little") + data
    return bytes((OP_PUSHDATA4,)) + n.to_bytes(4, "little") + data


def scriptnum_encode(n: int) -> bytes:
    """CScriptNum serialization: little-endian magnitude, sign in the top bit of the last byte."""
    if n == 0:
        return b""
    neg = n < 0
    mag = -n if neg else n
    out = bytearray()
    while mag:
        out.append(mag & 0xFF)
        mag >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0x00)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


def scriptnum_decode(b: bytes, max_size: int = 8) -> int:
    if len(b) > max_size:
        raise ChainDecodeError(f"script number longer than {max_size} bytes")
    if not b:
        return 0
    n = int.from_bytes(b, "little")
    if b[-1] & 0x80:
        return -(n & ~(0x80 << (8 * (len(b) - 1))))
    return n


def push_int(n: int) -> bytes:
    """`CScript() << n`: OP_0, OP_1NEGATE, OP_1..OP_16, or a minimal script-number push."""
    if n == 0:
        return bytes((OP_0,))
    if n == -1:
        return bytes((OP_1NEGATE,))
    if 1 <= n <= 16:
        return bytes((OP_1 + n - 1,))
    return push_data(scriptnum_encode(n))


def bip34_height_push(height: int) -> bytes:
    """The BIP34 coinbase scriptSig prefix for a block height."""
    if height < 0:
        raise ChainError("height must be non-negative")
    return push_int(height)


def parse_bip34_height(script_sig: bytes) -> int:
    """Read the height at the start of a coinbase scriptSig, insisting on Core's exact encoding.

    Raises ChainDecodeError for a missing, truncated or non-minimal height push."""
    if not script_sig:
        raise ChainDecodeError("empty coinbase scriptSig: no BIP34 height")
    op = script_sig[0]
    if op == OP_0:
        height = 0
    elif OP_1 <= op <= OP_16:
        height = op - OP_1 + 1
    elif 1 <= op <= 8:
        if len(script_sig) < 1 + op:
            raise ChainDecodeError("truncated BIP34 height push")
        height = scriptnum_decode(script_sig[1 : 1 + op], max_size=8)
    else:
        raise ChainDecodeError(f"coinbase scriptSig does not start with a height push (opcode {op:#04x})")
    if height < 0 or script_sig[: len(bip34_height_push(height))] != bip34_height_push(height):
        raise ChainDecodeError("BIP34 height push is not minimally encoded")
    return height


def p2pkh_script(key_hash: bytes) -> bytes:
    return bytes((OP_DUP, OP_HASH160, 20)) + key_hash + bytes((OP_EQUALVERIFY, OP_CHECKSIG))


def p2sh_script(script_hash: bytes) -> bytes:
    return bytes((OP_HASH160, 20)) + script_hash + bytes((OP_EQUAL,))


def witness_program_script(version: int, program: bytes) -> bytes:
    """Segwit output: OP_0 or OP_1..OP_16 then a 2–40 byte program push (BIP141)."""
    if not 0 <= version <= 16:
        raise ChainError("witness version must be 0..16")
    if not 2 <= len(program) <= 40:
        raise ChainError("witness program must be 2..40 bytes")
    return bytes((OP_0 if version == 0 else OP_1 + version - 1, len(program))) + program


def op_return_script(data: bytes) -> bytes:
    return bytes((OP_RETURN,)) + push_data(data)

"""BIP141 witness commitment.

The commitment is sha256d(witness_merkle_root || witness_reserved_value), where the witness merkle root
is over the wtxids with the coinbase's wtxid taken as 32 zero bytes, and the reserved value is the
coinbase input's single 32-byte witness item (conventionally zeros). It goes in a coinbase output whose
script is OP_RETURN, push 36 bytes: 0xaa21a9ed || commitment. If several outputs match, the last counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from pithead.chain.hashes import sha256d
from pithead.chain.merkle import merkle_root

WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
WITNESS_RESERVED_VALUE = bytes(32)
MIN_COMMITMENT_SCRIPT_LEN = 38  # OP_RETURN, 0x24, 4-byte header, 32-byte commitment


def witness_root(wtxids_without_coinbase: Sequence[bytes]) -> bytes:
    return merkle_root([bytes(32), *wtxids_without_coinbase])


def witness_commitment(wtxids_without_coinbase: Sequence[bytes], reserved: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    """The 32-byte commitment for a block whose non-coinbase transactions have these wtxids."""
    return sha256d(witness_root(wtxids_without_coinbase) + reserved)


def commitment_script(commitment: bytes) -> bytes:
    """The coinbase output script carrying the commitment (GBT's `default_witness_commitment`)."""
    return b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + commitment


def find_commitment(script_pubkeys: Sequence[bytes]) -> bytes | None:
    """The commitment in a coinbase's outputs (the last matching output, per BIP141), or None."""
    found = None
    for spk in script_pubkeys:
        if len(spk) >= MIN_COMMITMENT_SCRIPT_LEN and spk[:6] == b"\x6a\x24" + WITNESS_COMMITMENT_HEADER:
            found = spk[6:38]
    return found

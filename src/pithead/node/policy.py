"""Bitcoin Core's policy size of a transaction (policy/policy.h): what the mempool and the block
assembler charge a transaction in virtual bytes.

What it is: `policy_vsize`, Core's GetVirtualTransactionSize with a sigop cost, shared by the mempool
(fee rates, `MempoolEntry.vsize`) and the assembler (package sizes). It sits below both so that neither
imports the other for it. What it is not: consensus (the weight limit is `chain.block`'s), sigop counting
(mempool.py), nor the mempool's or the assembler's own limits, which stay beside the code applying them.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from pithead.chain.tx import WITNESS_SCALE_FACTOR

BYTES_PER_SIGOP = 20  # Core policy.h DEFAULT_BYTES_PER_SIGOP: a sigop "costs" this many vbytes


def policy_vsize(weight: int, sigop_cost: int) -> int:
    """Core's GetVirtualTransactionSize(weight, sigop cost, bytes per sigop)."""
    return (max(weight, sigop_cost * BYTES_PER_SIGOP) + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

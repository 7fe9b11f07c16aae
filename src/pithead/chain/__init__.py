"""pithead.chain: Bitcoin's encodings and proof of work as pure functions on bytes and ints.

No I/O, no clock, no globals. One module per concept: hashes (and named byte orders), compact
(bits/target/difficulty), varint, script, tx, header, merkle, witness, block, address, coinbase, params.
Every decoder raises `ChainDecodeError` (or a subclass) on bad input, never IndexError or a silent value.
"""

from pithead.chain.errors import ChainDecodeError, ChainError

__all__ = ["ChainDecodeError", "ChainError"]

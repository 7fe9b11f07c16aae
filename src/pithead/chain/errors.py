"""Typed errors of pithead.chain: every decoder and validator raises one of these, never a bare
IndexError/struct.error/ValueError from deep inside."""


class ChainError(ValueError):
    """Base class: something about Bitcoin data is wrong."""


class ChainDecodeError(ChainError):
    """Bytes or hex that do not decode as the structure asked for (truncated, trailing data, bad hex)."""


class CompactError(ChainError):
    """An nBits value that is negative, overflows 256 bits, or is zero where a target is required."""

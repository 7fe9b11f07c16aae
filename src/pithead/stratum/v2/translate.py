"""What a Stratum V2 job needs before a V1 machine (or V1-shaped code) can mine it (pure).

What it is: `strip_bip141`, the defensive half of the SV2 -> SV1 job mapping. The spec has a pool send
`NewExtendedMiningJob.coinbase_tx_prefix/suffix` in the legacy serialization (the txid's bytes), but a
pool that sends the witness serialization (marker and flag after the version, the coinbase witness
before the locktime) would make every V1 machine hash the wrong merkle root; SRI's translator strips
them (`channels-sv2/src/bip141.rs`, the cases in `tests/vectors/sv2/translation.json`), and so do we.
Everything else of the mapping is already named elsewhere: the word-swapped prev hash is
`chain.hashes.prevhash_to_stratum`, the job's fields become `mining.notify` in `template.job.Job`, and a
V1 share's version is `stratum.version.rolled_version`.

What it is not: a translator (the farm proxy is, `pithead.proxy`), or anything with I/O.
"""

from __future__ import annotations

from pithead.stratum.v2.errors import PeerViolation

_WITNESS_TAIL = 1 + 1 + 32
"""The coinbase's witness as BIP141 serializes it: one stack item (01), of 32 bytes (20), the reserved value."""
_LOCKTIME = 4


def strip_bip141(prefix: bytes, suffix: bytes) -> tuple[bytes, bytes]:
    """The coinbase halves in the legacy serialization: unchanged when `prefix` has no BIP141 marker and
    flag (byte 4 is 0x00 and byte 5 is not), else without them and without the witness before the
    locktime. `PeerViolation` for halves too short to be a coinbase (SRI's three errors)."""
    if len(prefix) < 6:
        raise PeerViolation(f"a coinbase prefix of {len(prefix)} bytes cannot hold a version and an input count")
    if not (prefix[4] == 0 and prefix[5] != 0):
        return prefix, suffix
    if len(suffix) < _LOCKTIME:
        raise PeerViolation("a witness coinbase suffix without its 4-byte locktime")
    if len(suffix) < _LOCKTIME + _WITNESS_TAIL:
        raise PeerViolation(f"a witness coinbase suffix of {len(suffix)} bytes cannot hold the coinbase witness")
    cut = len(suffix) - _LOCKTIME - _WITNESS_TAIL
    return prefix[:4] + prefix[6:], suffix[:cut] + suffix[-_LOCKTIME:]

"""Extranonce1 allocation: a unique extranonce1 per live session, with session resume (sans-IO).

The extranonce1 is also the session id we return in `mining.subscribe` (as ckpool does), so a miner that
reconnects with `mining.subscribe [agent, previous_id]` gets the same extranonce1 back when it is free —
its in-flight shares on still-valid jobs then stay valid. Values come from a counter stepped by an odd
constant (a bijection on 2^32), so consecutive sessions differ in many bits and never collide until 2^32
allocations; live ones are tracked in a set so a resumed id is never handed to two sessions.

Shards: when the pool runs as several worker processes sharing one port (`pithead pool --workers N`), each
worker allocates from its own slice of the space — the top ceil(log2 N) bits of extranonce1 are the
worker's index — so no two miners anywhere in the pool ever get the same extranonce1 (in pool mode that
would give them the same coinbase and the same work). A resumed id from another worker's slice is not
granted: the miner gets a fresh one, as it would after any pool restart.
"""

from __future__ import annotations

EXTRANONCE1_SIZE = 4
"""Bytes of extranonce1: 2^32 live sessions, far beyond one process; with extranonce2 4 (<= 8 for cgminer
firmware) the coinbase keeps 8 bytes of search space, as Miningcore/NOMP/public-pool do."""

DEFAULT_EXTRANONCE2_SIZE = 4
_STEP = 0x9E3779B1  # odd (golden-ratio) step: i * STEP mod 2^32 visits every value once


class ExtranonceExhausted(RuntimeError):
    """No free extranonce1 (only possible with ~2^32 live sessions)."""


class ExtranonceAllocator:
    __slots__ = ("_counter", "_live", "_low_bits", "_prefix", "_size", "server_salt", "shard")

    def __init__(self, salt: int = 0, size: int = EXTRANONCE1_SIZE, shard: tuple[int, int] = (0, 1)) -> None:
        index, count = shard
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"extranonce shard {index}/{count} is not one of 0..{count - 1}")
        shard_bits = (count - 1).bit_length()
        if shard_bits >= 8 * size:
            raise ValueError(f"{count} shards do not fit {size} bytes of extranonce1")
        self._size = size
        self._low_bits = 8 * size - shard_bits
        self._prefix = index << self._low_bits
        self._counter = salt & 0xFFFFFFFF
        self._live: set[bytes] = set()
        self.server_salt = salt
        self.shard = (index, count)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._live)

    def allocate(self, preferred: bytes | None = None) -> bytes:
        """A free extranonce1: `preferred` (a resumed session id) when free and well-formed, else a new one."""
        if (preferred is not None and len(preferred) == self._size and preferred not in self._live
                and self.owns(preferred)):
            self._live.add(preferred)
            return preferred
        modulus = 1 << self._low_bits
        for _ in range(1024):  # collisions need a live session at this value: a few tries at most
            self._counter = (self._counter + 1) % modulus
            value = (self._prefix | (self._counter * _STEP) % modulus).to_bytes(self._size, "big")
            if value not in self._live:
                self._live.add(value)
                return value
        raise ExtranonceExhausted("no free extranonce1")

    def owns(self, value: bytes) -> bool:
        """Whether `value` lies in this allocator's shard of the extranonce1 space."""
        return int.from_bytes(value, "big") >> self._low_bits == self._prefix >> self._low_bits

    def release(self, value: bytes) -> None:
        self._live.discard(value)

    def in_use(self, value: bytes) -> bool:
        return value in self._live

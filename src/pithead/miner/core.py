"""The hashing core: scan a nonce range of an 80-byte block header for hashes at or below a target.

What it is: one small API over three interchangeable paths that must agree bit for bit:

- ``shani``: the native extension's x86 SHA-NI kernel (four nonces interleaved), when the CPU has it;
- ``portable``: the native extension's generic C kernel (vectorised by the compiler; any CPU);
- ``python``: the hashlib reference, with the midstate of the first 64 header bytes computed once.

A hit is a nonce whose ``sha256d(header76 || nonce_le32)``, read as a little-endian 256-bit integer, is
``<= target`` (Bitcoin's proof-of-work rule, Bitcoin Core ``CheckProofOfWork``). The active path is the
fastest available, or the one named by the ``PITHEAD_HASH_PATH`` environment variable
(``shani|portable|python``), or the one chosen with :func:`set_path`. If the extension was not built
(no compiler on the machine), pithead says so once on stderr and runs on the reference path.

What it is not: a mining loop. Threads, work rolling and Stratum live in :mod:`pithead.miner.engine`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Final

PATH_SHANI: Final = "shani"
PATH_PORTABLE: Final = "portable"
PATH_PYTHON: Final = "python"
ALL_PATHS: Final = (PATH_SHANI, PATH_PORTABLE, PATH_PYTHON)

#: Environment variable that forces a path (tests, benchmarks, debugging a CPU).
ENV_PATH: Final = "PITHEAD_HASH_PATH"

#: A nonce is a u32 (header bytes 76..79).
NONCE_SPACE: Final = 1 << 32
#: The largest target: every hash is a hit.
MAX_TARGET: Final = (1 << 256) - 1
HEADER76_LEN: Final = 76


class HashCoreError(ValueError):
    """Bad input to the hashing core (wrong header length, nonce range or target)."""


class HashPathUnavailable(RuntimeError):
    """The requested hashing path does not exist on this machine or build."""


def _load_native() -> Any:
    try:
        return importlib.import_module("pithead.miner._sha256d")
    except ImportError:
        return None


_native: Any = _load_native()
_warned = False
_warn_lock = threading.Lock()


def _warn_no_native_once() -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    print(
        "pithead: the native hashing core (pithead.miner._sha256d) is not built on this machine "
        "(no C compiler at install time?); hashing on the pure-Python path, about 50x slower",
        file=sys.stderr,
    )


def native_available() -> bool:
    """True when the C extension is importable."""
    return _native is not None


def available_paths() -> list[str]:
    """The paths usable here, fastest first."""
    paths: list[str] = []
    if _native is not None:
        if _native.has_shani():
            paths.append(PATH_SHANI)
        paths.append(PATH_PORTABLE)
    paths.append(PATH_PYTHON)
    return paths


def check_path(name: str) -> str:
    """Validate a path name for this machine (HashPathUnavailable if unknown or not available)."""
    if name not in ALL_PATHS:
        raise HashPathUnavailable(f"unknown hashing path {name!r}; expected one of {', '.join(ALL_PATHS)}")
    if name not in available_paths():
        why = "the native core is not built" if _native is None else "this CPU has no SHA-NI"
        raise HashPathUnavailable(f"hashing path {name!r} is not available here ({why})")
    return name


def _default_path() -> str:
    forced = os.environ.get(ENV_PATH, "").strip().lower()
    if forced:
        return check_path(forced)
    if _native is None:
        _warn_no_native_once()
    return available_paths()[0]


_active: str | None = None


def active_path() -> str:
    """The path :func:`scan` uses now."""
    global _active
    if _active is None:
        _active = _default_path()
    return _active


def set_path(name: str | None) -> str:
    """Choose the path for :func:`scan` (``None``: back to the default); returns the path now active."""
    global _active
    _active = None if name is None else check_path(name)
    return active_path()


def _target_bytes(target: int) -> bytes:
    if not 0 <= target <= MAX_TARGET:
        raise HashCoreError("target must be an integer in [0, 2**256)")
    return target.to_bytes(32, "little")


def _check_range(nonce_start: int, count: int) -> None:
    if not (0 <= nonce_start < NONCE_SPACE and 0 <= count and nonce_start + count <= NONCE_SPACE):
        raise HashCoreError(f"nonce range [{nonce_start}, {nonce_start}+{count}) is not within [0, 2**32)")


@dataclass(frozen=True, slots=True)
class PreparedHeader:
    """A header prefix and target with the per-job hashing state computed once.

    Scan it many times (each thread its own nonce ranges); it is immutable and safe to share.
    """

    header76: bytes
    target: int
    path: str
    _native_job: bytes | None
    _py_mid: Any  # hashlib sha256 object after the first 64 header bytes (copied per nonce)

    def scan(self, nonce_start: int, count: int) -> list[int]:
        """Every nonce in ``[nonce_start, nonce_start + count)`` whose hash is at or below the target."""
        _check_range(nonce_start, count)
        if count == 0:
            return []
        if self._native_job is not None:
            code = _native.PATH_SHANI if self.path == PATH_SHANI else _native.PATH_PORTABLE
            hits: list[int] = _native.scan(self._native_job, nonce_start, count, code)
            return hits
        return _scan_python(self._py_mid, self.header76[64:], nonce_start, count, self.target)


def prepare(header76: bytes, target: int, path: str | None = None) -> PreparedHeader:
    """Compute the midstate of ``header76[:64]`` once for the given (or active) path."""
    if not isinstance(header76, bytes | bytearray | memoryview) or len(header76) != HEADER76_LEN:
        raise HashCoreError(f"header76 must be exactly {HEADER76_LEN} bytes (the header without its nonce)")
    header76 = bytes(header76)
    tbytes = _target_bytes(target)
    chosen = active_path() if path is None else check_path(path)
    if chosen == PATH_PYTHON:
        mid = hashlib.sha256(header76[:64])
        return PreparedHeader(header76, target, chosen, None, mid)
    return PreparedHeader(header76, target, chosen, _native.prepare(header76, tbytes), None)


def scan(header76: bytes, nonce_start: int, count: int, target: int) -> list[int]:
    """Hit nonces of ``header76`` in ``[nonce_start, nonce_start + count)`` on the active path."""
    return prepare(header76, target).scan(nonce_start, count)


def scan_with(path: str, header76: bytes, nonce_start: int, count: int, target: int) -> list[int]:
    """Like :func:`scan`, on an explicitly chosen path."""
    return prepare(header76, target, path).scan(nonce_start, count)


def _scan_python(mid: Any, tail12: bytes, nonce_start: int, count: int, target: int) -> list[int]:
    """The reference: hashlib sha256d with the first block's state copied instead of recomputed."""
    sha256 = hashlib.sha256
    hits = []
    for nonce in range(nonce_start, nonce_start + count):
        h = mid.copy()
        h.update(tail12 + nonce.to_bytes(4, "little"))
        digest = sha256(h.digest()).digest()
        if int.from_bytes(digest, "little") <= target:
            hits.append(nonce)
    return hits


def sha256d(data: bytes) -> bytes:
    """sha256d (raw digest order) with hashlib: the reference the native paths are compared against."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def header_hash_int(header80: bytes) -> int:
    """sha256d of an 80-byte header as the little-endian integer compared with targets."""
    if len(header80) != HEADER76_LEN + 4:
        raise HashCoreError("a block header is exactly 80 bytes")
    return int.from_bytes(sha256d(header80), "little")

"""The hashing core: every path (SHA-NI, portable C, hashlib reference) finds exactly the same hits."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pithead.chain.compact import bits_to_target
from pithead.miner import core

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NATIVE = [p for p in core.available_paths() if p != core.PATH_PYTHON]


def _blocks() -> list[dict]:
    return json.loads((VECTORS / "blocks.json").read_text())["vectors"]


def _reference(header76: bytes, start: int, count: int, target: int) -> list[int]:
    """Independent of core: plain hashlib over whole 80-byte headers."""
    import hashlib

    out = []
    for n in range(start, start + count):
        h = hashlib.sha256(hashlib.sha256(header76 + n.to_bytes(4, "little")).digest()).digest()
        if int.from_bytes(h, "little") <= target:
            out.append(n)
    return out


def test_native_core_is_built_here() -> None:
    # The package build compiles it on this machine class (gcc + headers present).
    assert core.native_available()
    assert core.PATH_PORTABLE in core.available_paths()


@pytest.mark.parametrize("seed", range(6))
def test_all_paths_agree_on_random_headers(seed: int) -> None:
    rng = random.Random(seed)
    header = rng.randbytes(76)
    # About one hit in 32 nonces; an odd count and an odd start exercise the lane tails of both kernels.
    target = (1 << 251) + rng.getrandbits(200)
    start = rng.randrange(0, 2**32 - 5000)
    count = 2000 + rng.randrange(0, 8) * 2 + 1
    expected = _reference(header, start, count, target)
    assert expected, "the test target must produce hits"
    for path in core.available_paths():
        assert core.scan_with(path, header, start, count, target) == expected, path


def test_native_paths_agree_across_kernel_chunk_boundaries() -> None:
    # The C side scans in chunks of 4096 nonces with 4 (SHA-NI) or 8 (portable) lanes: cross several.
    rng = random.Random(99)
    header = rng.randbytes(76)
    target = 1 << 250
    start, count = 4096 * 3 - 5, 4096 * 2 + 11
    expected = _reference(header, start, count, target)
    for path in NATIVE:
        assert core.scan_with(path, header, start, count, target) == expected, path


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: str(b["height"]))
def test_real_block_headers_hit_exactly_their_nonce(block: dict) -> None:
    header = bytes.fromhex(block["header_hex"])
    header76, nonce = header[:76], block["nonce"]
    target = bits_to_target(int(block["bits"], 16))
    for path in core.available_paths():
        span = 300 if path == core.PATH_PYTHON else 50_000
        start = max(0, nonce - span)
        count = min(2**32, nonce + span + 1) - start
        assert core.scan_with(path, header76, start, count, target) == [nonce], path
        # Ranges that end right at the hit, start right at it, and stop just before it.
        assert core.scan_with(path, header76, nonce - 7 if nonce >= 7 else 0, min(8, nonce + 1), target) == [nonce]
        assert core.scan_with(path, header76, nonce, 1, target) == [nonce]
        assert core.scan_with(path, header76, max(0, nonce - 9), min(9, nonce), target) == []


def test_target_equal_to_the_hash_is_a_hit_and_one_below_is_not() -> None:
    header = bytes.fromhex(_blocks()[0]["header_hex"])
    h = core.header_hash_int(header)
    for path in core.available_paths():
        assert core.scan_with(path, header[:76], _blocks()[0]["nonce"], 1, h) == [_blocks()[0]["nonce"]]
        assert core.scan_with(path, header[:76], _blocks()[0]["nonce"], 1, h - 1) == []


def test_top_word_ties_are_confirmed_exactly() -> None:
    # A target whose top 32 bits equal the hash's top 32 bits makes the fast check pass; the exact
    # compare must then decide on the lower bits.
    header = bytes.fromhex(_blocks()[2]["header_hex"])
    nonce = _blocks()[2]["nonce"]
    h = core.header_hash_int(header)
    below = (h >> 224 << 224) | ((h & ((1 << 224) - 1)) - 1)
    for path in core.available_paths():
        assert core.scan_with(path, header[:76], nonce, 1, below) == []
        assert core.scan_with(path, header[:76], nonce, 1, below + 1) == [nonce]


def test_every_nonce_hits_at_the_maximum_target_up_to_the_end_of_the_nonce_space() -> None:
    header = os.urandom(76)
    for path in core.available_paths():
        assert core.scan_with(path, header, 2**32 - 13, 13, core.MAX_TARGET) == list(range(2**32 - 13, 2**32))


def test_midstate_matches_the_esp_miner_vector() -> None:
    from pithead.miner import _sha256d

    vec = next(
        v for v in json.loads((VECTORS / "stratum_shares.json").read_text())["vectors"] if "midstate" in v["name"]
    )
    first64 = bytes.fromhex(vec["derived"]["header_first_64_bytes_hex"])
    mid = _sha256d.midstate(first64)
    assert mid.hex() == vec["derived"]["midstate_state_words_big_endian_hex"]
    # ESP-Miner's recorded form: each state word serialized little-endian.
    words_le = b"".join(mid[i : i + 4][::-1] for i in range(0, 32, 4))
    assert words_le.hex() == vec["given"]["expected_midstate_hex"].lower()


def test_native_sha256d80_matches_hashlib() -> None:
    from pithead.miner import _sha256d

    for block in _blocks():
        header = bytes.fromhex(block["header_hex"])
        assert _sha256d.sha256d80(header) == core.sha256d(header)


@pytest.mark.parametrize(
    ("start", "count"), [(-1, 1), (2**32, 0), (2**32 - 1, 2), (0, 2**32 + 1), (0, -1)]
)
def test_nonce_ranges_outside_the_u32_space_are_refused(start: int, count: int) -> None:
    for path in core.available_paths():
        with pytest.raises(core.HashCoreError):
            core.scan_with(path, bytes(76), start, count, 1)


def test_bad_headers_and_targets_are_refused() -> None:
    with pytest.raises(core.HashCoreError):
        core.scan(bytes(80), 0, 1, 1)
    with pytest.raises(core.HashCoreError):
        core.scan(bytes(76), 0, 1, 1 << 256)
    with pytest.raises(core.HashCoreError):
        core.scan(bytes(76), 0, 1, -1)
    with pytest.raises(core.HashPathUnavailable):
        core.scan_with("gpu", bytes(76), 0, 1, 1)


def test_set_path_switches_and_restores() -> None:
    before = core.active_path()
    try:
        assert core.set_path(core.PATH_PYTHON) == core.PATH_PYTHON
        assert core.active_path() == core.PATH_PYTHON
        assert core.prepare(bytes(76), 1).path == core.PATH_PYTHON
    finally:
        core.set_path(None)
    assert core.active_path() == before


@pytest.mark.parametrize("path", NATIVE)
def test_native_scan_releases_the_gil(path: str) -> None:
    prepared = core.prepare(os.urandom(76), 1, path)
    done = threading.Event()
    ticks = 0

    def scanner() -> None:
        prepared.scan(0, 1 << 20)
        done.set()

    t = threading.Thread(target=scanner)
    t.start()
    while not done.is_set():
        ticks += 1  # only runs while the scanner thread does not hold the GIL
    t.join()
    # With the GIL held for the whole call this loop could run only at the very start and end.
    assert ticks > 10_000


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_without_the_extension_pithead_uses_the_pure_path_and_says_so_once() -> None:
    code = (
        "import sys; sys.modules['pithead.miner._sha256d'] = None\n"  # as if the build had no compiler
        "from pithead.miner import core\n"
        "assert core.available_paths() == ['python'], core.available_paths()\n"
        "for _ in range(3): core.scan(bytes(76), 0, 50, core.MAX_TARGET)\n"
        "print(core.active_path())\n"
    )
    result = _run(code, PITHEAD_HASH_PATH="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    assert result.stderr.count("native hashing core") == 1


def test_environment_variable_forces_a_path() -> None:
    result = _run("from pithead.miner import core; print(core.active_path())", PITHEAD_HASH_PATH="portable")
    assert result.stdout.strip() == "portable", result.stderr
    bad = _run("from pithead.miner import core; core.active_path()", PITHEAD_HASH_PATH="quantum")
    assert bad.returncode != 0 and "HashPathUnavailable" in bad.stderr

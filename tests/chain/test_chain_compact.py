"""nBits ↔ target ↔ difficulty on tests/vectors/targets_difficulty.json: Core's SetCompact/GetCompact with
its negative and overflow flags, Core's GetDifficulty, the rust-bitcoin/bitcoinjs/bitcoinj tables, the
max targets, the hash == target boundary, real block bits, and fractional pool difficulties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from chain_vectors import load_vector
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.compact import (
    DIFF1_TARGET,
    MAX_TARGET_256,
    bits_to_difficulty,
    bits_to_target,
    difficulty_to_target,
    get_compact,
    hash_difficulty,
    set_compact,
    target_to_bits,
    target_to_difficulty,
    work_from_target,
)
from pithead.chain.errors import CompactError
from pithead.chain.hashes import from_display_hex
from pithead.chain.header import hash_meets_target
from pithead.chain.params import MAINNET, NETWORKS, REGTEST

T: dict[str, Any] = load_vector("targets_difficulty.json")


def h256(s: str) -> int:
    assert len(s) == 64
    return int(s, 16)


def b32(s: str) -> int:
    return int(s, 16)


def _consensus_target(bits: int) -> int | None:
    """What consensus accepts for these nBits (None: refused) — via bits_to_target's typed error."""
    try:
        return bits_to_target(bits)
    except CompactError:
        return None


# --- Core arith_uint256 SetCompact / GetCompact --------------------------------------------------------


@pytest.mark.parametrize("v", T["core_setcompact"]["vectors"], ids=lambda v: v.get("bits", v["get_compact"]))
def test_core_set_and_get_compact(v: dict[str, Any]) -> None:
    target = h256(v["target_hex"])
    if "bits" in v:
        value, negative, overflow = set_compact(b32(v["bits"]))
        assert (value, negative, overflow) == (target, v["negative"], v["overflow"])
        consensus = _consensus_target(b32(v["bits"]))
        if v["negative"] or v["overflow"] or target == 0:
            assert consensus is None
        else:
            assert consensus == target
    neg = v.get("get_compact_called_with_negative_flag", False)
    assert get_compact(target, neg) == b32(v["get_compact"])


def test_get_compact_never_sets_the_sign_bit_for_a_positive_value() -> None:
    assert get_compact(0x80) == 0x02008000
    assert target_to_bits(0x80) == 0x02008000
    for shift in range(0, 256, 7):
        value = 0x80 << shift if (0x80 << shift) <= MAX_TARGET_256 else 0
        if value:
            assert not get_compact(value) & 0x00800000


# --- Core GetDifficulty -----------------------------------------------------------------------------


@pytest.mark.parametrize("v", T["core_getdifficulty"]["vectors"], ids=lambda v: v["bits"])
def test_core_get_difficulty(v: dict[str, Any]) -> None:
    got = bits_to_difficulty(b32(v["bits"]))
    # Core's DoubleEquals: |a - b| <= epsilon. For huge values that means exactly the same double.
    assert abs(got - v["difficulty"]) <= v["tolerance"]
    # Core reads the sign bit as part of the mantissa here; from the (masked) target it is the collector's
    # value instead — both are pinned so neither path drifts.
    value, negative, _ = set_compact(b32(v["bits"]))
    if not negative:
        assert target_to_difficulty(value) == pytest.approx(v["difficulty_recomputed_by_collector"], rel=1e-12)
    assert f"{value:064x}" == v["target_hex_derived"] or negative


@pytest.mark.parametrize("v", T["rust_bitcoin_difficulty_float"]["vectors"], ids=lambda v: v["bits"])
def test_rust_bitcoin_difficulty(v: dict[str, Any]) -> None:
    bits = b32(v["bits"])
    assert bits_to_difficulty(bits) == v["difficulty"]
    assert target_to_difficulty(bits_to_target(bits)) == v["difficulty"]
    assert f"{bits_to_target(bits):064x}" == v["target_hex_derived"]


# --- other implementations' tables ------------------------------------------------------------------


@pytest.mark.parametrize("v", T["rust_bitcoin_compact_to_target"]["vectors"], ids=lambda v: v["bits"])
def test_rust_bitcoin_compact_to_target(v: dict[str, Any]) -> None:
    bits = b32(v["bits"])
    value, negative, overflow = set_compact(bits)
    # rust-bitcoin answers 0 for anything consensus refuses; we refuse with a typed error and flags.
    if negative or overflow:
        assert h256(v["target_hex"]) == 0
        with pytest.raises(CompactError):
            bits_to_target(bits)
    else:
        assert value == h256(v["target_hex"])


def test_rust_bitcoin_overflow_flags() -> None:
    vs = T["rust_bitcoin_compact_to_target"]["vectors"]
    over = {v["bits"] for v in vs if "Overflow" in (v["note"] or "")}
    assert over
    for bits in over:
        assert set_compact(b32(bits))[2] is True
        with pytest.raises(CompactError, match="overflow"):
            bits_to_target(b32(bits))
    for v in T["rust_bitcoin_overflow_boundaries"]["vectors"]:
        value, negative, overflow = set_compact(b32(v["bits"]))
        assert overflow is v["overflow"] and not negative
        assert value == h256(v["target_hex"])
        assert bits_to_target(b32(v["bits"])) == value


@pytest.mark.parametrize("v", T["rust_bitcoin_target_to_compact"]["vectors"], ids=lambda v: v["bits"])
def test_rust_bitcoin_target_to_compact(v: dict[str, Any]) -> None:
    assert target_to_bits(h256(v["target_hex"])) == b32(v["bits"])


@pytest.mark.parametrize("v", T["bitcoinjs_targets"]["vectors"], ids=lambda v: v["bits"])
def test_bitcoinjs_targets(v: dict[str, Any]) -> None:
    bits = b32(v["bits"])
    assert b32(v["bits_as_given"]) == bits
    value, negative, overflow = set_compact(bits)
    assert value == h256(v["target_hex"]) and not overflow
    if "sign bit" in v.get("note", ""):
        # bitcoinjs masks the sign bit; Core (and we) flag it, and consensus refuses it.
        assert negative
        with pytest.raises(CompactError, match="negative"):
            bits_to_target(bits)
    else:
        assert not negative
        assert bits_to_target(bits) == value
        assert target_to_bits(value) == bits


@pytest.mark.parametrize("v", T["bitcoinj_compact"]["vectors"], ids=lambda v: v["bits"])
def test_bitcoinj_compact(v: dict[str, Any]) -> None:
    value, negative, overflow = set_compact(b32(v["bits"]))
    assert value == h256(v["target_hex"]) == int(v["target_hex_as_given"], 16)
    assert not overflow and not negative
    if value == 0:
        with pytest.raises(CompactError, match="zero"):
            bits_to_target(b32(v["bits"]))


# --- network limits, boundary, real blocks ----------------------------------------------------------


@pytest.mark.parametrize("v", T["max_attainable_targets"]["vectors"], ids=lambda v: v["network"])
def test_max_attainable_targets(v: dict[str, Any]) -> None:
    net = {"mainnet": MAINNET, "regtest": REGTEST}[v["network"]]
    target = bits_to_target(b32(v["bits"]))
    assert target == h256(v["target_hex"])
    assert target <= net.pow_limit
    assert get_compact(net.pow_limit) == b32(v["bits"])  # powLimit rounds down to these nBits
    assert set_compact(get_compact(net.pow_limit))[0] == target


def test_every_network_pow_limit_is_a_valid_target() -> None:
    for net in NETWORKS.values():
        bits = get_compact(net.pow_limit)
        assert 0 < bits_to_target(bits) <= net.pow_limit


@pytest.mark.parametrize("v", T["pow_boundary"]["vectors"], ids=lambda v: v["hash_display"][:12])
def test_hash_equal_to_target_meets_it(v: dict[str, Any]) -> None:
    h = from_display_hex(v["hash_display"])
    target = h256(v["target_hex"])
    assert hash_meets_target(h, target) is v["expected_is_met"]
    assert hash_meets_target(h, target + 1)
    assert not hash_meets_target(h, target - 1)


@pytest.mark.parametrize("v", T["real_block_bits"]["vectors"], ids=lambda v: str(v["height"]))
def test_real_block_bits(v: dict[str, Any]) -> None:
    bits = b32(v["bits"])
    target = bits_to_target(bits)
    assert f"{target:064x}" == v["target_hex_derived"]
    assert target_to_bits(target) == bits
    assert target_to_difficulty(target) == pytest.approx(v["difficulty_derived"], rel=1e-12)
    assert bits_to_difficulty(bits) == pytest.approx(v["difficulty_derived"], rel=1e-12)
    assert hash_meets_target(from_display_hex(v["block_hash"]), target) is v["hash_le_target"]
    assert hash_difficulty(int(v["block_hash"], 16)) >= target_to_difficulty(target)


# --- pool difficulty (fractional too) ---------------------------------------------------------------


def test_difficulty_one_and_fractions_are_exact() -> None:
    assert difficulty_to_target(1) == DIFF1_TARGET
    assert difficulty_to_target(0.5) == 2 * DIFF1_TARGET
    assert difficulty_to_target(0.25) == 4 * DIFF1_TARGET
    assert difficulty_to_target(2) == DIFF1_TARGET // 2
    assert target_to_difficulty(DIFF1_TARGET) == 1.0
    assert target_to_difficulty(2 * DIFF1_TARGET) == 0.5
    assert difficulty_to_target(1e-30) == MAX_TARGET_256  # capped at the largest 256-bit value
    assert target_to_bits(DIFF1_TARGET) == 0x1D00FFFF


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), float("inf"), float("-inf"), 1e80])
def test_bad_difficulties_are_refused(bad: float) -> None:
    with pytest.raises(CompactError):
        difficulty_to_target(bad)


@pytest.mark.parametrize("bad", [0, -5])
def test_bad_targets_are_refused(bad: int) -> None:
    with pytest.raises(CompactError):
        target_to_difficulty(bad)


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_bits_out_of_range_are_refused(bad: int) -> None:
    for f in (set_compact, bits_to_target, bits_to_difficulty):
        with pytest.raises(CompactError):
            f(bad)
    with pytest.raises(CompactError):
        get_compact(-1)
    with pytest.raises(CompactError):
        get_compact(1 << 256)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_fractional_difficulty_round_trip(d: float) -> None:
    target = difficulty_to_target(d)
    assert 0 < target <= MAX_TARGET_256
    assert math.isclose(target_to_difficulty(target), d, rel_tol=1e-12)
    # A harder difficulty never gives an easier target.
    assert difficulty_to_target(d * 2) <= target


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_get_compact_of_set_compact(bits: int) -> None:
    value, negative, overflow = set_compact(bits)
    if overflow:
        return
    again = get_compact(value, negative)
    # Decoding the re-encoded nBits gives the same value and sign (the encoding is canonical).
    assert set_compact(again)[:2] == (value, negative and value != 0)
    assert get_compact(set_compact(again)[0], negative) == again


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=MAX_TARGET_256))
def test_target_bits_target_within_compact_precision(target: int) -> None:
    bits = target_to_bits(target)
    back = bits_to_target(bits) if set_compact(bits)[0] else 0
    assert back <= target  # truncation only rounds down
    # Only the mantissa's 2–3 bytes survive: the error is below one unit of its last byte.
    unit = 1 << (8 * max((bits >> 24) - 3, 0))
    assert target - back < unit
    if back:
        assert target_to_bits(back) == bits
    assert work_from_target(target) == (1 << 256) // (target + 1)

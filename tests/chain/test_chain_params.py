"""Network parameters as values: names and aliases, genesis hashes against the real genesis header,
proof-of-work limits as valid nBits, and the subsidy schedule against real early coinbases."""

from __future__ import annotations

import pytest
from chain_vectors import load_vector

from pithead.chain.compact import bits_to_target, get_compact
from pithead.chain.errors import ChainError
from pithead.chain.header import BlockHeader
from pithead.chain.params import MAINNET, NETWORKS, REGTEST, TESTNET, network_by_name
from pithead.chain.tx import Transaction

BLOCKS = {v["height"]: v for v in load_vector("blocks.json")["vectors"]}


def test_names_and_aliases() -> None:
    assert set(NETWORKS) == {"main", "test", "testnet4", "signet", "regtest"}
    for name, net in NETWORKS.items():
        assert network_by_name(name) is net and network_by_name(name.upper()) is net
    assert network_by_name("mainnet") is MAINNET and network_by_name("testnet3") is TESTNET
    with pytest.raises(ChainError, match="unknown network"):
        network_by_name("litecoin")


def test_mainnet_genesis_hash_is_the_real_one() -> None:
    genesis = BlockHeader.from_hex(BLOCKS[0]["header_hex"])
    assert genesis.hash_hex() == MAINNET.genesis_hash
    assert genesis.target() <= MAINNET.pow_limit


def test_pow_limits_round_to_the_usual_nbits() -> None:
    assert get_compact(MAINNET.pow_limit) == 0x1D00FFFF
    assert get_compact(REGTEST.pow_limit) == 0x207FFFFF
    for net in NETWORKS.values():
        assert bits_to_target(get_compact(net.pow_limit)) <= net.pow_limit


@pytest.mark.parametrize("height", [0, 170, 255])
def test_subsidy_matches_early_coinbases(height: int) -> None:
    # Early blocks had no fees to speak of: the coinbase pays exactly the subsidy.
    cb = Transaction.from_hex(BLOCKS[height]["coinbase_tx_hex"])
    assert sum(o.value for o in cb.outputs) == MAINNET.subsidy(height) == 50 * 10**8


def test_subsidy_schedule() -> None:
    assert MAINNET.subsidy(209_999) == 50 * 10**8
    assert MAINNET.subsidy(210_000) == 25 * 10**8
    assert MAINNET.subsidy(840_000) == 3_125_000_00
    assert MAINNET.subsidy(64 * 210_000) == 0
    assert REGTEST.subsidy(149) == 50 * 10**8 and REGTEST.subsidy(150) == 25 * 10**8
    with pytest.raises(ChainError):
        MAINNET.subsidy(-1)

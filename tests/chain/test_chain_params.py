"""Network parameters as values: names and aliases, genesis hashes against the real genesis header,
proof-of-work limits as valid nBits, and the subsidy schedule against real early coinbases."""

from __future__ import annotations

import pytest
from chain_vectors import load_vector

from pithead.chain.block import Block
from pithead.chain.compact import bits_to_target, get_compact
from pithead.chain.errors import ChainError
from pithead.chain.hashes import display_hex
from pithead.chain.header import BlockHeader
from pithead.chain.params import MAINNET, NETWORKS, REGTEST, TESTNET, TESTNET4, network_by_name
from pithead.chain.script import push_data
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut

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


def test_testnet4_genesis_hash_is_cores() -> None:
    """testnet4's genesis rebuilt from the fields Bitcoin Core's CTestNet4Params gives
    (src/kernel/chainparams.cpp, BIP94): its message and all-zero 33-byte key, time 1714777860, nonce
    393743547, nBits 0x1d00ffff, version 1. Its hash must be TESTNET4.genesis_hash (Core's assert)."""
    g = TESTNET4_GENESIS
    script_sig = push_data((486604799).to_bytes(4, "little")) + push_data(b"\x04") + push_data(g["message"])
    coinbase = Transaction(1, (TxIn(OutPoint(bytes(32), 0xFFFFFFFF), script_sig),),
                           (TxOut(50 * 10**8, push_data(bytes(33)) + b"\xac"),))
    assert display_hex(coinbase.txid()) == g["merkle_root"]  # Core asserts hashMerkleRoot too
    header = BlockHeader(1, bytes(32), coinbase.txid(), g["time"], g["bits"], g["nonce"])
    assert display_hex(Block(header, (coinbase,)).hash()) == TESTNET4.genesis_hash
    assert TESTNET4.default_rpc_port == 48332 and TESTNET4.default_p2p_port == 48333
    assert (TESTNET4.bip34_height, TESTNET4.segwit_height, TESTNET4.pow_limit) == (1, 1, MAINNET.pow_limit)


# Copied from Bitcoin Core's src/kernel/chainparams.cpp (CTestNet4Params), v28: the genesis block's fields
# and the merkle root Core asserts.
TESTNET4_GENESIS = {
    "message": b"03/May/2024 000000000000000000001ebd58c244970b3aa9d783bb001011fbe8ea8e98e00e",
    "time": 1714777860,
    "nonce": 393743547,
    "bits": 0x1D00FFFF,
    "merkle_root": "7aa0a7ae1e223414cb807e40cd57e667b718e42aaf9306db9102fe28912b7b4e",
}

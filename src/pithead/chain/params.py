"""Network parameters as values. Pass a `Network` where it matters; there is no "current network" global.

Constants cite their Bitcoin Core counterpart (src/kernel/chainparams.cpp, CChainParams).
"""

from __future__ import annotations

from dataclasses import dataclass

from pithead.chain.errors import ChainError


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    bech32_hrp: str  # bech32_hrp
    p2pkh_prefix: int  # base58Prefixes[PUBKEY_ADDRESS]
    p2sh_prefix: int  # base58Prefixes[SCRIPT_ADDRESS]
    genesis_hash: str  # display hex of the genesis block hash
    pow_limit: int  # consensus.powLimit
    pow_no_retargeting: bool  # consensus.fPowNoRetargeting (regtest)
    subsidy_halving_interval: int  # consensus.nSubsidyHalvingInterval
    default_rpc_port: int
    default_p2p_port: int
    bip34_height: int  # consensus.BIP34Height (regtest: 1)
    segwit_height: int
    coinbase_maturity: int = 100  # COINBASE_MATURITY, consensus/consensus.h
    allow_min_difficulty_blocks: bool = False

    def subsidy(self, height: int) -> int:
        """Block subsidy in satoshis at this height (GetBlockSubsidy, validation.cpp)."""
        if height < 0:
            raise ChainError(f"negative block height {height}")
        halvings = height // self.subsidy_halving_interval
        if halvings >= 64:
            return 0
        return (50 * 100_000_000) >> halvings


MAINNET = Network(
    name="main",
    bech32_hrp="bc",
    p2pkh_prefix=0x00,
    p2sh_prefix=0x05,
    genesis_hash="000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    pow_limit=0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    pow_no_retargeting=False,
    subsidy_halving_interval=210_000,
    default_rpc_port=8332,
    default_p2p_port=8333,
    bip34_height=227_931,
    segwit_height=481_824,
)

TESTNET = Network(
    name="test",
    bech32_hrp="tb",
    p2pkh_prefix=0x6F,
    p2sh_prefix=0xC4,
    genesis_hash="000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    pow_limit=0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    pow_no_retargeting=False,
    subsidy_halving_interval=210_000,
    default_rpc_port=18332,
    default_p2p_port=18333,
    bip34_height=21_111,
    segwit_height=834_624,
    allow_min_difficulty_blocks=True,
)

# testnet4 (BIP94): Bitcoin Core's CTestNet4Params (src/kernel/chainparams.cpp, v28): genesis
# CreateGenesisBlock("03/May/2024 0000...e98e00e", 33 zero bytes OP_CHECKSIG, 1714777860, 393743547,
# 0x1d00ffff, 1, 50 COIN), which tests/chain/test_chain_params.py rebuilds; BIP34/65/66, CSV and segwit from
# height 1; mainnet's powLimit; fPowAllowMinDifficultyBlocks with BIP94's timewarp fix (enforce_BIP94).
TESTNET4 = Network(
    name="testnet4",
    bech32_hrp="tb",
    p2pkh_prefix=0x6F,
    p2sh_prefix=0xC4,
    genesis_hash="00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    pow_limit=0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    pow_no_retargeting=False,
    subsidy_halving_interval=210_000,
    default_rpc_port=48332,
    default_p2p_port=48333,
    bip34_height=1,
    segwit_height=1,
    allow_min_difficulty_blocks=True,
)

# signet (BIP325): CSigNetParams. Every signet, the default one and a custom `-signetchallenge`, shares this
# genesis (1598918400, 52613770, 0x1e0377ae) and powLimit; only the challenge (and so the message start)
# differs. pithead's embedded node runs a custom signet with the OP_TRUE challenge (pithead.node.signet).
SIGNET = Network(
    name="signet",
    bech32_hrp="tb",
    p2pkh_prefix=0x6F,
    p2sh_prefix=0xC4,
    genesis_hash="00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    pow_limit=0x00000377AE000000000000000000000000000000000000000000000000000000,
    pow_no_retargeting=False,
    subsidy_halving_interval=210_000,
    default_rpc_port=38332,
    default_p2p_port=38333,
    bip34_height=1,
    segwit_height=1,
)

REGTEST = Network(
    name="regtest",
    bech32_hrp="bcrt",
    p2pkh_prefix=0x6F,
    p2sh_prefix=0xC4,
    genesis_hash="0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    pow_limit=0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    pow_no_retargeting=True,
    subsidy_halving_interval=150,
    default_rpc_port=18443,
    default_p2p_port=18444,
    bip34_height=1,  # regtest activates BIP34 from block 1 (Core: consensus.BIP34Height = 1)
    segwit_height=0,
    allow_min_difficulty_blocks=True,
)

NETWORKS: dict[str, Network] = {
    n.name: n for n in (MAINNET, TESTNET, TESTNET4, SIGNET, REGTEST)
}
_ALIASES = {"mainnet": "main", "bitcoin": "main", "testnet": "test", "testnet3": "test"}


def network_by_name(name: str) -> Network:
    """Look up by Core's chain name (main, test, testnet4, signet, regtest) or a common alias."""
    key = _ALIASES.get(name.lower(), name.lower())
    try:
        return NETWORKS[key]
    except KeyError:
        raise ChainError(f"unknown network {name!r}; expected one of {', '.join(NETWORKS)}") from None

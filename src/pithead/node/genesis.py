"""Bitcoin Core's regtest and signet genesis blocks, rebuilt from their published fields (chainparams.cpp,
CreateGenesisBlock): the 2009 "The Times" coinbase paying 50 BTC to Satoshi's key, version 1, and per chain
its time, nBits and nonce (regtest: 1296688602, 0x207fffff, 2; signet, every signet whatever its challenge:
1598918400, 0x1e0377ae, 52613770, from CSigNetParams). Their hashes are the chains' genesis hashes, which a
test checks against `pithead.chain.params.REGTEST.genesis_hash` and `SIGNET.genesis_hash`. The genesis
coinbase is never spendable (Core never adds it to the UTXO set), and this node does the same.
"""

from __future__ import annotations

from pithead.chain.block import Block
from pithead.chain.header import BlockHeader
from pithead.chain.script import push_data
from pithead.chain.tx import OutPoint, Transaction, TxIn, TxOut

GENESIS_TIMESTAMP_TEXT = b"The Times 03/Jan/2009 Chancellor on brink of second bailout for banks"
GENESIS_PUBKEY = bytes.fromhex(
    "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c"
    "384df7ba0b8d578a4c702b6bf11d5f"
)
REGTEST_GENESIS_TIME = 1296688602
REGTEST_GENESIS_BITS = 0x207FFFFF
REGTEST_GENESIS_NONCE = 2
SIGNET_GENESIS_TIME = 1598918400  # CSigNetParams: CreateGenesisBlock(1598918400, 52613770, 0x1e0377ae, 1, 50 * COIN)
SIGNET_GENESIS_BITS = 0x1E0377AE
SIGNET_GENESIS_NONCE = 52613770


def regtest_genesis() -> Block:
    return _genesis(REGTEST_GENESIS_TIME, REGTEST_GENESIS_BITS, REGTEST_GENESIS_NONCE)


def signet_genesis() -> Block:
    return _genesis(SIGNET_GENESIS_TIME, SIGNET_GENESIS_BITS, SIGNET_GENESIS_NONCE)


def genesis_for(kind: str) -> Block:
    """The genesis block of one of the embedded node's chains (regtest and demo share regtest's)."""
    return signet_genesis() if kind == "signet" else regtest_genesis()


def _genesis(time: int, bits: int, nonce: int) -> Block:
    script_sig = (
        push_data((486604799).to_bytes(4, "little")) + push_data(b"\x04") + push_data(GENESIS_TIMESTAMP_TEXT)
    )
    coinbase = Transaction(
        version=1,
        inputs=(TxIn(OutPoint(bytes(32), 0xFFFFFFFF), script_sig),),
        outputs=(TxOut(50 * 100_000_000, push_data(GENESIS_PUBKEY) + b"\xac"),),
    )
    header = BlockHeader(1, bytes(32), coinbase.txid(), time, bits, nonce)
    return Block(header, (coinbase,))

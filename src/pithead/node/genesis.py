"""Bitcoin Core's regtest genesis block, rebuilt from its published fields (chainparams.cpp,
CreateGenesisBlock): the 2009 "The Times" coinbase paying 50 BTC to Satoshi's key, time 1296688602,
nBits 0x207fffff, nonce 2, version 1. Its hash is regtest's genesis hash, which a test checks against
`pithead.chain.params.REGTEST.genesis_hash`. The genesis coinbase is never spendable (Core never adds it
to the UTXO set), and this node does the same.
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


def regtest_genesis() -> Block:
    script_sig = (
        push_data((486604799).to_bytes(4, "little")) + push_data(b"\x04") + push_data(GENESIS_TIMESTAMP_TEXT)
    )
    coinbase = Transaction(
        version=1,
        inputs=(TxIn(OutPoint(bytes(32), 0xFFFFFFFF), script_sig),),
        outputs=(TxOut(50 * 100_000_000, push_data(GENESIS_PUBKEY) + b"\xac"),),
    )
    header = BlockHeader(
        1, bytes(32), coinbase.txid(), REGTEST_GENESIS_TIME, REGTEST_GENESIS_BITS, REGTEST_GENESIS_NONCE
    )
    return Block(header, (coinbase,))

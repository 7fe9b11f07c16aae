"""Block explorer links per network, shared by pithead's API and the Miningcore-compatible one.

Templates as Miningcore's coin templates give them: {hash}, {txid}, {address}. Mainnet: Miningcore's own
bitcoin template (coins.json, "bitcoin"); the public test chains: mempool.space. None for regtest (no
public chain) and signet (the public explorer would show another chain than a custom signet's, and a wrong
link is worse than none). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Explorer:
    """Block explorer links, as Miningcore's coin templates give them: {hash}, {txid}, {address}."""

    block: str
    tx: str
    address: str

    def block_url(self, block_hash: str) -> str:
        return self.block.replace("{hash}", block_hash)

    def tx_url(self, txid: str) -> str:
        return self.tx.replace("{txid}", txid)

    def address_url(self, address: str) -> str:
        return self.address.replace("{address}", address)


EXPLORERS: dict[str, Explorer] = {
    "main": Explorer("https://www.blockchain.com/btc/block/{hash}", "https://www.blockchain.com/btc/tx/{txid}",
                     "https://www.blockchain.com/btc/address/{address}"),
    "test": Explorer("https://mempool.space/testnet/block/{hash}", "https://mempool.space/testnet/tx/{txid}",
                     "https://mempool.space/testnet/address/{address}"),
    "testnet4": Explorer("https://mempool.space/testnet4/block/{hash}", "https://mempool.space/testnet4/tx/{txid}",
                         "https://mempool.space/testnet4/address/{address}"),
}


def explorer_for_network(network: str) -> Explorer | None:
    """The explorer of a chain by Core's name (main, test, testnet4, signet, regtest); None where none fits."""
    return EXPLORERS.get(network)

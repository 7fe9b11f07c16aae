"""The transaction generator: real transactions for templates, spending the node's own coins.

Each call builds one transaction from the wallet's spendable coins (mature coinbase outputs and unconfirmed
outputs of earlier generated transactions, so chains of dependent transactions form), paying a random fee
rate to one to three of the node's own legacy (P2SH) and segwit (P2WSH) anyone-can-spend scripts; segwit
inputs carry witness data, so templates get a witness commitment that matters. Pure apart from the `rng`
passed in: the node's asyncio shell calls it at `--tx-rate` per second.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pithead.chain.tx import Transaction, TxOut
from pithead.node.wallet import NodeWallet, WalletCoin, estimate_vsize

MIN_FEE_RATE, MAX_FEE_RATE = 1, 25  # sat/vB: enough spread for fee-ordered templates to differ
DUST = 1_000  # satoshis: outputs below this are not created (Core's dust limit is ~294-546 sat)
MAX_OUTPUTS = 3
CHAIN_PREFERENCE = 0.5  # chance to prefer an unconfirmed coin, growing chains of dependent transactions


def make_transaction(
    wallet: NodeWallet, coins: Sequence[WalletCoin], scripts: Sequence[bytes], rng: random.Random
) -> Transaction | None:
    """One transaction spending 1-2 of `coins` to 1-3 of `scripts`, or None when nothing is spendable."""
    usable = [c for c in coins if c.spendable_now and c.coin.value > 2 * DUST]
    if not usable or not scripts:
        return None
    unconfirmed = [c for c in usable if c.confirmations == 0]
    pool = unconfirmed if unconfirmed and rng.random() < CHAIN_PREFERENCE else usable
    picked = rng.sample(pool, k=min(len(pool), rng.randint(1, 2)))
    total = sum(c.coin.value for c in picked)
    n_out = rng.randint(1, MAX_OUTPUTS)
    segwit_inputs = sum(1 for c in picked if c.coin.script_pubkey[:1] == b"\x00")
    fee = rng.randint(MIN_FEE_RATE, MAX_FEE_RATE) * estimate_vsize(len(picked), n_out, segwit_inputs)
    spend = total - fee
    while n_out > 1 and spend // n_out < DUST:
        n_out -= 1
    if spend < DUST:
        return None
    values = [spend // n_out] * n_out
    values[0] += spend - sum(values)
    outputs = [TxOut(v, rng.choice(scripts)) for v in values]
    return wallet.sign([(c.outpoint, c.coin) for c in picked], outputs)

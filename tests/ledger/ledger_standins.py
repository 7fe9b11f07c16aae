"""Stand-ins for the ledger's tests that need edges a real node makes hard to reach.

`TinyChain` is a small block tree with a best chain that can be extended and reorganised at will (deep
reorgs, a node that is down, blocks it never saw), answering getblockcount/getblockhash/getblockheader in
Bitcoin Core's shapes and with the client's errors (confirmations -1 off the best chain, an `RpcError`
with RPC_INVALID_ADDRESS_OR_KEY for unknown blocks, `NodeDownError` when "down").
`CrashAfterSend` wraps the real wallet of pithead's node and "dies" right after `sendmany` returns, before
the ledger records the txid (the crash window of payouts). `StandInWallet` keeps what a wallet must for the payout property tests to mean something: a balance that
sendmany spends, transactions with comment and outputs, confirmations that grow when we "mine" (only for
those in the "mempool"), conflicts, evictions (out of the mempool, and refused when offered again, until
`readmit`), abandoning (Core's rules: only out of mempool and chain; or a wallet without it) and a late
confirmation of an abandoned transaction (another node still had it). Neither is a node or a wallet:
nothing is validated, signed or broadcast. The real thing, pithead's embedded node and its wallet, is
exercised in test_ledger_with_node.py and test_payout_recovery_with_node.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pithead.bitcoind.codes import RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER
from pithead.bitcoind.rpc import NodeDownError, RpcError
from pithead.ledger.payouts import RpcWallet, WalletRejected, WalletTx


class TinyChain:
    """A stand-in chain: `best` is the list of block hashes by height; side blocks are remembered."""

    def __init__(self, length: int) -> None:
        self.best = [f"{'main'}{h:060d}" for h in range(length + 1)]
        self.known: dict[str, int] = {b: h for h, b in enumerate(self.best)}
        self.down = False

    def extend(self, n: int, tag: str = "main") -> None:
        for _ in range(n):
            h = len(self.best)
            bh = f"{tag}{h:060d}"
            self.best.append(bh)
            self.known[bh] = h

    def reorg(self, fork_height: int, new_blocks: int, tag: str) -> None:
        """Replace everything above `fork_height` with `new_blocks` blocks of another branch."""
        del self.best[fork_height + 1 :]
        self.extend(new_blocks, tag)

    def restore(self, blocks: list[str]) -> None:
        """Make a previously seen branch the best chain again."""
        first = self.known[blocks[0]]
        del self.best[first:]
        self.best.extend(blocks)

    # ChainView
    async def getblockcount(self) -> int:
        if self.down:
            raise NodeDownError("not reachable: connection refused", "tinychain")
        return len(self.best) - 1

    async def getblockhash(self, height: int) -> str:
        if not 0 <= height < len(self.best):
            raise RpcError(RPC_INVALID_PARAMETER, "Block height out of range")
        return self.best[height]

    async def getblockheader(self, block_hash: str) -> Mapping[str, Any]:
        if block_hash not in self.known:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        h = self.known[block_hash]
        on_best = h < len(self.best) and self.best[h] == block_hash
        return {"hash": block_hash, "height": h, "confirmations": len(self.best) - h if on_best else -1}


class StandInWallet:
    def __init__(self, balance: int, can_abandon: bool = True) -> None:
        self.balance = balance
        self.txs: dict[str, dict[str, object]] = {}
        self.calls = 0
        self.can_abandon = can_abandon

    async def getbalance(self) -> int:
        return self.balance

    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str:
        self.calls += 1
        total = sum(amounts.values())
        if total > self.balance:
            raise WalletRejected("Insufficient funds")
        if any(not a.startswith("bcrt1") for a in amounts):
            raise WalletRejected("Invalid Bitcoin address")
        self.balance -= total
        txid = hashlib.sha256(f"{len(self.txs)}:{comment}".encode()).hexdigest()
        self.txs[txid] = {"outputs": dict(amounts), "comment": comment, "confirmations": 0, "replaced_by": None,
                          "mempool": True, "refused": None, "abandoned": False}
        return txid

    def _tx(self, txid: str) -> dict[str, Any]:
        if txid not in self.txs:
            raise WalletRejected("Invalid or non-wallet transaction id", RPC_INVALID_ADDRESS_OR_KEY)  # Core's -5
        return self.txs[txid]

    async def gettransaction(self, txid: str) -> WalletTx:
        tx = self._tx(txid)
        return WalletTx(txid, int(tx["confirmations"]), tx["replaced_by"])

    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        return next((t for t, tx in self.txs.items() if tx["comment"] == comment), None)

    async def in_mempool(self, txid: str) -> bool:
        tx = self._tx(txid)
        return bool(tx["mempool"]) and int(tx["confirmations"]) == 0

    async def resubmit(self, txid: str) -> str | None:
        tx = self._tx(txid)
        if int(tx["confirmations"]) != 0 or tx["abandoned"]:
            return "Transaction outputs already in utxo set" if int(tx["confirmations"]) > 0 else "conflict"
        if tx["refused"] is not None:
            return str(tx["refused"])
        tx["mempool"] = True
        return None

    async def abandon(self, txid: str) -> bool:
        tx = self._tx(txid)
        if not self.can_abandon:
            return False
        if int(tx["confirmations"]) != 0 or tx["mempool"]:
            raise WalletRejected("Transaction not eligible for abandonment", RPC_INVALID_ADDRESS_OR_KEY)
        if not tx["abandoned"]:
            tx["abandoned"] = True
            self.balance += sum(tx["outputs"].values())
        return True

    def mine(self) -> None:
        for tx in self.txs.values():
            conf = int(tx["confirmations"])
            if conf > 0 or (conf == 0 and tx["mempool"] and not tx["abandoned"]):
                tx["confirmations"] = conf + 1

    def conflict(self, txid: str) -> None:
        tx = self.txs[txid]
        tx["confirmations"] = -1
        tx["mempool"] = False
        self.balance += sum(tx["outputs"].values())  # type: ignore[attr-defined]

    def evict(self, txid: str, reason: str = "mempool full") -> None:
        """Out of the mempool, and refused with `reason` when offered again (until `readmit`)."""
        tx = self.txs[txid]
        tx["mempool"], tx["refused"] = False, reason

    def readmit(self, txid: str) -> None:
        self.txs[txid]["refused"] = None

    def confirm_elsewhere(self, txid: str) -> None:
        """Another node still had it and a miner included it, abandoned or not."""
        tx = self.txs[txid]
        if tx["abandoned"]:
            self.balance -= sum(tx["outputs"].values())  # type: ignore[attr-defined]
        tx["abandoned"], tx["confirmations"] = False, 1

    def paid(self) -> dict[str, int]:
        """What the wallet paid or still may pay: confirmed, or pending and not abandoned."""
        out: dict[str, int] = {}
        for tx in self.txs.values():
            conf = int(tx["confirmations"])  # type: ignore[call-overload]
            if conf > 0 or (conf == 0 and not tx["abandoned"]):
                for a, v in tx["outputs"].items():  # type: ignore[attr-defined]
                    out[a] = out.get(a, 0) + v
        return out

    def confirmed_paid(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for tx in self.txs.values():
            if int(tx["confirmations"]) > 0:  # type: ignore[call-overload]
                for a, v in tx["outputs"].items():  # type: ignore[attr-defined]
                    out[a] = out.get(a, 0) + v
        return out


class CrashAfterSend:
    """The real wallet, but the process 'dies' right after sendmany returns, before the txid is recorded."""

    def __init__(self, inner: RpcWallet) -> None:
        self.inner = inner

    async def getbalance(self) -> int:
        return await self.inner.getbalance()

    async def sendmany(self, amounts: Mapping[str, int], comment: str) -> str:
        await self.inner.sendmany(amounts, comment)
        raise KeyboardInterrupt("simulated crash after sendmany")

    async def gettransaction(self, txid: str) -> WalletTx:
        return await self.inner.gettransaction(txid)

    async def find_transaction(self, comment: str, amounts: Mapping[str, int]) -> str | None:
        return await self.inner.find_transaction(comment, amounts)

    async def in_mempool(self, txid: str) -> bool:
        return await self.inner.in_mempool(txid)

    async def resubmit(self, txid: str) -> str | None:
        return await self.inner.resubmit(txid)

    async def abandon(self, txid: str) -> bool:
        return await self.inner.abandon(txid)

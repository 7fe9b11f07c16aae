"""The embedded node's JSON-RPC methods in Bitcoin Core's dialect, and the request dispatcher.

Requests follow Core's httprpc/server rules: JSON-RPC 1.0 (no "jsonrpc" member) replies always carry
`result`, `error` and `id`, and errors set the HTTP status (`errors.http_status_for`); JSON-RPC 2.0
replies carry `jsonrpc`, one of `result`/`error`, status 200, and a request without `id` is a
notification (HTTP 204). Batches are arrays of requests answered with an array (status 200). Params are
positional or named; types are checked like Core's RPCHelpMan (-3 "JSON value of type … is not of expected
type …"); unknown methods are -32601 "Method not found".

Methods (Core's field names, types and units): getblocktemplate (with long-poll and proposal mode),
submitblock, getblockchaininfo, getmininginfo, getnetworkinfo, getbestblockhash, getblockcount,
getblockhash, getblockheader, getblock (verbosity 0/1/2), getrawmempool, getmempoolinfo,
getmempoolentry, getrawtransaction, sendrawtransaction, getdifficulty, validateaddress,
generatetoaddress, generateblock, uptime, stop; wallet: getnewaddress, getbalance, listunspent,
sendmany (its `comment` kept with the transaction), gettransaction, listtransactions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

from pithead import __version__
from pithead.bitcoind import codes as E
from pithead.chain.address import AddressError, address_to_script, script_to_address
from pithead.chain.block import Block
from pithead.chain.compact import bits_to_difficulty, bits_to_target
from pithead.chain.errors import ChainError
from pithead.chain.hashes import display_hex, from_display_hex
from pithead.chain.tx import Transaction, TxOut
from pithead.node.consensus import BlockInvalid
from pithead.node.mempool import MempoolReject
from pithead.node.mining import template_result
from pithead.node.rpc.errors import RPCError, http_status_for
from pithead.node.rpc.format import (
    COIN,
    block_json,
    btc,
    core_double,
    header_json,
    script_pubkey_json,
    tx_json,
)
from pithead.node.wallet import TxAmounts, WalletError, estimate_vsize

if TYPE_CHECKING:
    from pithead.node.node import EmbeddedNode

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # requests per batch: bounds the work one HTTP request can queue
DEFAULT_MAX_TRIES = 1_000_000  # Core's generatetoaddress default maxtries
MAX_GENERATE = 10_000  # blocks per generate call: bounds how long one call holds the event loop
WALLET_FEE_RATE = 10  # sat/vB the wallet pays when sendmany gets no fee_rate
DUST = 546  # satoshis: change below this goes to the fee (Core's P2PKH dust threshold)
PROTOCOL_VERSION = 70016
NODE_VERSION = 290000  # reported like Core's CLIENT_VERSION (29.0.0): clients gate features on it


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


_TYPES = {
    "num": ("number",),
    "str": ("string",),
    "bool": ("bool",),
    "obj": ("object",),
    "arr": ("array",),
    "amount": ("number", "string"),
    "numbool": ("number", "bool"),
    "any": (),
}


def _type_error(value: Any, expected: str) -> RPCError:
    return RPCError(
        E.RPC_TYPE_ERROR, f"JSON value of type {_jtype(value)} is not of expected type {expected}"
    )


def parse_hash(value: str, name: str) -> bytes:
    """Core's ParseHashV."""
    if len(value) != 64:
        raise RPCError(
            E.RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(value)}, for '{value}')"
        )
    try:
        return from_display_hex(value)
    except ChainError:
        raise RPCError(
            E.RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')"
        ) from None


def parse_amount(value: Any) -> int:
    """Core's AmountFromValue: BTC as number or string → satoshis."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _type_error(value, "number")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise RPCError(E.RPC_TYPE_ERROR, "Invalid amount") from None
    sats = d * COIN
    if sats != sats.to_integral_value():
        raise RPCError(E.RPC_TYPE_ERROR, "Invalid amount")
    if sats < 0 or sats > 21_000_000 * COIN:
        raise RPCError(E.RPC_TYPE_ERROR, "Amount out of range")
    return int(sats)


def _int32(value: Any) -> int:
    """Core's UniValue getInt<int>: a JSON number that is a whole 32-bit integer, else -1 "JSON integer
    out of range"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RPCError(E.RPC_MISC_ERROR, "JSON integer out of range")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise RPCError(E.RPC_MISC_ERROR, "JSON integer out of range")
    if not -(2**31) <= int(value) < 2**31:
        raise RPCError(E.RPC_MISC_ERROR, "JSON integer out of range")
    return int(value)


Param = tuple[str, str, bool]  # name, type key, required

# Methods that read or change the wallet: the first of them after a start resubmits the wallet's
# unconfirmed transactions (NodeRPC._resubmit_wallet_transactions).
WALLET_METHODS = frozenset(
    {"getnewaddress", "getbalance", "listunspent", "sendmany", "gettransaction", "listtransactions"}
)


class NodeRPC:
    def __init__(self, node: EmbeddedNode) -> None:
        self.node = node
        self._resubmitted = False  # the wallet's unconfirmed transactions offered to the mempool yet
        self.methods: dict[str, tuple[Callable[..., Awaitable[Any]], list[Param]]] = {
            "getblocktemplate": (self.getblocktemplate, [("template_request", "obj", False)]),
            "submitblock": (self.submitblock, [("hexdata", "str", True), ("dummy", "str", False)]),
            "getblockchaininfo": (self.getblockchaininfo, []),
            "getmininginfo": (self.getmininginfo, []),
            "getnetworkinfo": (self.getnetworkinfo, []),
            "getbestblockhash": (self.getbestblockhash, []),
            "getblockcount": (self.getblockcount, []),
            "getblockhash": (self.getblockhash, [("height", "num", True)]),
            "getblockheader": (self.getblockheader, [("blockhash", "str", True), ("verbose", "bool", False)]),
            "getblock": (self.getblock, [("blockhash", "str", True), ("verbosity", "numbool", False)]),
            "getrawmempool": (
                self.getrawmempool,
                [("verbose", "bool", False), ("mempool_sequence", "bool", False)],
            ),
            "getmempoolinfo": (self.getmempoolinfo, []),
            "getmempoolentry": (self.getmempoolentry, [("txid", "str", True)]),
            "getrawtransaction": (
                self.getrawtransaction,
                [("txid", "str", True), ("verbose", "numbool", False), ("blockhash", "str", False)],
            ),
            "sendrawtransaction": (
                self.sendrawtransaction,
                [
                    ("hexstring", "str", True),
                    ("maxfeerate", "amount", False),
                    ("maxburnamount", "amount", False),
                ],
            ),
            "getdifficulty": (self.getdifficulty, []),
            "gettxoutsetinfo": (self.gettxoutsetinfo, [("hash_type", "str", False), ("hash_or_height", "any", False),
                                                       ("use_index", "bool", False)]),
            "validateaddress": (self.validateaddress, [("address", "str", True)]),
            "generatetoaddress": (
                self.generatetoaddress,
                [("nblocks", "num", True), ("address", "str", True), ("maxtries", "num", False)],
            ),
            "generateblock": (
                self.generateblock,
                [("output", "str", True), ("transactions", "arr", True), ("submit", "bool", False)],
            ),
            "uptime": (self.uptime, []),
            "stop": (self.stop, [("wait", "num", False)]),
            "getnewaddress": (self.getnewaddress, [("label", "str", False), ("address_type", "str", False)]),
            "getbalance": (
                self.getbalance,
                [
                    ("dummy", "str", False),
                    ("minconf", "num", False),
                    ("include_watchonly", "bool", False),
                    ("avoid_reuse", "bool", False),
                ],
            ),
            "listunspent": (
                self.listunspent,
                [
                    ("minconf", "num", False),
                    ("maxconf", "num", False),
                    ("addresses", "arr", False),
                    ("include_unsafe", "bool", False),
                    ("query_options", "obj", False),
                ],
            ),
            "sendmany": (
                self.sendmany,
                [
                    ("dummy", "str", False),
                    ("amounts", "obj", True),
                    ("minconf", "num", False),
                    ("comment", "str", False),
                    ("subtractfeefrom", "arr", False),
                    ("replaceable", "bool", False),
                    ("conf_target", "num", False),
                    ("estimate_mode", "str", False),
                    ("fee_rate", "amount", False),
                    ("verbose", "bool", False),
                ],
            ),
            "gettransaction": (
                self.gettransaction,
                [("txid", "str", True), ("include_watchonly", "bool", False), ("verbose", "bool", False)],
            ),
            "listtransactions": (
                self.listtransactions,
                [
                    ("label", "str", False),
                    ("count", "num", False),
                    ("skip", "num", False),
                    ("include_watchonly", "bool", False),
                ],
            ),
        }

    # --- dispatch ---

    async def handle(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            err = RPCError(E.RPC_PARSE_ERROR, "Parse error")
            return E.HTTP_INTERNAL_SERVER_ERROR, orjson.dumps(
                {"result": None, "error": err.to_json(), "id": None}
            )
        if isinstance(request, list):
            if len(request) > MAX_BATCH:
                err = RPCError(E.RPC_INVALID_REQUEST, f"batch of more than {MAX_BATCH} requests")
                return E.HTTP_BAD_REQUEST, orjson.dumps({"result": None, "error": err.to_json(), "id": None})
            replies = []
            for item in request:
                _, reply = await self._one(item)
                if reply is not None:
                    replies.append(reply)
            return E.HTTP_OK, orjson.dumps(replies)
        status, reply = await self._one(request)
        if reply is None:
            return E.HTTP_NO_CONTENT, b""
        return status, orjson.dumps(reply)

    async def _one(self, request: Any) -> tuple[int, dict[str, Any] | None]:
        if not isinstance(request, dict):
            err = RPCError(E.RPC_INVALID_REQUEST, "Invalid Request object")
            return E.HTTP_BAD_REQUEST, {"result": None, "error": err.to_json(), "id": None}
        version = request.get("jsonrpc")
        v2 = version == "2.0"
        rid = request.get("id")
        try:
            if version not in (None, "1.0", "2.0"):
                raise RPCError(E.RPC_INVALID_REQUEST, "JSON-RPC version not supported")
            method = request.get("method")
            if not isinstance(method, str):
                raise RPCError(E.RPC_INVALID_REQUEST, "Method must be a string")
            params = request.get("params")
            if params is not None and not isinstance(params, list | dict):
                raise RPCError(E.RPC_INVALID_REQUEST, "Params must be an array or object")
            result = await self.call(method, params)
        except RPCError as exc:
            if v2:
                return (
                    (E.HTTP_OK, None)
                    if "id" not in request
                    else (E.HTTP_OK, {"jsonrpc": "2.0", "error": exc.to_json(), "id": rid})
                )
            return http_status_for(exc.code), {"result": None, "error": exc.to_json(), "id": rid}
        if v2:
            return (
                (E.HTTP_OK, None)
                if "id" not in request
                else (E.HTTP_OK, {"jsonrpc": "2.0", "result": result, "id": rid})
            )
        return E.HTTP_OK, {"result": result, "error": None, "id": rid}

    async def call(self, method: str, params: list[Any] | dict[str, Any] | None) -> Any:
        if self.node.warming_up() and method != "stop":
            raise RPCError(E.RPC_IN_WARMUP, "Loading block index…")
        entry = self.methods.get(method)
        if entry is None:
            raise RPCError(E.RPC_METHOD_NOT_FOUND, "Method not found")
        func, spec = entry
        kwargs = self._bind(method, spec, params)
        if method in WALLET_METHODS and not self._resubmitted:
            self._resubmit_wallet_transactions()
        try:
            return await func(**kwargs)
        except RPCError:
            raise
        except Exception as exc:  # a bug answers -32603 (internal error) and never takes the server down
            log.exception("RPC %s failed", method)
            raise RPCError(E.RPC_INTERNAL_ERROR, f"internal error: {exc}") from exc

    def _resubmit_wallet_transactions(self) -> None:
        """Offer the mempool, once per node start and before the wallet answers anything, every wallet
        transaction that is neither confirmed nor in the mempool (Core's wallet does this when it loads).
        The mempool is not kept across restarts: without this, a payment sent just before a restart would
        be listed by the wallet (by its comment) yet never confirm, and its coins would look unspent to the
        next sendmany. A transaction the mempool refuses (now conflicting) is left as it is."""
        self._resubmitted = True
        for tx in self.wallet.unconfirmed():
            if tx.txid() in self.node.mempool:
                continue
            try:
                self.node.accept_transaction(tx)
            except MempoolReject as exc:
                log.info("wallet transaction %s not resubmitted: %s", tx.txid_hex(), exc.reason)
            except Exception:  # a bug here must not stop the wallet from answering
                log.exception("wallet transaction %s not resubmitted", tx.txid_hex())

    @staticmethod
    def _bind(method: str, spec: list[Param], params: list[Any] | dict[str, Any] | None) -> dict[str, Any]:
        usage = f"{method} " + " ".join(f'"{n}"' if req else f'( "{n}" )' for n, _, req in spec)
        values: dict[str, Any] = {}
        if isinstance(params, dict):
            names = {n for n, _, _ in spec}
            for k in params:
                if k not in names:
                    raise RPCError(E.RPC_INVALID_PARAMETER, f"Unknown named parameter {k}")
            values = {k: v for k, v in params.items() if v is not None}
        elif params:
            if len(params) > len(spec):
                raise RPCError(E.RPC_MISC_ERROR, usage.strip())
            values = {spec[i][0]: v for i, v in enumerate(params) if v is not None}
        for name, kind, required in spec:
            if name not in values:
                if required:
                    raise RPCError(E.RPC_MISC_ERROR, usage.strip())
                continue
            v = values[name]
            allowed = _TYPES[kind]
            if allowed and _jtype(v) not in allowed:
                raise _type_error(v, allowed[0])
        return values

    # --- helpers ---

    @property
    def chain(self):  # type: ignore[no-untyped-def]
        assert self.node.chain is not None
        return self.node.chain

    @property
    def wallet(self):  # type: ignore[no-untyped-def]
        assert self.node.wallet is not None
        return self.node.wallet

    def _entry(self, blockhash: str):  # type: ignore[no-untyped-def]
        e = self.chain.index.get(parse_hash(blockhash, "blockhash"))
        if e is None:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        return e

    def _script_for(self, address: str, error: str = "Error: Invalid address") -> bytes:
        try:
            return address_to_script(address, self.node.network)
        except AddressError:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, error) from None

    # --- mining ---

    async def getblocktemplate(self, template_request: dict[str, Any] | None = None) -> Any:
        req = template_request or {}
        mode = req.get("mode", "template")
        if mode == "proposal":
            data = req.get("data")
            if not isinstance(data, str):
                raise RPCError(E.RPC_TYPE_ERROR, "Missing data String key for proposal")
            try:
                block = Block.from_hex(data)
            except ChainError:
                raise RPCError(E.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
            known = self.chain.index.get(block.hash())
            if known is not None:
                return "duplicate-invalid" if known.status == 3 else "duplicate"
            try:
                self.chain.test_block_validity(block, self.node.now())
            except BlockInvalid as exc:
                return exc.reason
            return None
        if mode != "template":
            raise RPCError(E.RPC_INVALID_PARAMETER, "Invalid mode")
        rules = req.get("rules")
        if not isinstance(rules, list) or "segwit" not in rules:
            raise RPCError(
                E.RPC_INVALID_PARAMETER,
                'getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})',
            )
        lpid = req.get("longpollid")
        if lpid is not None:
            if not isinstance(lpid, str):
                raise RPCError(E.RPC_TYPE_ERROR, "Invalid longpollid")
            await self.node.wait_for_change(lpid)
        return template_result(self.chain, self.node.mempool, self.node.now())

    async def submitblock(self, hexdata: str, dummy: str | None = None) -> Any:
        try:
            block = Block.from_hex(hexdata)
        except ChainError:
            raise RPCError(E.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
        if not block.txs or not block.txs[0].is_coinbase():
            raise RPCError(E.RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
        return self.node.submit_block(block).reason

    async def generatetoaddress(self, nblocks: int, address: str, maxtries: int = DEFAULT_MAX_TRIES) -> Any:
        script = self._script_for(address)
        if not 0 <= nblocks <= MAX_GENERATE:
            raise RPCError(E.RPC_INVALID_PARAMETER, f"nblocks must be between 0 and {MAX_GENERATE}")
        return [display_hex(h) for h in self.node.mine(script, int(nblocks), int(maxtries))]

    async def generateblock(self, output: str, transactions: list[Any], submit: bool = True) -> Any:
        if output.startswith("raw(") and output.endswith(")"):
            try:
                script = bytes.fromhex(output[4:-1])
            except ValueError:
                raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor") from None
        else:
            addr = output[5:-1] if output.startswith("addr(") and output.endswith(")") else output
            script = self._script_for(addr, "Error: Invalid address or descriptor")
        txs: list[Transaction] = []
        for item in transactions:
            if not isinstance(item, str):
                raise _type_error(item, "string")
            if len(item) == 64:
                try:
                    txid = from_display_hex(item)
                except ChainError:
                    txid = b""
                if txid:
                    e = self.node.mempool.entries.get(txid)
                    if e is None:
                        raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, f"Transaction {item} not in mempool.")
                    txs.append(e.tx)
                    continue
            try:
                txs.append(Transaction.from_hex(item))
            except ChainError:
                raise RPCError(
                    E.RPC_DESERIALIZATION_ERROR,
                    f"Transaction decode failed for {item}. Make sure the tx has at least one input.",
                ) from None
        from pithead.node.mining import assemble_block, solve

        fees = sum(self.node.fee_of(tx) for tx in txs)
        block = assemble_block(self.chain, script, txs, self.node.now(), fees=fees)
        solved = solve(block, DEFAULT_MAX_TRIES)
        if solved is None:
            raise RPCError(E.RPC_MISC_ERROR, "Failed to make block.")
        try:
            self.chain.test_block_validity(solved, self.node.now())
        except BlockInvalid as exc:
            raise RPCError(E.RPC_VERIFY_ERROR, f"TestBlockValidity failed: {exc.reason}") from None
        if not submit:
            return {"hash": solved.hash_hex(), "hex": solved.hex()}
        result = self.node.submit_block(solved)
        if result.reason is not None:
            raise RPCError(E.RPC_VERIFY_ERROR, f"ProcessNewBlock, block not accepted: {result.reason}")
        return {"hash": solved.hash_hex()}

    async def getmininginfo(self) -> Any:
        tip = self.chain.tip
        nxt = self.chain.next_bits(tip)
        return {
            "blocks": tip.height,
            "currentblockweight": 4000,
            "currentblocktx": 0,
            "bits": f"{tip.header.bits:08x}",
            "difficulty": core_double(bits_to_difficulty(tip.header.bits)),
            "target": f"{bits_to_target(tip.header.bits):064x}",
            "networkhashps": self._network_hashps(),
            "pooledtx": len(self.node.mempool),
            "chain": "regtest",
            "next": {
                "height": tip.height + 1,
                "bits": f"{nxt:08x}",
                "difficulty": core_double(bits_to_difficulty(nxt)),
                "target": f"{bits_to_target(nxt):064x}",
            },
            "warnings": [],
        }

    def _network_hashps(self, lookup: int = 120) -> float:
        """Core's GetNetworkHashPS: work over the last `lookup` blocks / their time span."""
        tip = self.chain.tip
        if tip.height == 0:
            return 0.0
        first = self.chain.entry_at(max(0, tip.height - lookup))
        span = tip.header.time - first.header.time
        return core_double((tip.chainwork - first.chainwork) / span) if span > 0 else 0.0

    # --- chain ---

    async def getblockchaininfo(self) -> Any:
        tip = self.chain.tip
        return {
            "chain": "regtest",
            "blocks": tip.height,
            "headers": max((e.height for e in self.chain.index.values() if e.status != 3), default=0),
            "bestblockhash": display_hex(tip.hash),
            "bits": f"{tip.header.bits:08x}",
            "target": f"{bits_to_target(tip.header.bits):064x}",
            "difficulty": core_double(bits_to_difficulty(tip.header.bits)),
            "time": tip.header.time,
            "mediantime": self.chain.median_time_past(tip),
            "verificationprogress": 1,
            "initialblockdownload": False,
            "chainwork": f"{tip.chainwork:064x}",
            "size_on_disk": self.chain.size_on_disk(),
            "pruned": False,
            "warnings": [],
        }

    async def getbestblockhash(self) -> Any:
        return display_hex(self.chain.tip.hash)

    async def getblockcount(self) -> Any:
        return self.chain.height

    async def getblockhash(self, height: int) -> Any:
        if not isinstance(height, int) or not 0 <= height <= self.chain.height:
            raise RPCError(E.RPC_INVALID_PARAMETER, "Block height out of range")
        return display_hex(self.chain.active[height])

    async def getblockheader(self, blockhash: str, verbose: bool = True) -> Any:
        e = self._entry(blockhash)
        if not verbose:
            return e.header.serialize().hex()
        return header_json(self.chain, e)

    async def getblock(self, blockhash: str, verbosity: int | bool = 1) -> Any:
        e = self._entry(blockhash)
        level = int(verbosity)
        if level <= 0:
            return self.chain.raw_block(e.hash).hex()
        return block_json(self.chain, e, min(level, 2))

    async def gettxoutsetinfo(
        self, hash_type: str = "none", hash_or_height: Any = None, use_index: bool = True
    ) -> Any:
        """Core's UTXO set statistics for the tip (hash_type "none" only: no hash_serialized_3/muhash)."""
        if hash_type != "none":
            raise RPCError(E.RPC_INVALID_PARAMETER, f"{hash_type} is not a valid hash_type (this node: none)")
        if hash_or_height is not None:
            raise RPCError(E.RPC_INVALID_PARAMETER, "Querying specific block heights requires coinstatsindex")
        n, txs, total, bogo = self.chain.utxo_stats()
        return {
            "height": self.chain.height,
            "bestblock": display_hex(self.chain.tip.hash),
            "txouts": n,
            "bogosize": bogo,
            "total_amount": btc(total),
            "transactions": txs,
            "disk_size": self.chain.size_on_disk(),
        }

    async def getdifficulty(self) -> Any:
        return core_double(bits_to_difficulty(self.chain.tip.header.bits))

    async def validateaddress(self, address: str) -> Any:
        try:
            script = address_to_script(address, self.node.network)
        except AddressError as exc:
            return {"isvalid": False, "error_locations": [], "error": str(exc)}
        out: dict[str, Any] = {
            "isvalid": True,
            "address": address,
            "scriptPubKey": script.hex(),
            # Core's DescribeAddress: P2SH, P2WSH and P2TR are scripts
            "isscript": script[:1] == b"\xa9" or (len(script) == 34 and script[:1] in (b"\x00", b"\x51")),
            "iswitness": script[:1] == b"\x00" or 0x51 <= script[0] <= 0x60,
        }
        if out["iswitness"]:
            out["witness_version"] = 0 if script[0] == 0 else script[0] - 0x50
            out["witness_program"] = script[2:].hex()
        return out

    async def uptime(self) -> Any:
        return self.node.uptime()

    async def stop(self, wait: int | None = None) -> Any:
        self.node.request_stop()
        return "pithead node stopping"

    # --- network ---

    async def getnetworkinfo(self) -> Any:
        networks = [
            {
                "name": n,
                "limited": n != "ipv4" and n != "ipv6",
                "reachable": n in ("ipv4", "ipv6"),
                "proxy": "",
                "proxy_randomize_credentials": False,
            }
            for n in ("ipv4", "ipv6", "onion", "i2p", "cjdns")
        ]
        return {
            "version": NODE_VERSION,
            "subversion": f"/pithead:{__version__}/",
            "protocolversion": PROTOCOL_VERSION,
            "localservices": "0000000000000c08",
            "localservicesnames": ["WITNESS", "NETWORK_LIMITED"],
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": True,
            "connections": 0,
            "connections_in": 0,
            "connections_out": 0,
            "networks": networks,
            "relayfee": 0.00001,
            "incrementalfee": 0.00001,
            "localaddresses": [],
            "warnings": [],
        }

    # --- mempool and transactions ---

    def _mempool_entry_json(self, txid: bytes) -> dict[str, Any]:
        mp = self.node.mempool
        e = mp.entries[txid]
        ancestors: set[bytes] = set()
        stack = mp.parents(e)
        while stack:
            p = stack.pop()
            if p not in ancestors:
                ancestors.add(p)
                stack.extend(mp.parents(mp.entries[p]))
        descendants: set[bytes] = set()
        stack = mp.children(txid)
        while stack:
            c = stack.pop()
            if c not in descendants:
                descendants.add(c)
                stack.extend(mp.children(c))
        anc = [mp.entries[a] for a in ancestors]
        desc = [mp.entries[d] for d in descendants]
        return {
            "vsize": e.vsize,
            "weight": e.weight,
            "time": e.time,
            "height": e.height,
            "descendantcount": 1 + len(desc),
            "descendantsize": e.vsize + sum(d.vsize for d in desc),
            "ancestorcount": 1 + len(anc),
            "ancestorsize": e.vsize + sum(a.vsize for a in anc),
            "wtxid": display_hex(e.wtxid),
            "fees": {
                "base": btc(e.fee),
                "modified": btc(e.fee),
                "ancestor": btc(e.fee + sum(a.fee for a in anc)),
                "descendant": btc(e.fee + sum(d.fee for d in desc)),
            },
            "depends": [display_hex(p) for p in mp.parents(e)],
            "spentby": [display_hex(c) for c in mp.children(txid)],
            "bip125-replaceable": any(i.sequence < 0xFFFFFFFE for i in e.tx.inputs),
            "unbroadcast": False,
        }

    async def getrawmempool(self, verbose: bool = False, mempool_sequence: bool = False) -> Any:
        if verbose:
            return {display_hex(t): self._mempool_entry_json(t) for t in self.node.mempool.entries}
        txids = [display_hex(t) for t in self.node.mempool.entries]
        if mempool_sequence:
            return {"txids": txids, "mempool_sequence": self.node.mempool.transactions_updated}
        return txids

    async def getmempoolinfo(self) -> Any:
        mp = self.node.mempool
        return {
            "loaded": True,
            "size": len(mp),
            "bytes": sum(e.vsize for e in mp.entries.values()),
            "usage": sum(len(e.tx.serialize()) for e in mp.entries.values()),
            "total_fee": btc(sum(e.fee for e in mp.entries.values())),
            "maxmempool": 300_000_000,
            "mempoolminfee": 0.00001,
            "minrelaytxfee": 0.00001,
            "incrementalrelayfee": 0.00001,
            "unbroadcastcount": 0,
            "fullrbf": True,
        }

    async def getmempoolentry(self, txid: str) -> Any:
        h = parse_hash(txid, "txid")
        if h not in self.node.mempool:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        return self._mempool_entry_json(h)

    async def getrawtransaction(
        self, txid: str, verbose: int | bool = 0, blockhash: str | None = None
    ) -> Any:
        h = parse_hash(txid, "txid")
        e = self.node.mempool.entries.get(h)
        tx: Transaction | None = e.tx if e else None
        block_entry = None
        if tx is None:
            loc = self.chain.tx_location(h)
            if loc is not None:
                block_entry = self.chain.index[loc[0]]
                tx = self.chain.read_block(loc[0]).txs[loc[1]]
        if tx is None:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction.")
        if not verbose:
            return tx.serialize().hex()
        out = tx_json(tx, self.node.network)
        if block_entry is not None:
            out["blockhash"] = display_hex(block_entry.hash)
            out["confirmations"] = self.chain.confirmations(block_entry)
            out["time"] = out["blocktime"] = block_entry.header.time
        return out

    async def sendrawtransaction(
        self, hexstring: str, maxfeerate: Any = None, maxburnamount: Any = None
    ) -> Any:
        try:
            tx = Transaction.from_hex(hexstring)
        except ChainError:
            raise RPCError(
                E.RPC_DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input."
            ) from None
        return display_hex(self._broadcast(tx))

    def _broadcast(self, tx: Transaction) -> bytes:
        txid = tx.txid()
        if txid in self.node.mempool:
            return txid  # Core answers the txid again for a transaction it already has
        try:
            self.node.accept_transaction(tx)
        except MempoolReject as exc:
            if exc.reason == "txn-already-known":
                raise RPCError(E.RPC_VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain") from None
            if exc.missing_inputs:
                raise RPCError(E.RPC_VERIFY_ERROR, "bad-txns-inputs-missingorspent") from None
            raise RPCError(E.RPC_VERIFY_REJECTED, exc.reason) from None
        return txid

    # --- wallet ---

    async def getnewaddress(self, label: str = "", address_type: str = "bech32") -> Any:
        try:
            return self.wallet.new_address(address_type, label)
        except WalletError as exc:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, str(exc)) from None

    def _trusted(self, txid: bytes) -> bool:
        """An unconfirmed wallet transaction counts (Core: IsTrusted) when it spends our own coins."""
        e = self.node.mempool.entries.get(txid)
        if e is None:
            return False
        for i in e.tx.inputs:
            c = self.node.mempool.coin(i.prevout) or self.chain.coin(i.prevout)
            if c is None or not self.wallet.owns(c.script_pubkey):
                return False
        return True

    def _available(self, minconf: int = 0, include_unsafe: bool = False):  # type: ignore[no-untyped-def]
        out = []
        for c in self.wallet.coins(self.chain, self.node.mempool):
            if not c.spendable_now or c.confirmations < minconf:
                continue
            safe = c.confirmations > 0 or self._trusted(c.outpoint.txid)
            if safe or include_unsafe:
                out.append((c, safe))
        return out

    async def getbalance(
        self,
        dummy: str | None = None,
        minconf: int = 0,
        include_watchonly: bool = False,
        avoid_reuse: bool = True,
    ) -> Any:
        if dummy is not None and dummy != "*":
            raise RPCError(E.RPC_METHOD_DEPRECATED, 'dummy first argument must be excluded or set to "*".')
        return btc(sum(c.coin.value for c, safe in self._available(minconf) if safe))

    async def listunspent(
        self,
        minconf: int = 1,
        maxconf: int = 9_999_999,
        addresses: list[Any] | None = None,
        include_unsafe: bool = True,
        query_options: dict[str, Any] | None = None,
    ) -> Any:
        wanted = None
        if addresses:
            wanted = {self._script_for(a, f"Invalid Bitcoin address: {a}") for a in addresses}
        out = []
        for c, safe in self._available(minconf, include_unsafe):
            if c.confirmations > maxconf:
                continue
            script = c.coin.script_pubkey
            if wanted is not None and script not in wanted:
                continue
            address = script_to_address(script, self.node.network)
            inner = self.wallet.inner_script(script)
            item: dict[str, Any] = {
                "txid": display_hex(c.outpoint.txid),
                "vout": c.outpoint.index,
                "address": address,
                "label": self.wallet.label(script),
                "scriptPubKey": script.hex(),
                "amount": btc(c.coin.value),
                "confirmations": c.confirmations,
            }
            if script[:1] == b"\xa9":
                item["redeemScript"] = inner.hex()
            else:
                item["witnessScript"] = inner.hex()
            item.update(
                {
                    "spendable": True,
                    "solvable": True,
                    "desc": script_pubkey_json(script, self.node.network)["desc"],
                    "parent_descs": [],
                    "safe": safe,
                }
            )
            out.append(item)
        return out

    async def sendmany(
        self,
        amounts: dict[str, Any],
        dummy: str | None = None,
        minconf: int = 0,
        comment: str = "",
        subtractfeefrom: list[Any] | None = None,
        replaceable: bool = True,
        conf_target: int = 6,
        estimate_mode: str = "unset",
        fee_rate: Any = None,
        verbose: bool = False,
    ) -> Any:
        if dummy:
            raise RPCError(E.RPC_INVALID_PARAMETER, 'Dummy value must be set to ""')
        if not amounts:
            raise RPCError(E.RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
        outputs: list[TxOut] = []
        scripts: dict[str, int] = {}
        for address, amount in amounts.items():
            if address in scripts:
                raise RPCError(E.RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: {address}")
            script = self._script_for(address, f"Invalid Bitcoin address: {address}")
            value = parse_amount(amount)
            if value <= 0:
                raise RPCError(E.RPC_TYPE_ERROR, "Invalid amount for send")
            scripts[address] = len(outputs)
            outputs.append(TxOut(value, script))
        subtract = [scripts[a] for a in (subtractfeefrom or []) if a in scripts]
        rate = WALLET_FEE_RATE
        if fee_rate is not None:
            try:
                rate_dec = Decimal(str(fee_rate))
            except InvalidOperation:
                raise RPCError(E.RPC_TYPE_ERROR, "Invalid fee_rate") from None
            if not rate_dec.is_finite() or rate_dec <= 0:
                raise RPCError(E.RPC_INVALID_PARAMETER, "Invalid fee_rate")
            rate = int(rate_dec.to_integral_value(rounding="ROUND_CEILING"))
        coins = sorted((c for c, safe in self._available(minconf) if safe), key=lambda c: -c.coin.value)
        target = sum(o.value for o in outputs)
        chosen = []
        total = 0
        fee = 0
        for c in coins:
            chosen.append(c)
            total += c.coin.value
            segwit_in = sum(1 for x in chosen if x.coin.script_pubkey[:1] == b"\x00")
            fee = rate * estimate_vsize(len(chosen), len(outputs) + 1, segwit_in)
            if total >= target + (0 if subtract else fee):
                break
        need = target + (0 if subtract else fee)
        if not chosen or total < need:
            raise RPCError(E.RPC_WALLET_INSUFFICIENT_FUNDS, "Insufficient funds")
        if subtract:
            share, rest = divmod(fee, len(subtract))
            for k, idx in enumerate(subtract):
                o = outputs[idx]
                cut = share + (rest if k == 0 else 0)
                if o.value - cut <= DUST:
                    raise RPCError(E.RPC_WALLET_ERROR, "The transaction amount is too small to pay the fee")
                outputs[idx] = TxOut(o.value - cut, o.script_pubkey)
        change = total - sum(o.value for o in outputs) - fee
        if change > DUST:
            outputs.append(TxOut(change, self.wallet.new_script("segwit", "", change=True)))
        tx = self.wallet.sign([(c.outpoint, c.coin) for c in chosen], outputs)
        # The comment goes into the wallet before the transaction goes out (Core stores mapValue with the
        # transaction in CommitTransaction, then broadcasts): a payer who crashes right after this call can
        # always find its payment by the comment, whether or not it left change to the wallet.
        values = {"comment": comment} if comment else {}
        self.wallet.set_values(tx.txid(), values)
        try:
            txid = display_hex(self._broadcast(tx))
        except RPCError:
            self.wallet.drop_values(tx.txid())
            raise
        return {"txid": txid, "fee_reason": "Fallback fee"} if verbose else txid

    async def gettransaction(self, txid: str, include_watchonly: bool = True, verbose: bool = False) -> Any:
        h = parse_hash(txid, "txid")
        rec = self.wallet.recorded(h)
        if rec is None:
            raise RPCError(E.RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        tx, received = rec
        amounts = self.wallet.amounts(tx)
        fee = self._wallet_fee(h, tx, amounts)
        # Core: amount = credit - debit - (value out - debit) when from us, i.e. the net less the fee
        out: dict[str, Any] = {"amount": btc(amounts.credit - amounts.debit + (fee or 0))}
        if fee is not None:
            out["fee"] = -btc(fee)
        out.update(self._wallet_tx_json(h, tx, received))
        out["details"] = self._wallet_entries(h, tx, received, amounts, fee, None, long=False)
        out["hex"] = tx.serialize().hex()
        if verbose:
            out["decoded"] = tx_json(tx, self.node.network, include_hex=False)
        return out

    async def listtransactions(
        self, label: str | None = None, count: Any = 10, skip: Any = 0, include_watchonly: bool = True
    ) -> Any:
        """Core's listtransactions: the newest `count` entries after skipping the newest `skip`, returned
        oldest first. The wallet is walked newest transaction first and the walk stops as soon as enough
        entries are found, as in Core; within one transaction the entries come out in reverse of
        gettransaction's details (Core reverses the whole list it built newest first)."""
        label_filter: str | None = None
        if label is not None and label != "*":
            if label == "":
                raise RPCError(E.RPC_INVALID_PARAMETER, 'Label argument must be a valid label name or "*".')
            label_filter = label
        n_count = _int32(count)
        n_skip = _int32(skip)
        if n_count < 0:
            raise RPCError(E.RPC_INVALID_PARAMETER, "Negative count")
        if n_skip < 0:
            raise RPCError(E.RPC_INVALID_PARAMETER, "Negative from")
        newest_first: list[dict[str, Any]] = []
        wanted = n_count + n_skip
        if n_count > 0:
            for tx, received in self.wallet.history():
                h = tx.txid()
                amounts = self.wallet.amounts(tx)
                fee = self._wallet_fee(h, tx, amounts)
                newest_first.extend(
                    self._wallet_entries(h, tx, received, amounts, fee, label_filter, long=True)
                )
                if len(newest_first) >= wanted:
                    break
        page = newest_first[n_skip : n_skip + n_count]
        page.reverse()
        return page

    def _wallet_fee(self, h: bytes, tx: Transaction, amounts: TxAmounts) -> int | None:
        """The fee of a transaction that spends our coins (None for anything else, or when unknowable)."""
        if not amounts.from_me or tx.is_coinbase():
            return None
        if amounts.inputs_known:
            return int(amounts.debit - sum(o.value for o in tx.outputs))
        if h in self.node.mempool:
            return int(self.node.fee_of(tx))
        return self._confirmed_fee(h, tx)

    def _wallet_depth(self, h: bytes) -> tuple[int, Any, int | None]:
        """(confirmations, the block's index entry or None, position in the block or None)."""
        loc = self.chain.tx_location(h)
        if loc is None:
            return 0, None, None
        e = self.chain.index[loc[0]]
        confirmations = self.chain.confirmations(e)
        if confirmations < 1:
            return 0, None, None
        return confirmations, e, loc[1]

    def _wallet_tx_json(self, h: bytes, tx: Transaction, received: int) -> dict[str, Any]:
        """Core's WalletTxToJSON: the fields gettransaction and listtransactions share, in Core's order,
        ending with the transaction's string values (its sendmany `comment`)."""
        confirmations, e, index = self._wallet_depth(h)
        out: dict[str, Any] = {"confirmations": confirmations}
        if tx.is_coinbase():
            out["generated"] = True
        if e is not None:
            out.update(
                {
                    "blockhash": display_hex(e.hash),
                    "blockheight": e.height,
                    "blockindex": index,
                    "blocktime": e.header.time,
                }
            )
        else:
            out["trusted"] = self._trusted(h)
        out.update(
            {
                "txid": tx.txid_hex(),
                "wtxid": tx.wtxid_hex(),
                "walletconflicts": [],
                "mempoolconflicts": [],
                "time": received,
                "timereceived": received,
                "bip125-replaceable": "yes"
                if confirmations <= 0 and any(i.sequence < 0xFFFFFFFE for i in tx.inputs)
                else "no",
            }
        )
        out.update(self.wallet.values(h))
        return out

    def _wallet_entries(
        self,
        h: bytes,
        tx: Transaction,
        received: int,
        amounts: TxAmounts,
        fee: int | None,
        label_filter: str | None,
        *,
        long: bool,
    ) -> list[dict[str, Any]]:
        """Core's ListTransactions for one transaction: its send entries (none under a label filter), then
        its receive entries; `long` adds the WalletTxToJSON fields (listtransactions), without them these
        are gettransaction's details."""
        net = self.node.network
        common = self._wallet_tx_json(h, tx, received) if long else {}
        entries: list[dict[str, Any]] = []
        if label_filter is None:
            for n, o in amounts.sent:
                d: dict[str, Any] = {}
                address = script_to_address(o.script_pubkey, net)
                if address is not None:
                    d["address"] = address
                d["category"] = "send"
                d["amount"] = -btc(o.value)
                if self.wallet.owns(o.script_pubkey):  # one of our own addresses: in the address book
                    d["label"] = self.wallet.label(o.script_pubkey)
                d["vout"] = n
                d["fee"] = -btc(fee or 0)
                d.update(common)
                d["abandoned"] = False
                entries.append(d)
        confirmations = common["confirmations"] if long else self._wallet_depth(h)[0]
        for n, o in amounts.received:
            label = self.wallet.label(o.script_pubkey)
            if label_filter is not None and label != label_filter:
                continue
            r: dict[str, Any] = {}
            address = script_to_address(o.script_pubkey, net)
            if address is not None:
                r["address"] = address
            r["parent_descs"] = []
            if tx.is_coinbase():
                # Core's wallet: orphan off the active chain, immature until COINBASE_MATURITY + 1
                # confirmations (GetTxBlocksToMaturity), then generate
                if confirmations < 1:
                    r["category"] = "orphan"
                elif confirmations < net.coinbase_maturity + 1:
                    r["category"] = "immature"
                else:
                    r["category"] = "generate"
            else:
                r["category"] = "receive"
            r["amount"] = btc(o.value)
            r["label"] = label
            r["vout"] = n
            r["abandoned"] = False
            r.update(common)
            entries.append(r)
        return entries

    def _confirmed_fee(self, txid: bytes, tx: Transaction) -> int | None:
        loc = self.chain.tx_location(txid)
        if loc is None:
            return None
        return self.chain.block_fees(self.chain.index[loc[0]]).get(loc[1])

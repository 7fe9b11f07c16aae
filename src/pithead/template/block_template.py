"""The frozen `BlockTemplate`: a validated getblocktemplate answer (BIP22/23/9/145), and its parser.

`parse_gbt` validates an untrusted GBT result field by field into one `TemplateError` naming the field;
a caller keeps its last good template when a new one is refused. Everything derived (txids, the Stratum
merkle branch, the witness commitment) is computed from the frozen fields, never cached on a mutable
object. The template does not know about Stratum, extranonces or payouts: jobs are built elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pithead.chain.compact import bits_to_target
from pithead.chain.errors import ChainError
from pithead.chain.hashes import from_display_hex, sha256d, unhex
from pithead.chain.merkle import coinbase_branch
from pithead.chain.tx import Transaction
from pithead.chain.witness import witness_commitment

MAX_TEMPLATE_TXS = 25_000  # a 4 MWU block holds fewer; more means a corrupt or hostile answer


class TemplateError(ValueError):
    """A getblocktemplate answer that cannot be mined on; the message names the field."""


@dataclass(frozen=True, slots=True)
class TemplateTx:
    data: bytes  # full serialization (with witness when present)
    txid: bytes  # internal order
    wtxid: bytes  # internal order ("hash" in GBT)
    fee: int
    sigops: int
    weight: int
    depends: tuple[int, ...]  # 1-based indexes into the template's transactions


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    version: int
    prev_hash: bytes  # internal order
    height: int
    bits: int
    target: int
    curtime: int
    mintime: int
    coinbase_value: int  # satoshis: subsidy + fees
    transactions: tuple[TemplateTx, ...]
    rules: tuple[str, ...]
    coinbase_aux_flags: bytes = b""
    default_witness_commitment: bytes | None = None  # the full output script, when GBT gave one
    longpollid: str | None = None
    sigoplimit: int = 80_000
    sizelimit: int = 4_000_000
    weightlimit: int = 4_000_000
    mutable: tuple[str, ...] = ()
    vbavailable: tuple[tuple[str, int], ...] = ()
    vbrequired: int = 0

    def txids(self) -> list[bytes]:
        return [t.txid for t in self.transactions]

    def merkle_branch(self) -> list[bytes]:
        """Stratum merkle branch for the coinbase (internal order), from the template's txids."""
        return coinbase_branch(self.txids())

    def needs_witness_commitment(self) -> bool:
        """BIP145: the commitment is required when segwit is active and any tx has witness data; pools
        include it whenever segwit is active (as Core's own miner does)."""
        return "segwit" in self.rules or "!segwit" in self.rules

    def witness_commitment(self) -> bytes:
        """The 32-byte BIP141 commitment recomputed from the template's wtxids."""
        return witness_commitment([t.wtxid for t in self.transactions])

    def fees(self) -> int:
        return sum(t.fee for t in self.transactions)


def _req(result: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in result:
        raise TemplateError(f"getblocktemplate: missing field {key!r}")
    value = result[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TemplateError(f"getblocktemplate: field {key!r} has type {type(value).__name__}")
    return value


def _parse_tx(i: int, raw: Any, n_txs: int, verify: bool) -> TemplateTx:
    if not isinstance(raw, dict):
        raise TemplateError(f"getblocktemplate: transactions[{i}] is not an object")
    try:
        data = unhex(_req(raw, "data", str), f"transactions[{i}].data")
        txid = from_display_hex(_req(raw, "txid", str))
        wtxid = from_display_hex(raw.get("hash", raw["txid"]))
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: transactions[{i}]: {exc}") from exc
    depends = raw.get("depends", [])
    if not isinstance(depends, list) or not all(isinstance(d, int) and 1 <= d <= i for d in depends):
        raise TemplateError(f"getblocktemplate: transactions[{i}].depends must point to earlier transactions")
    fee = raw.get("fee", 0)
    sigops = raw.get("sigops", 0)
    weight = raw.get("weight", len(data) * 4)
    for name, v in (("fee", fee), ("sigops", sigops), ("weight", weight)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise TemplateError(f"getblocktemplate: transactions[{i}].{name} must be a non-negative integer")
    if verify:
        try:
            tx = Transaction.parse(data)
        except ChainError as exc:
            raise TemplateError(f"getblocktemplate: transactions[{i}].data does not parse: {exc}") from exc
        if tx.txid() != txid:
            raise TemplateError(f"getblocktemplate: transactions[{i}].txid does not match its data")
        if tx.wtxid() != wtxid:
            raise TemplateError(f"getblocktemplate: transactions[{i}].hash does not match its data")
        if tx.is_coinbase():
            raise TemplateError(f"getblocktemplate: transactions[{i}] is a coinbase")
    elif sha256d(data) != wtxid:
        raise TemplateError(f"getblocktemplate: transactions[{i}].hash does not match its data")
    return TemplateTx(data, txid, wtxid, fee, sigops, weight, tuple(depends))


def parse_gbt(result: Any, *, verify_transactions: bool = True) -> BlockTemplate:
    """Validate a getblocktemplate `result` into a BlockTemplate, or raise TemplateError."""
    if not isinstance(result, dict):
        raise TemplateError("getblocktemplate: result is not an object")
    version = _req(result, "version", int)
    if not 0 <= version <= 0xFFFFFFFF:
        raise TemplateError("getblocktemplate: version out of range")
    try:
        prev = from_display_hex(_req(result, "previousblockhash", str))
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: previousblockhash: {exc}") from exc
    height = _req(result, "height", int)
    if height < 1:
        raise TemplateError("getblocktemplate: height must be >= 1")
    bits_hex = _req(result, "bits", str)
    try:
        bits = int(bits_hex, 16)
        if len(bits_hex) != 8:
            raise ValueError
        target = bits_to_target(bits)
    except (ValueError, ChainError) as exc:
        raise TemplateError(f"getblocktemplate: bits {bits_hex!r} is not a valid compact target") from exc
    if "target" in result:
        try:
            if int(_req(result, "target", str), 16) != target:
                raise TemplateError("getblocktemplate: target does not match bits")
        except ValueError as exc:
            raise TemplateError("getblocktemplate: target is not hex") from exc
    curtime = _req(result, "curtime", int)
    mintime = result.get("mintime", 0)
    if not isinstance(mintime, int) or curtime < 0:
        raise TemplateError("getblocktemplate: bad curtime/mintime")
    coinbase_value = _req(result, "coinbasevalue", int)
    if not 0 <= coinbase_value <= 21_000_000 * 100_000_000:
        raise TemplateError("getblocktemplate: coinbasevalue out of range")
    raw_txs = _req(result, "transactions", list)
    if len(raw_txs) > MAX_TEMPLATE_TXS:
        raise TemplateError(f"getblocktemplate: {len(raw_txs)} transactions is more than a block holds")
    txs = tuple(_parse_tx(i + 1, t, len(raw_txs), verify_transactions) for i, t in enumerate(raw_txs))
    rules = result.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise TemplateError("getblocktemplate: rules must be a list of strings")
    aux = result.get("coinbaseaux", {}) or {}
    if not isinstance(aux, dict):
        raise TemplateError("getblocktemplate: coinbaseaux must be an object")
    try:
        aux_flags = unhex(aux.get("flags", ""), "coinbaseaux.flags")
        dwc_hex = result.get("default_witness_commitment")
        dwc = unhex(dwc_hex, "default_witness_commitment") if dwc_hex else None
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: {exc}") from exc
    tpl = BlockTemplate(
        version=version,
        prev_hash=prev,
        height=height,
        bits=bits,
        target=target,
        curtime=curtime,
        mintime=mintime,
        coinbase_value=coinbase_value,
        transactions=txs,
        rules=tuple(rules),
        coinbase_aux_flags=aux_flags,
        default_witness_commitment=dwc,
        longpollid=result.get("longpollid") if isinstance(result.get("longpollid"), str) else None,
        sigoplimit=int(result.get("sigoplimit", 80_000)),
        sizelimit=int(result.get("sizelimit", 4_000_000)),
        weightlimit=int(result.get("weightlimit", 4_000_000)),
        mutable=tuple(result.get("mutable", ())),
        vbavailable=tuple(sorted((str(k), int(v)) for k, v in (result.get("vbavailable") or {}).items())),
        vbrequired=int(result.get("vbrequired", 0)),
    )
    if dwc is not None and dwc[6:38] != tpl.witness_commitment():
        raise TemplateError("getblocktemplate: default_witness_commitment does not match the transactions")
    return tpl

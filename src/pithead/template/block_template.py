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
from pithead.chain.witness import commitment_script, witness_commitment

MAX_TEMPLATE_TXS = 25_000  # a 4 MWU block holds fewer; more means a corrupt or hostile answer
MAX_GBT_INT = 2**63 - 1  # Core's JSON integers are int64 (UniValue); anything larger is not from Core


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


def _req(result: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if key not in result:
        raise TemplateError(f"getblocktemplate: missing field {where}{key!r}")
    value = result[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TemplateError(f"getblocktemplate: field {where}{key!r} has type {type(value).__name__}")
    return value


def _hex_u32(result: dict[str, Any], key: str) -> int:
    """A field GBT sends as exactly 8 hex digits (`bits`); int(x, 16) alone would also take "0x…", "_"
    and whitespace."""
    value = _req(result, key, str)
    try:
        raw = unhex(value, key)
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: {key} {value!r} is not 8 hex digits") from exc
    if len(raw) != 4:
        raise TemplateError(f"getblocktemplate: {key} {value!r} is not 8 hex digits")
    return int.from_bytes(raw, "big")


def _opt_int(result: dict[str, Any], key: str, default: int, lo: int = 0, hi: int = MAX_GBT_INT) -> int:
    value = result.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise TemplateError(f"getblocktemplate: {key} must be an integer in {lo}..{hi}")
    return value


def _str_list(result: dict[str, Any], key: str) -> tuple[str, ...]:
    value = result.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TemplateError(f"getblocktemplate: {key} must be a list of strings")
    return tuple(value)


def _parse_tx(i: int, raw: Any, n_txs: int, verify: bool) -> TemplateTx:
    if not isinstance(raw, dict):
        raise TemplateError(f"getblocktemplate: transactions[{i}] is not an object")
    try:
        where = f"transactions[{i}]."
        data = unhex(_req(raw, "data", str, where), f"transactions[{i}].data")
        txid = from_display_hex(_req(raw, "txid", str, where))
        wtxid = from_display_hex(_req(raw, "hash", str, where)) if "hash" in raw else txid
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: transactions[{i}]: {exc}") from exc
    depends = raw.get("depends", [])
    if not isinstance(depends, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d < i for d in depends
    ):
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
    bits = _hex_u32(result, "bits")
    try:
        target = bits_to_target(bits)
    except ChainError as exc:
        raise TemplateError(f"getblocktemplate: bits {bits:08x} is not a valid compact target") from exc
    if "target" in result:
        target_hex = _req(result, "target", str)
        try:
            target_raw = unhex(target_hex, "target")
        except ChainError as exc:
            raise TemplateError("getblocktemplate: target is not hex") from exc
        if len(target_raw) != 32 or int.from_bytes(target_raw, "big") != target:
            raise TemplateError("getblocktemplate: target does not match bits")
    curtime = _req(result, "curtime", int)
    if not 0 <= curtime <= 0xFFFFFFFF:
        raise TemplateError("getblocktemplate: curtime must be an unsigned 32-bit time")
    mintime = _opt_int(result, "mintime", 0, 0, 0xFFFFFFFF)
    coinbase_value = _req(result, "coinbasevalue", int)
    if not 0 <= coinbase_value <= 21_000_000 * 100_000_000:
        raise TemplateError("getblocktemplate: coinbasevalue out of range")
    raw_txs = _req(result, "transactions", list)
    if len(raw_txs) > MAX_TEMPLATE_TXS:
        raise TemplateError(f"getblocktemplate: {len(raw_txs)} transactions is more than a block holds")
    txs = tuple(_parse_tx(i + 1, t, len(raw_txs), verify_transactions) for i, t in enumerate(raw_txs))
    rules = _str_list(result, "rules")
    mutable = _str_list(result, "mutable")
    vbavailable = result.get("vbavailable", {})
    if vbavailable is None:
        vbavailable = {}
    if not isinstance(vbavailable, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in vbavailable.values()
    ):
        raise TemplateError("getblocktemplate: vbavailable must map rule names to bit numbers")
    aux = result.get("coinbaseaux", {})
    if aux is None:
        aux = {}
    if not isinstance(aux, dict):
        raise TemplateError("getblocktemplate: coinbaseaux must be an object")
    try:
        aux_flags = unhex(aux.get("flags", ""), "coinbaseaux.flags")
        dwc_hex = result.get("default_witness_commitment")
        dwc = unhex(dwc_hex, "default_witness_commitment") if dwc_hex is not None else None
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
        rules=rules,
        coinbase_aux_flags=aux_flags,
        default_witness_commitment=dwc,
        longpollid=result.get("longpollid") if isinstance(result.get("longpollid"), str) else None,
        sigoplimit=_opt_int(result, "sigoplimit", 80_000),
        sizelimit=_opt_int(result, "sizelimit", 4_000_000),
        weightlimit=_opt_int(result, "weightlimit", 4_000_000),
        mutable=mutable,
        vbavailable=tuple(sorted((str(k), v) for k, v in vbavailable.items())),
        vbrequired=_opt_int(result, "vbrequired", 0, 0, 0xFFFFFFFF),
    )
    if dwc is not None and dwc != commitment_script(tpl.witness_commitment()):
        raise TemplateError("getblocktemplate: default_witness_commitment does not match the transactions")
    return tpl


def same_work(a: BlockTemplate, b: BlockTemplate) -> bool:
    """The same work for a miner: same parent, value, bits and transactions (the template's times may differ)."""
    return (
        a.prev_hash == b.prev_hash
        and a.coinbase_value == b.coinbase_value
        and a.bits == b.bits
        and a.txids() == b.txids()
    )

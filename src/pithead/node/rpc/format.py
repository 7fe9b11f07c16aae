"""Bitcoin Core's JSON renderings: amounts, script asm/type/descriptor, transactions, headers, blocks.

Field names, order and units follow Core (core_write.cpp TxToUniv/ScriptToUniv, blockchain.cpp
blockheaderToJSON/blockToJSON); the fixtures in tests/fixtures/bitcoin-core/ are the reference. Amounts
are BTC as JSON numbers written exactly as Core's ValueFromAmount writes them (eight decimals, from
satoshis). The descriptor checksum is BIP380's.
"""

from __future__ import annotations

from typing import Any

import orjson

from pithead.chain.address import script_to_address
from pithead.chain.compact import bits_to_difficulty, bits_to_target
from pithead.chain.hashes import display_hex
from pithead.chain.params import Network
from pithead.chain.script import scriptnum_decode
from pithead.chain.tx import Transaction
from pithead.node.chainstate import ChainState, IndexEntry

COIN = 100_000_000

_OPCODES = {
    0x00: "0",
    0x4F: "-1",
    0x61: "OP_NOP",
    0x63: "OP_IF",
    0x64: "OP_NOTIF",
    0x67: "OP_ELSE",
    0x68: "OP_ENDIF",
    0x69: "OP_VERIFY",
    0x6A: "OP_RETURN",
    0x75: "OP_DROP",
    0x76: "OP_DUP",
    0x7C: "OP_SWAP",
    0x82: "OP_SIZE",
    0x87: "OP_EQUAL",
    0x88: "OP_EQUALVERIFY",
    0xA8: "OP_SHA256",
    0xA9: "OP_HASH160",
    0xAA: "OP_HASH256",
    0xAC: "OP_CHECKSIG",
    0xAD: "OP_CHECKSIGVERIFY",
    0xAE: "OP_CHECKMULTISIG",
    0xAF: "OP_CHECKMULTISIGVERIFY",
    0xB1: "OP_CHECKLOCKTIMEVERIFY",
    0xB2: "OP_CHECKSEQUENCEVERIFY",
    0xBA: "OP_CHECKSIGADD",
}


def btc(sats: int) -> orjson.Fragment:
    """Satoshis → BTC as Core writes it (ValueFromAmount): a JSON number with exactly eight decimals,
    "50.00000000", "-0.00012345". Clients read the text as well as the value: NOMP's payment processor
    counts the decimals of getbalance's reply to learn the coin's precision. A Fragment is written into
    the reply as it is, so it is for JSON replies only, never for arithmetic."""
    whole, part = divmod(abs(sats), COIN)
    return orjson.Fragment(f"{'-' if sats < 0 else ''}{whole}.{part:08d}")


def core_double(x: float) -> float:
    """A double as Core prints it: UniValue writes 16 significant digits (4.656542373906925e-10), so
    round to that before JSON encoding prints the shortest form."""
    return float(f"{x:.16g}")


_SIGHASH_NAMES = {
    0x01: "ALL",
    0x02: "NONE",
    0x03: "SINGLE",
    0x81: "ALL|ANYONECANPAY",
    0x82: "NONE|ANYONECANPAY",
    0x83: "SINGLE|ANYONECANPAY",
}


def is_der_signature(sig: bytes) -> bool:
    """BIP66 strict DER (Core's IsValidSignatureEncoding), the signature followed by its hash type."""
    if not 9 <= len(sig) <= 73 or sig[0] != 0x30 or sig[1] != len(sig) - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= len(sig):
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != len(sig) or sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


def script_asm(script: bytes, sighash_decode: bool = False) -> str:
    """Core's ScriptToAsmStr; `sighash_decode` (used for scriptSigs) shows a signature's hash type as
    [ALL], [NONE|ANYONECANPAY], ..."""
    out: list[str] = []
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if 1 <= op <= 0x4E:
            if op <= 75:
                n = op
            else:
                size = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
                if i + size > len(script):
                    out.append("[error]")
                    break
                n = int.from_bytes(script[i : i + size], "little")
                i += size
            data = script[i : i + n]
            if len(data) < n:
                out.append("[error]")
                break
            i += n
            if len(data) <= 4:
                out.append(str(scriptnum_decode(data)))
            elif sighash_decode and is_der_signature(data) and data[-1] in _SIGHASH_NAMES:
                out.append(f"{data[:-1].hex()}[{_SIGHASH_NAMES[data[-1]]}]")
            else:
                out.append(data.hex())
        elif 0x51 <= op <= 0x60:
            out.append(str(op - 0x50))
        else:
            out.append(_OPCODES.get(op, "OP_UNKNOWN"))
    return " ".join(out)


OP_1, OP_16, OP_CHECKMULTISIG = 0x51, 0x60, 0xAE
COMPRESSED_PUBKEY_SIZE, PUBKEY_SIZE = 33, 65  # Core's CPubKey sizes (ValidSize)


def is_valid_pubkey_encoding(key: bytes) -> bool:
    """Core's CPubKey::ValidSize: a compressed (02/03) or uncompressed/hybrid (04/06/07) key's length."""
    if len(key) == COMPRESSED_PUBKEY_SIZE:
        return key[0] in (2, 3)
    return len(key) == PUBKEY_SIZE and key[0] in (4, 6, 7)


def multisig_keys(script: bytes) -> tuple[int, list[bytes]] | None:
    """(required, keys) of a bare `OP_m <keys> OP_n OP_CHECKMULTISIG` script (Core's MatchMultisig),
    else None."""
    if len(script) < 3 or script[-1] != OP_CHECKMULTISIG:
        return None
    if not (OP_1 <= script[0] <= OP_16 and OP_1 <= script[-2] <= OP_16):
        return None
    keys: list[bytes] = []
    i = 1
    while i < len(script) - 2:
        size = script[i]
        key = script[i + 1 : i + 1 + size]
        if size not in (COMPRESSED_PUBKEY_SIZE, PUBKEY_SIZE) or not is_valid_pubkey_encoding(key):
            return None
        keys.append(key)
        i += 1 + size
    required, total = script[0] - (OP_1 - 1), script[-2] - (OP_1 - 1)
    if i != len(script) - 2 or total != len(keys) or not 1 <= required <= total:
        return None
    return required, keys


def script_type(script: bytes) -> str:
    """Core's TxoutType names (GetTxnOutputType)."""
    n = len(script)
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "pubkeyhash"
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "scripthash"
    if n == 22 and script[:2] == b"\x00\x14":
        return "witness_v0_keyhash"
    if n == 34 and script[:2] == b"\x00\x20":
        return "witness_v0_scripthash"
    if n == 34 and script[:2] == b"\x51\x20":
        return "witness_v1_taproot"
    if n == 4 and script == bytes.fromhex("51024e73"):
        return "anchor"
    if 4 <= n <= 42 and 0x51 <= script[0] <= 0x60 and script[1] == n - 2:
        return "witness_unknown"
    if n >= 1 and script[0] == 0x6A:
        return "nulldata"
    if n in (35, 67) and script[0] == n - 2 and script[-1] == 0xAC and is_valid_pubkey_encoding(script[1:-1]):
        return "pubkey"
    if multisig_keys(script) is not None:
        return "multisig"
    return "nonstandard"


_INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ "
)
_CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


def _polymod(symbols: list[int]) -> int:
    chk = 1
    for value in symbols:
        top = chk >> 35
        chk = ((chk & 0x7FFFFFFFF) << 5) ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def descriptor_checksum(desc: str) -> str:
    """BIP380: the 8-character checksum appended after '#'."""
    symbols: list[int] = []
    groups: list[int] = []
    for c in desc:
        v = _INPUT_CHARSET.find(c)
        if v < 0:
            raise ValueError(f"character {c!r} not allowed in a descriptor")
        symbols.append(v & 31)
        groups.append(v >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    checksum = _polymod([*symbols, 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1
    return "".join(_CHECKSUM_CHARSET[(checksum >> (5 * (7 - i))) & 31] for i in range(8))


def with_checksum(desc: str) -> str:
    return f"{desc}#{descriptor_checksum(desc)}"


def script_pubkey_json(script: bytes, network: Network) -> dict[str, Any]:
    address = script_to_address(script, network)
    kind = script_type(script)
    if kind == "witness_v1_taproot":
        desc = f"rawtr({script[2:].hex()})"  # Core infers rawtr() for a bare output key
    elif address is not None and kind != "nulldata":
        desc = f"addr({address})"
    elif kind == "pubkey":
        desc = f"pk({script[1:-1].hex()})"
    elif (multisig := multisig_keys(script)) is not None:
        desc = f"multi({multisig[0]},{','.join(k.hex() for k in multisig[1])})"
    else:
        desc = f"raw({script.hex()})"
    out: dict[str, Any] = {"asm": script_asm(script), "desc": with_checksum(desc), "hex": script.hex()}
    if address is not None and kind != "nulldata":
        out["address"] = address
    out["type"] = kind
    return out


def tx_json(
    tx: Transaction, network: Network, *, fee: int | None = None, include_hex: bool = True
) -> dict[str, Any]:
    vin: list[dict[str, Any]] = []
    for txin in tx.inputs:
        if tx.is_coinbase():
            item: dict[str, Any] = {"coinbase": txin.script_sig.hex()}
        else:
            item = {
                "txid": display_hex(txin.prevout.txid),
                "vout": txin.prevout.index,
                "scriptSig": {
                    "asm": script_asm(txin.script_sig, sighash_decode=True),
                    "hex": txin.script_sig.hex(),
                },
            }
        if txin.witness:
            item["txinwitness"] = [w.hex() for w in txin.witness]
        item["sequence"] = txin.sequence
        vin.append(item)
    out: dict[str, Any] = {
        "txid": tx.txid_hex(),
        "hash": tx.wtxid_hex(),
        "version": tx.version,
        "size": tx.total_size(),
        "vsize": tx.vsize(),
        "weight": tx.weight(),
        "locktime": tx.locktime,
        "vin": vin,
        "vout": [
            {"value": btc(o.value), "n": n, "scriptPubKey": script_pubkey_json(o.script_pubkey, network)}
            for n, o in enumerate(tx.outputs)
        ],
    }
    if fee is not None:
        out["fee"] = btc(fee)
    if include_hex:
        out["hex"] = tx.serialize().hex()
    return out


def header_json(chain: ChainState, e: IndexEntry) -> dict[str, Any]:
    h = e.header
    out: dict[str, Any] = {
        "hash": display_hex(e.hash),
        "confirmations": chain.confirmations(e),
        "height": e.height,
        "version": h.version,
        "versionHex": f"{h.version & 0xFFFFFFFF:08x}",
        "merkleroot": display_hex(h.merkle_root),
        "time": h.time,
        "mediantime": chain.median_time_past(e),
        "nonce": h.nonce,
        "bits": f"{h.bits:08x}",
        "target": f"{bits_to_target(h.bits):064x}",
        "difficulty": core_double(bits_to_difficulty(h.bits)),
        "chainwork": f"{e.chainwork:064x}",
        "nTx": e.n_tx,
    }
    if e.height > 0:
        out["previousblockhash"] = display_hex(h.prev_hash)
    nxt = chain.next_on_chain(e)
    if nxt is not None:
        out["nextblockhash"] = display_hex(nxt)
    return out


def block_json(chain: ChainState, e: IndexEntry, verbosity: int) -> dict[str, Any]:
    block = chain.read_block(e.hash)
    head = header_json(chain, e)
    out: dict[str, Any] = {k: v for k, v in head.items() if k not in ("previousblockhash", "nextblockhash")}
    if "previousblockhash" in head:
        out["previousblockhash"] = head["previousblockhash"]
    if "nextblockhash" in head:
        out["nextblockhash"] = head["nextblockhash"]
    out["strippedsize"] = e.stripped_size
    out["size"] = e.size
    out["weight"] = e.weight
    if verbosity <= 1:
        out["tx"] = [tx.txid_hex() for tx in block.txs]
        return out
    fees = chain.block_fees(e) if chain.is_active(e) else {}
    out["tx"] = [tx_json(tx, chain.network, fee=fees.get(i)) for i, tx in enumerate(block.txs)]
    return out

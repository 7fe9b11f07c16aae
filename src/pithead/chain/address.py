"""Payout address → scriptPubKey, for P2PKH, P2SH (base58check) and segwit v0/v1+ (bech32/bech32m).

The network is a parameter: an address for another network is refused with an error saying which
network it belongs to, so a pool never pays a testnet address on mainnet. Decoding uses well-kept
libraries (`base58` for base58check, `bech32m`, the BIP350 reference code, for segwit); this module adds
the rules a pool needs on top (network prefixes, program sizes, BIP350's checksum per version) and errors
that say why. Private keys (WIF) and anything else that is not an address are rejected.
"""

from __future__ import annotations

import base58
import bech32m

from pithead.chain.errors import ChainError
from pithead.chain.params import NETWORKS, Network
from pithead.chain.script import p2pkh_script, p2sh_script, witness_program_script

MAX_ADDRESS_LEN = 90  # BIP173: a bech32 string is at most 90 characters; base58 addresses are ~35


class AddressError(ChainError):
    """An address that cannot be paid on this network; the message says why."""


def _networks_with_hrp(hrp: str) -> list[str]:
    return [n.name for n in NETWORKS.values() if n.bech32_hrp == hrp]


def _networks_with_prefix(prefix: int) -> list[str]:
    return [n.name for n in NETWORKS.values() if prefix in (n.p2pkh_prefix, n.p2sh_prefix)]


def _segwit(address: str, network: Network) -> bytes:
    lowered = address.lower()
    hrp = lowered[: lowered.rfind("1")]
    if hrp != network.bech32_hrp:
        owners = _networks_with_hrp(hrp)
        where = f"belongs to {'/'.join(owners)}" if owners else f"has unknown prefix {hrp!r}"
        raise AddressError(f"address {address!r} {where}, not {network.name}")
    try:
        witver, program = bech32m.decode(network.bech32_hrp, address)
    except bech32m.DecodeError as exc:
        raise AddressError(
            f"invalid segwit address {address!r}: bad checksum, characters, mixed case, padding, version or "
            "program length (BIP173/BIP350)"
        ) from exc
    return witness_program_script(witver, bytes(program))


def _base58(address: str, network: Network) -> bytes:
    try:
        payload = base58.b58decode_check(address)
    except ValueError as exc:
        raise AddressError(f"invalid address {address!r}: not valid bech32 or base58check ({exc})") from exc
    if len(payload) != 21:
        raise AddressError(f"invalid address {address!r}: base58 payload of {len(payload)} bytes is not an address")
    prefix, h = payload[0], payload[1:]
    if prefix == network.p2pkh_prefix:
        return p2pkh_script(h)
    if prefix == network.p2sh_prefix:
        return p2sh_script(h)
    owners = _networks_with_prefix(prefix)
    where = f"belongs to {'/'.join(owners)}" if owners else f"has unknown version byte {prefix:#04x}"
    raise AddressError(f"address {address!r} {where}, not {network.name}")


def address_to_script(address: str, network: Network) -> bytes:
    """The scriptPubKey that pays `address` on `network`, or AddressError saying why not."""
    if not isinstance(address, str) or not address:
        raise AddressError("empty address")
    if len(address) > MAX_ADDRESS_LEN:
        raise AddressError(f"address too long ({len(address)} characters)")
    if address != address.strip():
        raise AddressError("address has surrounding whitespace")
    lowered = address.lower()
    sep = lowered.rfind("1")
    if sep > 0 and lowered[:sep] in {n.bech32_hrp for n in NETWORKS.values()}:
        return _segwit(address, network)
    return _base58(address, network)


def is_valid_address(address: str, network: Network) -> bool:
    try:
        address_to_script(address, network)
    except AddressError:
        return False
    return True


def script_to_address(script: bytes, network: Network) -> str | None:
    """The address for a standard output script, or None for non-standard scripts (e.g. OP_RETURN)."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return base58.b58encode_check(bytes((network.p2pkh_prefix,)) + script[3:23]).decode()
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return base58.b58encode_check(bytes((network.p2sh_prefix,)) + script[2:22]).decode()
    if 4 <= len(script) <= 42 and (script[0] == 0 or 0x51 <= script[0] <= 0x60) and script[1] == len(script) - 2:
        version = 0 if script[0] == 0 else script[0] - 0x50
        try:
            return str(bech32m.encode(network.bech32_hrp, version, script[2:]))
        except bech32m.DecodeError:
            return None
    return None

"""Payout addresses (tests/vectors/addresses.json): BIP350 segwit lists, BIP173 bech32 strings, Core's
key_io valid/invalid sets. Every valid address pays its scriptPubKey on its own network(s) and is refused
elsewhere with a message naming where it belongs; everything invalid (WIF keys included) raises
AddressError and never any other exception type."""

from __future__ import annotations

from typing import Any

import pytest
from chain_vectors import load_vector
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.chain.address import AddressError, address_to_script, is_valid_address, script_to_address
from pithead.chain.params import MAINNET, NETWORKS, REGTEST, SIGNET, TESTNET, TESTNET4, Network
from pithead.chain.script import p2pkh_script, p2sh_script, witness_program_script

A: dict[str, Any] = load_vector("addresses.json")
ALL = list(NETWORKS.values())
TB_NETWORKS = [TESTNET, TESTNET4, SIGNET]  # share hrp tb and base58 prefixes 0x6f/0xc4

# Vector network/chain names → the networks on which the address pays.
_OWNERS: dict[str, list[Network]] = {
    "mainnet": [MAINNET],
    "main": [MAINNET],
    "testnet/signet": TB_NETWORKS,
    "testnet4": TB_NETWORKS,
    "signet": TB_NETWORKS,
    "test": TB_NETWORKS,
}


def owners(name: str, string: str) -> list[Network]:
    if name == "regtest":
        # bcrt1… is regtest only; base58 regtest addresses share testnet's version bytes.
        return [REGTEST] if string.lower().startswith("bcrt1") else [REGTEST, *TB_NETWORKS]
    nets = _OWNERS[name]
    if nets is TB_NETWORKS and not string.lower().startswith("tb1"):
        return [*TB_NETWORKS, REGTEST]  # m/n/2 base58 addresses are valid on regtest too
    return nets


def _valid_cases() -> list[tuple[str, str, list[Network]]]:
    out = []
    for v in A["bip350_segwit_addresses_valid"]["vectors"]:
        if v.get("valid_under_bip350", True):
            out.append((v["string"], v["scriptPubKey"], owners(v["network"], v["string"])))
    for v in A["core_key_io_valid"]["vectors"]:
        if not v["is_privkey"]:
            out.append((v["string"], v["scriptPubKey"], owners(v["chain"], v["string"])))
    return out


VALID = _valid_cases()
INVALID = (
    [v["string"] for v in A["bip350_segwit_addresses_invalid"]["vectors"]]
    + [v["string"] for v in A["bip350_segwit_addresses_valid"]["vectors"] if not v.get("valid_under_bip350", True)]
    + [v["string"] for v in A["core_key_io_invalid"]["vectors"]]
    + [bytes.fromhex(v["string_bytes_hex"]).decode("latin-1") if "string_bytes_hex" in v else v["string"]
       for v in A["bip173_bech32_strings_invalid"]["vectors"]]
    # Valid bech32 strings that are not addresses (no witness version/program, unknown hrp).
    + [v["string"] for v in A["bip173_bech32_strings_valid"]["vectors"]]
)
WIF = [v for v in A["core_key_io_valid"]["vectors"] if v["is_privkey"]]


def test_vector_coverage() -> None:
    kinds = {s[:4].lower() for s, _, _ in VALID}
    assert {"bc1q", "bc1p", "tb1q", "tb1p", "bcrt"} <= kinds
    assert any(s.startswith(("1", "3")) for s, _, _ in VALID)
    assert any(REGTEST in nets for _, _, nets in VALID)
    assert WIF and len(INVALID) > 50


@pytest.mark.parametrize(("address", "spk", "nets"), VALID, ids=[c[0][:24] for c in VALID])
def test_valid_address_pays_its_script_on_its_networks(address: str, spk: str, nets: list[Network]) -> None:
    for net in ALL:
        if net in nets:
            assert address_to_script(address, net).hex() == spk
            assert is_valid_address(address, net)
            # Upper case is the same address for bech32 (Core's try_case_flip); mixed case is not.
            if address.lower().startswith(net.bech32_hrp + "1"):
                assert address_to_script(address.swapcase() if address.isupper() else address.upper(), net).hex() == spk
            # And back: the script gives the canonical (lower-case bech32) form of the address.
            back = script_to_address(bytes.fromhex(spk), net)
            assert back is not None
            assert back == (address.lower() if address.lower().startswith(net.bech32_hrp + "1") else address)
        else:
            with pytest.raises(AddressError) as err:
                address_to_script(address, net)
            # Refused with a message naming the network it was checked against and where it belongs.
            msg = str(err.value)
            assert f"not {net.name}" in msg
            assert any(o.name in msg for o in nets)
            assert not is_valid_address(address, net)


@pytest.mark.parametrize("bad", INVALID, ids=range(len(INVALID)))
def test_invalid_strings_raise_address_error_on_every_network(bad: str) -> None:
    for net in ALL:
        with pytest.raises(AddressError):
            address_to_script(bad, net)
        assert not is_valid_address(bad, net)


@pytest.mark.parametrize("wif", WIF, ids=lambda v: v["string"][:10])
def test_wif_private_keys_are_not_payout_addresses(wif: dict[str, Any]) -> None:
    for net in ALL:
        with pytest.raises(AddressError, match="not an address"):
            address_to_script(wif["string"], net)


def test_mixed_case_and_whitespace_and_non_strings() -> None:
    good = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    assert address_to_script(good, MAINNET).hex() == "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    for bad in (good[:10] + good[10:].upper(), " " + good, good + "\n", "", "1" * 200):
        with pytest.raises(AddressError):
            address_to_script(bad, MAINNET)
    for not_str in (None, b"bc1q", 42):
        with pytest.raises(AddressError):
            address_to_script(not_str, MAINNET)  # type: ignore[arg-type]


def test_wrong_network_messages_name_both_sides() -> None:
    with pytest.raises(AddressError, match=r"belongs to test/testnet4/signet, not main"):
        address_to_script("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", MAINNET)
    with pytest.raises(AddressError, match=r"belongs to main, not regtest"):
        address_to_script("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", REGTEST)
    with pytest.raises(AddressError, match=r"belongs to regtest, not signet"):
        address_to_script("bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9", SIGNET)


def test_non_standard_scripts_have_no_address() -> None:
    assert script_to_address(bytes.fromhex("6a24aa21a9ed" + "00" * 32), MAINNET) is None
    assert script_to_address(b"", MAINNET) is None
    assert script_to_address(bytes.fromhex("0019" + "00" * 25), MAINNET) is None  # v0 needs 20 or 32 bytes


# --- round trips: script → address → script, for every standard template and network ----------------

_standard_scripts = st.one_of(
    st.binary(min_size=20, max_size=20).map(p2pkh_script),
    st.binary(min_size=20, max_size=20).map(p2sh_script),
    st.sampled_from([20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)).map(
        lambda p: witness_program_script(0, p)
    ),
    st.tuples(st.integers(1, 16), st.binary(min_size=2, max_size=40)).map(lambda t: witness_program_script(*t)),
)


@settings(max_examples=150, deadline=None)
@given(_standard_scripts, st.sampled_from(ALL))
def test_script_address_script_round_trip(script: bytes, net: Network) -> None:
    address = script_to_address(script, net)
    assert address is not None
    assert address_to_script(address, net) == script
    assert script_to_address(address_to_script(address, net), net) == address


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=100), st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l1bcrtQPZ", max_size=95)),
       st.sampled_from(ALL))
def test_random_strings_only_ever_raise_address_error(s: str, net: Network) -> None:
    try:
        script = address_to_script(s, net)
    except AddressError:
        return
    assert script_to_address(script, net) is not None

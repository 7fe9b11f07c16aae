"""The node's own anyone-can-spend scripts, and the one kind of script check the node performs.

The embedded node "owns" coins by paying them to scripts anyone can spend, so it never needs keys or a
signature engine. Each address the node hands out wraps a distinct inner script `<tag> OP_DROP OP_TRUE`
(the tag makes addresses distinct, the script always succeeds):

- legacy:  P2SH(inner)   — spent with scriptSig = push(inner)
- segwit:  P2WSH(inner)  — spent with an empty scriptSig and witness = [inner]  (BIP141)
- bare:    OP_TRUE       — spent with an empty scriptSig (no address; used for the genesis-era tests)

`check_spend` verifies only what can be verified without signatures: that a P2SH or P2WSH spend reveals
a script hashing to the output and, where that script is one of these anyone-can-spend shapes, that it is
spent the way above. Other output types are not checked (see consensus.py).
"""

from __future__ import annotations

from pithead.chain.hashes import hash160, sha256
from pithead.chain.script import OP_TRUE, p2sh_script, push_data, witness_program_script
from pithead.chain.tx import TxIn

OP_DROP = 0x75
BARE_OP_TRUE = bytes((OP_TRUE,))
TAG_SIZE = 4  # bytes of the per-address tag: 4 billion distinct addresses per node


class ScriptCheckError(ValueError):
    """A spend that reveals the wrong script (Core: mandatory-script-verify-flag-failed)."""


def inner_script(tag: int) -> bytes:
    """`<tag> OP_DROP OP_TRUE`: always succeeds, distinct per tag."""
    return push_data(tag.to_bytes(TAG_SIZE, "little")) + bytes((OP_DROP, OP_TRUE))


def is_anyone_can_spend(script: bytes) -> bool:
    return script == BARE_OP_TRUE or (
        len(script) == TAG_SIZE + 3 and script[0] == TAG_SIZE and script[-2:] == bytes((OP_DROP, OP_TRUE))
    )


def p2sh_of(inner: bytes) -> bytes:
    return p2sh_script(hash160(inner))


def p2wsh_of(inner: bytes) -> bytes:
    return witness_program_script(0, sha256(inner))


def legacy_spend(inner: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """(scriptSig, witness) spending P2SH(inner)."""
    return push_data(inner), ()


def segwit_spend(inner: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """(scriptSig, witness) spending P2WSH(inner)."""
    return b"", (inner,)


def _last_push(script_sig: bytes) -> bytes | None:
    """The data of a scriptSig made of exactly one push, else None."""
    if not script_sig:
        return None
    op = script_sig[0]
    if 1 <= op <= 75 and len(script_sig) == 1 + op:
        return script_sig[1:]
    if op == 0x4C and len(script_sig) >= 2 and len(script_sig) == 2 + script_sig[1]:
        return script_sig[2:]
    return None


def check_spend(spent_script: bytes, txin: TxIn) -> None:
    """Raise ScriptCheckError when `txin` visibly fails to spend `spent_script`."""
    if spent_script == BARE_OP_TRUE:
        if txin.witness:
            raise ScriptCheckError("witness on a non-witness spend")
        return
    if len(spent_script) == 23 and spent_script[:2] == b"\xa9\x14" and spent_script[22] == 0x87:
        redeem = _last_push(txin.script_sig)
        if redeem is None or hash160(redeem) != spent_script[2:22]:
            # Only a single push is checked; multi-push P2SH spends (multisig) are not ours to judge.
            if redeem is not None or not txin.script_sig:
                raise ScriptCheckError("P2SH spend does not reveal the script of the output")
            return
        if is_anyone_can_spend(redeem) and txin.witness:
            raise ScriptCheckError("witness on a non-witness spend")
        return
    if len(spent_script) == 34 and spent_script[:2] == b"\x00\x20":
        if txin.script_sig:
            raise ScriptCheckError("scriptSig on a native witness spend")
        if not txin.witness or sha256(txin.witness[-1]) != spent_script[2:]:
            raise ScriptCheckError("P2WSH spend does not reveal the script of the output")
        return
    # P2PKH, P2WPKH, P2TR, bare multisig...: signatures are not checked by this node.

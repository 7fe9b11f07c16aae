"""BIP325 signet block solutions, as far as the embedded node checks them: pure, no I/O.

A signet block must carry a witness commitment (BIP141) in its coinbase; its solution, when it has one, is a
push in that same output's script starting with SIGNET_HEADER, holding the serialized scriptSig and witness
stack that satisfy the network's challenge (Core: src/signet.cpp, SignetTxs::Create and
CheckSignetBlockSolution). A block without the section has an empty solution, which is how a signet whose
challenge is OP_TRUE (`51`) is mined with no signature at all.

What it is not: a script interpreter. The embedded node runs a signet only with the OP_TRUE challenge
(SUPPORTED_CHALLENGES) and accepts only an empty solution to it (no section, or a section with an empty
scriptSig and witness), which is what Core accepts from a miner that does not sign. A signet whose
challenge needs a signature is refused when the node starts, never half-checked.
"""

from __future__ import annotations

from pithead.chain.block import Block
from pithead.chain.errors import ChainError
from pithead.chain.script import OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4, OP_TRUE
from pithead.chain.varint import decode_varint
from pithead.chain.witness import MIN_COMMITMENT_SCRIPT_LEN, WITNESS_COMMITMENT_HEADER
from pithead.node.consensus import BlockInvalid

SIGNET_HEADER = bytes.fromhex("ecc7daa2")  # BIP325 / Core's SIGNET_HEADER: the solution push's first bytes
OP_TRUE_CHALLENGE = bytes((OP_TRUE,))
SUPPORTED_CHALLENGES = (OP_TRUE_CHALLENGE,)
BAD_SOLUTION = "bad-signet-blksig"  # Core's reject reason for a block whose solution fails


def script_pushes(script: bytes) -> list[bytes]:
    """The data of each push of a script made only of pushes (a witness commitment output after its
    OP_RETURN); raises ChainError on an opcode that is not a push or a push that runs past the end."""
    out: list[bytes] = []
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if op < OP_PUSHDATA1:
            n = op
        elif op == OP_PUSHDATA1:
            n, i = int.from_bytes(script[i : i + 1], "little"), i + 1
        elif op == OP_PUSHDATA2:
            n, i = int.from_bytes(script[i : i + 2], "little"), i + 2
        elif op == OP_PUSHDATA4:
            n, i = int.from_bytes(script[i : i + 4], "little"), i + 4
        else:
            raise ChainError(f"opcode 0x{op:02x} is not a push")
        if i + n > len(script):
            raise ChainError("push runs past the end of the script")
        out.append(script[i : i + n])
        i += n
    return out


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, used = decode_varint(data[pos:])
    pos += used
    if pos + n > len(data):
        raise ChainError("solution field runs past its end")
    return data[pos : pos + n], pos + n


def signet_solution(block: Block) -> tuple[bytes, tuple[bytes, ...]]:
    """(scriptSig, witness stack) of the block's signet solution; both empty when it has no section.
    Raises BlockInvalid (BAD_SOLUTION) for a block without a witness commitment or a malformed section."""
    coinbase = block.txs[0]
    commitment = None
    for out in coinbase.outputs:  # the last matching output, as Core's GetWitnessCommitmentIndex
        spk = out.script_pubkey
        if len(spk) >= MIN_COMMITMENT_SCRIPT_LEN and spk[:6] == b"\x6a\x24" + WITNESS_COMMITMENT_HEADER:
            commitment = spk
    if commitment is None:
        raise BlockInvalid(BAD_SOLUTION, "signet block without a witness commitment")
    try:
        pushes = script_pushes(commitment[1:])  # after OP_RETURN
    except ChainError as exc:
        raise BlockInvalid(BAD_SOLUTION, f"witness commitment output: {exc}") from exc
    section = next((p[len(SIGNET_HEADER) :] for p in pushes if p[: len(SIGNET_HEADER)] == SIGNET_HEADER), None)
    if section is None:
        return b"", ()
    try:
        script_sig, pos = _read_bytes(section, 0)
        count, used = decode_varint(section[pos:])
        pos += used
        stack: list[bytes] = []
        for _ in range(count):
            item, pos = _read_bytes(section, pos)
            stack.append(item)
    except ChainError as exc:
        raise BlockInvalid(BAD_SOLUTION, f"signet solution does not parse: {exc}") from exc
    if pos != len(section):
        raise BlockInvalid(BAD_SOLUTION, "signet solution has extra bytes")
    return script_sig, tuple(stack)


def check_signet_solution(block: Block, challenge: bytes) -> None:
    """Raise BlockInvalid unless the block's solution satisfies `challenge` (one of SUPPORTED_CHALLENGES)."""
    if challenge not in SUPPORTED_CHALLENGES:
        raise ValueError(f"challenge {challenge.hex()} is not one the embedded node can check")
    script_sig, witness = signet_solution(block)
    if script_sig or witness:  # OP_TRUE needs nothing; the node evaluates no script
        raise BlockInvalid(BAD_SOLUTION, "the OP_TRUE challenge takes an empty solution")

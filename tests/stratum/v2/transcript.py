"""pithead's own Noise handshake transcript, made deterministic (fixed keys and fixed randomness for the
ElligatorSwift encodings and the certificate signature), kept as a regression vector in
tests/vectors/sv2/handshake_transcript.json. No public fixed transcript exists (SRI and sv2-tp test only
random round trips), so this pins *our* bytes: any change to the handshake, the key schedule, the
nonces or the chunking shows up as a diff. Its correctness rests on the tests beside it (both roles agree,
the BIP324/BIP340 vectors, the notes' constants).

Regenerate (only after a deliberate change, and say why in the commit):
    .venv/bin/python tests/stratum/v2/transcript.py > tests/vectors/sv2/handshake_transcript.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `pithead` and the test helpers importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from pithead.stratum.v2 import cert, noise, secp256k1
from pithead.stratum.v2.framing import Frame
from pithead.stratum.v2.messages.base import Message
from pithead.stratum.v2.messages.common import MiningSetupFlags, SetupConnection, SetupConnectionSuccess
from pithead.stratum.v2.messages.mining import (
    NewExtendedMiningJob,
    NewMiningJob,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    SetNewPrevHash,
    SubmitSharesStandard,
    SubmitSharesSuccess,
)
from pithead.stratum.v2.messages.registry import encode_frame
from pithead.stratum.v2.types import u256_from_int

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
VALIDITY = 3600


def _key(label: str) -> bytes:
    """A fixed 32-byte value named by its label (all below the group order)."""
    return hashlib.sha256(b"pithead sv2 transcript: " + label.encode()).digest()


INPUTS = {
    "authority_secret": _key("authority secret"),
    "initiator_ephemeral_secret": _key("initiator ephemeral secret"),
    "initiator_ephemeral_aux": _key("initiator ephemeral ellswift aux"),
    "responder_static_secret": _key("responder static secret"),
    "responder_static_aux": _key("responder static ellswift aux"),
    "responder_ephemeral_secret": _key("responder ephemeral secret"),
    "responder_ephemeral_aux": _key("responder ephemeral ellswift aux"),
    "certificate_aux": _key("certificate bip340 aux"),
}

CLIENT_MESSAGES: list[Message] = [
    SetupConnection(0, 2, 2, MiningSetupFlags.REQUIRES_VERSION_ROLLING, "127.0.0.1", 3336, "pithead", "cpu",
                    "0.1.0", ""),
    OpenStandardMiningChannel(1, "bcrt1qexample.rig1", 1.0e6, u256_from_int((1 << 256) - 1)),
    SubmitSharesStandard(1, 0, 1, 0xDEADBEEF, NOW + 1, 0x20000000),
]
SERVER_MESSAGES: list[Message] = [
    SetupConnectionSuccess(2, 0),
    OpenStandardMiningChannelSuccess(1, 1, u256_from_int(0xFFFF << 208), b"\x00\x00\x00\x01", 0),
    NewMiningJob(1, 1, None, 0x20000000, bytes(range(32))),
    SetNewPrevHash(1, 1, bytes(range(32, 64)), NOW, 0x207FFFFF),
    SubmitSharesSuccess(1, 0, 1, 1),
]
LARGE = NewExtendedMiningJob(1, 2, None, 0x20000000, True, (bytes(32),) * 12, b"\xaa" * 65_535, b"\xbb" * 9_000)
"""A job whose payload (74 938 bytes) takes two encrypted chunks."""


def build() -> dict[str, Any]:
    """Run the handshake and a short session with the fixed inputs; every byte that crossed the wire."""
    i = INPUTS
    static_key = secp256k1.xonly_public(i["responder_static_secret"])
    certificate = cert.issue(i["authority_secret"], static_key, NOW, NOW + VALIDITY, i["certificate_aux"])
    responder = noise.Responder(i["responder_static_secret"], certificate, static_aux=i["responder_static_aux"],
                                ephemeral_secret=i["responder_ephemeral_secret"],
                                ephemeral_aux=i["responder_ephemeral_aux"], max_payload=1 << 20)
    initiator = noise.Initiator(secp256k1.xonly_public(i["authority_secret"]),
                                ephemeral_secret=i["initiator_ephemeral_secret"],
                                ephemeral_aux=i["initiator_ephemeral_aux"], max_payload=1 << 20)
    act1 = initiator.start()
    server_step = responder.feed(act1)
    client_step = initiator.feed(server_step.send, NOW + 1)
    client, server = client_step.transport, server_step.transport
    assert client is not None and server is not None
    frames = []
    for sender, receiver, direction, messages in ((client, server, "client->server", CLIENT_MESSAGES),
                                                  (server, client, "server->client", SERVER_MESSAGES)):
        for message in messages:
            plaintext = encode_frame(message)
            wire = sender.encrypt(plaintext)
            (frame,) = receiver.feed(wire)
            assert frame.encode() == plaintext
            frames.append({"direction": direction, "message": message.NAME, "plaintext": plaintext.hex(),
                           "wire": wire.hex()})
    plaintext = encode_frame(LARGE)
    wire = server.encrypt(plaintext)
    (frame,) = client.feed(wire)
    assert isinstance(frame, Frame) and frame.encode() == plaintext
    return {
        "_about": __doc__.split("\n\n")[0].replace("\n", " "),
        "protocol_name": noise.PROTOCOL_NAME.decode(),
        "now": NOW + 1,
        "inputs": {k: v.hex() for k, v in i.items()},
        "authority_public_key": cert.encode_public_key(secp256k1.xonly_public(i["authority_secret"])),
        "certificate": certificate.encode().hex(),
        "act1": act1.hex(),
        "act2": server_step.send.hex(),
        "handshake_hash": client.handshake_hash.hex(),
        "frames": frames,
        "large_frame": {"message": LARGE.NAME, "payload_length": len(plaintext) - 6, "wire_length": len(wire),
                        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
                        "wire_sha256": hashlib.sha256(wire).hexdigest()},
    }


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=1)
    sys.stdout.write("\n")

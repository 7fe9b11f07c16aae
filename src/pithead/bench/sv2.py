"""`pithead bench sv2`: speed of Stratum V2's wire layer on the messages a pool and a miner exchange most.

Figures printed (each measured for about `--seconds`, single thread, CPython):
  * encode+decode/s of each hot message's payload — SubmitSharesStandard, SubmitSharesExtended,
    SubmitShares.Success, NewMiningJob (future and active), SetTarget, SetNewPrevHash: one `encode()` and
    one `decode()` per count;
  * frame round trips/s of a share through the whole plaintext path — `encode_frame`, `FrameReader.feed`,
    `decode_frame` — and through the encrypted path — `NoiseTransport.encrypt`, `feed` and `decode_frame`;
  * Noise NX handshakes/s, both roles in one process (so a server alone does roughly twice as many):
    the ElligatorSwift ECDHs, the certificate signature and its check.

It never asserts anything: it prints. The V1 ↔ V2 comparison against the live pool (handshakes and shares
judged per CPU-second of the pool, bytes per share on the wire) is `pithead bench stratum`'s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pithead.stratum.v2 import noise, secp256k1
from pithead.stratum.v2.framing import MAX_PAYLOAD, FrameReader
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.mining import (
    NewMiningJob,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.types import u256_from_int

DEFAULT_SECONDS = 1.0  # per figure: long enough to be stable to a few percent, short enough for CI
_BATCH = 1_000  # calls between clock reads, so the clock is not what we measure
_NOW = 1_767_225_600


def _rate(fn: Callable[[int], object], seconds: float, batch: int = _BATCH) -> float:
    """Calls per second of fn(i), i counting up, over at least `seconds`."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(done, done + batch):
            fn(i)
        done += batch
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def _round_trip(message: Message) -> Callable[[int], object]:
    cls = type(message)

    def run(i: int) -> object:
        return cls.decode(message.encode())

    return run


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pithead bench sv2", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="time per figure")
    args = parser.parse_args(argv)

    root = bytes(range(32))
    share = SubmitSharesStandard(7, 1, 42, 0xDEADBEEF, _NOW, 0x20000000)
    messages: list[tuple[str, Message]] = [
        ("SubmitSharesStandard", share),
        ("SubmitSharesExtended (8-byte extranonce)", SubmitSharesExtended(7, 1, 42, 0xDEADBEEF, _NOW, 0x20000000,
                                                                          b"\x01" * 8)),
        ("SubmitShares.Success", SubmitSharesSuccess(7, 1, 10, 10_240)),
        ("NewMiningJob (future)", NewMiningJob(7, 43, None, 0x20000000, root)),
        ("NewMiningJob (active)", NewMiningJob(7, 43, _NOW, 0x20000000, root)),
        ("SetTarget", SetTarget(7, u256_from_int(0xFFFF << 200))),
        ("SetNewPrevHash", SetNewPrevHash(7, 43, root, _NOW, 0x1703A30C)),
    ]

    reader = FrameReader(MAX_PAYLOAD)

    def plain_frame(i: int) -> object:
        (frame,) = reader.feed(encode_frame(share))
        return decode_frame(frame, protocol=Subprotocol.MINING)

    authority = secp256k1.new_secret()
    authority_key = secp256k1.xonly_public(authority)

    def handshake(i: int) -> object:
        responder = noise.Responder.for_connection(authority, _NOW)
        initiator = noise.Initiator(authority_key)
        return initiator.feed(responder.feed(initiator.start()).send, _NOW)

    responder = noise.Responder.for_connection(authority, _NOW)
    initiator = noise.Initiator(authority_key)
    server_step = responder.feed(initiator.start())
    client_step = initiator.feed(server_step.send, _NOW)
    assert client_step.transport is not None and server_step.transport is not None
    sender, receiver = client_step.transport, server_step.transport
    wire_share = encode_frame(share)

    def encrypted_frame(i: int) -> object:
        (frame,) = receiver.feed(sender.encrypt(wire_share))
        return decode_frame(frame, protocol=Subprotocol.MINING)

    print(f"pithead bench sv2: {args.seconds:g} s per figure")
    for label, message in messages:
        print(f"  {'encode+decode/s ' + label:<64} {_rate(_round_trip(message), args.seconds):>14,.0f}")
    print(f"  {'share frame round trips/s, plaintext (frame + reader + registry)':<64} "
          f"{_rate(plain_frame, args.seconds):>14,.0f}")
    print(f"  {'share frame round trips/s, encrypted (Noise transport, 62 B)':<64} "
          f"{_rate(encrypted_frame, args.seconds):>14,.0f}")
    print(f"  {'Noise NX handshakes/s (both roles, certificate signed + checked)':<64} "
          f"{_rate(handshake, args.seconds, batch=10):>14,.0f}")

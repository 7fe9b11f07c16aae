"""Test helpers for the SV2 pool and miner tables: a job book on a regtest-shaped template, the pool side of
connections over it (sans-IO, a real Noise handshake), a peer that speaks for the miner through the real
transport, and nonce search for the shares the tests submit."""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import dataclass, field

from pithead.chain.compact import difficulty_to_target
from pithead.chain.hashes import sha256d
from pithead.chain.merkle import fold_branch
from pithead.chain.params import REGTEST
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.extranonce import ExtranonceAllocator
from pithead.stratum.server.v2 import BookFeed
from pithead.stratum.v1.jobs import JobBook
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v2 import noise, secp256k1
from pithead.stratum.v2.channels import ChannelWorker
from pithead.stratum.v2.messages.base import Message, Subprotocol
from pithead.stratum.v2.messages.common import MiningSetupFlags, SetupConnection
from pithead.stratum.v2.messages.mining import (
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenStandardMiningChannel,
    SetNewPrevHash,
)
from pithead.stratum.v2.messages.registry import decode_frame, encode_frame
from pithead.stratum.v2.pool import (
    ChannelRules,
    ConnectionEvent,
    IdentityRefused,
    PoolConnection,
    pool_responder,
)
from pithead.stratum.v2.types import u256_from_int
from stratum.helpers import SOLO_ADDRESS, regtest_template, solo_script

NOW = 1_700_000_000.0
HARD = 0x1D00FFFF  # difficulty-1 network target: tiny-difficulty shares are not blocks
EASY_DIFFICULTY = 1e-9  # target ~2^254: about every fourth hash is a share
EVERYTHING = u256_from_int((1 << 256) - 1)  # a max_target that leaves the pool free
USER = SOLO_ADDRESS + ".sv2"


def setup_connection(flags: int = MiningSetupFlags.REQUIRES_VERSION_ROLLING, protocol: int = 0) -> SetupConnection:
    return SetupConnection(protocol, 2, 2, int(flags), "127.0.0.1", 3336, "pithead-tests", "cpu", "t", "")


def open_standard(request_id: int = 1, user: str = USER, hashrate: float = 0.0,
                  max_target: bytes = EVERYTHING) -> OpenStandardMiningChannel:
    return OpenStandardMiningChannel(request_id, user, hashrate, max_target)


def open_extended(request_id: int = 1, user: str = USER, hashrate: float = 0.0, max_target: bytes = EVERYTHING,
                  min_extranonce_size: int = 0) -> OpenExtendedMiningChannel:
    return OpenExtendedMiningChannel(request_id, user, hashrate, max_target, min_extranonce_size)


@dataclass
class Pool:
    """A job book (solo mode, or pool mode paying SOLO_ADDRESS's script), an allocator and the rules."""

    mode: str = "solo"
    bits: int = HARD
    start_difficulty: float = EASY_DIFFICULTY
    with_template: bool = True
    max_channels: int = 256
    vardiff: VarDiffConfig = field(default_factory=lambda: VarDiffConfig(10.0, 1e-12, 1e9))

    def __post_init__(self) -> None:
        self.book = JobBook(mode=self.mode, pool_script=solo_script() if self.mode == "pool" else None)  # type: ignore[arg-type]
        self.height = 101
        if self.with_template:
            self.new_block()
        self.allocator = ExtranonceAllocator()
        self.authority = secp256k1.new_secret()
        self.authority_key = secp256k1.xonly_public(self.authority)
        v1_rules = PoolRules(mode=self.mode, network=REGTEST)

        def authorize(user: str) -> ChannelWorker:
            try:
                worker, _ = v1_rules.authorize(user, None)
            except Exception as exc:
                raise IdentityRefused(str(exc)) from None
            return worker

        self.rules = ChannelRules(authorize=authorize, vardiff=self.vardiff, start_difficulty=self.start_difficulty,
                                  extranonce2_size=self.book.extranonce2_size, max_channels=self.max_channels)
        self.feed = BookFeed(self.book)
        self.channel_ids = itertools.count(1)

    def new_block(self) -> None:
        """A template on a new tip."""
        self.height += 1
        self.book.new_template(regtest_template(bits=self.bits, height=self.height), True, ntime=int(NOW))

    def refresh(self) -> None:
        """A template on the same tip (new transactions)."""
        self.book.new_template(regtest_template(bits=self.bits, height=self.height, n_txs=5), False,
                               ntime=int(NOW))

    def connect(self, now: float = NOW) -> Peer:
        """A connection with its handshake done (its Act 2 already read by the peer)."""
        conn = PoolConnection(self.rules, self.feed, self.allocator,
                              pool_responder(self.authority, int(now)), now,
                              next_channel_id=lambda: next(self.channel_ids), remote="127.0.0.1")
        initiator = noise.Initiator(self.authority_key)
        assert conn.receive(initiator.start(), now) == []
        step = initiator.feed(conn.data_to_send(), now)
        assert step.transport is not None
        return Peer(conn, step.transport)


@dataclass
class Peer:
    """The miner's side of one connection: messages in through the real transport, replies decoded."""

    conn: PoolConnection
    transport: noise.NoiseTransport

    def send(self, *messages: Message, now: float = NOW) -> tuple[list[ConnectionEvent], list[Message]]:
        return self.send_raw(b"".join(self.transport.encrypt(encode_frame(m)) for m in messages), now)

    def send_raw(self, data: bytes, now: float = NOW) -> tuple[list[ConnectionEvent], list[Message]]:
        events = self.conn.receive(data, now)
        return events, self.replies()

    def replies(self) -> list[Message]:
        return [decode_frame(f, protocol=Subprotocol.MINING)[0] for f in self.transport.feed(self.conn.data_to_send())]

    def set_up(self, flags: int = MiningSetupFlags.REQUIRES_VERSION_ROLLING) -> None:
        _, out = self.send(setup_connection(flags))
        assert [type(m).__name__ for m in out] == ["SetupConnectionSuccess"], out


def header76(version: int, prev_hash: bytes, root: bytes, ntime: int, nbits: int) -> bytes:
    return struct.pack("<I32s32sII", version, prev_hash, root, ntime, nbits)


def extended_root(job: NewExtendedMiningJob, prefix: bytes, extranonce: bytes) -> bytes:
    return fold_branch(sha256d(job.coinbase_tx_prefix + prefix + extranonce + job.coinbase_tx_suffix), job.merkle_path)


def nonces(header: bytes, target: int, *, meeting: bool = True, count: int = 1, start: int = 0) -> list[int]:
    """Nonces whose hash meets `target` (or, with meeting=False, misses it), from `start`."""
    out = []
    for n in range(start, start + (1 << 24)):
        h = int.from_bytes(hashlib.sha256(hashlib.sha256(header + n.to_bytes(4, "little")).digest()).digest(), "little")
        if (h <= target) is meeting:
            out.append(n)
            if len(out) == count:
                return out
    raise AssertionError("no such nonce in 2^24")


@dataclass(frozen=True)
class Mined:
    """What a test needs to submit on a standard job: its id, version, ntime and the header prefix."""

    job_id: int
    version: int
    ntime: int
    header: bytes


def standard_work(job: NewMiningJob, prev: SetNewPrevHash) -> Mined:
    return Mined(job.job_id, job.version, prev.min_ntime,
                 header76(job.version, prev.prev_hash, job.merkle_root, prev.min_ntime, prev.nbits))


def share_target(difficulty: float = EASY_DIFFICULTY) -> int:
    return difficulty_to_target(difficulty)

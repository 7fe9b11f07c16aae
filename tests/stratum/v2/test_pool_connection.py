"""The pool side of SV2, sans-IO, through the real handshake and transport: setup and opening (and every
refusal), how each channel kind gets its work (future job + SetNewPrevHash, the merkle root of a
standard channel, the coinbase halves of an extended one, the BIP323 bits cleared), shares judged by the
share check with the spec's codes, batched acknowledgements, targets and vardiff, UpdateChannel,
CloseChannel, another connection's channel id, the ban score, extranonces freed once."""

from __future__ import annotations

import math
from collections.abc import MutableSet
from dataclasses import replace

import pytest

from pithead.chain.compact import DIFF1_TARGET, difficulty_to_target
from pithead.chain.hashes import sha256d
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.v2 import BookFeed
from pithead.stratum.share import RejectReason, ShareKey
from pithead.stratum.v1.jobs import IssuedJob, JobBook
from pithead.stratum.v2 import noise
from pithead.stratum.v2.channels import SHARE_BATCH_SIZE, BlockSolved, ChannelKind, ShareJudgement
from pithead.stratum.v2.framing import encode_header
from pithead.stratum.v2.messages.base import Message
from pithead.stratum.v2.messages.common import MiningSetupFlags, SetupConnection
from pithead.stratum.v2.messages.mining import (
    CloseChannel,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannelSuccess,
    OpenStandardMiningChannelSuccess,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
)
from pithead.stratum.v2.messages.registry import encode_frame
from pithead.stratum.v2.pool import BAN_SCORE, ConnectionState, HangUp, PoolConnection, pool_responder
from pithead.stratum.v2.types import int_from_u256, u256_from_int
from pithead.stratum.version import BIP323_MASK
from stratum.helpers import POOL_ADDRESS
from stratum.v2.harness import (
    EASY_DIFFICULTY,
    NOW,
    USER,
    Mined,
    Peer,
    Pool,
    extended_root,
    header76,
    nonces,
    open_extended,
    open_standard,
    setup_connection,
    share_target,
    standard_work,
)

REGTEST_BITS = 0x207FFFFF


def names(out: list[Message]) -> list[str]:
    return [m.NAME for m in out]


def standard(pool: Pool, **kw: object) -> tuple[Peer, OpenStandardMiningChannelSuccess, Mined]:
    peer = pool.connect()
    peer.set_up()
    _, out = peer.send(open_standard(**kw))  # type: ignore[arg-type]
    ok, job, prev = out
    assert isinstance(ok, OpenStandardMiningChannelSuccess) and isinstance(job, NewMiningJob)
    assert isinstance(prev, SetNewPrevHash)
    return peer, ok, standard_work(job, prev)


def submit(peer: Peer, cid: int, work: Mined, nonce: int, seq: int = 1, version: int | None = None,
           ntime: int | None = None) -> tuple[list, list[Message]]:
    return peer.send(SubmitSharesStandard(cid, seq, work.job_id, nonce, work.ntime if ntime is None else ntime,
                                          work.version if version is None else version))


# --- setup ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("setup", "flags", "code"), [
    (setup_connection(protocol=1), 0, "unsupported-protocol"),
    (SetupConnection(0, 3, 4, 0, "", 0, "v", "", "", ""), 0, "protocol-version-mismatch"),
    (setup_connection(MiningSetupFlags.REQUIRES_WORK_SELECTION | 1 << 10), 2 | 1 << 10, "unsupported-feature-flags"),
])
def test_a_refused_setup_is_answered_then_hung_up(setup: SetupConnection, flags: int, code: str) -> None:
    peer = Pool().connect()
    events, out = peer.send(setup)
    assert names(out) == ["SetupConnection.Error"]
    assert out[0].flags == flags and out[0].error_code == code  # type: ignore[attr-defined]
    assert len(events) == 1 and isinstance(events[0], HangUp) and not events[0].ban
    assert peer.conn.state is ConnectionState.CLOSED


def test_standard_jobs_and_version_rolling_are_the_flags_taken() -> None:
    peer = Pool().connect()
    _, out = peer.send(setup_connection(MiningSetupFlags.REQUIRES_STANDARD_JOBS | MiningSetupFlags.REQUIRES_VERSION_ROLLING))
    assert names(out) == ["SetupConnection.Success"] and out[0].flags == 0  # type: ignore[attr-defined]


# --- opening channels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "code"), [
    (open_standard(user="not-an-address.w"), "invalid-user-identity"),
    (open_standard(max_target=bytes(32)), "max-target-out-of-range"),
    (open_standard(hashrate=-1.0), "invalid-nominal-hashrate"),
    (open_standard(hashrate=math.nan), "invalid-nominal-hashrate"),
    (open_extended(min_extranonce_size=5), "min-extranonce-size-too-large"),
])
def test_a_refused_channel_is_answered_and_the_connection_goes_on(message: Message, code: str) -> None:
    pool = Pool()
    peer = pool.connect()
    peer.set_up()
    events, out = peer.send(message)
    assert names(out) == ["OpenMiningChannel.Error"] and out[0].error_code == code  # type: ignore[attr-defined]
    assert events == [] and peer.conn.state is ConnectionState.SET_UP and len(pool.allocator) == 0
    _, out = peer.send(open_standard(request_id=2))  # a good one still opens
    assert names(out)[0] == "OpenStandardMiningChannel.Success"


def test_no_extended_channel_on_a_connection_that_required_standard_jobs() -> None:
    peer = Pool().connect()
    peer.set_up(MiningSetupFlags.REQUIRES_STANDARD_JOBS)
    _, out = peer.send(open_extended())
    assert out[0].error_code == "extended-channels-not-supported-for-standard-jobs"  # type: ignore[attr-defined]


def test_channels_per_connection_are_bounded() -> None:
    peer = Pool(max_channels=2).connect()
    peer.set_up()
    _, out = peer.send(open_standard(1), open_standard(2), open_standard(3))
    assert [m.NAME for m in out if "Channel" in m.NAME] == [
        "OpenStandardMiningChannel.Success", "OpenStandardMiningChannel.Success", "OpenMiningChannel.Error"]
    assert out[-1].error_code == "too-many-channels"  # type: ignore[attr-defined]


def test_an_all_ff_max_target_suits_a_pool_whose_hardest_target_is_capped() -> None:
    """A pool whose difficulties are all below 2^-32 (the bench's 1e-12) has share targets capped at
    2^256-1: a client leaving the target free (max_target all 0xff) must get its channel, although
    DIFF1 / (2^256-1) is a larger difficulty than the pool's maximum. (Compared as difficulties, it was
    refused with max-target-out-of-range.)"""
    pool = Pool(start_difficulty=1e-12, vardiff=VarDiffConfig(10.0, 1e-12, 1e-12))
    _, ok, _ = standard(pool)
    assert int_from_u256(ok.target) == (1 << 256) - 1
    peer = pool.connect()
    peer.set_up()
    _, out = peer.send(open_standard(max_target=u256_from_int(1 << 255)))  # a harder target than any it has
    assert out[0].error_code == "max-target-out-of-range"  # type: ignore[attr-defined]


def test_the_nominal_hashrate_is_the_starting_difficulty_and_max_target_its_floor() -> None:
    pool = Pool(start_difficulty=1.0)
    # 2^32 H/s at one share per 10 s: difficulty 10
    _, ok, _ = standard(pool, hashrate=float(2**32))
    assert int_from_u256(ok.target) == difficulty_to_target(10.0)
    # a max_target of difficulty 500 lifts the pool's start difficulty 1 to 500
    _, ok, _ = standard(pool, max_target=u256_from_int(difficulty_to_target(500.0)))
    assert int_from_u256(ok.target) == difficulty_to_target(500.0)


# --- work -------------------------------------------------------------------------------------------------


def test_a_standard_channel_gets_the_merkle_root_of_its_own_whole_extranonce() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    issued = pool.book.job_for(peer.conn.channels[ok.channel_id].worker.payout_script)
    assert issued is not None
    job = issued.job
    assert len(ok.extranonce_prefix) == 8 and ok.extranonce_prefix[4:] == bytes(4)  # extranonce1 ‖ fixed zeros
    assert ok.group_channel_id == 0
    version = job.version & ~BIP323_MASK  # the rollable bits go out as zeros
    assert work.version == version
    assert work.header[36:68] == job.merkle_root(ok.extranonce_prefix[:4], ok.extranonce_prefix[4:])
    assert work.header[4:36] == job.prev_hash  # raw header order, not the RPC's display order
    assert work.ntime == int(NOW)


def test_an_extended_channel_gets_the_coinbase_halves_and_the_merkle_path() -> None:
    pool = Pool()
    peer = pool.connect()
    peer.set_up()
    _, out = peer.send(open_extended(min_extranonce_size=4))
    ok, job, prev = out
    assert isinstance(ok, OpenExtendedMiningChannelSuccess) and isinstance(job, NewExtendedMiningJob)
    assert isinstance(prev, SetNewPrevHash)
    issued = pool.book.job_for(peer.conn.channels[ok.channel_id].worker.payout_script)
    assert issued is not None
    assert len(ok.extranonce_prefix) == 4 and ok.extranonce_size == 4
    assert job.min_ntime is None and prev.job_id == job.job_id  # a future job, activated at once
    assert job.coinbase_tx_prefix == issued.job.coinbase.coinb1 and job.coinbase_tx_suffix == issued.job.coinbase.coinb2
    assert job.merkle_path == issued.job.branch and len(job.merkle_path) == 2  # three transactions
    assert job.version_rolling_allowed and job.version == issued.job.version & ~BIP323_MASK
    # the client's header is the pool's for the same extranonce
    en2 = b"\x01\x02\x03\x04"
    assert extended_root(job, ok.extranonce_prefix, en2) == issued.job.merkle_root(ok.extranonce_prefix, en2)


def test_a_new_block_is_a_future_job_and_setnewprevhash_a_refresh_an_active_job() -> None:
    pool = Pool()
    peer, _ok, first = standard(pool)
    pool.refresh()
    peer.conn.push_work(NOW)
    out = peer.replies()
    assert names(out) == ["NewMiningJob"] and out[0].min_ntime == int(NOW)  # type: ignore[attr-defined]
    assert out[0].job_id != first.job_id  # type: ignore[attr-defined]
    pool.new_block()
    peer.conn.push_work(NOW)
    out = peer.replies()
    assert names(out) == ["NewMiningJob", "SetNewPrevHash"] and out[0].min_ntime is None  # type: ignore[attr-defined]
    assert out[1].job_id == out[0].job_id  # type: ignore[attr-defined]


def test_a_channel_is_not_sent_a_job_it_already_has() -> None:
    """push_work with no new job (a farm proxy pushes whenever any of its upstream connections has one):
    nothing is sent again."""
    pool = Pool()
    peer, _ok, _first = standard(pool)
    peer.conn.push_work(NOW)
    assert peer.replies() == []
    pool.refresh()
    peer.conn.push_work(NOW)
    assert names(peer.replies()) == ["NewMiningJob"]


class _CappedFeed:
    """The pool's feed with every job carrying a difficulty ceiling (as a farm proxy's relayed jobs do)."""

    def __init__(self, feed: object, ceiling: float) -> None:
        self.feed = feed
        self.ceiling = ceiling

    def current(self, payout_script: bytes | None, extranonce1: bytes | None = None) -> object:
        book = self.feed.current(payout_script, extranonce1)  # type: ignore[attr-defined]
        return None if book is None else replace(book, max_difficulty=self.ceiling)

    def __getattr__(self, name: str) -> object:
        return getattr(self.feed, name)


def test_a_job_with_a_ceiling_brings_the_channel_down_to_it_first() -> None:
    pool = Pool(start_difficulty=1e-6)
    pool.feed = _CappedFeed(pool.feed, 1e-8)  # type: ignore[assignment]
    peer = pool.connect()
    peer.set_up()
    _, out = peer.send(open_standard())
    assert names(out) == ["OpenStandardMiningChannel.Success", "SetTarget", "NewMiningJob", "SetNewPrevHash"], out
    assert int_from_u256(out[1].maximum_target) == difficulty_to_target(1e-8)  # type: ignore[attr-defined]
    pool.refresh()
    peer.conn.push_work(NOW)
    assert names(peer.replies()) == ["NewMiningJob"]  # already at the ceiling: no SetTarget again


# --- shares -------------------------------------------------------------------------------------------------


def test_shares_are_judged_with_the_specs_codes() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    cid = ok.channel_id
    target = share_target()
    good, other = nonces(work.header, target, count=2)
    (bad,) = nonces(work.header, target, meeting=False)
    events, out = submit(peer, cid, work, good, 1)
    assert [type(e) for e in events] == [ShareJudgement] and events[0].accepted
    assert events[0].difficulty == EASY_DIFFICULTY and events[0].submission.job_id == "1"
    assert out == [SubmitSharesSuccess(cid, 1, 1, 0)]
    cases = [
        (dict(nonce=good, seq=2), "duplicate-share", RejectReason.DUPLICATE),
        (dict(nonce=bad, seq=3), "difficulty-too-low", RejectReason.LOW_DIFFICULTY),
        (dict(nonce=other, seq=4, version=work.version | 1), "invalid-non-rollable-version-bit",
         RejectReason.BAD_VERSION_BITS),
        (dict(nonce=other, seq=5, ntime=int(NOW) - 7200), "invalid-share", RejectReason.NTIME_TOO_OLD),
    ]
    for kw, code, reason in cases:
        events, out = submit(peer, cid, work, **kw)  # type: ignore[arg-type]
        assert out == [SubmitSharesError(cid, kw["seq"], code)]
        assert [(e.accepted, e.reason) for e in events] == [(False, reason)]
    events, out = peer.send(SubmitSharesStandard(cid, 6, 77, good, work.ntime, work.version))
    assert out == [SubmitSharesError(cid, 6, "invalid-job-id")] and events[0].job is None


def test_rolled_bip323_bits_are_accepted_and_each_version_is_its_own_share() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    for seq, bits in enumerate((0x20, 0x1FE0, 0x1FFFFFE0), start=1):  # bits 5..12 too: BIP323, not BIP320
        version = work.version | bits
        header = header76(version, work.header[4:36], work.header[36:68], work.ntime, int.from_bytes(work.header[72:76], "little"))
        (nonce,) = nonces(header, share_target())
        events, out = submit(peer, ok.channel_id, work, nonce, seq, version=version)
        assert out == [SubmitSharesSuccess(ok.channel_id, seq, 1, 0)], out
        assert events[0].submission.version_bits == bits


def test_extended_shares_roll_the_extranonce_of_the_size_given() -> None:
    pool = Pool()
    peer = pool.connect()
    peer.set_up()
    _, (ok, job, prev) = peer.send(open_extended())
    assert isinstance(ok, OpenExtendedMiningChannelSuccess) and isinstance(job, NewExtendedMiningJob)
    assert isinstance(prev, SetNewPrevHash)
    accepted = 0
    for seq, en2 in enumerate((b"\x00" * 4, b"\xff\xee\xdd\xcc"), start=1):
        header = header76(job.version, prev.prev_hash, extended_root(job, ok.extranonce_prefix, en2), prev.min_ntime,
                          prev.nbits)
        (nonce,) = nonces(header, share_target())
        events, out = peer.send(SubmitSharesExtended(ok.channel_id, seq, job.job_id, nonce, prev.min_ntime, job.version,
                                                     en2))
        accepted += events[0].accepted
        assert names(out) == ["SubmitShares.Success"]
    assert accepted == 2
    _, out = peer.send(SubmitSharesExtended(ok.channel_id, 3, job.job_id, 0, prev.min_ntime, job.version, b"\x00" * 3))
    assert out == [SubmitSharesError(ok.channel_id, 3, "bad-extranonce-size")]
    # the other kind's submit names no channel of that kind
    _, out = peer.send(SubmitSharesStandard(ok.channel_id, 4, job.job_id, 0, prev.min_ntime, job.version))
    assert out == [SubmitSharesError(ok.channel_id, 4, "invalid-channel-id")]


def test_v2_shares_use_the_job_books_duplicate_sets() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    (nonce,) = nonces(work.header, share_target())
    submit(peer, ok.channel_id, work, nonce)
    issued = pool.book.job_for(peer.conn.channels[ok.channel_id].worker.payout_script)
    assert issued is not None
    assert len(pool.book.seen(issued.job.job_id)) == 1


def test_a_share_on_the_previous_tip_is_stale_one_on_an_earlier_job_of_the_tip_is_good() -> None:
    pool = Pool()
    peer, ok, first = standard(pool)
    pool.refresh()
    peer.conn.push_work(NOW)
    peer.replies()
    (nonce,) = nonces(first.header, share_target())
    _, out = submit(peer, ok.channel_id, first, nonce, 1)
    assert names(out) == ["SubmitShares.Success"]  # the refresh did not invalidate it (stratum #788)
    pool.new_block()
    peer.conn.push_work(NOW)
    peer.replies()
    (nonce,) = nonces(first.header, share_target(), start=nonce + 1)
    _events, out = submit(peer, ok.channel_id, first, nonce, 2)
    assert out == [SubmitSharesError(ok.channel_id, 2, "stale-share")]
    assert peer.conn.score == 0  # honest: in flight over a block


def test_acknowledgements_are_batched_errors_go_at_once() -> None:
    pool = Pool(vardiff=VarDiffConfig(10.0, EASY_DIFFICULTY, EASY_DIFFICULTY))  # vardiff has no room to move
    peer, ok, work = standard(pool)
    cid = ok.channel_id
    good = nonces(work.header, share_target(), count=SHARE_BATCH_SIZE + 2)
    (bad,) = nonces(work.header, share_target(), meeting=False)
    shares = [SubmitSharesStandard(cid, i + 1, work.job_id, n, work.ntime, work.version) for i, n in enumerate(good)]
    shares.insert(3, SubmitSharesStandard(cid, 99, work.job_id, bad, work.ntime, work.version))
    _, out = peer.send(*shares)
    assert out == [
        SubmitSharesError(cid, 99, "difficulty-too-low"),
        SubmitSharesSuccess(cid, SHARE_BATCH_SIZE, SHARE_BATCH_SIZE, 0),
        SubmitSharesSuccess(cid, SHARE_BATCH_SIZE + 2, 2, 0),  # the end of the turn closes the batch
    ]


def test_a_block_is_assembled_from_the_share() -> None:
    pool = Pool(bits=REGTEST_BITS)
    peer, ok, work = standard(pool)
    (nonce,) = nonces(work.header, difficulty_to_target(EASY_DIFFICULTY))
    events, _ = submit(peer, ok.channel_id, work, nonce)
    judged, solved = events
    assert isinstance(judged, ShareJudgement) and judged.is_block
    assert isinstance(solved, BlockSolved)
    assert solved.block[:80] == work.header + nonce.to_bytes(4, "little")
    assert sha256d(solved.block[:80]) == solved.block_hash
    assert ok.extranonce_prefix in solved.block  # the channel's whole extranonce in the coinbase


# --- targets -----------------------------------------------------------------------------------------------


def test_vardiff_sets_a_target_and_resends_the_job_and_old_jobs_keep_theirs() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    cid = ok.channel_id
    good = nonces(work.header, share_target(), count=5)
    _, out = peer.send(*[SubmitSharesStandard(cid, i + 1, work.job_id, n, work.ntime, work.version)
                         for i, n in enumerate(good[:4])])
    # four shares at once are far too fast: acknowledged at the old target, then the new one and the job
    assert names(out) == ["SubmitShares.Success", "SetTarget", "NewMiningJob"]
    assert out[0] == SubmitSharesSuccess(cid, 4, 4, 0)
    new_target = int_from_u256(out[1].maximum_target)  # type: ignore[attr-defined]
    assert new_target < share_target()
    new_job = out[2]
    assert isinstance(new_job, NewMiningJob) and new_job.min_ntime == int(NOW) and new_job.job_id != work.job_id
    # a share on the old job at the old target: accepted, credited at the old difficulty
    events, out = submit(peer, cid, work, good[4], 5)
    assert names(out) == ["SubmitShares.Success"] and events[0].difficulty == EASY_DIFFICULTY
    # on the new job only the new target counts: a hash that meets just the old one is too low
    header = header76(new_job.version, work.header[4:36], new_job.merkle_root, work.ntime,
                      int.from_bytes(work.header[72:76], "little"))
    # (the job is the same template again: the same headers, so start past the shares already sent)
    weak = next(n for n in nonces(header, share_target(), count=64, start=max(good) + 1)
                if n not in nonces(header, new_target, count=64, start=max(good) + 1))
    _, out = peer.send(SubmitSharesStandard(cid, 6, new_job.job_id, weak, work.ntime, new_job.version))
    assert out == [SubmitSharesError(cid, 6, "difficulty-too-low")]


def test_update_channel_lowers_the_target_and_refuses_a_bad_hashrate() -> None:
    pool = Pool()
    peer, ok, _ = standard(pool)
    cid = ok.channel_id
    lower = difficulty_to_target(0.5)
    _events, out = peer.send(UpdateChannel(cid, 0.0, u256_from_int(lower)))
    assert names(out) == ["SetTarget", "NewMiningJob"]
    assert out[0] == SetTarget(cid, u256_from_int(lower))
    _, out = peer.send(UpdateChannel(cid, math.inf, u256_from_int(lower)))
    assert names(out) == ["UpdateChannel.Error"] and out[0].error_code == "invalid-nominal-hashrate"  # type: ignore[attr-defined]
    _, out = peer.send(UpdateChannel(cid, 0.0, bytes(32)))
    assert out[0].error_code == "max-target-out-of-range"  # type: ignore[attr-defined]


# --- channels, connections, bans ------------------------------------------------------------------------


def test_close_channel_frees_its_extranonce_and_late_shares_are_answered_not_hung_up() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    en1 = peer.conn.channels[ok.channel_id].extranonce1
    assert pool.allocator.in_use(en1)
    _, out = peer.send(CloseChannel(ok.channel_id, "bye"))
    assert out == [] and not pool.allocator.in_use(en1)
    events, out = submit(peer, ok.channel_id, work, 0, 9)
    assert out == [SubmitSharesError(ok.channel_id, 9, "invalid-channel-id")] and events == []
    assert peer.conn.state is ConnectionState.SET_UP
    # taken again by someone else, the value is never freed twice by the connection's end
    assert pool.allocator.allocate(en1) == en1
    peer.conn.close()
    assert pool.allocator.in_use(en1)


def test_another_connections_channel_id_is_refused_and_hung_up_and_touches_nothing_else() -> None:
    pool = Pool()
    victim, ok, work = standard(pool)
    attacker = pool.connect()
    attacker.set_up()
    (nonce,) = nonces(work.header, share_target())
    events, out = attacker.send(SubmitSharesStandard(ok.channel_id, 1, work.job_id, nonce, work.ntime, work.version))
    assert out == [SubmitSharesError(ok.channel_id, 1, "invalid-channel-id")]
    assert [type(e) for e in events] == [HangUp] and not events[0].ban  # nothing judged, nothing credited
    assert attacker.conn.state is ConnectionState.CLOSED
    events, out = submit(victim, ok.channel_id, work, nonce)  # the victim's share is still its own
    assert events[0].accepted and names(out) == ["SubmitShares.Success"]


def test_a_flood_of_invalid_shares_bans() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    bad = nonces(work.header, share_target(), meeting=False, count=int(BAN_SCORE))
    events, _ = peer.send(*[SubmitSharesStandard(ok.channel_id, i, work.job_id, n, work.ntime, work.version)
                            for i, n in enumerate(bad)])
    hangups = [e for e in events if isinstance(e, HangUp)]
    assert len(hangups) == 1 and hangups[0].ban and "banned" in hangups[0].reason
    assert peer.conn.state is ConnectionState.CLOSED


def test_a_pipeline_is_handled_in_bounded_turns() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    good = nonces(work.header, share_target(), count=5)
    data = b"".join(peer.transport.encrypt(encode_frame(SubmitSharesStandard(ok.channel_id, i + 1, work.job_id, n,
                                                                             work.ntime, work.version)))
                    for i, n in enumerate(good))
    events = peer.conn.receive(data, NOW, max_frames=2)
    assert len(events) == 2 and peer.conn.pending_frames == 3
    assert peer.replies() == [SubmitSharesSuccess(ok.channel_id, 2, 2, 0)]
    events = peer.conn.continue_pending(NOW, max_frames=2)
    events += peer.conn.continue_pending(NOW, max_frames=2)
    assert len(events) >= 3 and peer.conn.pending_frames == 0


def test_pool_mode_channels_get_their_own_extranonce_and_root() -> None:
    pool = Pool(mode="pool")
    _a, ok_a, work_a = standard(pool)
    _b, ok_b, work_b = standard(pool, user=POOL_ADDRESS + ".b")
    assert ok_a.extranonce_prefix != ok_b.extranonce_prefix
    assert work_a.header[36:68] != work_b.header[36:68]
    assert ok_a.channel_id != ok_b.channel_id  # ids are the server's, not the connection's


# --- the stream -----------------------------------------------------------------------------------------


def test_bytes_after_act_1_break_the_handshake() -> None:
    pool = Pool()
    conn = PoolConnection(pool.rules, pool.feed, pool.allocator, pool_responder(pool.authority, int(NOW)),
                          NOW, next_channel_id=lambda: 1)
    events = conn.receive(noise.Initiator(pool.authority_key).start() + b"junk", NOW)
    assert len(events) == 1 and isinstance(events[0], HangUp) and "handshake" in events[0].reason
    assert conn.state is ConnectionState.CLOSED


def test_an_oversized_frame_is_refused_before_it_is_read() -> None:
    peer = Pool().connect()
    peer.set_up()
    wire = peer.transport.encrypt(encode_header(0, True, 0x1A, 100_000) + bytes(100_000))
    events, _ = peer.send_raw(wire[:22])  # the encrypted header alone is enough to refuse it
    assert isinstance(events[0], HangUp) and "100000 bytes" in events[0].reason


def test_a_replayed_frame_breaks_the_stream() -> None:
    pool = Pool()
    peer, ok, work = standard(pool)
    (nonce,) = nonces(work.header, share_target())
    wire = peer.transport.encrypt(encode_frame(SubmitSharesStandard(ok.channel_id, 1, work.job_id, nonce, work.ntime,
                                                                    work.version)))
    events, _ = peer.send_raw(wire)
    assert events[0].accepted
    events, _ = peer.send_raw(wire)  # the same bytes again: their nonce is spent
    assert [type(e) for e in events] == [HangUp] and "stream failed" in events[0].reason


def test_difficulty_one_is_two_ff_bytes_at_26_and_27() -> None:
    """The target goes out as a little-endian U256 (ESP-Miner #1758)."""
    pool = Pool(start_difficulty=1.0)
    _, ok, _ = standard(pool)
    assert int_from_u256(ok.target) == DIFF1_TARGET
    assert ok.target[26:28] == b"\xff\xff" and set(ok.target[:26] + ok.target[28:]) == {0}


def test_user_of_the_channel_is_the_worker() -> None:
    pool = Pool()
    peer, ok, _ = standard(pool)
    worker = peer.conn.channels[ok.channel_id].worker
    assert worker.name == USER and peer.conn.channels[ok.channel_id].kind is ChannelKind.STANDARD


# --- the pool's own messages -------------------------------------------------------------------------------


def test_set_extranonce_prefix_applies_to_later_jobs_and_earlier_ones_keep_theirs() -> None:
    pool = Pool()
    peer, ok, old_work = standard(pool)
    cid = ok.channel_id
    old = peer.conn.channels[cid].extranonce1
    new = peer.conn.set_extranonce_prefix(cid, NOW)
    out = peer.replies()
    assert names(out) == ["SetExtranoncePrefix", "NewMiningJob"]
    assert out[0].extranonce_prefix == new + bytes(4)  # type: ignore[attr-defined]  # a standard channel's whole one
    job = out[1]
    assert isinstance(job, NewMiningJob) and job.min_ntime == int(NOW)
    issued = pool.book.job_for(peer.conn.channels[cid].worker.payout_script)
    assert issued is not None and job.merkle_root == issued.job.merkle_root(new, bytes(4))
    new_work = Mined(job.job_id, job.version, old_work.ntime, header76(job.version, old_work.header[4:36],
                     job.merkle_root, old_work.ntime, int.from_bytes(old_work.header[72:76], "little")))
    for seq, work in enumerate((old_work, new_work), start=1):  # each judged with the extranonce it was sent for
        (nonce,) = nonces(work.header, share_target())
        events, out = submit(peer, cid, work, nonce, seq)
        assert events[0].accepted, events
    assert pool.allocator.in_use(old) and pool.allocator.in_use(new)  # the old job is still remembered
    for _ in range(32):  # enough jobs to forget the last one sent for the old extranonce
        pool.refresh()
        peer.conn.push_work(NOW)
    assert not pool.allocator.in_use(old) and pool.allocator.in_use(new)
    peer.conn.close()
    assert not pool.allocator.in_use(new)


def test_the_pool_can_send_a_client_elsewhere() -> None:
    peer, _, _ = standard(Pool())
    peer.conn.reconnect("pool2.example", 3337)
    assert [m.NAME for m in peer.replies()] == ["Reconnect"]


class MaskedBook:
    """The pool's job book with every job carrying `mask` as the bits its shares may roll (a farm proxy's job
    from an upstream that allows fewer: `IssuedJob.version_mask`)."""

    def __init__(self, book: JobBook, mask: int) -> None:
        self.book, self.mask = book, mask
        self.builds_blocks = book.builds_blocks

    def job_for(self, payout_script: bytes | None = None, extranonce1: bytes | None = None) -> IssuedJob | None:
        ij = self.book.job_for(payout_script, extranonce1)
        return None if ij is None else replace(ij, version_mask=self.mask)

    def get(self, job_id: str, payout_script: bytes | None = None) -> IssuedJob | None:
        return self.book.get(job_id, payout_script)

    def is_stale(self, ij: IssuedJob) -> bool:
        return self.book.is_stale(ij)

    def seen(self, job_id: str) -> MutableSet[ShareKey]:
        return self.book.seen(job_id)

    def remember(self, job_id: str, key: ShareKey) -> None:
        self.book.remember(job_id, key)

    def is_full(self, job_id: str) -> bool:
        return self.book.is_full(job_id)


def test_a_job_that_allows_no_rolling_says_so_and_refuses_rolled_shares() -> None:
    """A job whose shares may roll no bit (a farm proxy's, from an upstream job with version_rolling_allowed =
    false): an extended channel is told version_rolling_allowed = false with the job's own version; a
    standard channel (whose job cannot say it) has a rolled share refused with the spec's code."""
    pool = Pool()
    pool.feed = BookFeed(MaskedBook(pool.book, 0))
    peer = pool.connect()
    peer.set_up()
    _, (ok, job, _prev) = peer.send(open_extended(min_extranonce_size=4))
    assert isinstance(job, NewExtendedMiningJob) and not job.version_rolling_allowed
    issued = pool.book.job_for(peer.conn.channels[ok.channel_id].worker.payout_script)  # type: ignore[attr-defined]
    assert issued is not None and job.version == issued.job.version

    peer, ok2, work = standard(pool)
    target = share_target()
    plain, rolled_nonce = nonces(work.header, target, count=2)
    rolled = work.version | 0x2000
    events, out = submit(peer, ok2.channel_id, work, rolled_nonce, 1, version=rolled)
    assert out == [SubmitSharesError(ok2.channel_id, 1, "version-rolling-not-allowed")]
    assert [(e.accepted, e.reason) for e in events] == [(False, RejectReason.VERSION_ROLLING_NOT_NEGOTIATED)]
    events, out = submit(peer, ok2.channel_id, work, plain, 2)
    assert out == [SubmitSharesSuccess(ok2.channel_id, 2, 1, 0)] and events[0].accepted
    # the miner could not know (BIP323 bits may always roll on a standard job): refused, never held against it
    assert peer.conn.score == 0


def test_a_job_that_allows_fewer_bits_refuses_the_others() -> None:
    """A farm proxy's job from a V1 pool that granted BIP320's 16 bits: bits 13-28 roll, bits 5-12 are refused."""
    pool = Pool()
    pool.feed = BookFeed(MaskedBook(pool.book, 0x1FFFE000))
    peer, ok, work = standard(pool)
    for seq, (bits, accepted) in enumerate(((0x2000, True), (0x20, False)), start=1):
        version = work.version | bits
        header = header76(version, work.header[4:36], work.header[36:68], work.ntime,
                          int.from_bytes(work.header[72:76], "little"))
        (nonce,) = nonces(header, share_target())
        events, _ = submit(peer, ok.channel_id, work, nonce, seq, version=version)
        assert events[0].accepted is accepted, (bits, events)

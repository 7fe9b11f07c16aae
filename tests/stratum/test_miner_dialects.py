"""A mixed farm of scripted miners, each speaking EXACTLY one real firmware's Stratum V1 dialect, against
one pool and pithead's embedded regtest node — in one process (`PoolServer`) and across worker processes
(`WorkerPool`).

The dialects (tests/stratum/dialects.py, every quirk cited there from
/work/shared/notes/stratum-field-notes.md §5) are cpuminer, cgminer (Antminer firmware's base), BFGMiner,
ESP-Miner (Bitaxe) in its current and its 2.1.5 handshake, and NerdMiner. Over real loopback TCP, all at
once, each one:
  * handshakes in its firmware's order with its firmware's bytes, and reads every reply the way its
    firmware does (success with `"error": null`, failure `[code, message, null]`);
  * mines real shares at the difficulty the pool set, applied with its firmware's rule (from the next
    notify for cgminer/BFGMiner/cpuminer/ESP-Miner, at once for NerdMiner); the pool's vardiff or the
    miner's suggest_difficulty changes it during the run, and the pool must judge each share to the same
    hash the miner computed (its share event carries that hash's difficulty);
  * gets code 22 for a duplicate and 21 for a share on a job its own block made stale;
  * finds a block that the node accepts, paying its own address (solo) or the pool's (pool mode).
In the single-process farm the pool also narrows the version mask (mining.set_version_mask: cgminer and
both ESP-Miners must roll only inside it; the others must never see it) and moves the current ESP-Miner to
a new extranonce1 (mining.set_extranonce, which only it subscribed to); cpuminer drops its connection and
resumes its session with `mining.subscribe [agent, session id]`, getting its extranonce1 back so its
in-flight share still counts.

Share difficulties stay below regtest's network difficulty (~4.66e-10) so that shares are not blocks unless a
miner asks its hashing stand-in for one; blocks are found one miner at a time (a farm lock) so no two
compete for the same height, while ordinary shares run concurrently and may meet a fresh block (they then
get 21 and are redone on the new tip, as the firmware would). A third test runs cgminer, ESP-Miner and
BFGMiner against a pool that refuses version rolling.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pithead.chain.address import address_to_script, script_to_address
from pithead.chain.hashes import hash160
from pithead.chain.params import REGTEST
from pithead.config import PoolConfig, UpstreamNode
from pithead.events import BlockEvent, ShareEvent
from pithead.node.node import EmbeddedNode
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer
from pithead.stratum.server.workers import WorkerPool
from pithead.stratum.v1.pool import PoolRules
from pithead.template.sources.failover import source_from_config

from .dialects import (
    BfgMiner,
    CgMiner,
    CpuMiner,
    EspMiner,
    EspMinerOld,
    Firmware,
    NerdMiner,
    Outcome,
    Share,
    Work,
)
from .helpers import POOL_ADDRESS
from .test_e2e_node import ListSink, rpc, wait_until

pytestmark = pytest.mark.timeout(120)

DIALECTS: tuple[type[Firmware], ...] = (CpuMiner, CgMiner, BfgMiner, EspMiner, EspMinerOld, NerdMiner)

START_DIFFICULTY = 2.5e-10
"""Where every connection starts. Regtest's network difficulty is ~4.66e-10 (nBits 207fffff: half of all
hashes are blocks); below it, a share target admits hashes that are not blocks."""
MAX_DIFFICULTY = 4e-10
"""The pool's vardiff ceiling: vardiff raises fast miners to it, and suggestions (ESP-Miner's 1000 and 512,
NerdMiner's 0.00015) are clamped to it — still below the network difficulty."""
SHARE_INTERVAL = 1000.0
"""Vardiff's seconds per share: with shares every few milliseconds the 4-share fast retarget always raises."""
NARROW_MASK = 0x00FFE000
"""The mask the pool narrows version rolling to with mining.set_version_mask (inside BIP320's 1fffe000)."""
SHARES = 5
"""Ordinary shares per miner in the concurrent phase (4 trigger vardiff's first retarget)."""
STALE_REASONS = {"stale", "job-not-found"}
"""Both are code 21: "Stale job" while the pool still knows the job (the normal case here), "Job not found"
once it has dropped it (MAX_GENERATIONS templates later)."""
TX_RATE = 2.0
"""Transactions per second from the node's generator: jobs carry a merkle branch, and templates change
slowly enough that a held-back job is still known (so its share is "Stale job", not "Job not found")."""


def payout_address(name: str) -> str:
    """A distinct regtest P2WPKH address per miner (solo blocks must pay the miner that found them)."""
    address = script_to_address(b"\x00\x14" + hash160(name.encode()), REGTEST)
    assert address is not None
    return address


def make_miners(seed: int, copies: int = 1) -> list[Firmware]:
    """`copies` devices of every dialect, each with its own payout address and worker name."""
    miners = []
    for k in range(copies):
        for i, cls in enumerate(DIALECTS):
            label = cls.name if copies == 1 else f"{cls.name}-{k}"
            address = payout_address(label)
            # NerdMiner logs in with the bare address (its "BTC wallet" setting); the others use worker names
            user = address if cls is NerdMiner else f"{address}.{label}"
            miners.append(cls(user, "x", seed=seed + 100 * k + i))
    return miners


class Farm:
    """What the miners share: the pool's address, the node, and the lock that lets one block at a time in."""

    def __init__(self, node: EmbeddedNode, port: int, sink: ListSink,
                 released: Callable[[bytes], Awaitable[None]] | None) -> None:
        self.node = node
        self.port = port
        self.sink = sink
        self.released = released  # waits until the pool freed an extranonce1 (None: cannot tell)
        self.chain_lock = asyncio.Lock()
        self.miners = 0
        self.blocks = 0
        self.all_blocks = asyncio.Event()

    async def best(self) -> str:
        return str(await rpc(self.node, "getbestblockhash"))

    async def wait_best(self, block_hash: str) -> None:
        async def is_tip() -> bool:
            return await self.best() == block_hash

        await wait_until(is_tip, f"block {block_hash} as the node's tip")


async def accepted_share(m: Firmware, out: Outcome) -> Share:
    """Solve and submit shares on the newest job until one is accepted. The only refusal allowed is 21: a
    block from another miner made the job stale between the solve and the submit."""
    while True:
        work = await m.wait_work()
        share = m.solve(work)
        r = await m.submit(share)
        if r.ok:
            out.shares.append(share)
            return share
        assert r.code == 21, (m.name, r.msg)
        out.stale_retries += 1

        def on_new_tip(w: Work, prev: str = work.prev_hex) -> bool:
            return w.prev_hex != prev

        await m.wait_work(on_new_tip, "a job on the new tip")


async def start(m: Firmware, farm: Farm, out: Outcome, *, resume_same: bool) -> None:
    """Phase 1: connect, handshake in the dialect's order, one accepted share; cpuminer then reconnects
    and resumes its session."""
    await m.connect("127.0.0.1", farm.port)
    await m.handshake()
    await accepted_share(m, out)
    if isinstance(m, CpuMiner):
        old = m.extranonce1
        inflight = m.solve(await m.wait_work())  # found just before the connection dropped
        await m.close()
        if farm.released is not None:
            await farm.released(old)
        m.works.clear()
        await m.connect("127.0.0.1", farm.port)
        await m.handshake()  # {"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "<sid>"]}
        assert m.sent[-2].startswith(b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "')
        await m.wait_work()
        if resume_same:
            assert m.extranonce1 == old, "session resume: the same extranonce1 back"
        if m.extranonce1 == old:  # the in-flight share of the old connection still counts
            r = await m.submit(inflight)
            assert r.ok, r.msg
            out.shares.append(inflight)


async def keep_mining(m: Firmware, out: Outcome, stop: asyncio.Event) -> None:
    """Ordinary shares until told to stop: the farm does not pause while someone else finds a block (its
    shares on the old tip then get 21 and are redone on the new one)."""
    while not stop.is_set():
        await accepted_share(m, out)


async def mine(m: Firmware, farm: Farm, out: Outcome) -> None:
    """Phase 3: ordinary shares, then — one miner at a time, mining on while it waits its turn — a
    duplicate and a block; then the share held back from before its block is stale; then ordinary shares
    again until every miner's block is in."""
    for _ in range(SHARES):
        await accepted_share(m, out)
    stop = asyncio.Event()
    background = asyncio.create_task(keep_mining(m, out, stop))
    async with farm.chain_lock:
        stop.set()  # one connection, one thing at a time: finish the share in flight first
        await background
        # the pool must already be on the node's tip: then nothing can change it until we find a block
        best = await farm.best()
        await m.wait_work(lambda w: w.prev_hex == best, "a job on the node's tip")
        share = await accepted_share(m, out)
        out.duplicate = await m.submit(share)  # the same params again (a new id), as after a lost reply
        work = await m.wait_work(lambda w: w.prev_hex == best, "a job on the node's tip")
        held = m.solve(work)  # in flight when the block is found
        block = m.solve(work, block=True)
        r = await m.submit(block)
        assert r.ok, (m.name, r.msg)
        out.block = block
        await farm.wait_best(block.block_hash)
    farm.blocks += 1
    if farm.blocks == farm.miners:
        farm.all_blocks.set()
    await m.wait_work(lambda w: w.prev_hex == block.block_hash, "the job on our own block")
    out.stale = await m.submit(held)
    stop = asyncio.Event()
    background = asyncio.create_task(keep_mining(m, out, stop))
    await farm.all_blocks.wait()
    stop.set()
    await background


def events_for(sink: ListSink, m: Firmware) -> list[ShareEvent]:
    return [e for e in sink.events if isinstance(e, ShareEvent) and e.worker == m.user]


def sent(m: Firmware, method: str | None = None) -> list[dict[str, Any]]:
    """The requests a miner wrote, parsed (optionally only one method's)."""
    msgs = [json.loads(line) for line in m.sent]
    return [x for x in msgs if method is None or x["method"] == method]


async def check_outcomes(node: EmbeddedNode, sink: ListSink, outcomes: list[Outcome],
                         payee: Callable[[Firmware], str]) -> None:
    """What must hold for every dialect once the farm has run."""
    for out in outcomes:
        m = out.miner
        assert m.error is None and not m.violations, (m.name, m.error, m.violations)
        # dialects.check_reply ran on every reply this miner read: "error": null or [code, message, null]
        assert m.replies
        assert out.duplicate is not None and out.duplicate.code == 22, (m.name, out.duplicate)
        assert out.stale is not None and out.stale.code == 21, (m.name, out.stale)
        # the pool judged every accepted share to the very hash the miner computed (same extranonce1,
        # extranonce2, ntime, nonce, version): its share event carries that hash's difficulty
        events = events_for(sink, m)
        judged = {(e.job_id, e.share_difficulty) for e in events if e.accepted}
        for s in out.shares:
            assert (s.work.job_id, s.difficulty) in judged, (m.name, s)
            assert not s.is_block
        reasons = [e.reject_reason for e in events if not e.accepted]
        # nothing but the duplicate, the held-back share and shares overtaken by a block was refused
        assert reasons.count("duplicate") == 1, (m.name, reasons)
        assert len(reasons) == 2 + out.stale_retries and set(reasons) <= STALE_REASONS | {"duplicate"}, (m.name, reasons)
        # the pool's difficulty reached the miner (vardiff or its suggestion) and its later work used it
        assert out.shares[-1].work.difficulty == MAX_DIFFICULTY, (m.name, [s.work.difficulty for s in out.shares])
        # the block: on the node's main chain, paying the right address, with the version the miner hashed
        b = out.block
        assert b is not None and b.is_block
        block = await rpc(node, "getblock", b.block_hash, 2)
        assert isinstance(block, dict)
        assert block["confirmations"] >= 1, (m.name, block["confirmations"])
        assert await rpc(node, "getblockhash", block["height"]) == b.block_hash
        assert int(block["version"]) == b.version
        script = address_to_script(payee(m), REGTEST).hex()
        assert any(o["scriptPubKey"]["hex"] == script for o in block["tx"][0]["vout"]), (m.name, payee(m))

        async def block_recorded(h: str = b.block_hash) -> bool:
            return any(isinstance(e, BlockEvent) and e.block_hash == h and e.accepted_by_node
                       for e in sink.events)

        await wait_until(block_recorded, f"{m.name}'s block event")
        # the submit shapes: six params only where rolling was negotiated (ESP-Miner: always)
        submits = [x["params"] for x in sent(m, "mining.submit")]
        assert all(len(p) == (6 if m.rolls_version else 5) for p in submits), m.name
        if m.rolls_version:  # the rolled bits made it into the block
            assert b.version_bits and b.version & 0x1FFFE000 and b.version != b.work.version, m.name
        if isinstance(m, NerdMiner):  # String(nonce, HEX): short nonces, and the pool took them
            assert any(len(p[4]) < 8 for p in submits), "NerdMiner sent no short nonce"
            assert all(p[4] == f"{int(p[4], 16):x}" for p in submits)


def check_handshakes(miners: list[Firmware]) -> None:
    """The order and bytes each firmware sent before its first share, and how it read the answers."""
    for m in miners:
        methods = [x["method"] for x in sent(m)]
        if isinstance(m, CpuMiner):
            assert methods[:2] == ["mining.subscribe", "mining.authorize"]
        elif isinstance(m, BfgMiner):
            assert methods[:2] == ["mining.subscribe", "mining.authorize"]
            assert m.version_mask == 0
        elif isinstance(m, CgMiner):
            assert methods[:3] == ["mining.configure", "mining.subscribe", "mining.authorize"]
            assert b'"params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]' in m.sent[0]
            assert b"min-bit-count" not in m.sent[0]
            assert m.version_mask == 0x1FFFE000  # ffffffff & the pool's BIP320 mask
        elif isinstance(m, EspMinerOld):
            assert methods[:4] == ["mining.configure", "mining.subscribe", "mining.suggest_difficulty",
                                   "mining.authorize"]
            assert m.version_mask == 0x1FFFE000
            # suggest_difficulty before authorize is honoured: the first difficulty is the (clamped) suggestion
            first = next(n for n in m.notifications if n["method"] == "mining.set_difficulty")
            assert first["params"] == [MAX_DIFFICULTY]
        elif isinstance(m, EspMiner):
            assert methods[:5] == ["mining.configure", "mining.subscribe", "mining.authorize",
                                   "mining.suggest_difficulty", "mining.extranonce.subscribe"]
            assert [x["id"] for x in sent(m)][:5] == [1, 2, 3, 4, 5]
            assert m.sent[1] == b'{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1370/v2.9.0"]}\n'
            assert m.version_mask == 0x1FFFE000
            assert m.firmware_difficulty == 0  # cJSON valueint reads a sub-1 difficulty as 0 (dialects.EspMiner)
        elif isinstance(m, NerdMiner):
            assert methods[:3] == ["mining.subscribe", "mining.authorize", "mining.suggest_difficulty"]
            assert m.sent[2] == b'{"id": 3, "method": "mining.suggest_difficulty", "params": [0.00015]}\n'
            assert m.difficulty == MAX_DIFFICULTY  # the suggestion, clamped by the pool, applied at once
        else:  # pragma: no cover - a new dialect needs its checks here
            raise AssertionError(m.name)


async def run_farm(farm: Farm, miners: list[Firmware], *, resume_same: bool,
                   between: Callable[[], Awaitable[None]] | None = None) -> list[Outcome]:
    """All miners at once: start (handshake, a share, cpuminer's resume), the pool's own moves, then mine."""
    async def has_branch() -> bool:  # a few mempool transactions: jobs then carry a merkle branch
        tpl = await rpc(farm.node, "getblocktemplate", {"rules": ["segwit"]})
        return len(tpl["transactions"]) >= 2  # type: ignore[index]

    await wait_until(has_branch, "transactions in the mempool")
    outcomes = [Outcome(m) for m in miners]
    farm.miners = len(miners)
    await asyncio.gather(*(start(m, farm, o, resume_same=resume_same)
                           for m, o in zip(miners, outcomes, strict=True)))
    check_handshakes(miners)
    if between is not None:
        await between()
    await asyncio.gather(*(mine(m, farm, o) for m, o in zip(miners, outcomes, strict=True)))
    return outcomes


async def test_mixed_farm_of_firmware_dialects_on_one_pool(tmp_path: Path) -> None:
    """Every dialect at once against one PoolServer (solo: each block pays its finder). Mid-run the pool
    narrows the version mask — BIP310's mining.set_version_mask "takes effect immediately" (notes §5,
    Version math); cgminer util.c:2693-2714 and ESP-Miner stratum_api.c:255-262 handle it, BFGMiner has
    no version rolling (bfgminer #858) — and moves ESP-Miner, the only one that sent
    mining.extranonce.subscribe (stratum_v1_task.c:494-501), to a new extranonce1 with
    mining.set_extranonce. cpuminer drops its connection and resumes with params[1] = its session id
    (pooler/cpuminer util.c:1183; ckpool stratifier.c:4955-4964). ESP-Miner 2.1.5's suggest_difficulty
    before authorize (ESP-Miner #182) and NerdMiner's 0.00015 (src/mining.h:9) are honoured (clamped to the
    pool's bounds); NerdMiner's unpadded nonces (src/stratum.cpp:215) are accepted."""
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=TX_RATE, seed=21) as node:
        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="regtest", refresh_interval=0.2)
        await source.start()
        sink = ListSink()
        rules = PoolRules(mode="solo", network=REGTEST, start_difficulty=START_DIFFICULTY,
                          vardiff=VarDiffConfig(SHARE_INTERVAL, START_DIFFICULTY, MAX_DIFFICULTY))
        server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=0.2)
        _, port = await server.start("127.0.0.1", 0)

        async def released(en1: bytes) -> None:
            async def free() -> bool:
                return not server.allocator.in_use(en1)

            await wait_until(free, "the pool to free the dropped connection's extranonce1")

        farm = Farm(node, port, sink, released)
        miners = make_miners(seed=1)
        by = {m.name: m for m in miners}
        moved: list[bytes] = []

        async def operator() -> None:
            """The pool narrows version rolling for everyone and moves ESP-Miner to a new extranonce1."""
            for c in list(server.connections):
                s = c.session
                assert s is not None
                s.set_version_mask(NARROW_MASK)  # sent only to the sessions that negotiated rolling
                if s.extranonce_subscribed:
                    new = server.allocator.allocate()
                    moved.append(new)
                    assert s.set_extranonce(new)
                c.flush_session()
            for m in miners:
                if m.rolls_version:
                    def narrowed(m: Firmware = m) -> bool:
                        return m.version_mask == NARROW_MASK

                    await m.wait_for(narrowed, "mining.set_version_mask")
            esp = by["esp-miner"]
            assert len(moved) == 1
            await esp.wait_work(lambda w: w.extranonce1 == moved[0], "a job after mining.set_extranonce")

        try:
            outcomes = await run_farm(farm, miners, resume_same=True, between=operator)
            await check_outcomes(node, sink, outcomes, lambda m: payout_address(m.name))
            # set_version_mask honoured at once: rolled bits before inside 1fffe000, after inside 00ffe000
            for name in ("cgminer", "esp-miner", "esp-miner-2.1.5"):
                out = next(o for o in outcomes if o.miner.name == name)
                first, later = out.shares[0], out.shares[-1]
                assert first.version_bits == 0x10000000 and later.version_bits == 0x00800000, name
                assert out.block is not None and out.block.version_bits == 0x00800000
            # set_extranonce honoured: the later shares hash the new extranonce1 (and the pool agreed)
            esp_out = next(o for o in outcomes if o.miner.name == "esp-miner")
            assert esp_out.shares[-1].work.extranonce1 == moved[0] != esp_out.shares[0].work.extranonce1
            assert len({o.block.block_hash for o in outcomes if o.block}) == len(DIALECTS)
        finally:
            for m in miners:
                await m.close()
            await server.stop()
            await source.stop()


async def test_mixed_farm_across_worker_processes_in_pool_mode(tmp_path: Path) -> None:
    """The same farm, three devices of each dialect, against the multi-process pool (two workers sharing the
    port) in pool mode: every device's shares are judged in whichever worker the kernel gave it, and every
    block pays the pool. The pool's set_version_mask/set_extranonce moves are not made here (the sessions
    live in the worker processes); cpuminer resumes, but may land on the other worker (a fresh
    extranonce1 then, by design: workers own disjoint extranonce1 slices)."""
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=TX_RATE, seed=22) as node:
        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="regtest", refresh_interval=0.2)
        await source.start()
        sink = ListSink()
        cfg = PoolConfig(port=0, mode="pool", pool_address=POOL_ADDRESS, start_difficulty=START_DIFFICULTY,
                         min_difficulty=START_DIFFICULTY, max_difficulty=MAX_DIFFICULTY,
                         share_interval=SHARE_INTERVAL, refresh_interval=0.2)
        pool = WorkerPool(cfg, source, sink, workers=2)
        _, port = await pool.start("127.0.0.1", 0)
        farm = Farm(node, port, sink, None)
        miners = make_miners(seed=100, copies=3)
        try:
            outcomes = await run_farm(farm, miners, resume_same=False)
            # the top bit of extranonce1 names the worker (its slice): 18 devices on one worker is a 2^-17 chance
            assert {m.extranonce1[0] >> 7 for m in miners} == {0, 1}

            # the workers send their share events in batches: wait until every judged share is in
            async def all_events() -> bool:
                return all(len(events_for(sink, o.miner)) >= len(o.shares) + 2 + o.stale_retries
                           for o in outcomes)

            await wait_until(all_events, "the workers' share events")
            await check_outcomes(node, sink, outcomes, lambda m: POOL_ADDRESS)
        finally:
            for m in miners:
                await m.close()
            await pool.stop()
            await source.stop()


async def test_pool_that_refuses_version_rolling(tmp_path: Path) -> None:
    """A pool with no version mask answers `"version-rolling": false`. cgminer then sends five submit params
    (cgminer.c:7158-7163); ESP-Miner still sends six, with version_bits = rolled ^ job = 00000000
    (asic_result_task.c:78, stratum_api.c:735), which must count as "no rolling", not as an error; BFGMiner
    never asked. Each gets shares accepted and a block the node takes."""
    async with EmbeddedNode(tmp_path, rpc_port=0, tx_rate=TX_RATE, seed=23) as node:
        source = source_from_config([UpstreamNode(url=node.rpc_url, cookie_file=str(node.cookie_path))],
                                    chain="regtest", refresh_interval=0.2)
        await source.start()
        sink = ListSink()
        rules = PoolRules(mode="solo", network=REGTEST, start_difficulty=START_DIFFICULTY, version_mask=0,
                          vardiff=VarDiffConfig(SHARE_INTERVAL, START_DIFFICULTY, MAX_DIFFICULTY))
        server = PoolServer(rules=rules, source=source, sink=sink, refresh_interval=0.2)
        _, port = await server.start("127.0.0.1", 0)
        farm = Farm(node, port, sink, None)
        miners: list[Firmware] = [cls(f"{payout_address(cls.name)}.{cls.name}", "x") for cls in
                                  (CgMiner, EspMiner, BfgMiner)]
        farm.miners = len(miners)
        try:
            for m in miners:
                await m.connect("127.0.0.1", port)
                await m.handshake()
                assert m.version_mask == 0, m.name
            cg = miners[0]
            configure = next(r for r in cg.replies if r["id"] == 1)
            assert configure["result"] == {"version-rolling": False} and configure["error"] is None
            outcomes = [Outcome(m) for m in miners]
            await asyncio.gather(*(mine(m, farm, o) for m, o in zip(miners, outcomes, strict=True)))
            for out in outcomes:
                m = out.miner
                assert out.duplicate is not None and out.duplicate.code == 22
                assert out.stale is not None and out.stale.code == 21
                submits = [x["params"] for x in sent(m, "mining.submit")]
                if isinstance(m, EspMiner):
                    assert submits and all(len(p) == 6 and p[5] == "00000000" for p in submits)
                else:
                    assert submits and all(len(p) == 5 for p in submits), m.name
                judged = {(e.job_id, e.share_difficulty) for e in events_for(sink, m) if e.accepted}
                assert all((s.work.job_id, s.difficulty) in judged for s in out.shares), m.name
                assert out.block is not None and out.block.version == out.block.work.version == 0x20000000
                block = await rpc(node, "getblock", out.block.block_hash, 2)
                assert isinstance(block, dict) and block["confirmations"] >= 1
                script = address_to_script(payout_address(m.name), REGTEST).hex()
                assert any(o["scriptPubKey"]["hex"] == script for o in block["tx"][0]["vout"])
                assert not m.violations and m.error is None
        finally:
            for m in miners:
                await m.close()
            await server.stop()
            await source.stop()

"""Real Stratum V1 material (tests/vectors/stratum_shares.json, version_rolling.json): headers and hashes
rebuilt from mining.notify + mining.submit with pithead.chain's pieces only.

coinbase = coinb1 + extranonce1 + extranonce2 + coinb2; root = fold of the branch from sha256d(coinbase);
prevhash via `prevhash_from_stratum`; version rolled per BIP310 (nVersion = (job & ~mask) | (bits & mask));
ntime/nbits/nonce are big-endian hex of the u32. The share difficulty is DIFF1 / int(display hash).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from chain_vectors import load_vector

from pithead.chain.block import Block
from pithead.chain.coinbase import build_coinbase
from pithead.chain.compact import (
    bits_to_target,
    difficulty_to_target,
    hash_difficulty,
)
from pithead.chain.hashes import (
    display_hex,
    from_display_hex,
    hash_to_int,
    prevhash_from_stratum,
    prevhash_to_stratum,
    sha256_compress,
    sha256_midstate,
    sha256d,
)
from pithead.chain.header import BlockHeader
from pithead.chain.merkle import coinbase_branch, fold_branch
from pithead.chain.script import p2pkh_script, parse_bip34_height
from pithead.chain.tx import Transaction
from pithead.chain.witness import find_commitment, witness_commitment

SHARES: list[dict[str, Any]] = load_vector("stratum_shares.json")["vectors"]
ROLLING = load_vector("version_rolling.json")

COINBASE_SCRIPT_OFFSET = 4 + 1 + 36 + 1  # version, input count, null prevout, 1-byte script length


def rolled_version(job_version: int, version_bits: int, mask: int) -> int:
    """BIP310: nVersion = (job_version & ~mask) | (version_bits & mask)."""
    return (job_version & ~mask & 0xFFFFFFFF) | (version_bits & mask)


def u32(hex8: str) -> int:
    assert len(hex8) == 8
    return int(hex8, 16)


def share_header(
    *,
    prevhash: str,
    coinbase: bytes,
    branch: list[str],
    version: int,
    nbits: str,
    ntime: str,
    nonce: str,
) -> BlockHeader:
    root = fold_branch(sha256d(coinbase), [bytes.fromhex(b) for b in branch])
    return BlockHeader(version, prevhash_from_stratum(prevhash), root, u32(ntime), u32(nbits), u32(nonce))


def _by(pred: str) -> list[dict[str, Any]]:
    return [v for v in SHARES if pred in v["name"]]


# --- the public-pool testnet session: GBT → notify → Bitaxe submit with version bits -------------------


@pytest.mark.parametrize("v", [v for v in SHARES if "mining.submit" in v.get("given", {})], ids=lambda v: v["name"][:30])
def test_rolled_share_from_notify_and_submit(v: dict[str, Any]) -> None:
    g, d = v["given"], v["derived"]
    notify = g["mining.notify_expected"]["params"]
    _job, prevhash, coinb1, coinb2, branch, version, nbits, _ntime, _clean = notify
    _worker, job_id, en2, s_ntime, s_nonce, *rest = g["mining.submit"]["params"]
    assert job_id == notify[0]
    mask = u32(g["mining.configure_response"]["result"]["version-rolling.mask"])
    version_bits = u32(rest[0]) if rest else 0
    assert version_bits & ~mask == 0  # BIP310: the miner may only touch bits inside the mask
    assert len(bytes.fromhex(en2)) == g["extranonce2_size"]
    coinbase = bytes.fromhex(coinb1 + g["extranonce1"] + en2 + coinb2)
    assert coinbase.hex() == d["coinbase_tx_hex"]
    assert display_hex(sha256d(coinbase)) == d["coinbase_txid"]
    nversion = rolled_version(u32(version), version_bits, mask)
    assert f"{nversion:08x}" == d["rolled_version_hex"]
    header = share_header(
        prevhash=prevhash, coinbase=coinbase, branch=branch, version=nversion, nbits=nbits, ntime=s_ntime, nonce=s_nonce
    )
    assert header.serialize().hex() == d["header_hex"]
    assert header.merkle_root.hex() == d["merkle_root_internal_hex"]
    assert header.hash_hex() == d["share_hash"]
    assert hash_difficulty(hash_to_int(header.hash())) == pytest.approx(d["share_difficulty"], rel=1e-12)
    # It met the pool's difficulty (suggested 512), not the network's target.
    pool_diff = g["set_difficulty_after_suggest"]["params"][0]
    assert header.meets_target(difficulty_to_target(pool_diff))
    assert header.meets_target(bits_to_target(header.bits)) is d["is_block"]
    assert f"{bits_to_target(header.bits):064x}" == d["network_target_from_bits"]
    # Without the version bits the same share hashes to something else entirely.
    unrolled = BlockHeader(u32(version), *[getattr(header, f) for f in ("prev_hash", "merkle_root", "time", "bits", "nonce")])
    assert unrolled.hash() != header.hash()

    # The template side: prevhash encoding, branch and witness commitment from the template's hashes.
    gbt = g["getblocktemplate"]
    assert prevhash_to_stratum(from_display_hex(gbt["previousblockhash"])) == prevhash
    assert display_hex(prevhash_from_stratum(prevhash)) == d["prev_block_hash_display"]
    txs = gbt["transactions_txid_hash_fee_weight"]
    assert [b.hex() for b in coinbase_branch([from_display_hex(t["txid"]) for t in txs])] == branch
    assert branch == d["merkle_branch_from_template_txids"]
    commitment = witness_commitment([from_display_hex(t["hash"]) for t in txs])
    assert commitment.hex() == d["witness_commitment_from_template_wtxids"]
    assert gbt["default_witness_commitment"] == "6a24aa21a9ed" + commitment.hex()
    cb_tx = Transaction.parse(coinbase)
    assert find_commitment([o.script_pubkey for o in cb_tx.outputs]) == commitment
    assert sum(o.value for o in cb_tx.outputs) == gbt["coinbasevalue"]
    assert parse_bip34_height(cb_tx.inputs[0].script_sig) == gbt["height"] == v["height"]
    assert f"{gbt['version']:08x}" == version and gbt["bits"] == nbits


# --- ESP-Miner's Slush mainnet job: coinbase + 13 branches → root → header → difficulty 683 -------------


def test_slush_mainnet_coinbase_branch_to_difficulty() -> None:
    cases = [v for v in SHARES if "expected_difficulty_truncated" in v.get("given", {})]
    assert cases
    for v in cases:
        g, d = v["given"], v["derived"]
        coinbase = bytes.fromhex(g["coinbase_tx_hex"])
        assert display_hex(sha256d(coinbase)) == d["coinbase_txid"]
        header = share_header(
            prevhash=g["prevhash_stratum"],
            coinbase=coinbase,
            branch=g["merkle_branch"],
            version=u32(g["version"]),
            nbits=g["nbits"],
            ntime=g["ntime"],
            nonce=g["nonce"],
        )
        assert header.merkle_root.hex() == g["expected_merkle_root_internal_hex"]
        assert header.serialize().hex() == d["header_hex"]
        assert header.hash_hex() == d["share_hash"]
        diff = hash_difficulty(hash_to_int(header.hash()))
        assert int(diff) == g["expected_difficulty_truncated"]
        assert diff == pytest.approx(d["share_difficulty"], rel=1e-12)
        cb = Transaction.parse(coinbase)
        assert f"{parse_bip34_height(cb.inputs[0].script_sig)}" == str(v["height"])
        assert cb.inputs[0].script_sig.hex().startswith(d["bip34_height_push_hex"])
        assert find_commitment([o.script_pubkey for o in cb.outputs]).hex() == d["witness_commitment_in_coinbase"]
        assert display_hex(prevhash_from_stratum(g["prevhash_stratum"])) == d["prev_block_hash_display"]


# --- Miningcore regtest: share → full block candidate hex and hash -------------------------------------


def test_miningcore_regtest_block_candidate() -> None:
    cases = [v for v in SHARES if "expected_block_hex" in v.get("given", {})]
    assert cases
    for v in cases:
        g, d = v["given"], v["derived"]
        tpl, sub = g["blocktemplate"], g["submit"]
        assert tpl["Transactions"] == []
        # Rebuild Miningcore's coinbase with our builder: height as OP_14, its pushed aux flags and time,
        # then the extranonces, then its pool tag push — the same bytes, so the same txid.
        script_sig = bytes.fromhex(d["coinbase_scriptsig_hex"])
        assert parse_bip34_height(script_sig) == tpl["Height"] == v["height"]
        en1, en2 = bytes.fromhex(g["extranonce1"]), bytes.fromhex(sub["extranonce2"])
        at = script_sig.index(en1 + en2)
        head_len = 1  # OP_14
        reference = Transaction.from_hex(d["coinbase_tx_hex"])
        parts = build_coinbase(
            height=tpl["Height"],
            outputs=list(reference.outputs),
            extranonce1_size=len(en1),
            extranonce2_size=len(en2),
            aux_flags=script_sig[head_len:at],
            tag=script_sig[at + len(en1) + len(en2) :],
            version=reference.version,
            sequence=reference.inputs[0].sequence,  # Miningcore writes 0, not 0xffffffff
        )
        coinbase = parts.serialize(en1, en2)
        assert coinbase.hex() == d["coinbase_tx_hex"]
        assert reference.outputs[0].value == tpl["CoinbaseValue"]
        assert reference.outputs[0].script_pubkey[:3] == p2pkh_script(bytes(20))[:3]
        # No other transactions: the merkle root is the coinbase txid itself.
        header = BlockHeader(
            tpl["Version"],
            from_display_hex(tpl["PreviousBlockhash"]),
            fold_branch(sha256d(coinbase), []),
            u32(sub["ntime"]),
            u32(tpl["Bits"]),
            u32(sub["nonce"]),
        )
        assert header.serialize().hex() == d["header_hex"]
        assert display_hex(header.merkle_root) == d["merkle_root_display"]
        block = Block(header, (parts.transaction(en1, en2),))
        assert block.hex() == g["expected_block_hex"]
        assert block.hash_hex() == g["expected_block_hash"] == d["block_hash_display"]
        assert Block.from_hex(g["expected_block_hex"]) == block
        assert f"{bits_to_target(header.bits):064x}" == tpl["Target"]
        assert header.check_pow() is g["expected_is_block_candidate"]
        # Its hash is far above the worker's 0.5 share target but below regtest's 0x7fffff… network target:
        # a block candidate, which a pool accepts (and submits) whatever the share difficulty.
        assert not header.meets_target(difficulty_to_target(g["worker_difficulty"]))
        # The low-difficulty rejection: a different nonce meets neither the share nor the network target.
        for rej in g["rejections"]:
            if "low difficulty" in rej["case"]:
                bad = share_header(
                    prevhash=prevhash_to_stratum(header.prev_hash),
                    coinbase=build_coinbase(
                        height=tpl["Height"],
                        outputs=list(reference.outputs),
                        extranonce1_size=len(en1),
                        extranonce2_size=len(en2),
                        aux_flags=script_sig[head_len:at],
                        tag=script_sig[at + len(en1) + len(en2) :],
                        version=reference.version,
                        sequence=reference.inputs[0].sequence,
                    ).serialize(en1, bytes.fromhex(rej["submit"]["extranonce2"])),
                    branch=[],
                    version=tpl["Version"],
                    nbits=tpl["Bits"],
                    ntime=rej["submit"]["ntime"],
                    nonce=rej["submit"]["nonce"],
                )
                assert not bad.meets_target(difficulty_to_target(g["worker_difficulty"]))
                assert not bad.check_pow()


# --- Slush's documented notify example and ESP-Miner's coinbase/merkle tests built on it ----------------


def test_slush_doc_example_coinbase_and_merkle() -> None:
    cases = [v for v in SHARES if "coinbase_construction" in v.get("given", {})]
    assert cases
    for v in cases:
        g, d = v["given"], v["derived"]
        cc = g["coinbase_construction"]
        coinbase = bytes.fromhex(cc["coinb1"] + cc["extranonce1"] + cc["extranonce2"] + cc["coinb2"])
        assert coinbase.hex() == cc["expected_coinbase_hex"]
        assert display_hex(sha256d(coinbase)) == d["coinbase_txid"]
        assert fold_branch(sha256d(coinbase), []).hex() == d["no_branch_merkle_root_internal_hex"]
        mr = g["merkle_root_test"]
        root = fold_branch(sha256d(bytes.fromhex(mr["coinbase_hex"])), [bytes.fromhex(b) for b in mr["merkle_branch"]])
        assert root.hex() == mr["expected_merkle_root_internal_hex"]
        params = g["mining.notify"]["params"]
        assert params[2] == cc["coinb1"] and params[3] == cc["coinb2"]
        assert display_hex(prevhash_from_stratum(params[1])) == d["prev_block_hash_display"]
        assert prevhash_to_stratum(from_display_hex(d["prev_block_hash_display"])) == params[1]
        # The height is the coinb1 scriptSig's first push.
        assert parse_bip34_height(bytes.fromhex(cc["coinb1"])[COINBASE_SCRIPT_OFFSET:]) == d["bip34_height_from_coinb1"]
        tx = Transaction.parse(coinbase)
        assert tx.is_coinbase() and tx.serialize() == coinbase


def test_esp_miner_notify_fields() -> None:
    cases = [v for v in SHARES if "expected_parse" in v.get("given", {})]
    assert cases
    for v in cases:
        g, d = v["given"], v["derived"]
        params = g["mining.notify"]["params"]
        exp = g["expected_parse"]
        assert params[0] == exp["job_id"]
        assert len(params[4]) == exp["merkle_branch_count"]
        assert u32(params[5]) == exp["version"]
        assert u32(params[6]) == exp["nbits"]
        assert u32(params[7]) == exp["ntime"]
        assert params[8] is exp["clean_jobs"]
        assert display_hex(prevhash_from_stratum(params[1])) == d["prev_block_hash_display"]
        script = bytes.fromhex(params[2])[COINBASE_SCRIPT_OFFSET:]
        assert script.hex().startswith(d["bip34_height_push_hex"])
        assert parse_bip34_height(script) == v["height"]
        assert u32(g["mining.set_version_mask"]["params"][0]) == g["expected_version_mask"]
        for b in params[4]:
            assert len(bytes.fromhex(b)) == 32


# --- midstate -------------------------------------------------------------------------------------------


def test_header_midstate() -> None:
    cases = [v for v in SHARES if "expected_midstate_hex" in v.get("given", {})]
    assert cases
    for v in cases:
        g, d = v["given"], v["derived"]
        first64 = (
            u32(g["version"]).to_bytes(4, "little")
            + prevhash_from_stratum(g["prevhash_stratum"])
            + bytes.fromhex(g["merkle_root_internal_hex"])[:28]
        )
        assert first64.hex() == d["header_first_64_bytes_hex"]
        mid = sha256_midstate(first64)
        assert mid.hex() == d["midstate_state_words_big_endian_hex"]
        # The source's form: each state word serialized little-endian.
        words_le = b"".join(mid[i : i + 4][::-1] for i in range(0, 32, 4))
        assert words_le.hex().upper() == g["expected_midstate_hex"].upper()
        # Finishing from the midstate with the header's last 16 bytes (+ padding) gives the real SHA-256.
        last16 = (
            bytes.fromhex(g["merkle_root_internal_hex"])[28:]
            + u32(g["ntime"]).to_bytes(4, "little")
            + u32(g["nbits"]).to_bytes(4, "little")
            + bytes(4)  # any nonce
        )
        block2 = last16 + b"\x80" + bytes(39) + (80 * 8).to_bytes(8, "big")
        state = struct.unpack(">8I", mid)
        first = struct.pack(">8I", *sha256_compress(state, block2))
        assert first == hashlib.sha256(first64 + last16).digest()


# --- version rolling (BIP310/BIP320) ------------------------------------------------------------------


def test_version_rolling_vectors() -> None:
    bip320 = u32(ROLLING["bip320"]["general_purpose_mask"])
    assert bip320 == 0x1FFFE000
    assert u32(ROLLING["bip320"]["signalling_ignore_mask"]) == bip320 ^ 0xFFFFFFFF
    checked = 0
    for v in ROLLING["vectors"]:
        if "expected_nversion" in v:
            got = rolled_version(u32(v["job_version"]), u32(v["version_bits"]), u32(v["mask"]))
            assert f"{got:08x}" == v["expected_nversion"]
            checked += 1
        if "nversion" in v and "derived" in v:
            d = v["derived"]
            nv = u32(v["nversion"])
            job = u32(d["assumed_job_version"])
            assert nv & ~bip320 & 0xFFFFFFFF == job & ~bip320 & 0xFFFFFFFF  # only BIP320 bits differ
            assert f"{nv & bip320:08x}" == d["version_bits"]
            assert f"{rolled_version(job, nv & bip320, bip320):08x}" == d["roundtrip"]
            checked += 1
        if "expected_sequence" in v:
            # Miner side: step the rolled bits by the mask's lowest bit, carrying only inside the mask.
            mask, cur, seen = u32(v["mask"]), u32(v["start"]), []
            low = mask & -mask
            for _ in v["expected_sequence"]:
                cur = (cur & ~mask & 0xFFFFFFFF) | (((cur & mask) + low) & mask)
                seen.append(f"{cur:08x}")
            assert seen == v["expected_sequence"]
            checked += 1
        if "expected_mask" in v:
            assert u32(v["notification"]["params"][0]) == u32(v["expected_mask"])
            checked += 1
    assert checked >= 3
    # 881423's rolled version is the one its real header carries.
    blocks = {b["height"]: b for b in load_vector("blocks.json")["vectors"]}
    if 881423 in blocks:
        assert f"{blocks[881423]['version'] & 0xFFFFFFFF:08x}" == "2e596000"


def test_rolled_version_stays_inside_the_mask() -> None:
    job = 0x20000004
    for mask in (0x1FFFE000, 0x00FFFF00, 0xFFFFFFFF, 0):
        for bits in (0, 0x00002000, 0x1FFFE000, 0xFFFFFFFF):
            got = rolled_version(job, bits, mask)
            assert got & ~mask & 0xFFFFFFFF == job & ~mask & 0xFFFFFFFF
            assert got & mask == bits & mask
            # Any u32 version (top bit set too) serializes into a header as 4 bytes.
            h = BlockHeader(got, bytes(32), bytes(32), 0, 0x207FFFFF, 0)
            assert int.from_bytes(h.serialize()[:4], "little") == got
            assert BlockHeader.parse(h.serialize()).serialize() == h.serialize()

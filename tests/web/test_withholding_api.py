"""Block withholding in the REST API and Prometheus, over a real SQLite ledger store (webseed: worker A's
work was worth 14 blocks and it found 1, flagged, its payouts held by an operator; B has half a block's
worth and none found, which says nothing)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from webseed import A_EXPECTED, ADDR_A, ADDR_B, B_EXPECTED, BLOCK_HASH, BUCKET, HOLD_REASON, Seed, fixed_clock

from pithead.ledger.withholding import DEFAULT_LEVEL, min_expected_blocks
from pithead.web.app import create_app
from pithead.web.services import PoolInfo, Services

A_P = 15 * math.exp(-14.0)  # P(X <= 1), X ~ Poisson(14)


def client_for(seed: Seed) -> TestClient:
    return TestClient(create_app(Services(store=seed.store, clock=fixed_clock(seed.now), bucket_width_s=BUCKET,
                                          info=PoolInfo(mode="pool"))))


def test_the_pool_summary_has_luck_effort_and_the_flag_count(seeded: Seed) -> None:
    p = client_for(seeded).get("/api/pool").json()
    assert [lk["span"] for lk in p["luck"]] == ["all", "last 10", "last 100"]
    every = p["luck"][0]
    assert every["blocks"] == 1 and every["expected_blocks"] == pytest.approx(A_EXPECTED + B_EXPECTED)
    assert every["luck"] == pytest.approx(1 / 14.5) and every["low"] < every["luck"] < every["high"]
    last = p["luck"][1]
    assert last["blocks"] == 1 and last["luck"] == pytest.approx(1 / 1.25)  # the one block's effort
    assert p["round_effort"] == pytest.approx(2.0)
    assert p["withholding_flagged"] == 2 and p["payouts_held"] == 1


def test_workers_and_blocks_carry_their_evidence(seeded: Seed) -> None:
    c = client_for(seeded)
    ws = {w["worker"]: w["withholding"] for w in c.get("/api/workers").json()}
    a, b = ws[f"{ADDR_A}.rig1"], ws[f"{ADDR_B}.cpu"]
    assert a["expected_blocks"] == A_EXPECTED and a["blocks_found"] == 1
    assert a["p_value"] == pytest.approx(A_P, rel=1e-9) and a["anytime_p"] < DEFAULT_LEVEL
    assert a["flagged"] is True and a["flagged_since"] == seeded.now - 1200
    assert b["flagged"] is False and b["p_value"] == pytest.approx(math.exp(-B_EXPECTED)) and b["anytime_p"] == pytest.approx(0.5 / math.expm1(0.5))
    assert c.get(f"/api/workers/{ADDR_A}.rig1").json()["withholding"] == a
    assert c.get("/api/blocks").json()[0]["effort"] == 1.25
    assert c.get(f"/api/blocks/{BLOCK_HASH}").json()["effort"] == 1.25


def test_the_withholding_report(seeded: Seed) -> None:
    c = client_for(seeded)
    r = c.get("/api/withholding").json()
    assert r["level"] == DEFAULT_LEVEL and r["min_expected_blocks"] == pytest.approx(min_expected_blocks())
    assert [(s["kind"], s["name"], s["address"], s["payouts_held"]) for s in r["flagged"]] == [
        ("address", ADDR_A, ADDR_A, True), ("worker", f"{ADDR_A}.rig1", ADDR_A, True)]
    assert [s["name"] for s in r["least_likely"]] == [f"{ADDR_A}.rig1", f"{ADDR_B}.cpu"]  # lowest P first
    assert [(h["address"], h["worker"], h["actor"], h["reason"]) for h in r["holds"]] == [
        (ADDR_A, f"{ADDR_A}.rig1", "alice", HOLD_REASON)]
    (entry,) = r["hold_log"]
    assert entry["action"] == "hold" and entry["auth"] == "cli"
    assert entry["evidence"]["worker"]["expected"] == A_EXPECTED and entry["evidence"]["worker"]["found"] == 1
    assert r["round_effort"] == pytest.approx(2.0)
    # scoped to an address: its own workers, flags and holds only
    mine = c.get(f"/api/withholding?address={ADDR_B}").json()
    assert mine["flagged"] == [] and mine["holds"] == [] and mine["hold_log"] == []
    assert [s["name"] for s in mine["least_likely"]] == [f"{ADDR_B}.cpu"]
    assert c.get("/api/withholding?address=nope").status_code == 400
    assert c.get("/api/withholding?limit=0").status_code == 422


def test_the_address_page_shows_its_evidence_and_hold(seeded: Seed) -> None:
    c = client_for(seeded)
    a = c.get(f"/api/addresses/{ADDR_A}").json()
    assert a["withholding"]["expected_blocks"] == A_EXPECTED and a["withholding"]["flagged"] is True
    assert a["payout_hold"]["reason"] == HOLD_REASON and a["payout_hold"]["actor"] == "alice"
    b = c.get(f"/api/addresses/{ADDR_B}").json()
    assert b["withholding"]["flagged"] is False and b["payout_hold"] is None
    assert c.get("/api/addresses/bcrt1qnobodyhere0000000000000000000000").json()["withholding"] is None
    assert "/api/withholding" in c.get("/openapi.json").json()["paths"]


def test_prometheus_has_the_evidence(seeded: Seed) -> None:
    lines = client_for(seeded).get("/metrics").text.splitlines()

    def value(prefix: str) -> float:
        (line,) = [x for x in lines if x.startswith(prefix + " ")]
        return float(line.rsplit(" ", 1)[1])

    assert value("pithead_pool_blocks_expected_total") == A_EXPECTED + B_EXPECTED
    assert value("pithead_pool_blocks_solved_total") == 1
    assert value('pithead_pool_luck{span="all"}') == pytest.approx(1 / 14.5)
    assert value('pithead_pool_luck_low{span="last 10"}') < 0.8 < value('pithead_pool_luck_high{span="last 10"}')
    assert value("pithead_round_effort") == 2.0
    assert value('pithead_withholding_flagged{kind="worker"}') == 1
    assert value('pithead_withholding_flagged{kind="address"}') == 1
    worker = f'kind="worker",name="{ADDR_A}.rig1"'
    assert value(f"pithead_withholding_expected_blocks{{{worker}}}") == A_EXPECTED
    assert value(f"pithead_withholding_found_blocks{{{worker}}}") == 1
    assert value(f"pithead_withholding_p_value{{{worker}}}") == pytest.approx(A_P, rel=1e-6)
    assert not any(ADDR_B in x for x in lines if x.startswith("pithead_withholding_"))  # flagged ones only
    assert value("pithead_payouts_held") == 1

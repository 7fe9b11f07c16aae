"""The REST API over a real SQLite ledger store: hashrate windows, workers, addresses, blocks, money."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from webseed import ADDR_A, ADDR_B, BLOCK_HASH, BUCKET, Seed, fixed_clock

from pithead.events import ShareEvent
from pithead.ledger import stats
from pithead.web.app import create_app
from pithead.web.services import LiveConnection, PoolInfo, PoolLiveStatus, Services


class Snapshot:
    """A pool's live status as the Stratum server would report it (value object, not a mock)."""

    def __init__(self, status: PoolLiveStatus) -> None:
        self.status = status

    def live_status(self) -> PoolLiveStatus:
        return self.status


def client_for(seed: Seed, **extra: Any) -> TestClient:
    services = Services(
        store=seed.store, clock=fixed_clock(seed.now), bucket_width_s=BUCKET,
        info=PoolInfo(mode="pool", scheme="pplns", fee_percent=1.0, stratum_url="stratum+tcp://127.0.0.1:3333"),
        **extra,
    )
    return TestClient(create_app(services))


def test_pool_summary_windows_and_counts(seeded: Seed) -> None:
    c = client_for(seeded)
    r = c.get("/api/pool")
    assert r.status_code == 200
    p = r.json()
    assert [h["window"] for h in p["hashrate"]] == ["1m", "5m", "1h", "1d"]
    one_hour = p["hashrate"][2]
    # Window aligned down to the bucket: the span covers from the oldest counted bucket to now.
    since = (seeded.now - 3600) // BUCKET * BUCKET
    assert one_hour["span_s"] == pytest.approx(seeded.now - since)
    assert one_hour["enough_shares"] is True
    expected = one_hour["difficulty_sum"] * stats.HASHES_PER_DIFF1 / one_hour["span_s"]
    assert one_hour["hashrate_hps"] == pytest.approx(expected)
    # The interval is the ledger's exact Poisson interval for the share count, scaled per share.
    lo_k, hi_k = stats.poisson_interval(one_hour["shares"])
    per_share = expected / one_hour["shares"]
    assert one_hour["low_hps"] == pytest.approx(lo_k * per_share)
    assert one_hour["high_hps"] == pytest.approx(hi_k * per_share)
    # Worker A sends difficulty 2 every 5 s: 2 * 2**32 / 5 H/s, and the estimate's interval must hold it.
    truth = seeded.a_diff * stats.HASHES_PER_DIFF1 / 5.0
    assert one_hour["low_hps"] <= truth <= one_hour["high_hps"]
    assert p["workers"] == 2 and p["active_workers"] == 2
    assert p["rejected_shares"] == 4
    assert p["rejects_1h"] == {"window": "1h", "total": 4, "by_reason": {"job-not-found": 3, "low-difficulty": 1}}
    assert p["blocks_found"] == 1 and p["last_block_height"] == 101
    assert p["connections"] is None  # no pool attached
    assert p["scheme"] == "pplns" and p["mode"] == "pool"
    # Miners' money from the seeded credits: A 40 BTC + B 9.5 BTC immature; B 0.003 mature, 0.002 reserved.
    assert p["immature_sat"] == 4_000_000_000 + 950_000_000
    assert p["payable_sat"] == 100_000 and p["paid_sat"] == 0


def test_too_few_shares_says_so(seeded: Seed) -> None:
    c = client_for(seeded)
    w = c.get(f"/api/workers/{ADDR_B}.cpu").json()
    for h in w["hashrate"]:
        assert h["enough_shares"] is False and h["hashrate_hps"] is None
        assert "too few shares to estimate" in h["note"]
    assert w["accepted"] == 4 and w["rejected"] == 1


def test_workers_list_and_one(seeded: Seed) -> None:
    c = client_for(seeded)
    ws = c.get("/api/workers").json()
    assert {w["worker"] for w in ws} == {f"{ADDR_A}.rig1", f"{ADDR_B}.cpu"}
    a = c.get(f"/api/workers/{ADDR_A}.rig1").json()
    assert a["online"] is True and a["address"] == ADDR_A
    assert a["hashrate"][2]["shares"] >= seeded.a_shares - 1
    assert c.get(f"/api/workers/{ADDR_A}.nope").status_code == 404
    assert c.get("/api/workers/has space").status_code == 400


def test_address_page(seeded: Seed) -> None:
    c = client_for(seeded)
    a = c.get(f"/api/addresses/{ADDR_B}").json()
    assert a["known"] is True
    assert a["balance"]["immature_sat"] == 950_000_000
    assert a["balance"]["mature_sat"] == 300_000
    assert a["balance"]["reserved_sat"] == 200_000
    assert a["balance"]["payable_sat"] == 100_000
    assert [p["total_sat"] for p in a["payouts"]] == [200_000]
    assert len(a["credits"]) == 2
    assert a["blocks"] == []
    assert len(a["recent_shares"]) == 4
    assert a["rejects_1h"]["by_reason"] == {"low-difficulty": 1}
    a2 = c.get(f"/api/addresses/{ADDR_A}").json()
    assert [b["hash"] for b in a2["blocks"]] == [BLOCK_HASH]
    unknown = c.get("/api/addresses/bcrt1qnobodyhere0000000000000000000000").json()
    assert unknown["known"] is False and unknown["workers"] == [] and unknown["balance"]["mature_sat"] == 0


@pytest.mark.parametrize("bad", ["short", "not-an-address!!!!!!!!", "x" * 91])
def test_bad_address_is_400(seeded: Seed, bad: str) -> None:
    c = client_for(seeded)
    r = c.get(f"/api/addresses/{bad}")
    assert r.status_code == 400
    assert "not a Bitcoin address" in r.json()["detail"]
    assert c.get(f"/address/{bad}").status_code in (400, 404)


def test_blocks_balances_payouts_shares(seeded: Seed) -> None:
    c = client_for(seeded)
    blocks = c.get("/api/blocks").json()
    assert blocks[0]["hash"] == BLOCK_HASH and blocks[0]["reward_sat"] == 5_000_010_000
    assert c.get(f"/api/blocks/{BLOCK_HASH}").json()["status"] == "pending"
    assert c.get("/api/blocks/" + "11" * 32).status_code == 404
    assert c.get("/api/blocks/zz").status_code == 422
    bal = {b["address"]: b for b in c.get("/api/balances").json()}
    assert bal[ADDR_A]["immature_sat"] == 4_000_000_000
    pays = c.get("/api/payouts").json()
    assert pays[0]["items"] == [{"address": ADDR_B, "amount_sat": 200_000}] and pays[0]["status"] == "intent"
    recent = c.get("/api/shares/recent?limit=5").json()
    assert len(recent) == 5 and recent == sorted(recent, key=lambda s: -s["id"])
    best = c.get("/api/shares/best?limit=3").json()
    assert [s["share_difficulty"] for s in best] == sorted((s["share_difficulty"] for s in best), reverse=True)
    assert best[0]["share_difficulty"] == seeded.a_diff * 7
    rej = c.get("/api/shares/rejects?window=1d").json()
    assert rej["total"] == 4
    assert c.get("/api/shares/recent?limit=0").status_code == 422
    assert c.get("/api/shares/recent?limit=100000").status_code == 422


def test_hashrate_history_points(seeded: Seed) -> None:
    c = client_for(seeded)
    h = c.get("/api/hashrate?range=1h").json()
    assert h["bucket_s"] == 60
    times = [p["time"] for p in h["points"]]
    assert times == sorted(times) and all(b - a == 60 for a, b in itertools.pairwise(times))
    full = h["points"][1:-1]
    # A full minute holds 12 shares of A at difficulty 2 (plus B's handful near the end).
    a_only = [p for p in full if p["shares"] == 12]
    assert a_only and a_only[0]["hashrate_hps"] == pytest.approx(12 * 2 * stats.HASHES_PER_DIFF1 / 60)
    w = c.get(f"/api/hashrate?range=6h&worker={ADDR_B}.cpu").json()
    assert sum(p["shares"] for p in w["points"]) == 4
    assert c.get("/api/hashrate?range=5y").status_code == 422


def test_connections_from_pool(seeded: Seed) -> None:
    live = PoolLiveStatus(2, (LiveConnection("127.0.0.1:5000", f"{ADDR_A}.rig1", 2.0, seeded.now - 10),
                              LiveConnection("127.0.0.1:5001", None, 1.0, seeded.now - 1)))
    c = client_for(seeded, pool=Snapshot(live))
    assert c.get("/api/pool").json()["connections"] == 2
    conns = c.get("/api/connections").json()
    assert conns["available"] and [s["worker"] for s in conns["sessions"]] == [f"{ADDR_A}.rig1", None]


def test_no_ledger_is_503_not_crash() -> None:
    c = TestClient(create_app(Services()))
    r = c.get("/api/pool")
    assert r.status_code == 503 and "ledger" in r.json()["detail"]
    n = c.get("/api/network").json()
    assert n["available"] is False and n["error"] == "no node configured"
    assert c.get("/healthz").json()["ledger"] is False
    assert c.get("/metrics").status_code == 200


def test_openapi_documents_endpoints(seeded: Seed) -> None:
    c = client_for(seeded)
    spec = c.get("/openapi.json").json()
    for path in ["/api/pool", "/api/network", "/api/workers", "/api/workers/{worker}", "/api/addresses/{address}",
                 "/api/hashrate", "/api/shares/recent", "/api/shares/best", "/api/blocks", "/api/balances",
                 "/api/payouts", "/api/stream"]:
        assert path in spec["paths"], path
    assert "low_hps" in spec["components"]["schemas"]["Hashrate"]["properties"]
    docs = c.get("/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()  # nothing loaded from outside
    assert c.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_dashboard_pages_served(seeded: Seed) -> None:
    c = client_for(seeded)
    page = c.get("/")
    assert page.status_code == 200 and "uPlot.iife.min.js" in page.text
    assert c.get(f"/address/{ADDR_A}").text == page.text
    r = c.get(f"/address?q={ADDR_A}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/address/{ADDR_A}"
    js = c.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert js.status_code == 200 and "uPlot" in js.text
    assert c.get("/static/app.js").status_code == 200


def test_min_shares_constant_is_used(seeded: Seed) -> None:
    c = client_for(seeded)
    one_minute = c.get("/api/pool").json()["hashrate"][0]
    assert one_minute["enough_shares"] == (one_minute["shares"] >= stats.MIN_SHARES_RELIABLE)


def test_worker_list_and_address_page_agree_with_one_worker_reads(seeded: Seed) -> None:
    """The list and the address page read every worker's windows in one grouped query; each entry must be
    exactly what the one-worker endpoint (its own query) says, idle workers included."""
    idle = f"{ADDR_A}.old"  # last seen two days ago: no statistics bucket inside any window
    seeded.store.add_shares([ShareEvent(seeded.now - 2 * 86400, idle, ADDR_A, 3.0, "j", 99, True, None, 4.0)], BUCKET)
    c = client_for(seeded)
    listed = c.get("/api/workers").json()
    assert len(listed) == 3
    for w in listed:
        assert w == c.get(f"/api/workers/{w['worker']}").json()
    old = next(w for w in listed if w["worker"] == idle)
    assert old["online"] is False and all(h["shares"] == 0 and h["hashrate_hps"] is None for h in old["hashrate"])
    # A page smaller than the worker count names its workers in the query; same answers.
    assert c.get("/api/workers?limit=1").json() == listed[:1]
    page = c.get(f"/api/addresses/{ADDR_A}").json()
    assert sorted(w["worker"] for w in page["workers"]) == sorted([f"{ADDR_A}.rig1", idle])
    for w in page["workers"]:
        assert w == c.get(f"/api/workers/{w['worker']}").json()

"""The API, charts and /metrics of a pool that was stopped for an hour and started again: every window
reads the miners' true rate over the time the pool was up (and says how long that was), not the work
spread over the outage too.

The regression from operators: after a one-hour outage, `pithead up`'s 1-day rate read low for a day.
Runs on both store backends (the `store` fixture). The uptime rows are the heartbeats the ledger writes
(`Ledger.mark_up`, as `run_ledger` does every 10 s), so no part of pithead is stood in for.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from webseed import ADDR_A, ADDR_B, BUCKET, fixed_clock

from pithead.events import ShareEvent
from pithead.ledger import stats
from pithead.ledger.ledger import Ledger, LedgerSettings
from pithead.ledger.schemes import Scheme
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.uptime import HEARTBEAT_S
from pithead.web.app import create_app
from pithead.web.services import Services

NOW = 1_800_000_033.0  # inside a bucket and a chart step
DIFF = 8.0
TRUE_RATE = DIFF * stats.HASHES_PER_DIFF1  # one share a second at DIFF
UP_S, DOWN_S = 1800.0, 3600.0  # up 30 min, down 60 min, up 30 min (running now)
FIRST_START = NOW - 2 * UP_S - DOWN_S
FIRST_STOP = FIRST_START + UP_S
RESTART = NOW - UP_S
WORKER_A, WORKER_B = f"{ADDR_A}.rig1", f"{ADDR_B}.cpu"


def run(ledger: Ledger, start: float, stop: float, last_beat: float | None = None) -> None:
    """One run of the pool from `start` to `stop`: its heartbeats (every HEARTBEAT_S, the last one at
    `last_beat`, by default the stop) and both workers' shares, one a second each."""
    name, end = f"run-{start:.0f}", stop if last_beat is None else last_beat
    t = start
    while t < end:
        ledger.mark_up(name, start, t)
        t += HEARTBEAT_S
    ledger.mark_up(name, start, end)
    events = []
    for worker, address in ((WORKER_A, ADDR_A), (WORKER_B, ADDR_B)):
        events += [ShareEvent(start + i, worker, address, DIFF, "j", 100, True, None, DIFF) for i in range(int(stop - start))]
    ledger.apply(sorted(events, key=lambda e: e.time))


def outage_pool(store: LedgerStore, record: bool = True) -> TestClient:
    ledger = Ledger(store, LedgerSettings(scheme=Scheme.SOLO))
    run(ledger, FIRST_START, FIRST_STOP)
    run(ledger, RESTART, NOW, last_beat=NOW - 4)  # its last heartbeat a few seconds ago: running
    if not record:  # the same shares in a ledger from before the uptime record
        store._exec("DELETE FROM uptime")  # type: ignore[attr-defined]
    return TestClient(create_app(Services(store=store, clock=fixed_clock(NOW), bucket_width_s=BUCKET)))


def up_in(start: float) -> float:
    """Seconds the pool was up from `start` to NOW, its runs widened to whole buckets as windows count them."""
    first = max(0.0, min(FIRST_STOP + BUCKET - FIRST_STOP % BUCKET, NOW) - max(start, FIRST_START - FIRST_START % BUCKET))
    return first + NOW - max(start, RESTART - RESTART % BUCKET)


def check_windows(hashrate: list[dict[str, Any]], truth: float) -> None:
    by_name = {h["window"]: h for h in hashrate}
    for name in ("1m", "5m"):  # inside the second run: observed whole
        assert by_name[name]["observed_s"] == by_name[name]["span_s"]
    for name in ("1m", "5m", "1h", "1d"):
        h = by_name[name]
        assert h["enough_shares"] is True
        assert h["low_hps"] <= truth <= h["high_hps"], (name, h)
        assert h["hashrate_hps"] == pytest.approx(h["difficulty_sum"] * stats.HASHES_PER_DIFF1 / h["observed_s"])
    hour, day = by_name["1h"], by_name["1d"]
    # the outage is left out of the exposure: the hour is the second run's half hour, the day both runs
    assert hour["observed_s"] == up_in(NOW - hour["span_s"]) and UP_S <= hour["observed_s"] < UP_S + BUCKET
    assert day["observed_s"] == up_in(NOW - day["span_s"]) and 2 * UP_S <= day["observed_s"] < 2 * UP_S + 3 * BUCKET
    workers = round(truth / TRUE_RATE)
    assert hour["shares"] == workers * UP_S and day["shares"] == workers * 2 * UP_S


def test_windows_spanning_an_outage_read_the_true_rate(store: LedgerStore) -> None:
    c = outage_pool(store)
    check_windows(c.get("/api/pool").json()["hashrate"], 2 * TRUE_RATE)
    check_windows(c.get(f"/api/workers/{WORKER_A}").json()["hashrate"], TRUE_RATE)
    for w in c.get("/api/workers").json():
        check_windows(w["hashrate"], TRUE_RATE)
    page = c.get(f"/api/addresses/{ADDR_B}").json()
    check_windows(page["hashrate"], TRUE_RATE)
    check_windows(page["workers"][0]["hashrate"], TRUE_RATE)


def test_a_ledger_without_uptime_on_record_reads_as_before(store: LedgerStore) -> None:
    """No uptime rows (a ledger from before the record): every second since the first share is observed,
    so the outage still dilutes the long windows, exactly as before."""
    c = outage_pool(store, record=False)
    by_name = {h["window"]: h for h in c.get("/api/pool").json()["hashrate"]}
    hour, day = by_name["1h"], by_name["1d"]
    assert hour["observed_s"] == hour["span_s"] and hour["high_hps"] < 2 * TRUE_RATE
    assert day["observed_s"] == NOW - (FIRST_START - FIRST_START % BUCKET) and day["high_hps"] < 2 * TRUE_RATE


def test_chart_points_are_over_the_time_the_pool_was_up(store: LedgerStore) -> None:
    c = outage_pool(store)
    for query, truth in (("", 2 * TRUE_RATE), (f"&worker={WORKER_A}", TRUE_RATE), (f"&address={ADDR_B}", TRUE_RATE)):
        points = c.get(f"/api/hashrate?range=1h{query}").json()["points"]
        assert points[0]["time"] < RESTART - 60  # the chart reaches back into the outage
        for p in points:
            if p["time"] + 60 <= RESTART - RESTART % BUCKET:  # a step inside the outage
                assert p["shares"] == 0 and p["hashrate_hps"] == 0, p
            else:
                # the step the restart falls in is over its up part only: the true rate to within the
                # restart's bucket (counted whole, as the windows do), not half of it
                assert 0.85 * truth <= p["hashrate_hps"] <= 1.15 * truth, p
        day = c.get(f"/api/hashrate?range=6h{query}").json()["points"]
        busy = [p for p in day if p["shares"]]
        # whole 5-minute steps inside either run read the true rate; their neighbours in the outage zero
        inside = [p for p in busy if FIRST_START <= p["time"] and p["time"] + 300 <= FIRST_STOP]
        inside += [p for p in busy if RESTART <= p["time"] and p["time"] + 300 <= NOW]
        assert len(inside) >= 8
        for p in inside:
            assert p["hashrate_hps"] == pytest.approx(truth), p
        assert all(p["hashrate_hps"] == 0 for p in day if not p["shares"])


def test_metrics_say_the_pool_rate_is_over_its_up_time(store: LedgerStore) -> None:
    c = outage_pool(store)
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in c.get("/metrics").text.splitlines()
        if line and not line.startswith("#")
    }
    for window, up in (("1h", UP_S), ("1d", 2 * UP_S)):
        observed = lines[f'pithead_pool_hashrate_observed_seconds{{window="{window}"}}']
        assert up <= observed < up + 3 * BUCKET
        low = lines[f'pithead_pool_hashrate_low_hashes_per_second{{window="{window}"}}']
        high = lines[f'pithead_pool_hashrate_high_hashes_per_second{{window="{window}"}}']
        assert low <= 2 * TRUE_RATE <= high

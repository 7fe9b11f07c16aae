"""The dashboard in headless Chromium (Debian's package, driven over the DevTools Protocol): the page
renders, the charts have data, live updates arrive, the address view works, the luck and block withholding
panel shows the flagged worker's evidence (and the address page its payout hold), and the console stays
clean. A screenshot is kept under test-artifacts/."""

from __future__ import annotations

from typing import Any

import pytest
from cdp import ARTIFACTS, Browser, require_chromium
from webseed import ADDR_A, ADDR_B, BUCKET, HOLD_REASON, Seed

from pithead.ledger.store.records import BlockRecord, BlockStatus
from pithead.web.app import create_app
from pithead.web.server import WebServer
from pithead.web.services import LiveConnection, PoolInfo, PoolLiveStatus, Services

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


class FixedNode:
    """A node stand-in answering the two calls the dashboard's node monitor makes, with a network difficulty
    that gives readable odds for the seeded pool (~1.7 GH/s: a block every ~2.9 days)."""

    DIFFICULTY = 100_000.0

    async def call(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        if method == "getblockchaininfo":
            return {"chain": "regtest", "blocks": 120, "bestblockhash": "00" * 32, "difficulty": self.DIFFICULTY}
        assert method == "getmininginfo", method
        return {"difficulty": self.DIFFICULTY, "networkhashps": 7.2e11, "pooledtx": 3}


class Snapshot:
    def __init__(self, status: PoolLiveStatus) -> None:
        self.status = status

    def live_status(self) -> PoolLiveStatus:
        return self.status


async def test_dashboard_renders_with_data(live_seeded: Seed) -> None:
    chromium = require_chromium()
    live = PoolLiveStatus(1, (LiveConnection("127.0.0.1:40000", f"{ADDR_A}.rig1", 2.0, live_seeded.now - 2 * 3600,
                                             user_agent="bitaxe/BM1366/v2.4.0", last_share_at=live_seeded.now - 3),))
    # A block that lost a race: the node had another at its height ("inconclusive"): shown as stale.
    live_seeded.store.add_block(BlockRecord(
        "ee" * 32, 102, live_seeded.now - 300, f"{ADDR_A}.rig1", ADDR_A, 5_000_000_000, 0, BlockStatus.STALE, 0,
        "pplns", 4.6e-10, live_seeded.now - 300, node_result="inconclusive"))
    services = Services(
        store=live_seeded.store, pool=Snapshot(live), bucket_width_s=BUCKET, node=FixedNode(),
        info=PoolInfo(mode="pool", scheme="pplns", fee_percent=1.0, stratum_url="stratum+tcp://127.0.0.1:3333"),
    )
    server = WebServer(create_app(services), port=0)
    await server.start()
    try:
        async with Browser(chromium) as b:
            await b.navigate(server.url + "/")
            await b.wait_for("document.body?.dataset.ready === '1'")
            # Live updates arrive over Server-Sent Events.
            await b.wait_for("document.getElementById('live')?.className === 'live on'")
            points = await b.evaluate(
                "JSON.stringify(Object.fromEntries(Object.entries(window.__pithead.charts).map("
                "([k, c]) => [k, c.data.slice(1).map(s => s.filter(v => v > 0).length)])))"
            )
            import json

            charts = json.loads(points)
            assert set(charts) == {"pool", "workers"}
            assert charts["pool"][0] >= 50  # two hours of shares on a 1 h chart at 1 min steps
            assert len(charts["workers"]) == 2 and all(n > 0 for n in charts["workers"])
            cards = await b.evaluate("[...document.querySelectorAll('#rates .card')].map(c => c.innerText)")
            assert len(cards) == 4 and "H/s" in cards[2] and "90%" in cards[2]
            workers = await b.evaluate("document.querySelector('#workers tbody').innerText")
            assert "too few shares to estimate" in workers  # worker B has only 4 shares
            assert "H/s" in workers
            blocks = await b.evaluate("document.querySelector('#blocks tbody').innerText")
            assert "101" in blocks and "pending" in blocks
            assert await b.evaluate("document.getElementById('pool-conns').innerText") == "1"
            # Luck and block withholding: the pool's luck cards, the flagged worker with lambda, k and P, the alert.
            luck = await b.evaluate("[...document.querySelectorAll('#luck .card')].map(c => c.innerText)")
            assert len(luck) == 3 and "1 found / 14.5 expected" in luck[0] and "7 %" in luck[0]
            suspects = await b.evaluate("[...document.querySelectorAll('#suspects tbody tr')].map(r => r.innerText)")
            flagged_row = next(r for r in suspects if "rig1" in r)
            assert "14" in flagged_row and "1.2e-5" in flagged_row and "flagged" in flagged_row
            assert "payouts held" in flagged_row
            assert await b.evaluate("document.getElementById('wh-flagged').innerText") == "2"
            alert = await b.evaluate("document.getElementById('withholding-alert').innerText")
            assert "Flagged as possibly withholding blocks (2)" in alert and "rig1" in alert
            assert "125 %" in blocks  # the block's effort
            # How far from maturity: 3 of 100 confirmations, ~97 blocks of 10 minutes to go.
            assert "3/100 · ~16.2 h" in blocks
            stale = await b.evaluate("document.querySelector('#blocks tbody td.st-stale')?.innerText")
            assert stale == "stale (0)"  # its own status, not a red "rejected"
            assert await b.evaluate("document.querySelector('#blocks tbody td.st-rejected')") is None
            # regtest: no public explorer, so no links on hashes
            assert await b.evaluate("document.querySelectorAll('#blocks a[target=_blank]').length") == 0
            # How to connect a miner: the URL, the user format, and settings for the usual miners.
            assert await b.evaluate("document.getElementById('conn-url').innerText") == "stratum+tcp://127.0.0.1:3333"
            assert await b.evaluate("document.getElementById('conn-user').innerText") == "ADDRESS.worker"
            examples = await b.evaluate("document.querySelector('#conn-examples tbody').innerText")
            assert "cgminer -o stratum+tcp://127.0.0.1:3333 -u ADDRESS.worker -p x" in examples
            assert "Stratum URL: 127.0.0.1" in examples and "Stratum Port: 3333" in examples  # Bitaxe
            assert "Antminer" in examples and "Worker: ADDRESS.worker" in examples
            # The network's figures and the odds of a block from the pool's hashrate.
            assert await b.evaluate("document.getElementById('net-hash').innerText") == "720 GH/s"
            eta = await b.evaluate("document.getElementById('odds-pool-eta').innerText")
            assert eta.startswith("~2.") and eta.endswith("days"), eta  # 1e5 x 2^32 / ~1.7 GH/s
            day = await b.evaluate("document.getElementById('odds-pool-24h').innerText")
            assert 25 < float(day.rstrip(" %")) < 35, day  # 1 - exp(-1 d / 2.9 d)
            # Live connections: the miner's user agent, how long it has been connected, its last share.
            conns = await b.evaluate("document.querySelector('#connections tbody').innerText")
            assert "bitaxe/BM1366/v2.4.0" in conns and "2.0 h" in conns and "s ago" in conns
            await b.screenshot(ARTIFACTS / "dashboard.png")

            await b.navigate(f"{server.url}/address/{ADDR_B}")
            await b.wait_for("document.body?.dataset.ready === '1'")
            head = await b.evaluate("document.getElementById('address-head').innerText")
            assert ADDR_B in head and "9.50000000 BTC" in head  # immature credit of the seeded block
            rates = await b.evaluate("document.getElementById('rates').innerText")
            assert "too few shares to estimate" in rates
            assert await b.evaluate("document.getElementById('pool-kv').offsetParent === null")  # pool-only
            best = await b.evaluate("document.querySelector('#best tbody').innerText")
            assert "1.5" in best  # this address's own best shares, not the pool's
            # B's own evidence: half a block's worth, nothing to say; no hold, no alert
            assert "this address: λ 0.5, k 0" in await b.evaluate("document.getElementById('wh-title').innerText")
            # B has too few shares for a hashrate: its odds say so instead of a number
            assert await b.evaluate("document.getElementById('odds-addr-eta').innerText") == "too few shares to estimate a hashrate"
            assert await b.evaluate("document.getElementById('addr-hold').offsetParent === null")
            assert await b.evaluate("document.getElementById('withholding-alert').offsetParent === null")
            await b.screenshot(ARTIFACTS / "dashboard-address.png")
            # A's page: flagged, and its payouts held by the operator, with the reason
            await b.navigate(f"{server.url}/address/{ADDR_A}")
            await b.wait_for("document.body?.dataset.ready === '1'")
            hold = await b.evaluate("document.getElementById('addr-hold').innerText")
            assert "Payouts held" in hold and HOLD_REASON in hold
            assert "FLAGGED" in await b.evaluate("document.getElementById('wh-title').innerText")
            await b.screenshot(ARTIFACTS / "dashboard-address-held.png")
            assert await b.evaluate("window.__pithead.errors") == []

            # The API explorer at /docs works offline (vendored Swagger UI) and lists the endpoints.
            await b.navigate(f"{server.url}/docs")
            ops = await b.wait_for("document.querySelectorAll('.opblock').length")
            assert ops >= 12
            assert b.console_errors == [], b.console_errors
    finally:
        await server.stop()


def test_missing_browser_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no chromium on PATH
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_chromium()

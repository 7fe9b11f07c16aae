"""The Miningcore-compatible read API against the shapes Miningcore's own source gives its answers.

Sources (read, never copied; the shapes below are transcribed field by field with their C# types):
* Miningcore, github.com/oliverw/miningcore at a553f62301f44c6df80891e408b6526d1dd98692:
  - routes, paging, defaults and errors: src/Miningcore/Api/Controllers/PoolApiController.cs,
    ClusterApiController.cs, ApiControllerBase.cs (`Unknown pool {id}`), Api/ApiException.cs and
    Api/Middlewares/ApiExceptionHandlingMiddleware.cs (the message is the body);
  - shapes: src/Miningcore/Api/Responses/{GetPoolsResponse,GetPoolResponse,GetPoolStatsResponse,
    GetBlocksResponse,GetPaymentsResponse,GetBalanceChangesResponse,GetMinerStatsResponse,
    GetMinerSettingsResponse,ResultResponse,PagedResultResponse}.cs, src/Miningcore/Mining/PoolStats.cs,
    src/Miningcore/Blockchain/Abstractions.cs (BlockchainStats), src/Miningcore/Configuration/ClusterConfig.cs
    (PoolEndpoint, VarDiffConfig, PoolShareBasedBanningConfig),
    src/Miningcore/Persistence/Model/Projections/AmountByDate.cs;
  - serialisation: src/Miningcore/Program.cs (System.Text.Json, camelCase, WhenWritingNull) and
    src/Miningcore/AutoMapperProfile.cs (block status in lower case); amounts per the repositories
    (src/Miningcore/Persistence/Postgres/Repositories/PaymentRepository.cs, StatsRepository.cs).
* The date format: System.Text.Json's writer, .NET docs docs/standard/datetime/system-text-json-support.md
  (formatting levels: `yyyy-MM-ddTHH:mm:ssZ`, and `...ss.FFFFFFFZ` with trailing zeros dropped).
* The front end: github.com/minernl/Miningcore.WebUI at eaa963a815beac66f691840b293ade0204dc68b6,
  js/miningcore.js: the requests it makes and the fields it reads (WEBUI_READS below, with lines).

The ledger is a real SQLite store seeded as the other web tests seed one (webseed), plus confirmed,
orphaned and rejected blocks, mature credits and payouts that went out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from webseed import ADDR_A, ADDR_B, BLOCK_HASH, BUCKET, fixed_clock, seed_store

from pithead import config
from pithead.app.lifecycle import Running
from pithead.app.parts import pool_info
from pithead.ledger import stats
from pithead.ledger.store import open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import (
    BatchStatus,
    BlockRecord,
    BlockStatus,
    CreditKind,
    CreditRecord,
    CreditStatus,
)
from pithead.node.testing import running_node
from pithead.web.api import build_router
from pithead.web.app import create_app
from pithead.web.miningcore.queries import iso_time
from pithead.web.miningcore.router import MAX_PAGE_SIZE, MOUNT_PREFIX
from pithead.web.miningcore.router import build_router as build_miningcore_router
from pithead.web.network import NodeMonitor
from pithead.web.services import PoolInfo, Services

NOW = 1_800_000_030.0  # 2027-01-15T08:00:30Z, mid-bucket
DAY = 86400.0
COIN = 100_000_000
CONF_HASH = "00" * 4 + "c0" * 28
ORPH_HASH = "00" * 4 + "0f" * 28
REJ_HASH = "00" * 4 + "ee" * 28
TX1, TX2 = "11" * 32, "22" * 32
POOL = "pithead"

# --- Miningcore's DTOs, transcribed: JSON name -> C# type -------------------------------------------------
# Value types (int, uint, ulong, double, float, decimal, bool, DateTime) are always written; `T?` and
# reference types (string, classes, arrays, dictionaries) are left out when null (WhenWritingNull).

SHAPES: dict[str, dict[str, str]] = {
    # Api/Responses/GetPoolsResponse.cs
    "ApiCoinConfig": {"type": "string", "name": "string", "symbol": "string", "website": "string",
                      "market": "string", "family": "string", "algorithm": "string", "twitter": "string",
                      "discord": "string", "telegram": "string", "canonicalName": "string"},
    "ApiPoolPaymentProcessingConfig": {"enabled": "bool", "minimumPayment": "decimal", "payoutScheme": "string",
                                       "payoutSchemeConfig": "JToken"},
    "PoolInfo": {"id": "string", "coin": "ApiCoinConfig", "ports": "Dictionary<int,PoolEndpoint>",
                 "paymentProcessing": "ApiPoolPaymentProcessingConfig",
                 "shareBasedBanning": "PoolShareBasedBanningConfig", "clientConnectionTimeout": "int",
                 "jobRebroadcastTimeout": "int", "blockRefreshInterval": "int", "poolFeePercent": "float",
                 "address": "string", "addressInfoLink": "string", "poolStats": "PoolStats",
                 "networkStats": "BlockchainStats", "topMiners": "MinerPerformanceStats[]", "totalPaid": "decimal",
                 "totalBlocks": "uint", "lastPoolBlockTime": "DateTime?", "poolEffort": "double"},
    "GetPoolsResponse": {"pools": "PoolInfo[]"},
    # Api/Responses/GetPoolResponse.cs
    "GetPoolResponse": {"pool": "PoolInfo"},
    # Configuration/ClusterConfig.cs
    "PoolEndpoint": {"listenAddress": "string", "name": "string", "difficulty": "double",
                     "tcpProxyProtocol": "TcpProxyProtocolConfig", "varDiff": "VarDiffConfig", "tls": "bool",
                     "tlsAuto": "bool", "tlsPfxFile": "string", "tlsPfxPassword": "string"},
    "VarDiffConfig": {"minDiff": "double", "maxDiff": "double?", "maxDelta": "double?", "targetTime": "double",
                      "retargetTime": "double", "variancePercent": "double"},
    "PoolShareBasedBanningConfig": {"enabled": "bool", "checkThreshold": "int", "invalidPercent": "double",
                                    "time": "int"},
    # Mining/PoolStats.cs
    "PoolStats": {"lastPoolBlockTime": "DateTime?", "connectedMiners": "int", "poolHashrate": "ulong",
                  "sharesPerSecond": "int"},
    # Blockchain/Abstractions.cs
    "BlockchainStats": {"networkType": "string", "networkHashrate": "double", "networkDifficulty": "double",
                        "nextNetworkTarget": "string", "nextNetworkBits": "string",
                        "lastNetworkBlockTime": "DateTime?", "blockHeight": "ulong", "connectedPeers": "int",
                        "rewardType": "string"},
    # Api/Responses/GetMinerStatsResponse.cs
    "MinerPerformanceStats": {"miner": "string", "hashrate": "double", "sharesPerSecond": "double"},
    "WorkerPerformanceStats": {"hashrate": "double", "sharesPerSecond": "double"},
    "WorkerPerformanceStatsContainer": {"created": "DateTime",
                                        "workers": "Dictionary<string,WorkerPerformanceStats>"},
    "MinerStats": {"pendingShares": "double", "pendingBalance": "decimal", "totalPaid": "decimal",
                   "todayPaid": "decimal", "lastPayment": "DateTime?", "lastPaymentLink": "string",
                   "performance": "WorkerPerformanceStatsContainer",
                   "performanceSamples": "WorkerPerformanceStatsContainer[]"},
    # Api/Responses/GetPoolStatsResponse.cs
    "AggregatedPoolStats": {"poolHashrate": "float", "connectedMiners": "int", "validSharesPerSecond": "int",
                            "networkHashrate": "double", "networkDifficulty": "double", "created": "DateTime"},
    "GetPoolStatsResponse": {"stats": "AggregatedPoolStats[]"},
    # Api/Responses/GetBlocksResponse.cs
    "Block": {"poolId": "string", "blockHeight": "ulong", "networkDifficulty": "double", "status": "string",
              "type": "string", "confirmationProgress": "double", "effort": "double?",
              "transactionConfirmationData": "string", "reward": "decimal", "infoLink": "string", "hash": "string",
              "miner": "string", "source": "string", "created": "DateTime"},
    # Api/Responses/GetPaymentsResponse.cs
    "Payment": {"coin": "string", "address": "string", "addressInfoLink": "string", "amount": "decimal",
                "transactionConfirmationData": "string", "transactionInfoLink": "string", "created": "DateTime"},
    # Api/Responses/GetBalanceChangesResponse.cs
    "BalanceChange": {"poolId": "string", "address": "string", "amount": "decimal", "usage": "string",
                      "created": "DateTime"},
    # Persistence/Model/Projections/AmountByDate.cs
    "AmountByDate": {"amount": "decimal", "date": "DateTime"},
    # Api/Responses/GetMinerSettingsResponse.cs
    "MinerSettings": {"paymentThreshold": "decimal"},
}
VALUE_TYPES = {"int", "uint", "ulong", "double", "float", "decimal", "bool", "DateTime"}
# System.Text.Json's UTC DateTime: seconds, an optional fraction of up to 7 digits without trailing zeros, Z.
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,6}[1-9])?Z$")


def check(value: Any, cs_type: str, where: str = "$") -> None:
    """`value` is what System.Text.Json writes for a `cs_type` (recursively for Miningcore's classes)."""
    base = cs_type.rstrip("?")
    if base.endswith("[]"):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check(item, base[:-2], f"{where}[{i}]")
    elif base.startswith("Dictionary<"):
        key_type, item_type = base[len("Dictionary<") : -1].split(",")
        assert isinstance(value, dict), where
        for k, item in value.items():
            assert isinstance(k, str) and (key_type != "int" or k.isdigit()), f"{where} key {k!r}"
            check(item, item_type, f"{where}.{k}")
    elif base in ("int", "uint", "ulong"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer"
        assert base == "int" or value >= 0, where
    elif base in ("double", "float", "decimal"):
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r}"
    elif base == "bool":
        assert isinstance(value, bool), where
    elif base == "string":
        assert isinstance(value, str), where
    elif base == "DateTime":
        assert isinstance(value, str) and DATETIME.match(value), f"{where}: {value!r}"
    elif base in ("JToken", "TcpProxyProtocolConfig"):
        pass  # any JSON
    else:
        shape = SHAPES[base]
        assert isinstance(value, dict), f"{where}: {value!r}"
        unknown = set(value) - set(shape)
        assert not unknown, f"{where}: fields Miningcore's {base} does not have: {unknown}"
        for name, field_type in shape.items():
            if name in value:
                assert value[name] is not None, f"{where}.{name}: null is left out, never written"
                check(value[name], field_type, f"{where}.{name}")
            else:
                assert field_type not in VALUE_TYPES, f"{where}.{name} ({field_type}) is always written"


# --- the seed ------------------------------------------------------------------------------------------


def seed(store: LedgerStore) -> None:
    """webseed's ledger (A mining diff 2 every 5 s for two hours, B four shares, block 101 pending at
    NOW-600), plus: block 90 confirmed at NOW-3600 with mature credits, block 95 orphaned at NOW-1800,
    block 100 rejected by the node at NOW-900 (not a Miningcore block, and no round boundary), and payouts:
    1 BTC to A and 2 BTC to B sent two days ago (TX1), 0.5 BTC to A confirmed at NOW-1000 (TX2), one
    failed, and webseed's one still reserved (intent)."""
    seed_store(store, NOW)
    blocks = [
        (CONF_HASH, 90, NOW - 3600, BlockStatus.CONFIRMED, 100, 1e-9),
        (ORPH_HASH, 95, NOW - 1800, BlockStatus.ORPHANED, 0, 2e-9),
        (REJ_HASH, 100, NOW - 900, BlockStatus.REJECTED, 0, 3e-9),
    ]
    for h, height, t, status, conf, diff in blocks:
        store.add_block(BlockRecord(h, height, t, f"{ADDR_A}.rig1", ADDR_A, 5_000_000_000, 0, status, conf, "pplns",
                                    diff, t))
    store.add_credits([
        CreditRecord(ADDR_A, 30 * COIN, CreditKind.BLOCK, CreditStatus.MATURE, NOW - 3600, CONF_HASH),
        CreditRecord(ADDR_B, 10 * COIN, CreditKind.BLOCK, CreditStatus.MATURE, NOW - 3600, CONF_HASH),
        CreditRecord(ADDR_A, 20 * COIN, CreditKind.BLOCK, CreditStatus.VOID, NOW - 1800, ORPH_HASH),
    ])
    sent = store.create_batch({ADDR_A: 1 * COIN, ADDR_B: 2 * COIN}, NOW - 2 * DAY)
    store.update_batch(sent.id, BatchStatus.SENT, NOW - 2 * DAY, txid=TX1)
    confirmed = store.create_batch({ADDR_A: COIN // 2}, NOW - 1000)
    store.update_batch(confirmed.id, BatchStatus.SENT, NOW - 1000, txid=TX2)
    store.update_batch(confirmed.id, BatchStatus.CONFIRMED, NOW - 500)
    failed = store.create_batch({ADDR_A: 7 * COIN}, NOW - 400)
    store.update_batch(failed.id, BatchStatus.FAILED, NOW - 400, error="insufficient funds")


INFO = PoolInfo(mode="pool", scheme="pplns", fee_percent=1.0, network="regtest",
                stratum_url="stratum+tcp://0.0.0.0:3333", pool_address=ADDR_A, start_difficulty=2.0,
                min_difficulty=0.001, max_difficulty=1e9, share_interval_s=10.0, payout_threshold_sat=500_000,
                payouts_enabled=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    seed(s)
    yield s
    s.close()


def client(store: LedgerStore, info: PoolInfo = INFO) -> TestClient:
    return TestClient(create_app(Services(store=store, clock=fixed_clock(NOW), bucket_width_s=BUCKET, info=info)))


def get(c: TestClient, path: str) -> Any:
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["access-control-allow-origin"] == "*"  # Program.cs: UseCors(...AllowAnyOrigin()...)
    return r.json()


H = stats.HASHES_PER_DIFF1


# --- every endpoint against its shape --------------------------------------------------------------------

ENDPOINTS: list[tuple[str, str]] = [
    ("/api/pools", "GetPoolsResponse"),
    (f"/api/pools/{POOL}", "GetPoolResponse"),
    (f"/api/pools/{POOL}/performance", "GetPoolStatsResponse"),
    (f"/api/pools/{POOL}/performance?r=Month&i=Day", "GetPoolStatsResponse"),
    (f"/api/pools/{POOL}/miners", "MinerPerformanceStats[]"),
    (f"/api/pools/{POOL}/blocks", "Block[]"),
    (f"/api/pools/{POOL}/payments", "Payment[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}", "MinerStats"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}?perfMode=Hour", "MinerStats"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/payments", "Payment[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/balancechanges", "BalanceChange[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/earnings/daily", "AmountByDate[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/performance", "WorkerPerformanceStatsContainer[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/performance?mode=Month", "WorkerPerformanceStatsContainer[]"),
    (f"/api/pools/{POOL}/miners/{ADDR_A}/settings", "MinerSettings"),
    (f"{MOUNT_PREFIX}/api/blocks", "Block[]"),  # ClusterApiController (under the prefix: see the collision test)
]
# The v2 variants: PagedResultResponse<T> = ResultResponse<T> {result, success} + pageCount (uint).
V2: list[tuple[str, str]] = [
    (f"/api/v2/pools/{POOL}/blocks", "Block[]"),
    (f"/api/v2/pools/{POOL}/payments", "Payment[]"),
    (f"/api/v2/pools/{POOL}/miners/{ADDR_A}/payments", "Payment[]"),
    (f"/api/v2/pools/{POOL}/miners/{ADDR_A}/balancechanges", "BalanceChange[]"),
    (f"/api/v2/pools/{POOL}/miners/{ADDR_A}/earnings/daily", "AmountByDate[]"),
]


@pytest.mark.parametrize(("path", "shape"), ENDPOINTS)
def test_every_endpoint_has_miningcores_shape(store: LedgerStore, path: str, shape: str) -> None:
    body = get(client(store), path)
    check(body, shape)
    assert body  # the seed gives each something to say
    # The same answer under the documented prefix.
    if not path.startswith(MOUNT_PREFIX):
        assert get(client(store), MOUNT_PREFIX + path) == body


@pytest.mark.parametrize(("path", "shape"), V2)
def test_v2_variants_are_paged_envelopes(store: LedgerStore, path: str, shape: str) -> None:
    body = get(client(store), path)
    assert set(body) == {"result", "success", "pageCount"}
    check(body["result"], shape)
    check(body["pageCount"], "uint")
    assert body["success"] is True and body["result"]
    v1 = get(client(store), path.replace("/api/v2/", "/api/"))
    assert body["result"] == v1


# --- what the values are --------------------------------------------------------------------------------


def test_pool_info_values(store: LedgerStore) -> None:
    pools = get(client(store), "/api/pools")["pools"]
    assert len(pools) == 1
    p = pools[0]
    assert p["id"] == POOL
    assert p["coin"] == {"type": "BTC", "name": "Bitcoin", "symbol": "BTC", "family": "bitcoin",
                         "algorithm": "Sha256D", "canonicalName": "Bitcoin"}
    assert list(p["ports"]) == ["3333"]
    port = p["ports"]["3333"]
    assert port["listenAddress"] == "0.0.0.0" and port["difficulty"] == 2.0
    assert port["varDiff"]["minDiff"] == 0.001 and port["varDiff"]["maxDiff"] == 1e9
    assert port["varDiff"]["targetTime"] == 10.0
    assert p["paymentProcessing"] == {"enabled": True, "minimumPayment": 0.005, "payoutScheme": "PPLNS"}
    assert p["poolFeePercent"] == 1.0 and p["address"] == ADDR_A
    # The pool's rate over Miningcore's 10-minute window: A's 120 shares of difficulty 2 and B's four of 1.
    assert p["poolStats"]["poolHashrate"] == round(244 * H / 600)
    assert p["poolStats"]["connectedMiners"] == 2  # no live pool here: the addresses with a share in the window
    assert p["poolStats"]["lastPoolBlockTime"] == p["lastPoolBlockTime"] == iso_time(NOW - 600)
    # Top miners: fastest first, hashrates in H/s.
    assert [m["miner"] for m in p["topMiners"]] == [ADDR_A, ADDR_B]
    assert p["topMiners"][0]["hashrate"] == pytest.approx(240 * H / 600)
    assert p["topMiners"][0]["sharesPerSecond"] == pytest.approx(120 / 600)
    assert p["totalPaid"] == 3.5  # coins: 1 + 2 sent, 0.5 confirmed; the failed and the reserved are not paid
    assert p["totalBlocks"] == 3  # pending, orphaned, confirmed; not the one the node rejected
    # No node here: the effort is over the last block's network difficulty.
    assert p["poolEffort"] == pytest.approx(244 / 4.6e-10)
    assert p["networkStats"]["networkType"] == "RegTest" and p["networkStats"]["rewardType"] == "POW"
    assert "addressInfoLink" not in p  # regtest: no explorer, and a null is left out


def test_blocks_values_and_effort(store: LedgerStore) -> None:
    blocks = get(client(store), f"/api/pools/{POOL}/blocks")
    assert [(b["blockHeight"], b["status"]) for b in blocks] == [(101, "pending"), (95, "orphaned"), (90, "confirmed")]
    pending, orphaned, confirmed = blocks
    assert pending["hash"] == BLOCK_HASH and pending["miner"] == ADDR_A and pending["poolId"] == POOL
    assert pending["reward"] == 50.0001  # coins
    assert orphaned["reward"] == 0  # Miningcore zeroes an orphaned block's reward
    assert pending["confirmationProgress"] == pytest.approx(3 / 100)
    assert confirmed["confirmationProgress"] == 1.0
    assert pending["created"] == "2027-01-15T07:50:30Z"
    # Effort: the round's share difficulty over the block's network difficulty. The rejected block at
    # NOW-900 is no round boundary. Rounds: 101 from 95 (NOW-1800..NOW-600: 240 shares of A at 2),
    # 95 from 90 (NOW-3600..NOW-1800: 360 shares), 90 from the first share (NOW-7200..NOW-3600: 720).
    assert pending["effort"] == pytest.approx(480 / 4.6e-10)
    assert orphaned["effort"] == pytest.approx(720 / 2e-9)
    assert confirmed["effort"] == pytest.approx(1440 / 1e-9)
    for b in blocks:
        assert "infoLink" not in b and "type" not in b and "source" not in b  # nulls are left out


def test_explorer_links_on_a_public_network(store: LedgerStore) -> None:
    info = PoolInfo(mode="pool", network="main", stratum_url="stratum+tcp://pool.example:3333",
                    pool_address=ADDR_A)
    c = client(store, info)
    b = get(c, f"/api/pools/{POOL}/blocks")[0]
    assert b["infoLink"] == f"https://www.blockchain.com/btc/block/{BLOCK_HASH}"  # Miningcore's bitcoin template
    pay = get(c, f"/api/pools/{POOL}/payments")[0]
    assert pay["transactionInfoLink"] == f"https://www.blockchain.com/btc/tx/{TX2}"
    assert pay["addressInfoLink"] == f"https://www.blockchain.com/btc/address/{ADDR_A}"
    assert get(c, "/api/pools")["pools"][0]["addressInfoLink"].endswith(ADDR_A)
    assert get(c, f"/api/pools/{POOL}/miners/{ADDR_A}")["lastPaymentLink"].endswith(TX2)


def test_payments_balance_changes_and_daily_earnings(store: LedgerStore) -> None:
    c = client(store)
    pays = get(c, f"/api/pools/{POOL}/payments")
    assert [(p["address"], p["amount"], p["transactionConfirmationData"]) for p in pays] == [
        (ADDR_A, 0.5, TX2), (ADDR_B, 2.0, TX1), (ADDR_A, 1.0, TX1)]  # newest first; one batch by address
    assert all(p["coin"] == "BTC" for p in pays)
    assert pays[0]["created"] == iso_time(NOW - 1000)
    assert [p["amount"] for p in get(c, f"/api/pools/{POOL}/miners/{ADDR_B}/payments")] == [2.0]
    changes = get(c, f"/api/pools/{POOL}/miners/{ADDR_A}/balancechanges")
    assert [(ch["amount"], ch["usage"]) for ch in changes] == [
        (-0.5, "Balance reset after payment"), (30.0, "Reward for block 90"), (-1.0, "Balance reset after payment")]
    assert all(ch["poolId"] == POOL and ch["address"] == ADDR_A for ch in changes)
    days = get(c, f"/api/pools/{POOL}/miners/{ADDR_A}/earnings/daily")
    assert days == [{"amount": 0.5, "date": "2027-01-15T00:00:00Z"}, {"amount": 1.0, "date": "2027-01-13T00:00:00Z"}]


def test_miner_stats_values(store: LedgerStore) -> None:
    m = get(client(store), f"/api/pools/{POOL}/miners/{ADDR_A}")
    assert m["pendingShares"] == 240.0  # A's share difficulty since the pool's last block (NOW-600)
    assert m["pendingBalance"] == 28.5  # 30 confirmed - 1.5 sent; the immature 40 is not yet a balance
    assert m["totalPaid"] == 1.5 and m["todayPaid"] == 0.5
    assert m["lastPayment"] == iso_time(NOW - 1000)
    assert m["performance"]["created"] == iso_time(NOW)
    assert m["performance"]["workers"] == {"rig1": {"hashrate": pytest.approx(240 * H / 600),
                                                    "sharesPerSecond": pytest.approx(0.2)}}
    samples = m["performanceSamples"]  # the day, hourly: 06:00, 07:00 and the current 08:00
    assert [s["created"] for s in samples] == ["2027-01-15T06:00:00Z", "2027-01-15T07:00:00Z", "2027-01-15T08:00:00Z"]
    assert samples[1]["workers"]["rig1"]["hashrate"] == pytest.approx(720 * 2 * H / 3600)  # 720 shares at 2
    assert samples == get(client(store), f"/api/pools/{POOL}/miners/{ADDR_A}/performance")
    hourly = get(client(store), f"/api/pools/{POOL}/miners/{ADDR_A}/performance?mode=hour")
    assert len(hourly) == 21 and hourly[1]["created"] == "2027-01-15T07:03:00Z"  # three-minutely
    nobody = get(client(store), f"/api/pools/{POOL}/miners/bcrt1qnobodyatallxxxxxxxxxxxxxxxxxxxx")
    assert nobody["pendingShares"] == 0 and nobody["pendingBalance"] == 0 and "performance" not in nobody
    settings = get(client(store), f"/api/pools/{POOL}/miners/{ADDR_A}/settings")
    assert settings == {"paymentThreshold": 0.005}


def test_pool_performance(store: LedgerStore) -> None:
    s = get(client(store), f"/api/pools/{POOL}/performance")["stats"]
    assert [x["created"] for x in s] == ["2027-01-15T06:00:00Z", "2027-01-15T07:00:00Z", "2027-01-15T08:00:00Z"]
    assert s[0]["connectedMiners"] == 1 and s[1]["connectedMiners"] == 2  # B mined only in the 07:00 hour
    assert s[1]["poolHashrate"] == pytest.approx((720 * 2 + 4) * H / 3600)


async def test_network_stats_from_the_node(store: LedgerStore, tmp_path: Path) -> None:
    async with running_node(tmp_path / "node", chain="regtest") as (node, rpc):
        node.mine(bytes([0x51]), 2, 1_000_000)
        app = create_app(Services(store=store, node=rpc, clock=fixed_clock(NOW), bucket_width_s=BUCKET, info=INFO))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/api/pools")
            pool = r.json()["pools"][0]
            check(pool, "PoolInfo")
            net = pool["networkStats"]
            assert net["networkType"] == "RegTest" and net["blockHeight"] == 2
            assert 0 < net["networkDifficulty"] < 1
            # The pool's effort is over the node's difficulty now.
            assert pool["poolEffort"] == pytest.approx(244 / net["networkDifficulty"])


# --- paging -------------------------------------------------------------------------------------------


def test_paging_and_page_count(store: LedgerStore) -> None:
    c = client(store)
    base = f"/api/pools/{POOL}/blocks"
    assert [b["blockHeight"] for b in get(c, f"{base}?page=0&pageSize=2")] == [101, 95]
    assert [b["blockHeight"] for b in get(c, f"{base}?page=1&pageSize=2")] == [90]
    assert get(c, f"{base}?page=2&pageSize=2") == []  # past the end: empty, as Miningcore's OFFSET gives
    # Parameter names in any case (ASP.NET Core binds them so; the WebUI asks `pagesize`).
    assert [b["blockHeight"] for b in get(c, f"{base}?PAGE=1&pagesize=2")] == [90]
    # v2: pageCount is floor(rows / pageSize), as PoolApiController computes it (3 blocks in pages of 2: 1).
    assert get(c, f"/api/v2/pools/{POOL}/blocks?pageSize=2")["pageCount"] == 1
    assert get(c, f"/api/v2/pools/{POOL}/blocks?pageSize=1")["pageCount"] == 3
    assert get(c, f"/api/v2/pools/{POOL}/payments?pageSize=2")["pageCount"] == 1
    # Default page size 15.
    assert len(get(c, f"/api/pools/{POOL}/miners/{ADDR_A}/performance?mode=hour")) == 21
    assert len(get(c, f"/api/v2/pools/{POOL}/blocks")["result"]) == 3
    # state: Miningcore's BlockStatus by name in any case or by number, repeatable.
    assert [b["blockHeight"] for b in get(c, f"{base}?state=confirmed")] == [90]
    assert [b["blockHeight"] for b in get(c, f"{base}?state=Orphaned&state=3")] == [95, 90]
    assert [b["blockHeight"] for b in get(c, f"{base}?state=1")] == [101]
    # The effort does not depend on the filter: each block's round runs from the block before it.
    assert get(c, f"{base}?state=pending")[0]["effort"] == get(c, base)[0]["effort"]
    # The miners list pages too, and `topMinersRange` drops miners quiet for longer.
    assert [m["miner"] for m in get(c, f"/api/pools/{POOL}/miners?page=1&pageSize=1")] == [ADDR_B]
    assert get(c, f"/api/pools/{POOL}/miners?topMinersRange=0") == []


def test_page_size_is_bounded(store: LedgerStore) -> None:
    c = client(store)
    assert len(get(c, f"/api/pools/{POOL}/payments?page=0&pageSize={MAX_PAGE_SIZE}")) == 3
    r = c.get(f"/api/pools/{POOL}/payments?pageSize={MAX_PAGE_SIZE + 1}")
    assert r.status_code == 400
    assert r.json()["errors"] == {"pageSize": [f"The field pageSize must be between 1 and {MAX_PAGE_SIZE}."]}


# --- errors as Miningcore gives them ------------------------------------------------------------------


def test_errors(store: LedgerStore) -> None:
    c = client(store)
    for path in ("/api/pools/nosuch", "/api/pools/nosuch/blocks", f"/api/v2/pools/nosuch/miners/{ADDR_A}/payments"):
        r = c.get(path)
        # ApiControllerBase.GetPool: ApiException("Unknown pool nosuch", NotFound), written as the plain body.
        assert (r.status_code, r.text) == (404, "Unknown pool nosuch"), path
        assert r.headers["content-type"] == "application/json"
    r = c.get(f"/api/pools/{POOL}/miners/not-an-address!")
    assert (r.status_code, r.text) == (404, "Invalid or missing miner address")
    # Parameters that do not bind: ASP.NET Core's ValidationProblemDetails, every bad one listed.
    r = c.get(f"/api/pools/{POOL}/blocks?page=abc&pageSize=-1&state=lost")
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "https://tools.ietf.org/html/rfc7231#section-6.5.1"
    assert body["title"] == "One or more validation errors occurred." and body["status"] == 400
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", body["traceId"])
    assert body["errors"] == {
        "page": ["The value 'abc' is not valid."],
        "pageSize": [f"The field pageSize must be between 1 and {MAX_PAGE_SIZE}."],
        "state": ["The value 'lost' is not valid."],
    }
    assert c.get(f"/api/pools/{POOL}/miners?topMinersRange=-1").json()["errors"] == {
        "topMinersRange": ["The value '-1' is not valid."]}  # a uint
    # GetPoolPerformanceAsync refuses the hour range with ApiException("invalid interval").
    r = c.get(f"/api/pools/{POOL}/performance?r=Hour")
    assert (r.status_code, r.text) == (400, "invalid interval")
    assert c.get(f"/api/pools/{POOL}/performance?r=week").status_code == 400
    # No ledger: said plainly.
    bare = TestClient(create_app(Services(info=INFO)))
    r = bare.get(f"/api/pools/{POOL}/blocks")
    assert (r.status_code, r.text) == (503, "the ledger is not running")


def test_the_pool_id_is_the_configured_one(store: LedgerStore) -> None:
    c = client(store, PoolInfo(pool_id="btc-solo", network="regtest"))
    assert get(c, "/api/pools")["pools"][0]["id"] == "btc-solo"
    assert get(c, "/api/pools/btc-solo/blocks")[0]["poolId"] == "btc-solo"
    assert c.get(f"/api/pools/{POOL}").status_code == 404
    # Solo mode: no pool address (rewards go to each finder), written as "" so front ends can show it.
    assert get(c, "/api/pools/btc-solo")["pool"]["address"] == ""


def test_the_pools_terms_come_from_the_config(store: LedgerStore, tmp_path: Path) -> None:
    """What `pithead up` and `serve` hand the web (app.parts.pool_info) states the configured pool."""
    cfg = config.load(None, overrides={
        "pool": {"mode": "pool", "pool_address": ADDR_B, "start_difficulty": 8.0, "min_difficulty": 0.5,
                 "share_interval": 15.0, "idle_timeout": 300.0, "refresh_interval": 20.0},
        "ledger": {"scheme": "prop", "payout_threshold_sat": 250_000, "pool_fee_percent": 2.0},
        "web": {"miningcore_pool_id": "btc1"},
    })
    running = Running(data_dir=tmp_path, stratum_url="stratum+tcp://0.0.0.0:3334")
    info = pool_info("pithead", cfg.pool, cfg.ledger, "test", running, pays=False, pool_id=cfg.web.miningcore_pool_id)
    p = get(client(store, info), "/api/pools/btc1")["pool"]
    assert p["id"] == "btc1" and p["address"] == ADDR_B and p["poolFeePercent"] == 2.0
    assert p["ports"] == {"3334": {"listenAddress": "0.0.0.0", "difficulty": 8.0, "tls": False, "tlsAuto": False,
                                   "varDiff": {"minDiff": 0.5, "maxDiff": 1e12, "targetTime": 15.0,
                                               "retargetTime": 24 * 15.0, "variancePercent": 100.0}}}
    assert p["paymentProcessing"] == {"enabled": False, "minimumPayment": 0.0025, "payoutScheme": "PROP"}
    assert p["clientConnectionTimeout"] == 300 and p["jobRebroadcastTimeout"] == 20
    assert p["addressInfoLink"] == f"https://mempool.space/testnet/address/{ADDR_B}"
    solo = pool_info("pithead", config.PoolConfig(), cfg.ledger, "regtest", running, pays=False, pool_id="pithead")
    assert get(client(store, solo), "/api/pools/pithead")["pool"]["address"] == ""  # solo: to each finder


def test_help_and_health_check(store: LedgerStore) -> None:
    c = client(store)
    r = c.get("/api/health-check")
    assert r.status_code == 200 and r.text == "\N{THUMBS UP SIGN}"
    lines = c.get("/api/help").text.splitlines()
    assert "GET   -> api/pools/<poolId>/miners/<address>/earnings/daily" in lines


# --- beside pithead's own API -------------------------------------------------------------------------


def _sample(template: str) -> str:
    """A concrete path for a route template ({name} -> a value of its own)."""
    return re.sub(r"\{(\w+)\}", lambda m: f"x{m.group(1)}1", template)


def test_no_path_collides_with_pitheads_own(store: LedgerStore) -> None:
    """Miningcore's paths are served at their own place except the cluster's /api/blocks, which is
    pithead's (the dashboard's app.js reads it): that one lives only under MOUNT_PREFIX. No route of one
    matches a path of the other, and pithead's own routes answer as before."""
    services = Services(store=store, clock=fixed_clock(NOW), bucket_width_s=BUCKET, info=INFO)
    monitor = NodeMonitor(None)
    app = create_app(services)
    own = [r for r in build_router(services, monitor).routes if isinstance(r, APIRoute)]
    own += [r for r in app.routes if isinstance(r, APIRoute)]  # /metrics, /docs, /healthz, the pages
    at_root = [r for r in build_miningcore_router(services, monitor, cluster=False).routes if isinstance(r, APIRoute)]
    everything = [r for r in build_miningcore_router(services, monitor, cluster=True).routes if isinstance(r, APIRoute)]
    assert {r.path for r in everything} - {r.path for r in at_root} == {"/api/blocks"}
    assert "/api/blocks" in {r.path for r in own}
    for theirs in at_root:
        for ours in own:
            assert not ours.path_regex.match(_sample(theirs.path)), (theirs.path, ours.path)
            assert not theirs.path_regex.match(_sample(ours.path)), (theirs.path, ours.path)
    c = client(store)
    pitheads = c.get("/api/blocks").json()  # pithead's own: satoshis, its own field names
    assert "reward_sat" in pitheads[0] and "blockHeight" not in pitheads[0]
    assert "blockHeight" in get(c, f"{MOUNT_PREFIX}/api/blocks")[0]
    assert c.get("/api/pool").json()["blocks_found"] == 3
    spec = c.get("/openapi.json").json()["paths"]
    assert "/api/pools/{poolId}/miners/{address}" in spec and "/api/blocks" in spec


# --- what the Miningcore WebUI reads --------------------------------------------------------------------

# Each request js/miningcore.js makes (with its query string as written there) and every field it reads
# from the answer, with the lines. A path: "a.b" a field, "[]" each item of a list, "{}" each value of
# an object. "?" marks a field the WebUI tests for before reading (`typeof ... !== "undefined"`).
A = ADDR_A
WEBUI_READS: list[tuple[str, list[str], str]] = [
    ("/api/pools", ["pools[].id", "pools[].coin.type", "pools[].coin.name", "pools[].coin.algorithm",
                    "pools[].poolStats.connectedMiners", "pools[].poolStats.poolHashrate", "pools[].poolFeePercent",
                    "pools[].networkStats.networkHashrate", "pools[].networkStats.networkDifficulty"],
     "loadHomePage, lines 159-179"),
    ("/api/pools", ["pools[].id", "pools[].ports", "pools[].coin.name", "pools[].coin.type",
                    "pools[].coin.algorithm", "pools[].address", "pools[].addressInfoLink?",
                    "pools[].paymentProcessing.payoutScheme", "pools[].paymentProcessing.minimumPayment",
                    "pools[].poolFeePercent", "pools[].ports{}.varDiff.minDiff", "pools[].ports{}.varDiff.maxDiff?",
                    "pools[].ports{}.difficulty"],
     "loadConnectPage, lines 387-422"),
    ("/api/pools", ["pools[].id", "pools[].networkStats.blockHeight", "pools[].networkStats.connectedPeers",
                    "pools[].paymentProcessing.minimumPayment", "pools[].coin.type",
                    "pools[].paymentProcessing.payoutScheme", "pools[].poolFeePercent",
                    "pools[].poolStats.poolHashrate", "pools[].poolStats.connectedMiners",
                    "pools[].networkStats.networkHashrate", "pools[].networkStats.networkDifficulty"],
     "loadStatsData, lines 559-574"),
    ("/api/pools", ["pools[].id", "pools[].coin.type", "pools[].coin.name"], "loadNavigation, lines 818-835"),
    (f"/api/pools/{POOL}/miners?page=0&pagesize=20", ["[].miner", "[].hashrate", "[].sharesPerSecond"],
     "loadMinersPage, lines 267-277"),
    (f"/api/pools/{POOL}/blocks?page=0&pageSize=100",
     ["[].created", "[].effort?", "[].infoLink?", "[].blockHeight", "[].status", "[].reward",
      "[].confirmationProgress"], "loadBlocksPage, lines 301-330"),
    (f"/api/pools/{POOL}/payments?page=0&pageSize=500",
     ["[].created", "[].addressInfoLink?", "[].address", "[].amount", "[].transactionInfoLink?",
      "[].transactionConfirmationData"], "loadPaymentsPage, lines 354-364"),
    # `connectedWorkers` (line 615) is not in Miningcore's AggregatedPoolStats either: the WebUI plots
    # undefined there against Miningcore too.
    (f"/api/pools/{POOL}/performance", ["stats[].created", "stats[].poolHashrate", "stats[].networkHashrate",
                                        "stats[].networkDifficulty", "stats[].connectedMiners"],
     "loadStatsChart, lines 594-614"),
    (f"/api/pools/{POOL}/miners/{A}", ["pendingShares", "performance?", "performance.workers{}.hashrate",
                                       "performance.workers{}.sharesPerSecond", "pendingBalance", "todayPaid",
                                       "totalPaid"],
     "loadDashboardData and loadDashboardWorkerList, lines 677-724"),
    (f"/api/pools/{POOL}/miners/{A}/performance", ["[].created", "[].workers{}.hashrate"],
     "loadDashboardChart, lines 749-766"),
]


def _values(body: Any, path: str) -> list[Any]:
    """The values at `path` ("a.b", "[]" for each item, "{}" for each value) in `body`."""
    found = [body]
    for part in re.findall(r"\[\]|\{\}|[A-Za-z]+", path):
        nxt: list[Any] = []
        for v in found:
            if part == "[]":
                assert isinstance(v, list), path
                nxt += v
            elif part == "{}":
                assert isinstance(v, dict), path
                nxt += list(v.values())
            else:
                assert isinstance(v, dict) and part in v, f"{path}: no {part!r} in {str(v)[:200]}"
                nxt.append(v[part])
        found = nxt
    return found


@pytest.mark.parametrize(("request_path", "fields", "where"), WEBUI_READS, ids=[w for _, _, w in WEBUI_READS])
def test_every_field_the_webui_reads_is_served(store: LedgerStore, request_path: str, fields: list[str],
                                               where: str) -> None:
    body = get(client(store), request_path)
    for field in fields:
        if field.endswith("?"):
            continue  # tested for by the WebUI: may be absent (a null Miningcore leaves out too)
        values = _values(body, field)
        assert values, f"{where}: nothing at {field}"
        for v in values:
            # The WebUI calls .substring/.toLowerCase on strings and formats numbers; nothing may be null.
            assert v is not None, f"{where}: {field} is null"
    # The pool id the WebUI puts in its links (lower-cased, line 825) finds the pool.
    if request_path == "/api/pools":
        assert body["pools"][0]["id"] == body["pools"][0]["id"].lower()


def test_the_shape_check_catches_a_wrong_answer() -> None:
    good = {"amount": 0.5, "date": "2027-01-15T00:00:00Z"}
    check(good, "AmountByDate")
    for bad in ({"amount": 0.5}, {**good, "extra": 1}, {**good, "amount": "0.5"}, {**good, "date": "2027-01-15"},
                {**good, "date": None}):
        with pytest.raises(AssertionError):
            check(bad, "AmountByDate")
    with pytest.raises(AssertionError):
        check(1.5, "ulong")  # an integer type must be a JSON integer


def test_iso_time_is_how_system_text_json_writes_a_utc_datetime() -> None:
    assert iso_time(NOW) == "2027-01-15T08:00:30Z"
    assert iso_time(NOW + 0.25) == "2027-01-15T08:00:30.25Z"
    assert iso_time(NOW + 0.000001) == "2027-01-15T08:00:30.000001Z"
    assert iso_time(0) == "1970-01-01T00:00:00Z"

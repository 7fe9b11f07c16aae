"""A central past one process: two central workers on one database and one port (SO_REUSEPORT) take the
collectors' batches between them, each batch written once, and evaluate their partitions of the racks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from test_farm_alert_groups import ok
from test_farm_store import device

from pithead.farm.ingest import encode_batch, new_batch_id
from pithead.farm.service import FarmService, FarmServiceConfig, Role
from pithead.farm.store import open_farm_store
from pithead.web.farm import FarmAuth, service_router
from pithead.web.server import WebServer, WebServerError

TOKEN = "central-workers-token-0123456789abcdef"
T0 = 1_800_000_000.0
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def workers(farm_url: str) -> AsyncIterator[tuple[list[FarmService], str]]:
    services, servers, stores = [], [], []
    port = 0
    for i in range(2):
        store = open_farm_store(farm_url)
        cfg = FarmServiceConfig(role=Role.CENTRAL, partition=(i, 2), alert_group_min=5)
        svc = FarmService(store, cfg, clock=lambda: T0 + 10.0)
        app = FastAPI()
        app.include_router(service_router(svc, auth=FarmAuth(TOKEN)))
        web = WebServer(app, "127.0.0.1", port, reuse_port=True)
        await web.start()
        port = web.port  # the second worker listens on the first one's port
        services.append(svc)
        servers.append(web)
        stores.append(store)
    try:
        yield services, f"http://127.0.0.1:{port}"
    finally:
        for web in servers:
            await web.stop()
        for store in stores:
            store.close()


async def test_two_workers_share_the_ingest_and_the_evaluation(workers: tuple[list[FarmService], str]) -> None:
    services, url = workers
    racks = {f"r{k}": [device(10 * k + j, "s1", f"r{k}") for j in range(6)] for k in range(4)}
    everyone = [d for ds in racks.values() for d in ds]
    hot = set(racks["r1"]) | {racks["r2"][0]}  # r1 all of it (one rack alert), r2 one machine
    bodies = [encode_batch(new_batch_id(), f"c{i}", everyone[i::4],
                           [ok(d, T0, chip=95.0 if d in hot else 70.0) for d in everyone[i::4]]) for i in range(4)]
    bodies += [encode_batch(new_batch_id(), f"c{i}", (), [ok(d, T0 + 60 * k) for d in everyone[i::4]])
               for i in range(4) for k in (-2, -1)]  # older readings: history only

    async def post(body: bytes) -> dict[str, object]:
        async with httpx.AsyncClient() as c:  # a connection each: the kernel spreads them over the workers
            r = await c.post(f"{url}/farm/api/ingest", content=body, headers=AUTH)
            assert r.status_code == 200, r.text
            out: dict[str, object] = r.json()
            return out

    # the inventory and first readings first (a collector sends a device before its readings), then the
    # rest at once, every batch three times
    answers = await asyncio.gather(*(post(b) for b in bodies[:4]))
    answers += await asyncio.gather(*(post(b) for b in bodies[4:] + bodies * 2))
    fresh = [a for a in answers if not a["duplicate_batch"]]
    assert len(fresh) == len(bodies) and sum(int(str(a["written"])) for a in fresh) == 3 * len(everyone)
    assert sum(int(str(a["refused"])) for a in answers) == 0
    assert all(s.ingest.total.batches + s.ingest.total.duplicate_batches > 0 for s in services)  # both took some
    for svc in services:
        await svc.central_tick()
    store = services[0].store
    alerts = await store.call(lambda s: sorted((a.device_id, a.kind, a.machines) for a in s.open_alerts()))
    assert alerts == sorted([("rack:s1/r1", "overheat", 6), (racks["r2"][0].id, "overheat", 1)])
    history = await store.call(lambda s: s.history(everyone[5].id, 0.0))
    assert [h["time"] for h in history] == [T0 - 120, T0 - 60, T0]


async def test_a_port_without_reuse_is_refused_clearly() -> None:
    first = WebServer(FastAPI(), "127.0.0.1", 0)
    await first.start()
    try:
        with pytest.raises(WebServerError, match="cannot listen"):
            await WebServer(FastAPI(), "127.0.0.1", first.port, reuse_port=True).start()
    finally:
        await first.stop()


def test_the_partition_flag_belongs_to_a_central(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`pithead farm run --partition i/N` splits a central's work; without --central it is refused, clearly."""
    py = [sys.executable, "-m", "pithead.cli", "farm", "run", "--db", str(tmp_path / "f.sqlite3"), "--duration", "0.1"]
    r = subprocess.run([*py, "--partition", "1/2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--partition splits a central's work: add --central" in r.stdout + r.stderr
    r = subprocess.run([*py, "--central", "--web", "127.0.0.1:0", "--partition", "2/2"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "need 0 <= i < n" in r.stdout + r.stderr

"""The farm store off the event loop: a slow write never holds the loop, calls keep their order, and the
farm service (polling, evaluation, web reads, actions) never touches SQLite on the loop's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import httpx
import pytest
from farm_devices import Antminer, Servers
from fastapi import FastAPI
from test_farm_store import ok

from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity, Labels
from pithead.farm.poller import RESULT_BATCH
from pithead.farm.service import FarmService, FarmServiceConfig
from pithead.farm.store import FarmStore
from pithead.farm.store_async import AsyncFarmStore
from pithead.web.farm import FarmAuth, service_router

# How long the other writer holds the database: far above any scheduling hiccup of a loaded machine.
HOLD_S = 1.0
# How often the probe asks to wake: a stall of more than a few ticks is the loop being held.
TICK_S = 0.005


def devices(n: int) -> list[Device]:
    return [Device(DeviceAddress(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 4028, DriverKind.CGMINER),
                   Identity("Antminer", "Antminer S19 XP"), Labels("s", f"r{i // 100}", str(i % 100)), 0.0, 0.0)
            for i in range(n)]


class TickProbe:
    """The worst lateness of a task that asks to wake every TICK_S (how long the loop was held)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.worst = max(self.worst, loop.time() - due)

    async def __aenter__(self) -> TickProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(TICK_S * 2)  # running
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another writer on the same database file (a second collector, a backup) holding SQLite's write lock
    for `seconds`: a write of ours waits for it in SQLite's busy handler, however fast the disk is."""
    ready = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    ready.wait()
    return t


async def test_a_slow_write_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    """A batch of poll results written while another writer holds the database: written on the loop, the
    loop stops for as long; through `AsyncFarmStore`, it keeps ticking while the write waits."""
    path = tmp_path / "farm.sqlite3"
    with FarmStore(path) as store:
        fleet = devices(RESULT_BATCH)
        store.upsert_devices(fleet)
        store.statuses()  # the status cache warm, as in a running service
        first, second = [ok(d, 100.0) for d in fleet], [ok(d, 200.0) for d in fleet]
        # the control: on the loop, the write holds it until the other writer lets go
        async with TickProbe() as on_loop:
            holder = hold_write_lock(path, HOLD_S)
            store.write_results(first)
            await asyncio.sleep(TICK_S * 2)
        holder.join()
        assert on_loop.worst >= 0.7 * HOLD_S  # the probe sees a held loop
        # through the store's own thread: the same wait costs the loop nothing
        shared = AsyncFarmStore(store)
        async with TickProbe() as off_loop:
            holder = hold_write_lock(path, HOLD_S)
            t0 = time.perf_counter()
            await shared.call(FarmStore.write_results, second)
            waited = time.perf_counter() - t0
        holder.join()
        shared.close()
        assert waited >= 0.7 * HOLD_S  # the write did wait for the other writer
        assert off_loop.worst < 0.5 * HOLD_S, (off_loop.worst, on_loop.worst)
        assert {st.time for st in store.statuses()} == {200.0}


async def test_calls_run_in_the_order_made_even_when_a_caller_gives_up(store: FarmStore) -> None:
    fleet = devices(3)
    store.upsert_devices(fleet)
    shared = AsyncFarmStore(store)
    first = asyncio.create_task(shared.call(FarmStore.write_results, [ok(d, 1.0) for d in fleet]))
    second = asyncio.create_task(shared.call(FarmStore.write_results, [ok(d, 2.0) for d in fleet]))
    await asyncio.sleep(0)  # both made (queued on the store's thread, in this order)
    second.cancel()  # its caller stops waiting; the write still happens, after the first
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert [st.time for st in await shared.call(FarmStore.statuses)] == [2.0, 2.0, 2.0]
    history = await shared.call(FarmStore.history, fleet[0].id, 0.0, 10.0)
    assert [row["time"] for row in history] == [1.0, 2.0]
    shared.close()


class ThreadLog:
    """Stands in for the store's lock and notes the thread of every store call."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.threads: set[int] = set()

    def __enter__(self) -> None:
        self._lock.acquire()
        self.threads.add(threading.get_ident())

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()


@pytest.fixture
def watched(store: FarmStore) -> Iterator[tuple[FarmStore, ThreadLog]]:
    log = ThreadLog()
    store._lock = log  # type: ignore[assignment]  # every public method takes it
    yield store, log


async def test_the_service_never_touches_sqlite_on_the_loop(servers: Servers,
                                                            watched: tuple[FarmStore, ThreadLog]) -> None:
    """Scan, first read, sweeps, alert evaluation and rollups, web reads and an audited action: all of it
    reaches the store from the store's own thread."""
    store, log = watched
    port = await servers.antminer(Antminer())
    cfg = FarmServiceConfig(scan_cidrs=("127.0.0.1/32",), scan_ports={DriverKind.CGMINER: (port,)},
                            rescan_interval_s=3600, poll_interval_s=0.2, deadline_s=2.0)
    svc = FarmService(store, cfg)
    app = FastAPI()
    app.include_router(service_router(svc, auth=FarmAuth()))
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(20):
            while not (svc.last_sweep and svc.last_sweep.devices == 1):
                await svc.swept.wait()
                svc.swept.clear()
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in ("/farm/api/devices", "/farm/api/racks", "/farm/api/alerts", "/farm/api/energy",
                         "/farm/api/audit", "/farm/api/rollups"):
                assert (await client.get(path)).status_code == 200, path
            [row] = (await client.get("/farm/api/devices")).json()
            reboot = await client.post(f"/farm/api/devices/{quote(row['id'], safe='')}/reboot", json={"actor": "t"})
            assert reboot.json()["ok"] is True
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    loop_thread = threading.get_ident()
    assert log.threads and loop_thread not in log.threads
    assert [a.action for a in store.audit_log()] == ["reboot"]  # (this read is the test's, off any loop)

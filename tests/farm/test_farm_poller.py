"""The poller: bounded concurrency that truly bounds, a frozen device never stalls a sweep, and a
timeout is an error state, never an empty reading."""

from __future__ import annotations

import asyncio

from farm_devices import Antminer, Servers

from pithead.farm.drivers import default_drivers
from pithead.farm.model import Device, DeviceAddress, DeviceState, DriverKind, Identity
from pithead.farm.poller import Poller, select_shard, shard_of
from pithead.farm.store import FarmStore

IDENT = Identity("Antminer", "Antminer S19 XP")


def dev(port: int, host: str = "127.0.0.1") -> Device:
    return Device(DeviceAddress(host, port, DriverKind.CGMINER), IDENT)


async def test_frozen_devices_time_out_and_do_not_stall_the_sweep(servers: Servers) -> None:
    frozen = [dev(await servers.frozen()) for _ in range(3)]
    good_dev = Antminer()
    good = [dev(await servers.antminer(good_dev)) for _ in range(12)]
    # Frozen devices first and only 2 workers: if a hung device could hold a worker for ever, the good
    # devices queued behind them would never be read.
    poller = Poller(default_drivers(), max_concurrency=2, deadline_s=1.0)
    report, results = await asyncio.wait_for(poller.sweep(frozen + good), timeout=30)
    by_id = {r.device_id: r for r in results}
    assert len(results) == 15 and report.devices == 15
    for d in frozen:
        r = by_id[d.id]
        assert r.state is DeviceState.TIMEOUT and r.reading is None and "1 s" in (r.error or "")
    for d in good:
        r = by_id[d.id]
        assert r.state is DeviceState.OK and r.reading is not None and r.reading.hashrate_ths > 100
    assert (report.ok, report.timeouts, report.unreachable, report.errors) == (12, 3, 0, 0)
    assert servers.frozen_connections == 3
    assert report.max_in_flight <= 2


async def test_concurrency_bound_holds_on_the_wire(servers: Servers) -> None:
    shared = Antminer(delay_s=0.02)  # every device is served by the same state, so it sees the true peak
    devices = [dev(await servers.antminer(shared)) for _ in range(60)]
    poller = Poller(default_drivers(), max_concurrency=7, deadline_s=5.0)
    report, _results = await poller.sweep(devices)
    assert report.ok == 60
    assert 1 < shared.peak <= 7
    assert report.max_in_flight <= 7


async def test_unreachable_and_error_states(servers: Servers) -> None:
    closed_port = await servers.antminer(Antminer())
    await servers.close()
    bad = Antminer(privileged=False)

    async def garbage(method: str, path: str, body: bytes) -> tuple[int, object]:
        return 200, b"not json"

    garbage_port = await servers.http(garbage)
    ok_port = await servers.antminer(bad)
    devices = [dev(closed_port), Device(DeviceAddress("127.0.0.1", garbage_port, DriverKind.AXEOS), IDENT),
               dev(ok_port)]
    _report, results = await Poller(default_drivers(), deadline_s=2.0).sweep(devices)
    by_id = {r.device_id: r.state for r in results}
    states = [by_id[d.id] for d in devices]
    assert states == [DeviceState.UNREACHABLE, DeviceState.ERROR, DeviceState.OK]
    assert all(r.error for r in results if r.state is not DeviceState.OK)


async def test_results_go_to_the_store_in_batches(servers: Servers, store: FarmStore) -> None:
    devices = [dev(await servers.antminer(Antminer())) for _ in range(5)] + [dev(await servers.frozen())]
    store.upsert_devices(devices)
    batches: list[int] = []

    def sink(rs):  # type: ignore[no-untyped-def]
        batches.append(len(rs))
        store.write_results(rs)

    _report, kept = await Poller(default_drivers(), deadline_s=1.0).sweep(devices, sink, batch=2)
    assert kept == [] and sum(batches) == 6 and max(batches) <= 2
    sts = {s.device.id: s for s in store.statuses()}
    assert sts[devices[-1].id].state is DeviceState.TIMEOUT
    assert sts[devices[-1].id].reading is None
    assert all(sts[d.id].state is DeviceState.OK for d in devices[:5])


def test_shards_partition_the_fleet() -> None:
    devices = [dev(4000 + i) for i in range(200)]
    parts = [select_shard(devices, i, 4) for i in range(4)]
    assert sum(len(p) for p in parts) == 200
    assert {d.id for p in parts for d in p} == {d.id for d in devices}
    assert all(shard_of(d.id, 4) == i for i, p in enumerate(parts) for d in p)


async def test_oversized_reply_is_an_error_not_a_memory_bomb(servers: Servers) -> None:
    async def flood(method: str, path: str, body: bytes) -> tuple[int, object]:
        return 200, b"x" * (5 * 1024 * 1024)  # bigger than any AxeOS body

    port = await servers.http(flood)
    d = Device(DeviceAddress("127.0.0.1", port, DriverKind.AXEOS), IDENT)
    _, results = await Poller(default_drivers(), deadline_s=5.0).sweep([d])
    assert results[0].state is DeviceState.ERROR and "bytes" in (results[0].error or "")

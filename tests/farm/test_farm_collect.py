"""Collectors forwarding to one central service: the whole fleet in one store, outages, tokens, bad batches.

Everything is real and on loopback: the simulated fleet (`pithead.fleetsim`) serves the devices on their own
127.86.0.x addresses, collectors are `FarmService`s in the COLLECTOR role polling their shard through the
real drivers and forwarding through the real `Forwarder` (spool file, httpx), and the central is a
`FarmService` in the CENTRAL role whose router is served by a real uvicorn on 127.0.0.1. The central's
evaluation tick is called directly (`central_tick`) so nothing waits on its timer; collectors sweep once
every 0.3 s, and tests wait on events (so many sweeps), never on durations, and compare the central with
everything the collectors' forwarders were handed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI

pytest.importorskip("pithead.fleetsim.server")

from pithead.farm.alerts import AlertKind
from pithead.farm.drivers import default_drivers
from pithead.farm.forward import CentralState, Forwarder, Spool, wait_drained
from pithead.farm.ingest import MAX_BATCH_RESULTS, compress, encode_batch, new_batch_id
from pithead.farm.model import Device, DeviceAddress, DeviceState, DriverKind, Identity, Labels, PollResult
from pithead.farm.poller import Poller, shard_of
from pithead.farm.service import FarmService, FarmServiceConfig, Role
from pithead.farm.store import FarmStore
from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family
from pithead.fleetsim.server import FleetServer
from pithead.web.farm import FarmAuth, service_router
from pithead.web.server import WebServer

TOKEN = "central-ingest-token-0123456789abcdef"
NETWORK = "127.86.0.0/27"
DEVICES = 12
WAIT_S = 30.0  # an upper bound on waits for progress, so a broken test fails instead of hanging


@dataclass
class Sim:
    fleet: Fleet
    devices: list[Device]


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = ManualClock()
    fleet = Fleet.build(DEVICES, "s19xp:2,bitaxe-gamma:1", seed=7, network=NETWORK, clock=clock)
    clock.advance(600.0)  # past the boot grace, so a dead fan is judged at once
    server = FleetServer(fleet, api_port=0, web_port=0)
    await server.start()
    api, web = server.bound_ports()
    devices = [Device(DeviceAddress(d.ip, api, DriverKind.CGMINER) if d.spec.family is not Family.BITAXE
                      else DeviceAddress(d.ip, web, DriverKind.AXEOS),
                      Identity("sim", d.spec.type_string), Labels("north", f"r{i // 6}", f"{i % 6:02d}"))
               for i, d in enumerate(fleet)]
    try:
        yield Sim(fleet, devices)
    finally:
        await server.close()


@dataclass
class Central:
    svc: FarmService
    store: FarmStore
    url: str
    web: WebServer | None = None

    async def start(self, port: int = 0) -> None:
        app = FastAPI()
        app.include_router(service_router(self.svc, auth=FarmAuth(TOKEN)))
        self.web = WebServer(app, "127.0.0.1", port)
        await self.web.start()
        self.url = self.web.url

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL, poll_interval_s=60.0))
    c = Central(svc, store, "")
    await c.start()
    try:
        yield c
    finally:
        await c.stop()
        store.close()


class RecordingForwarder(Forwarder):
    """The real forwarder, also keeping every result it was handed (what the central must end up with)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.handed: list[PollResult] = []

    def submit_results(self, results: Sequence[PollResult]) -> None:
        self.handed.extend(results)
        super().submit_results(results)


@dataclass
class Collector:
    svc: FarmService
    fwd: RecordingForwarder
    store: FarmStore
    task: asyncio.Task[None] | None = None
    ids: set[str] = field(default_factory=set)

    def start(self) -> None:
        self.task = asyncio.create_task(self.svc.run())

    async def sweeps(self, n: int) -> None:
        for _ in range(n):
            self.svc.swept.clear()
            async with asyncio.timeout(WAIT_S):
                await self.svc.swept.wait()

    async def drained(self) -> None:
        async with asyncio.timeout(WAIT_S):
            await wait_drained(self.fwd)

    async def stop(self) -> None:
        self.svc.stop()
        if self.task is not None:
            await self.task
        self.store.close()


MakeCollector = Callable[..., Collector]


@pytest.fixture
def make_collector(sim: Sim, tmp_path: Path) -> Iterator[MakeCollector]:
    spools: list[Spool] = []

    def make(url: str, shard: tuple[int, int], token: str | None = TOKEN, interval: float = 0.3,
             spool: str | None = None) -> Collector:
        store = FarmStore(":memory:")
        store.upsert_devices(sim.devices)  # the collector's own inventory (as a scan would have filled it)
        path = spool or str(tmp_path / f"spool-{shard[0]}of{shard[1]}-{id(store)}.sqlite3")
        fwd = RecordingForwarder(url, token, Spool(path), f"test/{shard[0]}of{shard[1]}", backoff_max_s=0.05)
        cfg = FarmServiceConfig(role=Role.COLLECTOR, shard=shard, poll_interval_s=interval, deadline_s=5.0)
        c = Collector(FarmService(store, cfg, forwarder=fwd), fwd, store)
        c.ids = {d.id for d in sim.devices if shard_of(d.id, shard[1]) == shard[0]}
        spools.append(fwd.spool)
        return c

    yield make
    for s in spools:
        s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until_attempt(fwd: Forwarder, cond: Callable[[], bool]) -> None:
    """Wait through the forwarder's send attempts until `cond` holds."""
    async with asyncio.timeout(WAIT_S):
        while not cond():
            fwd.attempted.clear()
            await fwd.attempted.wait()


def history_keys(store: FarmStore) -> list[tuple[str, float]]:
    return [(r[0], r[1]) for r in store._db.execute("SELECT device_id, time FROM readings ORDER BY rowid")]


# ---- the whole fleet in one place ---------------------------------------------------------------------


async def test_two_collectors_give_the_central_the_whole_fleet_and_its_alerts(
        sim: Sim, central: Central, make_collector: MakeCollector) -> None:
    a, b = make_collector(central.url, (0, 2)), make_collector(central.url, (1, 2))
    assert a.ids and b.ids and not a.ids & b.ids and a.ids | b.ids == {d.id for d in sim.devices}
    # a device of shard 1 loses its fans before anyone polls it
    victim = next(d for d in sim.devices if d.id in b.ids and d.address.driver is DriverKind.CGMINER)
    sim.fleet.set_fan(victim.address.host, 0)
    a.start()
    b.start()
    try:
        await a.sweeps(1)
        await b.sweeps(1)
        await a.drained()
        await b.drained()
    finally:
        await a.stop()
        await b.stop()
    statuses = {st.device.id: st for st in central.store.statuses()}
    assert set(statuses) == a.ids | b.ids
    assert all(st.state is DeviceState.OK and st.reading is not None for st in statuses.values())
    assert {st.device.labels.rack for st in statuses.values()} == {"r0", "r1"}  # labels came with the inventory
    assert sorted(history_keys(central.store)) == sorted((r.device_id, r.time) for r in a.fwd.handed + b.fwd.handed)
    await central.svc.central_tick()  # alerts, rollups, energy over the whole fleet
    alerts = {(al.device_id, al.kind) for al in central.store.open_alerts()}
    assert (victim.id, AlertKind.FAN_FAILURE.value) in alerts
    async with httpx.AsyncClient(base_url=central.url) as http:
        shown = (await http.get("/farm/api/alerts")).json()
        energy = (await http.get("/farm/api/energy")).json()
        ingest = (await http.get("/farm/api/ingest")).json()
        page = (await http.get("/farm/api/devices")).json()
    assert any(x["device_id"] == victim.id and x["kind"] == "fan_failure" for x in shown)
    assert energy["fleet"]["devices"] == DEVICES and energy["fleet"]["hashing"] == DEVICES
    assert set(ingest["collectors"]) == {"test/0of2", "test/1of2"}
    assert ingest["total"]["written"] == len(a.fwd.handed) + len(b.fwd.handed) and ingest["total"]["refused"] == 0
    assert {row["id"] for row in page} == a.ids | b.ids


# ---- the central goes away and comes back ---------------------------------------------------------------


async def test_central_outage_is_spooled_then_drained_in_order_with_nothing_lost_or_doubled(
        sim: Sim, make_collector: MakeCollector) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there yet: the central is down
    col = make_collector(url, (0, 1))
    col.start()
    store = FarmStore(":memory:")
    central = Central(FarmService(store, FarmServiceConfig(role=Role.CENTRAL)), store, url)
    try:
        await col.sweeps(3)
        st = col.fwd.status()
        assert st.central is CentralState.UNREACHABLE and "ConnectError" in (st.detail or "")
        assert st.sent_batches == 0 and st.spooled_batches >= 4  # the inventory, then one batch per sweep
        assert st.spooled_items >= DEVICES * 4 and st.dropped_items == 0
        assert "spooled" in st.line() and "central unreachable" in st.line()
        await central.start(port)  # the central comes back on its address
        await col.drained()
        await col.sweeps(1)
    finally:
        await col.stop()  # the last sweep's results are flushed and delivered on stop
        await central.stop()
    st = col.fwd.status()
    assert st.central is CentralState.OK and st.spooled_batches == 0 and st.dropped_items == 0
    got = history_keys(store)
    want = [(r.device_id, r.time) for r in col.fwd.handed]
    assert len(want) >= DEVICES * 4
    assert got == want  # every reading, once, in the order the collector took them
    # each device's status is its newest reading, not a drained older one
    newest = {r.device_id: r.time for r in col.fwd.handed}
    assert {s.device.id: s.time for s in store.statuses()} == newest
    store.close()


async def test_a_resent_batch_or_reading_is_never_counted_twice(sim: Sim, central: Central) -> None:
    central.store.upsert_devices(sim.devices)
    rep, results = await Poller(default_drivers()).sweep(sim.devices)
    assert rep.ok == DEVICES
    body = compress(encode_batch(new_batch_id(), "test/resend", (), results))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip"}
    async with httpx.AsyncClient(base_url=central.url) as http:
        first = (await http.post("/farm/api/ingest", content=body, headers=headers)).json()
        again = (await http.post("/farm/api/ingest", content=body, headers=headers)).json()
        # the same readings under a new batch id (a collector that lost its spool after sending)
        other = encode_batch(new_batch_id(), "test/resend", (), results)
        third = (await http.post("/farm/api/ingest", content=other, headers={"Authorization": f"Bearer {TOKEN}"}))
    assert first["written"] == DEVICES and not first["duplicate_batch"]
    assert again["duplicate_batch"] and again["written"] == 0
    assert third.status_code == 200 and third.json()["written"] == 0 and third.json()["duplicates"] == DEVICES
    assert len(history_keys(central.store)) == DEVICES
    assert central.svc.ingest.total.duplicate_batches == 1


# ---- tokens ---------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_refused_loudly_and_the_spool_is_kept(
        sim: Sim, central: Central, make_collector: MakeCollector, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    spool = str(tmp_path / "kept.spool")
    bad = make_collector(central.url, (0, 1), token="not-the-central-token-000", spool=spool)
    bad.start()
    try:
        await bad.sweeps(1)
        await until_attempt(bad.fwd, lambda: bad.fwd.central is CentralState.AUTH_REFUSED)
    finally:
        await bad.stop()
    st = bad.fwd.status()
    assert st.detail == "401: wrong farm API token"
    assert "central auth refused (401: wrong farm API token)" in st.line()
    assert any("REFUSED our token" in r.getMessage() for r in caplog.records)
    assert st.spooled_items == DEVICES + len(bad.fwd.handed) and st.sent_batches == 0  # inventory + sweeps: all kept
    assert central.store.devices() == []
    # with the right token the same spool file is delivered, in full
    good = make_collector(central.url, (0, 1), spool=spool)
    assert good.fwd.spool.items == DEVICES + len(bad.fwd.handed)
    good.start()
    try:
        await good.drained()
    finally:
        await good.stop()
    kept = {(r.device_id, r.time) for r in bad.fwd.handed}
    assert kept <= set(history_keys(central.store))
    assert len(central.store.devices()) == DEVICES


async def test_ingest_needs_the_token_before_anything_is_read(central: Central) -> None:
    async with httpx.AsyncClient(base_url=central.url) as http:
        missing = await http.post("/farm/api/ingest", content=b"not even json")
        wrong = await http.post("/farm/api/ingest", content=b"{}", headers={"Authorization": "Bearer x" * 3})
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong farm API token"


async def test_without_a_token_ingest_is_loopback_only(sim: Sim) -> None:
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL))
    app = FastAPI()
    app.include_router(service_router(svc, auth=FarmAuth()))
    body = encode_batch(new_batch_id(), "lan", sim.devices[:1], ())
    lan = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.168.1.50", 40000)),
                            base_url="http://10.1.0.5")
    async with lan:
        refused = await lan.post("/farm/api/ingest", content=body)
    assert refused.status_code == 403
    web = WebServer(app, "127.0.0.1", 0)
    await web.start()
    try:
        async with httpx.AsyncClient(base_url=web.url) as local:
            ok = await local.post("/farm/api/ingest", content=body)
    finally:
        await web.stop()
    assert ok.status_code == 200 and ok.json()["devices_new"] == 1
    store.close()


# ---- bad batches ----------------------------------------------------------------------------------------


async def test_malformed_batches_are_refused_with_the_problem_named(sim: Sim, central: Central) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = orjson.loads(encode_batch(new_batch_id(), "c", sim.devices[:1], ()))

    async def post(content: bytes, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=central.url) as http:
            return await http.post("/farm/api/ingest", content=content, headers=auth | headers)

    def doc(**changes: object) -> bytes:
        return orjson.dumps(good | changes)

    cases: list[tuple[Awaitable[httpx.Response], int, str]] = [
        (post(b"{not json"), 400, "not valid JSON"),
        (post(b""), 400, "empty body"),
        (post(b"[1, 2]"), 422, "must be a JSON object"),
        (post(doc(v=2)), 422, "field 'v'"),
        (post(doc(batch="abc")), 422, "field 'batch'"),
        (post(doc(collector="")), 422, "field 'collector'"),
        (post(doc(results={"a": 1})), 422, "field 'results'"),
        (post(doc(results=[{}] * (MAX_BATCH_RESULTS + 1))), 413, "at most"),
        (post(doc(extra=1)), 422, "unknown batch field(s): extra"),
        (post(b"\x1f\x8b\x08garbage", **{"Content-Encoding": "gzip"}), 400, "gzip"),
        (post(doc(), **{"Content-Encoding": "br"}), 415, "Content-Encoding"),
        (post(gzip.compress(b" " * (65 * 1024 * 1024)), **{"Content-Encoding": "gzip"}), 413, "expands"),
    ]
    for pending, status, words in cases:
        r = await pending
        assert r.status_code == status, (words, r.status_code, r.text)
        assert words in r.json()["detail"], (words, r.json())
    assert central.store.devices() == []  # nothing of any refused batch was written


async def test_a_bad_item_is_refused_alone_and_named(sim: Sim, central: Central) -> None:
    rep, results = await Poller(default_drivers()).sweep(sim.devices[:3])
    assert rep.ok == 3
    items = orjson.loads(encode_batch(new_batch_id(), "c", sim.devices[:3], results))
    items["results"][1]["reading"]["hashrate_ths"] = -5  # a forged reading
    items["results"].append({"device_id": "cgminer://10.9.9.9:4028", "time": results[0].time, "state": "timeout",
                             "error": "no answer"})  # a device the central was never told about
    items["results"].append({"device_id": sim.devices[0].id, "time": 1e12, "state": "ok"})  # far future
    items["devices"][2]["labels"]["rack"] = "x" * 100
    async with httpx.AsyncClient(base_url=central.url) as http:
        r = await http.post("/farm/api/ingest", content=orjson.dumps(items),
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    out = r.json()
    why = {(x["kind"], x["index"]): x["reason"] for x in out["refusals"]}
    assert set(why) == {("devices", 2), ("results", 1), ("results", 2), ("results", 3), ("results", 4)}
    assert "reading.hashrate_ths" in why[("results", 1)]
    assert "labels.rack" in why[("devices", 2)]
    assert why[("results", 2)].startswith("unknown device")  # device 2 itself was refused
    assert "unknown device" in why[("results", 3)]
    assert "ahead of the central's clock" in why[("results", 4)]
    assert out["refused"] == 5 and out["written"] == 1
    assert set(out["unknown_devices"]) == {sim.devices[2].id, "cgminer://10.9.9.9:4028"}
    assert history_keys(central.store) == [(results[0].device_id, results[0].time)]


# ---- the commands -----------------------------------------------------------------------------------------


def test_collect_and_run_central_commands_end_to_end(tmp_path: Path) -> None:
    """`pithead farm run --central` and two `pithead farm collect` processes against `pithead farm sim run`."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "pithead.cli"]
    net = "127.87.0.0/28"
    procs: list[subprocess.Popen[str]] = []

    def spawn(*args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen([*py, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             cwd=tmp_path)
        procs.append(p)
        return p

    try:
        central = spawn("farm", "run", "--central", "--web", f"127.0.0.1:{port}", "--token-file", str(token),
                        "--db", str(tmp_path / "central.sqlite3"))
        sim_port = free_port()
        fleet = spawn("farm", "sim", "run", "-n", "6", "--mix", "s19xp:1", "--network", net, "--api-port", str(sim_port),
                      "--web-port", str(free_port()), "--seed", "3")
        _wait_listening("127.0.0.1", port, central)
        _wait_listening("127.87.0.1", sim_port, fleet)
        outs = []
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-central-token-000\n")
        for i in range(2):
            db = str(tmp_path / f"c{i}.sqlite3")
            scan = subprocess.run([*py, "farm", "scan", net, "--cgminer-port", str(sim_port), "--db", db,
                                   "--site", "north", "--probe-timeout", "5"], capture_output=True, text=True,
                                  env=env, timeout=120)
            assert scan.returncode == 0, scan.stdout + scan.stderr
            if i == 0:  # first with a wrong token: refused, said clearly, and the readings stay in the spool file
                r = subprocess.run([*py, "farm", "collect", "--shard", "0/2", "--forward", f"http://127.0.0.1:{port}",
                                    "--token-file", str(wrong), "--db", db, "--interval", "0.5", "--duration", "1",
                                    "--name", "c0"],
                                   capture_output=True, text=True, env=env, timeout=120)
                assert r.returncode == 0, r.stdout + r.stderr
                assert "central REFUSED our token" in r.stdout and "401: wrong farm API token" in r.stdout, r.stdout
                assert "stopped: central auth refused" in r.stdout and "sent at the next start" in r.stdout
            if i == 0:
                where = ["--forward", f"http://127.0.0.1:{port}"]
            else:  # the second collector takes the central's URL and its spool bound from [farm] in its config
                conf = tmp_path / "c1.toml"
                conf.write_text(f'[farm]\nforward_url = "http://127.0.0.1:{port}"\nspool_max_items = 40000\n')
                where = ["--config", str(conf)]
            r = subprocess.run([*py, "farm", "collect", "--shard", f"{i}/2", *where,
                                "--token-file", str(token), "--db", db, "--interval", "0.5", "--duration", "1.5",
                                "--name", f"c{i}"],
                               capture_output=True, text=True, env=env, timeout=120)
            if i == 1:
                assert f"forwarding to http://127.0.0.1:{port}" in r.stdout and "bound 40000 items" in r.stdout
            assert r.returncode == 0, r.stdout + r.stderr
            outs.append(r.stdout)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            ingest = http.get("/farm/api/ingest").json()
            devices = http.get("/farm/api/devices").json()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.communicate(timeout=10)
    assert all("central ok" in o and "sent" in o for o in outs), outs
    assert "left from the last run; sending them first" in outs[0]
    assert set(ingest["collectors"]) == {"c0", "c1"}
    assert len(devices) == 6 and [d["state"] for d in devices] == ["ok"] * 6, (devices, outs)


def _wait_listening(host: str, port: int, proc: subprocess.Popen[str]) -> None:
    import time

    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.communicate()[0]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port}")


# ---- the central's own duties over forwarded readings ----------------------------------------------------


def batch_of(results: Sequence[PollResult], devices: Sequence[Device] = ()) -> bytes:
    return encode_batch(new_batch_id(), "test/c", devices, results)


async def test_a_shard_whose_collector_went_quiet_goes_offline_centrally_and_comes_back(sim: Sim) -> None:
    now = [1_800_000_000.0]
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL, poll_interval_s=60.0), clock=lambda: now[0])
    poller = Poller(default_drivers(), clock=lambda: now[0])
    _, results = await poller.sweep(sim.devices)
    await svc.ingest.handle(batch_of(results, sim.devices), None)
    assert await svc.central_tick() == [] and store.open_alerts() == []
    now[0] += 200.0  # no collector has said anything for 200 s (> 3 intervals)
    assert sorted(await svc.central_tick()) == sorted(d.id for d in sim.devices)
    assert all(st.state is DeviceState.UNREACHABLE and "no reading forwarded" in (st.error or "")
               for st in store.statuses())
    assert {(a.device_id, a.kind) for a in store.open_alerts()} == {(d.id, "offline") for d in sim.devices}
    _, fresh = await poller.sweep(sim.devices)  # the collector is back
    await svc.ingest.handle(batch_of(fresh), None)
    await svc.central_tick()
    assert all(st.state is DeviceState.OK for st in store.statuses())
    assert store.open_alerts() == []
    store.close()


async def test_readings_drained_late_are_rolled_up_into_their_buckets(sim: Sim) -> None:
    t0 = 1_800_000_000.0 - 1_800_000_000.0 % 3600
    now = [t0 + 3600.0]
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL), clock=lambda: now[0])
    at = [t0 + 10.0]
    poller = Poller(default_drivers(), clock=lambda: at[0])
    _, first = await poller.sweep(sim.devices)
    await svc.ingest.handle(batch_of(first, sim.devices), None)
    await svc.central_tick()
    assert {r.samples for r in store.rollups(300, t0)} == {1}
    at[0] = t0 + 70.0  # a reading of the same 5-min bucket, arriving after it was rolled up (a drained spool)
    _, late = await poller.sweep(sim.devices)
    await svc.ingest.handle(batch_of(late), None)
    await svc.central_tick()
    rows = store.rollups(300, t0)
    assert len(rows) == DEVICES and {r.samples for r in rows} == {2}
    assert {r.samples for r in store.rollups(3600, t0)} == {2}
    store.close()


# ---- the spool's bound, and batches the central will never take -------------------------------------------


def test_a_full_spool_drops_the_oldest_batches_and_says_so() -> None:
    spool = Spool(":memory:", max_items=25)
    fwd = Forwarder("http://127.0.0.1:9", None, spool, "test/full")
    devices = [Device(DeviceAddress(f"10.0.0.{i}", 4028, DriverKind.CGMINER), Identity("sim", "s")) for i in range(12)]
    results = [PollResult(d.id, 1_800_000_000.0 + k, DeviceState.TIMEOUT, error="no answer") for k in range(3)
               for d in devices]
    for k in range(3):
        fwd.submit_results(results[k * 12: (k + 1) * 12])
    assert (spool.batches, spool.items, spool.dropped_items) == (2, 24, 12)
    head = spool.head()
    assert head is not None and orjson.loads(gzip.decompress(head.body))["results"][0]["time"] == 1_800_000_001.0
    assert "LOST 12 dropped from the full spool" in fwd.status().line()
    spool.close()


async def test_a_batch_the_central_rejects_for_good_is_dropped_and_does_not_block_the_rest(
        sim: Sim, central: Central, tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.spool"))
    fwd = Forwarder(central.url, TOKEN, spool, "test/reject")
    spool.push(new_batch_id(), 5, 0, b"this is not gzip", 0.0)  # e.g. written by a broken older version
    fwd.submit_devices(sim.devices)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    try:
        async with asyncio.timeout(WAIT_S):
            await wait_drained(fwd)
    finally:
        stop.set()
        await task
    st = fwd.status()
    spool.close()
    assert (st.rejected_batches, st.rejected_items, st.sent_batches) == (1, 5, 1)
    assert "5 in 1 rejected batches" in st.line()
    assert len(central.store.devices()) == DEVICES


async def test_a_central_that_lost_its_inventory_is_sent_the_devices_again(
        sim: Sim, central: Central, make_collector: MakeCollector) -> None:
    col = make_collector(central.url, (0, 1))
    col.start()
    fresh = FarmStore(":memory:")
    replacement = Central(FarmService(fresh, FarmServiceConfig(role=Role.CENTRAL)), fresh, "")
    try:
        await col.sweeps(1)
        await col.drained()
        port = int(central.url.rsplit(":", 1)[1])
        await central.stop()
        await replacement.start(port)  # a new, empty central database on the same address
        await until_attempt(col.fwd, lambda: len(fresh.devices()) == DEVICES and all(
            st.state is DeviceState.OK for st in fresh.statuses()))
    finally:
        await col.stop()
        await replacement.stop()
    assert {d.id for d in fresh.devices()} == {d.id for d in sim.devices}
    fresh.close()


async def test_a_restarted_central_gives_collectors_time_to_drain_before_judging_them_silent(sim: Sim) -> None:
    now = [1_800_000_000.0]
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL, poll_interval_s=60.0), clock=lambda: now[0])
    _, results = await Poller(default_drivers(), clock=lambda: now[0]).sweep(sim.devices)
    await svc.ingest.handle(batch_of(results, sim.devices), None)
    now[0] += 1000.0  # the central was down for a while: every stored status is old
    task = asyncio.create_task(svc.run())
    async with asyncio.timeout(WAIT_S):
        await svc.evaluated.wait()  # the tick at start
    svc.stop()
    await task
    assert all(st.state is DeviceState.OK for st in store.statuses()) and store.open_alerts() == []
    now[0] += 200.0  # still nothing from the collectors after the grace: now they are silent
    assert len(await svc.central_tick()) == DEVICES
    store.close()


def test_the_collectors_bench_runs_and_loses_nothing() -> None:
    """`pithead bench farm --collectors 2 --central-workers 2` on a tiny fleet: every phase's readings reach
    the central (two workers on one port and one database), and the paced phase prints its figures."""
    r = subprocess.run([sys.executable, "-m", "pithead.cli", "bench", "farm", "--devices", "40", "--collectors", "2",
                        "--central-workers", "2", "--interval", "1", "--sweeps", "1", "--replay", "1"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "central: 2 worker process(es)" in out, out
    assert "burst: 40 devices polled by 2 collectors" in out and "central holds 40 devices" in out, out
    assert "replay x1: 40 readings ingested" in out, out
    assert "40 readings ingested, 0 missing, 0 lost in the collectors' spools" in out, out
    for figure in ("machines per CPU-second per collector", "central ingest:", "central evaluation:",
                   "for 500,000 machines every 1 s"):
        assert figure in out, (figure, out)
    assert "central: 120 readings written in all, 0 duplicates, 0 refused; collectors: 0 lost" in out


async def test_a_batch_whose_reply_was_lost_is_resent_and_not_counted_twice(
        sim: Sim, make_collector: MakeCollector) -> None:
    store = FarmStore(":memory:")
    svc = FarmService(store, FarmServiceConfig(role=Role.CENTRAL))
    app = FastAPI()
    app.include_router(service_router(svc, auth=FarmAuth(TOKEN)))
    held: list[str] = []

    @app.middleware("http")
    async def lose_the_first_reply(request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)  # the batch is written ...
        if request.url.path == "/farm/api/ingest" and not held:
            held.append("once")
            await asyncio.sleep(2.0)  # ... but its answer comes after the collector gave up waiting
        return response

    web = WebServer(app, "127.0.0.1", 0)
    await web.start()
    col = make_collector(web.url, (0, 1))
    col.fwd.timeout_s = 0.5
    col.start()
    try:
        await col.sweeps(2)
        await col.drained()
    finally:
        await col.stop()
        await web.stop()
    assert held and svc.ingest.total.duplicate_batches >= 1  # the resend was recognised ...
    assert history_keys(store) == [(r.device_id, r.time) for r in col.fwd.handed]  # ... and written once
    store.close()


async def test_a_scanning_collector_forwards_what_it_finds_and_reads_new_devices_once(
        sim: Sim, central: Central, tmp_path: Path) -> None:
    store = FarmStore(":memory:")  # empty: the collector discovers its devices itself
    axeos = next(d for d in sim.devices if d.address.driver is DriverKind.AXEOS)
    ports: dict[DriverKind, tuple[int, ...]] = {DriverKind.CGMINER: (sim.devices[0].address.port,),
                                                DriverKind.AXEOS: (axeos.address.port,)}
    fwd = Forwarder(central.url, TOKEN, Spool(str(tmp_path / "scan.spool")), "test/scan")
    svc = FarmService(store, FarmServiceConfig(role=Role.COLLECTOR, scan_cidrs=(NETWORK,), scan_ports=ports,
                                               rescan_interval_s=0.2, poll_interval_s=3600.0), forwarder=fwd)
    task = asyncio.create_task(svc.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await svc.scanned.wait()  # the first scan, and the first read of all it found
            assert svc.last_first_poll is not None and svc.last_first_poll.ok == DEVICES
            svc.scanned.clear()
            svc.first_polled.clear()
            await svc.scanned.wait()  # the next scan finds nothing new: nothing is read again
            assert not svc.first_polled.is_set()
            await wait_drained(fwd)
    finally:
        svc.stop()
        await task
        fwd.spool.close()
        store.close()
    assert {d.id for d in central.store.devices()} == {d.id for d in sim.devices}
    assert all(st.state is DeviceState.OK for st in central.store.statuses())


async def test_a_collector_without_a_token_is_told_to_get_one(
        sim: Sim, central: Central, caplog: pytest.LogCaptureFixture) -> None:
    fwd = Forwarder(central.url, None, Spool(":memory:"), "test/none")
    fwd.submit_devices(sim.devices)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    try:
        await until_attempt(fwd, lambda: fwd.central is CentralState.AUTH_REFUSED)
    finally:
        stop.set()
        await task
    assert (fwd.detail or "").startswith("401: this action needs the farm API token")
    assert any("we send no token" in r.getMessage() for r in caplog.records)
    assert fwd.spool.items == DEVICES  # kept
    fwd.spool.close()


def test_collect_without_a_central_url_is_one_clear_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pithead.cli", "farm", "collect", "--db",
                        str(tmp_path / "c.sqlite3"), "--duration", "0.1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--forward URL or [farm] forward_url" in r.stderr and "Traceback" not in r.stderr

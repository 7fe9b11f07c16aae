"""Alerts on seeded scenarios, the pool-ledger cross-check, and webhook delivery to a real loopback server."""

from __future__ import annotations

import asyncio

import orjson
from farm_devices import Servers

from pithead.farm.alerts import (
    AlertKind,
    AlertManager,
    AlertThresholds,
    MappingShareActivity,
    WebhookSink,
    evaluate,
)
from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    Identity,
    Labels,
    PollResult,
    PoolEntry,
    Reading,
)
from pithead.farm.store import DeviceStatus, FarmStore

T = AlertThresholds()
IDENT = Identity("Antminer", "Antminer S19 XP", expected_ths=140.0, expected_boards=3, expected_fans=4)


def device(i: int = 1) -> Device:
    return Device(DeviceAddress(f"10.0.0.{i}", 4028, DriverKind.CGMINER), IDENT, Labels("s", "r", str(i)))


def reading(d: Device, t: float, *, ths: float = 140.0, chip: float = 70.0, pcb: float = 55.0,
            fans: tuple[int, ...] = (3000, 3000, 3000, 3000), boards: int = 3, chips: tuple[int, ...] = (110, 110, 110),
            worker: str = "addr.rig1", uptime: float = 86_400.0) -> Reading:
    bs = tuple(Board(i, ths / boards, chips[i], 110, pcb, chip) for i in range(boards))
    return Reading(d.id, t, ths, 140.0, bs, tuple(Fan(i, r) for i, r in enumerate(fans)), None,
                   (PoolEntry(0, "stratum+tcp://p:3333", worker, True, True),), uptime_s=uptime)


def status(d: Device, r: Reading | None, state: DeviceState = DeviceState.OK, since: float = 0.0,
           error: str | None = None) -> DeviceStatus:
    return DeviceStatus(d, state, r.time if r else since, since, 0 if state is DeviceState.OK else 1,
                        r.time if r else None, error, r)


def kinds(conds) -> set[AlertKind]:  # type: ignore[no-untyped-def]
    return {c.kind for c in conds}


def test_healthy_device_raises_nothing() -> None:
    d = device()
    assert evaluate(status(d, reading(d, 1000.0)), 1000.0, T, last_share=990.0, share_data=True) == []


def test_seeded_fault_scenarios() -> None:
    d = device()
    now = 10_000.0
    assert kinds(evaluate(status(d, reading(d, now, chip=96.0)), now, T)) == {AlertKind.OVERHEAT}
    assert kinds(evaluate(status(d, reading(d, now, pcb=83.0)), now, T)) == {AlertKind.OVERHEAT}
    assert kinds(evaluate(status(d, reading(d, now, fans=(3000, 0, 3000, 3000))), now, T)) == {AlertKind.FAN_FAILURE}
    assert kinds(evaluate(status(d, reading(d, now, fans=(3000, 3000, 3000))), now, T)) == {AlertKind.FAN_FAILURE}
    # one board gone: two boards reported, and hashrate drops to 2/3
    two = reading(d, now, ths=93.0, boards=2)
    assert kinds(evaluate(status(d, two), now, T)) == {AlertKind.BOARD_MISSING, AlertKind.LOW_HASHRATE}
    # a board present but with no chips found (the S19 XP after-curtailment failure)
    nochips = reading(d, now, ths=93.0, chips=(110, 0, 110))
    conds = evaluate(status(d, nochips), now, T)
    assert kinds(conds) == {AlertKind.BOARD_MISSING, AlertKind.LOW_HASHRATE}
    assert "1: 0/110 chips" in next(c.message for c in conds if c.kind is AlertKind.BOARD_MISSING)
    # 85 % of expected is fine, 75 % is not
    assert evaluate(status(d, reading(d, now, ths=119.0)), now, T) == []
    assert kinds(evaluate(status(d, reading(d, now, ths=105.0)), now, T)) == {AlertKind.LOW_HASHRATE}


def test_offline_only_after_the_grace_period() -> None:
    d = device()
    st = status(d, reading(d, 0.0), DeviceState.TIMEOUT, since=1000.0, error="no answer within 5 s")
    assert evaluate(st, 1000.0 + T.offline_after_s - 1, T) == []
    conds = evaluate(st, 1000.0 + T.offline_after_s, T)
    assert kinds(conds) == {AlertKind.OFFLINE} and "timeout" in conds[0].message
    # stale last reading of a down device is not judged (its hot chip is from before it went down)
    hot = status(d, reading(d, 0.0, chip=99.0), DeviceState.UNREACHABLE, since=0.0, error="refused")
    assert kinds(evaluate(hot, 1000.0, T)) == {AlertKind.OFFLINE}
    # a curtailed device is off on purpose
    assert evaluate(status(d, reading(d, 0.0), DeviceState.CURTAILED, since=0.0), 10_000.0, T) == []


def test_hashing_but_no_shares_at_the_pool() -> None:
    d = device()
    now = 100_000.0
    st = status(d, reading(d, now))
    n = T.no_shares_after_s
    assert evaluate(st, now, T, last_share=now - n + 30, share_data=True) == []
    conds = evaluate(st, now, T, last_share=now - n - 60, share_data=True)
    assert kinds(conds) == {AlertKind.NO_SHARES} and "addr.rig1" in conds[0].message
    assert kinds(evaluate(st, now, T, last_share=None, share_data=True)) == {AlertKind.NO_SHARES}
    # without ledger data the check is off, not failing for every device
    assert evaluate(st, now, T, last_share=None, share_data=False) == []
    # just rebooted: not hashing for the whole window yet
    fresh = status(d, reading(d, now, uptime=400.0))
    assert evaluate(fresh, now, T, last_share=None, share_data=True) == []


def test_boot_grace() -> None:
    d = device()
    now = 5000.0
    booting = reading(d, now, ths=0.0, chips=(0, 0, 0), fans=(0, 0, 0, 0), uptime=60.0)
    assert evaluate(status(d, booting), now, T) == []  # still starting: not a fault yet
    hot_booting = reading(d, now, ths=0.0, chip=97.0, uptime=60.0)
    assert kinds(evaluate(status(d, hot_booting), now, T)) == {AlertKind.OVERHEAT}  # heat never waits
    came_back_short = reading(d, now, ths=93.0, chips=(110, 0, 110), uptime=T.boot_grace_s + 1)
    assert kinds(evaluate(status(d, came_back_short), now, T)) == {AlertKind.BOARD_MISSING, AlertKind.LOW_HASHRATE}


def test_manager_opens_resolves_and_joins_the_ledger(store: FarmStore) -> None:
    a, b, c = device(1), device(2), device(3)
    store.upsert_devices([a, b, c])
    t = 50_000.0
    store.write_results([
        PollResult(a.id, t, DeviceState.OK, reading(a, t, worker="w.a")),
        PollResult(b.id, t, DeviceState.OK, reading(b, t, chip=97.0, worker="w.b")),
        PollResult(c.id, t, DeviceState.OK, reading(c, t, worker="w.c")),
    ])
    ledger = MappingShareActivity({"w.a": t - 30, "w.b": t - 30})  # w.c never submitted
    delivered: list = []

    class Collect:
        def deliver(self, events):  # type: ignore[no-untyped-def]
            delivered.extend(events)

    mgr = AlertManager(T, ledger, [Collect()])
    events = mgr.run_once(store, t)
    assert {(e.device_id, e.kind, e.action) for e in events} == {
        (b.id, "overheat", "opened"), (c.id, "no_shares", "opened")}
    assert mgr.run_once(store, t + 60) == []  # still open: nothing new, no duplicates
    assert len(store.open_alerts()) == 2
    store.write_results([PollResult(b.id, t + 120, DeviceState.OK, reading(b, t + 120, worker="w.b"))])
    events = mgr.run_once(store, t + 120)
    assert [(e.device_id, e.kind, e.action) for e in events] == [(b.id, "overheat", "resolved")]
    assert len(delivered) == 3
    assert {a.kind for a in store.open_alerts()} == {"no_shares"}
    store.remove_device(c.id)  # forgotten devices do not keep alerts open
    assert [(e.device_id, e.action) for e in mgr.run_once(store, t + 180)] == [(c.id, "resolved")]
    assert store.open_alerts() == []


async def test_webhook_delivery_to_a_loopback_server(servers: Servers, store: FarmStore) -> None:
    received: list[dict] = []
    calls = 0

    async def receiver(method: str, path: str, body: bytes) -> tuple[int, object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 503, {"error": "busy"}  # first attempt fails: the sink must retry
        received.append({"method": method, "path": path, "body": orjson.loads(body)})
        return 200, {"ok": True}

    port = await servers.http(receiver)
    sink = WebhookSink(f"http://127.0.0.1:{port}/hooks/farm", backoff_s=0.01)
    sink.start()
    try:
        d = device(7)
        store.upsert_devices([d])
        store.write_results([PollResult(d.id, 0.0, DeviceState.TIMEOUT, error="no answer")])
        mgr = AlertManager(T, sinks=[sink])
        events = mgr.run_once(store, 1000.0)
        assert len(events) == 1
        await sink.flush(timeout_s=10)
    finally:
        await sink.aclose()
    assert calls == 2 and sink.sent == 1 and sink.failed == 0
    assert received[0]["method"] == "POST" and received[0]["path"] == "/hooks/farm"
    ev = received[0]["body"]["events"][0]
    assert (ev["device_id"], ev["kind"], ev["action"], ev["severity"]) == (d.id, "offline", "opened", "critical")


async def test_dead_webhook_is_bounded_and_never_raises(servers: Servers) -> None:
    port = await servers.frozen()  # accepts and never answers
    sink = WebhookSink(f"http://127.0.0.1:{port}/", timeout_s=0.2, attempts=2, backoff_s=0.01)
    sink.start()
    from pithead.farm.alerts import AlertEvent

    sink.deliver([AlertEvent(1, "opened", "d", "offline", "critical", "m", 0.0)])
    await asyncio.wait_for(sink.flush(timeout_s=10), timeout=15)
    await sink.aclose()
    assert sink.failed == 1 and sink.sent == 0

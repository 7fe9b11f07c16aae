"""The farm's alerts as notices: the alert manager's changes over a real farm store, one `farm.alert` per
kind of change in each evaluation (many machines dark is one message with their count), resolved ones as
info, and the machines listed up to a bound."""

from __future__ import annotations

from receivers import Recorder

from pithead.farm.alerts import NOTICE_MAX_LISTED, AlertManager, AlertThresholds, NoticeAlertSink
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
    Reading,
)
from pithead.farm.store import FarmStore

IDENT = Identity("Antminer", "Antminer S19 XP", expected_ths=140.0, expected_boards=3, expected_fans=4)
T = 50_000.0


def device(i: int) -> Device:
    return Device(DeviceAddress(f"10.0.0.{i}", 4028, DriverKind.CGMINER), IDENT, Labels("s", "r", str(i)))


def reading(d: Device, t: float, chip: float = 70.0) -> Reading:
    boards = tuple(Board(i, 140.0 / 3, 110, 110, 55.0, chip) for i in range(3))
    return Reading(d.id, t, 140.0, 140.0, boards, tuple(Fan(i, 3000) for i in range(4)), None, (), uptime_s=86_400.0)


def test_alert_changes_become_one_notice_per_kind() -> None:
    store = FarmStore(":memory:")
    try:
        hot = [device(i) for i in range(1, 3)]
        dark = [device(i) for i in range(10, 10 + NOTICE_MAX_LISTED + 2)]
        store.upsert_devices([*hot, *dark])
        store.write_results([PollResult(d.id, T, DeviceState.OK, reading(d, T, chip=97.0)) for d in hot])
        store.write_results([PollResult(d.id, T - 1000, DeviceState.UNREACHABLE, None, "timed out") for d in dark])
        told = Recorder()
        manager = AlertManager(AlertThresholds(), sinks=[NoticeAlertSink(told)])
        manager.run_once(store, T)
        by_title = {n.title: n for n in told.notices}
        assert set(by_title) == {"Farm: 2 machines overheating", f"Farm: {len(dark)} machines offline"}
        offline = by_title[f"Farm: {len(dark)} machines offline"]
        assert offline.kind == "farm.alert" and offline.severity == "critical"
        lines = offline.body.splitlines()
        assert len(lines) == NOTICE_MAX_LISTED + 2 and lines[-2] == "… and 2 more"
        assert "timed out" in lines[0] and lines[-1].startswith("Look at: power, network")
        assert "chip 97.0 °C" in by_title["Farm: 2 machines overheating"].body
        # one machine cools down: one resolved notice, as info, naming it
        store.write_results([PollResult(hot[0].id, T + 60, DeviceState.OK, reading(hot[0], T + 60))])
        manager.run_once(store, T + 60)
        resolved = told.notices[-1]
        assert resolved.title == f"Farm: {hot[0].id} no longer overheating" and resolved.severity == "info"
        assert len(told.notices) == 3
    finally:
        store.close()

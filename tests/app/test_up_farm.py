"""`pithead up`'s farm part (the simulated fleet and the fleet manager over it), run twice on one data
directory as two `./run up`s would: the devices keep their ids, and devices of earlier runs that this run
does not serve are forgotten instead of piling up (issue 15: "12 hashing / 48" and 36 offline alerts for
machines that never existed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pithead import config as config_mod
from pithead.app.demo import SIM_NETWORK, UpOptions, _load_state, _save_state, _start_farm
from pithead.app.lifecycle import Running, run_parts
from pithead.farm.model import Device, DeviceAddress, DeviceState, DriverKind, Identity
from pithead.farm.store import FarmStore

pytestmark = pytest.mark.timeout(180)

DEVICES = 4
WAIT_S = 60.0  # generous: the scan and first read share two busy cores with other tests


def _simulated(device_id: str) -> bool:
    return "://127.77." in device_id


async def _run_farm(data_dir: Path) -> list[str]:
    """One run of up's farm part until every simulated device has a good reading and the alerts have been
    evaluated after a sweep; the inventory's device ids."""
    cfg = config_mod.load(None)
    opts = UpOptions(data_dir=str(data_dir), sim_devices=DEVICES, print_fn=lambda _: None)
    state = _load_state(data_dir)
    running = Running(data_dir)
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    async def start() -> None:
        await _start_farm(opts, cfg, running, state)

    def ready(r: Running) -> None:
        async def watch() -> None:
            assert r.farm is not None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while loop.time() < deadline:
                sts = [st for st in await r.farm.store.call(FarmStore.statuses) if _simulated(st.device.id)]
                if r.farm.last_sweep is not None and len(sts) >= DEVICES and all(
                        st.state is DeviceState.OK for st in sts):
                    break
                await asyncio.sleep(0.2)
            seen["ids"] = sorted(st.device.id for st in await r.farm.store.call(FarmStore.statuses))
            seen["states"] = [st.state for st in await r.farm.store.call(FarmStore.statuses)
                              if _simulated(st.device.id)]
            stop.set()

        seen["task"] = asyncio.ensure_future(watch())

    await run_parts(running, start, stop, started=lambda: _save_state(data_dir, state), on_ready=ready,
                    duration=WAIT_S + 10)
    await seen["task"]
    assert len(seen["states"]) == DEVICES and all(s is DeviceState.OK for s in seen["states"]), seen
    return list(seen["ids"])


async def test_demo_devices_keep_their_ids_and_stale_ones_are_forgotten(tmp_path: Path) -> None:
    data = tmp_path / "pithead-data"
    data.mkdir()
    # What earlier runs left behind before the fix: the same machines under other (random) ports, and a
    # real device elsewhere that must never be touched.
    with FarmStore(data / "farm.sqlite3") as s:
        leftovers = [Device(DeviceAddress(f"127.77.0.{n}", 1000 + n, DriverKind.CGMINER),
                            Identity("Antminer", "Antminer S19")) for n in range(1, 4)]
        s.upsert_devices(leftovers)
        for d in leftovers:
            s.open_alert(d.id, "offline", "critical", "no answer", 1.0)
        s.upsert_devices([Device(DeviceAddress("10.1.0.5", 4028, DriverKind.CGMINER), Identity("Antminer", "S21"))])

    first = await _run_farm(data)
    assert len(first) == DEVICES + 1, first  # this run's fleet, plus the real device
    assert "cgminer://10.1.0.5:4028" in first
    assert not any(f":{1000 + n}" in i for n in range(1, 4) for i in first)  # the leftovers are gone

    second = await _run_farm(data)
    assert second == first  # the same ids: nothing added again

    with FarmStore(data / "farm.sqlite3") as s:
        assert len([d for d in s.devices() if _simulated(d.id)]) == DEVICES
        assert SIM_NETWORK.startswith("127.77.")
        # the forgotten devices' offline alerts were resolved by the evaluation after a sweep
        assert not {a.device_id for a in s.open_alerts()} & {d.id for d in leftovers}

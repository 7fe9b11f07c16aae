"""Interop: pyasic (a third-party client) identifies and reads simulated devices on ports 4028 and 80.

pyasic hard-codes :4028 and http://ip/, so each device gets its own loopback address and the fleet is
served in per-device bind mode (ports 80/4028 on a random 127.x.y.0/24). The clock is frozen
(ManualClock), so what pyasic reads can be compared exactly with the device's own snapshot.
"""

from __future__ import annotations

import pyasic
import pytest

from pithead.fleetsim.clock import ManualClock
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.server import FleetServer, SimServerError

pytestmark = pytest.mark.timeout(120)


async def _serve(subnet: str, mix: str, n: int) -> tuple[Fleet, FleetServer]:
    fleet = Fleet.build(n, mix=mix, seed=11, network=subnet, clock=ManualClock())
    srv = FleetServer(fleet, bind="per-device")
    try:
        await srv.start()
    except SimServerError as exc:  # another process took 80/4028 on this subnet meanwhile
        pytest.skip(str(exc))
    return fleet, srv


async def test_pyasic_identifies_and_reads_antminers(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "s19:1,s19xp:1,s21:1", 3)
    try:
        expected = {"s19": ("S19", 76), "s19xp": ("S19 XP", 110), "s21": ("S21", 108)}
        for dev in fleet:
            miner = await pyasic.get_miner(dev.ip)
            assert miner is not None, dev.ip
            model, chips = expected[dev.spec.key]
            data = await miner.get_data()
            snap = dev.snapshot(fleet.ctx, fleet.now())
            assert data.make == "AntMiner"
            assert data.model == model
            assert "Stock" in str(miner)
            # hashrate: SUMMARY "GHS 5s" in GH/s → pyasic TH/s; pyasic's total is the sum of the boards,
            # which add up to the 5 s figure as on real firmware
            assert float(data.raw_hashrate) == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-5)
            assert float(data.hashrate) == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-4)
            assert float(data.expected_hashrate) == pytest.approx(snap.ideal_ghs / 1000.0, abs=1e-4)
            # hashboards come from the web stats.cgi (Digest auth) chain[] list
            assert [h.chips for h in data.hashboards] == [chips] * 3
            assert [h.missing for h in data.hashboards] == [False] * 3
            for h, b in zip(data.hashboards, snap.boards, strict=True):
                assert h.temp == pytest.approx(sum(b.temp_pcb) / 4)
                assert h.chip_temp == pytest.approx(sum(b.temp_chip) / 4)
                assert float(h.hashrate) == pytest.approx(b.rate_ghs / 1000.0, abs=1e-4)
                assert h.serial_number == b.serial
            assert [f.speed for f in data.fans] == list(snap.fans_rpm)
            assert len(data.pools) == 1
            pool = data.pools[0]
            assert str(pool.url) == snap.pools[0].url
            assert pool.user == snap.pools[0].user == f"pithead.{dev.hostname}"
            assert pool.active and pool.alive
            assert pool.accepted == snap.pools[0].accepted > 0
            assert data.hostname == dev.hostname
            assert data.mac == dev.mac()
            assert data.uptime == snap.elapsed_s
            assert data.api_ver == "3.1"
            assert data.is_mining is True
            assert data.errors == []
            # stock S19/S19 XP report no power (pyasic reads none from this firmware either way)
            assert data.wattage is None
            cfg = await miner.get_config()
            assert [str(p.url) for p in cfg.pools.groups[0].pools] == [snap.pools[0].url]
    finally:
        await srv.close()


async def test_pyasic_identifies_and_reads_bitaxes(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "bitaxe-gamma:1,bitaxe-supra:1,bitaxe-ultra:1", 3)
    try:
        expected = {"bitaxe-gamma": "Gamma", "bitaxe-supra": "Supra", "bitaxe-ultra": "Ultra"}
        for dev in fleet:
            miner = await pyasic.get_miner(dev.ip)
            assert miner is not None, dev.ip
            data = await miner.get_data()
            snap = dev.snapshot(fleet.ctx, fleet.now())
            assert data.make == "BitAxe"
            assert data.model == expected[dev.spec.key]
            assert float(data.hashrate) == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-5)
            # expected = small cores × MHz × chips (MH/s)
            assert float(data.expected_hashrate) == pytest.approx(
                dev.spec.small_cores * snap.freq_mhz / 1e6, rel=1e-6
            )
            assert data.wattage == round(snap.power_w)
            assert len(data.hashboards) == 1
            assert data.hashboards[0].chip_temp == pytest.approx(snap.chip_temp_c, abs=1e-3)
            assert [f.speed for f in data.fans] == list(snap.fans_rpm)
            assert data.hostname == dev.hostname
            assert data.mac == dev.mac().upper()
            assert data.uptime == snap.elapsed_s
            pools = data.config.pools.groups[0].pools
            assert [str(p.url) for p in pools] == [snap.pools[0].url]
            assert pools[0].user == snap.pools[0].user
    finally:
        await srv.close()


async def test_pyasic_sees_failures_and_reboots(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "s19:1,s19xp:1", 2)
    try:
        s19, xp = fleet.devices
        s19.dead_boards = 0b010  # board 1 dies: an S19 keeps hashing on two boards
        xp.dead_boards = 0b001  # an XP without PIC goes down entirely [FA3]
        data = await (await pyasic.get_miner(s19.ip)).get_data()  # type: ignore[union-attr]
        assert [h.chips for h in data.hashboards] == [76, 0, 76]
        snap = s19.snapshot(fleet.ctx, fleet.now())
        assert float(data.hashrate) == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-4)
        assert 55 < float(data.hashrate) < 70  # two of three boards
        xdata = await (await pyasic.get_miner(xp.ip)).get_data()  # type: ignore[union-attr]
        assert float(xdata.hashrate) == 0.0
        assert xdata.errors  # summary.cgi carries a non-"s" status entry
        fleet.restart(s19.ip)
        assert await pyasic.get_miner(s19.ip) is None  # rebooting units cannot be identified [I-46]
    finally:
        await srv.close()


async def test_pyasic_identifies_and_reads_whatsminers(subnet: str) -> None:
    fleet, srv = await _serve(subnet, "m30s:1,m50:1", 2)
    try:
        expected = {"m30s": ("M30S V50", 156), "m50": ("M50 VH50", 105)}
        for dev in fleet:
            miner = await pyasic.get_miner(dev.ip)
            assert miner is not None, dev.ip
            model, chips = expected[dev.spec.key]
            data = await miner.get_data()
            snap = dev.snapshot(fleet.ctx, fleet.now())
            assert data.make == "WhatsMiner"
            assert data.model == model
            # btminer reports MH/s; the boards add up to the total
            assert float(data.hashrate) == pytest.approx(snap.rate_5s_ghs / 1000.0, abs=1e-4)
            assert float(data.expected_hashrate) == pytest.approx(dev.spec.hashrate_ths)
            assert [h.chips for h in data.hashboards] == [chips] * 3
            assert [h.serial_number for h in data.hashboards] == [b.serial for b in snap.boards]
            assert [f.speed for f in data.fans] == list(snap.fans_rpm)
            assert data.wattage == round(snap.power_w)  # Whatsminers do report power
            assert data.env_temp == pytest.approx(snap.ambient_c, abs=0.01)
            assert data.hostname == dev.hostname and data.mac == dev.mac()
            assert data.fw_ver == "20230911.12.Rel"
            assert data.uptime == snap.elapsed_s
            assert [str(p.url) for p in data.pools] == [snap.pools[0].url]
            assert data.pools[0].accepted == snap.pools[0].accepted
            assert data.is_mining is True and data.errors == []
    finally:
        await srv.close()

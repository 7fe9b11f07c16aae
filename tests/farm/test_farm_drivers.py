"""The cgminer-API and AxeOS drivers against real loopback devices built from pithead's codecs."""

from __future__ import annotations

import pytest
from farm_devices import Antminer, Bitaxe, Servers, chain

from pithead.farm.drivers.axeos import AxeOSDriver
from pithead.farm.drivers.base import (
    DeviceRefused,
    DeviceUnreachable,
    DriverError,
    PoolSpec,
    UnsupportedAction,
)
from pithead.farm.drivers.cgminer import CgminerDriver
from pithead.farm.drivers.normalise import fans, hashrate_ths, temperature
from pithead.farm.model import DeviceAddress, DriverKind


async def test_cgminer_read_is_one_joined_connection_and_normalised(servers: Servers) -> None:
    dev = Antminer(chains=[chain(0, ghs=47_000.0), chain(1, ghs=46_000.0), chain(2, ghs=45_000.0, chip=77)])
    port = await servers.antminer(dev)
    addr = DeviceAddress("127.0.0.1", port, DriverKind.CGMINER)
    r = await CgminerDriver().read(addr.device_id, addr, 123.0)
    assert dev.log == ["summary+stats+pools"]
    assert r.hashrate_ths == pytest.approx(138.0)
    assert r.expected_ths == pytest.approx(140.1)
    assert [b.hashrate_ths for b in r.boards] == pytest.approx([47.0, 46.0, 45.0])
    assert [b.chips for b in r.boards] == [110, 110, 110]
    assert r.boards[0].expected_chips == 110  # S19 XP nameplate
    assert r.max_chip_temp_c == 77
    assert [f.rpm for f in r.fans] == [2800, 2820, 2790, 2810]
    assert r.power_w is None and r.efficiency_j_per_th is None  # stock S19 XP reports no power
    assert r.worker == "addr.rig1"
    assert r.uptime_s == 3600 and r.time == 123.0


async def test_cgminer_falls_back_when_join_refused(servers: Servers) -> None:
    dev = Antminer(join_ok=False, power_w=3010.0)
    port = await servers.antminer(dev)
    drv = CgminerDriver()
    addr = DeviceAddress("127.0.0.1", port, DriverKind.CGMINER)
    r1 = await drv.read("d", addr, 0.0)
    r2 = await drv.read("d", addr, 1.0)
    assert dev.log[0] == "summary+stats+pools"
    assert sorted(dev.log[1:4]) == ["pools", "stats", "summary"]
    assert sorted(dev.log[4:]) == ["pools", "stats", "summary"]  # remembered: no second join attempt
    assert r1.power_w == 3010.0 and r2.efficiency_j_per_th == pytest.approx(3010.0 / r2.hashrate_ths)


async def test_cgminer_identify(servers: Servers) -> None:
    port = await servers.antminer(Antminer(model="Antminer S21"))
    ident = await CgminerDriver().identify(DeviceAddress("127.0.0.1", port, DriverKind.CGMINER))
    assert (ident.make, ident.model, ident.expected_boards, ident.expected_fans) == ("Antminer", "Antminer S21", 3, 4)


async def test_cgminer_actions(servers: Servers) -> None:
    dev = Antminer()
    port = await servers.antminer(dev)
    drv = CgminerDriver()
    addr = DeviceAddress("127.0.0.1", port, DriverKind.CGMINER)
    await drv.reboot(addr)
    assert dev.restarts == 1
    await drv.set_pools(addr, [PoolSpec("stratum+tcp://10.0.0.5:3333", "new.w1"),
                               PoolSpec("stratum+tcp://10.0.0.6:3333", "new.w2")])
    assert dev.pools == [("stratum+tcp://10.0.0.5:3333", "new.w1"), ("stratum+tcp://10.0.0.6:3333", "new.w2")]
    assert dev.active_pool == 0
    await drv.switch_pool(addr, 1)
    assert dev.active_pool == 1
    await drv.set_mining(addr, False)
    assert dev.sleeping
    r = await drv.read("d", addr, 0.0)
    assert r.hashrate_ths == 0.0


async def test_cgminer_privileged_refused_and_no_sleep(servers: Servers) -> None:
    dev = Antminer(privileged=False, can_sleep=False)
    port = await servers.antminer(dev)
    drv = CgminerDriver()
    addr = DeviceAddress("127.0.0.1", port, DriverKind.CGMINER)
    with pytest.raises(DeviceRefused, match="Access denied"):
        await drv.reboot(addr)
    with pytest.raises(UnsupportedAction):
        await drv.set_mining(addr, False)
    assert dev.restarts == 0


async def test_refused_port_is_unreachable(servers: Servers) -> None:
    port = await servers.antminer(Antminer())
    await servers.close()  # now nothing listens there
    with pytest.raises(DeviceUnreachable):
        await CgminerDriver().read("d", DeviceAddress("127.0.0.1", port, DriverKind.CGMINER), 0.0)


async def test_axeos_read_identify_and_actions(servers: Servers) -> None:
    dev = Bitaxe()
    port = await servers.http(dev.handle)
    drv = AxeOSDriver()
    addr = DeviceAddress("127.0.0.1", port, DriverKind.AXEOS)
    ident = await drv.identify(addr)
    assert (ident.make, ident.model, ident.mac) == ("Bitaxe", "BM1370", "AA:BB:CC:DD:EE:01")
    r = await drv.read(addr.device_id, addr, 5.0)
    assert r.hashrate_ths == pytest.approx(1.2)
    assert r.power_w == pytest.approx(18.5)
    assert r.efficiency_j_per_th == pytest.approx(18.5 / 1.2)
    assert r.max_chip_temp_c == 55.0 and [f.rpm for f in r.fans] == [4000]
    assert r.worker == "addr.axe1" and r.pools[1].url == "stratum+tcp://10.0.0.2:3334"
    await drv.set_pools(addr, [PoolSpec("stratum+tcp://pool.example:4444", "me.axe")])
    assert dev.patches[-1]["stratumURL"] == "pool.example" and dev.patches[-1]["stratumPort"] == 4444
    assert dev.restarts == 1
    r2 = await drv.read("d", addr, 6.0)
    assert r2.worker == "me.axe"
    with pytest.raises(DriverError):
        await drv.set_pools(addr, [PoolSpec("stratum+tcp://a:1", "u")] * 3)
    with pytest.raises(UnsupportedAction):
        await drv.set_mining(addr, False)


def test_normaliser_quirks() -> None:
    assert hashrate_ths("140258.58", "GH") == pytest.approx(140.25858)
    assert hashrate_ths(500_000, "MH/s") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        hashrate_ths("inf", "GH")
    assert temperature(0) is None and temperature("nan") is None and temperature(65) == 65.0
    assert fans([3000, 3100, 0, 0], 2) == [3000, 3100]  # absent slots dropped
    assert fans([3000, 0, 3100, 3050], 4) == [3000, 0, 3100, 3050]  # a dead fan kept
    assert fans([3000, 3100, 0, 0], None) == [3000, 3100]


def test_pool_spec_validation() -> None:
    with pytest.raises(DriverError):
        PoolSpec("http://x:1", "u")
    with pytest.raises(DriverError):
        PoolSpec("stratum+tcp://x:1", "bad,user")
    PoolSpec("stratum+tcp://x:3333", "ok.user")

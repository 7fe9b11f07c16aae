"""The pyasic adapter: real makes (Whatsminer, Braiins OS, LuxOS, Vnish, Avalon, ...) through pyasic.

pyasic identifies a miner by probing the host's port 80 and 4028 (it hard-codes both), builds a
vendor-specific class, and `get_data()` returns a `MinerData`. This adapter translates `MinerData` into
the canonical `Reading` through the normaliser and maps pyasic's failures onto the driver errors. It is
imported lazily (pyasic pulls in pydantic and many vendor modules), and the pyasic miner object of each
host is cached after identification, in a bounded dict, so a poll is one `get_data()`.

Known limits inherited from pyasic (field notes §2.5 and §4): ports cannot be chosen, so every device
needs its own IP; `get_miner` returns None when nothing answers; Whatsminer writes need the unlocked
privileged API. `switch_pool` is not in pyasic's common interface (UnsupportedAction); `set_pools` uses
`send_config` with one pool group.

Power: pyasic's `set_power_limit(watts)` for the makes whose class implements it (Whatsminer v2:
`adjust_power_limit` through the token flow; v3; Braiins OS: power target; LuxOS and Vnish: the highest
preset at or below; Auradine; Avalon work levels). Where pyasic's config lists presets (LuxOS profiles),
they are the levels; otherwise pyasic reports no range, so the capability is nameplate (or the
limit/draw the unit reports) down to `MIN_LIMIT_FRACTION` of it; a class that does not override
`set_power_limit` (pyasic's base answers False) is SLEEP_ONLY.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pithead.farm.drivers import normalise as norm
from pithead.farm.drivers.base import (
    DeviceProtocolError,
    DeviceRefused,
    DeviceUnreachable,
    PoolSpec,
    UnsupportedAction,
    check_pool_list,
)
from pithead.farm.model import (
    Board,
    DeviceAddress,
    Fan,
    Identity,
    PoolEntry,
    PowerCapability,
    PowerMechanism,
    PowerTarget,
    Reading,
)
from pithead.farm.protocol.whatsminer import MIN_LIMIT_FRACTION

# pyasic miner objects kept (one per identified host). Least recently used beyond this are re-identified.
MAX_CACHED_MINERS = 100_000


def pyasic_hashrate_ths(h: Any) -> float | None:
    """pyasic's AlgoHashRate (rate in `unit`, whose int value is its size in H/s) -> TH/s."""
    if h is None:
        return None
    try:
        return max(float(h.rate) * int(h.unit) / 1e12, 0.0)
    except (AttributeError, TypeError, ValueError):
        f = norm.number(h)  # some backends hand a bare number in TH/s
        return f


class PyasicDriver:
    kind = "pyasic"

    def __init__(self) -> None:
        self._miners: OrderedDict[str, Any] = OrderedDict()

    async def _miner(self, address: DeviceAddress) -> Any:
        m = self._miners.get(address.host)
        if m is not None:
            self._miners.move_to_end(address.host)
            return m
        import pyasic  # lazy: heavy import, only for fleets with real makes

        try:
            m = await pyasic.get_miner(address.host)
        except OSError as exc:
            raise DeviceUnreachable(f"{address.host}: {exc}") from exc
        except Exception as exc:  # pyasic raises its own and many third-party exception types
            raise DeviceProtocolError(f"pyasic could not identify {address.host}: {exc!r}") from exc
        if m is None:
            raise DeviceUnreachable(f"pyasic found no miner at {address.host}")
        self._miners[address.host] = m
        while len(self._miners) > MAX_CACHED_MINERS:
            self._miners.popitem(last=False)
        return m

    async def identify(self, address: DeviceAddress) -> Identity:
        m = await self._miner(address)
        data = await self._data(m, address)
        model = str(data.model or getattr(m, "model", "") or "unknown")
        return Identity(
            make=str(data.make or norm.make_of(model)),
            model=model,
            firmware=data.fw_ver,
            mac=data.mac,
            hostname=data.hostname,
            serial=data.serial_number,
            expected_ths=pyasic_hashrate_ths(data.expected_hashrate),
            expected_boards=data.expected_hashboards,
            expected_fans=data.expected_fans,
        )

    async def _data(self, m: Any, address: DeviceAddress) -> Any:
        try:
            return await m.get_data()
        except OSError as exc:
            raise DeviceUnreachable(f"{address.host}: {exc}") from exc
        except Exception as exc:
            raise DeviceProtocolError(f"pyasic get_data on {address.host}: {exc!r}") from exc

    async def read(self, device_id: str, address: DeviceAddress, now: float) -> Reading:
        data = await self._data(await self._miner(address), address)
        return reading_from_miner_data(device_id, now, data)

    async def _act(self, address: DeviceAddress, what: str, coro: Any) -> None:
        try:
            ok = await coro
        except Exception as exc:
            raise DeviceRefused(f"{what} on {address.host}: {exc!r}") from exc
        if ok is False:
            raise DeviceRefused(f"{what} refused by {address.host}")

    async def reboot(self, address: DeviceAddress) -> None:
        m = await self._miner(address)
        await self._act(address, "reboot", m.reboot())

    async def switch_pool(self, address: DeviceAddress, index: int) -> None:
        raise UnsupportedAction("pyasic has no common switch-pool call; use set_pools")

    async def set_pools(self, address: DeviceAddress, pools: Sequence[PoolSpec]) -> None:
        from pyasic.config import MinerConfig
        from pyasic.config.pools import Pool, PoolConfig

        specs = check_pool_list(pools)
        m = await self._miner(address)
        cfg = MinerConfig(pools=PoolConfig.simple([Pool(url=p.url, user=p.user, password=p.password)
                                                   for p in specs]))
        await self._act(address, "send_config", m.send_config(cfg))

    async def set_mining(self, address: DeviceAddress, on: bool) -> None:
        m = await self._miner(address)
        await self._act(address, "resume_mining" if on else "stop_mining",
                        m.resume_mining() if on else m.stop_mining())


    @staticmethod
    def _limits_power(m: Any) -> bool:
        from pyasic.miners.base import MinerProtocol

        return getattr(type(m), "set_power_limit", None) is not MinerProtocol.set_power_limit

    async def power_capability(self, address: DeviceAddress) -> PowerCapability:
        m = await self._miner(address)
        data = await self._data(m, address)
        model = str(data.model or "")
        np = norm.nameplate(model) or norm.nameplate(model.split(" ")[0])  # "M30S V50" -> "M30S"
        top = (np.watts if np and np.watts else None) or norm.number(getattr(data, "wattage_limit", None)) \
            or norm.number(data.wattage)
        if not top or top <= 0:
            raise DeviceProtocolError(f"pyasic reports no power for {address.host}")
        if not self._limits_power(m):
            return PowerCapability(PowerMechanism.SLEEP_ONLY, top, top)
        presets = await self._presets(m)
        if presets:
            # preset firmware (LuxOS, Vnish): set_power_limit takes the highest preset at or below; no
            # overclocking for curtailment, so the range ends at the "default" preset where there is one
            default = presets.get("default")
            levels = tuple(sorted({w for w in presets.values() if default is None or w <= default}))
            steps = [b - a for a, b in itertools.pairwise(levels)]
            return PowerCapability(PowerMechanism.PROFILE, levels[0], levels[-1], max(min(steps, default=1.0), 1.0),
                                   levels)
        return PowerCapability(PowerMechanism.POWER_LIMIT, round(top * MIN_LIMIT_FRACTION), top)

    async def _presets(self, m: Any) -> dict[str, float]:
        """Preset name -> watts, where pyasic's config lists presets (LuxOS profiles, Vnish presets)."""
        try:
            cfg = await m.get_config()
        except Exception:  # pyasic raises many types; a unit without presets is a power-limit unit
            return {}
        presets = getattr(getattr(cfg, "mining_mode", None), "available_presets", None) or []
        out = {}
        for p in presets:
            w = norm.number(getattr(p, "power", None))
            if w and w > 0:
                out[str(p.name)] = w
        return out

    async def set_power(self, address: DeviceAddress, watts: float) -> PowerTarget:
        m = await self._miner(address)
        if not self._limits_power(m):
            raise UnsupportedAction(f"pyasic cannot set a power limit on {type(m).__name__}")
        presets = await self._presets(m)
        await self._act(address, "set_power_limit", m.set_power_limit(int(watts)))
        fitting = {n: w for n, w in presets.items() if w <= int(watts)}
        if fitting:  # pyasic set the highest preset at or below
            name = max(fitting, key=lambda n: fitting[n])
            return PowerTarget(watts, name, fitting[name])
        return PowerTarget(watts, f"{int(watts)}W", float(int(watts)))


def reading_from_miner_data(device_id: str, now: float, data: Any) -> Reading:
    """pyasic MinerData -> canonical Reading (None where pyasic has None; never a made-up figure)."""
    boards = []
    for b in data.hashboards or []:
        boards.append(Board(
            index=int(b.slot or 0),
            hashrate_ths=pyasic_hashrate_ths(b.hashrate) or 0.0,
            # pyasic marks a board it expected but did not get as missing: chips 0 in our model
            chips=0 if getattr(b, "missing", False) else b.chips,
            expected_chips=b.expected_chips,
            board_temp_c=norm.temperature(b.temp),
            chip_temp_c=norm.temperature(b.chip_temp),
            serial=b.serial_number,
        ))
    fan_rpms = [int(f.speed) for f in (data.fans or []) if f.speed is not None]
    pools = []
    for i, p in enumerate(data.pools or []):
        pools.append(PoolEntry(
            index=p.index if p.index is not None else i,
            url=str(p.url) if p.url is not None else "",
            user=p.user or "",
            alive=p.alive,
            active=bool(p.active),
            accepted=p.accepted,
            rejected=p.rejected,
        ))
    if not pools and data.config is not None and data.config.pools is not None:
        # Some pyasic backends (ESP-Miner/Bitaxe) report no pool metrics, only the configured pools: the
        # first configured pool is the one in use.
        cfg_pools = [p for g in data.config.pools.groups for p in g.pools]
        pools = [PoolEntry(index=i, url=str(p.url), user=p.user, alive=None, active=i == 0)
                 for i, p in enumerate(cfg_pools)]
    errors = tuple(
        str(getattr(e, "error_message", None) or getattr(e, "error_code", "") or e) for e in data.errors or []
    )
    hashrate = pyasic_hashrate_ths(data.hashrate)
    if hashrate is None:
        raise DeviceProtocolError("pyasic returned no hashrate")  # an error reading, not 0 TH/s
    return Reading(
        device_id=device_id,
        time=now,
        hashrate_ths=hashrate,
        expected_ths=pyasic_hashrate_ths(data.expected_hashrate),
        boards=tuple(boards),
        fans=tuple(Fan(i, r) for i, r in enumerate(norm.fans(fan_rpms, data.expected_fans))),
        power_w=norm.power(data.wattage),
        pools=tuple(pools),
        errors=errors,
        uptime_s=float(data.uptime) if data.uptime is not None else None,
        is_mining=bool(data.is_mining),
    )

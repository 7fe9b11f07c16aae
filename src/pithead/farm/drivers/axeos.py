"""The AxeOS (Bitaxe / ESP-Miner) driver: HTTP JSON on port 80, on top of `pithead.farm.protocol.axeos`.

Transport: one short HTTP/1.1 exchange per request with `Connection: close`, framed by h11 (the sans-IO
HTTP/1.1 state machine httpx itself uses) over a plain asyncio connection. A poll is one
`GET /api/system/info`, which carries everything (hashrate, power, temperatures, fan, pools). We skip a
full HTTP client here on purpose: a fleet poll is one request per device per minute, so connection pools
and cookies buy nothing, and the per-request overhead matters at 24,000 devices.

Actions: `POST /api/system/restart` (reboot), `PATCH /api/system` with stratum fields (pool changes take
effect on the device's restart, as on real AxeOS, so set_pools/switch_pool also restart it). AxeOS has a
primary and one fallback pool, so `switch_pool(1)` swaps them. AxeOS has no sleep mode: `set_mining`
raises UnsupportedAction. Power: AxeOS sets frequency and core voltage, not watts; the levels are the
device's own frequency options at or below the default, each with the voltage it needs, and the watts
each should draw scaled from what the device draws now (`codec.power_levels`). `set_power` PATCHes the
pair and restarts the device, which is when AxeOS applies it.

The deadline is the poller's; the socket is aborted on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

import h11
import orjson

from pithead.farm.drivers import normalise as norm
from pithead.farm.drivers.base import (
    DeviceProtocolError,
    DeviceRefused,
    DeviceUnreachable,
    PoolSpec,
    UnsupportedAction,
    check_pool_list,
    split_stratum_url,
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
from pithead.farm.protocol import axeos as codec
from pithead.farm.protocol.errors import AxeOSPayloadError

# A system/info body is ~2 KiB; anything past this is not AxeOS.
MAX_BODY_BYTES = 256 * 1024
READ_CHUNK = 65_536
# AxeOS keeps a primary and one fallback pool.
AXEOS_MAX_POOLS = 2


async def http(address: DeviceAddress, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a fresh connection. Returns (status, body)."""
    payload = b"" if body is None else orjson.dumps(body)
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_BODY_BYTES)
    headers = [("Host", address.host), ("Connection", "close"), ("Accept", "application/json")]
    if body is not None:
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    elif method != "GET":
        headers.append(("Content-Length", "0"))
    try:
        reader, writer = await asyncio.open_connection(address.host, address.port)
    except OSError as exc:
        raise DeviceUnreachable(f"{address.host}:{address.port}: {exc.strerror or exc}") from exc
    try:
        out = conn.send(h11.Request(method=method, target=path, headers=headers))
        if payload:
            out += conn.send(h11.Data(data=payload))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()
        status = 0
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(READ_CHUNK)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    raise DeviceProtocolError(f"HTTP body over {MAX_BODY_BYTES} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        return status, b"".join(chunks)
    except h11.RemoteProtocolError as exc:
        raise DeviceProtocolError(f"bad HTTP from {address.host}: {exc}") from exc
    except ConnectionError as exc:
        raise DeviceUnreachable(f"{address.host}:{address.port}: connection lost: {exc}") from exc
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.transport.abort()


async def _json(address: DeviceAddress, method: str, path: str, body: Any = None) -> Any:
    status, data = await http(address, method, path, body)
    if status == 401:
        raise DeviceRefused(f"{method} {path}: 401 (client outside the device's allowed network)")
    if not 200 <= status < 300:
        raise DeviceRefused(f"{method} {path}: HTTP {status}")
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DeviceProtocolError(f"{method} {path}: body is not JSON") from exc


class AxeOSDriver:
    kind = "axeos"

    async def _info(self, address: DeviceAddress) -> codec.SystemInfo:
        try:
            return codec.parse_system_info(await _json(address, "GET", codec.INFO_PATH))
        except AxeOSPayloadError as exc:
            raise DeviceProtocolError(str(exc)) from exc

    async def identify(self, address: DeviceAddress) -> Identity:
        info = await self._info(address)
        np = norm.nameplate(info.asic_model)
        expected = info.expected_hashrate_ghs or _expected_ghs(info)
        return Identity(
            make="Bitaxe",
            model=info.asic_model,
            firmware=info.axeos_version or info.version or None,
            mac=info.mac_addr or None,
            hostname=info.hostname or None,
            expected_ths=expected / 1000.0 if expected else (np.ths if np else None),
            expected_boards=1,
            expected_fans=1,
        )

    async def read(self, device_id: str, address: DeviceAddress, now: float) -> Reading:
        return reading_from_info(device_id, now, await self._info(address))

    async def reboot(self, address: DeviceAddress) -> None:
        # AxeOS answers a restart with plain text ("System will restart shortly."), not JSON
        status, _ = await http(address, "POST", codec.RESTART_PATH)
        if not 200 <= status < 300:
            raise DeviceRefused(f"POST {codec.RESTART_PATH}: HTTP {status}")

    async def _patch(self, address: DeviceAddress, patch: dict[str, Any]) -> None:
        try:
            codec.parse_settings_patch(patch)  # validate before it goes on the wire
        except AxeOSPayloadError as exc:
            raise DeviceRefused(f"settings refused locally: {exc}") from exc
        await _json(address, "PATCH", codec.SYSTEM_PATH, patch)

    async def switch_pool(self, address: DeviceAddress, index: int) -> None:
        if index == 0:
            return await self.reboot(address)  # primary is what AxeOS uses after a restart anyway
        if index != 1:
            raise DeviceRefused(f"AxeOS has pools 0 and 1, not {index}")
        info = await self._info(address)
        if not info.fallback_stratum_url:
            raise DeviceRefused("no fallback pool configured")
        await self._patch(address, {
            "stratumURL": info.fallback_stratum_url, "stratumPort": info.fallback_stratum_port,
            "stratumUser": info.fallback_stratum_user,
            "fallbackStratumURL": info.stratum_url, "fallbackStratumPort": info.stratum_port,
            "fallbackStratumUser": info.stratum_user,
        })
        await self.reboot(address)

    async def set_pools(self, address: DeviceAddress, pools: Sequence[PoolSpec]) -> None:
        specs = check_pool_list(pools)
        if len(specs) > AXEOS_MAX_POOLS:
            raise DeviceRefused(f"AxeOS keeps at most {AXEOS_MAX_POOLS} pools")
        patch: dict[str, Any] = {}
        for prefix, spec in zip(("stratum", "fallbackStratum"), specs, strict=False):
            host, port = split_stratum_url(spec.url)
            patch.update({f"{prefix}URL": host, f"{prefix}Port": port, f"{prefix}User": spec.user,
                          f"{prefix}Password": spec.password})
        await self._patch(address, patch)
        await self.reboot(address)

    async def set_mining(self, address: DeviceAddress, on: bool) -> None:
        raise UnsupportedAction("AxeOS has no sleep mode; cut power at the PDU instead")

    async def _levels(self, address: DeviceAddress) -> tuple[codec.PowerLevel, ...]:
        try:
            asic = codec.parse_asic_info(await _json(address, "GET", codec.ASIC_PATH))
            return codec.power_levels(await self._info(address), asic)
        except AxeOSPayloadError as exc:
            raise DeviceProtocolError(str(exc)) from exc

    async def power_capability(self, address: DeviceAddress) -> PowerCapability:
        levels = tuple(lv.watts for lv in await self._levels(address))
        steps = [b - a for a, b in itertools.pairwise(levels)]
        return PowerCapability(PowerMechanism.FREQUENCY_VOLTAGE, levels[0], levels[-1],
                               min(steps, default=levels[-1]), levels)

    async def set_power(self, address: DeviceAddress, watts: float) -> PowerTarget:
        level = codec.pick_level(await self._levels(address), watts)
        if level is None:
            raise DeviceRefused(f"no frequency/voltage pair at or below {watts:g} W")
        await self._patch(address, {"frequency": level.frequency_mhz, "coreVoltage": level.core_voltage_mv})
        await self.reboot(address)  # AxeOS applies frequency and voltage when it restarts
        return PowerTarget(watts, level.label, level.watts)


def _expected_ghs(info: codec.SystemInfo) -> float:
    # ESP-Miner's own formula: small cores x frequency (MHz -> MH/s) x chips, in GH/s.
    return info.small_core_count * info.frequency_mhz * info.asic_count / 1000.0


def reading_from_info(device_id: str, now: float, info: codec.SystemInfo) -> Reading:
    """AxeOS system info -> canonical Reading: one board (the chip), one fan, power reported."""
    hashrate = norm.hashrate_ths(info.hash_rate_ghs, "GH")
    expected = info.expected_hashrate_ghs or _expected_ghs(info)
    pools = [PoolEntry(0, f"stratum+tcp://{info.stratum_url}:{info.stratum_port}", info.stratum_user,
                       alive=None, active=not info.is_using_fallback,
                       accepted=info.shares_accepted, rejected=info.shares_rejected)]
    if info.fallback_stratum_url:
        pools.append(PoolEntry(1, f"stratum+tcp://{info.fallback_stratum_url}:{info.fallback_stratum_port}",
                               info.fallback_stratum_user, alive=None, active=bool(info.is_using_fallback)))
    errors = ("overheat_mode",) if info.overheat_mode else ()
    return Reading(
        device_id=device_id,
        time=now,
        hashrate_ths=hashrate,
        expected_ths=expected / 1000.0 if expected else None,
        boards=(Board(0, hashrate, chips=info.asic_count, expected_chips=info.asic_count,
                      # vrTemp is the regulator, not the board: it runs hot by design, so it is
                      # not reported as a board temperature (that would raise false OVERHEATs)
                      board_temp_c=None, chip_temp_c=norm.temperature(info.temp_c)),),
        fans=(Fan(0, max(info.fan_rpm, 0)),),
        power_w=norm.power(info.power_w),
        pools=tuple(pools),
        errors=errors,
        uptime_s=float(info.uptime_s),
        is_mining=True,
    )

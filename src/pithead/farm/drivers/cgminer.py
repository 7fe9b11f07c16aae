"""The cgminer/bmminer API driver (TCP 4028), on top of the sans-IO codec `pithead.farm.protocol.cgminer`
(`wire` for requests and the reply envelope, `parse` for the sections).

Errors: a healthy poll is one API connection and carries no vendor error codes. When a reading looks
degraded (`normalise.looks_degraded`: low hashrate, missing chips, a stalled fan, a hot chip), the driver
also asks the stock web `summary.cgi` for the firmware's own diagnosis and adds it to `Reading.errors`.

Transport: one request per TCP connection, as the firmware expects; the reply ends at a NUL byte or at
EOF (real miners send both), and reading stops at `wire.MAX_REPLY_BYTES`. A poll is ONE
connection: the joined report command `summary+stats+pools`. Firmware that refuses the join form (pyasic
notes S19 variants that do) is remembered per address and read with three separate commands instead.

Actions use the privileged commands (`restart`, `switchpool`, `addpool`, `removepool`), which need the
miner's `W:` api-allow; an access-denied reply becomes `DeviceRefused`. cgminer's API has no standard
sleep command. `set_mining` therefore goes the way stock Bitmain firmware does it: the web interface
(port 80, HTTP Digest, root/root by default) -- read `get_miner_conf.cgi`, write it back through
`set_miner_conf.cgi` with `bitmain-work-mode` 1 (sleep) or 0 (normal). When the device has no such web
interface it tries `SLEEP_COMMAND` on the API (`ascset|0,sleep|on`, a LuxOS-style extension), and
raises `UnsupportedAction` when neither works.

Power: what a unit can do depends on its firmware, read once per address from the `version` reply (as
pyasic's socket probe does): LuxOS (`LUXminer`) sets one of its profiles inside a session (`logon`,
`profiles`, `profileset`, `logoff`; sleep/wake is `curtail`); a Whatsminer (`btminer`) takes a power
limit through the encrypted token flow (`adjust_power_limit`, then it restarts); stock bmminer has
sleep/normal only, so `set_power` raises `UnsupportedAction` and curtailment sleeps it instead.

The deadline is the poller's (asyncio.timeout); the socket is closed on every path, cancellation included.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from pithead.farm.drivers import normalise as norm
from pithead.farm.drivers.base import (
    DeviceProtocolError,
    DeviceRefused,
    DeviceUnreachable,
    DriverError,
    PoolSpec,
    UnsupportedAction,
    check_pool_list,
)
from pithead.farm.model import (
    Board,
    DeviceAddress,
    Fan,
    FarmError,
    Identity,
    PoolEntry,
    PowerCapability,
    PowerMechanism,
    PowerTarget,
    Reading,
)
from pithead.farm.protocol import antminer_web as web
from pithead.farm.protocol import luxos as lx
from pithead.farm.protocol import whatsminer as wmp
from pithead.farm.protocol.cgminer import wire
from pithead.farm.protocol.cgminer.parse import parse_pools, parse_stats, parse_summary, parse_version
from pithead.farm.protocol.cgminer.sections import Pool, Stats, Summary
from pithead.farm.protocol.errors import CgminerCommandError, CgminerReplyError, CodecError

# Read size per recv; replies are a few KiB.
READ_CHUNK = 65_536
# Commands of one poll; joined into a single connection when the firmware allows it.
POLL_COMMANDS = ("summary", "stats", "pools")
# Addresses known to refuse the join form; bounded so a churning inventory cannot grow it for ever.
MAX_NO_JOIN_MEMORY = 1_000_000
# The sleep/wake command for curtailment (cgminer's ascset, with the parameter LuxOS-style firmware and
# the simulator understand). Stock bmminer answers it with an error -> UnsupportedAction.
SLEEP_COMMAND = "ascset"
# The stock web interface (sleep/wake through bitmain-work-mode) and its per-request timeout.
WEB_PORT = 80
WEB_TIMEOUT_S = 5.0
# The error lookup on a degraded reading must leave the poller's per-device deadline (5 s) to the API read.
WEB_ERRORS_TIMEOUT_S = 2.0
# Firmware families on the cgminer API port, told apart by their `version` reply.
FW_STOCK, FW_LUXOS, FW_WHATSMINER = "stock", "luxos", "whatsminer"
# Ranking stand-in for the nominal draw of a stock unit whose model has no nameplate (S19 class).
UNKNOWN_NOMINAL_W = 3250.0


def firmware_of(reply: dict[str, Any]) -> str:
    """Which firmware answered a `version` request (LuxOS and btminer name themselves in it)."""
    text = orjson.dumps(reply).upper()
    if b"LUXMINER" in text:
        return FW_LUXOS
    if b"BTMINER" in text or b"BITMICRO" in text:
        return FW_WHATSMINER
    return FW_STOCK


async def call(address: DeviceAddress, command: str | Sequence[str], parameter: str | None = None,
               **extras: Any) -> dict[str, Any]:
    """Send one request on a fresh connection and return the decoded reply (status not yet checked)."""
    return await exchange(address, wire.encode_request(command, parameter, **extras))


async def exchange(address: DeviceAddress, request: bytes) -> dict[str, Any]:
    """One request's bytes (built by a codec) on a fresh connection; the decoded reply."""
    try:
        reader, writer = await asyncio.open_connection(address.host, address.port)
    except OSError as exc:
        raise DeviceUnreachable(f"{address.host}:{address.port}: {exc.strerror or exc}") from exc
    try:
        writer.write(request)
        await writer.drain()
        buf = bytearray()
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            buf += chunk
            if len(buf) > wire.MAX_REPLY_BYTES:
                raise DeviceProtocolError(f"reply over {wire.MAX_REPLY_BYTES} bytes")
            if chunk.endswith(wire.NUL):
                break
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise DeviceUnreachable(f"{address.host}:{address.port}: connection lost: {exc}") from exc
    finally:
        # Never wait for the peer to acknowledge a close: a frozen device would hold us here.
        with contextlib.suppress(OSError, RuntimeError):
            writer.transport.abort()
    if not buf:
        raise DeviceProtocolError("empty reply (connection closed without an answer)")
    try:
        return wire.decode_reply(bytes(buf))
    except CgminerReplyError as exc:
        raise DeviceProtocolError(str(exc)) from exc


async def command(address: DeviceAddress, cmd: str, parameter: str | None = None, **extras: Any) -> dict[str, Any]:
    """`call` plus a status check: an E/F status becomes DeviceRefused."""
    reply = await call(address, cmd, parameter, **extras)
    try:
        wire.check_status(reply, cmd)
    except CgminerCommandError as exc:
        raise DeviceRefused(f"{cmd}: {exc.msg} (code {exc.code})") from exc
    except CgminerReplyError as exc:
        raise DeviceProtocolError(f"{cmd}: {exc}") from exc
    return reply


class CgminerDriver:
    """Antminer-style devices over the cgminer API (and the stock web interface for sleep/wake)."""

    kind = "cgminer"

    def __init__(self, web_port: int = WEB_PORT, web_user: str = web.DEFAULT_USER,
                 web_password: str = web.DEFAULT_PASSWORD, web_errors: bool = True) -> None:
        self._no_join: set[tuple[str, int]] = set()
        self._firmware: dict[tuple[str, int], str] = {}
        self.whatsminer_password = wmp.DEFAULT_PASSWORD
        self.web_port = web_port
        self.web_errors = web_errors
        self._auth = httpx.DigestAuth(web_user, web_password)

    async def _poll_parts(self, address: DeviceAddress) -> dict[str, dict[str, Any]]:
        key = (address.host, address.port)
        if key not in self._no_join:
            reply = await call(address, POLL_COMMANDS)
            if "STATUS" not in reply:  # a joined reply: {"summary":[…],"stats":[…],"pools":[…]}
                try:
                    return wire.split_joined_reply(reply)
                except CgminerReplyError as exc:
                    raise DeviceProtocolError(str(exc)) from exc
            # a single STATUS at top level: the join form was refused; fall back for good
            if len(self._no_join) < MAX_NO_JOIN_MEMORY:
                self._no_join.add(key)
        parts = await asyncio.gather(*(call(address, c) for c in POLL_COMMANDS))
        return dict(zip(POLL_COMMANDS, parts, strict=True))

    async def identify(self, address: DeviceAddress) -> Identity:
        try:
            version = parse_version(await call(address, "version"))
            stats = parse_stats(await call(address, "stats"))
        except CgminerCommandError as exc:
            raise DeviceRefused(f"identify: {exc.msg}") from exc
        except CgminerReplyError as exc:
            raise DeviceProtocolError(f"identify: {exc}") from exc
        model = version.miner_type or stats.version.miner_type
        if not model:
            raise DeviceProtocolError("device does not say its model")
        np = norm.nameplate(model)
        return Identity(
            make=norm.make_of(model),
            model=model,
            firmware=version.compile_time,
            expected_ths=stats.ideal_ghs / 1000.0 if stats.ideal_ghs else (np.ths if np else None),
            expected_boards=np.boards if np else len(stats.chains) or None,
            expected_fans=np.fans if np else len([f for f in stats.fans_rpm if f > 0]) or None,
        )

    async def _web_errors(self, address: DeviceAddress) -> tuple[str, ...]:
        """The failing status items of the stock web `summary.cgi` (rate / fans / temp / network)."""
        url = f"http://{address.host}:{self.web_port}{web.CGI_PREFIX}summary.cgi"
        async with httpx.AsyncClient(auth=self._auth, timeout=WEB_ERRORS_TIMEOUT_S) as client:
            resp = await client.get(url)
        if resp.status_code != 200:
            return ()
        return tuple(norm.status_error(i.type, i.msg, i.code) for i in web.parse_summary_errors(resp.json()))

    async def read(self, device_id: str, address: DeviceAddress, now: float) -> Reading:
        reading = await self._read_api(device_id, address, now)
        if self.web_errors and norm.looks_degraded(reading):
            # Only a degraded reading pays for the extra digest-auth HTTP round trips: the firmware's own
            # diagnosis (fan lost, temperature protection, ...) is worth it then, and only then.
            try:
                async with asyncio.timeout(WEB_ERRORS_TIMEOUT_S):
                    errors = await self._web_errors(address)
            except (TimeoutError, httpx.HTTPError, ValueError, DriverError, FarmError):
                errors = ()  # enrichment only: the API reading stands without it
            if errors:
                reading = dataclasses.replace(reading, errors=reading.errors + errors)
        return reading

    async def _read_api(self, device_id: str, address: DeviceAddress, now: float) -> Reading:
        parts = await self._poll_parts(address)
        try:
            summary = parse_summary(parts["summary"])
            stats = parse_stats(parts["stats"])
            pools = parse_pools(parts["pools"])
        except KeyError as exc:
            raise DeviceProtocolError(f"joined reply lacks {exc}") from exc
        except CgminerCommandError as exc:
            raise DeviceRefused(f"{exc.command}: {exc.msg} (code {exc.code})") from exc
        except CgminerReplyError as exc:
            raise DeviceProtocolError(str(exc)) from exc
        return reading_from_parsed(device_id, now, summary, stats, pools)

    async def reboot(self, address: DeviceAddress) -> None:
        await command(address, "restart")

    async def switch_pool(self, address: DeviceAddress, index: int) -> None:
        if index < 0:
            raise DeviceRefused(f"bad pool index {index}")
        await command(address, "switchpool", str(index))

    async def set_pools(self, address: DeviceAddress, pools: Sequence[PoolSpec]) -> None:
        """Replace the pool list: add the new pools, switch to the first of them, remove the old ones
        (highest index first, so lower indices do not shift under us)."""
        specs = check_pool_list(pools)
        existing = parse_pools(await command(address, "pools"))
        for p in specs:
            await command(address, "addpool", f"{p.url},{p.user},{p.password}")
        await command(address, "switchpool", str(len(existing)))
        for old in sorted((p.index for p in existing), reverse=True):
            await command(address, "removepool", str(old))

    async def _web_work_mode(self, address: DeviceAddress, mode: int) -> None:
        base = f"http://{address.host}:{self.web_port}{web.CGI_PREFIX}"
        async with httpx.AsyncClient(auth=self._auth, timeout=WEB_TIMEOUT_S) as client:
            try:
                got = await client.get(base + "get_miner_conf.cgi")
                if got.status_code != 200:
                    raise DeviceRefused(f"get_miner_conf.cgi: HTTP {got.status_code}")
                conf = got.json()
                if not isinstance(conf, dict):
                    raise DeviceProtocolError("get_miner_conf.cgi: not a JSON object")
                conf["bitmain-work-mode"] = str(mode)
                put = await client.post(base + "set_miner_conf.cgi", json=conf)
            except httpx.HTTPError as exc:
                raise DeviceUnreachable(f"web interface of {address.host}: {exc}") from exc
            except ValueError as exc:
                raise DeviceProtocolError(f"get_miner_conf.cgi: {exc}") from exc
        if put.status_code != 200:
            raise DeviceRefused(f"set_miner_conf.cgi: HTTP {put.status_code}")

    async def set_mining(self, address: DeviceAddress, on: bool) -> None:
        if await self.firmware(address) == FW_LUXOS:
            async with self._lux_session(address) as sid:
                await self._lux(address, lx.curtail_request(sid, not on), "curtail")
            return
        mode = web.WORK_MODE_NORMAL if on else web.WORK_MODE_SLEEP
        try:
            await self._web_work_mode(address, mode)
            return
        except (DeviceUnreachable, DeviceRefused, DeviceProtocolError) as web_exc:
            web_error = web_exc
        try:
            await command(address, SLEEP_COMMAND, f"0,sleep|{'off' if on else 'on'}")
        except DeviceRefused as exc:
            raise UnsupportedAction(f"device cannot sleep/wake: web: {web_error}; API: {exc}") from exc


    # ------------------------------------------------------------------ power

    async def firmware(self, address: DeviceAddress) -> str:
        key = (address.host, address.port)
        fw = self._firmware.get(key)
        if fw is None:
            fw = firmware_of(await call(address, "version"))
            if len(self._firmware) < MAX_NO_JOIN_MEMORY:
                self._firmware[key] = fw
        return fw

    async def _lux(self, address: DeviceAddress, request: bytes, what: str) -> dict[str, Any]:
        reply = await exchange(address, request)
        try:
            wire.check_status(reply, what)
        except CgminerCommandError as exc:
            raise DeviceRefused(f"LuxOS {what}: {exc.msg} (code {exc.code})") from exc
        except CgminerReplyError as exc:
            raise DeviceProtocolError(f"LuxOS {what}: {exc}") from exc
        return reply

    @contextlib.asynccontextmanager
    async def _lux_session(self, address: DeviceAddress):  # type: ignore[no-untyped-def]
        """LuxOS's one session per unit: logon, the caller's writes, logoff (even when they fail)."""
        reply = await self._lux(address, lx.logon_request(), "logon")
        try:
            sid = lx.parse_logon(reply)
        except CodecError as exc:
            raise DeviceProtocolError(str(exc)) from exc
        try:
            yield sid
        finally:
            with contextlib.suppress(DriverError, OSError):
                await self._lux(address, lx.logoff_request(sid), "logoff")

    async def _lux_profiles(self, address: DeviceAddress) -> tuple[lx.Profile, ...]:
        try:
            return lx.parse_profiles(await self._lux(address, lx.profiles_request(), "profiles"))
        except CodecError as exc:
            raise DeviceProtocolError(str(exc)) from exc

    async def _nominal_w(self, address: DeviceAddress) -> float:
        if await self.firmware(address) == FW_WHATSMINER:
            reply = await call(address, "devdetails")
            items = reply.get("DEVDETAILS") or [{}]
            model = str(items[0].get("Model", "")).split("_")[0] if isinstance(items[0], dict) else ""
        else:
            model = parse_version(await call(address, "version")).miner_type
        np = norm.nameplate(model)
        if np is None or np.watts is None:
            if await self.firmware(address) == FW_WHATSMINER:
                raise DeviceProtocolError(f"no nameplate power for Whatsminer model {model!r}")
            return UNKNOWN_NOMINAL_W
        return np.watts

    async def power_capability(self, address: DeviceAddress) -> PowerCapability:
        fw = await self.firmware(address)
        if fw == FW_LUXOS:
            profiles = await self._lux_profiles(address)
            default = next((p.watts for p in profiles if p.name == "default"), None)
            # no overclocking for curtailment: the range ends at the EEPROM default
            levels = tuple(sorted({p.watts for p in profiles if default is None or p.watts <= default}))
            steps = [b - a for a, b in itertools.pairwise(levels)]
            return PowerCapability(PowerMechanism.PROFILE, levels[0], levels[-1], max(min(steps, default=1.0), 1.0),
                                   levels)
        nominal = await self._nominal_w(address)
        if fw == FW_WHATSMINER:
            return PowerCapability(PowerMechanism.POWER_LIMIT, round(nominal * wmp.MIN_LIMIT_FRACTION), nominal)
        return PowerCapability(PowerMechanism.SLEEP_ONLY, nominal, nominal)

    async def set_power(self, address: DeviceAddress, watts: float) -> PowerTarget:
        fw = await self.firmware(address)
        if fw == FW_LUXOS:
            profile = lx.pick_profile(await self._lux_profiles(address), watts)
            if profile is None:
                raise DeviceRefused(f"no LuxOS profile at or below {watts:g} W")
            async with self._lux_session(address) as sid:
                reply = await self._lux(address, lx.profileset_request(sid, profile.name), "profileset")
            try:
                running = lx.parse_profileset(reply)
            except CodecError as exc:
                raise DeviceProtocolError(str(exc)) from exc
            if running != profile.name:
                raise DeviceRefused(f"asked for profile {profile.name!r}, the unit runs {running!r}")
            return PowerTarget(watts, profile.name, profile.watts)
        if fw == FW_WHATSMINER:
            cap = await self.power_capability(address)
            level = cap.settable(watts)
            if level is None:
                raise DeviceRefused(f"{watts:g} W is below this Whatsminer's range ({cap.min_w:g} W)")
            try:
                token = wmp.parse_token(await exchange(address, wmp.token_request()))
                keys = wmp.derive_keys(self.whatsminer_password, token)
                reply = wmp.decrypt_reply(keys, await exchange(address, wmp.adjust_power_limit_request(keys, int(level))))
                wmp.check_ok(reply, "adjust_power_limit")
            except wmp.WhatsminerError as exc:
                raise DeviceRefused(str(exc)) from exc
            return PowerTarget(watts, f"{int(level)}W", float(int(level)))
        raise UnsupportedAction("stock Antminer firmware has sleep/normal only: sleep the unit instead")


def reading_from_parsed(device_id: str, now: float, summary: Summary, stats: Stats,
                        pools: Sequence[Pool]) -> Reading:
    """Parsed cgminer sections -> canonical Reading, through the normaliser."""
    np = norm.nameplate(stats.version.miner_type)
    boards = tuple(
        Board(
            index=c.index,
            hashrate_ths=norm.hashrate_ths(c.rate_ghs, "GH") if c.rate_ghs is not None else 0.0,
            chips=c.chips,
            expected_chips=np.chips_per_board if np else None,
            board_temp_c=norm.temperature(c.board_temp_c),
            chip_temp_c=norm.temperature(c.chip_temp_c),
            serial=c.serial,
        )
        for c in stats.chains
    )
    fans = tuple(Fan(i, rpm) for i, rpm in enumerate(norm.fans(stats.fans_rpm, np.fans if np else None)))
    hashrate = norm.hashrate_ths(summary.ghs_5s, "GH")
    return Reading(
        device_id=device_id,
        time=now,
        hashrate_ths=hashrate,
        expected_ths=norm.hashrate_ths(stats.ideal_ghs, "GH") if stats.ideal_ghs else None,
        boards=boards,
        fans=fans,
        power_w=norm.power(stats.power_w),
        pools=tuple(
            PoolEntry(index=p.index, url=p.url, user=p.user, alive=p.alive, active=p.active,
                      accepted=p.accepted, rejected=p.rejected)
            for p in pools
        ),
        errors=(),
        uptime_s=float(summary.elapsed_s),
        # stock cgminer has no "asleep" flag: a device at 0 TH/s that we did not curtail is a fault
        is_mining=True,
    )

"""Loopback test devices for the fleet-manager tests: a cgminer-API Antminer, an AxeOS Bitaxe, a frozen
device (accepts TCP, never answers) and an HTTP receiver for webhooks.

These are small real servers on 127.0.0.1 (ephemeral ports), built from pithead's own wire codecs; the
full simulated fleet (`pithead.fleetsim`) is exercised separately in test_sim_readback.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

from pithead.farm.protocol import axeos as ax
from pithead.farm.protocol.cgminer import build as cgb
from pithead.farm.protocol.cgminer import sections as cgs
from pithead.farm.protocol.cgminer import wire as cg

WHEN = 1_700_000_000


def chain(index: int, chips: int = 110, ghs: float = 46_700.0, pcb: int = 55, chip: int = 70) -> cgs.Chain:
    return cgs.Chain(index=index, chips=chips, rate_ghs=ghs if chips else 0.0, ideal_ghs=46_700.0,
                     freq_avg=525.0, temp_pcb=(pcb, pcb, pcb - 5, pcb - 5),
                     temp_chip=(chip, chip, chip - 5, chip - 5), temp_pic=(0, 0, 0, 0), hw=3, serial=f"SN{index}",
                     voltage_mv=12625)


def stock_version(model: str) -> cgs.Version:
    """What a stock bmminer says about itself (VERSION, and the STATS identity entry)."""
    return cgs.Version(model, api="3.1", compile_time="Thu Nov 24 15:54:04 CST 2022", bmminer="1.0.0",
                       miner="uart_trans.1.3")


@dataclass
class Antminer:
    """State of one fake bmminer device; the server answers from it on every connection."""

    model: str = "Antminer S19 XP"
    chains: list[cgs.Chain] = field(default_factory=lambda: [chain(0), chain(1), chain(2)])
    fans: tuple[int, ...] = (2800, 2820, 2790, 2810)
    pools: list[tuple[str, str]] = field(default_factory=lambda: [("stratum+tcp://127.0.0.1:3333", "addr.rig1")])
    active_pool: int = 0
    power_w: float | None = None
    elapsed: int = 3600
    join_ok: bool = True
    privileged: bool = True
    can_sleep: bool = True
    sleeping: bool = False
    restarts: int = 0
    log: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    delay_s: float = 0.0

    def ghs(self) -> float:
        return 0.0 if self.sleeping else sum(c.rate_ghs or 0.0 for c in self.chains)

    def reply(self, cmd: str, params: tuple[str, ...]) -> dict[str, Any]:
        ok = lambda code, msg: cg.Status(cg.ReplySeverity.SUCCESS, WHEN, code, msg, "bmminer 1.0.0")  # noqa: E731
        if cmd == "version":
            v = stock_version(self.model)
            return cg.build_reply(ok(cg.Code.VERSION, "CGMiner versions"), "VERSION", [cgb.version_section(v)])
        if cmd == "summary":
            s = cgs.Summary(self.elapsed, self.ghs(), self.ghs(), 100, 1, 5, ghs_30m=self.ghs(), best_share=0)
            return cg.build_reply(ok(cg.Code.SUMM, "Summary"), "SUMMARY", [cgb.summary_section(s)])
        if cmd == "stats":
            chains = tuple(self.chains) if not self.sleeping else tuple(
                dataclasses.replace(c, rate_ghs=0.0) for c in self.chains)
            st = cgs.Stats(stock_version(self.model), self.elapsed, self.ghs(), self.ghs(), self.ghs(), 3 * 46_700.0,
                           self.fans, chains, power_w=self.power_w, frequency=525)
            return cg.build_reply(ok(cg.Code.MINESTATS, "CGMiner stats"), "STATS", cgb.stats_legacy_section(st))
        if cmd == "pools":
            items = [cgb.pool_section(cgs.Pool(i, u, w, alive=True, active=i == self.active_pool, priority=i))
                     for i, (u, w) in enumerate(self.pools)]
            return cg.build_reply(ok(cg.Code.POOL, f"{len(items)} Pool(s)"), "POOLS", items)
        if cmd in cg.PRIVILEGED_COMMANDS and not self.privileged:
            return cg.access_denied_reply(WHEN, cmd, "bmminer 1.0.0")
        if cmd == "restart":
            self.restarts += 1
            return cg.restart_reply()
        if cmd == "switchpool":
            self.active_pool = int(params[0])
            return cg.build_reply(ok(cg.Code.SWITCHP, "Switching"))
        if cmd == "addpool":
            self.pools.append((params[0], params[1]))
            return cg.build_reply(ok(cg.Code.ADDPOOL, "Added pool"))
        if cmd == "removepool":
            i = int(params[0])
            if i == self.active_pool:
                return cg.error_reply(WHEN, cg.Code.ACTPOOL, "Cannot remove active pool", "bmminer 1.0.0")
            del self.pools[i]
            if self.active_pool > i:
                self.active_pool -= 1
            return cg.build_reply(ok(cg.Code.REMPOOL, "Removed pool"))
        if cmd == "ascset" and self.can_sleep:
            self.sleeping = params[-1].endswith("on")
            return cg.build_reply(ok(120, "ASC set OK"))
        return cg.invalid_command_reply(WHEN, "bmminer 1.0.0")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            data = await reader.read(65536)
            if not data:
                return  # a scanner's connect probe
            req = cg.parse_request(data)
            self.log.append(req.command if req.parameter is None else f"{req.command}|{req.parameter}")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if req.is_joined:
                if not self.join_ok:
                    reply = cg.invalid_command_reply(WHEN, "bmminer 1.0.0")
                else:
                    reply = cg.build_joined_reply({c: self.reply(c, req.params) for c in req.commands})
            else:
                reply = self.reply(req.commands[0], req.params)
            writer.write(cg.frame_reply(reply))
            await writer.drain()
        finally:
            self.in_flight -= 1
            writer.close()


class Servers:
    """Starts loopback servers and closes them all at the end of a test."""

    def __init__(self) -> None:
        self._servers: list[asyncio.base_events.Server] = []
        self._frozen: list[asyncio.StreamWriter] = []
        self.frozen_connections = 0

    async def antminer(self, dev: Antminer, host: str = "127.0.0.1") -> int:
        srv = await asyncio.start_server(dev.handle, host, 0)
        self._servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    async def frozen(self, host: str = "127.0.0.1") -> int:
        """Accepts connections and never answers (a hung miner)."""

        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.frozen_connections += 1
            self._frozen.append(writer)
            await reader.read()  # until the client gives up and closes

        srv = await asyncio.start_server(hang, host, 0)
        self._servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    async def http(self, handler: Any, host: str = "127.0.0.1") -> int:
        """A minimal HTTP/1.1 server: handler(method, path, body) -> (status, json-able or bytes)."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # a scanner's connect probe
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                body = await reader.readexactly(length) if length else b""
                status, out = await handler(method, path, body)
                payload = out if isinstance(out, bytes) else orjson.dumps(out)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: "
                             f"{len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
                await writer.drain()
            finally:
                writer.close()

        srv = await asyncio.start_server(serve, host, 0)
        self._servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for w in self._frozen:
            w.close()
        for s in self._servers:
            s.close()
            with contextlib.suppress(Exception):
                await s.wait_closed()


def bitaxe_info(hash_ghs: float = 1200.0, temp: float = 55.0, fan: int = 4000, user: str = "addr.axe1") -> ax.SystemInfo:
    return ax.SystemInfo(
        asic_model="BM1370", hostname="bitaxe1", mac_addr="AA:BB:CC:DD:EE:01", hash_rate_ghs=hash_ghs,
        expected_hashrate_ghs=1071.0, power_w=18.5, voltage_mv=5100.0, current_ma=3600.0, temp_c=temp,
        vr_temp_c=60.0, fan_rpm=fan, fan_speed_pct=60, autofanspeed=1, temptarget=60, frequency_mhz=525,
        core_voltage_mv=1150, core_voltage_actual_mv=1140, small_core_count=2040, asic_count=1,
        uptime_s=7200, shares_accepted=50, shares_rejected=1, best_diff="1.2M", best_session_diff="500k",
        stratum_url="127.0.0.1", stratum_port=3333, stratum_user=user,
        fallback_stratum_url="10.0.0.2", fallback_stratum_port=3334, fallback_stratum_user="addr.fb",
    )


@dataclass
class Bitaxe:
    info: ax.SystemInfo = field(default_factory=bitaxe_info)
    restarts: int = 0
    patches: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == ax.INFO_PATH:
            return 200, self.info.to_json()
        if method == "POST" and path == ax.RESTART_PATH:
            self.restarts += 1
            return 200, {"message": "restarting"}
        if method == "PATCH" and path == ax.SYSTEM_PATH:
            patch = ax.parse_settings_patch(orjson.loads(body))
            self.patches.append(patch.to_json())
            self.info = ax.apply_settings(self.info, patch)
            return 200, b""
        return 404, {"error": "not found"}

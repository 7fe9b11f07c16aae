"""Inventory: discover devices by scanning CIDR ranges, identify them, label them with site/rack/position.

A scan is two stages, kept apart because mixing them is what makes large scans slow and lossy (asic-rs
measured a /22 taking minutes and *missing* miners at high concurrency with one combined stage):
1. TCP connect probe of every (host, port) -- cheap, short timeout, wide concurrency;
2. identification of the open ones through the drivers (cgminer `version`+`stats` on the API port,
   AxeOS `GET /api/system/info` on the web port; pyasic, when enabled, for API ports our cgminer driver
   cannot identify -- Whatsminer, Braiins OS, ...).
A device that answers on both an API port and a non-AxeOS web port is one cgminer device (an Antminer
has both); a port that fails identification on a host where another port identified a device is not
reported as an unidentified device.

Labels come from a `Labeler`: rules `CIDR -> site, rack` (most specific wins), with the position
defaulting to the host's last octet (and port, when several devices share a host, as in simulation).
Scanning runs on its own schedule (`run_periodic`), apart from polling: a scan takes minutes to hours on
big networks, polling happens every minute.

This module does NOT poll readings and does not remove devices that stop answering (they stay in the
inventory and go OFFLINE, which is what an operator needs to see).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pithead.farm.drivers.base import Driver, DriverError
from pithead.farm.model import Device, DeviceAddress, DriverKind, FarmError, Identity, Labels
from pithead.farm.protocol.errors import CodecError

log = logging.getLogger(__name__)

# Hosts one scan may cover: a /14. Bigger ranges are a typo (a /8 is 16 M hosts) and are refused.
MAX_SCAN_HOSTS = 1 << 18
# Stage-1 concurrency and timeout: asic-rs settled on 256 probes and 500 ms on real farm LANs.
PROBE_CONCURRENCY = 256
PROBE_TIMEOUT_S = 0.5
# Stage-2 concurrency and timeout: identification is a few full requests (pyasic's factory allows 3 s).
IDENTIFY_CONCURRENCY = 128
IDENTIFY_TIMEOUT_S = 5.0
# Default ports: cgminer API and the web (AxeOS) port, as every farm tool and pyasic assume.
DEFAULT_PORTS: Mapping[DriverKind, tuple[int, ...]] = {DriverKind.CGMINER: (4028,), DriverKind.AXEOS: (80,)}


class InventoryError(FarmError, ValueError):
    """A scan range or label file that cannot be used."""


def expand_targets(cidrs: Iterable[str], max_hosts: int = MAX_SCAN_HOSTS) -> list[str]:
    """CIDRs (or single addresses) -> host addresses, deduplicated, in order. /31 and /32 included."""
    seen: dict[str, None] = {}
    for text in cidrs:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise InventoryError(f"bad scan range {text!r}: {exc}") from exc
        if len(seen) + net.num_addresses > max_hosts:
            raise InventoryError(f"scan of more than {max_hosts} hosts refused ({text})")
        hosts = net.hosts() if net.num_addresses > 2 else iter(net)
        for h in hosts:
            seen[str(h)] = None
    return list(seen)


@dataclass(frozen=True, slots=True)
class LabelRule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    site: str
    rack: str


@dataclass(frozen=True, slots=True)
class Labeler:
    """Where a device is, from its address. Rules are matched most-specific first."""

    rules: tuple[LabelRule, ...] = ()
    default_site: str = ""

    @classmethod
    def from_csv(cls, text: str, default_site: str = "") -> Labeler:
        """CSV with header `cidr,site,rack` (one row per rack subnet, the usual farm addressing plan)."""
        reader = csv.DictReader(io.StringIO(text))
        if not {"cidr", "site", "rack"} <= set(reader.fieldnames or ()):
            raise InventoryError("label CSV needs columns cidr, site, rack")
        rules = []
        for n, row in enumerate(reader, start=2):
            try:
                net = ipaddress.ip_network((row["cidr"] or "").strip(), strict=False)
            except ValueError as exc:
                raise InventoryError(f"label CSV line {n}: {exc}") from exc
            rules.append(LabelRule(net, (row["site"] or "").strip(), (row["rack"] or "").strip()))
        return cls(tuple(sorted(rules, key=lambda r: -r.network.prefixlen)), default_site)

    def labels_for(self, address: DeviceAddress, shared_host: bool = False) -> Labels:
        try:
            ip = ipaddress.ip_address(address.host)
        except ValueError:
            return Labels(self.default_site, "", address.host)
        position = str(ip).rsplit(".", 1)[-1] if ip.version == 4 else str(ip)
        if shared_host:
            position = f"{position}:{address.port}"
        for r in self.rules:
            if ip in r.network:
                return Labels(r.site, r.rack, position)
        return Labels(self.default_site, "", position)


@dataclass(frozen=True, slots=True)
class ScanReport:
    started: float
    finished: float
    hosts: int
    probes: int
    open_ports: int
    found: tuple[Device, ...]
    failures: tuple[tuple[str, str], ...] = field(default=())  # (address, why) for open ports not identified


async def probe(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Is something accepting TCP on host:port? (Connect, then close at once.)"""
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    with contextlib.suppress(OSError, RuntimeError):
        writer.transport.abort()
    return True


async def _bounded(items: Sequence[tuple[str, int]], limit: int,
                   fn: Callable[[tuple[str, int]], object]) -> None:
    """Run `fn` over `items` with exactly min(limit, len) worker tasks (never one task per item)."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await fn(item)  # type: ignore[misc]

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(limit, len(items))):
            tg.create_task(worker())


class Scanner:
    def __init__(self, drivers: Mapping[DriverKind, Driver], ports: Mapping[DriverKind, Sequence[int]] = DEFAULT_PORTS,
                 labeler: Labeler = Labeler(), use_pyasic: bool = False,
                 probe_concurrency: int = PROBE_CONCURRENCY, probe_timeout_s: float = PROBE_TIMEOUT_S,
                 identify_concurrency: int = IDENTIFY_CONCURRENCY,
                 identify_timeout_s: float = IDENTIFY_TIMEOUT_S, clock: Callable[[], float] = time.time) -> None:
        self.drivers = drivers
        self.ports = {k: tuple(v) for k, v in ports.items()}
        self.labeler = labeler
        self.use_pyasic = use_pyasic and DriverKind.PYASIC in drivers
        self.probe_concurrency = probe_concurrency
        self.probe_timeout_s = probe_timeout_s
        self.identify_concurrency = identify_concurrency
        self.identify_timeout_s = identify_timeout_s
        self.clock = clock

    async def _identify(self, address: DeviceAddress) -> Identity:
        async with asyncio.timeout(self.identify_timeout_s):
            return await self.drivers[address.driver].identify(address)

    async def scan(self, cidrs: Iterable[str]) -> ScanReport:
        started = self.clock()
        hosts = expand_targets(cidrs)
        port_kind: dict[int, DriverKind] = {}
        for kind in (DriverKind.AXEOS, DriverKind.CGMINER):  # the API port wins if both list one
            for p in self.ports.get(kind, ()):
                port_kind[p] = kind
        pairs = [(h, p) for h in hosts for p in port_kind]
        open_pairs: list[tuple[str, int]] = []

        async def do_probe(pair: tuple[str, int]) -> None:
            if await probe(pair[0], pair[1], self.probe_timeout_s):
                open_pairs.append(pair)

        await _bounded(pairs, self.probe_concurrency, do_probe)
        open_pairs.sort(key=lambda hp: (ipaddress.ip_address(hp[0]), hp[1]))
        candidates = open_pairs
        identified: list[tuple[DeviceAddress, Identity]] = []
        failures: list[tuple[str, str]] = []
        now = self.clock()

        async def do_identify(pair: tuple[str, int]) -> None:
            host, port = pair
            kind = port_kind[port]
            address = DeviceAddress(host, port, kind)
            try:
                ident = await self._identify(address)
            except (DriverError, CodecError, TimeoutError, OSError) as exc:
                if self.use_pyasic and kind is DriverKind.CGMINER and port == 4028:
                    address = DeviceAddress(host, port, DriverKind.PYASIC)
                    try:
                        ident = await self._identify(address)
                    except Exception as exc2:
                        failures.append((f"{host}:{port}", f"{type(exc2).__name__}: {exc2}"))
                        return
                else:
                    failures.append((f"{host}:{port}", f"{type(exc).__name__}: {exc}"))
                    return
            identified.append((address, ident))

        await _bounded(candidates, self.identify_concurrency, do_identify)
        # pyasic identifies a host, not a port (it asks the web UI too): where a native driver already
        # identified a device on that host, pyasic's answer is the same device again (a Bitaxe's AxeOS
        # seen through a 4028 that accepted the connection), and listing it twice doubles its hashrate.
        native_hosts = {a.host for a, _ in identified if a.driver is not DriverKind.PYASIC}
        identified = [(a, i) for a, i in identified if a.driver is not DriverKind.PYASIC or a.host not in native_hosts]
        per_host: dict[str, int] = {}
        for a, _ in identified:
            per_host[a.host] = per_host.get(a.host, 0) + 1
        found = [Device(a, ident, self.labeler.labels_for(a, per_host[a.host] > 1), now, now)
                 for a, ident in identified]
        found.sort(key=lambda d: (ipaddress.ip_address(d.address.host), d.address.port))
        # A port that failed on a host where another port identified a device is that device's other
        # face (a Bitaxe resets 4028; an Antminer's web UI wants Digest): not an unidentified device.
        failures = [f for f in failures if f[0].rpartition(":")[0] not in per_host]
        return ScanReport(started, self.clock(), len(hosts), len(pairs), len(open_pairs), tuple(found),
                          tuple(sorted(failures)))

    async def run_periodic(self, cidrs: Sequence[str], interval_s: float,
                           on_found: Callable[[ScanReport], Awaitable[None] | None], stop: asyncio.Event) -> None:
        """Re-scan every `interval_s` until `stop` (discovery of new/replaced devices, apart from polling).
        `on_found` may be a coroutine function (e.g. to read new devices at once); it is awaited before
        the next interval starts."""
        while not stop.is_set():
            try:
                done = on_found(await self.scan(cidrs))
                if done is not None:
                    await done
            except (InventoryError, FarmError):
                log.exception("scan failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await stop.wait()

"""What every device driver offers the rest of the farm, and the typed errors a driver may raise.

A driver is an adapter at the edge: it speaks one vendor's wire protocol (through a sans-IO codec in
`pithead.farm.protocol`, or through pyasic) and returns only canonical values from `pithead.farm.model`.
Drivers do not enforce the per-device deadline: the poller wraps every call in `asyncio.timeout`, so a
driver that hangs is cancelled there (drivers must therefore clean up sockets on cancellation).

This module is NOT a registry of vendors and does no I/O itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pithead.farm.model import DeviceAddress, FarmError, Identity, PowerCapability, PowerTarget, Reading

# A pool list longer than this is refused before it reaches a device: cgminer-style firmware keeps a
# handful of pools (Antminer web UI: 3) and AxeOS keeps exactly a primary and one fallback.
MAX_POOLS = 3


class DriverError(FarmError):
    """A device could not be read or commanded."""


class DeviceUnreachable(DriverError):
    """No connection: refused, reset, no route. Maps to DeviceState.UNREACHABLE."""


class DeviceProtocolError(DriverError):
    """The device answered something we cannot understand. Maps to DeviceState.ERROR."""


class DeviceRefused(DriverError):
    """The device understood and said no (error status, access denied). Maps to DeviceState.ERROR."""


class UnsupportedAction(DriverError):
    """This driver/device cannot do that (e.g. sleep on stock cgminer)."""


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A pool to configure on a device."""

    url: str  # stratum+tcp://host:port
    user: str
    password: str = "x"

    def __post_init__(self) -> None:
        split_stratum_url(self.url)
        if not self.user or len(self.user) > 256 or any(c in self.user for c in ",|\n\r\x00"):
            raise DriverError(f"bad pool user {self.user!r}")
        if len(self.password) > 256 or any(c in self.password for c in ",|\n\r\x00"):
            raise DriverError("bad pool password")


def split_stratum_url(url: str) -> tuple[str, int]:
    """`stratum+tcp://host:port` -> (host, port); DriverError on anything else (AxeOS wants them apart)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("stratum+tcp", "stratum+ssl", "stratum2+tcp", "tcp"):
        raise DriverError(f"bad pool url {url!r}: want stratum+tcp://host:port")
    host, colon, port_text = rest.rstrip("/").rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DriverError(f"bad pool url {url!r}: want stratum+tcp://host:port")
    if len(url) > 256 or any(c in url for c in ",|\n\r\x00 "):
        raise DriverError(f"bad pool url {url!r}")
    return host, int(port_text)


def check_pool_list(pools: Sequence[PoolSpec]) -> tuple[PoolSpec, ...]:
    if not pools:
        raise DriverError("a pool list needs at least one pool")
    if len(pools) > MAX_POOLS:
        raise DriverError(f"at most {MAX_POOLS} pools, got {len(pools)}")
    return tuple(pools)


class Driver(Protocol):
    """One vendor adapter. Every method may raise DriverError subclasses; none returns a sentinel."""

    kind: str

    async def identify(self, address: DeviceAddress) -> Identity:
        """Ask the device what it is."""
        ...

    async def read(self, device_id: str, address: DeviceAddress, now: float) -> Reading:
        """One full reading (hashrate, boards, fans, power, pools, errors)."""
        ...

    async def reboot(self, address: DeviceAddress) -> None: ...

    async def switch_pool(self, address: DeviceAddress, index: int) -> None: ...

    async def set_pools(self, address: DeviceAddress, pools: Sequence[PoolSpec]) -> None: ...

    async def set_mining(self, address: DeviceAddress, on: bool) -> None:
        """Sleep (on=False) or wake the device, for curtailment. May raise UnsupportedAction."""
        ...

    async def power_capability(self, address: DeviceAddress) -> PowerCapability:
        """What power levels the device's firmware lets us set (SLEEP_ONLY where it has none)."""
        ...

    async def set_power(self, address: DeviceAddress, watts: float) -> PowerTarget:
        """Set the highest level at or below `watts` through the firmware's own API. Raises
        UnsupportedAction where the firmware has no such level (stock Antminer: sleep/normal only)."""
        ...

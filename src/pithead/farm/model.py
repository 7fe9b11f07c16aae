"""The farm's one canonical device model: who a device is, what one reading of it says, how a poll ended.

Every vendor (cgminer/bmminer API, AxeOS, anything pyasic speaks) is translated into these frozen values
at the edge, in `pithead.farm.drivers`; nothing past the drivers ever sees a vendor field name or unit.
Units are fixed here and named in the field names: hashrate in TH/s, temperatures in °C, power in W,
times in UNIX seconds (passed in, never read from a clock in this module).

This module is NOT the wire format of any device (see `pithead.farm.protocol`) and does no I/O. Its one
rule worth repeating: a poll that timed out or failed is a `PollResult` with an error `DeviceState` and
no `Reading` -- never a reading full of zeros, which would look like a device that is up and idle.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field


class FarmError(Exception):
    """Base of every typed error raised by the farm."""


class ModelError(FarmError, ValueError):
    """A value that cannot be part of the device model (bad address, negative hashrate, ...)."""


class DriverKind(enum.StrEnum):
    """Which adapter talks to a device. One device has exactly one."""

    CGMINER = "cgminer"  # cgminer/bmminer JSON RPC on TCP 4028 (pithead's own codec)
    AXEOS = "axeos"  # Bitaxe / ESP-Miner HTTP JSON API (pithead's own codec)
    PYASIC = "pyasic"  # anything pyasic identifies (real makes; Whatsminer, BOS, LuxOS, ...)


class DeviceState(enum.StrEnum):
    """How the last poll of a device ended. Only OK carries a reading."""

    OK = "ok"  # answered with a reading (which may itself show faults: hot, fan dead, ...)
    TIMEOUT = "timeout"  # accepted or not, it did not answer within the per-device deadline
    UNREACHABLE = "unreachable"  # connection refused / no route / reset before a reply
    ERROR = "error"  # answered, but with an error status or a reply we could not understand
    CURTAILED = "curtailed"  # we powered it down on purpose (curtailment); not polled as a fault
    UNKNOWN = "unknown"  # never polled yet


ERROR_STATES = frozenset({DeviceState.TIMEOUT, DeviceState.UNREACHABLE, DeviceState.ERROR})


def _is_canonical_ipv4(host: str) -> bool:
    """Fast path for the common case (dotted quad without leading zeros); ipaddress is ~10x slower and
    inventories of 24,000 devices are rebuilt from the database."""
    parts = host.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts
    )


def _check_host(host: str) -> str:
    if _is_canonical_ipv4(host):
        return host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        if not host or len(host) > 253 or any(c.isspace() for c in host):
            raise ModelError(f"bad device host {host!r}") from None
        return host


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Where a device answers: a host, the port its driver talks to, and the driver."""

    host: str
    port: int
    driver: DriverKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host(self.host))
        if not 0 < self.port < 65536:
            raise ModelError(f"bad device port {self.port}")
        object.__setattr__(self, "driver", DriverKind(self.driver))

    @property
    def device_id(self) -> str:
        """Stable identifier: the address. (A MAC would survive DHCP changes; we keep it as identity.)"""
        return f"{self.driver.value}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device says it is. Any field a vendor does not report is None."""

    make: str  # "Antminer", "Bitaxe", "Whatsminer", ...
    model: str  # "Antminer S19 XP", "BM1370", ...
    firmware: str | None = None
    mac: str | None = None
    hostname: str | None = None
    serial: str | None = None
    expected_ths: float | None = None  # nameplate/ideal hashrate the device itself reports
    expected_boards: int | None = None
    expected_fans: int | None = None


@dataclass(frozen=True, slots=True)
class Labels:
    """Where the device physically is. Empty strings mean "not labelled yet"."""

    site: str = ""
    rack: str = ""
    position: str = ""  # free-form slot within the rack, e.g. "3-07" (shelf-slot)


@dataclass(frozen=True, slots=True)
class Device:
    """An inventory entry: address, identity and physical labels."""

    address: DeviceAddress
    identity: Identity
    labels: Labels = field(default_factory=Labels)
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def id(self) -> str:
        return self.address.device_id


@dataclass(frozen=True, slots=True)
class Board:
    """One hashboard (a Bitaxe has one). Temperatures are the hottest sensor of each kind."""

    index: int
    hashrate_ths: float
    chips: int | None = None
    expected_chips: int | None = None
    board_temp_c: float | None = None
    chip_temp_c: float | None = None
    serial: str | None = None

    @property
    def missing(self) -> bool:
        """A board present in the slot but not hashing: no chips found, or none of the expected ones."""
        if self.chips is not None and self.chips == 0:
            return True
        return self.expected_chips is not None and self.chips is not None and self.chips < self.expected_chips


@dataclass(frozen=True, slots=True)
class Fan:
    index: int
    rpm: int


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One configured pool as the device reports it."""

    index: int
    url: str
    user: str
    alive: bool | None = None
    active: bool = False
    accepted: int | None = None
    rejected: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One successful poll, already normalised. `power_w` is None when the device does not report it
    (stock S19/S19 XP do not); efficiency is then None too, never a guess."""

    device_id: str
    time: float
    hashrate_ths: float
    expected_ths: float | None = None
    boards: tuple[Board, ...] = ()
    fans: tuple[Fan, ...] = ()
    power_w: float | None = None
    pools: tuple[PoolEntry, ...] = ()
    errors: tuple[str, ...] = ()  # vendor error codes/messages, normalised to short strings
    uptime_s: float | None = None
    is_mining: bool = True  # False when the device says it is asleep/paused (curtailed on the device)

    def __post_init__(self) -> None:
        if self.hashrate_ths < 0 or self.hashrate_ths != self.hashrate_ths:
            raise ModelError(f"bad hashrate {self.hashrate_ths!r} for {self.device_id}")
        if self.power_w is not None and (self.power_w < 0 or self.power_w != self.power_w):
            raise ModelError(f"bad power {self.power_w!r} for {self.device_id}")

    @property
    def efficiency_j_per_th(self) -> float | None:
        """Joules per terahash = watts / (TH/s). None without power or without hashrate."""
        if self.power_w is None or self.hashrate_ths <= 0:
            return None
        return self.power_w / self.hashrate_ths

    @property
    def max_chip_temp_c(self) -> float | None:
        temps = [b.chip_temp_c for b in self.boards if b.chip_temp_c is not None]
        return max(temps) if temps else None

    @property
    def max_board_temp_c(self) -> float | None:
        temps = [b.board_temp_c for b in self.boards if b.board_temp_c is not None]
        return max(temps) if temps else None

    @property
    def min_fan_rpm(self) -> int | None:
        return min((f.rpm for f in self.fans), default=None)

    @property
    def worker(self) -> str | None:
        """The worker name the device mines as: the user of its active pool (else its first pool)."""
        for p in self.pools:
            if p.active:
                return p.user
        return self.pools[0].user if self.pools else None


@dataclass(frozen=True, slots=True)
class PollResult:
    """How one poll of one device ended. `reading` is set iff `state` is OK."""

    device_id: str
    time: float
    state: DeviceState
    reading: Reading | None = None
    error: str | None = None
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.state is DeviceState.OK) != (self.reading is not None):
            raise ModelError(f"poll result {self.state} must carry a reading iff it is OK")
        if self.state in ERROR_STATES and not self.error:
            raise ModelError(f"poll result {self.state} must say what went wrong")


class PowerMechanism(enum.StrEnum):
    """How a device's power draw is set, through its own firmware's API (field notes §2.4, §3)."""

    PROFILE = "profile"  # LuxOS: named profiles (±25 MHz / 0.1 V steps), each with its estimated watts
    POWER_LIMIT = "power_limit"  # Whatsminer adjust_power_limit, Braiins OS power target, pyasic's set_power_limit
    FREQUENCY_VOLTAGE = "frequency_voltage"  # AxeOS: PATCH /api/system frequency + coreVoltage, then restart
    SLEEP_ONLY = "sleep_only"  # stock Antminer firmware: sleep or normal, nothing in between


@dataclass(frozen=True, slots=True)
class PowerCapability:
    """What a device lets us set. `levels` are the discrete settable draws (W, ascending) where the
    firmware has them (profiles, frequency/voltage pairs); a power-limit firmware takes any whole watt
    from `min_w` to `max_w` in `step_w` steps. SLEEP_ONLY: `min_w == max_w` (the nominal draw)."""

    mechanism: PowerMechanism
    min_w: float
    max_w: float
    step_w: float = 1.0
    levels: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (0 < self.min_w <= self.max_w) or self.step_w <= 0:
            raise ModelError(f"bad power range {self.min_w}..{self.max_w} step {self.step_w}")
        if list(self.levels) != sorted(self.levels):
            raise ModelError("power levels must be ascending")

    @property
    def adjustable(self) -> bool:
        return self.mechanism is not PowerMechanism.SLEEP_ONLY and self.max_w > self.min_w

    def settable(self, watts: float) -> float | None:
        """The highest draw this device can be set to at or below `watts`; None when `watts` is below the
        bottom of its range (the only way lower is to sleep)."""
        if watts < self.min_w:
            return None
        if self.levels:
            below = [lv for lv in self.levels if lv <= watts]
            return below[-1] if below else None
        if not self.adjustable:
            return self.max_w if watts >= self.max_w else None
        capped = min(watts, self.max_w)
        return self.min_w + ((capped - self.min_w) // self.step_w) * self.step_w


@dataclass(frozen=True, slots=True)
class PowerTarget:
    """A power level set on a device: the watts asked, the level the firmware took (a profile name, a
    frequency/voltage pair, or the watts themselves), and the watts that level is expected to draw."""

    watts: float
    level: str
    expected_w: float

    def __post_init__(self) -> None:
        if not (self.watts > 0 and self.expected_w > 0):
            raise ModelError(f"bad power target {self.watts!r} W (expected {self.expected_w!r} W)")

"""Sans-IO codec for the AxeOS (ESP-Miner) HTTP JSON API of Bitaxe devices (port 80, no auth on the LAN).

What this module is: typed frozen values for the payloads of `GET /api/system/info`,
`GET /api/system/asic`, and the body of `PATCH /api/system`, with builders (value → JSON dict, field
names as in ESP-Miner's `openapi.yaml`) and parsers (JSON → value, raising `AxeOSPayloadError`). Units
are the firmware's: `hashRate` / `expectedHashrate` in GH/s, `power` W, `voltage` (input) mV, `current`
mA, `coreVoltage` mV, `frequency` MHz, temperatures °C, `fanspeed` %.

What it is not: no HTTP (the routes live in the simulator's server and the fleet manager's driver) and no
device behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pithead.farm.protocol.errors import AxeOSPayloadError

PORT = 80
INFO_PATH = "/api/system/info"
ASIC_PATH = "/api/system/asic"
SYSTEM_PATH = "/api/system"
RESTART_PATH = "/api/system/restart"

# ESP-Miner's hostname pattern is ^[a-zA-Z0-9-]+$; 32 is the ESP-IDF netif hostname limit.
MAX_HOSTNAME = 32
# A stratum URL longer than this is not a host name any pool uses; refuse it rather than store it.
MAX_URL = 256
# Stratum user names carry a payout address plus a worker name; 128 covers bech32m + worker.
MAX_USER = 128

# Per-chip figures of the BM13xx family as ESP-Miner knows them (small cores per chip, default MHz,
# default core mV, deviceModel name). Expected hashrate = small cores × MHz (MH/s) × chips.
ASIC_FAMILY: dict[str, tuple[int, int, int, str]] = {
    "BM1397": (672, 425, 1400, "Max"),
    "BM1366": (894, 485, 1200, "Ultra"),
    "BM1368": (1276, 490, 1166, "Supra"),
    "BM1370": (2040, 525, 1150, "Gamma"),
}


def _req(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise AxeOSPayloadError(f"missing field {key!r}")
    v = d[key]
    if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise AxeOSPayloadError(f"field {key!r} has the wrong type")
    if not isinstance(v, kind):
        raise AxeOSPayloadError(f"field {key!r} has the wrong type")
    return v


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """The `GET /api/system/info` payload (the fields farm tools and pyasic read, plus the usual rest)."""

    asic_model: str  # "BM1370"
    hostname: str
    mac_addr: str
    hash_rate_ghs: float
    expected_hashrate_ghs: float
    power_w: float
    voltage_mv: float  # input voltage
    current_ma: float
    temp_c: float  # chip average
    vr_temp_c: float
    fan_rpm: int
    fan_speed_pct: int
    autofanspeed: int
    temptarget: int
    frequency_mhz: int
    core_voltage_mv: int
    core_voltage_actual_mv: int
    small_core_count: int
    asic_count: int
    uptime_s: int
    shares_accepted: int
    shares_rejected: int
    best_diff: str
    best_session_diff: str
    stratum_url: str
    stratum_port: int
    stratum_user: str
    fallback_stratum_url: str = ""
    fallback_stratum_port: int = 3333
    fallback_stratum_user: str = ""
    is_using_fallback: int = 0
    pool_difficulty: float = 1000.0
    version: str = "v2.6.5"
    axeos_version: str = "v2.6.5"
    board_version: str = "601"
    overheat_mode: int = 0
    max_power_w: int = 40
    nominal_voltage_v: int = 5

    def to_json(self) -> dict[str, Any]:
        return {
            "power": round(self.power_w, 3),
            "voltage": round(self.voltage_mv, 3),
            "current": round(self.current_ma, 3),
            "temp": round(self.temp_c, 3),
            "tempMax": round(self.temp_c + 2.0, 3),
            "vrTemp": round(self.vr_temp_c),
            "vrTempMax": round(self.vr_temp_c + 2.0),
            "maxPower": self.max_power_w,
            "nominalVoltage": self.nominal_voltage_v,
            "hashRate": round(self.hash_rate_ghs, 3),
            "expectedHashrate": round(self.expected_hashrate_ghs, 3),
            "bestDiff": self.best_diff,
            "bestSessionDiff": self.best_session_diff,
            "poolDifficulty": self.pool_difficulty,
            "isUsingFallbackStratum": self.is_using_fallback,
            "isPSRAMAvailable": 1,
            "freeHeap": 8_123_456,
            "coreVoltage": self.core_voltage_mv,
            "coreVoltageActual": self.core_voltage_actual_mv,
            "frequency": self.frequency_mhz,
            "ssid": "farm",
            "macAddr": self.mac_addr,
            "hostname": self.hostname,
            "wifiStatus": "Connected!",
            "wifiRSSI": -52,
            "apEnabled": 0,
            "sharesAccepted": self.shares_accepted,
            "sharesRejected": self.shares_rejected,
            "sharesRejectedReasons": [],
            "uptimeSeconds": self.uptime_s,
            "smallCoreCount": self.small_core_count,
            "ASICModel": self.asic_model,
            "asicCount": self.asic_count,
            "stratumURL": self.stratum_url,
            "stratumPort": self.stratum_port,
            "stratumUser": self.stratum_user,
            "stratumSuggestedDifficulty": 1000,
            "stratumExtranonceSubscribe": 0,
            "fallbackStratumURL": self.fallback_stratum_url,
            "fallbackStratumPort": self.fallback_stratum_port,
            "fallbackStratumUser": self.fallback_stratum_user,
            "fallbackStratumSuggestedDifficulty": 1000,
            "fallbackStratumExtranonceSubscribe": 0,
            "version": self.version,
            "axeOSVersion": self.axeos_version,
            "idfVersion": "v5.4.1",
            "boardVersion": self.board_version,
            "runningPartition": "ota_0",
            "overheat_mode": self.overheat_mode,
            "overclockEnabled": 0,
            "power_fault": "",
            "display": "SSD1306 (128x32)",
            "rotation": 0,
            "invertscreen": 0,
            "displayTimeout": -1,
            "autofanspeed": self.autofanspeed,
            "fanspeed": self.fan_speed_pct,
            "minimumFanSpeed": 25,
            "temptarget": self.temptarget,
            "fanrpm": self.fan_rpm,
            "statsFrequency": 0,
        }


def _opt(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """An optional field: absent or null gives `default`; present with the wrong type raises."""
    if d.get(key) is None:
        return default
    return _req(d, key, kind)


def parse_system_info(d: Mapping[str, Any]) -> SystemInfo:
    """Parse a `/api/system/info` body. Raises `AxeOSPayloadError` on a missing or mistyped field.

    Only `ASICModel` and `hashRate` are required: firmware versions differ in which other fields they
    send (older ones lack `expectedHashrate`, newer ones drop `asicCount`), so the rest default.
    """
    if not isinstance(d, Mapping):
        raise AxeOSPayloadError("system info is not a JSON object")
    num = (int, float)
    return SystemInfo(
        asic_model=_req(d, "ASICModel", str),
        hostname=_opt(d, "hostname", str, ""),
        mac_addr=_opt(d, "macAddr", str, ""),
        hash_rate_ghs=float(_req(d, "hashRate", num)),
        expected_hashrate_ghs=float(_opt(d, "expectedHashrate", num, 0.0)),
        power_w=float(_opt(d, "power", num, 0.0)),
        voltage_mv=float(_opt(d, "voltage", num, 0.0)),
        current_ma=float(_opt(d, "current", num, 0.0)),
        temp_c=float(_opt(d, "temp", num, 0.0)),
        vr_temp_c=float(_opt(d, "vrTemp", num, 0.0)),
        fan_rpm=int(_opt(d, "fanrpm", num, 0)),
        fan_speed_pct=int(_opt(d, "fanspeed", num, 0)),
        autofanspeed=int(_opt(d, "autofanspeed", num, 1)),
        temptarget=int(_opt(d, "temptarget", num, 60)),
        frequency_mhz=int(_opt(d, "frequency", num, 0)),
        core_voltage_mv=int(_opt(d, "coreVoltage", num, 0)),
        core_voltage_actual_mv=int(_opt(d, "coreVoltageActual", num, 0)),
        small_core_count=int(_opt(d, "smallCoreCount", num, 0)),
        asic_count=int(_opt(d, "asicCount", num, 1)),
        uptime_s=int(_opt(d, "uptimeSeconds", num, 0)),
        shares_accepted=int(_opt(d, "sharesAccepted", num, 0)),
        shares_rejected=int(_opt(d, "sharesRejected", num, 0)),
        best_diff=str(_opt(d, "bestDiff", (str, int, float), "0")),
        best_session_diff=str(_opt(d, "bestSessionDiff", (str, int, float), "0")),
        stratum_url=_opt(d, "stratumURL", str, ""),
        stratum_port=int(_opt(d, "stratumPort", num, 0)),
        stratum_user=_opt(d, "stratumUser", str, ""),
        fallback_stratum_url=_opt(d, "fallbackStratumURL", str, ""),
        fallback_stratum_port=int(_opt(d, "fallbackStratumPort", num, 0)),
        fallback_stratum_user=_opt(d, "fallbackStratumUser", str, ""),
        is_using_fallback=int(_opt(d, "isUsingFallbackStratum", num, 0)),
        pool_difficulty=float(_opt(d, "poolDifficulty", num, 0.0)),
        version=_opt(d, "version", str, ""),
        axeos_version=_opt(d, "axeOSVersion", str, ""),
        board_version=_opt(d, "boardVersion", str, ""),
        overheat_mode=int(_opt(d, "overheat_mode", num, 0)),
    )


@dataclass(frozen=True, slots=True)
class AsicInfo:
    """The `GET /api/system/asic` payload."""

    asic_model: str
    device_model: str
    asic_count: int
    default_frequency: int
    default_voltage: int
    frequency_options: tuple[int, ...]
    voltage_options: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ASICModel": self.asic_model,
            "deviceModel": self.device_model,
            "swarmColor": "purple",
            "asicCount": self.asic_count,
            "defaultFrequency": self.default_frequency,
            "frequencyOptions": list(self.frequency_options),
            "defaultVoltage": self.default_voltage,
            "voltageOptions": list(self.voltage_options),
        }


def asic_info_for(asic_model: str, asic_count: int = 1) -> AsicInfo:
    """The `/api/system/asic` payload ESP-Miner serves for a chip family. Raises on an unknown chip."""
    try:
        _cores, freq, mv, device = ASIC_FAMILY[asic_model]
    except KeyError as exc:
        raise AxeOSPayloadError(f"unknown ASIC model {asic_model!r}") from exc
    freqs = tuple(sorted({freq - 100, freq - 50, freq, freq + 25, freq + 50, freq + 75}))
    volts = tuple(sorted({mv - 100, mv - 50, mv, mv + 50, mv + 100}))
    return AsicInfo(asic_model, device, asic_count, freq, mv, freqs, volts)


def parse_asic_info(d: Mapping[str, Any]) -> AsicInfo:
    if not isinstance(d, Mapping):
        raise AxeOSPayloadError("asic info is not a JSON object")
    return AsicInfo(
        asic_model=_req(d, "ASICModel", str),
        device_model=str(d.get("deviceModel", "")),
        asic_count=int(_req(d, "asicCount", (int, float))),
        default_frequency=int(d.get("defaultFrequency", 0) or 0),
        default_voltage=int(d.get("defaultVoltage", 0) or 0),
        frequency_options=tuple(int(x) for x in d.get("frequencyOptions", []) or []),
        voltage_options=tuple(int(x) for x in d.get("voltageOptions", []) or []),
    )


@dataclass(frozen=True, slots=True)
class SettingsPatch:
    """A validated `PATCH /api/system` body. `None` means "leave unchanged".

    Unknown keys are accepted by ESP-Miner (`additionalProperties: true`) and ignored here too.
    """

    stratumURL: str | None = None
    stratumPort: int | None = None
    stratumUser: str | None = None
    stratumPassword: str | None = None
    fallbackStratumURL: str | None = None
    fallbackStratumPort: int | None = None
    fallbackStratumUser: str | None = None
    fallbackStratumPassword: str | None = None
    hostname: str | None = None
    frequency: int | None = None
    coreVoltage: int | None = None
    autofanspeed: int | None = None
    fanspeed: int | None = None
    temptarget: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def changes_pool(self) -> bool:
        return any(
            getattr(self, k) is not None
            for k in ("stratumURL", "stratumPort", "stratumUser", "stratumPassword")
        )


_STR_LIMITS = {
    "stratumURL": MAX_URL,
    "fallbackStratumURL": MAX_URL,
    "stratumUser": MAX_USER,
    "fallbackStratumUser": MAX_USER,
    "stratumPassword": MAX_USER,
    "fallbackStratumPassword": MAX_USER,
    "hostname": MAX_HOSTNAME,
}
# (min, max) per integer setting, from ESP-Miner's openapi.yaml Settings schema.
_INT_RANGES = {
    "stratumPort": (1, 65535),
    "fallbackStratumPort": (1, 65535),
    "frequency": (1, 1500),
    "coreVoltage": (1, 1800),
    "autofanspeed": (0, 1),
    "fanspeed": (0, 100),
    "temptarget": (0, 100),
}


def parse_settings_patch(d: Any) -> SettingsPatch:
    """Validate a PATCH body field by field. Raises `AxeOSPayloadError` naming the first bad field."""
    if not isinstance(d, Mapping):
        raise AxeOSPayloadError("settings body is not a JSON object")
    out: dict[str, Any] = {}
    for key, limit in _STR_LIMITS.items():
        if key in d and d[key] is not None:
            v = d[key]
            if not isinstance(v, str) or len(v) > limit:
                raise AxeOSPayloadError(f"field {key!r} must be a string of at most {limit} characters")
            if key == "hostname" and (
                not v or not all(c.isalnum() or c == "-" for c in v) or not v.isascii()
            ):
                raise AxeOSPayloadError("field 'hostname' must match ^[a-zA-Z0-9-]+$")
            out[key] = v
    for key, (lo, hi) in _INT_RANGES.items():
        if key in d and d[key] is not None:
            v = d[key]
            if isinstance(v, bool):
                v = int(v)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise AxeOSPayloadError(f"field {key!r} must be an integer in [{lo}, {hi}]")
            out[key] = v
    return SettingsPatch(**out)


def apply_settings(info: SystemInfo, patch: SettingsPatch) -> SystemInfo:
    """The system info after a settings PATCH (pure; the device decides when it takes effect)."""
    changes: dict[str, Any] = {}
    mapping = {
        "stratumURL": "stratum_url",
        "stratumPort": "stratum_port",
        "stratumUser": "stratum_user",
        "fallbackStratumURL": "fallback_stratum_url",
        "fallbackStratumPort": "fallback_stratum_port",
        "fallbackStratumUser": "fallback_stratum_user",
        "hostname": "hostname",
        "frequency": "frequency_mhz",
        "coreVoltage": "core_voltage_mv",
        "autofanspeed": "autofanspeed",
        "fanspeed": "fan_speed_pct",
        "temptarget": "temptarget",
    }
    for src, dst in mapping.items():
        v = getattr(patch, src)
        if v is not None:
            changes[dst] = v
    return replace(info, **changes)


def format_diff(d: float) -> str:
    """AxeOS's suffixed difficulty string ("4.29G", "512M", "1.02k" → lower-case k, as the UI prints)."""
    if d < 1000:
        return f"{d:.0f}"
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if d >= div:
            return f"{d / div:.2f}{suffix}"
    return f"{d:.0f}"  # pragma: no cover - unreachable


# The web root: AxeOS serves an Angular app whose <title> is "AxeOS"; pyasic's factory recognises a
# Bitaxe from that string in the page body.
ROOT_HTML = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>AxeOS</title>'
    b'<base href="/"><meta name="viewport" content="width=device-width, initial-scale=1">'
    b"</head><body><app-root></app-root></body></html>"
)


# --------------------------------------------------------------------------------------------------
# Power: AxeOS sets frequency and core voltage, not watts. A chip's dynamic power goes as f·V² (the CMOS
# rule every tuning firmware leans on), and the voltage a frequency needs falls with it: LuxOS's built-in
# profiles step 0.1 V per 25 MHz around 13.4 V / 545 MHz on an S19j Pro (docs.luxor.tech/firmware/features),
# i.e. about 0.16 % voltage per 1 % frequency, which is the ratio used here.
VOLTAGE_PER_FREQUENCY = 0.16


@dataclass(frozen=True, slots=True)
class PowerLevel:
    """One frequency/voltage pair from the device's own options and the watts it is expected to draw."""

    frequency_mhz: int
    core_voltage_mv: int
    watts: float

    @property
    def label(self) -> str:
        return f"{self.frequency_mhz}MHz/{self.core_voltage_mv}mV"


def power_factor(freq: float, mv: float, ref_freq: float, ref_mv: float) -> float:
    """Power relative to the reference operating point: (f/f0)·(V/V0)²."""
    return (freq / ref_freq) * (mv / ref_mv) ** 2


def voltage_for(freq: float, ref_freq: float, ref_mv: float) -> float:
    return ref_mv * (1.0 - VOLTAGE_PER_FREQUENCY * (1.0 - freq / ref_freq))


def power_levels(info: SystemInfo, asic: AsicInfo) -> tuple[PowerLevel, ...]:
    """The levels a Bitaxe can be set to without overclocking: each frequency option at or below the
    default, with the lowest voltage option that frequency needs, and the watts it should draw, scaled
    from what the device draws now at its current frequency/voltage. Ascending by watts."""
    if info.frequency_mhz <= 0 or info.core_voltage_mv <= 0 or info.power_w <= 0:
        raise AxeOSPayloadError("system info lacks the frequency, core voltage or power to scale from")
    if not asic.frequency_options or not asic.voltage_options:
        raise AxeOSPayloadError("asic info lists no frequency or voltage options")
    f0, v0 = asic.default_frequency or info.frequency_mhz, asic.default_voltage or info.core_voltage_mv
    p0 = info.power_w / power_factor(info.frequency_mhz, info.core_voltage_mv, f0, v0)
    volts = sorted(asic.voltage_options)
    out = {}
    for f in sorted(x for x in asic.frequency_options if x <= f0):
        need = voltage_for(f, f0, v0)
        mv = next((v for v in volts if v >= need), volts[-1])
        w = round(p0 * power_factor(f, mv, f0, v0), 2)
        out[w] = PowerLevel(f, mv, w)
    return tuple(out[w] for w in sorted(out))


def pick_level(levels: tuple[PowerLevel, ...], watts: float) -> PowerLevel | None:
    fitting = [lv for lv in levels if lv.watts <= watts]
    return fitting[-1] if fitting else None

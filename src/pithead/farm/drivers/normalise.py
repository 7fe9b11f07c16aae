"""The one place where vendor quirks become canonical values (DESIGN habit 10: vendors at the edge).

Every driver hands its vendor's raw figures to these functions, and each quirk is fixed here once, with
a comment saying which firmware does it. (JSON-level repairs of cgminer replies -- missing commas,
quoted "inf" -- happen one layer lower, in `pithead.farm.protocol.cgminer.wire.decode_reply`.)

Quirks handled:
- Hashrate units differ by vendor: bmminer reports GH/s ("GHS 5s", sometimes as a string), cgminer
  proper MH/s, AxeOS GH/s, pyasic an AlgoHashRate object in its own unit. Canonical: TH/s.
- A temperature of 0 (or negative, or absurd) means "no sensor on this slot" on Antminer stats and
  new_api chains, not 0 °C; canonical: None. (A real 0 °C would be a farm in a freezer.)
- Antminer stats report fan1..fan4 even on models with fewer fans; slots beyond the model's fan count
  that read 0 are dropped. A 0 rpm fan within the model's count is kept: it is a dead fan.
- Model names: bmminer's Type may carry a firmware suffix "Antminer S19 XP (Vnish 1.2.0)"; the codec cuts
  it; here make/model are derived from it and looked up in the nameplate table below.
- Stock S19/S19 XP report no power: power stays None (never a nameplate guess), so J/TH stays None.
- A board with chips == 0 reads as a missing board; expected chips per board come from the nameplate.
- Stock Antminer web `summary.cgi` status items become "type: msg" strings in Reading.errors.

This module is NOT a parser of wire formats and does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pithead.farm.model import Reading

# Temperatures outside this range are sensor faults or empty slots, not readings (°C).
MIN_VALID_TEMP_C = 1.0
MAX_VALID_TEMP_C = 150.0

_UNIT_TO_THS = {"H": 1e-12, "KH": 1e-9, "MH": 1e-6, "GH": 1e-3, "TH": 1.0, "PH": 1e3, "EH": 1e6}


@dataclass(frozen=True, slots=True)
class Nameplate:
    """What a model has when healthy (field notes §3; pyasic's device model chip/fan counts)."""

    make: str
    boards: int
    chips_per_board: int
    fans: int
    ths: float
    watts: float | None = None  # nameplate wall power (field notes §3 [S1][S2])


# Keyed by the upper-cased model string as devices report it.
NAMEPLATES: dict[str, Nameplate] = {
    "ANTMINER S19": Nameplate("Antminer", 3, 76, 4, 95.0, 3250.0),
    "ANTMINER S19 XP": Nameplate("Antminer", 3, 110, 4, 140.0, 3010.0),
    "ANTMINER S19J PRO": Nameplate("Antminer", 3, 126, 4, 104.0, 3068.0),
    "ANTMINER S21": Nameplate("Antminer", 3, 108, 4, 200.0, 3500.0),
    "M30S": Nameplate("Whatsminer", 3, 156, 2, 88.0, 3344.0),  # V50 variant's chips [P15w]
    "M50": Nameplate("Whatsminer", 3, 105, 2, 118.0, 3422.0),  # VH50
    "BM1397": Nameplate("Bitaxe", 1, 1, 1, 0.4),  # Bitaxe Max
    "BM1366": Nameplate("Bitaxe", 1, 1, 1, 0.5),  # Bitaxe Ultra
    "BM1368": Nameplate("Bitaxe", 1, 1, 1, 0.7),  # Bitaxe Supra
    "BM1370": Nameplate("Bitaxe", 1, 1, 1, 1.2),  # Bitaxe Gamma
}


def nameplate(model: str) -> Nameplate | None:
    return NAMEPLATES.get(model.strip().upper())


def make_of(model: str) -> str:
    """The vendor from a reported model string ("Antminer S19 XP" -> "Antminer")."""
    np = nameplate(model)
    if np is not None:
        return np.make
    u = model.upper()
    for key, make in (("ANTMINER", "Antminer"), ("WHATSMINER", "Whatsminer"), ("AVALON", "Avalon"),
                      ("BM13", "Bitaxe")):
        if key in u:
            return make
    return "unknown"


def number(v: Any) -> float | None:
    """A figure that may come as int, float or numeric string; "inf"/"nan"/""/None -> None."""
    kind = type(v)  # a JSON float or int, the common case on every poll, is taken before slower checks
    if kind is float:
        return v if math.isfinite(v) else None
    if kind is int:
        return float(v)
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def hashrate_ths(value: Any, unit: str) -> float:
    """Convert a vendor hashrate in `unit` ("GH", "MH/s", ...) to TH/s. A value that is not a number
    raises ValueError: a missing hashrate is an error reading, never 0 TH/s."""
    f = number(value)
    if f is None:
        raise ValueError(f"hashrate {value!r} is not a number")
    factor = _UNIT_TO_THS.get(unit)
    if factor is None:
        factor = _UNIT_TO_THS.get(unit.upper().removesuffix("/S").strip())
    if factor is None:
        raise ValueError(f"unknown hashrate unit {unit!r}")
    return max(f, 0.0) * factor


def temperature(v: Any) -> float | None:
    """A sensor reading in °C, or None for an empty slot / faulty sensor (see module docstring)."""
    f = number(v)
    if f is None or not MIN_VALID_TEMP_C <= f <= MAX_VALID_TEMP_C:
        return None
    return f


def fans(rpms: tuple[int, ...] | list[int], expected: int | None) -> list[int]:
    """Drop fan slots the model does not have (reported as 0); keep a dead fan within its count."""
    out = list(rpms)
    if expected is not None:
        out = out[:expected] if len(out) > expected else out
    else:
        while out and out[-1] == 0:  # unknown model: trailing zero slots are most likely absent fans
            out.pop()
    return [max(int(r), 0) for r in out]


def power(v: Any) -> float | None:
    """Watts, or None when not reported; 0 W from a hashing device is "not reported" (some firmware)."""
    f = number(v)
    return f if f is not None and f > 0 else None


# A reading is "degraded" (worth asking the firmware why) below this share of its expected hashrate,
# with a fan below this rpm, or a chip above this temperature. Looser than the alert thresholds on
# purpose: the lookup should already have happened when an alert fires.
DEGRADED_HASHRATE_RATIO = 0.9
DEGRADED_FAN_RPM = 500
DEGRADED_CHIP_C = 85.0


def looks_degraded(r: Reading) -> bool:
    if r.expected_ths and r.hashrate_ths < DEGRADED_HASHRATE_RATIO * r.expected_ths:
        return True
    if any(b.missing for b in r.boards) or any(f.rpm < DEGRADED_FAN_RPM for f in r.fans):
        return True
    chip = r.max_chip_temp_c
    return chip is not None and chip > DEGRADED_CHIP_C


def status_error(kind: str, msg: str, code: int) -> str:
    """Stock web `summary.cgi` status items -> one short string: "fans: Fan lost", "temp: 4"."""
    return f"{kind}: {msg}" if msg else f"{kind}: {code}"

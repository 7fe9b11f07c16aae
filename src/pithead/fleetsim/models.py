"""Realistic device models for the simulated fleet: nameplate figures, thermal limits, failure rates.

What this module is: frozen `ModelSpec` values for the makes/models the simulator serves (stock Antminer
S19, S19 XP, S21 over the cgminer API + web CGI; Bitaxe Max/Ultra/Supra/Gamma over AxeOS), and
`FailureRates`, the per-unit hazard rates that drive the seeded failure process. Figures come from the
farm field notes (section 3) and their sources:

- S19: 95 TH/s, 3250 W, 3×76 chips, 4 fans [S1][P15]; S19 XP: 140 TH/s, 3010 W, 3×110 chips [S1][T1];
  S21: 200 TH/s, ~3500 W, 3×108 chips, 490 MHz, underclocks to 440 MHz above 40 °C ambient and shuts
  down above 47 °C [S2][T1].
- Stock S19/S19 XP report no power [T1][I-45]; S21 does.
- Whatsminer M30S (88 TH/s, 3344 W; V50 variant 3×156 chips) and M50 (118 TH/s, 3422 W; VH50 3×105)
  [S1][P15w], served over the btminer API v2 (reads only: writes need the encrypted-token flow).
- Bitaxe: one chip; small cores × MHz = expected MH/s (ESP-Miner); ~15–20 W class [S5][S6][P15].
- Failure rates: Bitmain considers ~5 %/year "normal"; S19 XP fleets saw ~10 % [FA1][FA2]; an XP with
  one bad board goes down entirely [FA3]; units fail to come back after curtailment [FA1]; Bitaxe has a
  silent "half hashrate" state [S7].

How a family behaves is data here too (`Behaviour`: `MULTI_BOARD_BEHAVIOUR` for Antminers and
Whatsminers, `BITAXE_BEHAVIOUR`; each `ModelSpec` carries its family's): which failures it has, what a
lost fan does, what it draws and how fast its fans spin when idle. The device logic reads those fields and has no vendor branches.

Power control (how each firmware lets a unit draw less, and what that costs in hashrate): `power_k` is
the exponent of hashrate ∝ power^k below nominal, `power_floor` the bottom of the range as a fraction of
nominal power. k = 0.78 comes from public figures: LuxOS's built-in profiles step 25 MHz and 0.1 V at
once around the EEPROM default (S19j Pro: 545 MHz / 13.4 V = 104 TH/s, 505 MHz = 96 TH/s) [L2], hashrate
follows frequency and a chip's dynamic power goes as f·V², so P ∝ f^1.32 over that range and
H ∝ P^(1/1.32) ≈ P^0.76–0.79 (fitted over the 16 underclock steps); lower power therefore means better
J/TH (60 % power keeps 67 % of the hashrate). How fast a new level holds is the firmware's: LuxOS ramps a
profile in 5 MHz steps (`profileset` reply: FrequencyStep 5) at `LUXOS_RAMP_S_PER_STEP`; a Whatsminer
restarts to apply a power limit (pyasic's `adjust_power_limit` docstring: "the miner will reboot"); AxeOS
stores frequency/voltage and applies them at the next restart; stock Antminer firmware has only
sleep/normal (10–20 s) [T1].
- LuxOS: Antminer S19j Pro 104T (545 MHz, 13.4 V [L2], 3068 W nameplate, 3×126 chips) and S19 XP on LuxOS,
  cgminer API plus LuxOS's session-guarded commands on 4028 [L1].

What it is not: no state and no clock (see `pithead.fleetsim.device`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

HOURS_PER_YEAR = 8766.0
# hashrate ∝ power^k below nominal (see the module docstring for where 0.78 comes from)
POWER_K = 0.78
# the lowest power a power-limit firmware is asked for, as a fraction of nominal
POWER_FLOOR = 0.6
# LuxOS ramps frequency 5 MHz per step (profileset reply); one step per second is our assumption
LUXOS_RAMP_S_PER_STEP = 1.0
LUXOS_FREQ_STEP_MHZ = 25  # built-in profiles: 25 MHz / 0.1 V apart, 16 down and 8 up [L2]
LUXOS_VOLT_STEP_MV = 100
LUXOS_STEPS_DOWN = 16
LUXOS_STEPS_UP = 8


class Family(StrEnum):
    ANTMINER = "antminer"  # stock Bitmain firmware: cgminer API on 4028 + digest-auth web CGI on 80
    BITAXE = "bitaxe"  # AxeOS: HTTP JSON API on 80, nothing on 4028
    WHATSMINER = "whatsminer"  # btminer API v2 on 4028 (writes through the salted-token / AES flow)
    LUXOS = "luxos"  # an Antminer on LuxOS: cgminer-style API on 4028 with session-guarded writes


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the units of one family behave, beyond their nameplate figures."""

    chip_dropouts: bool  # chips drop off a board over time (multi-chip hashboards)
    silent_throttle: bool  # may fall into a silent half-hashrate state until rebooted
    stops_on_fan_loss: bool  # the firmware stops hashing on "fan lost" (F:1) instead of running hotter
    fan_lost_heat_c: float  # chip temperature a stopped fan adds while the unit keeps hashing (°C)
    fan_w: float  # wall power of each fan while hashing (W), beyond the nameplate
    idle_w: float  # control board (and fans) while powered but not hashing (W)
    idle_fan_pwm: int  # automatic fan duty while powered but not hashing (%)
    wake_can_lose_board: bool  # a board may not be detected coming back from reboot or sleep


@dataclass(frozen=True, slots=True)
class ModelSpec:
    key: str  # CLI name: "s19xp"
    family: Family
    type_string: str  # what firmware reports: "Antminer S19 XP" / ASIC model "BM1370"
    hashrate_ths: float  # nameplate
    power_w: float  # nameplate at the wall
    boards: int
    chips_per_board: int
    fans: int
    freq_mhz: int
    reports_power: bool
    boot_s: float  # power-on / reboot until hashing (Antminer 2–3 min incl. pool change [T1])
    max_fan_rpm: int
    # thermal: chip temperature above ambient at full load with healthy fans (°C)
    chip_rise_c: float
    # ambient derating (S21: 490 → 440 MHz above 40 °C, shutdown above 47 °C [S2])
    derate_ambient_c: float
    derated_freq_mhz: int
    shutdown_ambient_c: float
    chip_protect_c: float  # high-temperature protection (MiningOS P:1)
    one_bad_board_kills_unit: bool  # XP / 2022 S19 without PIC [FA3]
    behaviour: Behaviour  # how its family behaves (MULTI_BOARD_BEHAVIOUR or BITAXE_BEHAVIOUR)
    small_cores: int = 0  # Bitaxe only: small cores per chip
    variant: str = ""  # Whatsminer only: hardware variant ("V50"), part of DEVDETAILS Model
    voltage_mv: int = 12625  # chain voltage (Antminer) / core voltage (Bitaxe)
    power_k: float = POWER_K  # hashrate ∝ power^k below nominal
    power_floor: float = POWER_FLOOR  # bottom of a power-limit range, fraction of nominal

    @property
    def total_chips(self) -> int:
        return self.boards * self.chips_per_board

    @property
    def ideal_ghs(self) -> float:
        return self.hashrate_ths * 1000.0

    @property
    def pyasic_model(self) -> str:
        """The key pyasic selects its class by (`MINER_CLASSES[type][model.upper()]`): the model, with the
        hardware variant where the make has one ("M30SV50")."""
        return f"{self.type_string}{self.variant}".upper()


# What a stock Antminer and a Whatsminer (multi-board units with stock firmware) do alike: chips drop off
# boards, a lost fan stops the unit, each fan draws ~4 W at the wall, the control board and fans draw
# ~25 W when not hashing with fans at 30 %, and a board may not come back after a reboot [FA1].
MULTI_BOARD_BEHAVIOUR = Behaviour(
    chip_dropouts=True,
    silent_throttle=False,
    stops_on_fan_loss=True,
    fan_lost_heat_c=0.0,
    fan_w=4.0,
    idle_w=25.0,
    idle_fan_pwm=30,
    wake_can_lose_board=True,
)
# A Bitaxe: one chip (no dropouts), the silent half-hashrate state [S7], no fan-lost stop in AxeOS (a
# stopped fan heats the chip by ~30 °C), its fan inside the ~15 W nameplate, ~3 W idle with the fan at
# 25 %, and nothing to lose on wake.
BITAXE_BEHAVIOUR = Behaviour(
    chip_dropouts=False,
    silent_throttle=True,
    stops_on_fan_loss=False,
    fan_lost_heat_c=30.0,
    fan_w=0.0,
    idle_w=3.0,
    idle_fan_pwm=25,
    wake_can_lose_board=False,
)


def _antminer(
    key: str,
    type_string: str,
    ths: float,
    watts: float,
    chips: int,
    freq: int,
    power: bool,
    derate: float,
    derated_freq: int,
    shutdown: float,
    one_bad_board: bool,
) -> ModelSpec:
    return ModelSpec(
        key=key,
        family=Family.ANTMINER,
        type_string=type_string,
        hashrate_ths=ths,
        power_w=watts,
        boards=3,
        chips_per_board=chips,
        fans=4,
        freq_mhz=freq,
        reports_power=power,
        boot_s=150.0,
        max_fan_rpm=6000,
        chip_rise_c=45.0,
        derate_ambient_c=derate,
        derated_freq_mhz=derated_freq,
        shutdown_ambient_c=shutdown,
        chip_protect_c=95.0,
        one_bad_board_kills_unit=one_bad_board,
        behaviour=MULTI_BOARD_BEHAVIOUR,
    )


def _bitaxe(key: str, asic: str, cores: int, freq: int, watts: float, core_mv: int) -> ModelSpec:
    return ModelSpec(
        key=key,
        family=Family.BITAXE,
        type_string=asic,
        hashrate_ths=cores * freq / 1e6,
        power_w=watts,
        boards=1,
        chips_per_board=1,
        fans=1,
        freq_mhz=freq,
        reports_power=True,
        boot_s=12.0,
        max_fan_rpm=7000,
        chip_rise_c=33.0,
        derate_ambient_c=45.0,
        derated_freq_mhz=freq // 2,
        shutdown_ambient_c=55.0,
        chip_protect_c=75.0,
        one_bad_board_kills_unit=True,
        behaviour=BITAXE_BEHAVIOUR,
        small_cores=cores,
        voltage_mv=core_mv,
    )


MODELS: dict[str, ModelSpec] = {
    m.key: m
    for m in (
        _antminer("s19", "Antminer S19", 95.0, 3250.0, 76, 650, False, 40.0, 600, 50.0, False),
        _antminer("s19xp", "Antminer S19 XP", 140.0, 3010.0, 110, 490, False, 40.0, 450, 50.0, True),
        _antminer("s21", "Antminer S21", 200.0, 3500.0, 108, 490, True, 40.0, 440, 47.0, False),
        _bitaxe("bitaxe-max", "BM1397", 672, 425, 13.0, 1400),
        _bitaxe("bitaxe-ultra", "BM1366", 894, 485, 14.5, 1200),
        _bitaxe("bitaxe-supra", "BM1368", 1276, 490, 15.0, 1166),
        _bitaxe("bitaxe-gamma", "BM1370", 2040, 525, 17.5, 1150),
    )
}


def _whatsminer(
    key: str, type_string: str, variant: str, ths: float, watts: float, chips: int, freq: int
) -> ModelSpec:
    return ModelSpec(
        key=key,
        family=Family.WHATSMINER,
        type_string=type_string,
        hashrate_ths=ths,
        power_w=watts,
        boards=3,
        chips_per_board=chips,
        fans=2,
        freq_mhz=freq,
        reports_power=True,
        boot_s=180.0,
        max_fan_rpm=7000,
        chip_rise_c=40.0,
        derate_ambient_c=40.0,
        derated_freq_mhz=freq - 50,
        shutdown_ambient_c=50.0,
        chip_protect_c=95.0,
        one_bad_board_kills_unit=False,
        behaviour=MULTI_BOARD_BEHAVIOUR,
        variant=variant,
    )


def _luxos(key: str, type_string: str, ths: float, watts: float, chips: int, freq: int, mv: int) -> ModelSpec:
    """An Antminer running LuxOS: the stock unit's hardware, LuxOS's API, power reported (LuxOS estimates
    it) and the chips' voltage known (its profiles step frequency and voltage together)."""
    stock = _antminer(key, type_string, ths, watts, chips, freq, True, 40.0, freq - 50, 50.0, False)
    return replace(stock, family=Family.LUXOS, voltage_mv=mv)


MODELS.update(
    {
        m.key: m
        for m in (
            _luxos("s19jpro-lux", "Antminer S19j Pro", 104.0, 3068.0, 126, 545, 13400),
            _luxos("s19xp-lux", "Antminer S19 XP", 140.0, 3010.0, 110, 490, 12625),
        )
    }
)


MODELS.update(
    {
        m.key: m
        for m in (
            # btminer API v2 on 4028 (read-only without the token dance); pyasic classes BTMinerM30SV50 /
            # BTMinerM50VH50 (3×156 and 3×105 chips, 2 fans)
            _whatsminer("m30s", "M30S", "V50", 88.0, 3344.0, 156, 570),
            _whatsminer("m50", "M50", "VH50", 118.0, 3422.0, 105, 550),
        )
    }
)

@dataclass(frozen=True, slots=True)
class FailureRates:
    """Per-unit hazard rates (events per hour) before `speedup`.

    Defaults: ~5 %/year hashboard deaths per unit (Bitmain's "normal" [FA2]), ~8 %/year fan failures,
    four spontaneous reboots a year, ~3 %/year chip dropouts, Bitaxe half-hashrate ~6 %/year [S7],
    ~3 %/year blocked airflow (dust, hot-air recirculation: the unit's intake runs 15–25 °C hotter until
    repaired, so it derates or trips its temperature protection — "a unit overheats");
    `wake_failure` is the chance an Antminer loses a board when it comes back from an operator action
    (sleep → wake, restart, pool-change reboot): XP units often did not come back after curtailment
    [FA1]. `speedup` multiplies every rate so demos
    and tests see failures in minutes instead of months.
    """

    board_per_year: float = 0.05
    fan_per_year: float = 0.08
    reboot_per_year: float = 4.0
    chips_per_year: float = 0.03
    throttle_per_year: float = 0.06
    airflow_per_year: float = 0.03
    wake_failure: float = 0.01
    speedup: float = 1.0

    def per_second(self) -> tuple[float, float, float, float, float, float]:
        k = self.speedup / (HOURS_PER_YEAR * 3600.0)
        return (
            self.board_per_year * k,
            self.fan_per_year * k,
            self.reboot_per_year * k,
            self.chips_per_year * k,
            self.throttle_per_year * k,
            self.airflow_per_year * k,
        )

"""The typed values of the cgminer report sections: one type per thing a section describes.

One family for both directions: the simulated fleet fills these and `build` writes them out in a stock
Antminer's field names, units and types; the farm's driver gets the same types back from `parse`, which
reads them from whatever a real device sent. Where firmware may leave a field out, the field is
optional (None: not reported) or has the value cgminer shows when there is nothing to count (0). A
value survives `build` then `parse` unchanged wherever the section carries it (the tests check it
field by field, with hypothesis); what a section cannot carry is said on the field.

Units are the firmware's: hashrates in GH/s (bmminer's unit), temperatures in °C, times in seconds.

What this module is not: no JSON, no field names (those are `build` and `parse`), no envelope (`wire`).
"""

from __future__ import annotations

from dataclasses import dataclass

# What bmminer calls its one SoC device in STATS (`ID`, `miner_id`); every stock Antminer reports this.
BMMINER_DEVICE_ID = "BTM_SOC0"


@dataclass(frozen=True, slots=True)
class Version:
    """VERSION[0]: `{"BMMiner":"1.0.0","API":"3.1","Miner":"…","CompileTime":…,"Type":"Antminer S19 XP"}`.

    `miner_type` is the model without the suffix some firmware appends in parentheses ("(Vnish 1.2.0)").
    `compile_time` is what pyasic reports as a stock Antminer's firmware version. The STATS identity
    entry and the `new_api` INFO object carry the same values (less `api`).
    """

    miner_type: str
    api: str | None = None
    compile_time: str | None = None
    bmminer: str | None = None
    miner: str | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """SUMMARY[0]. `ghs_av` and `ghs_30m` are None when a device does not report them; cgminer proper
    reports MH/s ("MHS 5s"), which `parse` converts, so these are always GH/s."""

    elapsed_s: int
    ghs_5s: float
    ghs_av: float | None
    accepted: int
    rejected: int
    hardware_errors: int
    ghs_30m: float | None = None
    stale: int = 0
    get_failures: int = 0
    remote_failures: int = 0
    found_blocks: int = 0
    getworks: int = 0
    discarded: int = 0
    local_work: int = 0
    network_blocks: int = 0
    difficulty_accepted: float = 0.0
    difficulty_rejected: float = 0.0
    difficulty_stale: float = 0.0
    best_share: int | None = None
    last_getwork: int = 0


@dataclass(frozen=True, slots=True)
class Pool:
    """One POOLS[] entry. `alive`: the firmware reports the pool "Alive" (a disabled pool shows
    "Disabled", never alive); `active`: the pool in use ("Stratum Active"); `diff`: the work difficulty
    the pool set; `last_share_time` is the firmware's text ("0:00:03", or "0" for never)."""

    index: int
    url: str
    user: str
    alive: bool
    active: bool
    priority: int = 0
    enabled: bool = True
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    get_failures: int = 0
    remote_failures: int = 0
    getworks: int = 0
    diff: float = 0.0
    difficulty_accepted: float = 0.0
    difficulty_rejected: float = 0.0
    last_share_time: str = "0"
    best_share: int = 0


@dataclass(frozen=True, slots=True)
class Chain:
    """One hashboard (chain). A dead board has `chips == 0` and rate 0.

    Temperatures are the sensor readings, in the order the firmware lists them (0: no sensor). The
    `new_api` STATS carries every sensor (`temp_pcb`, `temp_chip`, `temp_pic`); the flat legacy STATS
    carries only each board's hottest PCB and chip reading (`temp{n}`, `temp2_{n}`), which `parse` gives
    as one-reading tuples, and no `temp_pic`, `serial`, or per-chip flags. `asic_ok` is the per-chip
    flag list written as the `chain_acs` string ('o' good, 'x' bad); empty means every chip is good, and
    `parse` leaves it empty. `voltage_mv` travels in the legacy shape only.
    """

    index: int
    chips: int
    rate_ghs: float | None
    ideal_ghs: float | None = None
    freq_avg: float | None = None
    temp_pcb: tuple[float, ...] = ()
    temp_chip: tuple[float, ...] = ()
    temp_pic: tuple[float, ...] = ()
    hw: int = 0
    serial: str | None = None
    voltage_mv: int | None = None
    asic_ok: tuple[bool, ...] = ()

    @property
    def board_temp_c(self) -> float | None:
        """The hottest PCB sensor (what bmminer reports as `temp{n}`), None when none reads above 0."""
        hottest = max(self.temp_pcb, default=0.0)
        return hottest if hottest > 0 else None

    @property
    def chip_temp_c(self) -> float | None:
        """The hottest chip sensor (bmminer's `temp2_{n}`), None when none reads above 0."""
        hottest = max(self.temp_chip, default=0.0)
        return hottest if hottest > 0 else None


@dataclass(frozen=True, slots=True)
class Stats:
    """What both STATS shapes carry: the flat legacy STATS (`{"command":"stats"}`: an identity entry and
    one entry of flat fields) and the `new_api` one (`STATS[0].chain[]`, also the web `stats.cgi` body).

    `version` is the identity entry (legacy STATS[0], `new_api` INFO). `ideal_ghs` is the nameplate
    rate the firmware expects; `power_w` is None on firmware that does not report power (stock S19 /
    S19 XP); `state` is bmminer's chain state ("mining", "sleep", ...) and `miner_mode` its work mode
    (0 normal, 1 sleep, 3 low power). `state` is written, never read back; the legacy shape carries no
    `miner_mode` and no `api` in its identity entry, the `new_api` shape no `frequency`, `device_id`,
    `api` or `bmminer`.
    """

    version: Version
    elapsed_s: int | None
    ghs_5s: float | None
    ghs_av: float | None
    ghs_30m: float | None
    ideal_ghs: float | None
    fans_rpm: tuple[int, ...]
    chains: tuple[Chain, ...]
    power_w: float | None = None
    frequency: int | None = None
    device_id: str = BMMINER_DEVICE_ID
    state: str = "mining"
    miner_mode: int = 0


@dataclass(frozen=True, slots=True)
class Dev:
    """One DEVS[] entry: bmminer reports each hashboard as an ASC device. `temperature_c` is its hottest
    chip; rates are MH/s, cgminer's unit here."""

    index: int
    alive: bool
    temperature_c: float | None
    mhs_5s: float | None
    hardware_errors: int
    mhs_av: float | None = None
    accepted: int = 0
    rejected: int = 0
    elapsed_s: int = 0

"""Client side of the cgminer / bmminer API: decoded replies → the typed values of `sections`.

`parse_version`, `parse_summary`, `parse_pools`, `parse_stats` (the flat legacy STATS),
`parse_stats_new_api` (`STATS[0].chain[]`, also the web `stats.cgi` body) and `parse_devs` take one
single-command reply as `wire.decode_reply` (or `wire.decode_text_reply`) gives it, check its STATUS
(`CgminerCommandError` on E/F) and read the section field by field: numbers may come as JSON numbers or
numeric strings (text-mode replies, bmminer's "GHS 5s"); a field a parser needs that is missing or not a
number raises `CgminerReplyError`, never a guess. Fields firmware may leave out become None, or the
value cgminer shows when there is nothing to count.

What this module is not: no envelope or JSON repair (`wire`), no section building (`build`), no vendor
normalisation into the farm's canonical model (that is the driver's normaliser).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pithead.farm.protocol.cgminer.sections import (
    BMMINER_DEVICE_ID,
    Chain,
    Dev,
    Pool,
    Stats,
    Summary,
    Version,
)
from pithead.farm.protocol.cgminer.wire import check_status, reply_status
from pithead.farm.protocol.errors import CgminerCommandError, CgminerReplyError

# The flat legacy STATS numbers chains from 1; firmware lists at most this many (16 on the largest units).
MAX_LEGACY_CHAINS = 16
# Chains 1-3 may be missing from the flat legacy STATS (an empty slot) with later ones present; past
# that, the first missing number ends the list.
LEGACY_CHAIN_GAP = 3
# The flat legacy STATS lists fans as fan1..fan8 (the most any Antminer has).
MAX_LEGACY_FANS = 8

_RATE_UNIT_TO_GH = {"H": 1e-9, "KH": 1e-6, "MH": 1e-3, "GH": 1.0, "TH": 1e3, "PH": 1e6}
# The flat legacy STATS' per-chain and per-fan field names, made once (parse_stats is on the hot path).
_LEGACY_CHAIN_KEYS = tuple(
    (f"chain_acn{n}", f"chain_rate{n}", f"chain_rateideal{n}", f"freq_avg{n}", f"temp{n}", f"temp2_{n}",
     f"chain_hw{n}", f"chain_vol{n}")
    for n in range(1, MAX_LEGACY_CHAINS + 1)
)
_LEGACY_FAN_KEYS = tuple(f"fan{i}" for i in range(1, MAX_LEGACY_FANS + 1))


def _section(reply: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    check_status(reply, name.lower())
    sec = reply.get(name)
    if not isinstance(sec, list):
        raise CgminerReplyError(f"reply has no {name} section")
    return [s for s in sec if isinstance(s, dict)]


# The number readers below are on the farm's hot path (a poll parses ~60 fields): JSON numbers, by far the
# most common case, are taken on an exact type check before anything slower is tried.


def _num(v: Any, what: str) -> float:
    """A numeric field that firmware sends as a number or a numeric string ("140258.58")."""
    kind = type(v)
    if kind is float:
        return v  # type: ignore[no-any-return]
    if kind is int:
        return float(v)
    if isinstance(v, bool):
        raise CgminerReplyError(f"{what}: boolean where a number was expected")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError as exc:
            raise CgminerReplyError(f"{what}: {v!r} is not a number") from exc
    raise CgminerReplyError(f"{what}: missing or not a number")


def _int(d: Mapping[str, Any], key: str, default: int = 0) -> int:
    """An integer field; `default` when the firmware leaves it out."""
    v = d.get(key)
    if type(v) is int:
        return v
    return default if v is None or v == "" else int(_num(v, key))


def _float(d: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    v = _opt_num(d, key)
    return default if v is None else v


def _bool(v: Any) -> bool:
    """A boolean field: JSON true/false, or "true"/"false" in text-mode replies."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "y", "yes", "1")
    return bool(v)


def _opt_num(d: Mapping[str, Any], key: str) -> float | None:
    v: Any = d.get(key)
    kind = type(v)
    if kind is float:
        return v  # type: ignore[no-any-return]
    if kind is int:
        return float(v)
    if v is None or v == "":
        return None
    return _num(v, key)


def _opt_int(d: Mapping[str, Any], key: str) -> int | None:
    v = _opt_num(d, key)
    return int(v) if v is not None else None


def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    return str(d[key]) if key in d else None


def _model(type_field: Any) -> str:
    """The model from a `Type` field, without what firmware appends in parentheses ("(Vnish 1.2.0)")."""
    return str(type_field).split(" (", 1)[0] if type_field is not None else ""


def _readings(values: Any, what: str) -> tuple[float, ...]:
    """A sensor list; empty strings and nulls (sensors the board does not have) are left out."""
    if not isinstance(values, list):
        return ()
    return tuple(_num(t, what) for t in values if t is not None and t != "")


def _rate_unit_factor(unit: Any) -> float:
    u = str(unit or "GH").upper().replace("/S", "").strip()
    return _RATE_UNIT_TO_GH.get(u, 1.0)


def _scaled(v: float | None, factor: float) -> float | None:
    return v * factor if v is not None else None


def parse_version(reply: Mapping[str, Any]) -> Version:
    v = _section(reply, "VERSION")
    if not v:
        raise CgminerReplyError("empty VERSION section")
    d = v[0]
    return Version(
        miner_type=_model(d.get("Type", "")),
        api=_opt_str(d, "API"),
        compile_time=_opt_str(d, "CompileTime"),
        bmminer=_opt_str(d, "BMMiner"),
        miner=_opt_str(d, "Miner"),
    )


def parse_summary(reply: Mapping[str, Any]) -> Summary:
    s = _section(reply, "SUMMARY")
    if not s:
        raise CgminerReplyError("empty SUMMARY section")
    d = s[0]
    ghs = d.get("GHS 5s")
    if ghs is None and "MHS 5s" in d:  # cgminer proper reports MH/s
        ghs_5s = _num(d["MHS 5s"], "MHS 5s") / 1000.0
        ghs_av = _scaled(_opt_num(d, "MHS av"), 1e-3)
        ghs_30m = None
    else:
        ghs_5s = _num(ghs, "GHS 5s")
        ghs_av = _opt_num(d, "GHS av")
        ghs_30m = _opt_num(d, "GHS 30m")
    return Summary(
        elapsed_s=_int(d, "Elapsed"),
        ghs_5s=ghs_5s,
        ghs_av=ghs_av,
        accepted=_int(d, "Accepted"),
        rejected=_int(d, "Rejected"),
        hardware_errors=_int(d, "Hardware Errors"),
        ghs_30m=ghs_30m,
        stale=_int(d, "Stale"),
        get_failures=_int(d, "Get Failures"),
        remote_failures=_int(d, "Remote Failures"),
        found_blocks=_int(d, "Found Blocks"),
        getworks=_int(d, "Getworks"),
        discarded=_int(d, "Discarded"),
        local_work=_int(d, "Local Work"),
        network_blocks=_int(d, "Network Blocks"),
        difficulty_accepted=_float(d, "Difficulty Accepted"),
        difficulty_rejected=_float(d, "Difficulty Rejected"),
        difficulty_stale=_float(d, "Difficulty Stale"),
        best_share=_opt_int(d, "Best Share"),
        last_getwork=_int(d, "Last getwork"),
    )


def parse_pools(reply: Mapping[str, Any]) -> tuple[Pool, ...]:
    out: list[Pool] = []
    for d in _section(reply, "POOLS"):
        status = d.get("Status")
        out.append(
            Pool(
                index=_int(d, "POOL", len(out)),
                url=str(d.get("URL", "")),
                user=str(d.get("User", "")),
                alive=status == "Alive",
                active=_bool(d.get("Stratum Active", False)),
                priority=_int(d, "Priority"),
                enabled=status != "Disabled",
                accepted=_int(d, "Accepted"),
                rejected=_int(d, "Rejected"),
                stale=_int(d, "Stale"),
                get_failures=_int(d, "Get Failures"),
                remote_failures=_int(d, "Remote Failures"),
                getworks=_int(d, "Getworks"),
                diff=_float(d, "Work Difficulty"),
                difficulty_accepted=_float(d, "Difficulty Accepted"),
                difficulty_rejected=_float(d, "Difficulty Rejected"),
                last_share_time=str(d.get("Last Share Time", "0")),
                best_share=_int(d, "Best Share"),
            )
        )
    return tuple(out)


def parse_stats(reply: Mapping[str, Any]) -> Stats:
    """Parse the flat legacy STATS (`{"command":"stats"}`): STATS[0] identity, STATS[1] figures.

    Chains are found from `chain_acn{n}`; `temp{n}` is the PCB max and `temp2_{n}` the chip max, as
    bmminer reports them. Fans with 0 rpm are reported as 0 (a stopped fan), not dropped.
    """
    secs = _section(reply, "STATS")
    if len(secs) < 2:
        raise CgminerReplyError("STATS needs an identity entry and a figures entry")
    head, d = secs[0], secs[1]
    fans = []
    for key in _LEGACY_FAN_KEYS:
        v = d.get(key)
        if v is None:
            break
        fans.append(int(_num(v, key)))
    n_fans = d.get("fan_num")
    if isinstance(n_fans, int):
        fans = fans[:n_fans]
    chains = []
    for n, (acn, rate, ideal_n, freq, t_pcb, t_chip, hw, vol) in enumerate(_LEGACY_CHAIN_KEYS, start=1):
        if acn not in d:
            if n > LEGACY_CHAIN_GAP:
                break
            continue
        pcb = _opt_num(d, t_pcb)
        chip = _opt_num(d, t_chip)
        chains.append(
            Chain(
                index=n - 1,
                chips=int(_num(d[acn], acn)),
                rate_ghs=_opt_num(d, rate),
                ideal_ghs=_opt_num(d, ideal_n),
                freq_avg=_opt_num(d, freq),
                temp_pcb=(pcb,) if pcb is not None else (),
                temp_chip=(chip,) if chip is not None else (),
                hw=_int(d, hw),
                voltage_mv=_opt_int(d, vol),
            )
        )
    ideal = _opt_num(d, "total_rateideal")
    if ideal is not None:
        ideal *= _rate_unit_factor(d.get("rate_unit"))
    power = None
    cp = d.get("chain_power")
    if isinstance(cp, str) and cp.strip():
        power = _num(cp.split()[0], "chain_power")
    return Stats(
        version=Version(
            miner_type=_model(head.get("Type")),
            compile_time=_opt_str(head, "CompileTime"),
            bmminer=_opt_str(head, "BMMiner"),
            miner=_opt_str(head, "Miner"),
        ),
        elapsed_s=_opt_int(d, "Elapsed"),
        ghs_5s=_opt_num(d, "GHS 5s"),
        ghs_av=_opt_num(d, "GHS av"),
        ghs_30m=_opt_num(d, "rate_30m"),
        ideal_ghs=ideal,
        fans_rpm=tuple(fans),
        chains=tuple(chains),
        power_w=power,
        frequency=_opt_int(d, "frequency"),
        device_id=str(d.get("ID", BMMINER_DEVICE_ID)),
    )


def parse_stats_new_api(reply: Mapping[str, Any]) -> Stats:
    """Parse the `new_api` STATS (also the web `stats.cgi` body): `STATS[0].chain[]`, every sensor."""
    st = reply_status(reply)
    if not st.ok:
        raise CgminerCommandError("stats", str(st.severity), st.code, st.msg)
    secs = reply.get("STATS")
    if not isinstance(secs, list) or not secs or not isinstance(secs[0], dict):
        raise CgminerReplyError("new_api reply has no STATS[0]")
    d = secs[0]
    factor = _rate_unit_factor(d.get("rate_unit"))
    chains: list[Chain] = []
    for c in d.get("chain", []) or []:
        if not isinstance(c, dict):
            raise CgminerReplyError("chain entry is not an object")
        chains.append(
            Chain(
                index=_int(c, "index", len(chains)),
                chips=_int(c, "asic_num"),
                rate_ghs=_scaled(_opt_num(c, "rate_real"), factor),
                ideal_ghs=_scaled(_opt_num(c, "rate_ideal"), factor),
                freq_avg=_opt_num(c, "freq_avg"),
                temp_pcb=_readings(c.get("temp_pcb"), "temp_pcb"),
                temp_chip=_readings(c.get("temp_chip"), "temp_chip"),
                temp_pic=_readings(c.get("temp_pic"), "temp_pic"),
                hw=_int(c, "hw"),
                serial=_opt_str(c, "sn"),
            )
        )
    info = reply.get("INFO")
    info = info if isinstance(info, dict) else {}
    return Stats(
        version=Version(
            miner_type=_model(info.get("type")),
            compile_time=_opt_str(info, "CompileTime"),
            miner=_opt_str(info, "miner_version"),
        ),
        elapsed_s=_opt_int(d, "elapsed"),
        ghs_5s=_scaled(_opt_num(d, "rate_5s"), factor),
        ghs_av=_scaled(_opt_num(d, "rate_avg"), factor),
        ghs_30m=_scaled(_opt_num(d, "rate_30m"), factor),
        ideal_ghs=_scaled(_opt_num(d, "rate_ideal"), factor),
        fans_rpm=tuple(int(_num(f, "fan")) for f in d.get("fan", []) or []),
        chains=tuple(chains),
        power_w=_opt_num(d, "watt"),
        miner_mode=_int(d, "miner-mode"),
    )


def parse_devs(reply: Mapping[str, Any]) -> tuple[Dev, ...]:
    out: list[Dev] = []
    for d in _section(reply, "DEVS"):
        idx = d.get("ASC", d.get("PGA", d.get("GPU", d.get("ID", len(out)))))
        out.append(
            Dev(
                index=int(_num(idx, "ASC")),
                alive=d.get("Status") == "Alive",
                temperature_c=_opt_num(d, "Temperature"),
                mhs_5s=_opt_num(d, "MHS 5s"),
                hardware_errors=_int(d, "Hardware Errors"),
                mhs_av=_opt_num(d, "MHS av"),
                accepted=_int(d, "Accepted"),
                rejected=_int(d, "Rejected"),
                elapsed_s=_int(d, "Device Elapsed"),
            )
        )
    return tuple(out)

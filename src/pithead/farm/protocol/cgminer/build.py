"""Server side of the cgminer / bmminer API: the report sections a stock Antminer returns, built from
typed values (`sections`) so the field names, types and units live in one place.

VERSION, SUMMARY, POOLS, DEVS, DEVDETAILS, CONFIG, the flat legacy STATS and the `new_api` STATS reply
with its `chain[]` list. Each builder returns the section's items (or, for `new_api` STATS, the whole
reply, which has its own envelope); `wire.build_reply` wraps items in a STATUS envelope. The simulated
fleet serves these, and `parse` reads them back (the tests round-trip every section).

What this module is not: no request handling or STATUS envelope (`wire`), no reading of replies
(`parse`), no device behaviour (`pithead.fleetsim`), no sockets and no clock (`when` is passed in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pithead.farm.protocol.cgminer.sections import Chain, Dev, Pool, Stats, Summary, Version

# The `new_api` STATS reports hardware errors as a share of this many nonces plus the errors (hwp).
HWP_NONCE_BASE = 1_000_000
# chain_acs groups the per-chip flags in runs of this many, separated by spaces (as bmminer prints them).
ACS_GROUP = 10


def _present(items: dict[str, Any]) -> dict[str, Any]:
    """The items whose value is known (a field the firmware would not send is left out, not null)."""
    return {k: v for k, v in items.items() if v is not None}


def version_section(v: Version) -> dict[str, Any]:
    """VERSION[0]: `{"BMMiner":"1.0.0","API":"3.1","Miner":"…","CompileTime":"…","Type":"Antminer S19 XP"}`."""
    return _present(
        {
            "BMMiner": v.bmminer,
            "API": v.api,
            "Miner": v.miner,
            "CompileTime": v.compile_time,
            "Type": v.miner_type,
        }
    )


def summary_section(s: Summary) -> dict[str, Any]:
    """SUMMARY[0] of bmminer (GH/s; "GHS 5s" is sent as a string, as the firmware does)."""
    minutes = max(s.elapsed_s, 1) / 60.0
    total_diff = s.difficulty_accepted + s.difficulty_rejected + s.difficulty_stale
    hw_total = s.hardware_errors + s.accepted + s.rejected
    av = s.ghs_av if s.ghs_av is not None else 0.0
    return _present(
        {
            "Elapsed": s.elapsed_s,
            "GHS 5s": f"{s.ghs_5s:.2f}",
            "GHS av": round(s.ghs_av, 2) if s.ghs_av is not None else None,
            "GHS 30m": round(s.ghs_30m, 2) if s.ghs_30m is not None else None,
            "Found Blocks": s.found_blocks,
            "Getworks": s.getworks,
            "Accepted": s.accepted,
            "Rejected": s.rejected,
            "Hardware Errors": s.hardware_errors,
            "Utility": round(s.accepted / minutes, 2),
            "Discarded": s.discarded,
            "Stale": s.stale,
            "Get Failures": s.get_failures,
            "Local Work": s.local_work,
            "Remote Failures": s.remote_failures,
            "Network Blocks": s.network_blocks,
            "Total MH": round(av * 1000.0 * s.elapsed_s, 4),
            "Work Utility": round(s.difficulty_accepted / minutes, 2),
            "Difficulty Accepted": round(s.difficulty_accepted, 8),
            "Difficulty Rejected": round(s.difficulty_rejected, 8),
            "Difficulty Stale": round(s.difficulty_stale, 8),
            "Best Share": s.best_share,
            "Device Hardware%": round(100.0 * s.hardware_errors / hw_total, 4) if hw_total else 0.0,
            "Device Rejected%": round(100.0 * s.difficulty_rejected / total_diff, 4) if total_diff else 0.0,
            "Pool Rejected%": round(100.0 * s.difficulty_rejected / total_diff, 4) if total_diff else 0.0,
            "Pool Stale%": round(100.0 * s.difficulty_stale / total_diff, 4) if total_diff else 0.0,
            "Last getwork": s.last_getwork,
        }
    )


def pool_section(p: Pool) -> dict[str, Any]:
    """One POOLS[] entry ("Status" is "Alive", "Dead", or "Disabled" for a pool switched off)."""
    host = p.url.split("://", 1)[-1].rsplit(":", 1)[0] if p.active else ""
    total = p.difficulty_accepted + p.difficulty_rejected
    return {
        "POOL": p.index,
        "URL": p.url,
        "Status": ("Alive" if p.alive else "Dead") if p.enabled else "Disabled",
        "Priority": p.priority,
        "Quota": 1,
        "Long Poll": "N",
        "Getworks": p.getworks,
        "Accepted": p.accepted,
        "Rejected": p.rejected,
        "Discarded": 0,
        "Stale": p.stale,
        "Get Failures": p.get_failures,
        "Remote Failures": p.remote_failures,
        "User": p.user,
        "Last Share Time": p.last_share_time,
        "Diff": _short_diff(p.diff) if p.active else "",
        "Diff1 Shares": 0,
        "Proxy Type": "",
        "Proxy": "",
        "Difficulty Accepted": round(p.difficulty_accepted, 8),
        "Difficulty Rejected": round(p.difficulty_rejected, 8),
        "Difficulty Stale": 0.0,
        "Last Share Difficulty": round(p.diff, 8) if p.accepted else 0.0,
        "Work Difficulty": round(p.diff, 8),
        "Has Stratum": True,
        "Stratum Active": p.active,
        "Stratum URL": host,
        "Stratum Difficulty": round(p.diff, 8) if p.active else 0.0,
        "Has Vmask": True,
        "Has GBT": False,
        "Best Share": p.best_share,
        "Pool Rejected%": round(100.0 * p.difficulty_rejected / total, 4) if total else 0.0,
        "Pool Stale%": 0.0,
        "Bad Work": 0,
        "Current Block Height": 0,
        "Current Block Version": 536870912,
    }


def _short_diff(d: float) -> str:
    """cgminer's suffixed difficulty string: 524288 → "524K", 2048 → "2.05K"."""
    if d <= 0:
        return ""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if d >= div:
            v = d / div
            return f"{v:.3g}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return f"{d:.0f}"


def _acs_string(c: Chain) -> str:
    """bmminer's `chain_acs`: one 'o' (good) or 'x' (bad) per chip, in groups of ten."""
    flags = "".join("o" if ok else "x" for ok in c.asic_ok) if c.asic_ok else "o" * c.chips
    return " ".join(flags[i : i + ACS_GROUP] for i in range(0, len(flags), ACS_GROUP))


def _hottest(readings: tuple[float, ...]) -> float:
    return max(readings, default=0)


def _stats_head(v: Version) -> dict[str, Any]:
    """The identity entry that opens the legacy STATS (STATS[0])."""
    return _present(
        {"BMMiner": v.bmminer, "Miner": v.miner, "CompileTime": v.compile_time, "Type": v.miner_type}
    )


def stats_legacy_section(st: Stats) -> list[dict[str, Any]]:
    """STATS for `{"command":"stats"}`: `[{BMMiner,Miner,CompileTime,Type}, {STATS:0, …flat fields…}]`."""
    chains = st.chains
    s: dict[str, Any] = {
        "STATS": 0,
        "ID": st.device_id,
        "Elapsed": st.elapsed_s if st.elapsed_s is not None else 0,
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
        "GHS 5s": f"{st.ghs_5s or 0.0:.2f}",
        "GHS av": round(st.ghs_av or 0.0, 2),
        "rate_30m": round(st.ghs_30m or 0.0, 2),
        "Mode": 2,
        "miner_count": len(chains),
    }
    if st.frequency is not None:
        s["frequency"] = st.frequency
    s["fan_num"] = len(st.fans_rpm)
    for i, rpm in enumerate(st.fans_rpm, start=1):
        s[f"fan{i}"] = rpm
    s["temp_num"] = len(chains)
    for c in chains:
        s[f"temp{c.index + 1}"] = _hottest(c.temp_pcb)
    for c in chains:
        s[f"temp2_{c.index + 1}"] = _hottest(c.temp_chip)
    for c in chains:
        s[f"temp3_{c.index + 1}"] = _hottest(c.temp_chip)
    for c in chains:
        n = c.index + 1
        s[f"temp_pcb{n}"] = "-".join(str(t) for t in c.temp_pcb)
        s[f"temp_chip{n}"] = "-".join(str(t) for t in c.temp_chip)
    if st.ideal_ghs is not None:
        s["total_rateideal"] = round(st.ideal_ghs, 2)
    s["rate_unit"] = "GH"
    s["total_freqavg"] = round(sum(c.freq_avg or 0.0 for c in chains) / len(chains) if chains else 0.0, 2)
    s["total_acn"] = sum(c.chips for c in chains)
    s["total rate"] = round(sum(c.rate_ghs or 0.0 for c in chains), 2)
    for c in chains:
        n = c.index + 1
        s[f"chain_acn{n}"] = c.chips
        s[f"chain_acs{n}"] = _acs_string(c)
        s[f"chain_hw{n}"] = c.hw
        s[f"chain_rate{n}"] = f"{c.rate_ghs or 0.0:.2f}"
        if c.ideal_ghs is not None:
            s[f"chain_rateideal{n}"] = round(c.ideal_ghs, 2)
        if c.voltage_mv is not None:
            s[f"chain_vol{n}"] = c.voltage_mv
        if c.freq_avg is not None:
            s[f"freq_avg{n}"] = round(c.freq_avg, 2)
        s[f"chain_state{n}"] = st.state if c.chips else "failure"
    if st.version.miner is not None:
        s["miner_version"] = st.version.miner
    s["miner_id"] = st.device_id
    if st.power_w is not None:
        s["chain_power"] = f"{st.power_w:.0f} W"
    return [_stats_head(st.version), s]


def _hwp(hw: int) -> float:
    return round(100.0 * hw / max(1, hw + HWP_NONCE_BASE), 4)


def stats_new_api_reply(st: Stats, when: int) -> dict[str, Any]:
    """The whole reply for `{"command":"stats","new_api":true}` (also the web `stats.cgi` body).

    This newer bmminer shape has a single STATUS *object* (lower-case `when`, `api_version`) and a
    `STATS[0].chain[]` list, which is what pyasic's AntminerModern reads hashboards from.
    """
    chains = [
        _present(
            {
                "index": c.index,
                "freq_avg": round(c.freq_avg) if c.freq_avg is not None else None,
                "rate_ideal": round(c.ideal_ghs, 2) if c.ideal_ghs is not None else None,
                "rate_real": round(c.rate_ghs or 0.0, 2),
                "asic_num": c.chips,
                "asic": _acs_string(c),
                "temp_pic": list(c.temp_pic),
                "temp_pcb": list(c.temp_pcb),
                "temp_chip": list(c.temp_chip),
                "hw": c.hw,
                "eeprom_loaded": True,
                "sn": c.serial,
                "hwp": _hwp(c.hw),
                "tpl": [],
            }
        )
        for c in st.chains
    ]
    stats: dict[str, Any] = _present(
        {
            "elapsed": st.elapsed_s,
            "rate_5s": round(st.ghs_5s, 2) if st.ghs_5s is not None else None,
            "rate_30m": round(st.ghs_30m, 2) if st.ghs_30m is not None else None,
            "rate_avg": round(st.ghs_av, 2) if st.ghs_av is not None else None,
            "rate_ideal": round(st.ideal_ghs, 2) if st.ideal_ghs is not None else None,
            "rate_unit": "GH/s",
            "chain_num": len(st.chains),
            "fan_num": len(st.fans_rpm),
            "fan": list(st.fans_rpm),
            "hwp_total": _hwp(sum(c.hw for c in st.chains)),
            "miner-mode": st.miner_mode,
            "freq-level": 100,
            "chain": chains,
        }
    )
    if st.power_w is not None:
        stats["watt"] = round(st.power_w)
    return {
        "STATUS": {"STATUS": "S", "when": when, "timestamp": when, "api_version": "1.0.0", "Msg": "stats"},
        "INFO": _present(
            {
                "miner_version": st.version.miner,
                "CompileTime": st.version.compile_time,
                "type": st.version.miner_type,
            }
        ),
        "STATS": [stats],
    }


def devs_section(devs: Sequence[Dev]) -> list[dict[str, Any]]:
    """DEVS[]: one ASC entry per hashboard (bmminer reports each as an ASC device)."""
    return [
        {
            "ASC": d.index,
            "Name": "BTM_SOC",
            "ID": d.index,
            "Enabled": "Y",
            "Status": "Alive" if d.alive else "Dead",
            "Temperature": float(d.temperature_c) if d.temperature_c is not None else 0.0,
            "MHS av": round(d.mhs_av or 0.0, 2),
            "MHS 5s": round(d.mhs_5s or 0.0, 2),
            "Accepted": d.accepted,
            "Rejected": d.rejected,
            "Hardware Errors": d.hardware_errors,
            "Utility": round(d.accepted / max(d.elapsed_s / 60.0, 1 / 60.0), 2),
            "Last Share Pool": 0,
            "Last Share Time": 0,
            "Total MH": round((d.mhs_av or 0.0) * d.elapsed_s, 4),
            "Diff1 Work": 0,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.0,
            "Device Elapsed": d.elapsed_s,
        }
        for d in devs
    ]


def devdetails_section(chain_count: int) -> list[dict[str, Any]]:
    """DEVDETAILS[]: one entry per hashboard, as bmminer lists its SoC chains."""
    return [
        {
            "DEVDETAILS": i,
            "Name": "BTM_SOC",
            "ID": i,
            "Driver": "bitmain_soc",
            "Kernel": "",
            "Model": "",
            "Device Path": "",
        }
        for i in range(chain_count)
    ]


def config_section(asc_count: int, pool_count: int) -> list[dict[str, Any]]:
    """CONFIG[0]: a stock Antminer's settings (failover strategy, its fixed intervals)."""
    return [
        {
            "ASC Count": asc_count,
            "PGA Count": 0,
            "Pool Count": pool_count,
            "Strategy": "Failover",
            "Log Interval": 5,
            "Device Code": "",
            "OS": "Linux",
            "Failover-Only": False,
            "ScanTime": 60,
            "Queue": 1,
            "Expiry": 120,
        }
    ]

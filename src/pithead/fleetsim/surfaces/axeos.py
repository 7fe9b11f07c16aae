"""A Bitaxe's AxeOS HTTP API (port 80, no auth), simulated: snapshots → AxeOS payloads.

`/`, `GET /api/system/info`, `GET /api/system/asic`, `GET /api/system/statistics`, `PATCH /api/system`
(pool, fallback pool, fan, hostname, frequency and core voltage settings; pool and frequency/voltage
changes are stored and apply at the next restart, as AxeOS keeps them in NVS) and `POST /api/system/restart`, shaped by the farm's codec
`pithead.farm.protocol.axeos`. Nothing listens on the cgminer API port of a Bitaxe.

Not here: sockets and HTTP framing (`server`, `http`), device behaviour (`device`).
"""

from __future__ import annotations

import orjson

from pithead.farm.protocol import axeos
from pithead.farm.protocol.errors import AxeOSPayloadError
from pithead.fleetsim.device import PoolConf, SimDevice, Snapshot, op_for_freq_volt
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.surfaces.common import HTML_CT, JSON_CT, WebReply, best_share, json_reply

AXEOS_VERSION = "v2.6.5"
# AxeOS keeps host and port apart; a pool URL without a port gets Stratum's customary one.
DEFAULT_STRATUM_PORT = 3333


def _split_url(url: str) -> tuple[str, int]:
    """`stratum+tcp://host:3333` → (`host`, 3333); AxeOS keeps host and port apart."""
    rest = url.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return rest, DEFAULT_STRATUM_PORT


def _join_url(host: str, port: int) -> str:
    if "://" in host:
        h, p = _split_url(host)
        return f"stratum+tcp://{h}:{port or p}"
    return f"stratum+tcp://{host}:{port}"


def axeos_info(fleet: Fleet, dev: SimDevice, snap: Snapshot) -> axeos.SystemInfo:
    spec = dev.spec
    pools = dev.configured_pools(fleet.ctx)
    main = pools[0] if pools else PoolConf("", "")
    fb = pools[1] if len(pools) > 1 else PoolConf("", "")
    host, port = _split_url(main.url) if main.url else ("", DEFAULT_STRATUM_PORT)
    fhost, fport = _split_url(fb.url) if fb.url else ("", DEFAULT_STRATUM_PORT)
    power = snap.power_w
    input_mv = 5100.0 - power * 3.0  # the 5 V rail sags a little under load
    best = best_share(dev, snap)
    return axeos.SystemInfo(
        asic_model=spec.type_string,
        hostname=dev.hostname,
        mac_addr=dev.mac(),
        hash_rate_ghs=snap.rate_5s_ghs,
        expected_hashrate_ghs=spec.small_cores * snap.freq_mhz / 1000.0,
        power_w=power,
        voltage_mv=input_mv,
        current_ma=power / (input_mv / 1000.0) * 1000.0 if input_mv else 0.0,
        temp_c=snap.chip_temp_c,
        vr_temp_c=snap.chip_temp_c - 6.0 if snap.online else 0.0,
        fan_rpm=snap.fans_rpm[0] if snap.fans_rpm else 0,
        fan_speed_pct=snap.fan_pwm,
        autofanspeed=0 if dev.fan_manual_pwm >= 0 else 1,
        temptarget=60,
        frequency_mhz=snap.freq_mhz,
        core_voltage_mv=snap.op.voltage_mv if snap.op else spec.voltage_mv,
        core_voltage_actual_mv=(snap.op.voltage_mv if snap.op else spec.voltage_mv) - 6,
        small_core_count=spec.small_cores,
        asic_count=spec.chips_per_board,
        uptime_s=snap.elapsed_s,
        shares_accepted=snap.accepted,
        shares_rejected=snap.rejected,
        best_diff=axeos.format_diff(best),
        best_session_diff=axeos.format_diff(best / 3),
        stratum_url=host,
        stratum_port=port,
        stratum_user=main.user,
        fallback_stratum_url=fhost,
        fallback_stratum_port=fport,
        fallback_stratum_user=fb.user,
        pool_difficulty=snap.pool_diff,
        version=AXEOS_VERSION,
        axeos_version=AXEOS_VERSION,
        overheat_mode=1 if "P:1" in snap.errors else 0,
    )


RESTART_TEXT = b"System will restart shortly."


def web(fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float) -> WebReply:
    """One request to a Bitaxe's AxeOS HTTP API → (status, body, content type, headers)."""
    ctx = fleet.ctx
    if path in ("/", "/index.html"):
        return 200, axeos.ROOT_HTML, HTML_CT, ()
    if path == axeos.INFO_PATH and method == "GET":
        return json_reply(axeos_info(fleet, dev, dev.snapshot(ctx, tf)).to_json())
    if path == axeos.ASIC_PATH and method == "GET":
        return json_reply(axeos.asic_info_for(dev.spec.type_string, dev.spec.chips_per_board).to_json())
    if path == "/api/system/statistics" and method == "GET":
        s = dev.snapshot(ctx, tf)
        return json_reply(
            {
                "currentTimestamp": int(tf * 1000),
                "labels": ["hashrate", "asicTemp", "power", "timestamp"],
                "statistics": [
                    [round(s.rate_5s_ghs, 2), round(s.chip_temp_c, 1), round(s.power_w, 2), int(tf * 1000)]
                ],
            }
        )
    if path == axeos.RESTART_PATH:
        if method != "POST":
            return 405, b"", HTML_CT, ()
        fleet.restart(dev.ip, tf)
        return 200, RESTART_TEXT, "text/plain", ()
    if path == axeos.SYSTEM_PATH:
        if method != "PATCH":
            return 405, b"", HTML_CT, ()
        try:
            patch = axeos.parse_settings_patch(orjson.loads(body or b"null"))
        except (orjson.JSONDecodeError, AxeOSPayloadError) as exc:
            return 400, str(exc).encode(), "text/plain", ()
        if (
            patch.changes_pool
            or patch.fallbackStratumURL is not None
            or patch.fallbackStratumUser is not None
        ):
            cur = list(dev.configured_pools(ctx)) or [PoolConf("", "")]
            main = cur[0]
            mhost, mport = _split_url(main.url) if main.url else ("", DEFAULT_STRATUM_PORT)
            new_main = PoolConf(
                _join_url(
                    patch.stratumURL if patch.stratumURL is not None else mhost,
                    patch.stratumPort if patch.stratumPort is not None else mport,
                ),
                patch.stratumUser if patch.stratumUser is not None else main.user,
                patch.stratumPassword if patch.stratumPassword is not None else main.password,
            )
            rest = cur[1:]
            if patch.fallbackStratumURL is not None or patch.fallbackStratumUser is not None:
                fb = rest[0] if rest else PoolConf("", "")
                fhost, fport = _split_url(fb.url) if fb.url else ("", DEFAULT_STRATUM_PORT)
                rest = [
                    PoolConf(
                        _join_url(
                            patch.fallbackStratumURL if patch.fallbackStratumURL is not None else fhost,
                            patch.fallbackStratumPort if patch.fallbackStratumPort is not None else fport,
                        ),
                        patch.fallbackStratumUser if patch.fallbackStratumUser is not None else fb.user,
                        patch.fallbackStratumPassword
                        if patch.fallbackStratumPassword is not None
                        else fb.password,
                    )
                ]
            # AxeOS stores settings in NVS and applies pool changes at the next restart
            fleet.set_pools(dev.ip, (new_main, *rest), reboot=False, t=tf)
        if patch.autofanspeed is not None or patch.fanspeed is not None:
            auto = (
                patch.autofanspeed if patch.autofanspeed is not None else (1 if dev.fan_manual_pwm < 0 else 0)
            )
            manual = (
                patch.fanspeed
                if patch.fanspeed is not None
                else (dev.fan_manual_pwm if dev.fan_manual_pwm >= 0 else 100)
            )
            fleet.set_fan(dev.ip, -1 if auto else manual, tf)
        if patch.hostname is not None:
            fleet.set_hostname(dev.ip, patch.hostname, tf)
        if patch.frequency is not None or patch.coreVoltage is not None:
            # stored in NVS; the chip runs them from the next restart on, as AxeOS does
            op_now = dev.op_pending or dev.op(tf)
            f = patch.frequency if patch.frequency is not None else op_now.freq_mhz
            mv = patch.coreVoltage if patch.coreVoltage is not None else op_now.voltage_mv
            op = op_for_freq_volt(dev.spec, f, mv, f"{f}MHz/{mv}mV")
            fleet.set_power(dev.ip, op, 0.0, at_boot=True, t=tf)
        return 200, b"", JSON_CT, ()
    return 404, b"", "text/plain", ()

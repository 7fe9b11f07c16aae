"""A stock Antminer's web interface (the CGI JSON behind HTTP Digest on port 80), simulated.

`get_system_info`, `get_network_info`, `get_miner_conf` / `set_miner_conf` (pools, fan control, the
work mode that puts the unit to sleep), `summary` (the firmware's own status items), `stats` (the
`new_api` STATS body), `pools`, `blink` / `get_blink_status` and `reboot`, shaped by the farm's codec
`pithead.farm.protocol.antminer_web`. The Digest check itself is the server's (`http.DigestAuthority`);
requests arrive here authenticated.

Not here: sockets and HTTP framing (`server`, `http`), device behaviour (`device`).
"""

from __future__ import annotations

import orjson

from pithead.farm.protocol import antminer_web as aw
from pithead.farm.protocol.cgminer import build as cgb
from pithead.farm.protocol.errors import AntminerWebPayloadError
from pithead.fleetsim.device import PoolConf, SimDevice
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.surfaces.antminer_api import COMPILE_TIME, pools_reply, stats_figures
from pithead.fleetsim.surfaces.common import HTML_CT, JSON_CT, WebReply, best_share, json_reply

ANTMINER_HOME = b"<!DOCTYPE html><html><head><title>Antminer</title></head><body>Antminer</body></html>"
NOT_FOUND_HTML = b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


def web(fleet: Fleet, dev: SimDevice, method: str, path: str, body: bytes, tf: float) -> WebReply:
    """An authenticated request to a stock Antminer's web UI → (status, body, content type, headers)."""
    t = int(tf)
    ctx = fleet.ctx
    if path in ("/", "/index.html"):
        return 200, ANTMINER_HOME, HTML_CT, ()
    if not path.startswith(aw.CGI_PREFIX) or not path.endswith(".cgi"):
        # notably /kaonsu/v1/brief: a JSON reply there would make pyasic call this a Marathon miner
        return 404, NOT_FOUND_HTML, HTML_CT, ()
    name = path[len(aw.CGI_PREFIX) : -4]
    snap = dev.snapshot(ctx, tf)
    if name == "get_system_info":
        return json_reply(
            aw.SystemInfoCgi(
                dev.spec.type_string, dev.hostname, dev.mac(), dev.serial(), dev.ip, COMPILE_TIME
            ).to_json()
        )
    if name == "get_network_info":
        return json_reply(aw.network_info(dev.ip, dev.mac(), dev.hostname))
    if name == "get_miner_conf":
        pools = tuple(aw.WebPool(p.url, p.user, p.password) for p in dev.configured_pools(ctx))
        conf = aw.MinerConf(
            pools[: aw.MAX_WEB_POOLS],
            dev.fan_manual_pwm >= 0,
            dev.fan_manual_pwm if dev.fan_manual_pwm >= 0 else 100,
            aw.WORK_MODE_SLEEP if dev.sleeping else aw.WORK_MODE_NORMAL,
        )
        return json_reply(conf.to_json())
    if name == "summary":
        items = [
            aw.StatusItem(
                "rate",
                "R:1" not in snap.errors and (snap.hashing or snap.sleeping),
                "" if snap.hashing or snap.sleeping else "Hashrate is 0",
            ),
            aw.StatusItem("network", True),
            aw.StatusItem("fans", "F:1" not in snap.errors, "Fan lost" if "F:1" in snap.errors else ""),
            aw.StatusItem(
                "temp", "P:1" not in snap.errors, "Temperature protection" if "P:1" in snap.errors else ""
            ),
        ]
        return json_reply(
            aw.summary_cgi(
                t,
                snap.elapsed_s,
                snap.rate_5s_ghs,
                snap.rate_avg_ghs,
                snap.rate_avg_ghs,
                snap.ideal_ghs,
                snap.hw_errors,
                best_share(dev, snap),
                items,
                dev.spec.type_string,
                COMPILE_TIME,
            )
        )
    if name == "stats":
        return json_reply(cgb.stats_new_api_reply(stats_figures(snap, dev), t))
    if name == "pools":
        return json_reply(pools_reply(fleet, dev, snap, t))
    if name == "get_blink_status":
        return json_reply(aw.blink_status(dev.blink))
    if name == "blink":
        try:
            want = orjson.loads(body or b"{}").get("blink", "false")
        except (orjson.JSONDecodeError, AttributeError):
            return 400, b'{"code":"B001"}', JSON_CT, ()
        dev.blink = str(want).lower() == "true"
        return json_reply(aw.blink_result(dev.blink))
    if name == "reboot":
        fleet.restart(dev.ip, tf)
        return json_reply({"code": "R000"})
    if name == "set_miner_conf":
        if method != "POST":
            return 405, b"{}", JSON_CT, ()
        try:
            raw = orjson.loads(body)
            conf = aw.parse_miner_conf(raw)
        except (orjson.JSONDecodeError, AntminerWebPayloadError) as exc:
            return 400, orjson.dumps({"stats": "error", "code": "M001", "msg": str(exc)}), JSON_CT, ()
        if isinstance(raw, dict) and ("bitmain-fan-ctrl" in raw or "bitmain-fan-pwm" in raw):
            fleet.set_fan(dev.ip, conf.fan_pwm if conf.fan_ctrl else -1, tf)
        if isinstance(raw, dict) and ("miner-mode" in raw or "bitmain-work-mode" in raw):
            fleet.sleep(dev.ip, conf.work_mode == aw.WORK_MODE_SLEEP, tf)
        if conf.pools:
            fleet.set_pools(
                dev.ip, tuple(PoolConf(p.url, p.user, p.password) for p in conf.pools), reboot=True, t=tf
            )
        return json_reply(aw.conf_ok())
    return 404, NOT_FOUND_HTML, HTML_CT, ()

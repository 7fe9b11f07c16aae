"""Sans-IO payloads of the stock Antminer web interface (`http://ip/cgi-bin/<name>.cgi`, HTTP Digest).

Stock Bitmain firmware (S19 / S19 XP / S21 "modern" web UI) answers on port 80 under HTTP Digest auth
with realm `antMiner Configuration` (default login root/root). The CGI bodies are JSON:

- `get_system_info.cgi` → `{minertype, hostname, macaddr, serinum, …}` (pyasic reads the model here too)
- `get_miner_conf.cgi` → `{pools:[{url,user,pass}], "bitmain-fan-ctrl", "bitmain-fan-pwm", "bitmain-work-mode", …}`
- `summary.cgi` → `{"STATUS":{…}, "SUMMARY":[{…, "status":[{type,status:"s",code,msg}]}]}`;
  any `status` entry that is not `"s"` is an error the UI shows
- `stats.cgi` → the same body as the RPC `stats` with `new_api` (see `cgminer.build.stats_new_api_reply`)
- `get_blink_status.cgi` → `{"blink": false}`; `blink.cgi` (POST `{"blink":"true"}`) → `{"code":"B000"}`
  when switched on, `{"code":"B100"}` when switched off
- `reboot.cgi`, `set_miner_conf.cgi` (POST, → `{"stats":"success","code":"M000","msg":"OK!"}`),
  `get_network_info.cgi`

What this module is not: the HTTP server and Digest handshake (`pithead.fleetsim.http`) or any device
behaviour. `/kaonsu/v1/brief` deliberately has no payload here: a JSON reply there makes pyasic label the
device a Marathon miner, so a stock Antminer must answer it with a 404.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pithead.farm.protocol.errors import AntminerWebPayloadError

REALM = "antMiner Configuration"
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "root"
CGI_PREFIX = "/cgi-bin/"

# Bitmain's work modes as `bitmain-work-mode` carries them (pyasic: 1 means sleeping).
WORK_MODE_NORMAL = 0
WORK_MODE_SLEEP = 1
WORK_MODE_LOW_POWER = 3

# The blink.cgi result codes stock firmware returns.
BLINK_ON_CODE = "B000"
BLINK_OFF_CODE = "B100"
CONF_OK_CODE = "M000"

# At most three pools fit in the stock web UI's config (pool1..pool3).
MAX_WEB_POOLS = 3


@dataclass(frozen=True, slots=True)
class SystemInfoCgi:
    minertype: str  # "Antminer S19 XP"
    hostname: str
    macaddr: str
    serinum: str
    ipaddress: str
    firmware_version: str = "Thu Nov 24 15:54:04 CST 2022"

    def to_json(self) -> dict[str, Any]:
        return {
            "minertype": self.minertype,
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": self.macaddr,
            "hostname": self.hostname,
            "ipaddress": self.ipaddress,
            "netmask": "255.0.0.0",
            "gateway": "",
            "dnsservers": "",
            "system_mode": "GNU/Linux",
            "system_kernel_version": "Linux 4.6.0-xilinx-gff8137b-dirty #1 SMP PREEMPT",
            "system_filesystem_version": self.firmware_version,
            "firmware_type": "Release",
            "serinum": self.serinum,
            "Algorithm": "SHA256d",
        }


@dataclass(frozen=True, slots=True)
class WebPool:
    url: str
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class MinerConf:
    pools: tuple[WebPool, ...]
    fan_ctrl: bool  # True: manual fan PWM
    fan_pwm: int  # 0..100
    work_mode: int

    def to_json(self) -> dict[str, Any]:
        return {
            "pools": [{"url": p.url, "user": p.user, "pass": p.password} for p in self.pools],
            "api-listen": True,
            "api-network": True,
            "api-groups": "A:stats:pools:devs:summary:version",
            "api-allow": "A:0/0,W:*",
            "bitmain-fan-ctrl": self.fan_ctrl,
            "bitmain-fan-pwm": str(self.fan_pwm),
            "bitmain-use-vil": True,
            "bitmain-freq": "",
            "bitmain-voltage": "",
            "bitmain-ccdelay": "",
            "bitmain-pwth": "",
            "bitmain-work-mode": str(self.work_mode),
            "bitmain-freq-level": "100",
        }


def parse_miner_conf(d: Any) -> MinerConf:
    """Parse a `get_miner_conf.cgi` body or a `set_miner_conf.cgi` POST body.

    Fields absent from a POST keep no meaning here; the caller merges with the current config.
    """
    if not isinstance(d, Mapping):
        raise AntminerWebPayloadError("miner conf is not a JSON object")
    raw_pools = d.get("pools", [])
    if not isinstance(raw_pools, list) or len(raw_pools) > MAX_WEB_POOLS:
        raise AntminerWebPayloadError(f"pools must be a list of at most {MAX_WEB_POOLS}")
    pools = []
    for p in raw_pools:
        if not isinstance(p, Mapping):
            raise AntminerWebPayloadError("pool entry is not an object")
        url, user, pwd = p.get("url", ""), p.get("user", ""), p.get("pass", "")
        if not all(isinstance(x, str) for x in (url, user, pwd)):
            raise AntminerWebPayloadError("pool url/user/pass must be strings")
        if url:
            pools.append(WebPool(url, user, pwd))
    fan_ctrl = d.get("bitmain-fan-ctrl", False)
    try:
        fan_pwm = int(d.get("bitmain-fan-pwm", 100) or 0)
        # reads say "bitmain-work-mode"; writes from newer tools (pyasic) say "miner-mode"
        work_mode = int(d.get("miner-mode", d.get("bitmain-work-mode", WORK_MODE_NORMAL)) or 0)
    except (TypeError, ValueError) as exc:
        raise AntminerWebPayloadError("fan pwm / work mode must be integers") from exc
    if not 0 <= fan_pwm <= 100:
        raise AntminerWebPayloadError("bitmain-fan-pwm must be within 0..100")
    return MinerConf(tuple(pools), bool(fan_ctrl), fan_pwm, work_mode)


@dataclass(frozen=True, slots=True)
class StatusItem:
    """One entry of `summary.cgi`'s `status` list: type is rate / network / fans / temp."""

    type: str
    ok: bool
    msg: str = ""
    code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "status": "s" if self.ok else "e", "code": self.code, "msg": self.msg}


def summary_cgi(
    when: int,
    elapsed: int,
    rate_5s_ghs: float,
    rate_30m_ghs: float,
    rate_avg_ghs: float,
    rate_ideal_ghs: float,
    hw_all: int,
    best_share: int,
    status: Sequence[StatusItem],
    miner_type: str,
    compile_time: str,
) -> dict[str, Any]:
    return {
        "STATUS": {"STATUS": "S", "when": when, "timestamp": when, "api_version": "1.0.0", "Msg": "summary"},
        "INFO": {"miner_version": "uart_trans.1.3", "CompileTime": compile_time, "type": miner_type},
        "SUMMARY": [
            {
                "elapsed": elapsed,
                "rate_5s": round(rate_5s_ghs, 2),
                "rate_30m": round(rate_30m_ghs, 2),
                "rate_avg": round(rate_avg_ghs, 2),
                "rate_ideal": round(rate_ideal_ghs, 2),
                "rate_unit": "GH/s",
                "hw_all": hw_all,
                "bestshare": best_share,
                "status": [s.to_json() for s in status],
            }
        ],
    }


def parse_summary_errors(d: Any) -> tuple[StatusItem, ...]:
    """The failing `status` entries of a `summary.cgi` body (empty when all are "s")."""
    try:
        items = d["SUMMARY"][0]["status"]
    except (TypeError, LookupError) as exc:
        raise AntminerWebPayloadError("summary.cgi body has no SUMMARY[0].status") from exc
    out = []
    for it in items:
        if not isinstance(it, Mapping):
            raise AntminerWebPayloadError("status entry is not an object")
        if it.get("status") != "s":
            out.append(
                StatusItem(
                    str(it.get("type", "")), False, str(it.get("msg", "")), int(it.get("code", 0) or 0)
                )
            )
    return tuple(out)


def blink_status(on: bool) -> dict[str, Any]:
    return {"blink": on}


def blink_result(on: bool) -> dict[str, Any]:
    return {"code": BLINK_ON_CODE if on else BLINK_OFF_CODE}


def conf_ok() -> dict[str, Any]:
    return {"stats": "success", "code": CONF_OK_CODE, "msg": "OK!"}


def network_info(ipaddress: str, macaddr: str, hostname: str) -> dict[str, Any]:
    return {
        "nettype": "DHCP",
        "netdevice": "eth0",
        "macaddr": macaddr,
        "ipaddress": ipaddress,
        "netmask": "255.0.0.0",
        "conf_nettype": "DHCP",
        "conf_hostname": hostname,
        "conf_ipaddress": "",
        "conf_netmask": "",
        "conf_gateway": "",
        "conf_dnsservers": "",
    }

"""One typed configuration object, loaded from TOML; nothing here is global.

Each section is a frozen dataclass with safe defaults (bind 127.0.0.1, regtest). `load(path)` reads a
TOML file whose tables are named like the sections (`[node]`, `[pool]`, ...); unknown keys are an error
so that a typo never silently falls back to a default. Areas add fields to their own section only.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file that cannot be used, with the key that is wrong."""


@dataclass(frozen=True)
class NodeConfig:
    chain: str = "regtest"  # regtest | demo
    rpc_bind: str = "127.0.0.1"
    rpc_port: int = 18443
    rpc_user: str | None = None
    rpc_password: str | None = None
    zmq_pub_hashblock: str | None = None  # e.g. tcp://127.0.0.1:28332
    zmq_pub_rawblock: str | None = None
    tx_rate: float = 0.0  # generated transactions per second
    demo_block_interval: float = 30.0  # seconds, for chain = "demo"


@dataclass(frozen=True)
class UpstreamNode:
    """A Bitcoin node the pool takes work from (Bitcoin Core or pithead's)."""

    url: str = "http://127.0.0.1:18443"
    cookie_file: str | None = None
    rpc_user: str | None = None
    rpc_password: str | None = None
    zmq_hashblock: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class PoolConfig:
    bind: str = "127.0.0.1"
    port: int = 3333
    mode: str = "solo"  # solo | pool
    network: str = "regtest"
    pool_address: str | None = None
    coinbase_tag: str = "/pithead/"
    nodes: tuple[UpstreamNode, ...] = (UpstreamNode(),)
    # low enough for the smallest miners' own suggestions (NerdMiner asks 0.00015, ~50 kH/s → a share per
    # ~13 s); vardiff lifts everything larger within seconds
    min_difficulty: float = 0.0001
    max_difficulty: float = 1e12
    start_difficulty: float = 1.0
    share_interval: float = 10.0  # vardiff target, seconds per share per connection
    refresh_interval: float = 30.0  # new-transaction template refresh
    user_rule: str = "address"  # pool mode: "address" (username must be a payout address) | "any"
    version_mask: str = "1fffe000"  # BIP310 bits miners may roll (BIP320 general-purpose bits)
    extranonce2_size: int = 4  # <= 8: cgminer-derived firmware fills extranonce2 from a uint64
    max_connections_per_ip: int = 1024  # a farm behind one NAT; more from one IP is likely a flood
    handshake_timeout: float = 30.0  # seconds to subscribe + authorize
    idle_timeout: float = 900.0  # seconds without a message before a miner is dropped
    ban_seconds: float = 600.0  # how long flooders of junk/invalid shares are refused
    workers: int = 1  # pool processes sharing the port (SO_REUSEPORT); 0 = one per CPU core
    # "I/N": this is front-end I of N publishing to one share bus; each gets its own extranonce1 range, so
    # no miner can get the same coinbase (and have one share credited twice) on two front-ends
    front_end: str = "0/1"


@dataclass(frozen=True)
class LedgerConfig:
    scheme: str = "pplns"  # solo | prop | pplns | pps
    pool_fee_percent: float = 1.0
    pplns_n: float = 2.0  # window = N x network difficulty in share difficulty
    payout_threshold_sat: int = 100_000
    database: str = "sqlite:///ledger.sqlite3"  # or postgresql://user@host/db?schema=pithead
    share_bus: str = "memory"  # or redis://127.0.0.1:6379/0?stream=pithead:shares (many pool front-ends)
    payout_interval: float = 600.0  # seconds between payout runs (each is one on-chain transaction)
    maturity_interval: float = 30.0  # seconds between block maturity/orphan checks against the node
    # Payouts send real money: "off" keeps shares, blocks and balances and sends nothing; "wallet" pays the
    # balances over the threshold from the first [pool] node's wallet. `pithead serve` honours it (off by
    # default); `pithead up` always pays on its demo chain, whose coins are worth nothing.
    payouts: str = "off"  # off | wallet


@dataclass(frozen=True)
class WebConfig:
    bind: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class FarmConfig:
    sim_devices: int = 0
    poll_interval: float = 60.0
    max_concurrent_polls: int = 500
    poll_deadline: float = 5.0  # per-device deadline, seconds (a frozen miner costs one slot this long)
    scan: tuple[str, ...] = ()  # CIDRs `pithead farm run` discovers devices in
    rescan_interval: float = 900.0  # discovery runs apart from polling
    labels: str | None = None  # CSV cidr,site,rack
    site: str = ""  # site label for devices no rule matches
    webhook_url: str | None = None  # alert changes are POSTed here
    price_schedule: str | None = None  # CSV start,price_per_mwh (or price_per_kwh)
    strike_price: float | None = None  # per MWh; with price_schedule, enables curtailment
    # Bearer token for the farm's action endpoints (POST /farm/api/...); PITHEAD_FARM_TOKEN overrides
    # both. Prefer api_token_file (a file holding only the token) to keep the secret out of the config.
    api_token: str | None = field(default=None, repr=False)
    api_token_file: str | None = None
    # Collector -> central forwarding (`pithead farm collect`; the token is api_token_file / api_token)
    forward_url: str | None = None  # the central's URL, e.g. "http://central:8081" (--forward overrides)
    spool: str | None = None  # spool file (default <db>.spool; ":memory:" keeps it in memory only)
    spool_max_items: int = 1_500_000  # readings kept while the central is unreachable; oldest dropped beyond
    central: bool = False  # `pithead farm run`: ingest from collectors, poll nothing (as --central)


@dataclass(frozen=True)
class Config:
    data_dir: str = "pithead-data"
    node: NodeConfig = field(default_factory=NodeConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    web: WebConfig = field(default_factory=WebConfig)
    farm: FarmConfig = field(default_factory=FarmConfig)


# TOML types a scalar setting accepts, by the field's annotation (fields are annotated as strings: this
# module uses `from __future__ import annotations`). An int is fine where a float is wanted; a bool is
# never a number here. Other annotations (tuples, sections) are not checked by this table.
_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                         "None": (type(None),)}


def _check_type(annotation: object, value: Any, name: str) -> None:
    if not isinstance(annotation, str):
        return
    parts = [p.strip() for p in annotation.split("|")]
    if not all(p in _SCALARS for p in parts):
        return
    allowed = tuple(t for p in parts for t in _SCALARS[p])
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, allowed)
    if not ok:
        raise ConfigError(f"setting {name} must be {' or '.join(parts)}, not {type(value).__name__} {value!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown setting {where}{key!r}")
        f = names[key]
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            value = _build(type(sub), value, f"{where}{key}.")
        elif key == "nodes" and isinstance(value, list):
            value = tuple(_build(UpstreamNode, v, f"{where}nodes[].") for v in value)
        else:
            _check_type(f.type, value, f"{where}{key}")
        kwargs[key] = value
    return cls(**kwargs)


def load(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read a TOML config (or the defaults) and apply top-level overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    cfg: Config = _build(Config, data, "")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg

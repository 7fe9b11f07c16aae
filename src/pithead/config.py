"""One typed configuration object, loaded from TOML and checked in one place; nothing here is global.

What it is: each section (`[node]`, `[pool]`, `[ledger]`, `[web]`, `[farm]`, `[proxy]`, `[notify]`) is a frozen dataclass with
safe defaults (bind 127.0.0.1, regtest); choices are `Literal` types, so a mode, scheme or payout switch
can only hold a value the code handles. `load(path, overrides=...)` reads a TOML file, applies command-line
overrides (given by the same key names, so `--rpc-port` and `rpc_port` are one setting), checks every
value's type against its annotation, and runs `validate`: ranges and settings that depend on each other.
Every problem is reported at once, as `ConfigError`, each naming its key (`pool.mode`); an unknown key is
answered with the nearest known one ("did you mean ...?"). `example()` is a complete, commented config
that `pithead serve --config` accepts as it is (`pithead config example` prints it).

What it is not: a leaf that knows other parts. It imports nothing of pithead, so what needs another part
to check (a payout address against its network, a database URL's reachability) is checked by that part,
once, when it is built from this config.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

# --- the choices -------------------------------------------------------------------------------------

NodeChain = Literal["regtest", "demo", "signet"]
"""Chains the embedded node runs: Core's regtest, pithead's `demo` (regtest rules, timed blocks), or a
custom signet with the OP_TRUE challenge (`signet_challenge = "51"`: signet's rules, real signet difficulty)."""
NetworkName = Literal["main", "test", "testnet4", "signet", "regtest"]
"""Bitcoin Core's chain names (`getblockchaininfo`'s `chain`), as the pool must match its node."""
PoolMode = Literal["solo", "pool"]
"""solo: each block's coinbase pays the worker's own address; pool: the pool address, shares credited."""
UserRule = Literal["address", "any"]
"""pool mode: "address" (the username must be a payout address of the network) or "any" name."""
SchemeName = Literal["solo", "prop", "pplns", "pps"]
"""The ledger's reward schemes (`pithead.ledger.schemes`)."""
PayoutMode = Literal["off", "wallet"]
"""off: balances are kept and nothing is sent; wallet: balances are paid from the first node's wallet."""
CurtailMode = Literal["onoff", "power"]
"""`[farm] curtailment`: "onoff" sleeps whole machines above the strike price; "power" keeps the site under a
power budget (kW) by lowering power targets first, sleeping machines only past the bottom of their range."""
NoticeSeverityName = Literal["info", "warning", "critical"]
"""`[[notify.routes]] min_severity`: the least severe notice a route passes on (`pithead.events`' severities)."""


class ConfigError(ValueError):
    """A config that cannot be used; the message names every wrong key and why."""


# --- the sections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeConfig:
    """`[node]`: the embedded node (`pithead node`, and the node `pithead up` starts)."""

    chain: NodeChain = "regtest"
    rpc_bind: str = "127.0.0.1"
    rpc_port: int = 18443  # Core's regtest port; 0 = any free port
    rpc_user: str | None = None  # None: a cookie file in <datadir>/<chain>/.cookie, as Core does
    rpc_password: str | None = field(default=None, repr=False)
    zmq_pub_hashblock: str | None = None  # e.g. tcp://127.0.0.1:28332, as Core's -zmqpubhashblock
    zmq_pub_rawblock: str | None = None
    zmq_pub_hashtx: str | None = None
    zmq_pub_rawtx: str | None = None
    tx_rate: float = 0.0  # generated transactions per second (0: none)
    demo_block_interval: float = 30.0  # seconds between blocks on the demo chain
    # chain = "signet": the challenge, as Core's -signetchallenge (hex). The embedded node checks no signatures,
    # so it runs only "51" (OP_TRUE), which a pool's blocks meet with no signature; anything else is refused.
    signet_challenge: str = "51"


@dataclass(frozen=True)
class UpstreamNode:
    """`[[pool.nodes]]`: a Bitcoin node the pool takes work from (Bitcoin Core or pithead's)."""

    url: str = "http://127.0.0.1:18443"
    cookie_file: str | None = None
    rpc_user: str | None = None
    rpc_password: str | None = field(default=None, repr=False)
    zmq_hashblock: str | None = None
    priority: int = 0  # among nodes on the same best block the lowest value leads (ties: the order given)


@dataclass(frozen=True)
class PoolConfig:
    """`[pool]`: the Stratum pool (`pithead pool`, and the pool of `up` and `serve`)."""

    bind: str = "127.0.0.1"
    port: int = 3333
    mode: PoolMode = "solo"
    network: NetworkName = "regtest"
    pool_address: str | None = None  # pool mode: where block rewards go (an address of the node's wallet)
    coinbase_tag: str = "/pithead/"
    nodes: tuple[UpstreamNode, ...] = (UpstreamNode(),)
    # low enough for the smallest miners' own suggestions (NerdMiner asks 0.00015, ~50 kH/s → a share per
    # ~13 s); vardiff lifts everything larger within seconds
    min_difficulty: float = 0.0001
    max_difficulty: float = 1e12
    start_difficulty: float = 1.0
    share_interval: float = 10.0  # vardiff target, seconds per share per connection
    refresh_interval: float = 30.0  # new-transaction template refresh
    user_rule: UserRule = "address"
    version_mask: str = "1fffe000"  # BIP310 bits miners may roll (BIP320 general-purpose bits), 8 hex digits
    extranonce2_size: int = 4  # 2..8: cgminer-derived firmware fills extranonce2 from a uint64
    max_connections_per_ip: int = 1024  # a farm behind one NAT; more from one IP is likely a flood
    handshake_timeout: float = 30.0  # seconds to subscribe + authorize
    idle_timeout: float = 900.0  # seconds without a message before a miner is dropped
    ban_seconds: float = 600.0  # how long flooders of junk/invalid shares are refused
    ban_ipv6_prefix: int = 64  # an IPv6 ban covers this prefix (one host usually holds a whole /64)
    workers: int = 1  # pool processes sharing the port (SO_REUSEPORT); 0 = one per CPU core
    # "I/N": this is front-end I of N publishing to one share bus; each gets its own extranonce1 range, so
    # no miner can get the same coinbase (and have one share credited twice) on two front-ends
    front_end: str = "0/1"
    # stratum+ssl: the PEM certificate chain and its key (both, or neither for plain stratum+tcp)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    # Stratum V2 beside V1, on its own port (None: off; 0: any free port). The pool proves itself to miners
    # with a certificate signed per connection by its authority key (`pithead keys new --out FILE`); miners
    # pin the public key (`pithead keys show FILE`): stratum2+tcp://HOST:SV2_PORT/KEY
    sv2_port: int | None = None
    sv2_authority_secret_key_file: str | None = None
    sv2_cert_validity: int = 3600  # seconds each connection's certificate is valid (SRI's cert_validity_sec)

    def front_end_shard(self) -> tuple[int, int]:
        """(I, N) of `front_end` (checked by `validate`)."""
        first, count = (int(x) for x in self.front_end.strip().split("/"))
        return first, count

    def version_mask_bits(self) -> int:
        """`version_mask` as an integer (checked by `validate`)."""
        return int(self.version_mask, 16)


@dataclass(frozen=True)
class LedgerConfig:
    """`[ledger]`: shares, blocks, balances and payouts."""

    scheme: SchemeName = "pplns"
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
    payouts: PayoutMode = "off"
    # Block withholding: the chance an honest worker is ever flagged (pithead.ledger.withholding). A flag is
    # shown and raised as a notice; payouts are held only when an operator asks (`pithead ledger hold`).
    withholding_level: float = 0.001


# The range `withholding_level` accepts (pithead.ledger.withholding's MIN_LEVEL and MAX_LEVEL, which say why;
# this module imports no other part, and a test keeps the two equal).
WITHHOLDING_LEVEL_RANGE = (1e-9, 0.1)


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: the dashboard, REST API and metrics."""

    bind: str = "127.0.0.1"
    port: int = 8080
    # The pool's id in the Miningcore-compatible API (/api/pools/{id}); the Miningcore WebUI puts it in its
    # links in lower case, so lower-case letters, digits, "-" and "_".
    miningcore_pool_id: str = "pithead"


@dataclass(frozen=True)
class PoolPreset:
    """`[[farm.pool_presets]]`: a named pool list the farm's pool action puts on a device
    (`pithead farm switch-pool DEVICE --preset NAME`, `POST /farm/api/devices/{id}/pools {"preset": NAME}`)."""

    name: str = ""  # e.g. "proxy": the farm proxy's stratum URL, so machines can be pointed at it
    urls: tuple[str, ...] = ()  # 1-3 pools in priority order: stratum+tcp://HOST:PORT (or stratum+ssl)
    # the worker each device mines as; "{worker}" is the device's own current worker name (a proxy then
    # knows each machine by it, and the farm's "no shares" alert still finds it)
    user: str = "{worker}"
    password: str = field(default="x", repr=False)


@dataclass(frozen=True)
class FarmConfig:
    """`[farm]`: the fleet manager (`pithead farm run|collect`, and the farm of `up` and `serve`)."""

    sim_devices: int = 0  # `pithead up`'s simulated fleet; 0 there means its demo default
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
    # How the service curtails: "onoff" (sleep whole machines above strike_price) or "power" (keep the site
    # under a budget by lowering power targets; a budget below, and/or strike_budget_kw above the strike)
    curtailment: CurtailMode = "onoff"
    power_budget_kw: float | None = None  # "power": the site's standing budget (a grid connection, a contract)
    strike_budget_kw: float | None = None  # "power": the budget while the price is above strike_price
    power_step_up_kw: float | None = None  # "power": coming back up, at most this much per poll (None: at once)
    # "power": how long an operator's site request (POST /farm/api/power/site) holds against the service's
    # own budget unless released sooner (DELETE) or the request names its own hold_s
    power_hold_s: float = 3600.0
    # Bearer token for the farm's action endpoints (POST /farm/api/...); PITHEAD_FARM_TOKEN overrides
    # both. Prefer api_token_file (a file holding only the token) to keep the secret out of the config.
    api_token: str | None = field(default=None, repr=False)
    api_token_file: str | None = None
    # Collector -> central forwarding (`pithead farm collect`; the token is api_token_file / api_token)
    forward_url: str | None = None  # the central's URL, e.g. "http://central:8081" (--forward-url overrides)
    spool: str | None = None  # spool file (default <db>.spool; ":memory:" keeps it in memory only)
    spool_max_items: int = 1_500_000  # readings kept while the central is unreachable; oldest dropped beyond
    central: bool = False  # `pithead farm run`: ingest from collectors, poll nothing (as --central)
    # The farm's database: SQLite in the data directory by default; PostgreSQL for a farm at scale
    # (several ingest workers and evaluators on one database), e.g. "postgresql://farm@db/pithead?schema=farm"
    database: str = "sqlite:///farm.sqlite3"
    # The page, API and metrics (and an unpartitioned central's alerts) may see the fleet up to this many
    # seconds old instead of re-reading every machine's status after each commit of another process (a
    # PostgreSQL central with several workers; a partitioned evaluation always reads its racks afresh)
    status_cache: float = 0.0
    # Alerts a big site can read: this many machines of one rack (or every rack of a site) in the same
    # trouble at once are one alert with the count, not one each (0: every machine its own alert)
    alert_group_min: int = 5
    # Flapping: a condition must hold this long before its alert opens, and be gone this long before it
    # resolves (OFFLINE already waits offline_after itself)
    alert_open_after: float = 120.0
    alert_clear_after: float = 300.0
    # Prometheus: per-machine series too (one series per machine and metric: cardinality!); off: by site,
    # rack, model and state only
    metrics_per_machine: bool = False
    # The machines mine through a farm proxy in another process: its API (`[proxy] api_bind`/`api_port`,
    # e.g. "http://10.0.0.2:8090"); "hashing but no shares" is judged on what its pools credited each machine
    proxy_url: str | None = None
    proxy_read_interval: float = 15.0  # seconds between reads of the proxy's figures
    pool_presets: tuple[PoolPreset, ...] = ()  # named pool lists for the pool action ([[farm.pool_presets]])


@dataclass(frozen=True)
class UpstreamPool:
    """`[[proxy.upstreams]]`: a pool the farm proxy mines to."""

    url: str = "stratum+tcp://127.0.0.1:3333"  # or stratum+ssl://HOST:PORT, or stratum2+tcp://HOST:PORT/AUTHORITY_KEY
    user: str = ""  # the account (and worker) every machine's shares are credited to
    password: str = field(default="x", repr=False)
    priority: int = 0  # the lowest value leads; ties keep the order given
    name: str = ""  # for status, metrics and `pithead proxy switch` (default: HOST:PORT)
    tls_ca_file: str | None = None  # stratum+ssl with a CA of the pool's own (default: the system's CAs)

    def label(self) -> str:
        """`name`, or HOST:PORT of the url."""
        if self.name:
            return self.name
        parts = urlsplit(self.url if "://" in self.url else "stratum+tcp://" + self.url)
        return f"{parts.hostname}:{parts.port}"


@dataclass(frozen=True)
class ProxyConfig:
    """`[proxy]`: the farm proxy (`pithead proxy run`): the farm's machines mine to it, it mines to
    `[[proxy.upstreams]]` with failover."""

    bind: str = "127.0.0.1"
    port: int = 3334
    tls_cert_file: str | None = None  # stratum+ssl for the machines: the PEM chain and its key (or neither)
    tls_key_file: str | None = None
    # Stratum V2 for the machines too: its own port, the proxy's authority key (`pithead keys new --out FILE`,
    # as the pool's); machines pin the key printed at start (stratum2+tcp://HOST:PORT/KEY)
    sv2_port: int | None = None
    sv2_authority_secret_key_file: str | None = None
    sv2_cert_validity: int = 3600  # seconds each connection's certificate is valid
    api_bind: str = "127.0.0.1"  # the operator API (`pithead proxy status|switch|drain`) and /metrics
    api_port: int = 8090
    api_token_file: str | None = None  # a file holding a token the API's actions then require (Bearer)
    farm_url: str | None = None  # the farm's web (`pithead farm run`): its inventory labels the machines by rack
    metrics_per_machine: bool = False  # one Prometheus series per machine (per rack always)
    upstreams: tuple[UpstreamPool, ...] = ()
    connections_per_upstream: int = 2  # connections to each pool (the machines are spread over them)
    tag_bytes: int = 2  # extranonce2 bytes the proxy keeps per machine: 2^(8*tag_bytes) machines at once
    extranonce2_size: int = 2  # what each machine rolls (2..8); each pool must give tag_bytes + this
    start_difficulty: float = 1.0  # a new machine's share difficulty (never above its pool's)
    min_difficulty: float = 0.0001
    share_interval: float = 10.0  # vardiff target, seconds per share per machine
    version_mask: str = "1fffe000"  # BIP310 bits machines may roll (also within what each pool grants)
    keepalive_interval: float = 30.0  # a quiet pool's job is re-sent (new ntime) this often
    failback_after: float = 60.0  # seconds a better pool must stay healthy before the machines go back
    stale_after: float = 180.0  # a pool with no new job for this long is unhealthy
    answer_timeout: float = 10.0  # a pool that leaves a share unanswered this long is unhealthy
    upstream_timeout: float = 10.0  # seconds for a pool to connect and complete its handshake
    max_connections_per_ip: int = 1024  # a farm behind one NAT is one IP
    handshake_timeout: float = 30.0  # seconds for a machine to subscribe and authorize
    idle_timeout: float = 900.0  # seconds without a message before a machine is dropped
    ban_seconds: float = 600.0  # how long flooders of junk are refused
    ban_ipv6_prefix: int = 64  # an IPv6 ban covers this prefix (one host usually holds a whole /64)

    def version_mask_bits(self) -> int:
        """`version_mask` as an integer (checked by `validate`)."""
        return int(self.version_mask, 16)


@dataclass(frozen=True)
class NotifyRoute:
    """`[[notify.routes]]`: which notices go to which apprise URLs (`pithead.notify`)."""

    urls: tuple[str, ...] = ()  # apprise URLs: tgram://, discord://, mailto://, json://, ntfy://, ...
    kinds: tuple[str, ...] = ("*",)  # notice kinds or patterns: "block.found", "payout.*", "*"
    min_severity: NoticeSeverityName = "info"


@dataclass(frozen=True)
class NotifyConfig:
    """`[notify]`: notices to an operator's phone through apprise (`pithead serve` and `up`)."""

    routes: tuple[NotifyRoute, ...] = ()  # none: nothing is sent, the notifier does not start
    # A worker with shares in the last this many minutes that then goes silent this long is "quiet"
    # (one notice per address); 0: not watched.
    worker_quiet_minutes: float = 30.0
    dedup_window: float = 600.0  # seconds: the same notice (kind and subject) again within it is folded


@dataclass(frozen=True)
class Config:
    data_dir: str = "pithead-data"
    node: NodeConfig = field(default_factory=NodeConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    web: WebConfig = field(default_factory=WebConfig)
    farm: FarmConfig = field(default_factory=FarmConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)


SECTIONS: dict[str, type] = {"node": NodeConfig, "pool": PoolConfig, "ledger": LedgerConfig, "web": WebConfig,
                             "farm": FarmConfig, "proxy": ProxyConfig, "notify": NotifyConfig}

# --- reading: types ----------------------------------------------------------------------------------

_MAX_PORT = 65535
# A Miningcore pool id: lower case (the WebUI lower-cases ids in its links) and nothing its URL hash
# splits on ("#", "/", "?", "=").
_POOL_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_FRONT_ENDS = 256
"""Front-ends on one share bus: each takes a slice of the 32-bit extranonce1 space (more would leave each
too few values for its workers and miners)."""
MAX_PROXY_CONNECTIONS_PER_UPSTREAM = 64
"""Connections the proxy opens to one pool: a few spread the machines and survive one dropping; pools
limit connections per IP, so dozens would only get the farm refused."""
MAX_PROXY_TAG_BYTES = 4
"""A 4-byte tag already tells 2^32 machines apart; more only eats the machines' own extranonce2."""
MAX_POOL_EXTRANONCE2 = 16
"""The most extranonce2 any pool gives (cgminer's bound at subscribe): the tag and the machines' share
must fit in it."""
_UPSTREAM_SCHEMES = ("stratum+tcp", "stratum", "tcp", "stratum+ssl", "stratum+tls", "ssl", "tls", "stratum2+tcp")

MAX_SITE_KW = 10_000_000.0
"""The largest site power budget: 10 GW. A bigger figure is a unit mistake (W for kW)."""
MAX_POWER_HOLD_S = 7 * 86_400.0
"""The longest an operator's site power request holds: a grid event lasts hours; a forgotten hold should not
keep a site curtailed for ever."""

MAX_CERT_VALIDITY = 30 * 24 * 3600
"""Longest validity of the certificate the pool issues per connection (`pool.sv2_cert_validity`): a miner
checks it once, at the handshake, so a long one only lengthens how long a stolen static key and its
certificate could impersonate the pool; a month is already generous (SRI pools default to an hour)."""


class _Problems:
    """Every problem found while reading and checking, reported together (an operator fixes them all in
    one pass, not one per start)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, why: str) -> None:
        self.items.append(f"{where}: {why}" if where else why)

    def raise_if_any(self, source: str | None) -> None:
        if not self.items:
            return
        head = f"{source}: " if source else ""
        if len(self.items) == 1:
            raise ConfigError(head + self.items[0])
        raise ConfigError(head + f"{len(self.items)} problems:\n  " + "\n  ".join(self.items))


def _type_name(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in get_args(hint))
    if get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "none"
    if get_origin(hint) is tuple:
        return f"a list of {_type_name(get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def _matches(hint: Any, value: Any) -> bool:
    """Does a TOML value fit the field's annotation? An int is fine where a float is wanted; a bool is
    never a number."""
    origin = get_origin(hint)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(hint))
    if origin in (types.UnionType, typing.Union):
        return any(_matches(a, value) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        item = get_args(hint)[0]
        return isinstance(value, list | tuple) and all(_matches(item, v) for v in value)
    return False


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"


def _build(cls: type, data: Mapping[str, Any], where: str, problems: _Problems) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}{key}"
        if key not in hints:
            problems.add(name, "unknown setting" + _suggest(key, names))
            continue
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                problems.add(name, f"must be a table [{name}], not {type(value).__name__}")
                continue
            kwargs[key] = _build(hint, value, f"{name}.", problems)
        elif get_origin(hint) is tuple and dataclasses.is_dataclass(get_args(hint)[0]):
            if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                problems.add(name, f"must be a list of tables [[{name}]]")
                continue
            item = get_args(hint)[0]
            kwargs[key] = tuple(_build(item, v, f"{name}[{i}].", problems) for i, v in enumerate(value))
        elif not _matches(hint, value):
            hint_text = ""
            if get_origin(hint) is Literal and isinstance(value, str):
                close = [a for a in get_args(hint) if isinstance(a, str) and a.lower() == value.strip().lower()]
                close = close or difflib.get_close_matches(value, [a for a in get_args(hint) if isinstance(a, str)],
                                                           n=1, cutoff=0.6)
                hint_text = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(name, f"must be {_type_name(hint)}, not {type(value).__name__} {value!r}{hint_text}")
        else:
            kwargs[key] = tuple(value) if get_origin(hint) is tuple else value
    return cls(**kwargs)


def _without_none(value: Any) -> Any:
    """Overrides with the None of an unset flag left out, at every depth (a flag not given changes nothing)."""
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def from_mapping(data: Mapping[str, Any], *, source: str | None = None) -> Config:
    """A checked `Config` from parsed TOML (or any mapping of the same shape)."""
    problems = _Problems()
    cfg: Config = _build(Config, data, "", problems)
    _collect(problems, cfg)  # a value refused above keeps its default here, so its checks still run
    problems.raise_if_any(source)
    return cfg


def load(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read a TOML config (or the defaults), apply `overrides` (the same shape as the file: {"pool":
    {"port": 3334}}, which is how command-line flags reach it) and check it all; raises `ConfigError`."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if overrides:
        data = _merge(data, _without_none(overrides))
    return from_mapping(data, source=str(path) if path is not None else None)


# --- checking: ranges and settings that depend on each other -------------------------------------------


def _positive(p: _Problems, where: str, value: float) -> None:
    if not value > 0:
        p.add(where, f"must be more than 0, not {value!r}")


def _port(p: _Problems, where: str, value: int) -> None:
    if not 0 <= value <= _MAX_PORT:
        p.add(where, f"must be a TCP port 0..{_MAX_PORT} (0: any free port), not {value}")


def _check_node(p: _Problems, n: NodeConfig) -> None:
    _port(p, "node.rpc_port", n.rpc_port)
    if n.tx_rate < 0:
        p.add("node.tx_rate", f"must be 0 or more, not {n.tx_rate!r}")
    _positive(p, "node.demo_block_interval", n.demo_block_interval)
    if n.chain == "signet" and n.signet_challenge.lower() != "51":
        p.add("node.signet_challenge", "the embedded node runs a signet only with challenge \"51\" (OP_TRUE): it "
              f"checks no signatures, so not {n.signet_challenge!r}; use Bitcoin Core for a signed signet")
    if (n.rpc_user is None) != (n.rpc_password is None):
        p.add("node.rpc_user", "give rpc_user and rpc_password together (or neither: a cookie file)")


def _check_pool(p: _Problems, pool: PoolConfig) -> None:
    _port(p, "pool.port", pool.port)
    if pool.mode == "pool" and not pool.pool_address:
        p.add("pool.pool_address", "pool mode needs the address the blocks' rewards go to (an address of the "
              "node's wallet, so the ledger's payouts can come from it)")
    if not pool.nodes:
        p.add("pool.nodes", "is empty: give at least one node")
    for i, node in enumerate(pool.nodes):
        if urlsplit(node.url).scheme not in ("http", "https"):
            p.add(f"pool.nodes[{i}].url", f"must be http://HOST:PORT, not {node.url!r}")
        if (node.rpc_user is None) != (node.rpc_password is None):
            p.add(f"pool.nodes[{i}]", "give rpc_user and rpc_password together (or a cookie_file)")
    for name in ("min_difficulty", "max_difficulty", "start_difficulty", "share_interval", "refresh_interval",
                 "handshake_timeout", "idle_timeout", "ban_seconds"):
        _positive(p, f"pool.{name}", getattr(pool, name))
    if pool.min_difficulty > pool.max_difficulty:
        p.add("pool.min_difficulty", f"is above max_difficulty ({pool.min_difficulty:g} > {pool.max_difficulty:g})")
    if not 2 <= pool.extranonce2_size <= 8:
        p.add("pool.extranonce2_size", f"must be 2..8 (cgminer-derived firmware needs <= 8), not {pool.extranonce2_size}")
    if pool.max_connections_per_ip < 1:
        p.add("pool.max_connections_per_ip", f"must be 1 or more, not {pool.max_connections_per_ip}")
    if pool.workers < 0:
        p.add("pool.workers", f"must be 0 (one per core) or more, not {pool.workers}")
    _check_ipv6_prefix(p, "pool.ban_ipv6_prefix", pool.ban_ipv6_prefix)
    _check_mask(p, "pool.version_mask", pool.version_mask)
    _check_tls(p, "pool", pool.tls_cert_file, pool.tls_key_file)
    try:
        first, count = pool.front_end_shard()
    except ValueError:
        p.add("pool.front_end", f"must be I/N (front-end I of N), not {pool.front_end!r}")
    else:
        if not 1 <= count <= MAX_FRONT_ENDS or not 0 <= first < count:
            p.add("pool.front_end", f"{pool.front_end!r}: want 0 <= I < N <= {MAX_FRONT_ENDS}")
    if len(pool.coinbase_tag.encode()) > 40:
        p.add("pool.coinbase_tag", "is longer than 40 bytes (the coinbase script has room for 100 in all)")
    if pool.sv2_port is not None:
        _port(p, "pool.sv2_port", pool.sv2_port)
        if pool.sv2_port and pool.sv2_port == pool.port:
            p.add("pool.sv2_port", f"is the V1 port ({pool.port}): Stratum V2 needs a port of its own")
        if not pool.sv2_authority_secret_key_file:
            p.add("pool.sv2_authority_secret_key_file", "the Stratum V2 endpoint needs the pool's authority key "
                  "(`pithead keys new --out FILE` makes one)")
    if not 60 <= pool.sv2_cert_validity <= MAX_CERT_VALIDITY:
        p.add("pool.sv2_cert_validity", f"must be 60..{MAX_CERT_VALIDITY} seconds, not {pool.sv2_cert_validity}")


def _check_ipv6_prefix(p: _Problems, where: str, prefix: int) -> None:
    if not 32 <= prefix <= 128:
        p.add(where, f"must be 32..128 bits (64: one host's subnet; 128: one address), not {prefix}")


def _check_mask(p: _Problems, where: str, mask: str) -> None:
    if not 1 <= len(mask) <= 8 or any(c not in "0123456789abcdefABCDEF" for c in mask):
        p.add(where, f"must be 1..8 hex digits (BIP310), e.g. \"1fffe000\", not {mask!r}")


def _check_tls(p: _Problems, where: str, cert: str | None, key: str | None) -> None:
    if (cert is None) != (key is None):
        p.add(f"{where}.tls_cert_file", "give tls_cert_file and tls_key_file together (or neither: plain TCP)")


def _check_proxy(p: _Problems, proxy: ProxyConfig) -> None:
    _port(p, "proxy.port", proxy.port)
    _port(p, "proxy.api_port", proxy.api_port)
    _check_tls(p, "proxy", proxy.tls_cert_file, proxy.tls_key_file)
    if proxy.farm_url is not None:
        farm = urlsplit(proxy.farm_url)
        if farm.scheme not in ("http", "https") or not farm.hostname:
            p.add("proxy.farm_url", f"must be http://HOST:PORT (where the farm's web serves /farm/), not {proxy.farm_url!r}")
    if proxy.sv2_port is not None:
        _port(p, "proxy.sv2_port", proxy.sv2_port)
        if proxy.sv2_port and proxy.sv2_port == proxy.port:
            p.add("proxy.sv2_port", f"is the V1 port ({proxy.port}): Stratum V2 needs a port of its own")
        if not proxy.sv2_authority_secret_key_file:
            p.add("proxy.sv2_authority_secret_key_file", "the Stratum V2 side needs the proxy's authority key "
                  "(`pithead keys new --out FILE`)")
    if not 60 <= proxy.sv2_cert_validity <= MAX_CERT_VALIDITY:
        p.add("proxy.sv2_cert_validity", f"must be 60..{MAX_CERT_VALIDITY} seconds, not {proxy.sv2_cert_validity}")
    names: set[str] = set()
    for i, up in enumerate(proxy.upstreams):
        where = f"proxy.upstreams[{i}]"
        text = up.url.strip()
        parts = urlsplit(text if "://" in text else "stratum+tcp://" + text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in _UPSTREAM_SCHEMES or not parts.hostname or port is None:
            p.add(f"{where}.url", f"must be stratum+tcp://HOST:PORT, stratum+ssl://HOST:PORT or "
                                  f"stratum2+tcp://HOST:PORT/AUTHORITY_KEY, not {up.url!r}")
        elif parts.scheme == "stratum2+tcp" and not parts.path.strip("/"):
            p.add(f"{where}.url", f"a Stratum V2 pool is pinned by its authority key: "
                                  f"stratum2+tcp://HOST:PORT/AUTHORITY_KEY, not {up.url!r}")
        if not up.user:
            p.add(f"{where}.user", "is empty: the pool needs the account the shares are credited to")
        label = up.label()
        if label in names:
            p.add(f"{where}.name", f"{label!r} names two upstreams: give each a distinct name")
        names.add(label)
    if not 1 <= proxy.connections_per_upstream <= MAX_PROXY_CONNECTIONS_PER_UPSTREAM:
        p.add("proxy.connections_per_upstream",
              f"must be 1..{MAX_PROXY_CONNECTIONS_PER_UPSTREAM}, not {proxy.connections_per_upstream}")
    if not 1 <= proxy.tag_bytes <= MAX_PROXY_TAG_BYTES:
        p.add("proxy.tag_bytes", f"must be 1..{MAX_PROXY_TAG_BYTES}, not {proxy.tag_bytes}")
    if not 2 <= proxy.extranonce2_size <= 8:
        p.add("proxy.extranonce2_size",
              f"must be 2..8 (cgminer-derived firmware needs <= 8), not {proxy.extranonce2_size}")
    elif proxy.tag_bytes + proxy.extranonce2_size > MAX_POOL_EXTRANONCE2:
        p.add("proxy.extranonce2_size", f"with tag_bytes needs {proxy.tag_bytes + proxy.extranonce2_size} bytes "
              f"of each pool's extranonce2; no pool gives more than {MAX_POOL_EXTRANONCE2}")
    for name in ("start_difficulty", "min_difficulty", "share_interval", "keepalive_interval", "failback_after",
                 "stale_after", "answer_timeout", "upstream_timeout", "handshake_timeout", "idle_timeout",
                 "ban_seconds"):
        _positive(p, f"proxy.{name}", getattr(proxy, name))
    if proxy.min_difficulty > proxy.start_difficulty:
        p.add("proxy.min_difficulty",
              f"is above start_difficulty ({proxy.min_difficulty:g} > {proxy.start_difficulty:g})")
    if proxy.max_connections_per_ip < 1:
        p.add("proxy.max_connections_per_ip", f"must be 1 or more, not {proxy.max_connections_per_ip}")
    _check_ipv6_prefix(p, "proxy.ban_ipv6_prefix", proxy.ban_ipv6_prefix)
    _check_mask(p, "proxy.version_mask", proxy.version_mask)


def _check_ledger(p: _Problems, ledger: LedgerConfig) -> None:
    if not 0 <= ledger.pool_fee_percent < 100:
        p.add("ledger.pool_fee_percent", f"must be 0 or more and under 100, not {ledger.pool_fee_percent!r}")
    _positive(p, "ledger.pplns_n", ledger.pplns_n)
    if ledger.payout_threshold_sat <= 0:
        p.add("ledger.payout_threshold_sat", f"must be more than 0, not {ledger.payout_threshold_sat}")
    _positive(p, "ledger.payout_interval", ledger.payout_interval)
    _positive(p, "ledger.maturity_interval", ledger.maturity_interval)
    if urlsplit(ledger.database).scheme not in ("sqlite", "postgresql", "postgres"):
        p.add("ledger.database", f"must be sqlite:///PATH or postgresql://USER@HOST/DB, not {ledger.database!r}")
    bus = ledger.share_bus
    if bus != "memory" and urlsplit(bus).scheme not in ("redis", "rediss", "unix"):
        p.add("ledger.share_bus", "must be \"memory\" or redis://HOST:PORT/DB?stream=NAME")
    low, high = WITHHOLDING_LEVEL_RANGE
    if not low <= ledger.withholding_level <= high:
        p.add("ledger.withholding_level", f"must be from {low:g} to {high:g}, not {ledger.withholding_level!r}")


def _check_web(p: _Problems, web: WebConfig) -> None:
    _port(p, "web.port", web.port)
    if not _POOL_ID.fullmatch(web.miningcore_pool_id):
        p.add("web.miningcore_pool_id", f"must be 1-64 lower-case letters, digits, - or _, not {web.miningcore_pool_id!r}")


def _check_farm(p: _Problems, farm: FarmConfig) -> None:
    if farm.sim_devices < 0:
        p.add("farm.sim_devices", f"must be 0 or more, not {farm.sim_devices}")
    for name in ("poll_interval", "poll_deadline", "rescan_interval", "proxy_read_interval"):
        _positive(p, f"farm.{name}", getattr(farm, name))
    preset_names: set[str] = set()
    for i, preset in enumerate(farm.pool_presets):
        at = f"farm.pool_presets[{i}]"
        if not preset.name or len(preset.name) > 64 or not preset.name.replace("-", "").replace("_", "").isalnum():
            p.add(f"{at}.name", f"must be 1-64 letters, digits, - or _, not {preset.name!r}")
        elif preset.name in preset_names:
            p.add(f"{at}.name", f"{preset.name!r} names two presets: give each a distinct name")
        preset_names.add(preset.name)
        if not 1 <= len(preset.urls) <= 3:
            p.add(f"{at}.urls", f"must list 1-3 pools (a device keeps at most three), not {len(preset.urls)}")
        for url in preset.urls:
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("stratum+tcp", "stratum+ssl") or not parts.hostname or port is None:
                p.add(f"{at}.urls", f"must be stratum+tcp://HOST:PORT (or stratum+ssl), not {url!r}")
        if not preset.user or "{" in preset.user.replace("{worker}", ""):
            p.add(f"{at}.user", f"must be a worker name, or contain {{worker}} (the device's own), not {preset.user!r}")
    if farm.proxy_url is not None:
        where = urlsplit(farm.proxy_url)
        if where.scheme not in ("http", "https") or not where.hostname:
            p.add("farm.proxy_url", f"must be http://HOST:PORT (where `pithead proxy run` serves its API), "
                  f"not {farm.proxy_url!r}")
    if farm.max_concurrent_polls < 1:
        p.add("farm.max_concurrent_polls", f"must be 1 or more, not {farm.max_concurrent_polls}")
    if farm.spool_max_items < 1:
        p.add("farm.spool_max_items", f"must be 1 or more, not {farm.spool_max_items}")
    if farm.strike_price is not None and farm.price_schedule is None:
        p.add("farm.strike_price", "curtails above a price, so it needs price_schedule (the prices to compare)")
    if urlsplit(farm.database).scheme not in ("sqlite", "postgresql", "postgres"):
        p.add("farm.database", f"must be sqlite:///PATH or postgresql://USER@HOST/DB, not {farm.database!r}")
    if farm.alert_group_min != 0 and farm.alert_group_min < 2:
        p.add("farm.alert_group_min", f"must be 2 or more (a group of one is a machine), or 0 for no groups, "
                                      f"not {farm.alert_group_min}")
    for name in ("alert_open_after", "alert_clear_after", "status_cache"):
        if getattr(farm, name) < 0:
            p.add(f"farm.{name}", f"must be 0 or more, not {getattr(farm, name)}")
    if farm.central and farm.forward_url:
        p.add("farm.central", "a central takes readings from collectors; forward_url is for a collector")
    power_keys = ("power_budget_kw", "strike_budget_kw", "power_step_up_kw")
    if farm.curtailment != "power":
        for name in power_keys:
            if getattr(farm, name) is not None:
                p.add(f"farm.{name}", 'curtails by power: it needs curtailment = "power"')
    for name in ("power_budget_kw", "strike_budget_kw"):
        kw = getattr(farm, name)
        if kw is not None and not 0 <= kw <= MAX_SITE_KW:
            p.add(f"farm.{name}", f"must be from 0 to {MAX_SITE_KW:g} kW, not {kw!r}")
    if farm.power_step_up_kw is not None and not 0 < farm.power_step_up_kw <= MAX_SITE_KW:
        p.add("farm.power_step_up_kw", f"must be more than 0 and at most {MAX_SITE_KW:g} kW, not {farm.power_step_up_kw!r}")
    if not 0 < farm.power_hold_s <= MAX_POWER_HOLD_S:
        p.add("farm.power_hold_s", f"must be more than 0 and at most {MAX_POWER_HOLD_S:g} s, not {farm.power_hold_s!r}")
    if farm.strike_budget_kw is not None and farm.strike_price is None:
        p.add("farm.strike_budget_kw", "is the budget above strike_price, so it needs strike_price (and price_schedule)")


# A notice kind pattern: a kind ("node.down"), a group ("payout.*") or everything ("*"). Which kinds exist is
# pithead.events' (this module imports no part): `pithead.notify` checks each pattern names one when it
# builds its routes.
_KIND_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz.*")


def _check_notify(p: _Problems, notify: NotifyConfig) -> None:
    for i, route in enumerate(notify.routes):
        where = f"notify.routes[{i}]"
        if not route.urls:
            p.add(f"{where}.urls", "is empty: give at least one apprise URL (e.g. \"tgram://TOKEN/CHAT\")")
        for j, url in enumerate(route.urls):
            if "://" not in url:
                p.add(f"{where}.urls[{j}]", "must be an apprise URL, SCHEME://..., e.g. \"json://host/hook\"")
        if not route.kinds:
            p.add(f"{where}.kinds", "is empty: give the kinds to send, e.g. [\"block.*\", \"node.down\"] or [\"*\"]")
        for kind in route.kinds:
            if not kind or not set(kind) <= _KIND_PATTERN_CHARS:
                p.add(f"{where}.kinds", f"{kind!r} is not a notice kind or pattern (e.g. \"payout.*\")")
    if notify.worker_quiet_minutes < 0:
        p.add("notify.worker_quiet_minutes", f"must be 0 (off) or more, not {notify.worker_quiet_minutes!r}")
    _positive(p, "notify.dedup_window", notify.dedup_window)


Section = NodeConfig | PoolConfig | LedgerConfig | WebConfig | FarmConfig | ProxyConfig | NotifyConfig


def validate(cfg: Config | Section, *, source: str | None = None) -> None:
    """Every range and every setting that depends on another; raises one `ConfigError` listing each
    problem with its key. `load` calls it on the whole config; a part built from one section it was handed
    (the pool from a `PoolConfig`) calls it on that section, so a config made in code is checked the same."""
    p = _Problems()
    _collect(p, cfg)
    p.raise_if_any(source)


def _check_types(p: _Problems, obj: Any, where: str) -> None:
    """A config built in code gets the type check a file gets (a `Literal` choice, a number)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint, name = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(hint):
            _check_types(p, value, f"{name}.")
        elif get_origin(hint) is tuple and dataclasses.is_dataclass(get_args(hint)[0]):
            for i, item in enumerate(value):
                _check_types(p, item, f"{name}[{i}].")
        elif not _matches(hint, value):
            p.add(name, f"must be {_type_name(hint)}, not {type(value).__name__} {value!r}")


_PREFIX = {NodeConfig: "node.", PoolConfig: "pool.", LedgerConfig: "ledger.", WebConfig: "web.", FarmConfig: "farm.",
           ProxyConfig: "proxy.",
           NotifyConfig: "notify."}


def _collect(p: _Problems, cfg: Config | Section) -> None:
    before = len(p.items)
    _check_types(p, cfg, _PREFIX.get(type(cfg), ""))
    if len(p.items) > before:  # ranges of values of the wrong type mean nothing
        return
    if isinstance(cfg, Config):
        _check_node(p, cfg.node)
        _check_pool(p, cfg.pool)
        _check_ledger(p, cfg.ledger)
        _check_web(p, cfg.web)
        _check_farm(p, cfg.farm)
        _check_proxy(p, cfg.proxy)
        _check_notify(p, cfg.notify)
        if cfg.pool.mode == "solo" and cfg.ledger.payouts == "wallet":
            p.add("ledger.payouts", "solo mode pays the block's finder in the coinbase: the ledger keeps "
                  "records only, so payouts must be \"off\"")
    elif isinstance(cfg, NodeConfig):
        _check_node(p, cfg)
    elif isinstance(cfg, PoolConfig):
        _check_pool(p, cfg)
    elif isinstance(cfg, LedgerConfig):
        _check_ledger(p, cfg)
    elif isinstance(cfg, WebConfig):
        _check_web(p, cfg)
    elif isinstance(cfg, ProxyConfig):
        _check_proxy(p, cfg)
    elif isinstance(cfg, NotifyConfig):
        _check_notify(p, cfg)
    else:
        _check_farm(p, cfg)


# --- the example -------------------------------------------------------------------------------------


def example() -> str:
    """A complete, commented config: every section and key with its default or a safe example value.
    `pithead serve --config` accepts it as it is (the tests check both)."""
    return resources.files("pithead").joinpath("config_example.toml").read_text()


def keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every key of `cls` as dotted names ("pool.nodes[].url"), for the example's completeness check and
    the command-line flags' spelling check."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out.extend(keys(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        elif get_origin(hint) is tuple and dataclasses.is_dataclass(get_args(hint)[0]):
            out.extend(keys(get_args(hint)[0], f"{prefix}{f.name}[]."))
        else:
            out.append(prefix + f.name)
    return out

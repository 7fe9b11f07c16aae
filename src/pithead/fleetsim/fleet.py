"""A simulated fleet: devices on their own loopback addresses, one shared context, one clock.

`Fleet.build` lays out N devices of a model mix on consecutive 127.x.y.z addresses (host bytes .0 and
.255 skipped, as on a real /24-per-rack farm LAN), each device's kind fixed by its index so the same
`(seed, mix, count)` always yields the same fleet. `Fleet.by_ip` is the dispatch table the wire servers
use. Operator actions (`restart`, `set_pools`, `sleep`, `set_ambient`, …) are time-stamped and kept in
a bounded log, so a run can be replayed: same seed + same actions at the same simulated times = same
reports (see `tests/farm/sim`).

Not here: sockets (see `server`) and mining (see `mining`).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pithead.fleetsim.clock import Clock, ManualClock
from pithead.fleetsim.device import FleetContext, OpPoint, PoolConf, SimDevice, Snapshot
from pithead.fleetsim.models import MODELS, FailureRates, ModelSpec

# One process serves up to this many devices: 24,000 is the target; the cap keeps a typo in a CLI flag
# from allocating millions of objects.
MAX_DEVICES = 100_000
# The operator-action log is for replay and inspection; beyond this, the oldest entries drop.
MAX_LOG = 100_000
DEFAULT_NETWORK = "127.16.0.0/12"  # inside 127/8, away from 127.0.0.1 where real services listen


class FleetConfigError(ValueError):
    """A fleet description (mix, count, network) is invalid."""


@dataclass(frozen=True, slots=True)
class Action:
    t: float
    ip: str
    kind: str
    args: tuple[object, ...]

    def to_json(self) -> dict[str, object]:
        args: list[object] = []
        for a in self.args:
            if isinstance(a, tuple) and all(isinstance(p, PoolConf) for p in a):
                args.append([[p.url, p.user, p.password] for p in a])  # type: ignore[union-attr]
            else:
                args.append(a)
        return {"t": self.t, "ip": self.ip, "kind": self.kind, "args": args}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Action:
        """Inverse of `to_json`; raises `FleetConfigError` on a malformed record."""
        try:
            t, ip, kind, raw = float(d["t"]), str(d["ip"]), str(d["kind"]), d["args"]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise FleetConfigError(f"bad action record {d!r}") from exc
        if not isinstance(raw, list):
            raise FleetConfigError(f"bad action args in {d!r}")
        args: list[object] = []
        for a in raw:
            if kind == "set_pools" and isinstance(a, list):
                try:
                    args.append(tuple(PoolConf(str(u), str(n), str(w)) for u, n, w in a))
                except (TypeError, ValueError) as exc:
                    raise FleetConfigError(f"bad pool list in {d!r}") from exc
            else:
                args.append(a)
        return cls(t, ip, kind, tuple(args))


def parse_mix(text: str) -> tuple[tuple[ModelSpec, float], ...]:
    """`"s19xp:4,s19:3,s21:2,bitaxe-gamma:1"` → specs with weights (weights need not sum to 1)."""
    out: list[tuple[ModelSpec, float]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, _, w = part.partition(":")
        spec = MODELS.get(key.strip().lower())
        if spec is None:
            raise FleetConfigError(f"unknown model {key!r}; known: {', '.join(sorted(MODELS))}")
        try:
            weight = float(w) if w else 1.0
        except ValueError as exc:
            raise FleetConfigError(f"bad weight in {part!r}") from exc
        if weight < 0:
            raise FleetConfigError(f"negative weight in {part!r}")
        out.append((spec, weight))
    if not out or sum(w for _, w in out) <= 0:
        raise FleetConfigError("empty model mix")
    return tuple(out)


def allocate_ips(network: str, count: int) -> list[str]:
    """`count` host addresses in `network` (must lie in 127.0.0.0/8), skipping .0 and .255 host bytes."""
    try:
        net = ipaddress.IPv4Network(network, strict=False)
    except ValueError as exc:
        raise FleetConfigError(f"bad network {network!r}") from exc
    if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        raise FleetConfigError("simulated devices live on loopback (127.0.0.0/8) only")
    out: list[str] = []
    base = int(net.network_address)
    end = int(net.broadcast_address)
    x = base + 1
    while len(out) < count:
        if x >= end:
            raise FleetConfigError(f"{network} has room for {len(out)} devices, {count} asked")
        if (x & 0xFF) not in (0, 255) and x != 0x7F000001:
            out.append(str(ipaddress.IPv4Address(x)))
        x += 1
    return out


class Fleet:
    def __init__(self, ctx: FleetContext, clock: Clock, devices: Sequence[SimDevice]) -> None:
        self.ctx = ctx
        self.clock = clock
        self.devices = list(devices)
        self.by_ip: dict[str, SimDevice] = {d.ip: d for d in self.devices}
        self.log: deque[Action] = deque(maxlen=MAX_LOG)
        # firmware session state that is not mining state (so not replayed): LuxOS's one session per
        # unit (id, expiry), and the Whatsminer tokens each unit has issued (the last few, newest last)
        self.sessions: dict[str, tuple[str, float]] = {}
        self.tokens: dict[str, list[tuple[str, str, str]]] = {}

    @classmethod
    def build(
        cls,
        count: int,
        mix: str = "s19xp:4,s19:3,s21:2,bitaxe-gamma:1",
        *,
        seed: int = 1,
        network: str = DEFAULT_NETWORK,
        clock: Clock | None = None,
        rates: FailureRates | None = None,
        pools: tuple[PoolConf, ...] | None = None,
        base_ambient_c: float = 25.0,
        api_write_allowed: bool = True,
    ) -> Fleet:
        if not 0 < count <= MAX_DEVICES:
            raise FleetConfigError(f"device count must be within 1..{MAX_DEVICES}")
        specs = parse_mix(mix)
        clock = clock or ManualClock()
        ctx = FleetContext(
            seed=seed,
            rates=rates or FailureRates(),
            base_ambient_c=base_ambient_c,
            api_write_allowed=api_write_allowed,
        )
        if pools:
            ctx.default_pools = pools
        ips = allocate_ips(network, count)
        # kinds assigned by index in proportion to weights (largest-remainder, deterministic)
        total = sum(w for _, w in specs)
        quotas = [count * w / total for _, w in specs]
        counts = [int(q) for q in quotas]
        for i in sorted(range(len(specs)), key=lambda i: quotas[i] - counts[i], reverse=True)[
            : count - sum(counts)
        ]:
            counts[i] += 1
        # interleave smoothly (each model placed where it is furthest behind its share), so every
        # rack-sized slice of addresses has the mix, as real farms do
        kinds: list[ModelSpec] = []
        placed = [0] * len(specs)
        for k in range(count):
            j = max(range(len(specs)), key=lambda i: counts[i] * (k + 1) / count - placed[i])
            kinds.append(specs[j][0])
            placed[j] += 1
        t0 = clock.now()
        devices = [SimDevice(i, kinds[i], ips[i], ctx, t0) for i in range(count)]
        return cls(ctx, clock, devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[SimDevice]:
        return iter(self.devices)

    def now(self) -> float:
        return self.clock.now()

    def device(self, ip: str) -> SimDevice:
        try:
            return self.by_ip[ip]
        except KeyError as exc:
            raise KeyError(f"no simulated device at {ip}") from exc

    def snapshot(self, ip: str, t: float | None = None) -> Snapshot:
        return self.device(ip).snapshot(self.ctx, self.now() if t is None else t)

    # ------------------------------------------------------------------ time-stamped operator actions

    def _record(self, t: float, ip: str, kind: str, *args: object) -> None:
        self.log.append(Action(t, ip, kind, args))

    def restart(self, ip: str, t: float | None = None) -> None:
        t = self.now() if t is None else t
        self._record(t, ip, "restart")
        self.device(ip).restart(self.ctx, t)

    def set_pools(
        self, ip: str, pools: tuple[PoolConf, ...], *, reboot: bool, t: float | None = None
    ) -> None:
        t = self.now() if t is None else t
        self._record(t, ip, "set_pools", pools, reboot)
        self.device(ip).set_pools(self.ctx, t, pools, reboot=reboot)

    def sleep(self, ip: str, on: bool, t: float | None = None) -> None:
        t = self.now() if t is None else t
        self._record(t, ip, "sleep", on)
        self.device(ip).set_sleep(self.ctx, t, on)

    def repair(self, ip: str, t: float | None = None) -> None:
        t = self.now() if t is None else t
        self._record(t, ip, "repair")
        self.device(ip).repair(self.ctx, t)

    def pool_op(self, ip: str, kind: str, args: tuple[object, ...], t: float | None = None) -> None:
        """A cgminer API pool operation: addpool (url, user, pass) or switch/enable/disable/removepool (i,).

        Raises `OverflowError` when addpool would exceed the pool limit (the caller answers TOOMANYP).
        """
        t = self.now() if t is None else t
        dev = self.device(ip)
        if kind == "addpool":
            url, user, pwd = (str(a) for a in args)
            dev.add_pool(self.ctx, t, PoolConf(url, user, pwd))
        elif kind == "switchpool":
            dev.switch_pool(self.ctx, t, int(args[0]))  # type: ignore[call-overload]
        elif kind in ("enablepool", "disablepool"):
            dev.enable_pool(self.ctx, t, int(args[0]), kind == "enablepool")  # type: ignore[call-overload]
        elif kind == "removepool":
            dev.remove_pool(self.ctx, t, int(args[0]))  # type: ignore[call-overload]
        else:
            raise FleetConfigError(f"unknown pool operation {kind!r}")
        self._record(t, ip, kind, *args)

    def set_power(self, ip: str, op: OpPoint, delay_s: float, *, at_boot: bool, t: float | None = None) -> None:
        """A new power level on one unit (see `SimDevice.set_power`)."""
        t = self.now() if t is None else t
        self._record(t, ip, "power", op.pf, op.rf, op.freq_mhz, op.voltage_mv, op.label, op.watts, delay_s,
                     at_boot)
        self.device(ip).set_power(self.ctx, t, op, delay_s, at_boot=at_boot)

    def set_fan(self, ip: str, manual_pwm: int, t: float | None = None) -> None:
        """Manual fan PWM (0–100), or -1 for automatic control."""
        t = self.now() if t is None else t
        self._record(t, ip, "fan", manual_pwm)
        self.device(ip).set_fan(self.ctx, t, manual_pwm)

    def set_hostname(self, ip: str, hostname: str, t: float | None = None) -> None:
        t = self.now() if t is None else t
        self._record(t, ip, "hostname", hostname)
        dev = self.device(ip)
        dev.advance(self.ctx, t)
        dev.hostname = hostname

    def set_ambient(self, celsius: float, t: float | None = None) -> None:
        t = self.now() if t is None else t
        self._record(t, "*", "ambient", celsius)
        self.ctx.set_base_ambient(t, celsius)

    def replay(self, actions: Sequence[Action]) -> None:
        """Apply a recorded action list (in time order) to this fleet."""
        for a in actions:
            if a.kind == "restart":
                self.restart(a.ip, a.t)
            elif a.kind == "set_pools":
                pools, reboot = a.args
                self.set_pools(a.ip, pools, reboot=bool(reboot), t=a.t)  # type: ignore[arg-type]
            elif a.kind == "sleep":
                self.sleep(a.ip, bool(a.args[0]), a.t)
            elif a.kind == "repair":
                self.repair(a.ip, a.t)
            elif a.kind in ("addpool", "switchpool", "enablepool", "disablepool", "removepool"):
                self.pool_op(a.ip, a.kind, a.args, a.t)
            elif a.kind == "hostname":
                self.set_hostname(a.ip, str(a.args[0]), a.t)
            elif a.kind == "fan":
                self.set_fan(a.ip, int(a.args[0]), a.t)  # type: ignore[call-overload]
            elif a.kind == "power":
                pf, rf, freq, mv, label, watts, delay, at_boot = a.args
                op = OpPoint(float(pf), float(rf), int(freq), int(mv), str(label), float(watts))  # type: ignore[arg-type,call-overload]
                self.set_power(a.ip, op, float(delay), at_boot=bool(at_boot), t=a.t)  # type: ignore[arg-type]
            elif a.kind == "ambient":
                self.set_ambient(float(a.args[0]), a.t)  # type: ignore[arg-type]
            else:
                raise FleetConfigError(f"unknown action {a.kind!r}")

    def totals(self, t: float | None = None) -> dict[str, float]:
        """Fleet-wide figures (simulated, device-reported): hashrate, power, units hashing/down."""
        t = self.now() if t is None else t
        rate = power = 0.0
        hashing = down = 0
        for d in self.devices:
            online, r, w = d.quick(self.ctx, t)
            rate += r
            power += w
            hashing += r > 0.0
            down += not online
        return {
            "devices": len(self.devices),
            "hashing": hashing,
            "rebooting": down,
            "hashrate_ths": rate / 1000.0,
            "power_kw": power / 1000.0,
        }

"""Simulated devices: compact per-device state advanced lazily along a seeded clock.

What this module is:
- `FleetContext`: what all devices share (seed, failure rates, the ambient-temperature model, default
  pools, whether the privileged API is open).
- `SimDevice`: one miner's *state* in a few `__slots__` (dead boards / failed fans as bit masks, pool
  list, counters as integers). Nothing is computed ahead of time: `advance(t)` replays the device's
  failure process up to simulated time `t`, and `snapshot(t)` derives what the firmware would report at
  `t` (hashrate, per-board temperatures and chips, fans, power, pools, errors).
- `Snapshot` / `BoardSnap`: frozen values the wire servers turn into cgminer / AxeOS / CGI payloads.

Replayability. Every random choice is a counter-based draw from (fleet seed, device index, stream, n)
(`clock.draw`), failure times form a Poisson process whose n-th arrival depends only on n, ambient
temperature is piecewise constant on fixed 10-minute buckets, and accumulated work is integrated in
integer GH·ms. So the state at time `t` is the same whatever the query pattern was — a run replays
exactly from its seed and its list of operator commands (each with its simulated time).

What it is not: no sockets, no JSON (see `server`, `pithead.farm.protocol`), no wall clock.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from pithead.fleetsim.clock import draw, exponential, mix64, unit
from pithead.fleetsim.models import FailureRates, ModelSpec

# Random streams (separate sequences per purpose, so adding one never shifts another).
S_EVENT_TIME = 1
S_EVENT_KIND = 2
S_EVENT_PICK = 3
S_NOISE = 4
S_WAKE = 5
S_STATIC = 6
S_BOOT = 7
S_AMBIENT = 8

AMBIENT_BUCKET_S = 600  # ambient temperature is constant over 10-minute buckets (see module docstring)
DAILY_SWING_C = 6.0  # day/night swing of intake air around the base ambient
NOISE_BUCKET_S = 5  # the "GHS 5s" figure changes every 5 s, like the firmware's window
NOISE_FRACTION = 0.012  # ±1.2 % short-term hashrate noise (what real 5 s figures wobble by)
MAX_INITIAL_UPTIME_S = 30 * 86400  # units start with up to 30 days of uptime
POOL_CHANGE_REBOOT_S = (120.0, 180.0)  # stock firmware reboots 2–3 min after a pool change [T1]
SLEEP_WAKE_S = (10.0, 20.0)  # sleep ↔ normal takes 10–20 s [T1]
MAX_POOLS = 8  # cgminer has no hard limit; stock firmware shows 3, we allow a few more via the API
SHARES_PER_MINUTE = 20.0  # the pool difficulty we assume targets ~20 shares/min, like vardiff pools
REJECT_EVERY = 1500  # ~0.07 % rejected shares, like the recorded S19 XP (94 of 226146 ≈ 0.04 %)
HW_ERROR_EVERY = 30  # ~3 % HW errors relative to accepted diff-1 shares is typical of aging boards


@dataclass(frozen=True, slots=True)
class PoolConf:
    url: str
    user: str
    password: str = "x"


@dataclass(slots=True)
class FleetContext:
    """Everything the devices of one fleet share; mutated only through its methods (time-stamped)."""

    seed: int
    rates: FailureRates = field(default_factory=FailureRates)
    base_ambient_c: float = 25.0
    default_pools: tuple[PoolConf, ...] = (PoolConf("stratum+tcp://127.0.0.1:3333", "pithead"),)
    api_write_allowed: bool = True
    # (sim time, base ambient) changes, sorted by time; ambient(t) uses the last change at or before t
    ambient_changes: list[tuple[float, float]] = field(default_factory=list)
    _rates_s: tuple[float, ...] = ()
    _change_ms: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rates_s = self.rates.per_second()

    def set_base_ambient(self, t: float, celsius: float) -> None:
        """From simulated time `t` on, the base intake temperature is `celsius` (e.g. a heat wave)."""
        t = round(t * 1000.0) / 1000.0
        if self.ambient_changes and t < self.ambient_changes[-1][0]:
            raise ValueError("ambient changes must be recorded in time order")
        self.ambient_changes.append((t, celsius))
        self._change_ms.append(round(t * 1000.0))

    def base_ambient(self, t: float) -> float:
        if not self.ambient_changes:
            return self.base_ambient_c
        i = bisect.bisect_right(self.ambient_changes, (t, math.inf))
        return self.ambient_changes[i - 1][1] if i else self.base_ambient_c

    def ambient(self, t: float, device_offset_c: float) -> float:
        """Intake temperature of a device at `t`: base + daily swing, constant per 10-minute bucket."""
        bucket = math.floor(t / AMBIENT_BUCKET_S)
        tb = bucket * AMBIENT_BUCKET_S
        day_phase = (tb % 86400) / 86400.0
        # coolest around 05:00, warmest around 17:00
        swing = -DAILY_SWING_C * math.cos(2 * math.pi * (day_phase - 5 / 24))
        return self.base_ambient(t) + swing + device_offset_c

    def next_change_ms(self, t_ms: int) -> int:
        """The next operator ambient change after `t_ms` (or "never")."""
        i = bisect.bisect_right(self._change_ms, t_ms)
        return self._change_ms[i] if i < len(self._change_ms) else 1 << 62

    def next_boundary_ms(self, t_ms: int) -> int:
        """The next ms after `t_ms` at which the ambient temperature can change (bucket edge or change)."""
        step = AMBIENT_BUCKET_S * 1000
        nb = (t_ms // step + 1) * step
        if self.ambient_changes:
            i = bisect.bisect_right(self._change_ms, t_ms)
            if i < len(self._change_ms):
                nb = min(nb, self._change_ms[i])
        return nb


@dataclass(frozen=True, slots=True)
class OpPoint:
    """A unit's operating point relative to nominal: `pf` power factor, `rf` hashrate factor, the
    frequency and voltage the firmware runs, the level's name (a profile, "3000W", "490MHz/1100mV") and
    the watts the level draws at full health (nominal × pf)."""

    pf: float
    rf: float
    freq_mhz: int
    voltage_mv: int
    label: str
    watts: float


_NOMINAL: dict[str, OpPoint] = {}


def nominal_op(spec: ModelSpec) -> OpPoint:
    op = _NOMINAL.get(spec.key)
    if op is None:
        op = _NOMINAL[spec.key] = OpPoint(1.0, 1.0, spec.freq_mhz, spec.voltage_mv, "default", spec.power_w)
    return op


def op_for_watts(spec: ModelSpec, watts: float) -> OpPoint:
    """A power-limit firmware's operating point for `watts` (≤ nominal): hashrate ∝ power^k, and the
    firmware lowers frequency with it (voltage then follows from P ∝ f·V²)."""
    pf = min(1.0, watts / spec.power_w)
    rf = pf**spec.power_k
    return OpPoint(pf, rf, round(spec.freq_mhz * rf), round(spec.voltage_mv * math.sqrt(pf / rf)),
                   f"{round(watts)}W", spec.power_w * pf)


def op_for_freq_volt(spec: ModelSpec, freq_mhz: int, voltage_mv: int, label: str) -> OpPoint:
    """A frequency/voltage firmware's (AxeOS, a LuxOS profile) operating point: hashrate ∝ f, power ∝ f·V²."""
    rf = freq_mhz / spec.freq_mhz
    pf = rf * (voltage_mv / spec.voltage_mv) ** 2
    return OpPoint(pf, rf, freq_mhz, voltage_mv, label, spec.power_w * pf)


@dataclass(frozen=True, slots=True)
class BoardSnap:
    index: int
    chips: int
    rate_ghs: float
    ideal_ghs: float
    freq_mhz: int
    temp_pcb: tuple[int, int, int, int]
    temp_chip: tuple[int, int, int, int]
    hw: int
    serial: str
    alive: bool


@dataclass(frozen=True, slots=True)
class PoolSnap:
    index: int
    url: str
    user: str
    password: str
    enabled: bool
    active: bool
    alive: bool
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the firmware would report at one instant."""

    t: float
    online: bool  # answering on the network (False while rebooting)
    hashing: bool
    elapsed_s: int  # uptime of the mining software
    rate_5s_ghs: float
    rate_avg_ghs: float
    ideal_ghs: float
    freq_mhz: int
    boards: tuple[BoardSnap, ...]
    fans_rpm: tuple[int, ...]
    fan_pwm: int
    power_w: float
    ambient_c: float
    chip_temp_c: float  # hottest chip reading
    accepted: int
    rejected: int
    hw_errors: int
    pool_diff: float
    pools: tuple[PoolSnap, ...]
    errors: tuple[str, ...]  # MiningOS-style codes: "J0:8", "P:1", "F:1", "J1:2", "R:1"
    sleeping: bool
    blink: bool
    throttled: bool
    op: OpPoint | None = None  # the operating point in force (power level); None: nominal


def _ms(t: float) -> int:
    return round(t * 1000.0) if t != math.inf else 1 << 62


def _round_ms(t: float) -> float:
    """Transition times are kept on the millisecond grid, so `_ms(x) / 1000 == x` round-trips."""
    return t if t == math.inf else round(t * 1000.0) / 1000.0


class SimDevice:
    """One simulated miner. All fields are small scalars, so 24,000 of them fit in a few tens of MB."""

    __slots__ = (
        "_accepted_base",
        "_event_no",
        "_hash_units",
        "_last_ms",
        "_next_event",
        "_pool_accepted",
        "active_pool",
        "blink",
        "dead_boards",
        "disabled_pools",
        "down_until",
        "failed_fans",
        "fan_manual_pwm",
        "hostname",
        "hot_c",
        "index",
        "ip",
        "lost_chips",
        "op_at",
        "op_next",
        "op_pending",
        "op_prev",
        "pending_pools",
        "pools",
        "restarts",
        "seed",
        "sleeping",
        "spec",
        "throttled",
        "up_since",
        "wake_at",
    )

    def __init__(self, index: int, spec: ModelSpec, ip: str, ctx: FleetContext, t0: float) -> None:
        self.index = index
        self.spec = spec
        self.ip = ip
        self.seed = mix64(mix64(ctx.seed & ((1 << 64) - 1)) ^ index)
        self.hostname = f"{spec.key}-{index:05d}"
        self.pools: tuple[PoolConf, ...] | None = None  # None: the fleet default (shared, copy-on-write)
        self.pending_pools: tuple[PoolConf, ...] | None = None  # applied at next boot (AxeOS)
        self.active_pool = 0
        self.disabled_pools = 0  # bit mask
        self.dead_boards = 0  # bit mask
        self.failed_fans = 0  # bit mask
        self.lost_chips = 0  # packed: 8 bits per board (chips that dropped off)
        self.throttled = False
        self.hot_c = 0  # extra intake °C from blocked airflow (a failure; 0 when healthy)
        self.sleeping = False
        self.blink = False
        self.fan_manual_pwm = -1  # -1: automatic
        self.restarts = 0
        self.up_since = _round_ms(t0 - unit(self.seed, S_BOOT, 0) * MAX_INITIAL_UPTIME_S)
        self.down_until = self.up_since  # booted at up_since, online since
        self.wake_at = 0.0
        # power level: op_prev until op_at, then op_next; op_pending applies at the next boot (AxeOS NVS,
        # a Whatsminer's power limit). Nominal (a shared value) until an operator sets one.
        self.op_prev = self.op_next = nominal_op(spec)
        self.op_at = 0.0
        self.op_pending: OpPoint | None = None
        self._event_no = 0
        self._next_event = _round_ms(t0 + self._interarrival(ctx, 0))
        self._last_ms = _ms(t0)
        # work done before t0, so counters start realistic (uptime × ideal rate)
        self._hash_units = round(self._ideal_rate_int() * (t0 - self.up_since) * 1000.0 * 0.985)
        self._pool_accepted: tuple[int, ...] = ()
        self._accepted_base = 0

    # ------------------------------------------------------------------ static per-device figures

    def _ideal_rate_int(self) -> int:
        return round(self.spec.ideal_ghs)

    def ambient_offset(self) -> float:
        """Where the unit sits (hot-aisle / rack position: −2 … +6 °C, fixed) plus blocked airflow."""
        return -2.0 + 8.0 * unit(self.seed, S_STATIC, 1) + self.hot_c

    def mac(self) -> str:
        x = self.index
        return f"02:70:68:{(x >> 16) & 0xFF:02X}:{(x >> 8) & 0xFF:02X}:{x & 0xFF:02X}"

    def serial(self, board: int = -1) -> str:
        base = draw(self.seed, S_STATIC, 2 + max(board, -1) + 1) % 10**10
        return f"JYZZ{base:010d}" if board < 0 else f"SMTTF{base:010d}B{board}"

    def pool_diff(self) -> float:
        """The difficulty a vardiff pool settles on for this unit (~20 shares/min, a power of two)."""
        hps = self.spec.ideal_ghs * 1e9
        return float(2 ** max(0, round(math.log2(max(1.0, hps * 60.0 / SHARES_PER_MINUTE / 2**32)))))

    def pool_list(self, ctx: FleetContext) -> tuple[PoolConf, ...]:
        if self.pools is not None:
            return self.pools
        return tuple(PoolConf(p.url, f"{p.user}.{self.hostname}", p.password) for p in ctx.default_pools)

    # ------------------------------------------------------------------ the failure process

    def _interarrival(self, ctx: FleetContext, n: int) -> float:
        return exponential(self.seed, S_EVENT_TIME, n, sum(self._kind_rates(ctx)))

    def _kind_rates(self, ctx: FleetContext) -> tuple[float, ...]:
        """Hazard rates per failure kind; a kind the family does not have (chip dropouts on a one-chip
        Bitaxe, the silent half-hashrate state on a stock Antminer) has rate 0. On a one-board unit a
        "board" death is a dead ASIC."""
        board, fan, reboot, chips, throttle, airflow = ctx._rates_s
        how = self.spec.behaviour
        return (
            board * self.spec.boards / 3.0,
            fan,
            reboot,
            chips if how.chip_dropouts else 0.0,
            throttle if how.silent_throttle else 0.0,
            airflow,
        )

    def _apply_event(self, ctx: FleetContext, t: float, n: int) -> None:
        rates = self._kind_rates(ctx)
        total = sum(rates)
        x = unit(self.seed, S_EVENT_KIND, n) * total
        kind = 0
        while kind < len(rates) - 1 and x >= rates[kind]:
            x -= rates[kind]
            kind += 1
        pick = draw(self.seed, S_EVENT_PICK, n)
        if kind == 0:
            alive = [b for b in range(self.spec.boards) if not self.dead_boards >> b & 1]
            if alive:
                self.dead_boards |= 1 << alive[pick % len(alive)]
        elif kind == 1:
            self.failed_fans |= 1 << (pick % self.spec.fans)
        elif kind == 2:
            self._reboot(ctx, t, self._boot_time())
        elif kind == 3:
            b = pick % self.spec.boards
            lost = (self.lost_chips >> (8 * b)) & 0xFF
            lost = min(self.spec.chips_per_board // 2, lost + 1 + (pick >> 8) % 6, 255)
            self.lost_chips = (self.lost_chips & ~(0xFF << (8 * b))) | (lost << (8 * b))
        elif kind == 4:
            self.throttled = True
        else:
            self.hot_c = 15 + (pick >> 16) % 11

    def advance(self, ctx: FleetContext, t: float) -> None:
        """Replay everything that happened up to simulated time `t` (idempotent, monotonic).

        Works in integer milliseconds: every time the hashing rate can change (a failure event, the end
        of a reboot or a wake-up, an ambient bucket edge) is a segment boundary, and the work integral
        sums rate × ms per segment, which telescopes to the same total whatever the query points were.
        """
        t_ms = _ms(t)
        while True:
            last = self._last_ms
            b = ctx.next_change_ms(last)
            down = _ms(self.down_until)
            if down > last:
                b = min(b, down)
            wake = _ms(self.wake_at)
            if wake > last:
                b = min(b, wake)
            op_at = _ms(self.op_at)
            if op_at > last:
                b = min(b, op_at)
            ev = _ms(self._next_event)
            if ev <= t_ms and ev <= b:
                b_amb = self._ambient_boundary(ctx, last)
                if b_amb < ev:
                    self._integrate(ctx, b_amb)
                    continue
                self._integrate(ctx, ev)
                n = self._event_no
                self._apply_event(ctx, ev / 1000.0, n)
                self._event_no = n + 1
                self._next_event = _round_ms(ev / 1000.0 + self._interarrival(ctx, n + 1))
                continue
            b = min(b, self._ambient_boundary(ctx, last))
            if b > t_ms:
                self._integrate(ctx, t_ms)
                return
            self._integrate(ctx, b)

    def _ambient_regime(self, amb: float) -> tuple[bool, bool]:
        """What the intake temperature does to the rate: (derated, stopped by temperature)."""
        spec = self.spec
        extra = self._fan_lost_heat()
        return (
            amb > spec.derate_ambient_c,
            amb > spec.shutdown_ambient_c or amb + spec.chip_rise_c + extra > spec.chip_protect_c,
        )

    def _ambient_boundary(self, ctx: FleetContext, last_ms: int) -> int:
        """The next ambient bucket edge at which the temperature changes the rate; "never" if none.

        Until the next operator change the base is constant and the daily swing repeats, so the bucket
        edges where the regime (derated / temperature-stopped) flips are found within one day ahead;
        when none flips the rate does not depend on ambient and segments need not be split. A year-long
        advance is then a few steps per day at most, and none for a unit that stays cool.
        """
        spec = self.spec
        extra = self._fan_lost_heat()
        threshold = min(
            spec.derate_ambient_c, spec.shutdown_ambient_c, spec.chip_protect_c - spec.chip_rise_c - extra
        )
        offset = self.ambient_offset()
        worst = ctx.base_ambient(last_ms / 1000.0) + DAILY_SWING_C + offset
        if worst <= threshold:
            return 1 << 62
        step = AMBIENT_BUCKET_S * 1000
        limit = ctx.next_change_ms(last_ms)
        now_regime = self._ambient_regime(ctx.ambient(last_ms / 1000.0, offset))
        edge = (last_ms // step + 1) * step
        for _ in range(86400 // AMBIENT_BUCKET_S + 1):
            if edge >= limit:
                return limit
            if self._ambient_regime(ctx.ambient(edge / 1000.0, offset)) != now_regime:
                return edge
            edge += step
        return limit

    def _integrate(self, ctx: FleetContext, to_ms: int) -> None:
        if to_ms <= self._last_ms:
            return
        t_mid = self._last_ms / 1000.0
        rate = round(self._effective_rate(ctx, t_mid))
        self._hash_units += rate * (to_ms - self._last_ms)
        self._last_ms = to_ms

    # ------------------------------------------------------------------ derived figures

    def _online(self, t: float) -> bool:
        return t >= self.down_until

    def _board_alive(self, b: int) -> bool:
        return not (self.dead_boards >> b) & 1

    def _freq(self, ambient: float) -> int:
        return self.spec.derated_freq_mhz if ambient > self.spec.derate_ambient_c else self.spec.freq_mhz

    def _fan_lost_heat(self) -> float:
        """What a stopped fan adds to the chip temperature of a unit that keeps hashing without it."""
        return self.spec.behaviour.fan_lost_heat_c if self.failed_fans else 0.0

    def _chip_temp(self, ambient: float, load: float) -> float:
        return ambient + self.spec.chip_rise_c * load + self._fan_lost_heat()

    def _fault_stop(self, ctx: FleetContext, t: float, amb: float) -> str | None:
        """Why the unit is not hashing though powered, as a MiningOS-style code; None if it hashes."""
        if self.spec.behaviour.stops_on_fan_loss and self.failed_fans:
            return "F:1"  # stock firmware stops on "fan lost"
        if amb > self.spec.shutdown_ambient_c or self._chip_temp(amb, 1.0) > self.spec.chip_protect_c:
            return "P:1"  # high temperature protection
        if self.dead_boards and (
            self.spec.one_bad_board_kills_unit or self.dead_boards == (1 << self.spec.boards) - 1
        ):
            return "J0:8"  # insufficient hashboards: the unit stops
        return None

    def _effective_rate(self, ctx: FleetContext, t: float, amb: float | None = None) -> float:
        """GH/s actually hashed at `t` (no short-term noise): what the work integral accumulates."""
        if not self._online(t) or self.sleeping or t < self.wake_at:
            return 0.0
        if amb is None:
            amb = ctx.ambient(t, self.ambient_offset())
        if self._fault_stop(ctx, t, amb) is not None:
            return 0.0
        freq_factor = self._freq(amb) / self.spec.freq_mhz
        per_board = self.spec.ideal_ghs / self.spec.boards
        total = 0.0
        for b in range(self.spec.boards):
            if self._board_alive(b):
                lost = (self.lost_chips >> (8 * b)) & 0xFF
                total += per_board * (self.spec.chips_per_board - lost) / self.spec.chips_per_board
        rate = total * freq_factor * self.op(t).rf * 0.985  # real units run ~1.5 % under nameplate
        return rate * 0.5 if self.throttled else rate

    def op(self, t: float) -> OpPoint:
        """The operating point in force at `t`."""
        return self.op_next if t >= self.op_at else self.op_prev

    def _hashing_power(self, rate: float, op: OpPoint) -> float:
        """Wall power while hashing at `rate` GH/s: the level's draw, scaled by the share of the unit that
        hashes (dead boards and lost chips draw nothing), plus the fans."""
        spec = self.spec
        full = spec.ideal_ghs * 0.985 * op.rf
        return spec.power_w * op.pf * (rate / full if full > 0 else 0.0)

    def accepted(self) -> int:
        return int(self._hash_units * 1_000_000 // int(self.pool_diff() * 2**32))

    def quick(self, ctx: FleetContext, t: float) -> tuple[bool, float, float]:
        """(online, average GH/s, watts) at `t`: the cheap path for fleet-wide totals."""
        self.advance(ctx, t)
        if not self._online(t):
            return False, 0.0, 0.0
        amb = ctx.ambient(t, self.ambient_offset())
        rate = self._effective_rate(ctx, t, amb)
        spec = self.spec
        if rate > 0.0:
            fan_w = spec.fans * spec.behaviour.fan_w
            return True, rate, self._hashing_power(rate, self.op(t)) + fan_w
        return True, 0.0, spec.behaviour.idle_w

    def snapshot(self, ctx: FleetContext, t: float) -> Snapshot:
        """What the firmware reports at `t` (advances the state to `t` first)."""
        self.advance(ctx, t)
        spec = self.spec
        amb = ctx.ambient(t, self.ambient_offset())
        online = self._online(t)
        stop = self._fault_stop(ctx, t, amb) if online else None
        rate = self._effective_rate(ctx, t, amb)
        hashing = rate > 0.0
        nb = math.floor(t / NOISE_BUCKET_S)
        noise = (unit(self.seed, S_NOISE, nb) * 2.0 - 1.0) * NOISE_FRACTION
        op = self.op(t)
        load = (op.pf if hashing else (0.05 if online else 0.0))
        chip = self._chip_temp(amb, load)
        freq = round(self._freq(amb) * op.freq_mhz / spec.freq_mhz)
        errors: list[str] = []
        if stop:
            errors.append(stop)
        per_board_ideal = spec.ideal_ghs / spec.boards
        boards = []
        hw_total = 0
        rate_5s = rate * (1.0 + noise) if hashing else 0.0
        weights = [
            (1.0 + (unit(self.seed, S_NOISE, nb * 8 + b + 1) * 2.0 - 1.0) * NOISE_FRACTION)
            if self._board_alive(b)
            else 0.0
            for b in range(spec.boards)
        ]
        w_sum = sum(weights)
        acc = self.accepted()
        for b in range(spec.boards):
            alive = self._board_alive(b)
            lost = (self.lost_chips >> (8 * b)) & 0xFF
            chips = spec.chips_per_board - lost if alive else 0
            if alive and lost:
                errors.append(f"J{b}:2")
            if not alive and "J0:8" not in errors:
                errors.append(f"J{b}:8")
            # boards share the 5 s total with their own wobble; they add up to it, as firmware's do
            b_rate = rate_5s * weights[b] / w_sum if alive and w_sum else 0.0
            tb = chip + (b - 1) * 1.5  # the middle board runs a little hotter than the outer ones
            pcb_in = round(tb - 22)
            pcb_out = round(tb - 8)
            t_pcb = (pcb_in, pcb_in + 3, pcb_out, pcb_out - 2) if online else (0, 0, 0, 0)
            t_chip = (round(tb - 12), round(tb - 9), round(tb), round(tb - 2)) if online else (0, 0, 0, 0)
            hw = acc // HW_ERROR_EVERY // spec.boards if alive else 0
            hw_total += hw
            boards.append(
                BoardSnap(
                    b,
                    chips,
                    b_rate,
                    per_board_ideal * (freq / spec.freq_mhz) if alive else 0.0,
                    freq,
                    t_pcb,
                    t_chip,
                    hw,
                    self.serial(b),
                    alive,
                )
            )
        # fans: automatic control holds the chips near target; a failed fan reads 0 rpm
        if self.fan_manual_pwm >= 0:
            pwm = self.fan_manual_pwm
        else:
            pwm = int(min(100, max(30, 35 + (amb - 20.0) * 2.5 + (8 if self.failed_fans else 0))))
            if not hashing and online:
                pwm = spec.behaviour.idle_fan_pwm
        fans = []
        for f in range(spec.fans):
            if not online or (self.failed_fans >> f) & 1:
                fans.append(0)
            else:
                jitter = (draw(self.seed, S_NOISE, nb * 16 + f) % 121) - 60
                fans.append(max(0, round(spec.max_fan_rpm * pwm / 100.0) + jitter))
        # power: scales with hashing work; control board + fans when idle
        if not online:
            power = 0.0
        elif hashing:
            fan_w = spec.fans * spec.behaviour.fan_w
            power = self._hashing_power(rate, op) * (1.0 + noise * 0.3) + fan_w
        else:
            power = spec.behaviour.idle_w
        if hashing and rate < spec.ideal_ghs * 0.985 * op.rf * 0.85:
            errors.append("R:1")  # low hashrate
        elapsed = int(t - max(self.up_since, self.down_until)) if online else 0
        avg = rate if hashing else 0.0
        pools = self._pool_snaps(ctx, acc)
        rejected = acc // REJECT_EVERY
        return Snapshot(
            t=t,
            online=online,
            hashing=hashing,
            elapsed_s=max(0, elapsed),
            rate_5s_ghs=rate_5s,
            rate_avg_ghs=avg,
            ideal_ghs=spec.ideal_ghs * (freq / spec.freq_mhz),
            freq_mhz=freq,
            boards=tuple(boards),
            fans_rpm=tuple(fans),
            fan_pwm=pwm,
            power_w=power,
            ambient_c=amb,
            chip_temp_c=chip if online else 0.0,
            accepted=acc,
            rejected=rejected,
            hw_errors=hw_total,
            pool_diff=self.pool_diff(),
            pools=pools,
            errors=tuple(errors),
            sleeping=self.sleeping,
            blink=self.blink,
            throttled=self.throttled,
            op=op,
        )

    def _pool_snaps(self, ctx: FleetContext, acc: int) -> tuple[PoolSnap, ...]:
        pools = self.pool_list(ctx)
        out = []
        for i, p in enumerate(pools):
            prev = self._pool_accepted[i] if i < len(self._pool_accepted) else 0
            a = prev + (acc - self._accepted_base if i == self.active_pool else 0)
            enabled = not (self.disabled_pools >> i) & 1
            out.append(
                PoolSnap(
                    i,
                    p.url,
                    p.user,
                    p.password,
                    enabled,
                    i == self.active_pool,
                    enabled,
                    a,
                    a // REJECT_EVERY,
                )
            )
        return tuple(out)

    # ------------------------------------------------------------------ operator actions (time-stamped)

    def _flush_pool_counts(self, ctx: FleetContext) -> None:
        acc = self.accepted()
        n = len(self.pool_list(ctx))
        counts = list(self._pool_accepted) + [0] * (n - len(self._pool_accepted))
        if 0 <= self.active_pool < n:
            counts[self.active_pool] += acc - self._accepted_base
        self._pool_accepted = tuple(counts[:n])
        self._accepted_base = acc

    def _boot_time(self) -> float:
        """How long the next boot takes: the model's boot time plus up to 20 % (seeded)."""
        return self.spec.boot_s * (1.0 + 0.2 * unit(self.seed, S_BOOT, self.restarts + 1))

    def _reboot(self, ctx: FleetContext, t: float, duration: float) -> None:
        self.restarts += 1
        self.down_until = _round_ms(t + duration)
        self.up_since = self.down_until
        self.throttled = False
        if self.op_pending is not None:
            self.op_prev = self.op_next = self.op_pending
            self.op_pending = None
            self.op_at = 0.0
        if self.pending_pools is not None:
            self._flush_pool_counts(ctx)
            self.pools, self.pending_pools = self.pending_pools, None
            self._pool_accepted = ()
            self.active_pool = 0
            self.disabled_pools = 0

    def _wake_check(self, ctx: FleetContext, n: int) -> None:
        """Coming back from a reboot or sleep, a board may not be found (chips not detected) [FA1]."""
        if self.spec.behaviour.wake_can_lose_board and unit(self.seed, S_WAKE, n) < ctx.rates.wake_failure:
            alive = [b for b in range(self.spec.boards) if self._board_alive(b)]
            if alive:
                self.dead_boards |= 1 << alive[draw(self.seed, S_WAKE, n + 1) % len(alive)]

    def restart(self, ctx: FleetContext, t: float) -> None:
        """An operator restart: a power cycle that may not bring every board back [FA1]."""
        self.advance(ctx, t)
        self._reboot(ctx, t, self._boot_time())
        self._wake_check(ctx, 2 * self.restarts)

    def set_pools(self, ctx: FleetContext, t: float, pools: tuple[PoolConf, ...], *, reboot: bool) -> None:
        """Replace the pool list. Stock Antminer firmware reboots (2–3 min) to apply it; AxeOS stores it
        and applies it at the next restart (`reboot=False`)."""
        self.advance(ctx, t)
        pools = pools[:MAX_POOLS]
        if pools == self.pool_list(ctx):
            return
        if reboot:
            self.pending_pools = pools
            lo, hi = POOL_CHANGE_REBOOT_S
            self._reboot(ctx, t, lo + (hi - lo) * unit(self.seed, S_BOOT, 10_000 + self.restarts))
            self._wake_check(ctx, 2 * self.restarts)
        else:
            self.pending_pools = pools

    def configured_pools(self, ctx: FleetContext) -> tuple[PoolConf, ...]:
        """The stored configuration (what a config read shows), including changes not yet applied."""
        return self.pending_pools if self.pending_pools is not None else self.pool_list(ctx)

    def add_pool(self, ctx: FleetContext, t: float, pool: PoolConf) -> int:
        self.advance(ctx, t)
        self._flush_pool_counts(ctx)
        pools = self.pool_list(ctx)
        if len(pools) >= MAX_POOLS:
            raise OverflowError(MAX_POOLS)
        self.pools = (*pools, pool)
        return len(self.pools) - 1

    def switch_pool(self, ctx: FleetContext, t: float, i: int) -> None:
        self.advance(ctx, t)
        self._flush_pool_counts(ctx)
        self.active_pool = i
        self.disabled_pools &= ~(1 << i)

    def enable_pool(self, ctx: FleetContext, t: float, i: int, on: bool) -> None:
        self.advance(ctx, t)
        self._flush_pool_counts(ctx)
        if on:
            self.disabled_pools &= ~(1 << i)
        else:
            self.disabled_pools |= 1 << i
            if self.active_pool == i:
                pools = self.pool_list(ctx)
                for j in range(len(pools)):
                    if not (self.disabled_pools >> j) & 1:
                        self.active_pool = j
                        break

    def remove_pool(self, ctx: FleetContext, t: float, i: int) -> None:
        self.advance(ctx, t)
        self._flush_pool_counts(ctx)
        pools = list(self.pool_list(ctx))
        counts = list(self._pool_accepted) + [0] * (len(pools) - len(self._pool_accepted))
        del pools[i]
        del counts[i]
        mask_low = self.disabled_pools & ((1 << i) - 1)
        mask_high = (self.disabled_pools >> (i + 1)) << i
        self.disabled_pools = mask_low | mask_high
        if self.active_pool > i:
            self.active_pool -= 1
        self.pools = tuple(pools)
        self._pool_accepted = tuple(counts)

    def set_sleep(self, ctx: FleetContext, t: float, sleep: bool) -> None:
        """Sleep (curtail) or wake. Waking takes 10–20 s and may lose a board (chips not found)."""
        self.advance(ctx, t)
        if sleep == self.sleeping:
            return
        self.sleeping = sleep
        if not sleep:
            lo, hi = SLEEP_WAKE_S
            n = self.restarts * 2 + 1 + self._event_no * 4
            self.wake_at = _round_ms(t + lo + (hi - lo) * unit(self.seed, S_BOOT, 20_000 + n))
            self._wake_check(ctx, 1_000_000 + n)

    def set_power(self, ctx: FleetContext, t: float, op: OpPoint, delay_s: float, *, at_boot: bool) -> None:
        """A new power level: it holds `delay_s` after `t` (the firmware's ramp), or, `at_boot`, from the
        next boot on (stored settings: AxeOS frequency/voltage, a Whatsminer's power limit)."""
        self.advance(ctx, t)
        if at_boot:
            self.op_pending = op
            return
        self.op_prev = self.op(t)
        self.op_next = op
        self.op_at = _round_ms(t + max(0.0, delay_s))

    def set_fan(self, ctx: FleetContext, t: float, manual_pwm: int) -> None:
        self.advance(ctx, t)
        self.fan_manual_pwm = manual_pwm

    def repair(self, ctx: FleetContext, t: float) -> None:
        """A technician swaps the failed parts; the unit reboots."""
        self.advance(ctx, t)
        self.dead_boards = 0
        self.failed_fans = 0
        self.lost_chips = 0
        self.hot_c = 0
        self._reboot(ctx, t, self._boot_time())

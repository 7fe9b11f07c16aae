"""Energy and profitability: electricity price schedules, J/TH, hashprice, and per device/rack/site sums.

All functions are pure (times and prices are arguments). Units are in the names: prices per MWh in the
schedule's currency, power in W, hashrate in TH/s, hashprice in currency per TH/s per day.

Hashprice is the expected revenue of 1 TH/s for one day: a hash finds a block with probability
1 / (D x 2^32), so 1 TH/s finds 86,400 x 10^12 / (D x 2^32) blocks a day, each worth subsidy + fees.
(Worked check from the field notes: D = 1e14, 3.125 BTC, $100k -> about $62.8 per PH/s per day.)
Fees are best taken as a moving average (Luxor's index uses the last 144 blocks), see `mean_fees`.

A device's break-even electricity price is hashprice / (MWh one TH/s burns in a day at its J/TH): above
that price it loses money, which is what the curtailment policy compares against.

This module does NOT fetch difficulty or BTC price itself and does not power anything down.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from pithead.farm.model import DeviceState, FarmError, Reading
from pithead.farm.store import DeviceStatus

SECONDS_PER_DAY = 86_400
# Blocks between subsidy halvings (consensus: Bitcoin Core's consensus.nSubsidyHalvingInterval, mainnet).
HALVING_INTERVAL = 210_000
# Initial subsidy, 50 BTC in satoshis (Bitcoin Core GetBlockSubsidy).
INITIAL_SUBSIDY_SAT = 50 * 100_000_000
SAT_PER_BTC = 100_000_000
# A price schedule larger than this is refused: ten years of hourly prices is ~88k rows; anything bigger
# is a wrong file, not a schedule.
MAX_PRICE_ROWS = 200_000
# A price API reply larger than this is refused before parsing.
MAX_PRICE_REPLY_BYTES = 16 * 1024 * 1024
# Fee averaging window in blocks (one day; the hashprice index convention).
FEE_WINDOW_BLOCKS = 144


class EnergyError(FarmError, ValueError):
    """A price schedule or input that cannot be used."""


def block_subsidy_sat(height: int) -> int:
    """The block subsidy at `height` (consensus rule; 0 after 64 halvings)."""
    if height < 0:
        raise EnergyError(f"negative height {height}")
    halvings = height // HALVING_INTERVAL
    return 0 if halvings >= 64 else INITIAL_SUBSIDY_SAT >> halvings


def mean_fees(fees_per_block_sat: Sequence[int], window: int = FEE_WINDOW_BLOCKS) -> float:
    """Simple moving average of the last `window` blocks' total fees (satoshis)."""
    last = list(fees_per_block_sat)[-window:]
    return sum(last) / len(last) if last else 0.0


def hashprice_per_th_day(difficulty: float, subsidy_btc: float, fees_btc: float, btc_price: float) -> float:
    """Expected revenue of 1 TH/s over one day, in the currency of `btc_price`."""
    if difficulty <= 0 or not math.isfinite(difficulty):
        raise EnergyError(f"bad difficulty {difficulty!r}")
    if subsidy_btc < 0 or fees_btc < 0 or btc_price < 0:
        raise EnergyError("subsidy, fees and price must be non-negative")
    blocks_per_day = SECONDS_PER_DAY * 1e12 / (difficulty * 2**32)
    return blocks_per_day * (subsidy_btc + fees_btc) * btc_price


def efficiency_j_per_th(power_w: float | None, hashrate_ths: float) -> float | None:
    if power_w is None or hashrate_ths <= 0:
        return None
    return power_w / hashrate_ths


def energy_cost(power_w: float, seconds: float, price_per_mwh: float) -> float:
    """Cost of drawing `power_w` for `seconds` at a flat price."""
    return power_w * seconds / 3600.0 / 1e6 * price_per_mwh


def breakeven_price_per_mwh(efficiency: float, hashprice: float) -> float:
    """The electricity price at which a machine of `efficiency` J/TH earns exactly its power bill."""
    if efficiency <= 0:
        raise EnergyError(f"bad efficiency {efficiency!r}")
    mwh_per_th_day = efficiency * SECONDS_PER_DAY / 3600.0 / 1e6
    return hashprice / mwh_per_th_day


@dataclass(frozen=True, slots=True)
class PricePoint:
    start: float  # UNIX seconds; the price holds until the next point
    price_per_mwh: float


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EnergyError(f"bad time {text!r}: want UNIX seconds or ISO 8601") from exc
    if dt.tzinfo is None:
        raise EnergyError(f"time {text!r} has no timezone")
    return dt.timestamp()


class PriceSchedule:
    """A step function of electricity price over time."""

    def __init__(self, points: Iterable[PricePoint]) -> None:
        pts = sorted(points, key=lambda p: p.start)
        if not pts:
            raise EnergyError("empty price schedule")
        if len(pts) > MAX_PRICE_ROWS:
            raise EnergyError(f"price schedule has more than {MAX_PRICE_ROWS} rows")
        for p in pts:
            if not math.isfinite(p.price_per_mwh) or not math.isfinite(p.start):
                raise EnergyError(f"bad price point {p}")
        self.points = tuple(pts)
        self._starts = [p.start for p in pts]

    @classmethod
    def flat(cls, price_per_mwh: float) -> PriceSchedule:
        return cls([PricePoint(0.0, price_per_mwh)])

    @classmethod
    def from_csv(cls, text: str) -> PriceSchedule:
        """CSV with a header: `start` (UNIX seconds or ISO 8601 with zone) and either `price_per_mwh` or
        `price_per_kwh`. Negative prices are allowed (they happen in real markets)."""
        reader = csv.DictReader(io.StringIO(text))
        fields = set(reader.fieldnames or ())
        if "start" not in fields or not ({"price_per_mwh", "price_per_kwh"} & fields):
            raise EnergyError("price CSV needs columns start and price_per_mwh (or price_per_kwh)")
        scale, col = (1.0, "price_per_mwh") if "price_per_mwh" in fields else (1000.0, "price_per_kwh")
        points = []
        for n, row in enumerate(reader, start=2):
            if n > MAX_PRICE_ROWS + 1:
                raise EnergyError(f"price schedule has more than {MAX_PRICE_ROWS} rows")
            try:
                points.append(PricePoint(_parse_time(row["start"] or ""), float(row[col] or "") * scale))
            except (ValueError, TypeError) as exc:
                raise EnergyError(f"price CSV line {n}: {exc}") from exc
        return cls(points)

    @classmethod
    def from_json(cls, data: object) -> PriceSchedule:
        """`[{"start": ..., "price_per_mwh": ...}, ...]`, the shape `fetch_price_schedule` expects."""
        if not isinstance(data, list):
            raise EnergyError("price JSON must be a list")
        points = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "start" not in item or "price_per_mwh" not in item:
                raise EnergyError(f"price JSON item {i} needs start and price_per_mwh")
            try:
                points.append(PricePoint(_parse_time(str(item["start"])), float(item["price_per_mwh"])))
            except (TypeError, ValueError) as exc:
                raise EnergyError(f"price JSON item {i}: {exc}") from exc
        return cls(points)

    def price_at(self, t: float) -> float:
        i = bisect.bisect_right(self._starts, t) - 1
        return self.points[max(i, 0)].price_per_mwh

    def cost(self, power_w: float, start: float, end: float) -> float:
        """Cost of a constant draw over [start, end), integrating across price steps."""
        if end <= start:
            return 0.0
        total = 0.0
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        t = start
        while t < end:
            nxt = self._starts[i + 1] if i + 1 < len(self._starts) else math.inf
            seg_end = min(end, nxt)
            total += energy_cost(power_w, seg_end - t, self.points[i].price_per_mwh)
            t = seg_end
            i += 1
        return total


async def fetch_price_schedule(url: str, timeout_s: float = 10.0) -> PriceSchedule:
    """Fetch a schedule from a JSON price API (list of {start, price_per_mwh})."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            raise EnergyError(f"price API {url}: {exc}") from exc
    if resp.status_code != 200:
        raise EnergyError(f"price API {url}: HTTP {resp.status_code}")
    if len(resp.content) > MAX_PRICE_REPLY_BYTES:
        raise EnergyError(f"price API {url}: reply too large")
    try:
        return PriceSchedule.from_json(resp.json())
    except ValueError as exc:
        raise EnergyError(f"price API {url}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class EnergyLine:
    """Sums for one device, rack or site. Efficiency and money only count devices that report power."""

    key: str
    devices: int
    hashing: int
    hashrate_ths: float
    power_w: float
    metered_hashrate_ths: float  # hashrate of the devices whose power is known
    efficiency_j_per_th: float | None
    cost_per_day: float
    revenue_per_day: float | None

    hashprice: float | None = None
    metered_devices: int = 0

    @property
    def profit_per_day(self) -> float | None:
        """Revenue minus power cost over the devices that report power only: a device without a meter
        has unknown cost, so counting its revenue would overstate profit."""
        if self.hashprice is None:
            return None
        return self.metered_hashrate_ths * self.hashprice - self.cost_per_day


@dataclass(frozen=True, slots=True)
class EnergyReport:
    time: float
    price_per_mwh: float
    hashprice: float | None
    fleet: EnergyLine
    sites: tuple[EnergyLine, ...]
    racks: tuple[EnergyLine, ...]
    devices: tuple[EnergyLine, ...]


def counted_reading(st: DeviceStatus, now: float | None = None, max_age_s: float | None = None) -> Reading | None:
    """The reading a total may count: the last poll's, of a device that answered it (state OK), and with
    `max_age_s`, no older than that at `now`. A failing device keeps its last good reading in its status
    (to show what it last said), but it is not hashing now, so no sum may count it."""
    r = st.reading
    if r is None or st.state is not DeviceState.OK:
        return None
    if max_age_s is not None and now is not None and st.time < now - max_age_s:
        return None
    return r


def _line(key: str, sts: Sequence[DeviceStatus], price: float, hashprice: float | None,
          now: float | None = None, max_age_s: float | None = None) -> EnergyLine:
    hashrate = power = metered = 0.0
    hashing = metered_n = 0
    for st in sts:
        r = counted_reading(st, now, max_age_s)
        if r is None:
            continue
        hashrate += r.hashrate_ths
        hashing += r.hashrate_ths > 0
        if r.power_w is not None:
            power += r.power_w
            metered += r.hashrate_ths
            metered_n += 1
    return EnergyLine(
        key=key, devices=len(sts), hashing=hashing, hashrate_ths=hashrate, power_w=power,
        metered_hashrate_ths=metered,
        efficiency_j_per_th=power / metered if metered > 0 else None,
        cost_per_day=energy_cost(power, SECONDS_PER_DAY, price),
        revenue_per_day=None if hashprice is None else hashrate * hashprice,
        hashprice=hashprice, metered_devices=metered_n,
    )


def energy_report(statuses: Sequence[DeviceStatus], now: float, price_per_mwh: float,
                  hashprice: float | None = None, max_age_s: float | None = None) -> EnergyReport:
    """Power, J/TH, cost and revenue per device, rack (site/rack) and site from latest statuses; with
    `max_age_s`, a reading older than that at `now` is not counted (see `counted_reading`)."""
    sites: dict[str, list[DeviceStatus]] = {}
    racks: dict[str, list[DeviceStatus]] = {}
    for st in statuses:
        lab = st.device.labels
        sites.setdefault(lab.site or "-", []).append(st)
        racks.setdefault(f"{lab.site or '-'}/{lab.rack or '-'}", []).append(st)
    return EnergyReport(
        time=now, price_per_mwh=price_per_mwh, hashprice=hashprice,
        fleet=_line("fleet", statuses, price_per_mwh, hashprice, now, max_age_s),
        sites=tuple(_line(k, v, price_per_mwh, hashprice, now, max_age_s) for k, v in sorted(sites.items())),
        racks=tuple(_line(k, v, price_per_mwh, hashprice, now, max_age_s) for k, v in sorted(racks.items())),
        devices=tuple(_line(st.device.id, [st], price_per_mwh, hashprice, now, max_age_s) for st in statuses),
    )

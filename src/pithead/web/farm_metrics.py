"""Prometheus series of the farm, served at GET /farm/metrics (the farm router's own scrape endpoint).

Read from the store at scrape time (on the store's own thread, like every farm read), by site, rack and
model -- and by state for the machine counts:

    pithead_farm_machines{site,rack,model,state}                        machines in each state
    pithead_farm_hashrate_hashes_per_second{site,rack,model}            of the machines answering now
    pithead_farm_power_watts{site,rack,model}                           (those that report power)
    pithead_farm_efficiency_joules_per_terahash{site,rack,model}        power / hashrate of those reporting both
    pithead_farm_chip_temperature_max_celsius{site,rack,model}          hottest chip sensor
    pithead_farm_board_temperature_max_celsius{site,rack,model}         hottest board sensor
    pithead_farm_alerts_open{kind,severity}                             open alerts (a group alert counts once)
    pithead_farm_alerts_open_machines{kind}                             machines those alerts cover
    pithead_farm_silences{}                                             silences in force

Only machines whose last poll answered (state ok) count in hashrate, power and temperatures: a machine
that stopped answering keeps its last reading in the store, and summing it would show hashrate the farm
no longer has. Per-machine series (`pithead_farm_machine_*{machine,site,rack,model}`: hashrate, power,
hottest chip, up) only with `per_machine` (`[farm] metrics_per_machine`): at 500,000 machines that is
millions of series, which a big site's Prometheus should not be made to hold unasked.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pithead.farm.model import DeviceState
from pithead.farm.store import FarmStore

TH = 1e12  # hashes per second in one TH/s


@dataclass
class _Group:
    hashrate_ths: float = 0.0
    power_w: float = 0.0
    eff_power_w: float = 0.0  # power and hashrate of the machines that report both, for J/TH
    eff_ths: float = 0.0
    chip_max: float | None = None
    board_max: float | None = None
    answering: int = 0


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class FarmCollector(Collector):
    """Collects from the store given at `collect()` time (see `farm_metrics_text`)."""

    def __init__(self, per_machine: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.per_machine = per_machine
        self.clock = clock
        self.store: FarmStore | None = None

    def collect(self) -> Iterator[Metric]:
        store = self.store
        if store is None:
            return
        labels = ["site", "rack", "model"]
        machines = GaugeMetricFamily("pithead_farm_machines", "Machines by site, rack, model and state",
                                     labels=[*labels, "state"])
        fams = {
            "hashrate": GaugeMetricFamily("pithead_farm_hashrate_hashes_per_second",
                                          "Hashrate the answering machines report", labels=labels),
            "power": GaugeMetricFamily("pithead_farm_power_watts", "Power the answering machines report",
                                       labels=labels),
            "eff": GaugeMetricFamily("pithead_farm_efficiency_joules_per_terahash",
                                     "Power over hashrate of the machines reporting both", labels=labels),
            "chip": GaugeMetricFamily("pithead_farm_chip_temperature_max_celsius", "Hottest chip sensor",
                                      labels=labels),
            "board": GaugeMetricFamily("pithead_farm_board_temperature_max_celsius", "Hottest board sensor",
                                       labels=labels),
        }
        per = {
            "hashrate": GaugeMetricFamily("pithead_farm_machine_hashrate_hashes_per_second",
                                          "One machine's hashrate (per_machine)", labels=["machine", *labels]),
            "power": GaugeMetricFamily("pithead_farm_machine_power_watts", "One machine's power (per_machine)",
                                       labels=["machine", *labels]),
            "chip": GaugeMetricFamily("pithead_farm_machine_chip_temperature_max_celsius",
                                      "One machine's hottest chip (per_machine)", labels=["machine", *labels]),
            "up": GaugeMetricFamily("pithead_farm_machine_up", "1 when the machine's last poll answered "
                                    "(per_machine)", labels=["machine", *labels]),
        }
        counts: Counter[tuple[str, str, str, str]] = Counter()
        groups: dict[tuple[str, str, str], _Group] = {}
        for st in store.statuses():
            lab = st.device.labels
            key = (lab.site, lab.rack, st.device.identity.model)
            counts[(*key, st.state.value)] += 1
            g = groups.setdefault(key, _Group())
            r = st.reading if st.state is DeviceState.OK else None
            if self.per_machine:
                ml = [st.device.id, *key]
                per["up"].add_metric(ml, 1.0 if r is not None else 0.0)
                if r is not None:
                    per["hashrate"].add_metric(ml, r.hashrate_ths * TH)
                    if r.power_w is not None:
                        per["power"].add_metric(ml, r.power_w)
                    if r.max_chip_temp_c is not None:
                        per["chip"].add_metric(ml, r.max_chip_temp_c)
            if r is None:
                continue
            g.answering += 1
            g.hashrate_ths += r.hashrate_ths
            if r.power_w is not None:
                g.power_w += r.power_w
                if r.hashrate_ths > 0:
                    g.eff_power_w += r.power_w
                    g.eff_ths += r.hashrate_ths
            g.chip_max = _max(g.chip_max, r.max_chip_temp_c)
            g.board_max = _max(g.board_max, r.max_board_temp_c)
        for k, n in sorted(counts.items()):
            machines.add_metric(list(k), n)
        yield machines
        for key, g in sorted(groups.items()):
            if not g.answering:
                continue
            fams["hashrate"].add_metric(list(key), g.hashrate_ths * TH)
            fams["power"].add_metric(list(key), g.power_w)
            if g.eff_ths > 0:
                fams["eff"].add_metric(list(key), g.eff_power_w / g.eff_ths)
            if g.chip_max is not None:
                fams["chip"].add_metric(list(key), g.chip_max)
            if g.board_max is not None:
                fams["board"].add_metric(list(key), g.board_max)
        yield from fams.values()
        if self.per_machine:
            yield from per.values()
        open_ = GaugeMetricFamily("pithead_farm_alerts_open", "Open farm alerts (a rack or site alert counts "
                                  "once)", labels=["kind", "severity"])
        covered = GaugeMetricFamily("pithead_farm_alerts_open_machines", "Machines the open alerts cover",
                                    labels=["kind"])
        by_kind: Counter[tuple[str, str]] = Counter()
        machines_by_kind: Counter[str] = Counter()
        for a in store.open_alerts():
            by_kind[(a.kind, a.severity)] += 1
            machines_by_kind[a.kind] += a.machines
        for (kind, severity), n in sorted(by_kind.items()):
            open_.add_metric([kind, severity], n)
        for kind, n in sorted(machines_by_kind.items()):
            covered.add_metric([kind], n)
        yield open_
        yield covered
        silences = GaugeMetricFamily("pithead_farm_silences", "Alert silences in force")
        silences.add_metric([], len(store.silences(self.clock())))
        yield silences


class FarmMetrics:
    """A registry of its own (never the process-global one) holding the farm's collector."""

    def __init__(self, per_machine: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = FarmCollector(per_machine, clock)
        self.registry.register(self.collector)

    def text(self, store: FarmStore) -> bytes:
        """The exposition text, read from `store` (call it on the store's thread: `AsyncFarmStore.call`)."""
        self.collector.store = store
        try:
            return generate_latest(self.registry)
        finally:
            self.collector.store = None


def farm_metrics_text(store: FarmStore, metrics: FarmMetrics) -> bytes:
    return metrics.text(store)

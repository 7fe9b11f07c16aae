"""Prometheus metrics for /metrics, read from the same services as the API at scrape time.

One `CollectorRegistry` per app (never the process-global default registry, so two apps in one process,
as in the tests, never collide). Share, block and worker figures are read from the ledger store when
Prometheus scrapes, so they are always the ledger's truth and survive restarts; the node's RPC latency is
a histogram observed on every status call the web app makes.

Metric names follow Prometheus conventions (`_total` counters, base units: hashes per second, seconds).

Block withholding: the pool's blocks expected and found (counters, so luck over any range is a PromQL
ratio of increases), its luck with the 90 % interval, the round's effort, and how many workers and
addresses are flagged, with one series per flagged one (its blocks expected, found and P(X <= k)), at most
MAX_FLAGGED_SERIES of them, so a flood of flags cannot blow up the scrape. Alert on
`pithead_withholding_flagged > 0`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pithead.ledger import withholding
from pithead.ledger.ledger import first_seen_of, is_online
from pithead.ledger.store.records import BlockStatus, OddsKind
from pithead.web import queries

if TYPE_CHECKING:
    from pithead.web.models import NetworkStatus
    from pithead.web.network import NodeMonitor
    from pithead.web.services import Services, StoreReader

# Node RPC round trips: local calls take well under a millisecond, a loaded remote node seconds.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Flagged workers and addresses given a series each: flags are rare (an honest worker carries one with
# probability at most the level), so this is far above any real count and bounds what a scrape returns.
MAX_FLAGGED_SERIES = 100


class PitheadCollector(Collector):
    def __init__(self, services: Services, monitor: NodeMonitor) -> None:
        self._services = services
        self._monitor = monitor
        self.last_network: NetworkStatus | None = None

    def collect(self) -> Iterator[Metric]:
        s = self._services
        now = s.clock()
        store = s.store
        if store is not None:
            workers = store.workers()
            shares = CounterMetricFamily(
                "pithead_shares", "Shares judged by the pool, by result and reject reason", labels=["result", "reason"]
            )
            shares.add_metric(["accepted", ""], sum(w.accepted for w in workers))
            for reason, n in sorted(store.rejects_since(0.0).items()):
                shares.add_metric(["rejected", reason], n)
            yield shares
            work = CounterMetricFamily("pithead_accepted_difficulty", "Sum of the difficulty of accepted shares")
            work.add_metric([], sum(w.accepted_difficulty for w in workers))
            yield work
            rate = GaugeMetricFamily(
                "pithead_pool_hashrate_hashes_per_second",
                "Pool hashrate estimated from accepted shares (absent when too few shares)",
                labels=["window"],
            )
            low = GaugeMetricFamily(
                "pithead_pool_hashrate_low_hashes_per_second", "Lower bound of the 90% interval", labels=["window"]
            )
            high = GaugeMetricFamily(
                "pithead_pool_hashrate_high_hashes_per_second", "Upper bound of the 90% interval", labels=["window"]
            )
            observed = GaugeMetricFamily(
                "pithead_pool_hashrate_observed_seconds",
                "Seconds of each window the pool hashrate is over: the window from the pool's first share, counting"
                " only the time the pool was up",
                labels=["window"],
            )
            for h in queries.hashrate_windows(store, now, s.bucket_width_s, first_seen=first_seen_of(workers)):
                observed.add_metric([h.window], h.observed_s)
                if h.hashrate_hps is not None and h.low_hps is not None and h.high_hps is not None:
                    rate.add_metric([h.window], h.hashrate_hps)
                    low.add_metric([h.window], h.low_hps)
                    high.add_metric([h.window], h.high_hps)
            yield rate
            yield low
            yield high
            yield observed
            wg = GaugeMetricFamily("pithead_workers", "Workers known to the ledger, and those online", labels=["state"])
            wg.add_metric(["known"], len(workers))
            wg.add_metric(
                ["online"],
                sum(1 for w in workers if is_online(w.last_share_time, now)),
            )
            yield wg
            blocks = GaugeMetricFamily("pithead_blocks", "Blocks found by the pool, by status", labels=["status"])
            counts = {st: 0 for st in BlockStatus}
            for b in store.blocks(queries.MAX_LIMIT * 100):
                counts[b.status] += 1
            for st, n in counts.items():
                blocks.add_metric([str(st)], n)
            yield blocks
            yield from self._withholding(store)
        if s.pool is not None:
            live = s.pool.live_status()
            conns = GaugeMetricFamily("pithead_stratum_connections", "Open Stratum connections")
            conns.add_metric([], live.connections)
            yield conns
        age = self._monitor.template_age()
        if age is not None:
            ta = GaugeMetricFamily("pithead_template_age_seconds", "Seconds since the pool received a block template")
            ta.add_metric([], age)
            yield ta
        net = self.last_network
        if net is not None:
            up = GaugeMetricFamily("pithead_node_up", "1 when the node answered its last status call")
            up.add_metric([], 1.0 if net.available else 0.0)
            yield up
            if net.height is not None:
                height = GaugeMetricFamily("pithead_node_height", "Best block height reported by the node")
                height.add_metric([], net.height)
                yield height
            if net.difficulty is not None:
                d = GaugeMetricFamily("pithead_network_difficulty", "Network difficulty reported by the node")
                d.add_metric([], net.difficulty)
                yield d


    def _withholding(self, store: StoreReader) -> Iterator[Metric]:
        pools = store.block_odds(OddsKind.POOL, [""])
        expected = CounterMetricFamily(
            "pithead_pool_blocks_expected",
            "Blocks the pool's accepted share work should have found: the sum of min(1, d/D) over its shares",
        )
        found = CounterMetricFamily("pithead_pool_blocks_solved", "Blocks whose solution the pool's miners submitted")
        expected.add_metric([], pools[0].expected if pools else 0.0)
        found.add_metric([], pools[0].found if pools else 0)
        yield expected
        yield found
        luck, round_effort = queries.pool_luck(store)
        families = {
            name: GaugeMetricFamily(f"pithead_pool_luck{suffix}", help_, labels=["span"])
            for name, suffix, help_ in (
                ("luck", "", "Blocks found per block expected (1 as expected), over all work or the last N blocks"),
                ("low", "_low", "Lower bound of the 90% interval of the pool's luck"),
                ("high", "_high", "Upper bound of the 90% interval of the pool's luck"),
            )
        }
        for item in luck:
            if item.luck is not None and item.low is not None and item.high is not None:
                families["luck"].add_metric([item.span], item.luck)
                families["low"].add_metric([item.span], item.low)
                families["high"].add_metric([item.span], item.high)
        yield from families.values()
        if round_effort is not None:
            effort = GaugeMetricFamily("pithead_round_effort", "Blocks expected of the pool's work since its last block")
            effort.add_metric([], round_effort)
            yield effort
        flagged = store.flagged_odds(MAX_FLAGGED_SERIES)
        count = GaugeMetricFamily("pithead_withholding_flagged", "Workers and addresses flagged as possibly"
                                  " withholding blocks", labels=["kind"])
        counts = store.flagged_counts()
        for kind in (OddsKind.WORKER, OddsKind.ADDRESS):
            count.add_metric([str(kind)], counts.get(kind, 0))
        yield count
        per = {
            name: GaugeMetricFamily(f"pithead_withholding_{name}", help_, labels=["kind", "name"])
            for name, help_ in (
                ("expected_blocks", "A flagged worker's or address's blocks expected from its share work"),
                ("found_blocks", "A flagged worker's or address's blocks found"),
                ("p_value", "P(X <= found) for X ~ Poisson(expected): how often an honest miner finds this few"),
            )
        }
        for r in flagged:
            labels = [str(r.kind), r.name]
            per["expected_blocks"].add_metric(labels, r.expected)
            per["found_blocks"].add_metric(labels, r.found)
            per["p_value"].add_metric(labels, withholding.poisson_cdf(r.found, r.expected))
        yield from per.values()
        held = GaugeMetricFamily("pithead_payouts_held", "Addresses whose payouts an operator holds")
        held.add_metric([], len(store.payout_holds()))
        yield held


class Metrics:
    """The app's registry: the collector above plus the RPC latency histogram."""

    def __init__(self, services: Services, monitor: NodeMonitor) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rpc_latency = Histogram(
            "pithead_node_rpc_latency_seconds",
            "Round trip of the web app's JSON-RPC calls to the node",
            labelnames=["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.collector = PitheadCollector(services, monitor)
        self.registry.register(self.collector)

    def observe_latency(self, method: str, seconds: float) -> None:
        self.rpc_latency.labels(method=method).observe(seconds)

"""The notifier's counts as one Prometheus metric family, for the web app's /metrics.

`NotifierCollector(notifier)` yields `pithead_notifications_total{destination, outcome}`: per destination
(its label, secrets elided) the messages sent, failed (given up after every attempt), retried (attempts
that failed and were tried again) and dropped (a full queue); under `destination=""` the notifier's own
drops (before routing), folds (dedup) and notices no route takes. The assembly registers it on the web
app's registry when both run; nothing here serves HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from pithead.notify.notifier import Notifier


class NotifierCollector(Collector):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "pithead_notifications",
            "Notices by destination and outcome (sent, failed, retried, dropped); destination \"\": dropped "
            "before routing, folded by dedup, unrouted",
            labels=["destination", "outcome"],
        )
        for destination, outcome, n in self._notifier.counts():
            family.add_metric([destination, outcome], n)
        yield family

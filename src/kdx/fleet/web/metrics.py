"""``/metrics``: the fleet's numbers in Prometheus text, read fresh on every scrape.

Each app has its own ``CollectorRegistry`` (two apps in one process, as in tests, never
clash). ``Fleet.metrics()`` gives plain numbers: a number becomes a gauge, a mapping a
gauge with one label value per key (jobs by state), and a list of seconds a histogram
(analysis time, time from receipt to first result).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

__all__ = ["BUCKETS", "FleetCollector", "metrics_text"]

#: Histogram buckets in seconds: from the fast pass (well under 2 s) to the hard limit.
BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

_LABEL = {"jobs": "state", "jobs_by_state": "state", "dumps": "state"}


def _name(key: str) -> str:
    return "kdx_" + re.sub(r"[^a-z0-9_]", "_", key.lower()).strip("_")


def _histogram(name: str, key: str, values: list[float]) -> HistogramMetricFamily:
    counts, cumulative = [], 0
    ordered = sorted(float(v) for v in values)
    i = 0
    for edge in BUCKETS:
        while i < len(ordered) and ordered[i] <= edge:
            i += 1
        cumulative = i
        counts.append((repr(edge), cumulative))
    counts.append(("+Inf", len(ordered)))
    return HistogramMetricFamily(name, f"kdx fleet {key.replace('_', ' ')}",
                                 buckets=counts, sum_value=sum(ordered))


class FleetCollector:
    """A Prometheus collector asking ``read()`` (``Fleet.metrics``) at each scrape."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for key, value in sorted(self.read().items()):
            name = _name(key)
            if isinstance(value, dict):
                gauge = GaugeMetricFamily(name, f"kdx fleet {key.replace('_', ' ')}",
                                          labels=[_LABEL.get(key, "key")])
                for label, number in sorted(value.items()):
                    gauge.add_metric([str(label)], float(number))
                yield gauge
            elif isinstance(value, (list, tuple)):
                yield _histogram(name.removesuffix("_seconds") + "_seconds", key, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                yield GaugeMetricFamily(name, f"kdx fleet {key.replace('_', ' ')}",
                                        value=float(value))


def metrics_text(read: Callable[[], dict[str, Any]]) -> tuple[CollectorRegistry, Callable[[],
                                                                                      bytes]]:
    """A registry holding the fleet collector, and the function rendering it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(read))
    return registry, lambda: generate_latest(registry)

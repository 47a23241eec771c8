"""Lean in-memory metric families for the server's own hot path.

The server records its built-in metrics in the one process every request passes through,
so they need neither locks nor files: a counter increment is a dict update, a histogram
observation a ``bisect`` and two additions. ``Families.collect`` turns them into
prometheus-client metric families at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

Labels = tuple[str, ...]


class Counter:
    """A monotonically increasing value per label set (exposed as ``name_total``)."""

    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):  # scrapes run off the loop
            family.add_metric(labels, value)
        return family


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def dec(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) - amount

    def family(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):  # scrapes run off the loop
            family.add_metric(labels, value)
        return family


class Histogram:
    """Bucketed observations per label set (``_bucket``, ``_sum``, ``_count``)."""

    kind = "histogram"

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        # Per label set: [count per bucket (last: +Inf)..., sum].
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.values.get(labels)
        if counts is None:
            counts = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def count(self, labels: Labels) -> float:
        counts = self.values.get(labels)
        return sum(counts[:-1]) if counts else 0.0

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        edges.append("+Inf")
        for labels, counts in list(self.values.items()):  # scrapes run off the loop
            counts = list(counts)
            cumulative, buckets = 0.0, []
            for edge, count in zip(edges, counts[:-1], strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(labels, buckets, counts[-1])
        return family


class Families:
    """A set of families, collected together (a prometheus-client custom collector)."""

    def __init__(self) -> None:
        self.families: list[Counter | Histogram] = []

    def add(self, family: Any) -> Any:
        self.families.append(family)
        return family

    def collect(self) -> Iterator[Any]:
        for family in self.families:
            if family.values:
                yield family.family()

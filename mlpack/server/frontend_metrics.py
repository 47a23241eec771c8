"""The supervisor's scrape: every front-end's in-memory families, summed, plus a label each.

Counters, gauges and histogram buckets of the same name and labels add up across
front-ends, so a scrape reads as one server's (dashboards keep working). Per front-end
(``frontend`` label, its index): ``frontend_requests_total`` (REST requests + gRPC calls
it answered), ``frontend_ready`` (1 once it serves) and ``frontend_restarts_total``.

Counters stay monotonic when a front-end dies: the supervisor keeps each front-end's last
collected families (a scrape and every ``frontend_collect_interval`` seconds) and, when
one dies, ``retire`` folds its counter, histogram and summary samples into a retained base
that every later scrape adds (gauges are dropped: they describe live state). The
``frontend`` series belong to the position (0 .. N-1), which its replacement takes over,
so they keep counting too. What a dead front-end counted after its last collect is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .frontend_link import FamilySnapshot
from .metrics import ASGIApp, Receive, Scope, Send

# Families whose samples count answered requests (REST by route and status; gRPC by code).
_REQUEST_SAMPLES = ("_requests_total", "grpc_server_handled_total")
# Family kinds whose samples only grow, so a dead front-end's last values are kept.
_KEPT_KINDS = frozenset({"counter", "histogram", "summary"})

_SampleKey = tuple[str, tuple[tuple[str, str], ...]]
# family name -> (documentation, kind, summed value per sample)
_Merged = dict[str, tuple[str, str, dict[_SampleKey, float]]]


def _add(merged: _Merged, families: Iterable[FamilySnapshot], kinds: frozenset[str] | None) -> None:
    """Add ``families``' samples into ``merged`` (only families of ``kinds``, if given)."""
    for name, documentation, kind, samples in families:
        if kinds is not None and kind not in kinds:
            continue
        _, _, values = merged.setdefault(name, (documentation, kind, {}))
        for sample_name, labels, value in samples:
            key = (sample_name, tuple(sorted(labels.items())))
            values[key] = values.get(key, 0.0) + value


def _requests(families: Iterable[FamilySnapshot]) -> float:
    """REST requests + gRPC calls counted in ``families``."""
    return sum(
        value
        for _, _, _, samples in families
        for sample_name, _, value in samples
        if sample_name.endswith(_REQUEST_SAMPLES)
    )


class _SlotView(Protocol):
    index: int
    ready: bool
    restarts: int
    families: list[FamilySnapshot]


class FrontendCollector:
    """A prometheus-client collector over the front-ends' last snapshots and what dead
    front-ends counted (``retire``)."""

    def __init__(self, slots: Sequence[_SlotView]) -> None:
        self.slots = slots
        self._retained: _Merged = {}
        self._retained_requests: dict[int, float] = {}  # per front-end position
        # Scrapes render off the event loop; ``retire`` runs on it.
        self._lock = threading.Lock()

    def retire(self, slot: _SlotView) -> None:
        """A front-end died: keep its last counters/histograms/summaries, drop the rest."""
        with self._lock:
            families, slot.families = slot.families, []
            _add(self._retained, families, _KEPT_KINDS)
            index = slot.index
            self._retained_requests[index] = self._retained_requests.get(index, 0.0) + _requests(
                families
            )

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        merged: _Merged = {}
        with self._lock:
            _add(merged, self._iter_retained(), None)
            live = [(slot, slot.families) for slot in self.slots]
            served = {
                slot.index: self._retained_requests.get(slot.index, 0.0) + _requests(families)
                for slot, families in live
            }
        for _, families in live:
            _add(merged, families, None)
        for name, (documentation, kind, values) in merged.items():
            family = Metric(name, documentation, kind)
            for (sample_name, label_pairs), value in values.items():
                family.add_sample(sample_name, dict(label_pairs), value)
            yield family
        requests = CounterMetricFamily(
            "frontend_requests",
            "REST requests and gRPC calls answered, per front-end process.",
            labels=("frontend",),
        )
        ready = GaugeMetricFamily(
            "frontend_ready", "1 when the front-end process serves.", labels=("frontend",)
        )
        restarts = CounterMetricFamily(
            "frontend_restarts",
            "Front-end processes replaced after they died.",
            labels=("frontend",),
        )
        for slot in self.slots:
            label = (str(slot.index),)
            requests.add_metric(label, served[slot.index])
            ready.add_metric(label, 1.0 if slot.ready else 0.0)
            restarts.add_metric(label, float(slot.restarts))
        yield requests
        yield ready
        yield restarts

    def _iter_retained(self) -> Iterator[FamilySnapshot]:
        for name, (documentation, kind, values) in self._retained.items():
            samples = [(sample, dict(labels), value) for (sample, labels), value in values.items()]
            yield name, documentation, kind, samples


def refreshing(app: ASGIApp, refresh: Callable[[], Awaitable[None]]) -> ASGIApp:
    """Run ``refresh`` (collect the front-ends' families) before each HTTP request."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await refresh()
        await app(scope, receive, send)

    return wrapper

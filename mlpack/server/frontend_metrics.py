"""The supervisor's scrape: every front-end's in-memory families, summed, plus a label each.

Counters, gauges and histogram buckets of the same name and labels add up across
front-ends, so a scrape reads as one server's (dashboards keep working). Per front-end
(``frontend`` label, its index): ``frontend_requests_total`` (REST requests + gRPC calls
it answered), ``frontend_ready`` (1 once it serves) and ``frontend_restarts_total``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

from .frontend_link import FamilySnapshot
from .metrics import ASGIApp, Receive, Scope, Send

# Families whose samples count answered requests (REST by route and status; gRPC by code).
_REQUEST_SAMPLES = ("_requests_total", "grpc_server_handled_total")


class _SlotView(Protocol):
    index: int
    ready: bool
    restarts: int
    families: list[FamilySnapshot]


class FrontendCollector:
    """A prometheus-client collector over the front-ends' last snapshots."""

    def __init__(self, slots: Sequence[_SlotView]) -> None:
        self.slots = slots

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        merged: dict[
            str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]
        ] = {}
        for slot in self.slots:
            for name, documentation, kind, samples in slot.families:
                _, _, values = merged.setdefault(name, (documentation, kind, {}))
                for sample_name, labels, value in samples:
                    key = (sample_name, tuple(sorted(labels.items())))
                    values[key] = values.get(key, 0.0) + value
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
            total = sum(
                value
                for _, _, _, samples in slot.families
                for sample_name, _, value in samples
                if sample_name.endswith(_REQUEST_SAMPLES)
            )
            requests.add_metric(label, total)
            ready.add_metric(label, 1.0 if slot.ready else 0.0)
            restarts.add_metric(label, float(slot.restarts))
        yield requests
        yield ready
        yield restarts


def refreshing(app: ASGIApp, refresh: Callable[[], Awaitable[None]]) -> ASGIApp:
    """Run ``refresh`` (collect the front-ends' families) before each HTTP request."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await refresh()
        await app(scope, receive, send)

    return wrapper

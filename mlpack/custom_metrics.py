"""Custom metrics: ``mlpack.register`` in a model's ``load()``, ``mlpack.log`` in ``predict()``.

Each custom metric is a Prometheus histogram labelled ``model_name`` and ``model_version``
(taken from the model whose code is running). Under ``mlpack start`` values are written
to the server's metrics folder (prometheus-client multiprocess mode), so values logged in
worker processes are summed with the server's own on every scrape.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from ._context import current_model

if TYPE_CHECKING:
    from prometheus_client import Histogram

LABELS = ("model_name", "model_version")
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

_lock = threading.Lock()
_metrics: dict[str, Histogram] = {}


def register(name: str, description: str = "", buckets: list[float] | None = None) -> Histogram:
    """Declare a custom metric (a histogram); registering a name again returns the same one."""
    from prometheus_client import Histogram

    if not _NAME.match(name):
        raise ValueError(f"custom metric name {name!r} is not a valid Prometheus metric name")
    with _lock:
        metric = _metrics.get(name)
        if metric is None:
            kwargs: dict[str, Any] = {"registry": None}
            if buckets is not None:
                kwargs["buckets"] = buckets
            metric = Histogram(name, description or name, LABELS, **kwargs)
            _metrics[name] = metric
        return metric


def log(**values: float) -> None:
    """Observe each value, labelled with the running model; unknown names get registered."""
    model = current_model()
    name, version = model if model is not None else ("", "")
    for metric_name, value in values.items():
        metric = _metrics.get(metric_name) or register(metric_name)
        metric.labels(name, version).observe(value)


def _reset() -> None:
    """Forget every custom metric (a new server in this process starts from scratch)."""
    with _lock:
        _metrics.clear()

"""``mlpack.register`` / ``mlpack.log``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mlpack
from mlpack import custom_metrics
from mlpack._context import current_model, model_scope


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    custom_metrics._reset()
    yield
    custom_metrics._reset()


def value(name: str, model: str, version: str, suffix: str) -> float:
    metric = custom_metrics._metrics[name]
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == name + suffix and sample.labels == {
                "model_name": model,
                "model_version": version,
            }:
                return sample.value
    return 0.0


def test_log_labels_with_the_running_model() -> None:
    first = mlpack.register("latency_ms", "help")
    assert mlpack.register("latency_ms", "again") is first
    with model_scope("iris", "v1"):
        assert current_model() == ("iris", "v1")
        mlpack.log(latency_ms=3, unregistered=1)
    with model_scope("other", None):
        mlpack.log(latency_ms=5)
    assert current_model() is None
    assert value("latency_ms", "iris", "v1", "_sum") == 3
    assert value("latency_ms", "other", "", "_count") == 1
    assert value("unregistered", "iris", "v1", "_count") == 1


def test_invalid_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid Prometheus metric name"):
        mlpack.register("bad name")

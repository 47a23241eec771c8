"""Metrics folder (multiprocess aggregation), collectors, REST middleware, scrape app."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mlpack
from mlpack._context import model_scope
from mlpack.engine.stats import InferEvent, InferTiming
from mlpack.server.metrics import MULTIPROC_ENV, MetricsFolder, ServerMetrics, build_metrics_app


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[MetricsFolder]:
    prepared = MetricsFolder(str(tmp_path / "metrics")).prepare()
    yield prepared
    prepared.close()


def samples(
    folder: MetricsFolder, *collectors: object
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(folder.render(*collectors).decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _worker(values: list[float]) -> None:
    """A spawned child, as an inference worker will be: logs custom metrics for a model."""
    with model_scope("child-model", "7"):
        mlpack.register("rows_seen", "rows")
        mlpack.log(**{"rows_seen": values[0]})
        mlpack.log(rows_seen=values[1])


def test_values_from_spawned_processes_are_summed(folder: MetricsFolder) -> None:
    assert os.environ[MULTIPROC_ENV] == folder.path
    with model_scope("child-model", "7"):
        mlpack.log(rows_seen=1)  # in this (the server) process
    context = multiprocessing.get_context("spawn")
    for values in ([2.0, 3.0], [4.0, 5.0]):
        child = context.Process(target=_worker, args=(values,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
    labels = (("model_name", "child-model"), ("model_version", "7"))
    found = samples(folder)
    assert found[("rows_seen_count", labels)] == 5
    assert found[("rows_seen_sum", labels)] == 15


def test_prepare_removes_stale_values_and_close_restores(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.mkdir()
    (path / "counter_999.db").write_bytes(b"stale")
    (path / "keep.txt").write_text("not ours")
    before = os.environ.get(MULTIPROC_ENV)
    folder = MetricsFolder(str(path)).prepare()
    assert not (path / "counter_999.db").exists() and (path / "keep.txt").exists()
    folder.close()
    assert os.environ.get(MULTIPROC_ENV) == before
    assert path.exists()  # a folder the user chose is never removed


def test_default_folder_is_temporary() -> None:
    folder = MetricsFolder().prepare()
    path = folder.path
    assert Path(path).is_dir()
    folder.close()
    assert not Path(path).exists()


def test_inference_metrics(folder: MetricsFolder) -> None:
    metrics = ServerMetrics()
    timing = InferTiming(queue_wait=0.001, batch_size=4, parallel_queue=2, batch_queue=3)
    metrics.on_infer(InferEvent("m", "1", True, 0.01, timing))
    metrics.on_infer(InferEvent("m", "1", True, 0.02, InferTiming(batch_size=4, executions=0)))
    metrics.on_infer(InferEvent("m", "1", False, 0.02, InferTiming()))
    labels = (("model_name", "m"), ("model_version", "1"))
    found = samples(folder, metrics.families)
    assert found[("model_infer_request_success_total", labels)] == 2
    assert found[("model_infer_request_failure_total", labels)] == 1
    assert found[("model_infer_request_duration_seconds_count", labels)] == 2
    assert found[("model_infer_batch_size_count", labels)] == 1  # one execution of 4
    assert found[("model_infer_batch_size_sum", labels)] == 4
    assert found[("batch_request_queue_sum", labels)] == 3
    assert found[("parallel_request_queue_sum", labels)] == 2


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


async def test_rest_middleware_labels_routes_and_status(folder: MetricsFolder) -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    metrics = ServerMetrics("api")
    app = Starlette(routes=[Route("/items/{item}", hello)])
    async with client(metrics.rest_middleware(app)) as http:
        assert (await http.get("/items/1")).status_code == 200
        assert (await http.get("/items/2")).status_code == 200
        assert (await http.get("/nothing")).status_code == 404
    found = samples(folder, metrics.families)
    route = (("method", "GET"), ("path", "/items/{item}"), ("status_code", "200"))
    assert found[("api_requests_total", route)] == 2
    assert (
        found[
            (
                "api_requests_total",
                (("method", "GET"), ("path", "unmatched"), ("status_code", "404")),
            )
        ]
        == 1
    )
    assert found[("api_requests_duration_seconds_count", route)] == 2
    assert found[("api_requests_in_progress", (("method", "GET"),))] == 0


async def test_metrics_app_serves_only_its_endpoint(folder: MetricsFolder) -> None:
    metrics = ServerMetrics()
    metrics.success.inc(("a", ""))
    with model_scope("a", ""):
        mlpack.log(custom_value=2)  # file-backed, summed with the in-memory families
    async with client(build_metrics_app(folder, "/prom", metrics.families)) as http:
        response = await http.get("/prom")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert (
            'model_infer_request_success_total{model_name="a",model_version=""} 1.0'
            in response.text
        )
        assert (await http.get("/metrics")).status_code == 404


def test_histogram_buckets_are_cumulative() -> None:
    from mlpack.server.collectors import Histogram

    histogram = Histogram("h", "doc", ("a",), (1, 5))
    for value in (0.5, 1, 3, 7):
        histogram.observe(("x",), value)
    [sample_family] = [histogram.family()]
    values = {(s.name, s.labels.get("le")): s.value for s in sample_family.samples}
    assert values[("h_bucket", "1.0")] == 2  # le is inclusive
    assert values[("h_bucket", "5.0")] == 3
    assert values[("h_bucket", "+Inf")] == 4
    assert values[("h_count", None)] == 4 and values[("h_sum", None)] == 11.5

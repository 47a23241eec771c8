"""Prometheus metrics: collectors, a REST middleware, and the scrape app on its own port.

Two sources make one scrape. The server's own metrics (requests, latencies, queues) are
recorded in memory in the server process, which every request passes through
(``ServerMetrics``, cheap enough for the hot path). Custom metrics (``mlpack.log``) may be
written by any process, the server or its workers: they use prometheus-client's
multiprocess mode, writing to files in one metrics folder that a scrape sums.
``MetricsFolder.prepare`` chooses and cleans that folder and exports
``PROMETHEUS_MULTIPROC_DIR`` before any worker is spawned, so children inherit it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..engine.stats import InferEvent, StreamEvent
from .collectors import Counter, Families, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MODEL_LABELS = ("model_name", "model_version")
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
QUEUE_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CHUNK_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
STREAM_BUCKETS = (*LATENCY_BUCKETS, 60.0, 120.0, 300.0, 600.0)


class MetricsFolder:
    """The folder every process of one server writes metric values to.

    Parameters:
        path: ``metrics_dir`` from the settings; None: a fresh temporary folder.
    """

    def __init__(self, path: str | None = None) -> None:
        self._owned = path is None
        self.path = tempfile.mkdtemp(prefix="mlpack-metrics-") if path is None else path
        self._previous_env: str | None = None

    def prepare(self, clean: bool = True) -> MetricsFolder:
        """Clean stale values, export the folder to child processes, switch to multiprocess mode.

        ``clean=False``: a front-end joining the folder its supervisor prepared.
        """
        from prometheus_client import values

        os.makedirs(self.path, exist_ok=True)
        for stale in glob.glob(os.path.join(self.path, "*.db")) if clean else []:
            os.remove(stale)
        self._previous_env = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = self.path
        # prometheus-client picks its value class when first imported; metrics created from
        # now on in this process write to this folder, whenever prometheus_client was imported.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        from .. import custom_metrics

        custom_metrics._reset()
        return self

    def close(self) -> None:
        from prometheus_client import values

        if self._previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous_env
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def render(self, *collectors: Any) -> bytes:
        """Prometheus text: ``collectors`` (in-memory) plus every process's file-backed values."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        MultiProcessCollector(registry, path=self.path)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def mark_process_dead(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters and histograms keep counting)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]


class ServerMetrics:
    """The server's own metrics: an inference observer and the source of the REST middleware.

    They live in memory in the server process, which every request passes through (worker
    processes report back to it), so recording one costs a dict update, not a file write.

    Parameters:
        rest_prefix: ``metrics_rest_server_prefix`` (names ``{prefix}_requests`` and so on).
    """

    def __init__(self, rest_prefix: str = "rest_server") -> None:
        families = self.families = Families()
        add = families.add
        self.success = add(
            Counter("model_infer_request_success", "Successful inference requests.", MODEL_LABELS)
        )
        self.failure = add(
            Counter("model_infer_request_failure", "Failed inference requests.", MODEL_LABELS)
        )
        self.latency = add(
            Histogram(
                "model_infer_request_duration_seconds",
                "Inference latency per model version, from dispatch to response.",
                MODEL_LABELS,
                LATENCY_BUCKETS,
            )
        )
        self.queue_wait = add(
            Histogram(
                "model_infer_queue_wait_seconds",
                "Time a request waited before its model started on it.",
                MODEL_LABELS,
                LATENCY_BUCKETS,
            )
        )
        self.batch_size = add(
            Histogram(
                "model_infer_batch_size",
                "Requests per model execution.",
                MODEL_LABELS,
                BATCH_BUCKETS,
            )
        )
        self.batch_queue = add(
            Histogram(
                "batch_request_queue", "Adaptive batching queue size.", MODEL_LABELS, QUEUE_BUCKETS
            )
        )
        self.parallel_queue = add(
            Histogram(
                "parallel_request_queue",
                "Requests queued for a model's runner (thread or worker processes).",
                MODEL_LABELS,
                QUEUE_BUCKETS,
            )
        )
        self.streams_open = add(
            Gauge("model_streams_open", "Streams open now, per model version.", MODEL_LABELS)
        )
        self.stream_success = add(
            Counter("model_stream_success", "Streams that ended normally.", MODEL_LABELS)
        )
        self.stream_failure = add(
            Counter(
                "model_stream_failure",
                "Streams that ended with an error (the model's, a deadline, shutdown) or "
                "because the client left.",
                MODEL_LABELS,
            )
        )
        self.stream_stalled = add(
            Counter(
                "model_stream_stalled",
                "Streams abandoned because the client stopped reading (stream_stall_timeout).",
                MODEL_LABELS,
            )
        )
        self.stream_first_chunk = add(
            Histogram(
                "model_stream_first_chunk_seconds",
                "Time from dispatch to a stream's first response.",
                MODEL_LABELS,
                LATENCY_BUCKETS,
            )
        )
        self.stream_chunks = add(
            Histogram(
                "model_stream_chunks", "Responses sent per stream.", MODEL_LABELS, CHUNK_BUCKETS
            )
        )
        self.stream_duration = add(
            Histogram(
                "model_stream_duration_seconds",
                "Time from dispatch to a stream's end.",
                MODEL_LABELS,
                STREAM_BUCKETS,
            )
        )
        rest_labels = ("method", "path", "status_code")
        self.rest_requests = add(
            Counter(
                f"{rest_prefix}_requests",
                "REST requests, by method, route and status code.",
                rest_labels,
            )
        )
        self.rest_duration = add(
            Histogram(
                f"{rest_prefix}_requests_duration_seconds",
                "REST request latency.",
                rest_labels,
                LATENCY_BUCKETS,
            )
        )
        self.rest_in_progress = add(
            Gauge(f"{rest_prefix}_requests_in_progress", "REST requests in flight.", ("method",))
        )
        self.grpc_handled = add(
            Counter(
                "grpc_server_handled",
                "gRPC requests handled, by method and code.",
                ("grpc_method", "grpc_code"),
            )
        )
        self.grpc_started = add(
            Counter("grpc_server_started", "gRPC requests started, by method.", ("grpc_method",))
        )

    # -- inference observer ---------------------------------------------------------
    def on_infer(self, event: InferEvent) -> None:
        labels = (event.model_name, event.model_version)
        if not event.ok:
            self.failure.inc(labels)
            return
        timing = event.timing
        self.success.inc(labels)
        self.latency.observe(labels, event.duration)
        self.queue_wait.observe(labels, timing.queue_wait)
        if timing.executions:
            self.batch_size.observe(labels, timing.batch_size)
        if timing.batch_queue is not None:
            self.batch_queue.observe(labels, timing.batch_queue)
        if timing.parallel_queue is not None:
            self.parallel_queue.observe(labels, timing.parallel_queue)

    # -- streams (the registry's optional observer hooks) ------------------------------
    def on_stream_open(self, model_name: str, model_version: str) -> None:
        self.streams_open.inc((model_name, model_version))

    def on_stream(self, event: StreamEvent) -> None:
        labels = (event.model_name, event.model_version)
        self.streams_open.dec(labels)
        (self.stream_success if event.ok else self.stream_failure).inc(labels)
        if event.first_chunk is not None:
            self.stream_first_chunk.observe(labels, event.first_chunk)
        self.stream_chunks.observe(labels, event.chunks)
        self.stream_duration.observe(labels, event.duration)

    def on_stream_stalled(self, model_name: str, model_version: str) -> None:
        self.stream_stalled.inc((model_name, model_version))

    # -- gRPC (called by the gRPC transport) -----------------------------------------------
    def grpc_call_started(self, method: str) -> None:
        self.grpc_started.inc((method,))

    def grpc_call_handled(self, method: str, code: str) -> None:
        self.grpc_handled.inc((method, code))

    # -- REST -------------------------------------------------------------------------------
    def rest_middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap a Starlette app: count, time and track in-flight HTTP requests per route."""
        requests, duration, in_progress = (
            self.rest_requests,
            self.rest_duration,
            self.rest_in_progress,
        )

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            method = scope["method"]
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            in_flight = (method,)
            in_progress.inc(in_flight)
            started = time.perf_counter()
            try:
                await app(scope, receive, send_status)
            finally:
                in_progress.dec(in_flight)
                route = scope.get("route")
                labels = (method, getattr(route, "path", None) or "unmatched", str(status))
                requests.inc(labels)
                duration.observe(labels, time.perf_counter() - started)

        return middleware


def build_metrics_app(folder: MetricsFolder, endpoint: str, *collectors: Any) -> ASGIApp:
    """A bare ASGI app answering ``GET endpoint`` with the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST

    endpoint = "/" + endpoint.strip("/")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != endpoint.rstrip("/") or scope["method"] not in (
            "GET",
            "HEAD",
        ):
            status, body, content_type = 404, b"not found\n", "text/plain"
        else:
            body = await asyncio.to_thread(folder.render, *collectors)
            status, content_type = 200, CONTENT_TYPE_LATEST
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app

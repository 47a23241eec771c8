"""OpenTelemetry tracing end to end: a real server exporting to real OTLP receivers.

One REST and one gRPC request, each with the caller's ``traceparent``, through batching
and two worker processes: every span of a request shares the caller's trace id and
hangs off the right parent, the model's own span included.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from tests.helpers.otlp import Received, Span, grpc_receiver, http_receiver
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

REQUEST = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}


def _folder(tmp: Path) -> Path:
    folder = tmp / "models"
    shutil.copytree(ASSETS / "operability" / "traced", folder / "traced")
    return folder


def _caller() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


@pytest.fixture(scope="module")
def otlp_grpc() -> Iterator[tuple[str, Received]]:
    yield from grpc_receiver()


@pytest.fixture(scope="module")
def traced_server(
    otlp_grpc: tuple[str, Received], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("tracing")
    settings = {"tracing_server": otlp_grpc[0], "parallel_workers": 2}
    running = start_server(_folder(tmp), tmp, settings=settings)
    yield running
    running.stop()


def _check_tree(spans: dict[str, Span], root: str, caller_span: str) -> None:
    """The span tree every traced inference request has (batching, worker processes)."""
    server = spans[root]
    assert server.parent_id == caller_span and server.kind == 2  # SERVER
    for child in ("decode", "infer", "encode"):
        assert spans[child].parent_id == server.span_id, child
    infer = spans["infer"]
    assert infer.attributes["mlpack.model.name"] == "traced"
    assert spans["validate"].parent_id == infer.span_id
    batch, queue = spans["batch"], spans["queue"]
    assert queue.parent_id == infer.span_id and batch.parent_id == infer.span_id
    assert (infer.trace_id, infer.span_id) in batch.links  # member → batch, both ways
    assert (batch.trace_id, batch.span_id) in queue.links
    assert batch.attributes["mlpack.batch.size"] == 2
    worker = spans["worker"]
    assert worker.parent_id == batch.span_id and worker.kind == 3  # CLIENT
    predict = spans["predict"]
    assert predict.parent_id == worker.span_id  # across the process boundary
    assert predict.attributes["mlpack.model.name"] == "traced"
    assert spans["model work"].parent_id == predict.span_id
    assert spans["model work"].attributes["rows"] == 2


NAMES = {
    "decode",
    "infer",
    "validate",
    "queue",
    "batch",
    "worker",
    "predict",
    "model work",
    "encode",
}


def test_rest_request_span_tree(
    traced_server: RunningServer, otlp_grpc: tuple[str, Received]
) -> None:
    trace_id, span_id, traceparent = _caller()
    answer = httpx.post(
        traced_server.url + "/v2/models/traced/infer",
        json=REQUEST,
        headers={"traceparent": traceparent},
    )
    assert answer.status_code == 200, answer.text
    returned = answer.headers["traceparent"]
    assert returned.startswith(f"00-{trace_id}-") and span_id not in returned
    root = "POST /v2/models/traced/infer"
    spans = otlp_grpc[1].trace(trace_id, NAMES | {root})
    _check_tree(spans, root, span_id)
    assert returned.split("-")[2] == spans[root].span_id
    assert spans[root].attributes["http.response.status_code"] == 200


def test_grpc_request_span_tree(
    traced_server: RunningServer, otlp_grpc: tuple[str, Received]
) -> None:
    trace_id, span_id, traceparent = _caller()
    request = pb.ModelInferRequest(model_name="traced")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    with grpc.insecure_channel(traced_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response, call = stub.ModelInfer.with_call(
            request, metadata=(("traceparent", traceparent),), timeout=30
        )
    assert list(response.outputs[0].contents.fp32_contents) == [1.0, 2.0]
    returned = dict(call.initial_metadata())["traceparent"]
    assert returned.startswith(f"00-{trace_id}-")
    root = "inference.GRPCInferenceService/ModelInfer"
    spans = otlp_grpc[1].trace(trace_id, NAMES | {root})
    _check_tree(spans, root, span_id)


def test_otlp_over_http_and_in_process(tmp_path: Path) -> None:
    for endpoint, received in http_receiver():
        settings = {"tracing_server": endpoint, "tracing_protocol": "http/protobuf"}
        running = start_server(_folder(tmp_path), tmp_path, settings=settings)
        try:
            trace_id, span_id, traceparent = _caller()
            answer = httpx.post(
                running.url + "/v2/models/traced/infer",
                json=REQUEST,
                headers={"traceparent": traceparent},
            )
            assert answer.status_code == 200
            root = "POST /v2/models/traced/infer"
            names = {root, "infer", "batch", "queue", "predict", "model work"}
            spans = received.trace(trace_id, names)
        finally:
            running.stop()
        assert spans[root].parent_id == span_id
        assert spans["predict"].parent_id == spans["batch"].span_id  # no worker hop
        assert spans["model work"].parent_id == spans["predict"].span_id


def test_tracing_off_sends_no_traceparent(tmp_path: Path) -> None:
    running = start_server(_folder(tmp_path), tmp_path)
    try:
        answer = httpx.post(running.url + "/v2/models/traced/infer", json=REQUEST)
    finally:
        running.stop()
    assert answer.status_code == 200 and "traceparent" not in answer.headers


def test_context_reaches_an_environment_worker(
    tmp_path: Path, otlp_grpc: tuple[str, Received]
) -> None:
    """A model with its own environment (another interpreter) still continues the trace."""
    import json
    import subprocess
    import sys

    folder = _folder(tmp_path)
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    settings_file = folder / "traced" / "model-settings.json"
    model = json.loads(settings_file.read_text())
    model["parameters"] = {"environment_path": str(venv)}
    settings_file.write_text(json.dumps(model))
    running = start_server(folder, tmp_path, settings={"tracing_server": otlp_grpc[0]})
    try:
        trace_id, _, traceparent = _caller()
        answer = httpx.post(
            running.url + "/v2/models/traced/infer",
            json=REQUEST,
            headers={"traceparent": traceparent},
        )
        assert answer.status_code == 200, answer.text
        spans = otlp_grpc[1].trace(trace_id, {"worker", "predict", "model work"})
    finally:
        running.stop()
    assert spans["predict"].parent_id == spans["worker"].span_id
    assert spans["model work"].parent_id == spans["predict"].span_id


def test_sampling_ratio_zero_keeps_only_traces_the_caller_sampled(
    tmp_path: Path, otlp_grpc: tuple[str, Received]
) -> None:
    settings = {"tracing_server": otlp_grpc[0], "tracing_sampling_ratio": 0.0}
    running = start_server(_folder(tmp_path), tmp_path, settings=settings)
    try:
        url = running.url + "/v2/models/traced/infer"
        unsampled_id, unsampled_span, _ = _caller()
        flags_off = f"00-{unsampled_id}-{unsampled_span}-00"
        assert httpx.post(url, json=REQUEST, headers={"traceparent": flags_off}).status_code == 200
        assert httpx.post(url, json=REQUEST).status_code == 200  # no parent: ratio 0 → dropped
        sampled_id, _, sampled = _caller()
        assert httpx.post(url, json=REQUEST, headers={"traceparent": sampled}).status_code == 200
        # The sampled trace arriving means the exporter has flushed everything before it.
        otlp_grpc[1].trace(sampled_id, {"infer", "predict", "model work"})
    finally:
        running.stop()
    with otlp_grpc[1].lock:
        traced = {s.trace_id for s in otlp_grpc[1].spans if s.name == "model work"}
    assert unsampled_id not in traced
    roots = [s for s in otlp_grpc[1].spans if s.name == "POST /v2/models/traced/infer"]
    assert all(s.parent_id for s in roots)  # every exported root had a caller's parent


def test_a_stream_is_one_infer_stream_span_under_the_request(
    tmp_path: Path, otlp_grpc: tuple[str, Received]
) -> None:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "streaming" / "streamer", folder / "streamer")
    running = start_server(folder, tmp_path, settings={"tracing_server": otlp_grpc[0]})
    try:
        trace_id, span_id, traceparent = _caller()
        body = {
            "parameters": {"count": 3},
            "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
        }
        answer = httpx.post(
            running.url + "/v2/models/streamer/infer_stream",
            json=body,
            headers={"traceparent": traceparent},
        )
        assert answer.status_code == 200 and answer.text.count("data: ") == 3
        root = "POST /v2/models/streamer/infer_stream"
        spans = otlp_grpc[1].trace(trace_id, {root, "infer_stream"})
    finally:
        running.stop()
    assert spans[root].parent_id == span_id
    stream = spans["infer_stream"]
    assert stream.parent_id == spans[root].span_id
    assert stream.attributes["mlpack.stream.chunks"] == 3
    assert stream.attributes["mlpack.status"] == "ok"

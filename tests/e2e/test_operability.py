"""End to end: what an operator sees in the log, and strict startup (issue 18)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from tests.conftest import free_ports
from tests.helpers.server import ASSETS, RunningServer, checkout_pythonpath, start_server

pytestmark = pytest.mark.e2e

ONE = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


def _folder(tmp: Path, *models: str) -> Path:
    folder = tmp / "models"
    folder.mkdir()
    for name in models:
        source = ASSETS / "operability" / name
        if not source.is_dir():
            source = ASSETS / "models" / name
        shutil.copytree(source, folder / name)
    return folder


def _wait_for_line(server: RunningServer, text: str, count: int = 1) -> str:
    """The log once ``text`` appears ``count`` times (bounded wait: the log is async)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = server.log()
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} time(s):\n{server.log()}")


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("operability")
    running = start_server(
        _folder(tmp, "failing", "echo", "broken"),
        tmp,
        settings={"access_log": True, "strict_readiness": False},
    )
    yield running
    running.stop()


def test_predict_failure_logs_model_request_id_and_traceback(text_server: RunningServer) -> None:
    url = text_server.url + "/v2/models/failing/infer"
    answer = httpx.post(url, json={**ONE, "id": "req-operability-1"})
    assert answer.status_code == 500
    log = _wait_for_line(text_server, "request_id=req-operability-1:")
    line = next(li for li in log.splitlines() if "request_id=req-operability-1:" in li)
    assert "ERROR" in line and "[mlpack.model]" in line
    assert "predict failed: model=failing version=- request_id=req-operability-1" in line
    after = log.split(line, 1)[1]
    assert "Traceback (most recent call last)" in after
    assert "_lookup" in after and "KeyError: 'missing-feature'" in after


def test_predict_failures_are_rate_limited_per_model(text_server: RunningServer) -> None:
    url = text_server.url + "/v2/models/failing/infer"
    with httpx.Client() as client:
        for index in range(12):
            answer = client.post(url, json={**ONE, "id": f"burst-{index}"})
            assert answer.status_code == 500
    # The access log writes one line per request after the response: wait for all 12.
    log = _wait_for_line(text_server, '"POST /v2/models/failing/infer HTTP/1.1" 500', 13)
    logged = log.count("predict failed: model=failing")
    assert logged == 5, log  # the default burst is 5 lines per model per minute


def test_access_log_with_metrics_on(text_server: RunningServer) -> None:
    headers = {"x-request-id": "access-42"}
    answer = httpx.post(text_server.url + "/v2/models/echo/infer", json=ONE, headers=headers)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "access-42"
    generated = httpx.get(text_server.url + "/v2/health/live")
    assert len(generated.headers["x-request-id"]) == 32
    metrics = httpx.get(f"http://127.0.0.1:{text_server.metrics_port}/metrics")
    assert metrics.status_code == 200
    log = _wait_for_line(text_server, '"GET /metrics HTTP/1.1" 200')
    line = next(li for li in log.splitlines() if "request_id=access-42" in li)
    assert "[mlpack.access]" in line and '"POST /v2/models/echo/infer HTTP/1.1" 200' in line
    assert line.endswith("model=echo")
    metrics_line = next(li for li in log.splitlines() if '"GET /metrics HTTP/1.1"' in li)
    assert "[metrics]" in metrics_line
    assert f"request_id={generated.headers['x-request-id']}" in log


def test_grpc_calls_are_in_the_access_log(text_server: RunningServer) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1])
    )
    with grpc.insecure_channel(text_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(
            pb.ModelInferRequest(model_name="echo", inputs=[tensor]),
            metadata=(("x-request-id", "grpc-access-1"),),
            timeout=30,
        )
        with pytest.raises(grpc.RpcError) as failed:
            stub.ModelInfer(
                pb.ModelInferRequest(model_name="failing", id="grpc-access-2", inputs=[tensor]),
                timeout=30,
            )
        assert failed.value.code() is grpc.StatusCode.INTERNAL
    log = _wait_for_line(text_server, "request_id=grpc-access-2")
    lines = log.splitlines()
    ok = next(li for li in lines if "request_id=grpc-access-1" in li and "[mlpack.access]" in li)
    assert '"gRPC /inference.GRPCInferenceService/ModelInfer" OK' in ok
    assert ok.endswith("model=echo")
    failed_line = next(li for li in lines if "request_id=grpc-access-2" in li and "gRPC" in li)
    assert '"gRPC /inference.GRPCInferenceService/ModelInfer" INTERNAL' in failed_line
    assert failed_line.endswith("model=failing")


def test_lifecycle_lines_once_and_load_failure_once(text_server: RunningServer) -> None:
    log = text_server.log()
    for line in ("Started server process", "Application startup complete", "Waiting for"):
        assert line not in log
    failures = [li for li in log.splitlines() if "load failed" in li]
    assert len(failures) == 1, log
    assert "load failed: model 'broken' failed to load: RuntimeError" in failures[0]
    assert "failed to load: model" not in failures[0]  # no doubled prefix
    after = log.split(failures[0], 1)[1]
    assert "Traceback (most recent call last)" in after and "weights file is corrupt" in after


def test_not_strict_readiness_is_ready_with_a_broken_model(text_server: RunningServer) -> None:
    assert httpx.get(text_server.url + "/v2/health/ready").status_code == 200
    index = httpx.post(text_server.url + "/v2/repository/index").json()
    assert {item["name"]: item["state"] for item in index}["broken"] == "UNAVAILABLE"


def test_unload_and_reload_log_a_line_each(text_server: RunningServer) -> None:
    base = text_server.url + "/v2/repository/models/echo"
    assert httpx.post(base + "/unload").status_code == 200
    _wait_for_line(text_server, "model 'echo' unloaded")
    assert httpx.post(base + "/load").status_code == 200
    assert httpx.post(base + "/load").status_code == 200  # loaded → reloaded
    _wait_for_line(text_server, "model 'echo' reloaded in")


def test_structured_lines_carry_the_same_fields(tmp_path: Path) -> None:
    running = start_server(
        _folder(tmp_path, "failing"),
        tmp_path,
        settings={"access_log": True, "use_structured_logging": True},
    )
    try:
        url = running.url + "/v2/models/failing/infer"
        assert httpx.post(url, json={**ONE, "id": "json-1"}).status_code == 500
        _wait_for_line(running, '"path": "/v2/models/failing/infer"')
    finally:
        running.stop()
    records = [json.loads(line) for line in running.log().splitlines() if line.strip()]
    failure = next(r for r in records if r.get("logger") == "mlpack.model")
    assert failure["level"] == "ERROR" and failure["request_id"] == "json-1"
    assert failure["model"] == "failing" and "KeyError" in failure["exc_info"]
    assert "\n" not in failure["message"]
    access = next(
        r for r in records if r.get("logger") == "mlpack.access" and r["method"] == "POST"
    )
    assert access["status"] == 500
    assert access["model"] == "failing" and access["server"] == "rest"
    assert isinstance(access["duration_ms"], float) and access["request_id"]


def _start(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    http_port, grpc_port, metrics_port = free_ports(3)
    command = [
        sys.executable, "-m", "mlpack", "start", str(folder), "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--metrics-port", str(metrics_port), *args,
    ]  # fmt: skip
    env: dict[str, Any] = {"PYTHONPATH": checkout_pythonpath(), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_exit_on_error_when_a_model_fails_to_load(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "echo", "broken")
    result = _start(folder, "--exit-on-error")
    assert result.returncode == 3, result.stderr
    assert "1 model(s) failed to load (broken); exit_on_error is set" in result.stderr


def test_exit_on_error_from_a_settings_file_with_an_invalid_model_settings(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "echo")
    (folder / "bad").mkdir()
    (folder / "bad" / "model-settings.json").write_text("{not json")
    settings = tmp_path / "strict.json"
    settings.write_text(json.dumps({"exit_on_error": True}))
    result = _start(folder, "--settings", str(settings))
    assert result.returncode == 3, result.stderr
    assert "invalid" in result.stderr and "bad/model-settings.json" in result.stderr


def test_missing_settings_file_is_a_usage_error(tmp_path: Path) -> None:
    result = _start(_folder(tmp_path, "echo"), "--settings", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "no such file" in result.stderr

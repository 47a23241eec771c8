"""End to end: metrics, custom metrics, stats, docs, CORS, logs and root_path of a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.server import ASSETS, REPO, RunningServer, start_server

pytestmark = pytest.mark.e2e

ORIGIN = "https://app.example"
SETTINGS: dict[str, Any] = {
    "use_structured_logging": True,
    "cors_settings": {
        "allow_origins": [ORIGIN],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["content-type"],
    },
}


def _models(tmp: Path) -> Path:
    folder = tmp / "models"
    shutil.copytree(ASSETS / "observed", folder)
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    return folder


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("observed")
    running = start_server(_models(tmp), tmp, settings=SETTINGS)
    yield running
    running.stop()


def petals(length: list[float], width: list[float]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "petal_length", "shape": [len(length)], "datatype": "FP64", "data": length},
            {"name": "petal_width", "shape": [len(width)], "datatype": "FP64", "data": width},
        ]
    }


def scrape(server: RunningServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Metric samples by sample name, then by sorted labels."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_metrics_and_stats_count_exactly(observed: RunningServer) -> None:
    url = observed.url + "/v2/models/documented/infer"
    rows = [1, 3, 2]
    for n in rows:
        assert httpx.post(url, json=petals([1.0] * n, [0.5] * n)).status_code == 200
    for _ in range(2):  # the model raises
        assert httpx.post(url, json=petals([-5.0], [1.0])).status_code == 500
    bad = httpx.post(
        url, json={"inputs": [{"name": "sepal", "shape": [1], "datatype": "FP64", "data": [1]}]}
    )
    assert bad.status_code == 400  # rejected by validation: a failure too
    assert (
        httpx.post(observed.url + "/v2/models/nope/infer", json=petals([1], [1])).status_code == 404
    )

    model = {"model_name": "documented", "model_version": "v3"}
    samples = scrape(observed)
    assert value(samples, "model_infer_request_success_total", **model) == 3
    assert value(samples, "model_infer_request_failure_total", **model) == 3
    assert value(samples, "model_infer_request_duration_seconds_count", **model) == 3
    assert value(samples, "model_infer_queue_wait_seconds_count", **model) == 3
    assert value(samples, "model_infer_batch_size_count", **model) == 3
    assert value(samples, "model_infer_batch_size_sum", **model) == 3
    assert value(samples, "parallel_request_queue_count", **model) == 3
    # The custom metric, registered in load() and logged in predict().
    assert value(samples, "documented_rows_count", **model) == 3
    assert value(samples, "documented_rows_sum", **model) == sum(rows)
    infer = {"method": "POST", "path": "/v2/models/{model_name}/infer"}
    assert value(samples, "rest_server_requests_total", status_code="200", **infer) == 3
    assert value(samples, "rest_server_requests_total", status_code="500", **infer) == 2
    assert value(samples, "rest_server_requests_total", status_code="400", **infer) == 1
    assert value(samples, "rest_server_requests_total", status_code="404", **infer) == 1
    assert (
        value(samples, "rest_server_requests_duration_seconds_count", status_code="200", **infer)
        == 3
    )
    assert value(samples, "rest_server_requests_in_progress", method="POST") == 0

    stats = httpx.get(observed.url + "/v2/models/documented/stats").json()["model_stats"]
    assert [(s["name"], s["version"]) for s in stats] == [("documented", "v3")]
    [entry] = stats
    inference = entry["inference_stats"]
    assert inference["success"]["count"] == 3 and inference["fail"]["count"] == 3
    assert inference["queue"]["count"] == 3 and inference["compute_infer"]["count"] == 3
    assert inference["success"]["ns"] >= inference["compute_infer"]["ns"] > 0
    assert entry["inference_count"] == 3 and entry["execution_count"] == 3
    assert entry["batch_stats"] == [{"batch_size": 1, "compute_infer": inference["compute_infer"]}]
    assert entry["last_inference"] > 0
    version = httpx.get(observed.url + "/v2/models/documented/versions/v3/stats").json()
    assert version["model_stats"][0]["inference_stats"]["success"]["count"] == 3
    assert httpx.get(observed.url + "/v2/models/documented/versions/v9/stats").status_code == 404
    assert httpx.get(observed.url + "/v2/models/nope/stats").status_code == 404


def test_grpc_metrics(observed: RunningServer) -> None:
    import grpc

    from mlpack.proto import inference_pb2 as pb
    from mlpack.proto import inference_pb2_grpc as pb_grpc

    with grpc.insecure_channel(observed.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(pb.ModelInferRequest(model_name="nope"), timeout=10)
        assert error.value.code() is grpc.StatusCode.NOT_FOUND
    samples = scrape(observed)
    assert value(samples, "grpc_server_started_total", grpc_method="ServerLive") == 2
    assert (
        value(samples, "grpc_server_handled_total", grpc_method="ServerLive", grpc_code="OK") == 2
    )
    assert value(samples, "grpc_server_started_total", grpc_method="ModelInfer") == 1
    handled = {"grpc_method": "ModelInfer", "grpc_code": "NOT_FOUND"}
    assert value(samples, "grpc_server_handled_total", **handled) == 1


def test_structured_logs_are_json_lines(observed: RunningServer) -> None:
    url = observed.url + "/v2/models/documented/infer"
    assert httpx.post(url, json=petals([-1.0], [0.0])).status_code == 500
    time.sleep(0.2)
    records = []
    for line in observed.log().splitlines():
        if line.strip():
            records.append(json.loads(line))  # every line is one JSON object
    failures = [r for r in records if r.get("exc_info") and "negative petals" in r["exc_info"]]
    assert failures and failures[-1]["model"] == "documented:v3"
    assert failures[-1]["level"] == "ERROR" and "Traceback" in failures[-1]["exc_info"]
    messages = [r["message"] for r in records]
    assert any("documented (v3)" in m and "READY" in m for m in messages), messages
    assert any(m.strip().startswith("REST") and str(observed.http_port) in m for m in messages)
    assert any(
        m.strip().startswith("metrics") and f"{observed.metrics_port}/metrics" in m
        for m in messages
    )


def test_cors_preflight_follows_settings(observed: RunningServer) -> None:
    path = observed.url + "/v2/models/documented/infer"
    allowed = httpx.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    denied = httpx.options(
        path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    simple = httpx.get(observed.url + "/v2/health/live", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN


def test_openapi_documents(observed: RunningServer) -> None:
    dataplane = httpx.get(observed.url + "/v2/docs/dataplane.json").json()
    assert dataplane["openapi"].startswith("3.")
    assert "/v2/models/{model_name}/infer" in dataplane["paths"]
    assert "/v2/models/{model_name}/versions/{model_version}/stats" in dataplane["paths"]
    for path in (
        "/v2/models/documented/docs/dataplane.json",
        "/v2/models/documented/versions/v3/docs/dataplane.json",
    ):
        document = httpx.get(observed.url + path).json()
        [infer_path] = [p for p in document["paths"] if p.endswith("/infer")]
        body = document["paths"][infer_path]["post"]["requestBody"]["content"]["application/json"]
        schema = json.dumps(document["components"]["schemas"]["documented_InferenceRequest"])
        assert "petal_length" in schema and "petal_width" in schema
        assert "petal_total" in json.dumps(
            document["components"]["schemas"]["documented_InferenceResponse"]
        )
        # The example request works as is.
        response = httpx.post(observed.url + infer_path, json=body["example"])
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["name"] == "petal_total"
    assert httpx.get(observed.url + "/v2/models/nope/docs").status_code == 404
    assert (
        httpx.get(
            observed.url + "/v2/models/documented/versions/v9/docs/dataplane.json"
        ).status_code
        == 404
    )
    page = httpx.get(observed.url + "/v2/models/documented/docs")
    assert page.status_code == 200 and "/v2/models/documented/docs/dataplane.json" in page.text
    asset = httpx.get(observed.url + "/v2/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert httpx.get(observed.url + "/v2/docs/static/secret.txt").status_code == 404


def test_text_logs_root_path_and_metrics_disabled(tmp_path: Path) -> None:
    settings = {"metrics_endpoint": None, "root_path": "/proxy", "debug": True, "access_log": True}
    running = start_server(_models(tmp_path), tmp_path, settings=settings)
    try:
        page = httpx.get(running.url + "/v2/docs").text
        assert 'href="/proxy/v2/docs/static/swagger-ui.css"' in page
        assert '"/proxy/v2/docs/dataplane.json"' in page
        document = httpx.get(running.url + "/v2/docs/dataplane.json").json()
        assert document["servers"] == [{"url": "/proxy"}]
        assert (
            httpx.post(
                running.url + "/v2/models/documented/infer", json=petals([1], [2])
            ).status_code
            == 200
        )
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=2)
        time.sleep(0.2)
        log = running.log()
        assert "[documented] [model documented:v3] documented model loading" in log
        assert " DEBUG " in log
        # access log on (uvicorn shows the path with its root_path)
        assert '"POST /proxy/v2/models/documented/infer HTTP/1.1" 200' in log
        assert not log.lstrip().startswith("{")
    finally:
        running.stop()


# -- real browser -------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("MLPACK_REQUIRE_BROWSER") == "1":
            pytest.fail("MLPACK_REQUIRE_BROWSER=1 but chromium is not installed")
        pytest.skip(
            "chromium is not installed (apt-get install -y chromium); "
            "set MLPACK_REQUIRE_BROWSER=1 to fail instead"
        )
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


ARTIFACTS = REPO / "test-artifacts"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/v2/docs", ["/v2/models/{model_name}/infer", "/v2/health/ready", "/v2/repository/index"]),
        (
            "/v2/models/documented/docs",
            ["/v2/models/documented/infer", '"petal_length"', '"petal_width"'],
        ),
    ],
    ids=["dataplane", "model"],
)
def test_swagger_ui_renders_offline_in_a_browser(
    observed: RunningServer, tmp_path: Path, page: str, expected: list[str]
) -> None:
    url = observed.url + page
    dom = _browser(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "swagger-ui" in dom.stdout and "opblock" in dom.stdout, dom.stdout[:2000]
    for text in expected:
        assert text in dom.stdout, f"{text!r} not rendered on {page}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"docs-{page.strip('/').replace('/', '-')}.png"
    result = _browser(
        tmp_path, url, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("workers", [2])
def test_custom_metrics_from_worker_processes(tmp_path: Path, workers: int) -> None:
    """With worker processes, values each worker logs are summed in one scrape."""
    running = start_server(
        _models(tmp_path), tmp_path, settings={"parallel_workers": workers}, timeout=120
    )
    try:
        url = running.url + "/v2/models/documented/infer"
        rows = [1, 2, 3, 4, 5, 6]
        for n in rows:
            assert httpx.post(url, json=petals([1.0] * n, [1.0] * n), timeout=30).status_code == 200
        assert httpx.post(url, json=petals([-3.0], [1.0]), timeout=30).status_code == 500
        model = {"model_name": "documented", "model_version": "v3"}
        samples = scrape(running)
        assert value(samples, "model_infer_request_success_total", **model) == len(rows)
        assert value(samples, "model_infer_request_failure_total", **model) == 1
        assert value(samples, "documented_rows_count", **model) == len(rows)
        assert value(samples, "documented_rows_sum", **model) == sum(rows)
        stats = httpx.get(running.url + "/v2/models/documented/stats").json()["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == len(rows)
        assert stats["inference_stats"]["fail"]["count"] == 1
    finally:
        running.stop()

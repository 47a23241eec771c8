"""End to end: a real ``mlpack start`` driven over HTTP, as a user would."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.server import RunningServer

pytestmark = pytest.mark.e2e

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def infer(server: RunningServer, model: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30, **kwargs)


def iris_request(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}


def test_server_metadata_and_health(server: RunningServer) -> None:
    metadata = httpx.get(server.url + "/v2").json()
    assert metadata["name"] == "mlpack"
    assert "model_repository" in metadata["extensions"]
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    # The broken model was meant to load at startup, so the server is not ready.
    ready = httpx.get(server.url + "/v2/health/ready")
    assert ready.status_code == 503 and ready.json() == {"ready": False}


def test_iris_prediction_matches_sklearn(server: RunningServer) -> None:
    response = infer(server, "iris", iris_request([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris" and body["model_version"] == "v1"
    assert body["outputs"] == [
        {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}
    ]
    assert body["id"]


def test_requested_outputs_in_order(server: RunningServer) -> None:
    request = {
        **iris_request([IRIS_ROW]),
        "outputs": [{"name": "predict_proba"}, {"name": "predict"}],
    }
    body = infer(server, "iris", request).json()
    assert [o["name"] for o in body["outputs"]] == ["predict_proba", "predict"]
    assert body["outputs"][0]["shape"] == [1, 3]
    assert math.isclose(sum(body["outputs"][0]["data"]), 1.0)


def test_model_metadata_and_ready(server: RunningServer) -> None:
    metadata = httpx.get(server.url + "/v2/models/iris").json()
    assert metadata["name"] == "iris" and metadata["versions"] == ["v1"]
    assert {o["name"] for o in metadata["outputs"]} == {"predict", "predict_proba"}
    assert httpx.get(server.url + "/v2/models/iris/versions/v1").json()["name"] == "iris"
    assert httpx.get(server.url + "/v2/models/iris/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/iris/versions/v1/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/broken/ready").status_code == 400  # 4xx: false
    assert httpx.get(server.url + "/v2/models/nope/ready").status_code == 404


def test_versions_route_to_newest_by_default(server: RunningServer) -> None:
    def version_of(path: str) -> str:
        response = httpx.post(
            server.url + path,
            json={"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]},
        )
        assert response.status_code == 200, response.text
        return response.json()["outputs"][0]["data"][0]

    assert version_of("/v2/models/versioned/infer") == "10"  # 10 > 2 numerically
    assert version_of("/v2/models/versioned/versions/2/infer") == "2"
    assert version_of("/v2/models/versioned/versions/1/infer") == "1"
    metadata = httpx.get(server.url + "/v2/models/versioned").json()
    assert metadata["versions"] == ["1", "2", "10"]
    missing = httpx.post(server.url + "/v2/models/versioned/versions/7/infer", json={"inputs": []})
    assert missing.status_code == 404 and "version '7'" in missing.json()["error"]


def test_two_models_with_same_module_names_do_not_collide(server: RunningServer) -> None:
    request = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}
    assert infer(server, "collide-a", request).json()["outputs"][0]["data"] == ["a"]
    assert infer(server, "collide-b", request).json()["outputs"][0]["data"] == ["b"]


def test_failed_model_is_reported_and_others_serve(server: RunningServer) -> None:
    index = httpx.post(server.url + "/v2/repository/index").json()
    broken = next(item for item in index if item["name"] == "broken")
    assert broken["state"] == "UNAVAILABLE" and "weights file is corrupt" in broken["reason"]
    response = infer(server, "broken", iris_request([IRIS_ROW]))
    assert response.status_code == 503 and "not ready" in response.json()["error"]
    assert "weights file is corrupt" in server.log()
    ready_only = httpx.post(server.url + "/v2/repository/index", json={"ready": True}).json()
    assert "broken" not in {item["name"] for item in ready_only}


ALL_DATATYPES = [
    ("BOOL", [True, False, True, True]),
    ("UINT8", [0, 1, 254, 255]),
    ("UINT16", [0, 1, 2, 65535]),
    ("UINT32", [0, 1, 2, 4294967295]),
    ("UINT64", [0, 1, 2, 18446744073709551615]),
    ("INT8", [-128, -1, 0, 127]),
    ("INT16", [-32768, -1, 0, 32767]),
    ("INT32", [-2147483648, -1, 0, 2147483647]),
    ("INT64", [-9223372036854775808, -1, 0, 9223372036854775807]),
    ("FP16", [0.5, -1.5, 2.0, 65504.0]),
    ("FP32", [0.5, -1.5, 2.0**100, 3.25]),
    ("FP64", [0.1, -1e300, 1e-300, 3.141592653589793]),
    ("BYTES", ["a", "héllo", "", "日本"]),
]


@pytest.mark.parametrize(("datatype", "values"), ALL_DATATYPES)
def test_every_datatype_round_trips(
    server: RunningServer, datatype: str, values: list[object]
) -> None:
    request = {
        "id": "rt",
        "inputs": [
            {"name": "t", "shape": [2, 2], "datatype": datatype, "data": [values[:2], values[2:]]}
        ],
    }
    response = infer(server, "echo", request)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [2, 2] and output["datatype"] == datatype
    assert output["data"] == values
    assert response.json()["id"] == "rt"


def test_nan_travels_as_null(server: RunningServer) -> None:
    request = {
        "inputs": [{"name": "t", "shape": [3], "datatype": "FP32", "data": [1.0, None, 2.0]}]
    }
    assert infer(server, "echo", request).json()["outputs"][0]["data"] == [1.0, None, 2.0]


BAD_REQUESTS = [
    ("malformed JSON", b'{"inputs": [', 400, "not valid JSON"),
    ("empty body", b"", 400, "empty"),
    (
        "unknown datatype",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "FP128", "data": [1]}]},
        400,
        "input 't'",
    ),
    (
        "count mismatch",
        {"inputs": [{"name": "t", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]},
        400,
        "4 elements but data has 3",
    ),
    (
        "truncating float",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "INT32", "data": [1.5]}]},
        400,
        "1.5 is not an integer",
    ),
    (
        "string bool",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "BOOL", "data": ["false"]}]},
        400,
        "booleans",
    ),
    (
        "out of range",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "INT8", "data": [300]}]},
        400,
        "300 is out of range",
    ),
    (
        "negative dim",
        {"inputs": [{"name": "t", "shape": [-1], "datatype": "INT8", "data": [1]}]},
        400,
        "negative",
    ),
    (
        "duplicate inputs",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "INT8", "data": [1]}] * 2},
        400,
        "more than once",
    ),
    ("no inputs field", {"outputs": []}, 400, "inputs"),
    (
        "string in numbers",
        {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1, "x"]}]},
        400,
        "input 't'",
    ),
    (
        "number in bytes",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [5]}]},
        400,
        "strings",
    ),
    (
        "ragged nesting",
        {"inputs": [{"name": "t", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}]},
        400,
        "input 't'",
    ),
    (
        "shape not a list",
        {"inputs": [{"name": "t", "shape": "2", "datatype": "FP32", "data": [1, 2]}]},
        400,
        "shape",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_clear_error_and_server_keeps_serving(
    server: RunningServer, case: str, body: object, status: int, message: str
) -> None:
    url = f"{server.url}/v2/models/echo/infer"
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
    else:
        response = httpx.post(url, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert infer(server, "iris", iris_request([IRIS_ROW])).status_code == 200


def test_unknown_requested_output_is_400(server: RunningServer) -> None:
    response = infer(
        server, "iris", {**iris_request([IRIS_ROW]), "outputs": [{"name": "decision"}]}
    )
    assert response.status_code == 400 and "no output 'decision'" in response.json()["error"]


def test_wrong_feature_count_is_400(server: RunningServer) -> None:
    response = infer(
        server,
        "iris",
        iris_request([[1.0, 2.0, 3.0, 4.0]])
        | {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
    )
    assert response.status_code == 400 and "features" in response.json()["error"]


def test_unknown_model_and_route_are_404(server: RunningServer) -> None:
    response = infer(server, "nope", iris_request([IRIS_ROW]))
    assert response.status_code == 404 and response.json() == {"error": "model 'nope' not found"}
    other = httpx.get(server.url + "/v3/whatever")
    assert other.status_code == 404 and "error" in other.json()


def test_model_failure_is_500_with_message(server: RunningServer) -> None:
    request = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}
    response = infer(server, "headers", request, headers={"x-test-header": "fail"})
    assert response.status_code == 500
    assert "the model refused this request" in response.json()["error"]


def test_headers_reach_model_and_come_back_safely(server: RunningServer) -> None:
    request = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}
    response = infer(server, "headers", request, headers={"x-test-header": "hello"})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["hello"]
    assert response.headers["x-echo"] == "hello"
    assert "\n" not in response.headers["x-weird"] and response.headers["x-weird"].startswith(
        "line"
    )
    assert "headers" not in (response.json().get("parameters") or {})


def test_slow_sync_model_does_not_block_health_or_other_models(
    server: RunningServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    slow_request = {
        "parameters": {"hold": str(release)},
        "inputs": [{"name": "s", "shape": [1], "datatype": "FP64", "data": [120.0]}],
    }
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(infer, server, "slow", slow_request)
        try:
            deadline = time.monotonic() + 60  # a bound for a hung server, not a criterion
            while not (tmp_path / "release.started").exists():
                assert time.monotonic() < deadline and not slow.done(), server.log()
                time.sleep(0.01)
            # The slow model holds its thread until released: everything below is answered
            # while it is still computing, which is the behaviour under test.
            assert httpx.get(server.url + "/v2/health/live").status_code == 200
            assert infer(server, "iris", iris_request([IRIS_ROW])).status_code == 200
            assert not slow.done()
        finally:
            release.touch()
        assert slow.result(timeout=60).status_code == 200


def test_500_concurrent_requests_each_get_their_own_answer(server: RunningServer) -> None:
    def one(i: int) -> tuple[int, dict[str, object]]:
        request = {
            "id": f"req-{i}",
            "inputs": [{"name": "v", "shape": [1, 2], "datatype": "INT64", "data": [i, -i]}],
        }
        return i, infer(server, "echo", request).json()

    limits = httpx.Limits(max_connections=100)
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(500)))
    for i, body in results:
        assert body["id"] == f"req-{i}"
        assert body["outputs"][0]["data"] == [i, -i]
    del limits


def test_reload_under_load_loses_no_request(server: RunningServer) -> None:
    stop = threading.Event()
    failures: list[str] = []
    counts = [0] * 8

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                response = http.post(
                    f"{server.url}/v2/models/iris/infer", json=iris_request([IRIS_ROW])
                )
                if response.status_code != 200:
                    failures.append(response.text)
                counts[worker] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            response = httpx.post(f"{server.url}/v2/repository/models/iris/load", timeout=60)
            assert response.status_code == 200, response.text
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures[:3]
    assert all(count > 0 for count in counts)


def test_unload_then_load_again(server: RunningServer) -> None:
    request = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}]}
    assert httpx.post(server.url + "/v2/repository/models/collide-a/unload").status_code == 200
    index = {i["name"]: i for i in httpx.post(server.url + "/v2/repository/index").json()}
    assert index["collide-a"]["state"] == "UNAVAILABLE"
    assert infer(server, "collide-a", request).status_code == 503
    assert httpx.post(server.url + "/v2/repository/models/collide-a/load").status_code == 200
    assert infer(server, "collide-a", request).json()["outputs"][0]["data"] == ["a"]
    missing = httpx.post(server.url + "/v2/repository/models/ghost/load")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]


def test_tritonclient_http_talks_to_mlpack(server: RunningServer) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    assert client.is_server_live()
    assert client.is_model_ready("iris")
    metadata = client.get_model_metadata("iris")
    assert metadata["name"] == "iris"
    features = np.array([IRIS_ROW], dtype=np.float64)
    tensor = triton.InferInput("x", list(features.shape), "FP64")
    tensor.set_data_from_numpy(features, binary_data=False)
    result = client.infer(
        "iris", [tensor], outputs=[triton.InferRequestedOutput("predict", binary_data=False)]
    )
    assert result.as_numpy("predict").reshape(-1).tolist() == [0]
    index = client.get_model_repository_index()
    assert {"iris", "echo"} <= {item["name"] for item in index}
    client.unload_model("collide-b")
    assert not client.is_model_ready("collide-b")
    client.load_model("collide-b")
    assert client.is_model_ready("collide-b")
    client.close()

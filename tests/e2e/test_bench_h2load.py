"""The benchmarks' gRPC load generator (nghttp2's ``h2load``) against a real ``mlpack start``.

h2load sees HTTP statuses only; these tests prove its framed ModelInfer calls reach the
model (the server counts them OK) and that gRPC errors, which travel as HTTP 200, are
caught through the server's counters.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from benchmarks import h2load
from mlpack.proto import inference_pb2 as pb
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _h2load() -> None:
    if shutil.which("h2load"):
        return
    if os.environ.get("MLPACK_REQUIRE_H2LOAD") == "1":
        pytest.fail("MLPACK_REQUIRE_H2LOAD=1 but h2load is not installed")
    pytest.skip("h2load is not installed (apt-get install -y nghttp2-client)")


def _echo(model: str = "echo") -> bytes:
    message = pb.ModelInferRequest(
        model_name=model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="v", datatype="INT64", shape=[1, 2])],
        raw_input_contents=[np.array([[3, 4]], dtype="<i8").tobytes()],
    )
    data: bytes = message.SerializeToString()
    return data


def _metrics(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.metrics_port}/metrics"


def test_calls_reach_the_model_and_are_counted_ok(server: RunningServer) -> None:
    before = h2load.handled_counts(_metrics(server)).get("OK", 0.0)
    row = h2load.run(server.grpc_address, _echo(), 4, 1.0, 0.5, _metrics(server))
    assert row["errors"] == 0, row
    assert row["requests"] > 0
    # The server's OK count covers every answered call (warm-up included).
    assert row["server_ok"] >= row["requests"]
    assert h2load.handled_counts(_metrics(server))["OK"] - before == row["server_ok"]
    assert row["p50_ms"] > 0 and row["rps"] > 0


def test_grpc_errors_behind_http_200_are_counted(server: RunningServer) -> None:
    row = h2load.run(server.grpc_address, _echo("no-such-model"), 2, 0.5, 0.2, _metrics(server))
    assert row["errors"] >= row["requests"] > 0
    assert row["server_errors"].get("NOT_FOUND", 0) >= row["requests"]
    assert row["server_ok"] == 0


def test_rest_over_http1_counts_non_2xx_as_errors(server: RunningServer) -> None:
    body = b'{"inputs":[{"name":"v","shape":[1,2],"datatype":"INT64","data":[3,4]}]}'
    url = f"{server.url}/v2/models/echo/infer"
    good = h2load.run_http(url, body, 2, 0.5, 0.2)
    assert good["errors"] == 0 and good["requests"] > 0 and good["p50_ms"] > 0
    bad = h2load.run_http(f"{server.url}/v2/models/no-such-model/infer", body, 2, 0.5, 0.2)
    assert bad["errors"] == bad["requests"] > 0

"""Benchmark model folders and request bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import models


def test_iris_rest_body() -> None:
    body = json.loads(models.iris_request_body())
    assert body["inputs"][0]["shape"] == [1, 4]
    assert body["inputs"][0]["datatype"] == "FP64"


def test_iris_grpc_body_parses_as_model_infer_request() -> None:
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    msg = service_pb2.ModelInferRequest()
    msg.ParseFromString(models.iris_grpc_body())
    assert msg.model_name == "iris"
    (tensor,) = msg.inputs
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("predict", "FP64", [1, 4])
    assert list(tensor.contents.fp64_contents) == [5.1, 3.5, 1.4, 0.2]


def test_model_folders(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    repos = models.write_iris_folders(tmp_path)
    for server, impl in models.IMPLEMENTATIONS.items():
        settings = json.loads((repos[server] / "iris" / "model-settings.json").read_text())
        assert settings == {
            "name": "iris",
            "implementation": impl,
            "parameters": {"uri": "./model.joblib"},
        }
        assert (repos[server] / "iris" / "model.joblib").stat().st_size > 0

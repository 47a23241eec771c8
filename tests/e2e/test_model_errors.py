"""A model's exception: logged with its traceback; the client gets its message (never a
traceback), or with ``model_error_detail: generic`` a fixed sentence and an error id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from tests.helpers.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

MODEL = """
from mlpack import MLModel


class Failing(MLModel):
    async def predict(self, payload):
        raise ValueError("cannot open /srv/secret/weights.bin")
"""
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}


@pytest.fixture(scope="module", params=["message", "generic"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("failing")
    (folder / "failing").mkdir()
    (folder / "failing" / "models.py").write_text(MODEL)
    (folder / "failing" / "model-settings.json").write_text(
        json.dumps({"name": "failing", "implementation": "models.Failing"})
    )
    settings = {"model_error_detail": request.param}
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    running.extra["detail"] = request.param
    yield running
    running.stop()


def _grpc_error(server: RunningServer) -> str:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        message = pb.ModelInferRequest(
            model_name="failing",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="x",
                    datatype="INT64",
                    shape=[1],
                    contents=pb.InferTensorContents(int64_contents=[1]),
                )
            ],
        )
        with pytest.raises(grpc.RpcError) as failed:
            stub.ModelInfer(message, timeout=30)
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    return failed.value.details()  # type: ignore[no-any-return]


def test_model_exception_text_policy(server: RunningServer, tmp_path: Path) -> None:
    response = httpx.post(server.url + "/v2/models/failing/infer", json=BODY, timeout=30)
    assert response.status_code == 500
    rest_message = response.json()["error"]
    grpc_message = _grpc_error(server)
    for message in (rest_message, grpc_message):
        assert "Traceback" not in message and 'File "' not in message
    log = server.log()
    assert "Traceback" in log and "cannot open /srv/secret/weights.bin" in log
    if server.extra["detail"] == "message":
        assert "cannot open /srv/secret/weights.bin" in rest_message
        assert "cannot open /srv/secret/weights.bin" in grpc_message
    else:
        for message in (rest_message, grpc_message):
            assert "/srv/secret" not in message
            error_id = re.search(r"error id ([0-9a-f]{16})", message)
            assert error_id is not None, message
            assert f"model error {error_id.group(1)}: model 'failing' failed: cannot open" in log

"""Open Inference Protocol conformance, REST and gRPC alike, against a real ``mlpack start``.

BYTES outputs holding Python bytes, the request id, the repository index's version, model
readiness, and what each REST route accepts (Content-Type, methods).
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from tests.e2e.test_openapi_conformance import models_folder
from tests.helpers.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

TEXT = ["a", "日本"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("protocol")
    running = start_server(models_folder(root), root)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def post(server: RunningServer, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is not None:
        kwargs["content"] = json.dumps(body).encode()
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
    return httpx.post(server.url + path, timeout=30, **kwargs)


def bytes_request(**extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXT}], **extra}


def check_bytes_outputs(outputs: list[dict[str, Any]]) -> None:
    by_name = {output["name"]: output for output in outputs}
    assert by_name["echo"]["data"] == TEXT  # bytes that are UTF-8: the text
    assert by_name["greeting"]["data"] == ["héllo"]  # StringCodec.encode_output(use_bytes=True)
    raw = by_name["raw"]  # not UTF-8: base64, and the content type says so
    assert raw["parameters"]["content_type"] == "base64"
    assert [base64.b64decode(v) for v in raw["data"]] == [b"\xff" + t.encode() for t in TEXT]


# -- 1. BYTES outputs holding Python bytes -------------------------------------------------
def test_bytes_outputs_travel_as_json_strings(server: RunningServer) -> None:
    response = post(server, "/v2/models/bytes/infer", bytes_request())
    assert response.status_code == 200, response.text
    check_bytes_outputs(response.json()["outputs"])


def test_bytes_input_sent_binary_comes_back_as_json(server: RunningServer) -> None:
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in TEXT)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    response = httpx.post(
        server.url + "/v2/models/bytes/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    check_bytes_outputs(response.json()["outputs"])


def test_tritonclient_http_binary_bytes_input_json_output(server: RunningServer) -> None:
    import numpy as np
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    try:
        tensor = triton_http.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(
            np.array([t.encode() for t in TEXT], dtype=object), binary_data=True
        )
        outputs = [
            triton_http.InferRequestedOutput(n, binary_data=False)
            for n in ("echo", "greeting", "raw")
        ]
        result = client.infer("bytes", [tensor], outputs=outputs)
        check_bytes_outputs(result.get_response()["outputs"])
    finally:
        client.close()


def test_bytes_outputs_over_grpc_stay_bytes(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(
        model_name="bytes",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="text",
                datatype="BYTES",
                shape=[2],
                contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in TEXT]),
            )
        ],
    )
    response = stub.ModelInfer(request)
    by_name = {o.name: list(o.contents.bytes_contents) for o in response.outputs}
    assert by_name["echo"] == [t.encode() for t in TEXT]
    assert by_name["raw"] == [b"\xff" + t.encode() for t in TEXT]


# -- 2. the request id ---------------------------------------------------------------------
@pytest.mark.parametrize("given", ["", "my-id"])
def test_given_id_is_echoed(server: RunningServer, given: str) -> None:
    response = post(server, "/v2/models/bytes/infer", bytes_request(id=given))
    assert response.status_code == 200 and response.json()["id"] == given


def test_id_is_generated_only_when_absent(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    generated = post(server, "/v2/models/bytes/infer", bytes_request()).json()["id"]
    assert uuid.UUID(generated)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text",
        datatype="BYTES",
        shape=[1],
        contents=pb.InferTensorContents(bytes_contents=[b"a"]),
    )
    assert (
        stub.ModelInfer(pb.ModelInferRequest(model_name="bytes", id="g", inputs=[tensor])).id == "g"
    )
    # proto3 cannot tell "" from absent: an empty gRPC id is absent, so one is generated.
    assert uuid.UUID(stub.ModelInfer(pb.ModelInferRequest(model_name="bytes", inputs=[tensor])).id)


# -- 3. repository index ------------------------------------------------------------------
def test_repository_index_versions_are_strings_on_both_transports(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    rest = post(server, "/v2/repository/index").json()
    assert {item["name"]: item["version"] for item in rest if item["name"] != "versioned"} == {
        "bytes": "",
        "echo": "",
        "numbers": "",
    }
    assert [i["version"] for i in rest if i["name"] == "versioned"] == ["1", "2", "10"]
    grpc_items = stub.RepositoryIndex(pb.RepositoryIndexRequest()).models
    assert [(m.name, m.version, m.state, m.reason) for m in grpc_items] == [
        (i["name"], i["version"], i["state"], i["reason"]) for i in rest
    ]


# -- 4. model readiness ---------------------------------------------------------------------
def test_not_ready_model_is_400_over_rest_and_false_over_grpc(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    import tritonclient.http as triton_http

    assert post(server, "/v2/repository/models/echo/unload").status_code == 200
    try:
        ready = httpx.get(server.url + "/v2/models/echo/ready")
        assert ready.status_code == 400
        assert ready.json()["name"] == "echo" and ready.json()["ready"] is False
        assert "not ready" in ready.json()["error"]
        assert stub.ModelReady(pb.ModelReadyRequest(name="echo")).ready is False
        client = triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        try:
            assert client.is_model_ready("echo") is False and client.is_model_ready("bytes")
        finally:
            client.close()
        # An unload on purpose keeps the server in service (REST, gRPC, grpc.health).
        assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
        assert stub.ServerReady(pb.ServerReadyRequest()).ready is True
        with grpc.insecure_channel(server.grpc_address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # Still known: statistics answer, inference says not ready.
        assert httpx.get(server.url + "/v2/models/echo/stats").status_code == 200
        assert post(server, "/v2/models/echo/infer", bytes_request()).status_code == 503
    finally:
        assert post(server, "/v2/repository/models/echo/load").status_code == 200
    assert httpx.get(server.url + "/v2/models/echo/ready").json() == {"name": "echo", "ready": True}
    assert stub.ModelReady(pb.ModelReadyRequest(name="echo")).ready is True


def test_unknown_model_is_404_over_rest_and_not_found_over_grpc(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    assert httpx.get(server.url + "/v2/models/nope/ready").status_code == 404
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelReady(pb.ModelReadyRequest(name="nope"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


# -- 5. what the routes accept ---------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=utf-8"]
)
def test_json_content_types_are_accepted(server: RunningServer, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(bytes_request()).encode()
    response = httpx.post(server.url + "/v2/models/bytes/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/bytes/infer",
        "/v2/models/versioned/versions/1/infer",
        "/v2/repository/index",
        "/v2/repository/models/echo/load",
        "/v2/repository/models/echo/unload",
    ],
)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ],
)
def test_other_content_types_are_415(server: RunningServer, path: str, content_type: str) -> None:
    body = json.dumps(bytes_request()).encode()
    response = httpx.post(server.url + path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert content_type in response.json()["error"]


def test_empty_inputs_are_refused_and_documented(server: RunningServer) -> None:
    response = post(server, "/v2/models/bytes/infer", {"inputs": []})
    assert response.status_code == 400 and "no inputs" in response.json()["error"]
    document = httpx.get(server.url + "/v2/docs/dataplane.json").json()
    assert (
        document["components"]["schemas"]["InferenceRequest"]["properties"]["inputs"]["minItems"]
        == 1
    )
    model = httpx.get(server.url + "/v2/models/bytes/docs/dataplane.json").json()
    assert (
        model["components"]["schemas"]["bytes_InferenceRequest"]["properties"]["inputs"]["minItems"]
        == 1
    )


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v2/models/bytes/infer", "POST"),
        ("DELETE", "/v2/models/bytes/ready", "GET, HEAD"),
        ("PUT", "/v2/repository/index", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    server: RunningServer, method: str, path: str, allow: str
) -> None:
    response = httpx.request(method, server.url + path)
    assert response.status_code == 405 and response.json()["error"]
    assert sorted(response.headers["allow"].split(", ")) == allow.split(", ")

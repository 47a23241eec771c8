"""End to end: a real ``mlpack start`` driven over gRPC (tritonclient and plain grpcio stubs).

mlpack's messages live in a private descriptor pool, so tritonclient's ``inference.*``
messages and ``mlpack.proto`` share this process without clashing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from mlpack.proto import convert
from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from mlpack.types import Datatype, InferenceRequest, RequestInput
from tests.e2e.test_rest import ALL_DATATYPES, IRIS_ROW
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
BIG = 64 * MiB
CLIENT_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_address, options=CLIENT_OPTIONS) as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def triton(server: RunningServer) -> Iterator[Any]:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(server.grpc_address)
    yield client
    client.close()


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def _array(datatype: str, values: list[Any]) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([v.encode() for v in values], dtype=object).reshape(2, 2)
    dtype = {"BOOL": np.bool_, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(
        datatype
    )
    dtype = dtype or np.dtype(datatype.lower())
    return np.array(values, dtype=dtype).reshape(2, 2)


def _request(
    model: str, name: str, array: np.ndarray, datatype: str, raw: bool
) -> pb.ModelInferRequest:
    data: Any = array.reshape(-1).tolist() if datatype != "BYTES" else list(array.reshape(-1))
    request = InferenceRequest(
        inputs=[
            RequestInput(name=name, shape=list(array.shape), datatype=Datatype(datatype), data=data)
        ]
    )
    return convert.model_infer_request_from_types(request, model, raw=raw)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical (NaN payloads included); BYTES compare as lists."""
    if a.dtype == object or b.dtype == object:
        return a.shape == b.shape and a.reshape(-1).tolist() == b.reshape(-1).tolist()
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ---- every RPC over plain stubs ------------------------------------------------------------


def test_server_rpcs(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live is True
    # The broken model was meant to load at startup: not ready, as over REST.
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is False
    metadata = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert metadata.name == "mlpack" and metadata.version
    assert {"model_repository", "binary_tensor_data"} <= set(metadata.extensions)


def test_model_ready_and_metadata(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris")).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="v1")).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name="broken")).ready is False
    code, details = _code(lambda: stub.ModelReady(pb.ModelReadyRequest(name="nope")))
    assert code is grpc.StatusCode.NOT_FOUND and "model 'nope' not found" in details
    code, _ = _code(lambda: stub.ModelReady(pb.ModelReadyRequest(name="iris", version="v9")))
    assert code is grpc.StatusCode.NOT_FOUND
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"))
    assert metadata.name == "iris" and list(metadata.versions) == ["v1"]
    assert {o.name for o in metadata.outputs} == {"predict", "predict_proba"}
    assert stub.ModelMetadata(pb.ModelMetadataRequest(name="versioned")).versions == [
        "1",
        "2",
        "10",
    ]
    code, _ = _code(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")))
    assert code is grpc.StatusCode.NOT_FOUND
    code, details = _code(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="broken")))
    assert code is grpc.StatusCode.UNAVAILABLE and "not ready" in details


def test_repository_index_load_unload(
    stub: pb_grpc.GRPCInferenceServiceStub, server: RunningServer
) -> None:
    index = {m.name: m for m in stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert index["iris"].state == "READY" and index["iris"].version == "v1"
    assert (
        index["broken"].state == "UNAVAILABLE"
        and "weights file is corrupt" in index["broken"].reason
    )
    ready = {m.name for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models}
    assert "iris" in ready and "broken" not in ready
    # Same states as over REST.
    rest = {i["name"]: i["state"] for i in httpx.post(server.url + "/v2/repository/index").json()}
    assert rest == {name: m.state for name, m in index.items()}

    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="collide-b"))
    assert stub.ModelReady(pb.ModelReadyRequest(name="collide-b")).ready is False
    index = {m.name: m for m in stub.RepositoryIndex(pb.RepositoryIndexRequest()).models}
    assert index["collide-b"].state == "UNAVAILABLE"
    request = _request("collide-b", "a", np.array([1], dtype=np.int32), "INT32", raw=True)
    code, _ = _code(lambda: stub.ModelInfer(request))
    assert code is grpc.StatusCode.UNAVAILABLE
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="collide-b"))
    assert stub.ModelReady(pb.ModelReadyRequest(name="collide-b")).ready is True
    code, details = _code(
        lambda: stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ghost"))
    )
    assert code is grpc.StatusCode.NOT_FOUND and "ghost" in details
    code, _ = _code(
        lambda: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="ghost"))
    )
    assert code is grpc.StatusCode.NOT_FOUND


def test_iris_over_plain_stubs(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    features = np.array([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]])
    request = _request("iris", "x", features, "FP64", raw=False)
    request.id = "my-id"
    response = stub.ModelInfer(request)
    assert (
        response.model_name == "iris" and response.model_version == "v1" and response.id == "my-id"
    )
    assert not response.raw_output_contents  # typed in, typed out
    assert list(response.outputs[0].contents.int64_contents) == [0, 2]
    raw = stub.ModelInfer(_request("iris", "x", features, "FP64", raw=True))
    assert np.frombuffer(raw.raw_output_contents[0], dtype="<i8").tolist() == [0, 2]


# ---- every datatype, both encodings -----------------------------------------------------


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize(("datatype", "values"), ALL_DATATYPES, ids=[d for d, _ in ALL_DATATYPES])
def test_every_datatype_round_trips(
    stub: pb_grpc.GRPCInferenceServiceStub, datatype: str, values: list[Any], raw: bool
) -> None:
    array = _array(datatype, values)
    response = stub.ModelInfer(_request("echo", "t", array, datatype, raw=raw))
    # FP16 has no typed field, so it always travels raw.
    assert bool(response.raw_output_contents) == (raw or datatype == "FP16")
    output = convert.model_infer_response_to_types(response).outputs[0]
    assert output.shape == [2, 2] and output.datatype.value == datatype
    got = np.asarray(output.data, dtype=object if datatype == "BYTES" else array.dtype)
    assert _same(got.reshape(2, 2), array)


@pytest.mark.parametrize(("datatype", "values"), ALL_DATATYPES, ids=[d for d, _ in ALL_DATATYPES])
def test_tritonclient_grpc_every_datatype(triton: Any, datatype: str, values: list[Any]) -> None:
    import tritonclient.grpc as triton_grpc

    array = _array(datatype, values)
    tensor = triton_grpc.InferInput("t", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    result = triton.infer("echo", [tensor], request_id="rt")
    assert result.get_response().id == "rt"
    assert _same(result.as_numpy("t"), array)


def test_tritonclient_grpc_server_and_models(triton: Any) -> None:
    assert triton.is_server_live() and not triton.is_server_ready()
    assert triton.is_model_ready("iris") and not triton.is_model_ready("broken")
    assert "binary_tensor_data" in triton.get_server_metadata().extensions
    assert triton.get_model_metadata("iris").name == "iris"
    assert {"iris", "echo"} <= {m.name for m in triton.get_model_repository_index().models}


def test_nan_travels_as_nan(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    array = np.array([1.0, np.nan, -np.inf], dtype=np.float32)
    for raw in (True, False):
        response = stub.ModelInfer(_request("echo", "t", array, "FP32", raw=raw))
        out = np.asarray(
            convert.model_infer_response_to_types(response).outputs[0].data, dtype=np.float32
        )
        assert _same(out, array)


# ---- parity: REST JSON, REST binary, gRPC raw and typed ----------------------------------


PARITY = [
    ("FP32", np.array([[0.1, np.nan, 3.4028235e38], [-0.0, 1e-45, -7.5]], dtype=np.float32)),
    ("FP64", np.array([[0.1, np.nan, 1e308], [-0.0, 5e-324, np.pi]], dtype=np.float64)),
    ("INT64", np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64)),
    ("UINT8", np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
    ("BYTES", np.array([b"a", "héllo".encode(), b""], dtype=object)),
]


@pytest.mark.parametrize(("datatype", "array"), PARITY, ids=[d for d, _ in PARITY])
def test_same_request_same_bits_over_every_transport(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub, datatype: str, array: np.ndarray
) -> None:
    import tritonclient.http as triton_http

    results = {}
    for raw in (True, False):
        response = stub.ModelInfer(_request("echo", "t", array, datatype, raw=raw))
        out = convert.model_infer_response_to_types(response).outputs[0]
        results[f"grpc-{'raw' if raw else 'typed'}"] = np.asarray(
            out.data, dtype=object if datatype == "BYTES" else array.dtype
        ).reshape(array.shape)
    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    try:
        for binary in (True, False):
            tensor = triton_http.InferInput("t", list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            wanted = [triton_http.InferRequestedOutput("t", binary_data=binary)]
            result = client.infer("echo", [tensor], outputs=wanted)
            got = result.as_numpy("t")
            if datatype == "BYTES" and not binary:  # JSON strings come back as str
                got = np.array([v.encode() for v in got.reshape(-1)], dtype=object).reshape(
                    got.shape
                )
            results[f"rest-{'binary' if binary else 'json'}"] = got
    finally:
        client.close()
    for name, got in results.items():
        assert _same(got, array), name


def test_iris_parity_rest_and_grpc(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    rows = [IRIS_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    body = {
        "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": rows}],
        "outputs": [{"name": "predict_proba"}],
    }
    rest = httpx.post(server.url + "/v2/models/iris/infer", json=body).json()
    rest_proba = np.array(rest["outputs"][0]["data"], dtype=np.float64)
    request = _request("iris", "x", np.array(rows), "FP64", raw=True)
    request.outputs.add(name="predict_proba")
    grpc_proba = np.frombuffer(stub.ModelInfer(request).raw_output_contents[0], dtype="<f8")
    assert rest_proba.tobytes() == grpc_proba.tobytes()


# ---- bad inputs and failures ------------------------------------------------------------


def _infer_message(**fields: Any) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="echo", **fields)


def _bad_requests() -> list[tuple[str, pb.ModelInferRequest, grpc.StatusCode, str]]:
    tensor = pb.ModelInferRequest.InferInputTensor
    contents = pb.InferTensorContents
    return [
        (
            "mixed raw and typed",
            _infer_message(
                inputs=[
                    tensor(
                        name="a", datatype="INT32", shape=[1], contents=contents(int_contents=[1])
                    ),
                    tensor(name="b", datatype="INT32", shape=[1]),
                ],
                raw_input_contents=[b"\0\0\0\0"],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "use one or the other",
        ),
        (
            "wrong raw count",
            _infer_message(
                inputs=[
                    tensor(name="a", datatype="INT32", shape=[1]),
                    tensor(name="b", datatype="INT32", shape=[1]),
                ],
                raw_input_contents=[b"\0\0\0\0"],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "has 1 entries but there are 2",
        ),
        (
            "wrong typed field",
            _infer_message(
                inputs=[
                    tensor(
                        name="a", datatype="FP32", shape=[1], contents=contents(fp64_contents=[1.0])
                    )
                ]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FP32 tensors use fp32_contents",
        ),
        (
            "raw size mismatch",
            _infer_message(
                inputs=[tensor(name="a", datatype="FP32", shape=[2])],
                raw_input_contents=[b"\0" * 4],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "has 4 bytes but shape [2] needs 8",
        ),
        (
            "typed count mismatch",
            _infer_message(
                inputs=[
                    tensor(
                        name="a",
                        datatype="INT32",
                        shape=[3],
                        contents=contents(int_contents=[1, 2]),
                    )
                ]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "3 elements but data has 2",
        ),
        (
            "typed out of range",
            _infer_message(
                inputs=[
                    tensor(
                        name="a", datatype="INT8", shape=[1], contents=contents(int_contents=[300])
                    )
                ]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "300 is out of range",
        ),
        (
            "bad bytes prefix",
            _infer_message(
                inputs=[tensor(name="a", datatype="BYTES", shape=[1])],
                raw_input_contents=[b"\x09\0\0\0ab"],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "declares 9 bytes",
        ),
        (
            "unknown datatype",
            _infer_message(
                inputs=[tensor(name="a", datatype="FP128", shape=[1])], raw_input_contents=[b"\0"]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown datatype 'FP128'",
        ),
        (
            "negative dim",
            _infer_message(
                inputs=[tensor(name="a", datatype="INT8", shape=[-1])], raw_input_contents=[b"\0"]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "negative",
        ),
        ("no inputs", _infer_message(), grpc.StatusCode.INVALID_ARGUMENT, "no inputs"),
        (
            "unknown output",
            _infer_message(
                inputs=[tensor(name="a", datatype="INT8", shape=[1])],
                raw_input_contents=[b"\0"],
                outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="zzz")],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "did not produce requested output(s): zzz",
        ),
        (
            "unknown model",
            pb.ModelInferRequest(
                model_name="nope",
                inputs=[tensor(name="a", datatype="INT8", shape=[1])],
                raw_input_contents=[b"\0"],
            ),
            grpc.StatusCode.NOT_FOUND,
            "model 'nope' not found",
        ),
        (
            "unknown version",
            pb.ModelInferRequest(
                model_name="echo",
                model_version="3",
                inputs=[tensor(name="a", datatype="INT8", shape=[1])],
                raw_input_contents=[b"\0"],
            ),
            grpc.StatusCode.NOT_FOUND,
            "version '3' not found",
        ),
        (
            "not ready",
            pb.ModelInferRequest(
                model_name="broken",
                inputs=[tensor(name="a", datatype="INT8", shape=[1])],
                raw_input_contents=[b"\0"],
            ),
            grpc.StatusCode.UNAVAILABLE,
            "not ready",
        ),
    ]


BAD = _bad_requests()


@pytest.mark.parametrize(("case", "request_", "code", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_precise_status(
    stub: pb_grpc.GRPCInferenceServiceStub,
    case: str,
    request_: pb.ModelInferRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    got, details = _code(lambda: stub.ModelInfer(request_))
    assert got is code, details
    assert message in details
    # And the server keeps serving.
    ok = stub.ModelInfer(_request("echo", "t", np.array([1], dtype=np.int8), "INT8", raw=True))
    assert ok.raw_output_contents[0] == b"\x01"


def _handled(server: RunningServer, method: str, code: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    total = 0.0
    wanted = (f'grpc_method="{method}"', f'grpc_code="{code}"')
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_undecodable_message_is_invalid_argument_and_counted(
    server: RunningServer, channel: grpc.Channel
) -> None:
    """Bytes that are not a protobuf message: a clear INVALID_ARGUMENT, counted like any
    other call, no traceback in the log (grpc alone would answer UNKNOWN and log one)."""
    before = _handled(server, "ModelInfer", "INVALID_ARGUMENT")
    raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest" in caught.value.details()
    assert _handled(server, "ModelInfer", "INVALID_ARGUMENT") == before + 1
    assert "DecodeError" not in server.log()
    # Another RPC's garbage names its own message type; the stream answers it in-band.
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/inference.GRPCInferenceService/ModelReady")(b"\x0a\xff", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "inference.ModelReadyRequest" in caught.value.details()
    stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
    replies = list(stream(iter([b"\xff\xff"]), timeout=10))
    assert len(replies) == 1
    reply = pb.ModelStreamInferResponse.FromString(replies[0])
    assert "not a valid inference.ModelInferRequest" in reply.error_message


def test_model_failure_is_internal_with_message(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = _request("headers", "a", np.array([1], dtype=np.int32), "INT32", raw=True)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, metadata=[("x-test-header", "fail")])
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "the model refused this request" in caught.value.details()


def test_metadata_reaches_model_and_headers_come_back(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    request = _request("headers", "a", np.array([1], dtype=np.int32), "INT32", raw=True)
    response, call = stub.ModelInfer.with_call(request, metadata=[("x-test-header", "hello")])
    value = response.raw_output_contents[0]
    assert value[4:] == b"hello"
    trailing = dict(call.trailing_metadata())
    assert trailing["x-echo"] == "hello"
    assert "\n" not in trailing["x-weird"] and trailing["x-weird"].startswith("line")
    assert "bad name" not in trailing
    assert "headers" not in response.parameters


def test_deadline_exceeded(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = _request("slow", "s", np.array([1.0]), "FP64", raw=True)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=0.2)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The server stays responsive while the slow model finishes.
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=2).live


def test_500_concurrent_requests_each_get_their_own_answer(server: RunningServer) -> None:
    async def run() -> None:
        async with grpc.aio.insecure_channel(server.grpc_address) as aio_channel:
            aio_stub = pb_grpc.GRPCInferenceServiceStub(aio_channel)

            async def one(i: int) -> None:
                request = _request(
                    "echo", "v", np.array([[i, -i]], dtype=np.int64), "INT64", raw=i % 2 == 0
                )
                request.id = f"req-{i}"
                response = await aio_stub.ModelInfer(request, timeout=60)
                assert response.id == f"req-{i}"
                out = convert.model_infer_response_to_types(response).outputs[0]
                assert np.asarray(out.data).tolist() == [i, -i]

            await asyncio.gather(*(one(i) for i in range(500)))

    asyncio.run(run())


# ---- large messages -----------------------------------------------------------------------


def _big_request(model: str) -> pb.ModelInferRequest:
    data = np.full(BIG, 3, dtype=np.uint8).tobytes()
    return pb.ModelInferRequest(
        model_name=model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="big", datatype="UINT8", shape=[BIG])],
        raw_input_contents=[data],
    )


def test_64_mib_tensor_within_the_default_limit(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    response = stub.ModelInfer(_big_request("total"), timeout=60)
    assert np.frombuffer(response.raw_output_contents[0], dtype="<u8").tolist() == [BIG, 3 * BIG]


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with a 16 MiB gRPC message limit and only ready models."""
    folder = tmp_path_factory.mktemp("limited")
    for name in ("echo", "total"):
        shutil.copytree(ASSETS / "models" / name, folder / name)
    running = start_server(
        folder, tmp_path_factory.mktemp("logs"), settings={"grpc_max_message_length": 16 * MiB}
    )
    yield running
    running.stop()


def test_64_mib_tensor_beyond_the_limit_is_resource_exhausted(
    small_limit_server: RunningServer,
) -> None:
    with grpc.insecure_channel(small_limit_server.grpc_address, options=CLIENT_OPTIONS) as opened:
        limited = pb_grpc.GRPCInferenceServiceStub(opened)
        with pytest.raises(grpc.RpcError) as caught:
            limited.ModelInfer(_big_request("total"), timeout=60)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in caught.value.details()
        assert str(16 * MiB) in caught.value.details()
        # Still serving.
        assert limited.ServerLive(pb.ServerLiveRequest()).live


# ---- health, reflection, startup ------------------------------------------------------------


def test_health_follows_readiness(channel: grpc.Channel, small_limit_server: RunningServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    # The main server has a broken model, so it is not ready; the small one is.
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == not_serving
    with grpc.insecure_channel(small_limit_server.grpc_address) as opened:
        other = health_pb2_grpc.HealthStub(opened)
        for service in ("", "inference.GRPCInferenceService"):
            assert other.Check(health_pb2.HealthCheckRequest(service=service)).status == serving
        code, _ = _code(lambda: other.Check(health_pb2.HealthCheckRequest(service="nope")))
        assert code is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(channel)
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= set(
        database.get_services()
    )
    service = DescriptorPool(database).FindServiceByName("inference.GRPCInferenceService")
    assert [m.name for m in service.methods] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStreamInfer",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    ]


def test_busy_grpc_port_is_a_clear_startup_error(
    small_limit_server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    from tests.conftest import free_ports
    from tests.helpers.server import REPO

    http_port, metrics_port = free_ports(2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlpack",
            "start",
            str(folder),
            "--host",
            "127.0.0.1",
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(small_limit_server.grpc_port),
            "--metrics-port",
            str(metrics_port),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"},
    )
    assert result.returncode == 3, result.stderr
    assert f"cannot listen for gRPC on 127.0.0.1:{small_limit_server.grpc_port}" in result.stderr

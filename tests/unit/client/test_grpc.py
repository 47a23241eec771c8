"""The gRPC client against an in-process grpc.aio servicer (the server side is not needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from mlpack.client.errors import ServerError, TransportError
from mlpack.client.grpc import AsyncGrpcClient
from mlpack.proto import convert
from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from mlpack.types import InferenceResponse, ResponseOutput
from tests.conftest import free_ports


class Echo(pb_grpc.GRPCInferenceServiceServicer):
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: object
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        if request.model_name == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "model 'missing' not found")
        typed = convert.model_infer_request_to_types(request)
        response = InferenceResponse(
            model_name=request.model_name,
            id=typed.id,
            outputs=[
                ResponseOutput(name=i.name, shape=i.shape, datatype=i.datatype, data=i.data)
                for i in typed.inputs
            ],
        )
        return convert.types_to_model_infer_response(response)


@pytest.fixture
async def address() -> AsyncIterator[str]:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    (port,) = free_ports(1)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_infer_json_matches_the_rest_shape(address: str) -> None:
    request = {
        "id": "r1",
        "inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1.5, 2], [3, 4]]},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hé"]},
        ],
    }
    async with AsyncGrpcClient(address, headers={"X-A": "1"}) as client:
        assert await client.live()
        response = await client.infer_json("echo", request)
    assert response == {
        "model_name": "echo",
        "id": "r1",
        "outputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1.5, 2.0, 3.0, 4.0]},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hé"]},
        ],
    }


async def test_errors_map_to_client_errors(address: str) -> None:
    request = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}
    async with AsyncGrpcClient(address) as client:
        with pytest.raises(ServerError) as missing:
            await client.infer_json("missing", request)
    assert missing.value.status == 404 and not missing.value.retryable
    (dead,) = free_ports(1)
    async with AsyncGrpcClient(f"127.0.0.1:{dead}", timeout=5) as client:
        with pytest.raises(TransportError):
            await client.infer_json("echo", request)

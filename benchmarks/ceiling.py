"""The machine's own ceiling: N bare processes answering a fixed V2 response.

Each process serves REST (uvicorn + httptools, a raw ASGI app) and gRPC (grpc.aio, one
generic handler) on ports shared with SO_REUSEPORT, the way mlpack's front-ends do, and
answers every inference with the same pre-encoded iris response: no parsing, no model.
What mlpack's front-ends reach against it is the share of the machine they use.

Usage: ``python -m benchmarks.ceiling --http-port P --grpc-port G [--processes 2]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
from typing import Any

from benchmarks import models

_REST_BODY = json.dumps(
    {
        "model_name": models.IRIS_NAME,
        "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]}],
    }
).encode()


async def _rest_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:  # read the body (a real server must)
        message = await receive()
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _REST_BODY})


def _grpc_response() -> bytes:
    from mlpack.proto import inference_pb2 as pb

    output = pb.ModelInferResponse.InferOutputTensor(name="predict", datatype="INT64", shape=[1])
    output.contents.int64_contents.append(0)
    message = pb.ModelInferResponse(model_name=models.IRIS_NAME, outputs=[output])
    serialized: bytes = message.SerializeToString()
    return serialized


async def _serve(host: str, http_port: int, grpc_port: int) -> None:
    import socket

    import grpc
    import uvicorn

    answer = _grpc_response()

    async def infer(request: bytes, context: Any) -> bytes:
        return answer

    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(
                infer, request_deserializer=None, response_serializer=None
            )
        },
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{grpc_port}")
    await server.start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, http_port))
    config = uvicorn.Config(
        _rest_app, lifespan="off", http="httptools", access_log=False, log_config=None
    )
    rest = uvicorn.Server(config)
    await rest.serve(sockets=[sock])
    await server.stop(0)


def _process(host: str, http_port: int, grpc_port: int) -> None:
    import uvloop

    uvloop.run(_serve(host, http_port, grpc_port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, default=0, help="ignored (same CLI shape)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_process, args=(args.host, args.http_port, args.grpc_port))
        for _ in range(args.processes)
    ]
    for child in children:
        child.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for child in children:
        child.terminate()
    for child in children:
        child.join(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Who may call what, end to end: every REST route and gRPC method with no key, a wrong
key, a data-plane key and a control-plane key; metrics; the control-plane switch.

The route table comes from the app's real routes and the gRPC service descriptor, so a
route or RPC added later is covered (and, unless listed as open or control, must ask
for a data-plane key).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import message_factory

from mlpack.engine.registry import ModelRegistry
from mlpack.proto import inference_pb2 as pb
from mlpack.server.observability import Observability
from mlpack.server.rest import build_rest_app
from mlpack.settings import Settings
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

DATA_KEYS = ["data-key-1", "data-key-2"]
CONTROL_KEY = "control-key-from-file"
OPEN_REST = {"/v2/health/live", "/v2/health/ready"}
OPEN_GRPC = {"ServerLive", "ServerReady"}
CONTROL_GRPC = {"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
ECHO = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}


def _rest_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the served app has, path parameters filled in."""
    settings = Settings()
    app = build_rest_app(
        ModelRegistry(), extra_routes=Observability(settings).routes(ModelRegistry())
    )
    table = []
    for route in app.routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        # Repository routes act on a model that does not exist, so the right key gets a 404.
        model = "ghost" if path.startswith("/v2/repository") else "echo"
        filled = path.replace("{model_name}", model).replace("{model_version}", "1")
        filled = re.sub(r"\{[^}]+\}", "x", filled)
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            table.append((method, filled))
    return table


REST_ROUTES = _rest_routes()
GRPC_METHODS = [method.name for method in SERVICE.methods]


def _rest_scope(path: str) -> str:
    if path in OPEN_REST:
        return "open"
    return "control" if path.startswith("/v2/repository") else "data"


def _grpc_scope(name: str) -> str:
    return "open" if name in OPEN_GRPC else "control" if name in CONTROL_GRPC else "data"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("auth")
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    keys = folder / "control-keys.txt"
    keys.write_text(f"# control plane\n\n{CONTROL_KEY}\n")
    settings = {
        "auth": {
            "data_plane_tokens": DATA_KEYS,
            "control_plane_tokens_file": str(keys),
            "metrics_requires_token": True,
        }
    }
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    yield running
    running.stop()


def _call_rest(server: RunningServer, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = json.dumps(ECHO).encode() if method == "POST" else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(method, server.url + path, headers=headers, content=body, timeout=30)


KEYS = {"none": None, "wrong": "not-a-key", "data": DATA_KEYS[1], "control": CONTROL_KEY}


def _expected(scope: str, key: str) -> int | None:
    """The refusal status expected (None: let through)."""
    if scope == "open" or key == "control":
        return None
    if key in ("none", "wrong"):
        return 401
    return 403 if scope == "control" else None


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize(("method", "path"), REST_ROUTES, ids=[f"{m} {p}" for m, p in REST_ROUTES])
def test_every_rest_route_with_each_key(
    server: RunningServer, method: str, path: str, key: str
) -> None:
    response = _call_rest(server, method, path, KEYS[key])
    expected = _expected(_rest_scope(path), key)
    if expected is None:
        assert response.status_code not in (401, 403), (response.status_code, response.text)
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == expected, response.text
        assert "error" in response.json()
        if expected == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_route_table_is_not_empty_and_knows_the_infer_fast_path() -> None:
    assert ("POST", "/v2/models/echo/infer") in REST_ROUTES
    assert ("POST", "/v2/models/echo/versions/1/infer") in REST_ROUTES
    assert ("POST", "/v2/repository/models/ghost/load") in REST_ROUTES


def _grpc_call(server: RunningServer, name: str, key: str | None) -> grpc.StatusCode:
    method = SERVICE.methods_by_name[name]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request: Any = request_class()
    if name in ("ModelInfer", "ModelStreamInfer"):
        request = pb.ModelInferRequest(
            model_name="echo",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="x",
                    datatype="INT64",
                    shape=[1],
                    contents=pb.InferTensorContents(int64_contents=[1]),
                )
            ],
        )
    elif "name" in request_class.DESCRIPTOR.fields_by_name:
        request = request_class(name="ghost" if name.startswith("Repository") else "echo")
    elif "model_name" in request_class.DESCRIPTOR.fields_by_name:
        request = request_class(model_name="ghost")
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    with grpc.insecure_channel(server.grpc_address) as channel:
        kind = channel.stream_stream if method.client_streaming else channel.unary_unary
        call = kind(
            f"/{SERVICE.full_name}/{name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            if method.client_streaming:  # one request; read every answer to the end
                list(call(iter([request]), metadata=metadata, timeout=30))
            else:
                call(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


GRPC_REFUSALS = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("name", GRPC_METHODS)
def test_every_grpc_method_with_each_key(server: RunningServer, name: str, key: str) -> None:
    code = _grpc_call(server, name, KEYS[key])
    expected = _expected(_grpc_scope(name), key)
    if expected is None:
        assert code not in GRPC_REFUSALS.values(), code
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), code
    else:
        assert code is GRPC_REFUSALS[expected], code


def test_grpc_health_service_stays_open(server: RunningServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_port_asks_for_a_key_when_configured(server: RunningServer) -> None:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    refused = httpx.get(url, timeout=30)
    assert refused.status_code == 401 and "error" in refused.json()
    allowed = httpx.get(url, headers={"Authorization": f"Bearer {DATA_KEYS[0]}"}, timeout=30)
    assert allowed.status_code == 200 and "rest_server_requests" in allowed.text


def test_clients_send_the_token(server: RunningServer) -> None:
    import asyncio

    from mlpack.client.errors import ServerError
    from mlpack.client.grpc import AsyncGrpcClient
    from mlpack.client.rest import Client

    with Client(server.url, token=DATA_KEYS[0]) as client:
        assert client.infer_json("echo", ECHO)["outputs"][0]["data"] == [1]
    with Client(server.url) as client, pytest.raises(ServerError) as refused:
        client.infer_json("echo", ECHO)
    assert refused.value.status == 401

    async def over_grpc() -> None:
        client = AsyncGrpcClient(server.grpc_address, token=DATA_KEYS[0])
        response = await client.infer_json("echo", ECHO)
        assert response["outputs"][0]["data"] == [1]
        assert (await client.model_metadata("echo")).name == "echo"

    asyncio.run(over_grpc())


def test_mlpack_infer_takes_a_token(server: RunningServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlpack.cli import create_app

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(ECHO) + "\n")
    for transport, url in (("rest", server.url), ("grpc", server.grpc_address)):
        output = tmp_path / f"out-{transport}.jsonl"
        args = [
            "infer",
            "-u",
            url,
            "-m",
            "echo",
            "-i",
            str(source),
            "-o",
            str(output),
            "-t",
            transport,
            "--no-progress",
        ]
        refused = CliRunner().invoke(create_app(), [*args, "--retries", "0"])
        assert refused.exit_code != 0
        output.unlink(missing_ok=True)
        for sidecar in tmp_path.glob(f"out-{transport}.jsonl.*"):
            sidecar.unlink()
        done = CliRunner().invoke(create_app(), args, env={"MLPACK_TOKEN": DATA_KEYS[0]})
        assert done.exit_code == 0, done.output
        assert json.loads(output.read_text())["outputs"][0]["data"] == [1]


@pytest.fixture(scope="module", params=["off", "read_only"])
def closed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """No keys, control plane off or read-only: the repository API (all of it, or the calls
    that change state) answers 403 / PERMISSION_DENIED."""
    folder = tmp_path_factory.mktemp("closed")
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    running = start_server(
        folder, tmp_path_factory.mktemp("logs"), settings={"control_plane": request.param}
    )
    running.extra["control_plane"] = request.param
    yield running
    running.stop()


def test_control_plane_off_or_read_only(closed_server: RunningServer) -> None:
    mode = closed_server.extra["control_plane"]
    for method, path in REST_ROUTES:
        response = _call_rest(closed_server, method, path, None)
        refused = _rest_scope(path) == "control" and (mode == "off" or "index" not in path)
        if refused:
            assert response.status_code == 403, (path, response.text)
            assert f"control_plane: {mode}" in response.json()["error"]
        else:
            assert response.status_code not in (401, 403), (path, response.text)
    for name in GRPC_METHODS:
        code = _grpc_call(closed_server, name, None)
        if name in CONTROL_GRPC and (mode == "off" or name != "RepositoryIndex"):
            assert code is grpc.StatusCode.PERMISSION_DENIED, name
        else:
            assert code not in GRPC_REFUSALS.values(), (name, code)
    if mode == "read_only":  # the index really answers, and the model stays loaded
        index = httpx.post(closed_server.url + "/v2/repository/index", timeout=30).json()
        assert [(m["name"], m["state"]) for m in index] == [("echo", "READY")]
    # Metrics stay open without keys (the default).
    metrics = httpx.get(f"http://127.0.0.1:{closed_server.metrics_port}/metrics", timeout=30)
    assert metrics.status_code == 200

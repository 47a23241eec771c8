"""REST, binary tensor extension and docs in-process through ASGI (no port, no uvicorn).

The app is the one ``mlpack start`` serves (the Starlette app, its infer fast path and
the docs/stats routes) over a real registry with a real model; httpx's ASGITransport
speaks to it. Transport-level behaviour (sockets, keep-alive) is in tests/e2e.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlpack.engine.repository import discover_models
from mlpack.server.app import MLPackServer
from mlpack.server.rest import InferFastPath, build_rest_app
from mlpack.settings import Settings
from tests.helpers.server import ASSETS

HEADER_LENGTH = "Inference-Header-Content-Length"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    root = tmp_path / "models"
    shutil.copytree(ASSETS / "models" / "echo", root / "echo")
    models, problems = discover_models(root)
    assert not problems and [m.name for m in models] == ["echo"]
    server = MLPackServer(Settings(parallel_workers=0, metrics_endpoint=None), models, root)
    registry = server.registry
    registry.observer = server.observability.start()
    for model in models:
        registry.add(model)
    await registry.load_all(models)
    app = build_rest_app(
        registry, server_name="mlpack-asgi", extra_routes=server.observability.routes(registry)
    )
    transport = httpx.ASGITransport(app=InferFastPath(app))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as http:
            yield http
    finally:
        await registry.close()
        server.observability.close()


def _infer_body(values: list[float]) -> dict[str, object]:
    return {
        "id": "r1",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": values}],
    }


# -- REST ------------------------------------------------------------------------------


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).status_code == 200
    assert (await client.get("/v2/health/ready")).status_code == 200
    assert (await client.get("/v2/models/echo/ready")).status_code == 200
    metadata = (await client.get("/v2")).json()
    assert metadata["name"] == "mlpack-asgi"


async def test_infer_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/echo/infer", json=_infer_body([1.5, -2.0]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "r1" and body["model_name"] == "echo"
    (output,) = body["outputs"]
    assert output["name"] == "x" and output["shape"] == [2] and output["data"] == [1.5, -2.0]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "says"),
    [
        ("POST", "/v2/models/echo/infer", b"{not json", 400, "JSON"),
        ("POST", "/v2/models/nope/infer", json.dumps(_infer_body([1.0])).encode(), 404, "nope"),
        ("GET", "/v2/models/nope", b"", 404, "nope"),
        ("GET", "/no/such/route", b"", 404, ""),
        ("DELETE", "/v2/health/live", b"", 405, ""),
    ],
)
async def test_bad_requests_are_clear_json_errors(
    client: httpx.AsyncClient, method: str, path: str, content: bytes, status: int, says: str
) -> None:
    response = await client.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error and says in error


async def test_tensor_shape_mismatch_names_the_input(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.0]}]}
    response = await client.post("/v2/models/echo/infer", json=body)
    assert response.status_code == 400
    assert "'x'" in response.json()["error"]


# -- binary tensor extension -----------------------------------------------------------


async def test_binary_request_and_binary_response(client: httpx.AsyncClient) -> None:
    values = np.array([1.0, 2.5, -3.0], dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [3],
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ],
            "outputs": [{"name": "x", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = await client.post(
        "/v2/models/echo/infer",
        content=header + values.tobytes(),
        headers={"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER_LENGTH])
    meta = json.loads(response.content[:length])
    (output,) = meta["outputs"]
    assert output["parameters"]["binary_data_size"] == values.nbytes and "data" not in output
    returned = np.frombuffer(response.content[length:], dtype="<f4")
    assert returned.tolist() == values.tolist()


async def test_binary_bytes_tensor_is_length_prefixed(client: httpx.AsyncClient) -> None:
    words = [b"ab", b""]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "w",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    response = await client.post(
        "/v2/models/echo/infer",
        content=header + raw,
        headers={HEADER_LENGTH: str(len(header))},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["ab", ""]


async def test_binary_size_mismatch_is_a_400(client: httpx.AsyncClient) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [3],
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    ).encode()
    response = await client.post(
        "/v2/models/echo/infer",
        content=header + b"\0" * 5,
        headers={HEADER_LENGTH: str(len(header))},
    )
    assert response.status_code == 400
    assert "'x'" in response.json()["error"]


# -- docs ------------------------------------------------------------------------------


async def test_docs_page_document_and_assets_are_served_offline(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/v2/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page.text and "dataplane.json" in page.text
    document = (await client.get("/v2/docs/dataplane.json")).json()
    assert document["openapi"].startswith("3.") and "/v2/models/{model_name}/infer" in str(
        document["paths"]
    )
    model_document = (await client.get("/v2/models/echo/docs/dataplane.json")).json()
    assert "echo" in json.dumps(model_document)
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await client.get(f"/v2/docs/static/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset


async def test_docs_for_unknown_model_and_asset_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/models/nope/docs")).status_code == 404
    missing = await client.get("/v2/docs/static/../../etc/passwd")
    assert missing.status_code == 404


async def test_stats_count_what_was_served(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/v2/models/echo/infer", json=_infer_body([1.0]))
    (stats,) = (await client.get("/v2/models/echo/stats")).json()["model_stats"]
    assert stats["inference_count"] == 3
    assert stats["inference_stats"]["success"]["count"] == 3

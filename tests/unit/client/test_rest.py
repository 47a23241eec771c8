from __future__ import annotations

import struct

import httpx
import numpy as np
import orjson
import pytest

from mlpack.client import AsyncClient, Client, ServerError, Timeout, TransportError
from mlpack.client.binary import HEADER_LENGTH, decode_binary_response, encode_binary_request
from mlpack.client.rest import normalise_url
from mlpack.types import InferenceRequest, RequestInput

REQUEST = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}


def echo(request: httpx.Request) -> httpx.Response:
    """A tiny V2 server: echoes inputs, JSON or binary, as the request asked."""
    header_length = request.headers.get(HEADER_LENGTH)
    if header_length is None:
        body = orjson.loads(request.content)
        outputs = [{k: t[k] for k in ("name", "shape", "datatype", "data")} for t in body["inputs"]]
        return httpx.Response(
            200, json={"model_name": "m", "id": body.get("id"), "outputs": outputs}
        )
    length = int(header_length)
    header = orjson.loads(request.content[:length])
    assert header["parameters"]["binary_data_output"] is True
    raw = request.content[length:]
    outputs = []
    for tensor in header["inputs"]:
        size = tensor["parameters"]["binary_data_size"]
        outputs.append(
            {
                "name": tensor["name"],
                "shape": tensor["shape"],
                "datatype": tensor["datatype"],
                "parameters": {"binary_data_size": size},
            }
        )
    json_header = orjson.dumps({"model_name": "m", "outputs": outputs})
    return httpx.Response(
        200, content=json_header + raw, headers={HEADER_LENGTH: str(len(json_header))}
    )


def test_normalise_url() -> None:
    assert normalise_url("localhost:8080") == "http://localhost:8080"
    assert normalise_url("localhost:8080/", use_ssl=True) == "https://localhost:8080"
    assert normalise_url("http://h:1") == "http://h:1"


async def test_infer_json_round_trip() -> None:
    async with AsyncClient("h:1", transport=httpx.MockTransport(echo)) as client:
        response = await client.infer_json("m", {**REQUEST, "id": "a"})
    assert response["id"] == "a" and response["outputs"][0]["data"] == [[1, 2], [3, 4]]


async def test_binary_round_trip_all_datatypes() -> None:
    request = {
        "inputs": [
            {"name": "f", "shape": [2, 2], "datatype": "FP32", "data": [[1.5, 2], [3, 4]]},
            {"name": "i", "shape": [3], "datatype": "INT64", "data": [1, -2, 2**40]},
            {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]},
        ]
    }
    async with AsyncClient("h:1", binary=True, transport=httpx.MockTransport(echo)) as client:
        response = await client.infer_json("m", request)
    data = {o["name"]: o["data"] for o in response["outputs"]}
    assert data == {
        "f": [1.5, 2.0, 3.0, 4.0],
        "i": [1, -2, 2**40],
        "b": [True, False],
        "s": ["héllo", ""],
    }
    assert all("parameters" not in o for o in response["outputs"])


def test_binary_request_layout() -> None:
    body, length = encode_binary_request(
        {"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "data": ["ab"]}]}
    )
    header = orjson.loads(body[:length])
    assert (
        header["inputs"][0]["parameters"] == {"binary_data_size": 6}
        and "data" not in header["inputs"][0]
    )
    assert body[length:] == struct.pack("<I", 2) + b"ab"


def test_binary_response_truncated() -> None:
    header = orjson.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 16},
                }
            ],
        }
    )
    with pytest.raises(Exception, match="truncated"):
        decode_binary_response(header + np.zeros(1).tobytes(), len(header))


async def test_error_statuses_map_to_server_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/models/busy"):
            return httpx.Response(503, json={"error": "overloaded"}, headers={"Retry-After": "2"})
        return httpx.Response(400, json={"error": "input 'x': bad"})

    async with AsyncClient("h:1", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ServerError) as busy:
            await client.infer_json("busy", REQUEST)
        with pytest.raises(ServerError) as bad:
            await client.infer_json("bad", REQUEST)
    assert busy.value.status == 503 and busy.value.retryable and busy.value.retry_after == 2.0
    assert (
        bad.value.status == 400 and not bad.value.retryable and bad.value.reason == "input 'x': bad"
    )


async def test_transport_errors_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with AsyncClient("h:1", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TransportError) as refused:
            await client.infer_json("m", REQUEST)
    async with AsyncClient("h:1", transport=httpx.MockTransport(slow)) as client:
        with pytest.raises(Timeout):
            await client.infer_json("m", REQUEST)
    assert refused.value.retryable


def test_sync_client_with_types_and_versions() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return echo(request)

    request = InferenceRequest(
        inputs=[RequestInput(name="x", shape=[1], datatype="INT32", data=[7])]
    )
    with Client("h:1", transport=httpx.MockTransport(handler), headers={"x-a": "1"}) as client:
        response = client.infer("my model", request, model_version="2")
    assert seen == ["/v2/models/my%20model/versions/2/infer"]
    assert response.outputs[0].data == [7]

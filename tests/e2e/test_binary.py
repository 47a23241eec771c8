"""End to end: the REST binary tensor data extension, with tritonclient.http and by hand."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.e2e.test_rest import ALL_DATATYPES, IRIS_ROW
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def triton(server: RunningServer) -> Iterator[Any]:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    yield client
    client.close()


def _array(datatype: str, values: list[Any]) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([v.encode() for v in values], dtype=object).reshape(2, 2)
    names = {"BOOL": "bool", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
    return np.array(values, dtype=names.get(datatype, datatype.lower())).reshape(2, 2)


def _binary_post(
    server: RunningServer, header: dict[str, Any], tail: bytes, model: str = "echo"
) -> httpx.Response:
    json_part = orjson.dumps(header)
    return httpx.post(
        f"{server.url}/v2/models/{model}/infer",
        content=json_part + tail,
        headers={
            "Inference-Header-Content-Length": str(len(json_part)),
            "Content-Type": "application/octet-stream",
        },
    )


def test_server_metadata_advertises_the_extension(triton: Any) -> None:
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]


@pytest.mark.parametrize(("datatype", "values"), ALL_DATATYPES, ids=[d for d, _ in ALL_DATATYPES])
@pytest.mark.parametrize(
    ("binary_in", "binary_out"),
    [(True, True), (True, False), (False, True)],
    ids=["bin-bin", "bin-json", "json-bin"],
)
def test_tritonclient_http_binary_every_datatype(
    triton: Any, datatype: str, values: list[Any], binary_in: bool, binary_out: bool
) -> None:
    import tritonclient.http as triton_http

    array = _array(datatype, values)
    tensor = triton_http.InferInput("t", [2, 2], datatype)
    tensor.set_data_from_numpy(array, binary_data=binary_in)
    result = triton.infer(
        "echo",
        [tensor],
        request_id="b",
        outputs=[triton_http.InferRequestedOutput("t", binary_data=binary_out)],
    )
    output = result.get_output("t")
    assert ("binary_data_size" in output.get("parameters", {})) == binary_out
    got = result.as_numpy("t")
    if datatype == "BYTES" and not binary_out:
        got = np.array([v.encode() for v in got.reshape(-1)], dtype=object).reshape(got.shape)
    if datatype == "BYTES":
        assert got.reshape(-1).tolist() == array.reshape(-1).tolist()
    else:
        assert got.dtype == array.dtype and got.tobytes() == array.tobytes()
    assert result.get_response()["id"] == "b"


def test_no_outputs_listed_means_binary_outputs(triton: Any) -> None:
    import tritonclient.http as triton_http

    features = np.array([IRIS_ROW], dtype=np.float64)
    tensor = triton_http.InferInput("x", [1, 4], "FP64")
    tensor.set_data_from_numpy(features)  # binary by default
    result = triton.infer("iris", [tensor])  # tritonclient asks for binary_data_output
    assert result.as_numpy("predict").reshape(-1).tolist() == [0]
    assert "binary_data_size" in result.get_output("predict")["parameters"]


def test_mixed_binary_and_json_inputs_and_outputs(server: RunningServer) -> None:
    header = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
            {"name": "b", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]},
            {
                "name": "c",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 11},
            },
        ],
        "outputs": [
            {"name": "a"},
            {"name": "b", "parameters": {"binary_data": True}},
            {"name": "c"},
        ],
    }
    tail = struct.pack("<ii", 7, -7) + struct.pack("<I", 2) + b"hi" + struct.pack("<I", 1) + b"x"
    response = _binary_post(server, header, tail)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    body = orjson.loads(response.content[:length])
    a, b, c = body["outputs"]
    assert a["data"] == [7, -7] and c["data"] == ["hi", "x"]
    assert "data" not in b and b["parameters"]["binary_data_size"] == 8
    assert np.frombuffer(response.content[length:], dtype="<f4").tolist() == [1.5, 2.5]


def test_request_level_binary_output_with_per_output_opt_out(server: RunningServer) -> None:
    header = {
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "UINT16", "data": [513]},
            {"name": "b", "shape": [1], "datatype": "UINT16", "data": [1]},
        ],
        "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
    }
    response = httpx.post(f"{server.url}/v2/models/echo/infer", json=header)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    a, b = orjson.loads(response.content[:length])["outputs"]
    assert a["parameters"]["binary_data_size"] == 2 and b["data"] == [1]
    assert response.content[length:] == b"\x01\x02"


def test_plain_json_is_unchanged(server: RunningServer) -> None:
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1]}]}
    response = httpx.post(f"{server.url}/v2/models/echo/infer", json=body)
    assert "inference-header-content-length" not in response.headers
    assert response.json()["outputs"][0]["data"] == [1]


BAD = [
    ("header length not a number", None, "abc", "must be an integer"),
    ("header length beyond the body", None, "99999", "but the body has"),
    (
        "too few bytes",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        },
        b"\0" * 8,
        "only 8 bytes",
    ),
    (
        "size disagrees with shape",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        },
        b"\0" * 8,
        "binary data has 8 bytes but shape [4] needs 16",
    ),
    (
        "left-over bytes",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1],
                    "datatype": "INT8",
                    "parameters": {"binary_data_size": 1},
                }
            ]
        },
        b"\0\0",
        "1 bytes of binary data",
    ),
    (
        "both data and binary",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1],
                    "datatype": "INT8",
                    "data": [1],
                    "parameters": {"binary_data_size": 1},
                }
            ]
        },
        b"\0",
        "both 'data'",
    ),
    (
        "negative size",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1],
                    "datatype": "INT8",
                    "parameters": {"binary_data_size": -1},
                }
            ]
        },
        b"",
        "non-negative integer",
    ),
    (
        "bad bytes prefix",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 6},
                }
            ]
        },
        b"\x09\0\0\0ab",
        "declares 9 bytes",
    ),
    (
        "bool not 0/1",
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 1},
                }
            ]
        },
        b"\x02",
        "other than 0 or 1",
    ),
]


@pytest.mark.parametrize(("case", "header", "tail", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_binary_request_is_400(
    server: RunningServer, case: str, header: Any, tail: Any, message: str
) -> None:
    if header is None:  # a broken Inference-Header-Content-Length value
        response = httpx.post(
            f"{server.url}/v2/models/echo/infer",
            content=b"{}",
            headers={"Inference-Header-Content-Length": tail},
        )
    else:
        response = _binary_post(server, header, tail)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_large_image_round_trips_in_binary(triton: Any) -> None:
    import tritonclient.http as triton_http

    image = np.random.default_rng(0).integers(0, 256, size=(1, 224, 224, 3), dtype=np.uint8)
    tensor = triton_http.InferInput("image", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    result = triton.infer("echo", [tensor], outputs=[triton_http.InferRequestedOutput("image")])
    assert result.as_numpy("image").tobytes() == image.tobytes()

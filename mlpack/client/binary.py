"""The binary tensor data extension of the REST protocol (client side).

A request or response body is a JSON header followed by raw tensor bytes; the
``Inference-Header-Content-Length`` HTTP header gives the JSON header's length, and each
binary tensor carries ``parameters.binary_data_size``. The raw layout is
``mlpack.codecs.raw``'s (the server's own).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..codecs.raw import array_to_raw, raw_to_array
from ..codecs.tensors import flatten
from ..errors import InvalidRequest
from ..types import Datatype

HEADER_LENGTH = "Inference-Header-Content-Length"


def _raw(datatype: Datatype, data: Any) -> bytes:
    flat = flatten(data) if isinstance(data, list) else [data]
    if datatype is Datatype.BYTES:
        flat = [value.encode("utf-8") if isinstance(value, str) else bytes(value) for value in flat]
    return array_to_raw(flat, datatype)


def encode_binary_request(request: dict[str, Any]) -> tuple[bytes, int]:
    """A JSON request dict → (body, JSON header length); inputs and outputs go binary."""
    header = dict(request)
    chunks: list[bytes] = []
    inputs = []
    for tensor in request.get("inputs", []):
        tensor = dict(tensor)
        datatype = Datatype(tensor["datatype"])
        raw = _raw(datatype, tensor.pop("data", []))
        tensor["parameters"] = {**(tensor.get("parameters") or {}), "binary_data_size": len(raw)}
        inputs.append(tensor)
        chunks.append(raw)
    header["inputs"] = inputs
    header["parameters"] = {**(request.get("parameters") or {}), "binary_data_output": True}
    if request.get("outputs"):
        header["outputs"] = [
            {
                **output,
                "parameters": {**(output.get("parameters") or {}), "binary_data_output": True},
            }
            for output in request["outputs"]
        ]
    json_header = orjson.dumps(header)
    return json_header + b"".join(chunks), len(json_header)


def _decode_raw(output: dict[str, Any], raw: bytes) -> list[Any]:
    """An output's raw bytes as JSON-like values (BYTES: text where it is UTF-8)."""
    name = str(output.get("name", ""))
    flat = raw_to_array(
        raw,
        Datatype(output["datatype"]),
        output.get("shape", []),
        name=name,
        role="output",
        where="binary data",
    )
    if isinstance(flat, list):
        return [_text(value) for value in flat]
    values: list[Any] = flat.tolist()
    return values


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_binary_response(body: bytes, header_length: int) -> dict[str, Any]:
    """A binary-extension response body → the same dict a JSON response would give."""
    if header_length > len(body):
        raise InvalidRequest(
            f"{HEADER_LENGTH} is {header_length} but the body has only {len(body)} bytes"
        )
    response: dict[str, Any] = orjson.loads(body[:header_length])
    offset = header_length
    for output in response.get("outputs", []):
        parameters = output.get("parameters") or {}
        size = parameters.pop("binary_data_size", None)
        if size is None:
            continue
        raw = body[offset : offset + size]
        if len(raw) != size:
            raise InvalidRequest(f"output '{output.get('name')}': binary data is truncated")
        offset += size
        output["data"] = _decode_raw(output, raw)
        if not parameters:
            output.pop("parameters", None)
    return response

"""The binary tensor data extension of the REST protocol (client side).

A request or response body is a JSON header followed by raw tensor bytes; the
``Inference-Header-Content-Length`` HTTP header gives the JSON header's length, and each
binary tensor carries ``parameters.binary_data_size``. Numbers are little-endian; BYTES
elements are each prefixed by a 4-byte little-endian length.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from ..codecs.tensors import DATATYPE_TO_DTYPE, flatten
from ..errors import InvalidRequest
from ..types import Datatype

HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


def _raw(datatype: Datatype, data: Any) -> bytes:
    flat = flatten(data) if isinstance(data, list) else [data]
    if datatype is Datatype.BYTES:
        parts = []
        for value in flat:
            chunk = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(_LENGTH.pack(len(chunk)))
            parts.append(chunk)
        return b"".join(parts)
    dtype = DATATYPE_TO_DTYPE[datatype].newbyteorder("<")
    return np.asarray(flat, dtype=dtype).tobytes()


def encode_binary_request(request: dict[str, Any]) -> tuple[bytes, int]:
    """A JSON request dict → (body, JSON header length); inputs move to binary, outputs asked binary."""
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


def _decode_raw(name: str, datatype: Datatype, raw: bytes) -> list[Any]:
    if datatype is Datatype.BYTES:
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise InvalidRequest(f"output '{name}': truncated BYTES length prefix")
            (size,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            chunk = raw[offset : offset + size]
            if len(chunk) != size:
                raise InvalidRequest(f"output '{name}': truncated BYTES element")
            offset += size
            try:
                values.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(chunk.decode("latin-1"))
        return values
    dtype = DATATYPE_TO_DTYPE[datatype].newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise InvalidRequest(
            f"output '{name}': {len(raw)} bytes is not a whole number of {datatype.value}"
        )
    result: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return result


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
        output["data"] = _decode_raw(output.get("name", ""), Datatype(output["datatype"]), raw)
        if not parameters:
            output.pop("parameters", None)
    return response

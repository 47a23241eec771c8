"""REST binary tensor data extension (as Triton and KServe define it).

A request body is a JSON inference request of ``Inference-Header-Content-Length`` bytes
followed by the raw data of each input that carries ``parameters.binary_data_size``, in
input order. Outputs are sent the same way when the request asks for it (request
parameter ``binary_data_output`` or per-output ``binary_data``). The raw layout is
``mlpack.codecs.raw``'s, so REST binary and gRPC raw decode identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from ..codecs.raw import output_to_raw, raw_to_array
from ..codecs.tensors import check_shape
from ..errors import InvalidRequest
from ..types import InferenceRequest, InferenceResponse, Parameters

HEADER = "inference-header-content-length"
EXTENSION = "binary_tensor_data"
_OCTET_STREAM = "application/octet-stream"


def _parameter(parameters: Parameters | None, key: str) -> Any:
    if parameters is None:
        return None
    return (parameters.model_extra or {}).get(key)


def split_body(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail of a request (``header_length``: the header value)."""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidRequest(
            f"Inference-Header-Content-Length must be an integer, got {header_length!r}"
        ) from None
    if not 0 <= length <= len(body):
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes"
        )
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def attach_inputs(request: InferenceRequest, tail: memoryview) -> None:
    """Decode each input's binary data from ``tail`` straight into numpy (no per-element loop)."""
    offset = 0
    for request_input in request.inputs:
        size = _parameter(request_input.parameters, "binary_data_size")
        if size is None:
            continue
        name = request_input.name
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidRequest(
                f"input '{name}': binary_data_size must be a non-negative integer, got {size!r}"
            )
        if request_input.data is not None:
            raise InvalidRequest(f"input '{name}' has both 'data' and binary_data_size; use one")
        if offset + size > len(tail):
            raise InvalidRequest(
                f"input '{name}': binary_data_size is {size} but only {len(tail) - offset} bytes "
                "of binary data remain after the JSON header"
            )
        check_shape(name, request_input.shape)
        flat = raw_to_array(
            tail[offset : offset + size],
            request_input.datatype,
            request_input.shape,
            name=name,
            where="binary data",
        )
        request_input.data = flat
        request_input._decoded = flat
        offset += size
    if offset != len(tail):
        raise InvalidRequest(
            f"the body has {len(tail) - offset} bytes of binary data that no input's "
            "binary_data_size accounts for"
        )


def requested_binary_outputs(request: InferenceRequest) -> Mapping[str, bool] | None:
    """Which outputs to send as binary (``""``: the default for unlisted ones); None: all JSON."""
    default = _parameter(request.parameters, "binary_data_output")
    choices: dict[str, bool] = {"": default is True}
    for output in request.outputs or ():
        value = _parameter(output.parameters, "binary_data")
        if value is not None:
            choices[output.name] = value is True
    return choices if any(choices.values()) else None


def detach_outputs(response: InferenceResponse, binary: Mapping[str, bool]) -> list[bytes]:
    """Move the data of binary outputs out of ``response``; their raw bytes, in output order."""
    chunks: list[bytes] = []
    default = binary.get("", False)
    for output in response.outputs:
        if not binary.get(output.name, default):
            continue
        raw = output_to_raw(output)
        parameters = output.parameters or Parameters()
        parameters.binary_data_size = len(raw)  # type: ignore[attr-defined]  # an extra key
        output.parameters, output.data = parameters, None
        chunks.append(raw)
    return chunks


def binary_response(
    body: dict[str, Any], chunks: list[bytes], headers: Mapping[str, str] | None = None
) -> Response:
    """JSON header + raw output data, with ``Inference-Header-Content-Length``."""
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        b"".join([header, *chunks]),
        media_type=_OCTET_STREAM,
        headers={**(headers or {}), "Inference-Header-Content-Length": str(len(header))},
    )

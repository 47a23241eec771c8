"""Content-type resolution: which codec decodes a request and encodes a response.

Precedence: an input's own ``parameters.content_type`` wins over the model
metadata's; a request's ``parameters.content_type`` wins over the model's default.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import InvalidRequest
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)
from .base import (
    DEFAULT_INPUT_PREFIX,
    DEFAULT_OUTPUT_PREFIX,
    content_type_error,
    find_input_codec,
    find_request_codec,
    input_content_types,
    request_content_types,
)


def _own_content_type(parameters: Parameters | None) -> str | None:
    return parameters.content_type if parameters is not None else None


def _metadata_content_type(name: str, metadata: dict[str, MetadataTensor] | None) -> str | None:
    tensor = (metadata or {}).get(name)
    return _own_content_type(tensor.parameters) if tensor is not None else None


def decode_request_input(
    request_input: RequestInput, metadata_inputs: dict[str, MetadataTensor] | None = None
) -> Any | None:
    """Decode one input by its content type (its own, else the metadata's); None if it has none."""
    content_type = _own_content_type(request_input.parameters) or _metadata_content_type(
        request_input.name, metadata_inputs
    )
    if not content_type:
        return None
    codec = find_input_codec(content_type=content_type)
    if codec is None:
        raise content_type_error(
            f"input '{request_input.name}'", content_type, input_content_types()
        )
    return codec.decode_input(request_input)


def decode_inference_request(
    request: InferenceRequest,
    default_content_type: str | None = None,
    metadata_inputs: dict[str, MetadataTensor] | None = None,
) -> Any | None:
    """Decode a whole request by its content type (its own, else the default); None if none."""
    content_type = _own_content_type(request.parameters) or default_content_type
    if not content_type:
        return None
    codec = find_request_codec(content_type=content_type)
    if codec is None:
        raise content_type_error("request", content_type, request_content_types())
    if metadata_inputs is not None and _accepts(codec.decode_request, "metadata_inputs"):
        return codec.decode_request(request, metadata_inputs=metadata_inputs)
    return codec.decode_request(request)


def _accepts(function: Any, keyword: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters


def encode_response_output(
    payload: Any,
    request_output: RequestOutput | None = None,
    metadata_outputs: dict[str, MetadataTensor] | None = None,
    name: str | None = None,
) -> ResponseOutput | None:
    """Encode one output: content type from the requested output, the metadata, or the payload.

    The name comes from ``request_output``, else ``name``, else ``output-0``.
    Returns None if no codec can encode the payload.
    """
    if request_output is not None:
        name = request_output.name
    if name is None:
        name = f"{DEFAULT_OUTPUT_PREFIX}0"
    content_type = (
        _own_content_type(request_output.parameters) if request_output is not None else None
    ) or _metadata_content_type(name, metadata_outputs)
    if content_type:
        codec = find_input_codec(content_type=content_type)
        if codec is None:
            raise content_type_error(f"output '{name}'", content_type, input_content_types())
    else:
        codec = find_input_codec(payload=payload)
        if codec is None:
            return None
    return codec.encode_output(name, payload)


def encode_inference_response(
    payload: Any,
    model_name: str,
    model_version: str | None = None,
    content_type: str | None = None,
    **kwargs: Any,
) -> InferenceResponse | None:
    """Encode a whole response by content type, else by payload; None if no codec fits."""
    if content_type:
        codec = find_request_codec(content_type=content_type)
        if codec is None:
            raise content_type_error("response", content_type, request_content_types())
    else:
        codec = find_request_codec(payload=payload)
        if codec is None:
            return None
    return codec.encode_response(model_name, payload, model_version=model_version, **kwargs)


def encode_request(
    payload: Any, content_type: str | None = None, **kwargs: Any
) -> InferenceRequest:
    """Client side: build a request for a payload (request codecs first, then input codecs)."""
    request_codec = find_request_codec(content_type=content_type, payload=payload)
    if request_codec is not None:
        return request_codec.encode_request(payload, **kwargs)
    input_codec = find_input_codec(content_type=content_type, payload=payload)
    if input_codec is None:
        what = f"content type '{content_type}'" if content_type else type(payload).__name__
        raise InvalidRequest(f"no codec can encode a request from {what}")
    request_input = input_codec.encode_input(f"{DEFAULT_INPUT_PREFIX}1", payload, **kwargs)
    return InferenceRequest(inputs=[request_input])


def decode_response_output(output: ResponseOutput) -> Any:
    """Client side: decode an output by its content type; else BYTES → strings, numbers → numpy."""
    content_type = _own_content_type(output.parameters)
    if content_type:
        codec = find_input_codec(content_type=content_type)
        if codec is None:
            raise content_type_error(f"output '{output.name}'", content_type, input_content_types())
        return codec.decode_output(output)
    fallback = "str" if output.datatype is Datatype.BYTES else "np"
    codec = find_input_codec(content_type=fallback)
    assert codec is not None
    try:
        return codec.decode_output(output)
    except InvalidRequest:
        if fallback == "str":  # Not UTF-8: raw bytes, as numpy holds them.
            return find_input_codec(content_type="np").decode_output(output)  # type: ignore
        raise

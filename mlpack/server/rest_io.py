"""What the REST routes share: path parameters, request decoding, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..codecs.tensors import mark_without_booleans
from ..errors import InvalidRequest
from ..types import InferenceRequest, Parameters
from .validation import describe_validation_error

JSON = "application/json"
# The client's deadline for one inference request, in seconds (decimal), e.g. "2.5".
TIMEOUT_HEADER = "inference-timeout"


class JSONBytesResponse(Response):
    """A JSON response from a python object, serialised with orjson (numpy and NaN aware)."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def json_default(value: Any) -> Any:
    """``bytes`` a model put in a BYTES output go out as UTF-8 text (as MLServer sends them)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def model_path(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["model_name"], params.get("model_version")


def parse_inference_request(body: bytes) -> InferenceRequest:
    """JSON bytes → ``InferenceRequest``; any problem is an ``InvalidRequest`` naming it."""
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON inference request")
    try:
        request = InferenceRequest.model_validate_json(body)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error, body)) from None
    mark_without_booleans(request.inputs, body)
    return request


def request_headers(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict (names lower case; a repeated name: its first
    value), read once: dict lookups are cheaper than ``Headers.get``'s scan per name."""
    headers: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


def attach_headers(
    inference_request: InferenceRequest, request: Request, headers: dict[str, str] | None = None
) -> None:
    """Give the model the HTTP headers as ``parameters.headers`` (``headers``: already read)."""
    if headers is None:
        headers = request_headers(request)
    if inference_request.parameters is None:
        inference_request.parameters = Parameters(headers=headers)
    else:
        inference_request.parameters.headers = headers

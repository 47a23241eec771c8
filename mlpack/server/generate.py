"""The generate extension's JSON ⇄ the model's tensors (``/generate``, ``/generate_stream``).

The convention, both ways:

- request: a JSON object. ``"id"`` (string) is the request id and ``"parameters"``
  (object) the request parameters (``temperature``, ``max_tokens`` ... reach the model as
  ``payload.parameters``). Every other field is one input tensor of that name: a string
  is a BYTES tensor of shape ``[1]`` (so ``"text_input": "hi"`` is the input
  ``text_input``), a number INT64 / FP64, a boolean BOOL, and a flat list of one kind a
  tensor of shape ``[n]``. When the model's metadata declares the input, its numeric
  datatype wins (``FP32``, ``INT32``...).
- response: a JSON object with ``model_name``, ``model_version``, ``id`` and one field per
  output tensor: its single element as a scalar (``"text_output": "..."``), or the list of
  its elements. BYTES elements are text.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..codecs.bytes_json import bytes_outputs_as_text
from ..errors import InvalidRequest
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    Parameters,
    RequestInput,
)

RESERVED = frozenset({"id", "parameters"})
_NUMERIC = frozenset(
    {
        Datatype.INT8,
        Datatype.INT16,
        Datatype.INT32,
        Datatype.INT64,
        Datatype.UINT8,
        Datatype.UINT16,
        Datatype.UINT32,
        Datatype.UINT64,
        Datatype.FP16,
        Datatype.FP32,
        Datatype.FP64,
    }
)


def generate_request(body: bytes, metadata: MetadataModelResponse | None) -> InferenceRequest:
    """A generate request body → ``InferenceRequest`` (see the module docstring)."""
    if not body:
        raise InvalidRequest('request body is empty; expected e.g. {"text_input": "..."}')
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest('a generate request must be a JSON object, e.g. {"text_input": "..."}')
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest("'parameters' must be a JSON object")
    declared = {t.name: t.datatype for t in (metadata.inputs or [])} if metadata else {}
    inputs = [
        _tensor(name, value, declared.get(name))
        for name, value in payload.items()
        if name not in RESERVED
    ]
    if not inputs:
        raise InvalidRequest('a generate request needs at least one input field, e.g. "text_input"')
    return InferenceRequest(
        id=request_id,
        parameters=Parameters(**parameters) if parameters else None,
        inputs=inputs,
    )


def _tensor(name: str, value: Any, declared: Datatype | None) -> RequestInput:
    elements = value if isinstance(value, list) else [value]
    if not elements:
        raise InvalidRequest(f"field '{name}': an empty list is not a tensor")
    kinds = {_kind(name, element) for element in elements}
    if len(kinds) > 1:
        if kinds == {Datatype.INT64, Datatype.FP64}:
            kinds = {Datatype.FP64}
        else:
            raise InvalidRequest(f"field '{name}': mixes strings, numbers or booleans")
    datatype = kinds.pop()
    if datatype in (Datatype.INT64, Datatype.FP64) and declared in _NUMERIC:
        datatype = declared
    return RequestInput(name=name, shape=[len(elements)], datatype=datatype, data=elements)


def _kind(name: str, element: Any) -> Datatype:
    if isinstance(element, str):
        return Datatype.BYTES
    if isinstance(element, bool):
        return Datatype.BOOL
    if isinstance(element, int):
        return Datatype.INT64
    if isinstance(element, float):
        return Datatype.FP64
    raise InvalidRequest(
        f"field '{name}': expected a string, number, boolean or a flat list of them, "
        f"got {type(element).__name__}"
    )


def generate_body(response: InferenceResponse) -> dict[str, Any]:
    """An ``InferenceResponse`` → the generate response object (see the module docstring)."""
    bytes_outputs_as_text(response.outputs)
    body: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        body["model_version"] = response.model_version
    if response.id is not None:
        body["id"] = response.id
    for output in response.outputs:
        data = output.data
        if hasattr(data, "tolist"):
            data = data.tolist()
        if isinstance(data, list) and any(isinstance(item, list) for item in data):
            data = _flat(data)  # nested: flat, row-major
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8", errors="replace")
        body[output.name] = data
    return body


def _flat(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        flat.extend(_flat(item) if isinstance(item, list) else [item])
    return flat

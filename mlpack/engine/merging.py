"""Merge compatible requests into one batch along the first dimension, and split the answer.

A request can join a batch when every input has the same number of rows (its first
dimension) and its ``batch_key`` matches: input names, datatypes, trailing dimensions,
content types and requested outputs. Merged tensors are built from the validated
arrays (``RequestInput._decoded``), never from JSON lists. Parameters follow MLServer:
a per-request value becomes a list with one entry per request in the batch, and a
list of that length in the model's response comes back one entry per request.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..codecs.tensors import decode_tensor, ndarray_to_data, tensor_as_ndarray
from ..errors import ModelError
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
    trusted,
)

# Never merged into lists: content types must match to batch, and transport headers stay
# with each request (a batch has no single set of headers).
_SKIPPED_PARAMETERS = ("content_type", "headers")


def count_rows(request: InferenceRequest) -> int | None:
    """Rows (first dimension) shared by every input, or None when the request can't batch."""
    rows: int | None = None
    for request_input in request.inputs:
        if not request_input.shape:
            return None
        first = request_input.shape[0]
        if rows is None:
            rows = first
        elif first != rows:
            return None
    return rows


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _content_type(parameters: Parameters | None) -> str | None:
    return parameters.content_type if parameters is not None else None


def batch_key(request: InferenceRequest) -> Hashable:
    """Requests with equal keys (and a row count) can be merged into one batch."""
    inputs = tuple(
        (i.name, i.datatype.value, tuple(i.shape[1:]), _content_type(i.parameters))
        for i in request.inputs
    )
    outputs = None
    if request.outputs is not None:
        outputs = tuple(
            (o.name, _freeze(o.parameters.model_dump(exclude_none=True)) if o.parameters else None)
            for o in request.outputs
        )
    return (inputs, outputs, _content_type(request.parameters))


def _merge_parameters(
    all_parameters: Sequence[Parameters | None], content_type: str | None
) -> Parameters | None:
    """One list per key, one entry per request (None where a request did not set it)."""
    dumps = [p.model_dump(exclude_none=True) if p is not None else {} for p in all_parameters]
    keys: list[str] = []
    for dump in dumps:
        keys.extend(k for k in dump if k not in _SKIPPED_PARAMETERS and k not in keys)
    if not keys and content_type is None:
        return None
    merged: dict[str, Any] = {key: [dump.get(key) for dump in dumps] for key in keys}
    if content_type is not None:
        merged["content_type"] = content_type
    return Parameters(**merged)


def _concatenate(datatype: Datatype, parts: Sequence[Any]) -> Any:
    if datatype is Datatype.BYTES:
        merged: list[Any] = []
        for part in parts:
            merged.extend(part)
        return merged
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def merge_requests(requests: Sequence[InferenceRequest]) -> InferenceRequest:
    """One request holding every request's rows, in order (requests share a ``batch_key``)."""
    first = requests[0]
    inputs: list[RequestInput] = []
    for index, template in enumerate(first.inputs):
        columns = [request.inputs[index] for request in requests]
        data = _concatenate(template.datatype, [decode_tensor(column) for column in columns])
        shape = [sum(column.shape[0] for column in columns), *template.shape[1:]]
        merged_input = RequestInput(
            name=template.name,
            shape=shape,
            datatype=template.datatype,
            parameters=_merge_parameters(
                [column.parameters for column in columns], _content_type(template.parameters)
            ),
            data=data,
        )
        merged_input._decoded = data
        inputs.append(merged_input)
    return InferenceRequest(
        id=first.id if len(requests) == 1 else None,
        parameters=_merge_parameters(
            [request.parameters for request in requests], _content_type(first.parameters)
        ),
        inputs=inputs,
        outputs=first.outputs,
    )


def _split_parameters(parameters: Parameters | None, count: int) -> list[Parameters | None]:
    if parameters is None:
        return [None] * count
    dump = parameters.model_dump(exclude_none=True)
    split: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in dump.items():
        per_request = isinstance(value, list) and len(value) == count and key != "content_type"
        for index in range(count):
            item = value[index] if per_request else value
            if item is not None:
                split[index][key] = item
    return [Parameters(**values) if values else None for values in split]


def _row_slices(rows: Sequence[int]) -> list[slice]:
    slices, start = [], 0
    for count in rows:
        slices.append(slice(start, start + count))
        start += count
    return slices


def split_response(
    response: InferenceResponse, rows: Sequence[int], model: str
) -> list[InferenceResponse]:
    """Give each request of a batch exactly its own rows of every output, in order.

    Raises ``ModelError`` (for the whole batch) when an output's row count is wrong.
    """
    total = sum(rows)
    slices = _row_slices(rows)
    per_output: list[list[ResponseOutput]] = [[] for _ in rows]
    for output in response.outputs:
        if not output.shape or output.shape[0] != total:
            raise ModelError(
                f"model '{model}' returned output '{output.name}' with shape {output.shape} "
                f"for a batch of {total} rows from {len(rows)} requests; a batched model must "
                f"return one row per input row"
            )
        try:
            array = tensor_as_ndarray(output)
        except Exception as error:
            raise ModelError(
                f"model '{model}': output '{output.name}' is malformed: {error}"
            ) from None
        parameters = _split_parameters(output.parameters, len(rows))
        datatype = Datatype(output.datatype)
        for index, part in enumerate(slices):
            piece = array[part]
            data: Any
            if datatype is Datatype.BYTES:
                data = ndarray_to_data(piece)
            else:
                data = np.ascontiguousarray(piece).reshape(-1)
            per_output[index].append(  # pieces of a response already validated: no checks
                trusted(
                    ResponseOutput,
                    name=output.name,
                    shape=[part.stop - part.start, *output.shape[1:]],
                    datatype=datatype,
                    parameters=parameters[index],
                    data=data,
                )
            )
    response_parameters = _split_parameters(response.parameters, len(rows))
    return [
        trusted(
            InferenceResponse,
            model_name=response.model_name,
            model_version=response.model_version,
            parameters=response_parameters[index],
            outputs=outputs,
        )
        for index, outputs in enumerate(per_output)
    ]

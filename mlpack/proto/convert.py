"""Conversion between the gRPC messages (``inference_pb2``) and ``mlpack.types``.

Server direction: ``model_infer_request_to_types`` and ``types_to_model_infer_response``.
Client direction: ``model_infer_request_from_types`` and ``model_infer_response_to_types``.

Tensor data comes in either as typed ``contents`` or as ``raw_*_contents``; the raw
layout is ``mlpack.codecs.raw``'s (shared with the REST binary extension and the
clients). A decoded input carries its flat array both as ``data`` and as the
validator's cache, so ``decode_tensor`` does no more work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..codecs.raw import array_to_raw, flat_output, raw_to_array
from ..codecs.tensors import check_shape, decode_tensor, decode_values
from ..errors import InvalidRequest
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    Parameters,
    RepositoryIndexRequest,
    RepositoryIndexResponse,
    RepositoryIndexResponseItem,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    State,
    as_datatype,
    trusted,
)
from . import inference_pb2 as pb

ParameterValue = bool | int | float | str

# The typed ``InferTensorContents`` field of each datatype and the dtype it holds on the wire.
CONTENTS_FIELDS: dict[Datatype, str | None] = {
    Datatype.BOOL: "bool_contents",
    Datatype.INT8: "int_contents",
    Datatype.INT16: "int_contents",
    Datatype.INT32: "int_contents",
    Datatype.INT64: "int64_contents",
    Datatype.UINT8: "uint_contents",
    Datatype.UINT16: "uint_contents",
    Datatype.UINT32: "uint_contents",
    Datatype.UINT64: "uint64_contents",
    Datatype.FP16: None,
    Datatype.FP32: "fp32_contents",
    Datatype.FP64: "fp64_contents",
    Datatype.BYTES: "bytes_contents",
}
_WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
# Parameters that travel as gRPC metadata, not in the message (the servicer handles them).
_TRANSPORT_PARAMETERS = frozenset({"headers"})


# ---- parameters -------------------------------------------------------------------------


def infer_parameter_to_value(parameter: pb.InferParameter) -> ParameterValue | None:
    """The Python value of an ``InferParameter`` (None when no choice is set)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def value_to_infer_parameter(
    value: Any, parameter: pb.InferParameter | None = None, *, key: str = "?"
) -> pb.InferParameter:
    """Fill (or make) an ``InferParameter`` from a Python value.

    Lists and dicts travel as JSON text in ``string_param``; ``key`` names the
    parameter in error messages.
    """
    parameter = pb.InferParameter() if parameter is None else parameter
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int):
        if -_INT64_MAX - 1 <= value <= _INT64_MAX:
            parameter.int64_param = value
        elif _INT64_MAX < value <= _UINT64_MAX:
            parameter.uint64_param = value
        else:
            raise InvalidRequest(f"parameter '{key}': integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        parameter.double_param = value
    elif isinstance(value, str):
        parameter.string_param = value
    elif isinstance(value, bytes):
        try:
            parameter.string_param = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"parameter '{key}': bytes that are not UTF-8 cannot be sent"
            ) from None
    elif isinstance(value, (list, tuple, dict)):
        try:
            parameter.string_param = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise InvalidRequest(f"parameter '{key}': {error}") from None
    else:
        raise InvalidRequest(
            f"parameter '{key}': a {type(value).__name__} cannot be sent as an InferParameter"
        )
    return parameter


def parameters_from_pb(parameters: Mapping[str, pb.InferParameter]) -> Parameters | None:
    """A ``Parameters`` from a protobuf parameters map (None when the map is empty)."""
    if not parameters:
        return None
    values = {key: infer_parameter_to_value(value) for key, value in parameters.items()}
    try:
        return Parameters.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidRequest(f"invalid parameters: {problems}") from None


def parameters_to_pb(
    parameters: Parameters | Mapping[str, Any] | None,
    target: MutableMapping[str, pb.InferParameter],
) -> None:
    """Copy parameters into a protobuf parameters map, skipping None and transport-only keys."""
    if parameters is None:
        return
    values = (
        parameters.model_dump(exclude_none=True)
        if isinstance(parameters, Parameters)
        else parameters
    )
    for key, value in values.items():
        if value is None or key in _TRANSPORT_PARAMETERS:
            continue
        value_to_infer_parameter(value, target[key], key=key)


def repository_parameters_from_pb(
    parameters: Mapping[str, pb.ModelRepositoryParameter],
) -> dict[str, bool | int | str | bytes]:
    """The values of a RepositoryModelLoad/Unload parameters map (unset choices skipped)."""
    values: dict[str, bool | int | str | bytes] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(parameter, choice)
    return values


# ---- tensors ----------------------------------------------------------------------------


def _datatype(role: str, name: str, value: str) -> Datatype:
    try:
        return as_datatype(value)
    except ValueError:
        known = ", ".join(d.value for d in Datatype)
        raise InvalidRequest(
            f"{role} '{name}': unknown datatype '{value}' (expected one of {known})"
        ) from None


def _fail(role: str, name: str, datatype: Datatype, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{role} '{name}' ({datatype.value}): {problem}")


def contents_to_data(
    contents: pb.InferTensorContents, datatype: Datatype, *, name: str = "?", role: str = "input"
) -> Any:
    """The values of typed contents as a flat array in the wire dtype (BYTES: a list).

    Values in a field that does not belong to ``datatype`` are rejected; ranges and
    element counts are left to ``decode_values``.
    """
    expected = CONTENTS_FIELDS[datatype]
    present = [field.name for field, _ in contents.ListFields()]
    if expected is None:
        if present:
            raise _fail(
                role,
                name,
                datatype,
                (
                    f"FP16 has no typed contents field (got {', '.join(present)}); "
                    f"send FP16 tensors in raw_{role}_contents"
                ),
            )
        return np.empty(0, dtype=np.float16)
    wrong = [field for field in present if field != expected]
    if wrong:
        raise _fail(
            role,
            name,
            datatype,
            (f"values are in {', '.join(wrong)} but {datatype.value} tensors use {expected}"),
        )
    values = getattr(contents, expected)
    if datatype is Datatype.BYTES:
        return list(values)
    return np.fromiter(values, dtype=_WIRE_DTYPES[expected], count=len(values))


def _has_contents(tensor: Any) -> bool:
    return tensor.HasField("contents") and bool(tensor.contents.ListFields())


def _check_raw_layout(role: str, tensors: Sequence[Any], raw: Sequence[bytes]) -> None:
    if not raw:
        return
    for tensor in tensors:
        if _has_contents(tensor):
            raise InvalidRequest(
                f"{role} '{tensor.name}' has typed contents but the message also has "
                f"raw_{role}_contents; use one or the other for all {role}s"
            )
    if len(raw) != len(tensors):
        raise InvalidRequest(
            f"raw_{role}_contents has {len(raw)} entries but there are {len(tensors)} {role}s "
            f"({', '.join(repr(t.name) for t in tensors)}); send exactly one per {role}"
        )


def _decode_input(tensor: Any, raw: bytes | None, index: int) -> RequestInput:
    name = tensor.name
    datatype = _datatype("input", name, tensor.datatype)
    shape = list(tensor.shape)
    check_shape(name, shape)
    parameters = parameters_from_pb(tensor.parameters)
    if raw is not None:
        flat = raw_to_array(raw, datatype, shape, name=name, where=f"raw_input_contents[{index}]")
    else:  # ranges and element count; the validated array replaces the wire-typed one
        wire = contents_to_data(tensor.contents, datatype, name=name)
        flat = decode_values(name, datatype, shape, wire)
    request_input = trusted(
        RequestInput, name=name, shape=shape, datatype=datatype, parameters=parameters, data=flat
    )
    private = request_input.__pydantic_private__
    assert private is not None  # trusted() gives every instance its own private dict
    private["_decoded"] = flat  # pydantic's __setattr__ costs several times more
    return request_input


# ---- inference: server direction ----------------------------------------------------------


def model_infer_request_to_types(request: pb.ModelInferRequest) -> InferenceRequest:
    """Decode a ``ModelInferRequest``; every input is validated and its data decoded once."""
    raw = list(request.raw_input_contents)  # each access to a bytes field copies: read once
    _check_raw_layout("input", request.inputs, raw)
    inputs = [
        _decode_input(tensor, raw[index] if raw else None, index)
        for index, tensor in enumerate(request.inputs)
    ]
    outputs = [
        trusted(RequestOutput, name=o.name, parameters=parameters_from_pb(o.parameters))
        for o in request.outputs
    ]
    return trusted(
        InferenceRequest,
        id=request.id or None,
        parameters=parameters_from_pb(request.parameters),
        inputs=inputs,
        outputs=outputs or None,
    )


def _fill_contents(contents: pb.InferTensorContents, flat: Any, datatype: Datatype) -> None:
    field = CONTENTS_FIELDS[datatype]
    assert field is not None  # FP16 goes raw
    values = flat if datatype is Datatype.BYTES else flat.tolist()
    getattr(contents, field).extend(values)


def _encode_tensors(
    tensors: Sequence[RequestInput | ResponseOutput],
    flats: Sequence[Any],
    target: Any,
    raw_target: Any,
    raw: bool,
) -> None:
    for tensor, flat in zip(tensors, flats, strict=True):
        datatype = as_datatype(tensor.datatype)
        message = target.add(name=tensor.name, datatype=datatype.value, shape=tensor.shape)
        parameters_to_pb(tensor.parameters, message.parameters)
        if raw:
            raw_target.append(array_to_raw(flat, datatype))
        else:
            _fill_contents(message.contents, flat, datatype)


def _needs_raw(tensors: Sequence[RequestInput | ResponseOutput]) -> bool:
    # FP16 has no typed field, and raw and typed contents cannot be mixed in one message.
    return any(as_datatype(t.datatype) is Datatype.FP16 for t in tensors)


def types_to_model_infer_response(
    response: InferenceResponse, raw: bool = True
) -> pb.ModelInferResponse:
    """Encode an ``InferenceResponse``.

    With ``raw`` the data goes in ``raw_output_contents``, otherwise in typed contents;
    a response with an FP16 output is always raw. ``headers`` parameters are left to the
    transport. Data that does not match an output's shape or datatype raises ``ModelError``.
    """
    outputs = response.outputs
    flats = [flat_output(output) for output in outputs]
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    parameters_to_pb(response.parameters, message.parameters)
    _encode_tensors(
        outputs, flats, message.outputs, message.raw_output_contents, raw or _needs_raw(outputs)
    )
    return message


# ---- inference: client direction ----------------------------------------------------------


def model_infer_request_from_types(
    request: InferenceRequest,
    model_name: str,
    model_version: str | None = None,
    raw: bool = True,
) -> pb.ModelInferRequest:
    """Encode an ``InferenceRequest`` for ``model_name`` (validating its inputs first)."""
    flats = []
    for request_input in request.inputs:
        flat = decode_tensor(request_input)
        if request_input.datatype is Datatype.BYTES:
            flat = [v.encode("utf-8") if isinstance(v, str) else v for v in flat]
        flats.append(flat)
    message = pb.ModelInferRequest(
        model_name=model_name, model_version=model_version or "", id=request.id or ""
    )
    parameters_to_pb(request.parameters, message.parameters)
    _encode_tensors(
        request.inputs,
        flats,
        message.inputs,
        message.raw_input_contents,
        raw or _needs_raw(request.inputs),
    )
    for output in request.outputs or ():
        requested = message.outputs.add(name=output.name)
        parameters_to_pb(output.parameters, requested.parameters)
    return message


def model_infer_response_to_types(response: pb.ModelInferResponse) -> InferenceResponse:
    """Decode a ``ModelInferResponse``; output data become flat arrays (BYTES: lists of bytes)."""
    raw = list(response.raw_output_contents)
    _check_raw_layout("output", response.outputs, raw)
    outputs = []
    for index, tensor in enumerate(response.outputs):
        name = tensor.name
        datatype = _datatype("output", name, tensor.datatype)
        shape = list(tensor.shape)
        if raw:
            flat = raw_to_array(
                raw[index],
                datatype,
                shape,
                name=name,
                role="output",
                where=f"raw_output_contents[{index}]",
            )
        else:
            data = contents_to_data(tensor.contents, datatype, name=name, role="output")
            try:
                flat = decode_values(name, datatype, shape, data)
            except InvalidRequest as error:
                raise InvalidRequest(error.message.replace("input '", "output '", 1)) from None
        outputs.append(
            trusted(
                ResponseOutput,
                name=name,
                shape=shape,
                datatype=datatype,
                parameters=parameters_from_pb(tensor.parameters),
                data=flat,
            )
        )
    return trusted(
        InferenceResponse,
        model_name=response.model_name,
        model_version=response.model_version or None,
        id=response.id or None,
        parameters=parameters_from_pb(response.parameters),
        outputs=outputs,
    )


# ---- metadata and repository --------------------------------------------------------------


def server_metadata_to_pb(metadata: MetadataServerResponse) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(
        name=metadata.name, version=metadata.version, extensions=metadata.extensions
    )


def server_metadata_from_pb(message: pb.ServerMetadataResponse) -> MetadataServerResponse:
    return MetadataServerResponse(
        name=message.name, version=message.version, extensions=list(message.extensions)
    )


def _tensor_metadata_to_pb(
    tensor: MetadataTensor, target: pb.ModelMetadataResponse.TensorMetadata
) -> None:
    target.name = tensor.name
    target.datatype = Datatype(tensor.datatype).value
    target.shape.extend(tensor.shape)
    parameters_to_pb(tensor.parameters, target.parameters)


def _tensor_metadata_from_pb(message: pb.ModelMetadataResponse.TensorMetadata) -> MetadataTensor:
    return MetadataTensor(
        name=message.name,
        datatype=_datatype("tensor", message.name, message.datatype),
        shape=list(message.shape),
        parameters=parameters_from_pb(message.parameters),
    )


def model_metadata_to_pb(metadata: MetadataModelResponse) -> pb.ModelMetadataResponse:
    message = pb.ModelMetadataResponse(
        name=metadata.name, versions=metadata.versions or [], platform=metadata.platform
    )
    for tensor in metadata.inputs or ():
        _tensor_metadata_to_pb(tensor, message.inputs.add())
    for tensor in metadata.outputs or ():
        _tensor_metadata_to_pb(tensor, message.outputs.add())
    parameters_to_pb(metadata.parameters, message.parameters)
    return message


def model_metadata_from_pb(message: pb.ModelMetadataResponse) -> MetadataModelResponse:
    return MetadataModelResponse(
        name=message.name,
        versions=list(message.versions) or None,
        platform=message.platform,
        inputs=[_tensor_metadata_from_pb(t) for t in message.inputs] or None,
        outputs=[_tensor_metadata_from_pb(t) for t in message.outputs] or None,
        parameters=parameters_from_pb(message.parameters),
    )


def repository_index_request_from_pb(message: pb.RepositoryIndexRequest) -> RepositoryIndexRequest:
    return RepositoryIndexRequest(ready=message.ready)


def repository_index_to_pb(index: RepositoryIndexResponse) -> pb.RepositoryIndexResponse:
    message = pb.RepositoryIndexResponse()
    for item in index.root:
        message.models.add(
            name=item.name,
            version=item.version or "",
            state=State(item.state).value,
            reason=item.reason,
        )
    return message


def repository_index_from_pb(message: pb.RepositoryIndexResponse) -> RepositoryIndexResponse:
    """Decode a repository index; states this side does not know become UNKNOWN."""
    known = {state.value for state in State}
    return RepositoryIndexResponse(
        [
            RepositoryIndexResponseItem(
                name=model.name,
                version=model.version or None,
                state=State(model.state) if model.state in known else State.UNKNOWN,
                reason=model.reason,
            )
            for model in message.models
        ]
    )


__all__ = [
    "CONTENTS_FIELDS",
    "ParameterValue",
    "contents_to_data",
    "infer_parameter_to_value",
    "model_infer_request_from_types",
    "model_infer_request_to_types",
    "model_infer_response_to_types",
    "model_metadata_from_pb",
    "model_metadata_to_pb",
    "parameters_from_pb",
    "parameters_to_pb",
    "repository_index_from_pb",
    "repository_index_request_from_pb",
    "repository_index_to_pb",
    "repository_parameters_from_pb",
    "server_metadata_from_pb",
    "server_metadata_to_pb",
    "types_to_model_infer_response",
    "value_to_infer_parameter",
]

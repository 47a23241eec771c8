"""``decode_args``: let a ``predict`` signature decide how inputs decode and outputs encode.

    class MyModel(MLModel):
        @decode_args
        async def predict(self, a: np.ndarray, b: list[str]) -> np.ndarray: ...

The wrapped method takes an ``InferenceRequest`` and returns an ``InferenceResponse``.
``self`` is duck-typed: it needs ``name`` and ``version``, and may have ``outputs``
(a list of ``MetadataTensor``) to name and type the outputs.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest, ModelError
from ..types import InferenceRequest, InferenceResponse, MetadataTensor, ResponseOutput
from .base import (
    DEFAULT_OUTPUT_PREFIX,
    InputCodecLike,
    RequestCodecLike,
    find_input_codec,
    find_request_codec,
    unwrap_optional,
)
from .decoding import decode_request_input
from .numpy import NumpyCodec

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class _Argument:
    name: str
    input_codec: InputCodecLike | None
    request_codec: RequestCodecLike | None
    required: bool
    default: Any


def _find_codecs(hint: Any) -> tuple[InputCodecLike | None, RequestCodecLike | None]:
    for candidate in (hint, typing.get_origin(hint)):  # NDArray[...] → np.ndarray
        if candidate is None:
            continue
        input_codec = find_input_codec(type_hint=candidate)
        if input_codec is not None:
            return input_codec, None
        request_codec = find_request_codec(type_hint=candidate)
        if request_codec is not None:
            return None, request_codec
    return None, None


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception as error:
        raise TypeError(
            f"decode_args: cannot resolve the type hints of {function.__qualname__}: {error}"
        ) from error


def _arguments(function: Callable[..., Any], hints: dict[str, Any]) -> list[_Argument]:
    parameters = list(inspect.signature(function).parameters.values())[1:]  # skip self
    arguments = []
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"decode_args: {function.__qualname__} cannot take *args or **kwargs")
        hint = hints.get(parameter.name)
        input_codec = request_codec = None
        optional = False
        if hint is not None:
            hint, optional = unwrap_optional(hint)
            input_codec, request_codec = _find_codecs(hint)
            if input_codec is None and request_codec is None:
                raise TypeError(
                    f"decode_args: parameter '{parameter.name}' of {function.__qualname__} "
                    f"has type {hint!r}, which no codec decodes"
                )
        arguments.append(
            _Argument(
                name=parameter.name,
                input_codec=input_codec,
                request_codec=request_codec,
                required=parameter.default is _MISSING and not optional,
                default=None if parameter.default is _MISSING else parameter.default,
            )
        )
    return arguments


def _output_hints(return_hint: Any) -> tuple[bool, list[Any]]:
    """(whether the result is a tuple of outputs, the hint of each output)."""
    if return_hint is None:
        return False, []
    if typing.get_origin(return_hint) is tuple:
        args = list(typing.get_args(return_hint))
        if len(args) == 2 and args[1] is Ellipsis:
            return True, [args[0]]
        return True, args
    return False, [return_hint]


def _model_label(model: Any) -> str:
    return f"model '{getattr(model, 'name', '?')}'"


def _decode(model: Any, arguments: list[_Argument], request: InferenceRequest) -> dict[str, Any]:
    by_name = {request_input.name: request_input for request_input in request.inputs}
    if len(by_name) != len(request.inputs):
        names = [request_input.name for request_input in request.inputs]
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidRequest(f"{_model_label(model)}: input '{duplicate}' appears more than once")
    whole_request = any(argument.request_codec is not None for argument in arguments)
    if not whole_request:
        expected = {argument.name for argument in arguments}
        unexpected = [name for name in by_name if name not in expected]
        if unexpected:
            raise InvalidRequest(
                f"{_model_label(model)}: unexpected input(s) "
                f"{', '.join(repr(n) for n in unexpected)}; "
                f"predict accepts {', '.join(repr(n) for n in sorted(expected)) or 'no inputs'}"
            )
    kwargs: dict[str, Any] = {}
    for argument in arguments:
        if argument.request_codec is not None:
            kwargs[argument.name] = argument.request_codec.decode_request(request)
            continue
        request_input = by_name.get(argument.name)
        if request_input is None:
            if argument.required:
                raise InvalidRequest(
                    f"{_model_label(model)}: missing required input '{argument.name}'"
                )
            kwargs[argument.name] = argument.default
        elif argument.input_codec is not None:
            kwargs[argument.name] = argument.input_codec.decode_input(request_input)
        else:
            decoded = decode_request_input(request_input)
            kwargs[argument.name] = (
                NumpyCodec.decode_input(request_input) if decoded is None else decoded
            )
    return kwargs


def _encode_output(model: Any, index: int, payload: Any, hint: Any) -> list[ResponseOutput]:
    metadata: list[MetadataTensor] = list(getattr(model, "outputs", None) or [])
    meta = metadata[index] if index < len(metadata) else None
    name = meta.name if meta is not None else f"{DEFAULT_OUTPUT_PREFIX}{index}"
    input_codec: Any = None
    request_codec: Any = None
    if hint is not None:
        input_codec, request_codec = _find_codecs(unwrap_optional(hint)[0])
    meta_content_type = meta.parameters.content_type if meta and meta.parameters else None
    if input_codec is None and request_codec is None and meta_content_type:
        input_codec = find_input_codec(content_type=meta_content_type)
    if input_codec is None and request_codec is None:
        input_codec = find_input_codec(payload=payload)
        if input_codec is None:
            request_codec = find_request_codec(payload=payload)
    if request_codec is not None:
        return list(request_codec.encode_response(model.name, payload).outputs)
    if input_codec is None:
        raise ModelError(
            f"{_model_label(model)}: predict returned {type(payload).__name__} for output "
            f"'{name}', which no codec encodes"
        )
    return [input_codec.encode_output(name, payload)]


def _encode(
    model: Any, result: Any, return_hint: Any, request: InferenceRequest
) -> InferenceResponse:
    if isinstance(result, InferenceResponse):
        return result
    is_tuple, hints = _output_hints(return_hint)
    if not is_tuple and return_hint is None and isinstance(result, tuple):
        is_tuple = True
    payloads = list(result) if is_tuple else [result]
    if is_tuple and len(hints) > 1 and len(hints) != len(payloads):
        raise ModelError(
            f"{_model_label(model)}: predict returned {len(payloads)} outputs but its "
            f"return annotation declares {len(hints)}"
        )
    outputs: list[ResponseOutput] = []
    for index, payload in enumerate(payloads):
        hint = hints[min(index, len(hints) - 1)] if hints else None
        outputs.extend(_encode_output(model, index, payload, hint))
    return InferenceResponse(
        model_name=model.name,
        model_version=getattr(model, "version", None),
        id=request.id,
        outputs=outputs,
    )


def decode_args(predict: Callable[..., Any]) -> Callable[..., Any]:
    """Decode inputs by ``predict``'s parameter types and encode its result by its return type."""
    hints = _type_hints(predict)
    arguments = _arguments(predict, hints)
    return_hint = hints.get("return")
    if return_hint is type(None):
        return_hint = None

    if inspect.iscoroutinefunction(predict):

        @functools.wraps(predict)
        async def async_wrapper(self: Any, request: InferenceRequest) -> InferenceResponse:
            result = await predict(self, **_decode(self, arguments, request))
            return _encode(self, result, return_hint, request)

        return async_wrapper

    @functools.wraps(predict)
    def wrapper(self: Any, request: InferenceRequest) -> InferenceResponse:
        result = predict(self, **_decode(self, arguments, request))
        return _encode(self, result, return_hint, request)

    return wrapper

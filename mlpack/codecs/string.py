"""The ``str`` content type: BYTES tensors as lists of Python strings."""

from __future__ import annotations

from typing import Any, List

from ..errors import InvalidRequest
from ..types import Datatype, Parameters, RequestInput, ResponseOutput
from .base import InputCodec, SingleInputRequestCodec, register_input_codec, register_request_codec
from .tensors import decode_tensor


def _is_list_of(payload: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(payload, list) and all(isinstance(item, kind) for item in payload)


def _as_request_input(tensor: RequestInput | ResponseOutput) -> RequestInput:
    if isinstance(tensor, RequestInput):
        return tensor
    return RequestInput.model_construct(
        name=tensor.name, shape=tensor.shape, datatype=tensor.datatype, data=tensor.data
    )


def bytes_elements(tensor: RequestInput | ResponseOutput, content_type: str) -> list[Any]:
    """The validated flat elements of a BYTES tensor (``str`` or ``bytes``)."""
    if tensor.datatype is not Datatype.BYTES:
        raise InvalidRequest(
            f"input '{tensor.name}': content type '{content_type}' needs datatype BYTES, "
            f"got {tensor.datatype.value}"
        )
    return decode_tensor(_as_request_input(tensor))  # type: ignore[no-any-return]


def _to_str(name: str, value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRequest(f"input '{name}' (str): element is not valid UTF-8: {error}") from None


def _encode(payload: list[str], use_bytes: bool) -> list[Any]:
    return [item.encode("utf-8") for item in payload] if use_bytes else list(payload)


@register_input_codec
class StringCodec(InputCodec):
    """BYTES tensors ⇄ ``list[str]`` (UTF-8)."""

    ContentType = "str"
    TypeHint = List[str]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return _is_list_of(payload, str)

    @classmethod
    def encode_output(
        cls, name: str, payload: list[str], use_bytes: bool = False, **kwargs: Any
    ) -> ResponseOutput:
        return ResponseOutput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[str]:
        elements = bytes_elements(response_output, cls.ContentType)
        return [_to_str(response_output.name, item) for item in elements]

    @classmethod
    def encode_input(
        cls, name: str, payload: list[str], use_bytes: bool = True, **kwargs: Any
    ) -> RequestInput:
        return RequestInput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[str]:
        elements = bytes_elements(request_input, cls.ContentType)
        return [_to_str(request_input.name, item) for item in elements]


@register_request_codec
class StringRequestCodec(SingleInputRequestCodec):
    """A request with a single BYTES input ⇄ ``list[str]``."""

    InputCodec = StringCodec
    ContentType = StringCodec.ContentType
    TypeHint = List[str]

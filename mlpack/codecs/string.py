"""The ``str`` content type: BYTES tensors as lists of Python strings."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import InvalidRequest
from ..types import Datatype, Parameters, RequestInput, ResponseOutput, trusted
from .base import InputCodec, SingleInputRequestCodec, register_input_codec, register_request_codec
from .tensors import decode_tensor


def _is_list_of(payload: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(payload, list) and all(isinstance(item, kind) for item in payload)


def _as_request_input(tensor: RequestInput | ResponseOutput) -> RequestInput:
    if isinstance(tensor, RequestInput):
        return tensor
    return trusted(
        RequestInput,
        name=tensor.name,
        shape=tensor.shape,
        datatype=tensor.datatype,
        data=tensor.data,
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


class BytesElementCodec(InputCodec):
    """A BYTES tensor ⇄ a list of Python values, one per element, shaped ``[len, 1]``.

    Subclasses set ``ContentType``, ``TypeHint`` and ``ElementType`` and say how the
    values become wire elements (``encode_elements``) and back (``decode_elements``).
    """

    ElementType: ClassVar[type] = object

    @classmethod
    def encode_elements(cls, payload: list[Any], use_bytes: bool) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def decode_elements(cls, name: str, elements: list[Any]) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return _is_list_of(payload, cls.ElementType)

    @classmethod
    def encode_output(
        cls, name: str, payload: list[Any], use_bytes: bool = False, **kwargs: Any
    ) -> ResponseOutput:
        return ResponseOutput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=cls.encode_elements(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[Any]:
        elements = bytes_elements(response_output, cls.ContentType)
        return cls.decode_elements(response_output.name, elements)

    @classmethod
    def encode_input(
        cls, name: str, payload: list[Any], use_bytes: bool = True, **kwargs: Any
    ) -> RequestInput:
        return RequestInput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=cls.encode_elements(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[Any]:
        return cls.decode_elements(
            request_input.name, bytes_elements(request_input, cls.ContentType)
        )


@register_input_codec
class StringCodec(BytesElementCodec):
    """BYTES tensors ⇄ ``list[str]`` (UTF-8)."""

    ContentType = "str"
    TypeHint = list[str]
    ElementType = str

    @classmethod
    def encode_elements(cls, payload: list[Any], use_bytes: bool) -> list[Any]:
        return [item.encode("utf-8") for item in payload] if use_bytes else list(payload)

    @classmethod
    def decode_elements(cls, name: str, elements: list[Any]) -> list[Any]:
        return [_to_str(name, item) for item in elements]


@register_request_codec
class StringRequestCodec(SingleInputRequestCodec):
    """A request with a single BYTES input ⇄ ``list[str]``."""

    InputCodec = StringCodec
    ContentType = StringCodec.ContentType
    TypeHint = list[str]

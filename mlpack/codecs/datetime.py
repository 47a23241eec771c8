"""The ``datetime`` content type: BYTES tensors of ISO 8601 text as ``datetime`` lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any, List

from ..errors import InvalidRequest
from ..types import Datatype, Parameters, RequestInput, ResponseOutput
from .base import InputCodec, register_input_codec
from .string import bytes_elements


def _decode(name: str, elements: list[Any]) -> list[datetime]:
    decoded = []
    for index, item in enumerate(elements):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        try:
            decoded.append(datetime.fromisoformat(text))
        except ValueError:
            raise InvalidRequest(
                f"input '{name}' (datetime): element {index} ({text!r}) is not an ISO 8601 datetime"
            ) from None
    return decoded


def _encode(payload: list[datetime], use_bytes: bool) -> list[Any]:
    encoded = [item.isoformat() for item in payload]
    return [item.encode("utf-8") for item in encoded] if use_bytes else encoded


@register_input_codec
class DatetimeCodec(InputCodec):
    """BYTES tensors of ISO 8601 strings ⇄ ``list[datetime]``."""

    ContentType = "datetime"
    TypeHint = List[datetime]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, list) and all(isinstance(item, datetime) for item in payload)

    @classmethod
    def encode_output(
        cls, name: str, payload: list[datetime], use_bytes: bool = False, **kwargs: Any
    ) -> ResponseOutput:
        return ResponseOutput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[datetime]:
        return _decode(response_output.name, bytes_elements(response_output, cls.ContentType))

    @classmethod
    def encode_input(
        cls, name: str, payload: list[datetime], use_bytes: bool = True, **kwargs: Any
    ) -> RequestInput:
        return RequestInput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[datetime]:
        return _decode(request_input.name, bytes_elements(request_input, cls.ContentType))

"""The ``base64`` content type: BYTES tensors of base64 text as lists of raw bytes."""

from __future__ import annotations

import base64
import binascii
from typing import Any, List

from ..errors import InvalidRequest
from ..types import Datatype, Parameters, RequestInput, ResponseOutput
from .base import InputCodec, register_input_codec
from .string import bytes_elements


def _decode(name: str, elements: list[Any]) -> list[bytes]:
    decoded = []
    for index, item in enumerate(elements):
        try:
            decoded.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                f"input '{name}' (base64): element {index} is not valid base64"
            ) from None
    return decoded


def _encode(payload: list[bytes], use_bytes: bool) -> list[Any]:
    encoded = [base64.b64encode(item) for item in payload]
    return encoded if use_bytes else [item.decode("ascii") for item in encoded]


@register_input_codec
class Base64Codec(InputCodec):
    """BYTES tensors holding base64 text ⇄ ``list[bytes]``."""

    ContentType = "base64"
    TypeHint = List[bytes]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, list) and all(isinstance(item, bytes) for item in payload)

    @classmethod
    def encode_output(
        cls, name: str, payload: list[bytes], use_bytes: bool = False, **kwargs: Any
    ) -> ResponseOutput:
        return ResponseOutput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[bytes]:
        return _decode(response_output.name, bytes_elements(response_output, cls.ContentType))

    @classmethod
    def encode_input(
        cls, name: str, payload: list[bytes], use_bytes: bool = True, **kwargs: Any
    ) -> RequestInput:
        return RequestInput(
            name=name,
            datatype=Datatype.BYTES,
            shape=[len(payload), 1],
            data=_encode(payload, use_bytes),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[bytes]:
        return _decode(request_input.name, bytes_elements(request_input, cls.ContentType))

"""The ``base64`` content type: BYTES tensors of base64 text as lists of raw bytes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..errors import InvalidRequest
from .base import register_input_codec
from .string import BytesElementCodec


@register_input_codec
class Base64Codec(BytesElementCodec):
    """BYTES tensors holding base64 text ⇄ ``list[bytes]``."""

    ContentType = "base64"
    TypeHint = list[bytes]
    ElementType = bytes

    @classmethod
    def encode_elements(cls, payload: list[Any], use_bytes: bool) -> list[Any]:
        encoded = [base64.b64encode(item) for item in payload]
        return encoded if use_bytes else [item.decode("ascii") for item in encoded]

    @classmethod
    def decode_elements(cls, name: str, elements: list[Any]) -> list[Any]:
        decoded = []
        for index, item in enumerate(elements):
            try:
                decoded.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError):
                raise InvalidRequest(
                    f"input '{name}' (base64): element {index} is not valid base64"
                ) from None
        return decoded

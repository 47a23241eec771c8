"""The ``datetime`` content type: BYTES tensors of ISO 8601 text as ``datetime`` lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import InvalidRequest
from .base import register_input_codec
from .string import BytesElementCodec


@register_input_codec
class DatetimeCodec(BytesElementCodec):
    """BYTES tensors of ISO 8601 strings ⇄ ``list[datetime]``."""

    ContentType = "datetime"
    TypeHint = list[datetime]
    ElementType = datetime

    @classmethod
    def encode_elements(cls, payload: list[Any], use_bytes: bool) -> list[Any]:
        encoded = [item.isoformat() for item in payload]
        return [item.encode("utf-8") for item in encoded] if use_bytes else encoded

    @classmethod
    def decode_elements(cls, name: str, elements: list[Any]) -> list[Any]:
        decoded = []
        for index, item in enumerate(elements):
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            try:
                decoded.append(datetime.fromisoformat(text))
            except ValueError:
                raise InvalidRequest(
                    f"input '{name}' (datetime): element {index} ({text!r}) is not an ISO 8601 "
                    "datetime"
                ) from None
        return decoded

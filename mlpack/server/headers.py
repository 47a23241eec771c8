"""Make model-provided headers safe to send as HTTP (or gRPC) headers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..types import Parameters

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the transport owns; a model may not override them.
_RESERVED = {"content-length", "content-type", "transfer-encoding", "connection", "date", "server"}


def safe_header_value(value: Any) -> str:
    """Printable ASCII stays as is; anything else is percent-encoded (never CR/LF)."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def response_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Headers a model returned, filtered to valid names with safe values."""
    safe: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name) or name.lower() in _RESERVED:
            continue
        safe[name] = safe_header_value(value)
    return safe


# How the engine's serving info (response parameters) travels as headers on both transports.
_SERVING_HEADERS = (
    ("batch_size", "x-mlpack-batch-size"),
    ("batch_requests", "x-mlpack-batch-requests"),
    ("queue_wait_ms", "x-mlpack-queue-wait-ms"),
)


def outgoing_headers(parameters: Parameters) -> dict[str, Any] | None:
    """Headers a response carries: the model's own, then serving info (None: no headers).

    The model's ``parameters.headers`` are taken out of ``parameters``: they travel as
    headers (or gRPC metadata), not in the body.
    """
    headers = parameters.headers
    extra = parameters.__pydantic_extra__
    if extra and "queue_wait_ms" in extra:  # serving info (the model's serving_info setting)
        headers = dict(headers or {})
        for key, name in _SERVING_HEADERS:
            if key in extra:
                headers[name] = str(extra[key])
    if not headers:
        return None
    parameters.headers = None
    return headers

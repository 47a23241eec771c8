"""Make model-provided headers safe to send as HTTP (or gRPC) headers."""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import quote

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

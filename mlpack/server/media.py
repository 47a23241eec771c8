"""Which request ``Content-Type`` each REST route accepts.

JSON routes take ``application/json`` (any parameters, e.g. ``charset``) or no
``Content-Type`` at all (simple clients and bodyless POSTs send none, and a browser cannot
send a cross-site request without one). The binary tensor data extension also takes
``application/octet-stream``. Anything else (``text/plain``, forms, ...) is refused with
415 before the body is parsed.
"""

from __future__ import annotations

from ..errors import UnsupportedMediaType

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
JSON_ONLY = frozenset({JSON})
JSON_OR_BINARY = frozenset({JSON, OCTET_STREAM})


def check_content_type(value: str | None, accepted: frozenset[str] = JSON_ONLY) -> None:
    """Raise ``UnsupportedMediaType`` unless ``value`` (the header, None: absent) is accepted."""
    if value is None:
        return
    media_type = value.partition(";")[0].strip().lower()
    if not media_type or media_type in accepted:
        return
    raise UnsupportedMediaType(
        f"Content-Type '{value}' is not accepted here; send {' or '.join(sorted(accepted))}"
    )

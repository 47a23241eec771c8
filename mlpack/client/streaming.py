"""What the REST clients share for streams: request bodies and event → chunk decoding.

A stream answers ``text/event-stream``; each event's data is one JSON object: an
inference response (``infer_stream``), a generate chunk (``generate_stream``), or
``{"error": message}`` when the model failed mid-stream, which becomes ``ServerError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from .errors import ServerError, TransportError
from .sse import ServerSentEvent

EVENT_STREAM = "text/event-stream"
# The most bytes of an error answer (non-2xx before the stream started) read for its message.
MAX_ERROR_BODY = 64 * 1024
# The status an error event carries: the stream's 200 is already out, so the server's
# message is what tells why (the model raised, or the server is stopping).
STREAM_ERROR_STATUS = 500


def generate_body(text_input: str, parameters: Mapping[str, Any] | None) -> bytes:
    """The generate extension's request: ``{"text_input": ..., "parameters": {...}}``."""
    payload: dict[str, Any] = {"text_input": text_input}
    if parameters:
        payload["parameters"] = dict(parameters)
    return orjson.dumps(payload)


def check_event_stream(url: str, content_type: str | None) -> None:
    """A 2xx stream answer must be ``text/event-stream``."""
    if not (content_type or "").lower().startswith(EVENT_STREAM):
        raise TransportError(f"{url}: expected {EVENT_STREAM}, got {content_type or 'no type'}")


def chunks(events: Iterable[ServerSentEvent]) -> Iterator[dict[str, Any]]:
    """Each event's JSON object; an ``{"error": ...}`` event raises ``ServerError``."""
    for event in events:
        if event.event != "message":
            continue  # named events (none today) are for other readers
        try:
            chunk = orjson.loads(event.data)
        except ValueError as error:
            raise ServerError(
                STREAM_ERROR_STATUS, f"stream event is not JSON: {error}: {event.data[:200]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise ServerError(STREAM_ERROR_STATUS, "stream event is not a JSON object")
        if "error" in chunk:  # no response or generate chunk has this field
            raise ServerError(STREAM_ERROR_STATUS, str(chunk["error"]))
        yield chunk

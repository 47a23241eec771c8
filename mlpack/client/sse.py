"""An incremental, bounded decoder for server-sent events (``text/event-stream``).

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR; ``data:`` lines join
with ``\\n``; a blank line dispatches the event; ``:`` starts a comment (keep-alives);
``event``, ``id`` and ``retry`` are kept; an event without data is not dispatched and an
unfinished event at the end of the stream is dropped. Bytes are fed as they arrive from any
transport, so the same decoder serves the httpx and the httptools clients.

Bounded: a line, or an event's data, longer than ``max_event_size`` bytes raises
``TransportError`` instead of growing a buffer without end.
"""

from __future__ import annotations

import dataclasses

from .errors import TransportError

# The largest event (or line) a client accepts unless told otherwise: 16 MiB.
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Turns chunks of an event stream into ``ServerSentEvent`` s.

    Parameters:
        max_event_size: the most bytes one line or one event's data may have.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if max_event_size < 1:
            raise ValueError("max_event_size must be >= 1")
        self.max_event_size = max_event_size
        self._partial = b""  # an unfinished line
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it
        self._started = False  # a leading byte-order mark is dropped once
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._retry: int | None = None
        self.last_event_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk``; return the events it completed (maybe none)."""
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if not self._started and (lines or self._partial):
            self._started = True
            first = lines[0] if lines else self._partial
            if first.startswith(b"\xef\xbb\xbf"):
                if lines:
                    lines[0] = first[3:]
                else:
                    self._partial = first[3:]
        if len(self._partial) > self.max_event_size:
            raise TransportError(f"server-sent event line longer than {self.max_event_size} bytes")
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        """The stream ended: an unfinished event is dropped (nothing is dispatched)."""
        self._partial = b""
        self._reset()

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self.max_event_size:
                raise TransportError(f"server-sent event larger than {self.max_event_size} bytes")
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._reset()
            return None
        event = ServerSentEvent(
            "\n".join(self._data), self._event or "message", self.last_event_id, self._retry
        )
        self._reset()
        return event

    def _reset(self) -> None:
        self._data = []
        self._size = 0
        self._event = ""
        self._retry = None

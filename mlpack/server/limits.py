"""REST connection and request limits, enforced in the HTTP protocol before the app runs.

``HttpLimits`` holds the numbers (from settings); ``limited_protocol`` returns an
httptools protocol class that enforces them:

- connections beyond ``max_connections`` get one ``503`` (``Retry-After``) and are closed,
  while existing ones keep working; requests beyond ``max_concurrent_requests`` in flight
  get ``503`` too;
- a connection idle before its first request is closed after ``timeout_keep_alive``
  (uvicorn's own timer covers the idle time between requests); a request head not read
  within ``timeout_request_head`` and a body not read within ``timeout_request_body``
  close the connection (``408`` when nothing was answered yet);
- a head over ``max_header_size`` bytes or ``max_header_count`` fields gets ``431``; a body
  declared or grown over ``max_request_size`` gets ``413`` before the rest is read.

Error bodies come from ``error_handlers.error_response``, like every other error.
``raise_open_file_limit`` lifts the process's soft open-file limit to its hard limit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import HeadersTooLarge, MLPackError, Overloaded, RequestTimeout, RequestTooLarge
from .error_handlers import error_response

logger = logging.getLogger("mlpack.server")

# The request scope's extension holding a callable that drops the connection at once.
ABORT_EXTENSION = "mlpack.abort_connection"

# File descriptors kept back from REST connections (gRPC, workers, models, logs).
RESERVED_FILES = 256


@dataclass(frozen=True)
class HttpLimits:
    """The REST transport's bounds (see ``Settings`` for each one's meaning)."""

    max_connections: int = 1000
    max_concurrent_requests: int = 4096
    max_request_size: int = 64 * 1024 * 1024
    max_header_size: int = 64 * 1024
    max_header_count: int = 100
    timeout_request_head: float = 10.0
    timeout_request_body: float = 60.0
    timeout_keep_alive: float = 5.0


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit in force."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft)


def connection_capacity(open_files: int) -> int:
    """REST connections a process with ``open_files`` descriptors can hold safely."""
    if open_files > 2 * RESERVED_FILES:
        return open_files - RESERVED_FILES
    return max(1, open_files // 2)


def http_response_bytes(error: MLPackError, close: bool = True) -> bytes:
    """``error`` as a complete HTTP/1.1 response (the ``{"error": ...}`` body)."""
    response = error_response(error)
    status = response.status_code
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}".encode("latin-1")]
    for name, value in response.raw_headers:
        lines.append(name + b": " + value)
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(response.body)


_REASONS = {
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _LimitedMixin:
    """Enforces ``limits`` on an httptools protocol (mixed in before it by
    ``limited_protocol``; every hook calls the protocol's own)."""

    limits: HttpLimits
    # Provided by uvicorn's HttpToolsProtocol.
    connections: Any
    tasks: Any
    transport: Any
    loop: Any
    cycle: Any
    scope: Any
    headers: Any
    timeout_keep_alive_task: Any
    timeout_keep_alive_handler: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_fields = 0
        self._body_bytes = 0
        self._refused = False

    # -- connections ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.limits.max_connections:
            self._refused = True
            self._refuse(
                Overloaded(
                    f"the server holds its maximum of {self.limits.max_connections} connections; "
                    "retry later"
                )
            )
            return
        # Idle before the first request: uvicorn's keep-alive timer, which it cancels
        # as soon as data arrives.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)  # type: ignore[misc]

    def _refuse(self, error: MLPackError) -> None:
        self._cancel_timer()
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(http_response_bytes(error))
            self.transport.close()

    # -- timers --------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._timed_out, what)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and what == "body":
            # The app is reading this body: closing tells it the client is gone.
            self._refused = True
            self.transport.close()
            return
        self._refuse(RequestTimeout(f"the request {what} was not received in time"))

    # -- parser callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()  # type: ignore[misc]
        self._head_bytes = self._head_fields = self._body_bytes = 0
        self._arm(self.limits.timeout_request_head, "head")

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_header_size:
            return self._refuse(
                HeadersTooLarge(
                    f"the request line and headers exceed {self.limits.max_header_size} bytes"
                )
            )
        super().on_url(url)  # type: ignore[misc]

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._head_bytes += len(name) + len(value) + 4
        self._head_fields += 1
        if self._head_bytes > self.limits.max_header_size:
            return self._refuse(
                HeadersTooLarge(
                    f"the request headers exceed {self.limits.max_header_size} bytes "
                    "(max_header_size)"
                )
            )
        if self._head_fields > self.limits.max_header_count:
            return self._refuse(
                HeadersTooLarge(
                    f"the request has more than {self.limits.max_header_count} header fields "
                    "(max_header_count)"
                )
            )
        super().on_header(name, value)  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._cancel_timer()
        declared = _content_length(self.headers)
        if declared is not None and declared > self.limits.max_request_size:
            return self._refuse(_too_large(declared, self.limits.max_request_size))
        if len(self.tasks) >= self.limits.max_concurrent_requests:
            return self._refuse(
                Overloaded(
                    f"the server has {len(self.tasks)} requests in flight "
                    f"(max_concurrent_requests {self.limits.max_concurrent_requests}); retry later"
                )
            )
        # An app may drop the connection at once (a stalled stream: close() would wait for
        # a client that reads nothing to take the buffered bytes).
        self.scope.setdefault("extensions", {})[ABORT_EXTENSION] = self.transport.abort
        super().on_headers_complete()  # type: ignore[misc]
        if declared or _chunked(self.headers):
            self._arm(self.limits.timeout_request_body, "body")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_request_size:
            cycle = self.cycle
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
            return self._refuse(_too_large(None, self.limits.max_request_size))
        super().on_body(body)  # type: ignore[misc]

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_timer()
        super().on_message_complete()  # type: ignore[misc]


def limited_protocol(base: type[HttpToolsProtocol], limits: HttpLimits) -> type[HttpToolsProtocol]:
    """A subclass of ``base`` (an httptools protocol) enforcing ``limits``."""
    name = f"Limited{base.__name__}"
    return type(name, (_LimitedMixin, base), {"limits": limits})


def _too_large(size: int | None, limit: int) -> RequestTooLarge:
    what = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return RequestTooLarge(
        f"the request body is {what}; the limit is {limit} bytes (max_request_size)"
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in headers
    )

"""Errors raised by the V2 clients.

MLPackError
└── ClientError                   anything that went wrong talking to a server
    ├── TransportError            no answer: connection refused or reset, TLS, protocol
    │   └── Timeout               no answer in time
    ├── UnsendableRequest         the request cannot be encoded for the wire (never sent)
    └── ServerError               the server answered with an error status
"""

from __future__ import annotations

from typing import Optional

from ..errors import MLPackError

# Statuses worth sending again: overload, throttling and server-side failures.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# Statuses that say "this server, not this request": try another server first.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class ClientError(MLPackError):
    """A request to an inference server failed."""

    retryable: bool = False
    retry_after: Optional[float] = None


class TransportError(ClientError):
    """The server could not be reached or the connection broke."""

    retryable = True


class Timeout(TransportError):
    """The server did not answer in time."""


class UnsendableRequest(ClientError):
    """The request cannot be encoded for the transport, so it was never sent (like a 400)."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = message


class ServerError(ClientError):
    """The server answered with a non-2xx status; ``status`` and ``retry_after`` tell why."""

    def __init__(self, status: int, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.reason = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)

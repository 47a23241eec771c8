"""Errors raised by the V2 clients (their classes live in the tree in ``mlpack.errors``).

MLPackError
└── ClientError                   anything that went wrong talking to a server
    ├── TransportError            no answer: connection refused or reset, TLS, protocol
    │   └── Timeout               no answer in time
    ├── UnsendableRequest         the request cannot be encoded for the wire (never sent)
    └── ServerError               the server answered with an error status
"""

from __future__ import annotations

from ..errors import RETRYABLE_STATUSES as RETRYABLE_STATUSES
from ..errors import ClientError as ClientError
from ..errors import ServerError as ServerError
from ..errors import Timeout as Timeout
from ..errors import TransportError as TransportError
from ..errors import UnsendableRequest as UnsendableRequest

# Statuses that say "this server, not this request": try another server first.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)

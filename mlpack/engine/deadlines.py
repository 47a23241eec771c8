"""Per-request deadlines: one absolute time each request must be answered by.

A deadline is a ``time.monotonic()`` value. On Linux that clock is system-wide, so a
deadline computed in the server stays meaningful inside a worker process. The registry
combines the client's own deadline (gRPC deadline, REST ``Inference-Timeout`` header or
the ``timeout`` request parameter) with the model's ``inference_timeout``; runners check
it before starting work (``check``) so expired work is never started.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from typing import Any

from ..errors import DeadlineExceeded, InvalidRequest

# Triton's schedule-policy request parameter: the request's timeout in microseconds.
TIMEOUT_PARAMETER = "timeout"


_deadline: ContextVar[float | None] = ContextVar("mlpack_deadline", default=None)


def current_deadline() -> float | None:
    """The deadline of the request being dispatched in this context (None: none)."""
    return _deadline.get()


def set_deadline(deadline: float | None) -> Token[float | None]:
    return _deadline.set(deadline)


def reset_deadline(token: Token[float | None]) -> None:
    _deadline.reset(token)


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the given deadlines (None: no deadline)."""
    known = [d for d in deadlines if d is not None]
    return min(known) if known else None


def after(seconds: float | None, now: float | None = None) -> float | None:
    """The deadline ``seconds`` from ``now`` (None or a non-positive value: none)."""
    if seconds is None or seconds <= 0:
        return None
    return (time.monotonic() if now is None else now) + seconds


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); may be negative."""
    return None if deadline is None else deadline - time.monotonic()


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def check(deadline: float | None, model: str) -> None:
    """Raise ``DeadlineExceeded`` when ``deadline`` has passed (call before starting work)."""
    if expired(deadline):
        raise DeadlineExceeded(f"model '{model}': the request's deadline passed before compute")


def exceeded(model: str, timeout: float | None = None) -> DeadlineExceeded:
    """The error for a request still running at its deadline."""
    detail = f" ({timeout:g}s)" if timeout is not None else ""
    return DeadlineExceeded(f"model '{model}': no answer within the request's deadline{detail}")


def parse_timeout_header(value: str | None) -> float | None:
    """The REST ``Inference-Timeout`` header (seconds, decimal) → seconds (None: absent)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidRequest(
            f"header Inference-Timeout must be a number of seconds, got {value!r}"
        ) from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidRequest(f"header Inference-Timeout must be positive, got {value!r}")
    return seconds


def timeout_parameter(parameters: Any) -> float | None:
    """Triton's ``timeout`` request parameter (microseconds) → seconds (None: absent or 0)."""
    if parameters is None:
        return None
    extra = getattr(parameters, "__pydantic_extra__", None)
    if isinstance(extra, dict):  # a ``Parameters``: unknown keys live here (no slow getattr)
        value = extra.get(TIMEOUT_PARAMETER)
    else:
        value = getattr(parameters, TIMEOUT_PARAMETER, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidRequest(
            f"request parameter 'timeout' must be a non-negative number of microseconds, "
            f"got {value!r}"
        )
    return value / 1e6 if value else None

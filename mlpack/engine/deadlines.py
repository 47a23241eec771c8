"""Per-request deadlines: one absolute time each request must be answered by.

A deadline is a ``time.monotonic()`` value. On Linux that clock is system-wide, so a
deadline computed in the server stays meaningful inside a worker process. The registry
combines the client's own deadline (gRPC deadline, REST ``Inference-Timeout`` header or
the ``timeout`` request parameter) with the model's ``inference_timeout``; runners check
it before starting work (``check``) so expired work is never started.
"""

from __future__ import annotations

import asyncio
import math
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


class Watch:
    """One task watched by ``Expiry``: its deadline, and whether it was cancelled for it."""

    __slots__ = ("cancelling", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()  # cancel requests that were not ours
        self.expired = False

    def timed_out(self) -> bool:
        """After a ``CancelledError``: whether it was this deadline's (then the cancel is
        withdrawn and the caller answers ``DeadlineExceeded``), as ``asyncio.timeout`` decides."""
        return self._withdraw() and self.task.cancelling() <= self.cancelling

    def _withdraw(self) -> bool:
        """Take back the deadline's cancel request, once (True: there was one)."""
        if not self.expired:
            return False
        self.expired = False
        self.task.uncancel()
        return True


class Expiry:
    """Cancels tasks still running at their deadlines, with one loop timer for all of them.

    ``asyncio.timeout`` arms and disarms a loop timer per request (a few microseconds on
    every call's hot path); here a request costs a dict insert and delete, and the one
    timer is re-armed only when a new deadline is earlier than the armed one or when it
    fires (then for the earliest deadline left).
    """

    def __init__(self) -> None:
        self._watched: dict[Watch, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's
        self._armed = math.inf  # the monotonic deadline the timer is set for

    def watch(self, task: asyncio.Task[Any], deadline: float) -> Watch:
        """Cancel ``task`` at ``deadline`` (``time.monotonic()``) unless ``unwatch``ed first."""
        watch = Watch(task, deadline)
        self._watched[watch] = None
        loop = task.get_loop()
        if deadline < self._armed or loop is not self._loop:  # (another loop: a test's next)
            self._arm(loop, deadline)
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop watching; a deadline's cancel the call swallowed is taken back here."""
        self._watched.pop(watch, None)
        watch._withdraw()

    def __len__(self) -> int:
        return len(self._watched)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop = loop
        self._armed = deadline
        delay = deadline - time.monotonic()
        self._handle = loop.call_at(loop.time() + max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed = math.inf
        now = time.monotonic()
        earliest = math.inf
        for watch in list(self._watched):
            if watch.deadline <= now:
                del self._watched[watch]
                if not watch.task.done():
                    watch.expired = True
                    watch.task.cancel()
            elif watch.deadline < earliest:
                earliest = watch.deadline
        if earliest < math.inf and self._loop is not None:
            self._arm(self._loop, earliest)

"""Retry policy (exponential backoff, full jitter, Retry-After) and server selection."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..client.errors import UNAVAILABLE_STATUSES, ClientError, ServerError, TransportError

T = TypeVar("T")


DEFAULT_RETRIES = 3
DEFAULT_RETRY_FOR = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to send a failed request again.

    Two kinds of failure, two bounds:

    * the server is away or overloaded (no connection, a timeout, 429, 502/503/504): the
      request is sent again until ``retry_for`` seconds have passed since its first failure,
      so a restart or a short outage costs no line;
    * the server answered with another retryable error (500, 408, ...): at most ``retries``
      more times, and also within ``retry_for``.

    Parameters:
        retries: retries of answered errors.
        retry_for: seconds, from a request's first failure, after which it is not retried.
        base: the first backoff in seconds; it doubles with each retry up to ``cap``.
        cap: the longest backoff in seconds.
    """

    retries: int = DEFAULT_RETRIES
    retry_for: float = DEFAULT_RETRY_FOR
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (1-based): half to all of the backoff, or more."""
        backoff = min(self.cap, self.base * 2 ** min(attempt - 1, 30))
        jittered = random.uniform(backoff / 2, backoff)
        if retry_after is not None:
            return max(min(retry_after, 60.0), jittered)
        return jittered

    def next_delay(
        self, error: ClientError, attempt: int, failing_for: float, *, merged: bool = False
    ) -> float | None:
        """Seconds to wait before retry ``attempt`` (1-based), or None to give up.

        ``failing_for``: seconds since the request first failed. A merged batch is retried
        only while the server is in trouble; any other error splits it into single lines.
        """
        if not error.retryable or failing_for >= self.retry_for:
            return None
        if not blames_server(error) and (merged or attempt > self.retries):
            return None
        return min(self.delay(attempt, error.retry_after), self.retry_for - failing_for)


def blames_server(error: ClientError) -> bool:
    """True if the error says the server, not the request, is in trouble."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, ServerError) and (
        error.status in UNAVAILABLE_STATUSES or error.status == 429
    )


@dataclass
class _Slot(Generic[T]):
    target: T
    failures: int = 0
    avoid_until: float = 0.0


@dataclass
class Endpoints(Generic[T]):
    """Round-robin over servers, steering clear of ones that recently failed.

    A failing server is avoided for a cooldown that doubles with each consecutive failure
    (0.5 s up to 30 s); when every server is cooling down, the one free soonest is used.
    """

    targets: Sequence[T]
    _slots: list[_Slot[T]] = field(init=False)
    _next: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("at least one server is needed")
        self._slots = [_Slot(t) for t in self.targets]

    def pick(self) -> T:
        now = time.monotonic()
        count = len(self._slots)
        for step in range(count):
            slot = self._slots[(self._next + step) % count]
            if slot.avoid_until <= now:
                self._next = (self._next + step + 1) % count
                return slot.target
        return min(self._slots, key=lambda s: s.avoid_until).target

    def _slot(self, target: T) -> _Slot[T]:
        return next(s for s in self._slots if s.target is target)

    def failed(self, target: T) -> None:
        slot = self._slot(target)
        slot.failures += 1
        slot.avoid_until = time.monotonic() + min(30.0, 0.5 * 2 ** min(slot.failures - 1, 6))

    def succeeded(self, target: T) -> None:
        slot = self._slot(target)
        if slot.failures:
            slot.failures = 0
            slot.avoid_until = 0.0

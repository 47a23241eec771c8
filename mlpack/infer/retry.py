"""Retry policy (exponential backoff, full jitter, Retry-After) and server selection."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..client.errors import UNAVAILABLE_STATUSES, ClientError, ServerError, TransportError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to send a failed request again."""

    retries: int = 3
    base: float = 0.1
    cap: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1-based): full jitter, at least Retry-After."""
        backoff = random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(min(retry_after, 60.0), backoff)
        return backoff


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

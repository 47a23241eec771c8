"""``StreamChannel``: a bounded hand-over of stream items from one event loop to another.

The producer (a model's thread) ``put``s items; when ``capacity`` items wait unread it
waits for room, so a slow consumer slows the producer down instead of memory growing.
The consumer (the server's loop) ``get``s them. Each side wakes the other with one
``call_soon_threadsafe``, and only when it must: the consumer when the channel goes
from empty to non-empty while it waits, a producer waiting on a full channel only once
the consumer has read it down to half (``low_water``), so a busy stream costs one
cross-thread wake-up per half a buffer, not one per item; nothing polls. ``close``
(consumer gone) makes the producer's next ``put`` raise ``ChannelClosed``; ``finish`` /
``fail`` end the stream from the producer's side. Both loops may be the same loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosed(Exception):
    """The consumer closed the channel: produce nothing more."""


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class StreamChannel(Generic[T]):
    """Items from a producer loop to a consumer loop, at most ``capacity`` unread.

    Parameters:
        capacity: items that may wait unread before ``put`` waits.
        producer_loop: the loop ``put``/``finish``/``fail`` are called on.
        consumer_loop: the loop ``get``/``close`` are called on.
    """

    def __init__(
        self,
        capacity: int,
        producer_loop: asyncio.AbstractEventLoop,
        consumer_loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.capacity = max(1, capacity)
        self.low_water = self.capacity // 2  # a waiting producer wakes at this many unread
        self._producer_loop = producer_loop
        self._consumer_loop = consumer_loop
        self._items: deque[T | _End] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
        self._producer_waiter: asyncio.Future[None] | None = None
        self._consumer_waiter: asyncio.Future[None] | None = None
        self.produced = 0  # items accepted by put (for tests and stats)

    # -- producer side ---------------------------------------------------------------
    async def put(self, item: T) -> None:
        """Hand ``item`` over; wait while ``capacity`` items are unread."""
        while True:
            with self._lock:
                if self._closed:
                    raise ChannelClosed
                if len(self._items) < self.capacity:
                    self._items.append(item)
                    self.produced += 1
                    waiter, self._consumer_waiter = self._consumer_waiter, None
                    break
                room = self._producer_waiter = self._producer_loop.create_future()
            await room
        if waiter is not None:
            self._consumer_loop.call_soon_threadsafe(_wake, waiter)

    def finish(self) -> None:
        """The stream ended normally."""
        self._end(_End(None))

    def fail(self, error: BaseException) -> None:
        """The stream ended with ``error`` (the consumer's ``get`` raises it)."""
        self._end(_End(error))

    def _end(self, end: _End) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._items.append(end)  # beyond capacity: an end never waits
            waiter, self._consumer_waiter = self._consumer_waiter, None
        if waiter is not None:
            self._consumer_loop.call_soon_threadsafe(_wake, waiter)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- consumer side ---------------------------------------------------------------
    async def get(self) -> T:
        """The next item; ``StopAsyncIteration`` at the end, or the producer's error."""
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    waiter = self._producer_waiter
                    if waiter is not None and len(self._items) <= self.low_water:
                        self._producer_waiter = None
                    else:
                        waiter = None
                    break
                ready = self._consumer_waiter = self._consumer_loop.create_future()
            await ready
        if waiter is not None:
            self._producer_loop.call_soon_threadsafe(_wake, waiter)
        if isinstance(item, _End):
            with self._lock:
                self._items.appendleft(item)  # every later get ends the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """The consumer is gone: drop what is unread; the producer's next ``put`` raises."""
        with self._lock:
            self._closed = True
            self._items.clear()
            waiter, self._producer_waiter = self._producer_waiter, None
        if waiter is not None:
            self._producer_loop.call_soon_threadsafe(_wake, waiter)

    def unread(self) -> int:
        """Items handed over and not yet read."""
        with self._lock:
            return sum(1 for item in self._items if not isinstance(item, _End))

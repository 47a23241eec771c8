"""Bounding a stream's hand-over to its client: ``stream_stall_timeout``.

Back-pressure makes a model wait while its client reads slowly; a client that stays
connected but stops reading would otherwise hold the stream (and, with worker processes,
its whole worker) forever. Each transport hands every response to its client through
``StallGuard.handover``: when that does not complete within the model's
``stream_stall_timeout`` (or the server's), the stream is abandoned — a WARNING names the
model and the stall, the observers' ``on_stream_stalled`` counts it, and ``StreamStalled``
is raised for the transport to end the stream (close the model's generator, drop the
connection or end the call). A limit of 0 (or None) leaves the hand-over unbounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import StreamStalled

logger = logging.getLogger("mlpack.streams")

T = TypeVar("T")
OnStall = Callable[[str, str], None]


class StallGuard:
    """The stall bound of one stream.

    Parameters:
        model_name, model_version: the stream's model (for the log line and the metric).
        limit: seconds one hand-over may take; 0 or None: no bound.
        on_stall: called with the model's name and version when a stream is abandoned.
    """

    def __init__(
        self,
        model_name: str,
        model_version: str | None,
        limit: float | None,
        on_stall: OnStall | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version or ""
        self.limit = limit or None
        self.on_stall = on_stall
        self.stalled = False

    async def handover(self, delivery: Awaitable[T]) -> T:
        """Await ``delivery`` (a send or a bounded queue's put) within the limit."""
        if self.limit is None:
            return await delivery
        try:
            async with asyncio.timeout(self.limit):
                return await delivery
        except TimeoutError:
            raise self.stall() from None

    def stall(self) -> StreamStalled:
        """Record that the stream is abandoned; the error the transport ends it with."""
        self.stalled = True
        version = f" version '{self.model_version}'" if self.model_version else ""
        logger.warning(
            "model '%s'%s: stream abandoned, the client took no response for %gs "
            "(stream_stall_timeout); its generator is closed",
            self.model_name,
            version,
            self.limit or 0,
        )
        if self.on_stall is not None:
            try:
                self.on_stall(self.model_name, self.model_version)
            except Exception:  # an observer's bug must not keep the stream alive
                logger.exception("stream stall observer failed")
        return StreamStalled(
            f"model '{self.model_name}': the client stopped reading the stream; abandoned "
            f"after {self.limit or 0:g}s (stream_stall_timeout)"
        )
